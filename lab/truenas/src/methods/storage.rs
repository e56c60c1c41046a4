//! `pool.dataset.*`, `iscsi.*`, `nfs.*`, `sharing.nfs.*` and `service.*` over the state.
//! Every change is followed by a data-path sync: like TrueNAS reloading a running service
//! after a share or target changes.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{arg, bool_arg, id_arg, str_arg};
use crate::rpc::RpcError;
use crate::server::App;
use crate::state::services::Verb;
use crate::state::{State, Table};

/// A table's `get_instance [id]`.
fn instance(table: &Table, params: &[Value], verbose: &str) -> Result<Value, RpcError> {
    table.instance(id_arg(params, 0), verbose)
}

fn remove(table: &mut Table, params: &[Value], verbose: &str) -> Result<Value, RpcError> {
    table.instance(id_arg(params, 0), verbose)?;
    table.remove(id_arg(params, 0));
    Ok(json!(true))
}

/// The answer of a storage method; None if `method` is not one of them.
pub(super) fn call(
    app: &Arc<App>,
    method: &str,
    params: &[Value],
) -> Option<Result<Value, RpcError>> {
    let mut state = app.state();
    let s: &mut State = &mut state;
    let (filters, options) = (arg(params, 0), arg(params, 1));
    let data = |i: usize| arg(params, i).cloned().unwrap_or_else(|| json!({}));
    let answer = match method {
        "pool.dataset.query" => s.dataset_query(filters, options),
        "pool.dataset.get_instance" => s.dataset_get(str_arg(params, 0)),
        "pool.dataset.create" => s.dataset_create(&data(0)),
        "pool.dataset.update" => s.dataset_update(str_arg(params, 0), &data(1)),
        "pool.dataset.delete" => s.dataset_delete(str_arg(params, 0), arg(params, 1)),
        "iscsi.global.config" => Ok(s.iscsi.global.clone()),
        "iscsi.global.update" => s.iscsi_global_update(&data(0)),
        "iscsi.global.sessions" => crate::query::apply(Vec::new(), filters, options),
        "iscsi.global.client_count" => Ok(json!(0)),
        "iscsi.global.alua_enabled" | "iscsi.global.iser_enabled" => Ok(json!(false)),
        "iscsi.portal.query" => crate::query::apply(s.iscsi.portal_rows(), filters, options),
        "iscsi.portal.get_instance" => s.portal_get(id_arg(params, 0)),
        "iscsi.portal.create" => s.portal_create(&data(0)),
        "iscsi.portal.update" => s.portal_update(id_arg(params, 0), &data(1)),
        "iscsi.portal.delete" => s.portal_delete(id_arg(params, 0)),
        "iscsi.portal.listen_ip_choices" => Ok(s.listen_ip_choices()),
        "iscsi.initiator.query" => s.iscsi.initiators.query(filters, options),
        "iscsi.initiator.get_instance" => instance(
            &s.iscsi.initiators,
            params,
            "iSCSITargetAuthorizedInitiator",
        ),
        "iscsi.initiator.create" => s.initiator_create(&data(0)),
        "iscsi.initiator.update" => s.initiator_update(id_arg(params, 0), &data(1)),
        "iscsi.initiator.delete" => s.initiator_delete(id_arg(params, 0)),
        "iscsi.auth.query" => s.iscsi.auths.query(filters, options),
        "iscsi.auth.get_instance" => instance(&s.iscsi.auths, params, "iSCSITargetAuthCredential"),
        "iscsi.auth.create" => s.auth_create(&data(0)),
        "iscsi.auth.update" => s.auth_update(id_arg(params, 0), &data(1)),
        "iscsi.auth.delete" => s.auth_delete(id_arg(params, 0)),
        "iscsi.target.query" => s.iscsi.targets.query(filters, options),
        "iscsi.target.get_instance" => instance(&s.iscsi.targets, params, "iSCSITarget"),
        "iscsi.target.create" => s.target_create(&data(0)),
        "iscsi.target.update" => s.target_update(id_arg(params, 0), &data(1)),
        "iscsi.target.validate_name" => {
            Ok(s.target_name_error(str_arg(params, 0), arg(params, 1).and_then(Value::as_u64)))
        }
        "iscsi.target.delete" => s.target_delete(id_arg(params, 0), bool_arg(params, 2)),
        "iscsi.extent.query" => s.iscsi.extents.query(filters, options),
        "iscsi.extent.get_instance" => instance(&s.iscsi.extents, params, "iSCSITargetExtent"),
        "iscsi.extent.create" => s.extent_create(&data(0)),
        "iscsi.extent.update" => s.extent_update(id_arg(params, 0), &data(1)),
        "iscsi.extent.delete" => s.extent_delete(id_arg(params, 0)),
        "iscsi.extent.disk_choices" => Ok(disk_choices(s)),
        "iscsi.targetextent.query" => s.iscsi.targetextents.query(filters, options),
        "iscsi.targetextent.get_instance" => {
            instance(&s.iscsi.targetextents, params, "iSCSITargetToExtent")
        }
        "iscsi.targetextent.create" => s.targetextent_create(&data(0)),
        "iscsi.targetextent.update" => s.targetextent_update(id_arg(params, 0), &data(1)),
        "iscsi.targetextent.delete" => {
            remove(&mut s.iscsi.targetextents, params, "iSCSITargetToExtent")
        }
        "nfs.config" => Ok(s.nfs.config.clone()),
        "nfs.update" => s.nfs_update(&data(0)),
        "nfs.bindip_choices" => Ok(Value::Object(
            s.host_ips
                .iter()
                .map(|ip| (ip.to_string(), json!(ip.to_string())))
                .collect(),
        )),
        "nfs.client_count" => Ok(json!(0)),
        "sharing.nfs.query" => s.nfs.shares.query(filters, options),
        "sharing.nfs.get_instance" => instance(&s.nfs.shares, params, "SharingNFS"),
        "sharing.nfs.create" => s.share_create(&data(0)),
        "sharing.nfs.update" => s.share_update(id_arg(params, 0), &data(1)),
        "sharing.nfs.delete" => remove(&mut s.nfs.shares, params, "SharingNFS"),
        "service.query" => crate::query::apply(s.service_rows(), filters, options),
        "service.get_instance" => crate::query::apply(
            s.service_rows(),
            Some(&json!([["id", "=", id_arg(params, 0)]])),
            Some(&json!({"get": true})),
        )
        .map_err(|_| RpcError::not_found(format!("Service {} does not exist", id_arg(params, 0)))),
        "service.update" => s.service_update(arg(params, 0).unwrap_or(&Value::Null), &data(1)),
        "service.started" => Ok(json!(s.running(str_arg(params, 0)))),
        "service.started_or_enabled" => Ok(json!(
            s.running(str_arg(params, 0))
                || s.services
                    .iter()
                    .any(|x| x.name == str_arg(params, 0) && x.enable)
        )),
        // 25.10 still serves these (removed in 26); not jobs.
        "service.start" | "service.stop" | "service.restart" | "service.reload" => {
            let verb = match method {
                "service.start" => Verb::Start,
                "service.stop" => Verb::Stop,
                "service.restart" => Verb::Restart,
                _ => Verb::Reload,
            };
            let silent = arg(params, 1)
                .and_then(|o| o.get("silent"))
                .and_then(Value::as_bool)
                .unwrap_or(true);
            return Some(s.service_control(
                verb,
                str_arg(params, 0),
                silent,
                app.data_path.as_ref(),
            ));
        }
        _ => return None,
    };
    if answer.is_ok()
        && is_mutation(method)
        && let Err(e) = s.sync_data_path(app.data_path.as_ref(), None)
    {
        tracing::warn!("data path: {e:?}");
    }
    Some(answer)
}

fn is_mutation(method: &str) -> bool {
    matches!(
        method.rsplit('.').next(),
        Some("create" | "update" | "delete")
    )
}

/// `service.control [verb, service, options]`, the body of its job.
pub(super) fn service_control(app: &Arc<App>, params: &[Value]) -> Result<Value, RpcError> {
    let verb = Verb::parse(str_arg(params, 0)).unwrap_or(Verb::Reload);
    let silent = arg(params, 2)
        .and_then(|o| o.get("silent"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    app.state()
        .service_control(verb, str_arg(params, 1), silent, app.data_path.as_ref())
}

/// Zvols not yet used by an extent, `zvol/<name>` → a label.
fn disk_choices(state: &State) -> Value {
    let used: Vec<&str> = state
        .iscsi
        .extents
        .rows()
        .filter_map(|e| e["disk"].as_str())
        .collect();
    let mut out = Map::new();
    for (name, dataset) in &state.datasets {
        if let Some(size) = dataset.volsize() {
            let disk = format!("zvol/{name}");
            if !used.contains(&disk.as_str()) {
                out.insert(disk, json!(format!("{name} ({size} bytes)")));
            }
        }
    }
    Value::Object(out)
}
