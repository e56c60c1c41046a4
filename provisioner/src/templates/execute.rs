//! From a template plan to a graph of steps, and each step:
//!
//! create:  image (per image and PVE node) → create → template
//! replace: destroy → image → create → template
//! finish:  template
//!
//! The `image` steps of one image run one node after another, so a storage
//! shared by the nodes receives the file once and the later nodes find it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use super::image::{ImageOrigin, ResolvedImage};
use super::marker::TemplateMarker;
use super::plan::{TEMPLATE_TAG, TemplateAction, TemplatePlan, TemplatePlanItem};
use crate::engine::{EventSink, Graph, GraphReport, RunLabel, Step, StepId, run_framed};
use crate::plan::{KILN_TAG, ownership_tag};
use kiln_proxmox::{
    AgentOption, CreateVm, DeleteOptions, DownloadUrl, ImportContent, NetDevice, NewDisk,
    ProxmoxClient, StorageContent, Upload, UploadSource,
};

/// Memory of the template (MiB); clones get the inventory's own.
const TEMPLATE_MEMORY_MIB: u64 = 1024;

/// How long each kind of step may take before it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnsureTimeouts {
    /// Upload or download of one image to one node's storage.
    pub image: Duration,
    /// Create, which copies the image into the VM's disk.
    pub create: Duration,
    pub convert: Duration,
    pub destroy: Duration,
}

impl Default for EnsureTimeouts {
    fn default() -> Self {
        Self {
            image: Duration::from_secs(3600),
            create: Duration::from_secs(1800),
            convert: Duration::from_secs(300),
            destroy: Duration::from_secs(300),
        }
    }
}

/// What every step shares.
pub struct EnsureContext {
    pub client: ProxmoxClient,
    pub cluster: String,
    /// The bridge (and VLAN) of the templates' `net0`; clones keep it.
    pub bridge: String,
    pub vlan: Option<u16>,
    /// `proxmox.pool`: templates go where the clones go, so a token scoped
    /// to the pool can make both.
    pub pool: Option<String>,
    pub run: Uuid,
    pub timeouts: EnsureTimeouts,
}

/// Runs the plan, framed by the run's start and end events.
pub async fn ensure(
    context: Arc<EnsureContext>,
    plan: &TemplatePlan,
    images: &BTreeMap<String, ResolvedImage>,
    label: RunLabel,
    sink: Arc<dyn EventSink>,
    interrupt: watch::Receiver<bool>,
) -> GraphReport {
    let graph = build(plan, images, &context);
    run_framed(graph, context.run, &plan.cluster, label, sink, interrupt).await
}

/// The volume an `image` step put (or found) on a node, for `create`.
#[derive(Debug, Default)]
struct VolumeSlot(Mutex<Option<String>>);

impl VolumeSlot {
    fn set(&self, volid: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(volid);
    }

    fn volid(&self) -> Result<String, String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| "no image volume: the image step did not record one".to_owned())
    }
}

fn build(
    plan: &TemplatePlan,
    images: &BTreeMap<String, ResolvedImage>,
    context: &Arc<EnsureContext>,
) -> Graph {
    let mut graph = Graph::default();
    // (image, PVE node) → its image step and slot; image → its last step.
    let mut staged: BTreeMap<(String, String), (StepId, Arc<VolumeSlot>)> = BTreeMap::new();
    let mut last_of_image: BTreeMap<String, StepId> = BTreeMap::new();
    for item in &plan.items {
        let label = item.label();
        let item = Arc::new(item.clone());
        let convert_after = match item.action {
            TemplateAction::Nothing | TemplateAction::Outdated => continue,
            TemplateAction::Finish => Vec::new(),
            TemplateAction::Create | TemplateAction::Replace => {
                let Some(image) = images.get(&item.image) else {
                    continue;
                };
                let key = (item.image.clone(), item.pve_node.clone());
                let (image_step, slot) = match staged.get(&key) {
                    Some(found) => found.clone(),
                    None => {
                        let slot = Arc::new(VolumeSlot::default());
                        let after = last_of_image
                            .get(&item.image)
                            .copied()
                            .into_iter()
                            .collect();
                        let step = graph.add(step(
                            &format!("{}@{}", item.image, item.pve_node),
                            "image",
                            after,
                            context.timeouts.image,
                            stage_image(
                                context.clone(),
                                Arc::new(image.clone()),
                                item.pve_node.clone(),
                                slot.clone(),
                            ),
                        ));
                        last_of_image.insert(item.image.clone(), step);
                        staged.insert(key, (step, slot.clone()));
                        (step, slot)
                    }
                };
                let mut create_after = vec![image_step];
                if let Some(on) = item.replaces_on.clone() {
                    create_after.push(graph.add(step(
                        &label,
                        "destroy",
                        Vec::new(),
                        context.timeouts.destroy,
                        destroy(context.clone(), on, item.vmid),
                    )));
                }
                vec![graph.add(step(
                    &label,
                    "create",
                    create_after,
                    context.timeouts.create,
                    create(context.clone(), item.clone(), Arc::new(image.clone()), slot),
                ))]
            }
        };
        graph.add(step(
            &label,
            "template",
            convert_after,
            context.timeouts.convert,
            convert(context.clone(), item),
        ));
    }
    graph
}

