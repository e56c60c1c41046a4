//! The `storage.truenas` section: what TrueNAS and the nodes will be given
//! must be something they accept.

use super::Findings;
use crate::model::Inventory;
use crate::path;

pub(super) fn check(inventory: &Inventory, findings: &mut Findings<'_>) {
    let Some(storage) = &inventory.storage else {
        return;
    };
    let truenas = &storage.truenas;
    if let Some(iscsi) = &truenas.iscsi {
        if iscsi.portal_address().is_none() {
            findings
                .report(
                    &path!["storage", "truenas", "iscsi", "portal"],
                    format!("portal `{}` is not `address:port` or an address", iscsi.portal),
                )
                .help = Some(
                "an IP address as TrueNAS's portal listens on it, e.g. `10.0.0.5:3260`: a node names the attached disk after it".to_owned(),
            );
        }
        dataset_check(
            &iscsi.dataset,
            path!["storage", "truenas", "iscsi", "dataset"],
            findings,
        );
        if iscsi.target_prefix.is_empty()
            || !iscsi
                .target_prefix
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        {
            findings.report(
                &path!["storage", "truenas", "iscsi", "target_prefix"],
                format!(
                    "target prefix `{}` must be lower-case letters, digits and `-` (it becomes part of IQNs)",
                    iscsi.target_prefix
                ),
            );
        }
    }
    if let Some(nfs) = &truenas.nfs {
        dataset_check(
            &nfs.dataset,
            path!["storage", "truenas", "nfs", "dataset"],
            findings,
        );
        if let Some(iscsi) = &truenas.iscsi
            && nests(&iscsi.dataset, &nfs.dataset)
        {
            findings.report(
                &path!["storage", "truenas", "nfs", "dataset"],
                format!(
                    "the NFS dataset `{}` and the iSCSI dataset `{}` must not contain one another: the CSI driver lists each parent's children as its volumes",
                    nfs.dataset, iscsi.dataset
                ),
            );
        }
    }
}

fn dataset_check(dataset: &str, at: crate::source::Path, findings: &mut Findings<'_>) {
    let components: Vec<&str> = dataset.split('/').collect();
    let valid_component = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(&byte))
    };
    if components.len() < 2 || !components.iter().all(|part| valid_component(part)) {
        findings
            .report(&at, format!("`{dataset}` is not a dataset below a pool"))
            .help = Some("a ZFS name like `tank/k8s/iscsi`: the pool, then one or more names of letters, digits, `-_.:`".to_owned());
    }
}

fn nests(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_nest_only_on_component_boundaries() {
        assert!(nests("tank/k8s", "tank/k8s/nfs"));
        assert!(nests("tank/k8s/nfs", "tank/k8s/nfs"));
        assert!(!nests("tank/k8s/iscsi", "tank/k8s/iscsi2"));
        assert!(!nests("tank/k8s/iscsi", "tank/k8s/nfs"));
    }
}
