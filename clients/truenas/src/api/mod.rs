//! Typed calls for what kiln uses. Request structs carry exactly the
//! fields the 25.10.5 schema (`methods.json`) defines, with its types
//! (integers as numbers, `volblocksize` and `rpm` as strings, `null` for
//! "unset"); answers are read leniently, since releases add fields.

mod accounts;
mod datasets;
mod iscsi;
mod nfs;
mod services;
mod system;

pub use accounts::{
    ApiKey, NewApiKey, NewPrivilege, NewServiceUser, Privilege, PrivilegeGroup, PrivilegeUpdate,
    User, UserGroup,
};
pub use datasets::{Dataset, DatasetKind, NewDataset, UserProperty, VolBlockSize, ZfsProperty};
pub use iscsi::{
    AuthMethod, ChapAuth, ChapAuthUpdate, DiscoveryAuth, Extent, InitiatorGroup,
    InitiatorGroupUpdate, IscsiGlobal, IscsiGlobalUpdate, NewChapAuth, NewExtent,
    NewInitiatorGroup, NewPortal, NewTarget, NewTargetExtent, Portal, PortalIp, PortalListen,
    PortalUpdate, Target, TargetExtent, TargetGroup,
};
pub use nfs::{NewNfsShare, NfsConfig, NfsConfigUpdate, NfsProtocol, NfsShare, NfsShareUpdate};
pub use services::{Service, ServiceVerb};
pub use system::{SystemInfo, Timestamp};

use serde::Serialize;
use serde_json::{Value, json};

/// One query filter, `[field, operator, value]` as TrueNAS's query methods
/// take them.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Value);

impl Filter {
    pub fn eq(field: &str, value: impl Serialize) -> Self {
        Self(json!([field, "=", value]))
    }

    pub fn is_in<T: Serialize>(field: &str, values: &[T]) -> Self {
        Self(json!([field, "in", values]))
    }
}

/// The params of `X.query [filters]`.
pub(crate) fn query_params(filters: &[Filter]) -> Value {
    let filters: Vec<&Value> = filters.iter().map(|f| &f.0).collect();
    json!([filters])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_triples() {
        let params = query_params(&[
            Filter::eq("comment", "kiln:lab"),
            Filter::is_in("service", &["iscsitarget", "nfs"]),
        ]);
        assert_eq!(
            params,
            json!([[
                ["comment", "=", "kiln:lab"],
                ["service", "in", ["iscsitarget", "nfs"]]
            ]])
        );
        assert_eq!(query_params(&[]), json!([[]]));
    }
}