fn step(
    label: &str,
    name: &'static str,
    after: Vec<StepId>,
    timeout: Duration,
    work: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
) -> Step {
    Step {
        node: Some(label.to_owned()),
        name,
        after,
        timeout,
        // Every step here is a Proxmox task: let it finish.
        abortable: false,
        run: Box::new(move || Box::pin(work)),
    }
}

/// Makes sure the image file is on the node's `import` storage: found by
/// name (the name carries the checksum), else uploaded or downloaded with
/// the checksum Proxmox verifies.
async fn stage_image(
    context: Arc<EnsureContext>,
    image: Arc<ResolvedImage>,
    node: String,
    slot: Arc<VolumeSlot>,
) -> Result<(), String> {
    let client = &context.client;
    let storage = import_storage(client, &node).await?;
    let volid = format!("{storage}:import/{}", image.filename);
    let present = client
        .storage_content(&node, &storage, Some("import"), None)
        .await
        .map_err(|error| error.to_string())?
        .iter()
        .any(|volume: &StorageContent| volume.volid == volid);
    if !present {
        match &image.origin {
            ImageOrigin::Golden { path, .. } => {
                let upload = Upload {
                    content: ImportContent::Import,
                    filename: image.filename.clone(),
                    source: UploadSource::File(path.clone()),
                    checksum: Some(image.checksum.clone()),
                };
                client.run(|| client.upload(&node, &storage, &upload)).await
            }
            ImageOrigin::Url { url } => {
                let download = DownloadUrl {
                    url: url.clone(),
                    content: ImportContent::Import,
                    filename: image.filename.clone(),
                    checksum: Some(image.checksum.clone()),
                    compression: None,
                    verify_certificates: None,
                };
                client
                    .run(|| client.download_url(&node, &storage, &download))
                    .await
            }
        }
        .map_err(|error| format!("image `{}` to {storage} on {node}: {error}", image.name))?;
    }
    slot.set(volid);
    Ok(())
}

/// The node's storage for disk images to import: `local` when it takes
/// them (Proxmox's default), else the first that does.
async fn import_storage(client: &ProxmoxClient, node: &str) -> Result<String, String> {
    let storages = client
        .storages(node, Some("import"))
        .await
        .map_err(|error| error.to_string())?;
    let usable: Vec<&str> = storages
        .iter()
        .filter(|storage| storage.supports("import") && storage.active)
        .map(|storage| storage.storage.as_str())
        .collect();
    usable
        .iter()
        .find(|id| **id == "local")
        .or_else(|| usable.first())
        .map(|id| (*id).to_owned())
        .ok_or_else(|| {
            format!(
                "PVE node {node} has no active storage with content `import` (Proxmox VE ≥ 8.3): add `import` to a directory storage's content, e.g. `pvesm set local --content iso,vztmpl,snippets,import`"
            )
        })
}

async fn destroy(context: Arc<EnsureContext>, node: String, vmid: u32) -> Result<(), String> {
    let client = &context.client;
    let options = DeleteOptions {
        purge: true,
        destroy_unreferenced_disks: false,
    };
    client
        .run(|| client.delete_vm(&node, vmid, options))
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

async fn create(
    context: Arc<EnsureContext>,
    item: Arc<TemplatePlanItem>,
    image: Arc<ResolvedImage>,
    slot: Arc<VolumeSlot>,
) -> Result<(), String> {
    let client = &context.client;
    let vm = template_vm(&context, &item, &image, slot.volid()?);
    client
        .run(|| client.create_vm(&item.pve_node, &vm))
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

/// The VM a template is made from: the image as its boot disk, a
/// cloud-init drive, a serial console, the guest agent, kiln's tags and
/// marker.
fn template_vm(
    context: &EnsureContext,
    item: &TemplatePlanItem,
    image: &ResolvedImage,
    volid: String,
) -> CreateVm {
    let storage = item.storage.clone();
    let marker = TemplateMarker {
        cluster: context.cluster.clone(),
        template: item.template.clone(),
        image: item.image.clone(),
        checksum: image.identity(),
        kiln_version: env!("CARGO_PKG_VERSION").to_owned(),
        run: context.run.to_string(),
    };
    CreateVm {
        vmid: item.vmid,
        name: Some(item.template.clone()),
        cores: Some(1),
        memory_mib: Some(TEMPLATE_MEMORY_MIB),
        ostype: Some("l26".to_owned()),
        scsihw: Some("virtio-scsi-single".to_owned()),
        disks: vec![
            (
                "scsi0".to_owned(),
                NewDisk::Import {
                    storage: storage.clone(),
                    source: volid,
                },
            ),
            ("ide2".to_owned(), NewDisk::CloudInit { storage }),
        ],
        nets: vec![(
            0,
            NetDevice {
                vlan_tag: context.vlan,
                ..NetDevice::virtio(context.bridge.clone())
            },
        )],
        serial_sockets: vec![0],
        vga: Some("serial0".to_owned()),
        agent: Some(AgentOption {
            enabled: true,
            fstrim_cloned_disks: None,
        }),
        boot_order: vec!["scsi0".to_owned()],
        tags: vec![
            KILN_TAG.to_owned(),
            ownership_tag(&context.cluster),
            TEMPLATE_TAG.to_owned(),
        ],
        description: Some(marker.description()),
        pool: context.pool.clone(),
    }
}

async fn convert(context: Arc<EnsureContext>, item: Arc<TemplatePlanItem>) -> Result<(), String> {
    let client = &context.client;
    client
        .run(|| client.make_template(&item.pve_node, item.vmid))
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}
