//! `kiln image ensure`: makes the inventory's templates exist on Proxmox,
//! one copy per PVE node, each tagged and marked as kiln's.
//!
//! 1. [`resolve_images`]: each image's file and checksum (a golden image
//!    from kiln's cache, or a cloud image's published checksum);
//! 2. [`observe_templates`]: one `/cluster/resources` call, plus the
//!    description of kiln's VMs on the template VMIDs;
//! 3. [`plan_templates`] (pure): per copy nothing, create, finish, replace
//!    (only with `--replace`) or outdated; a foreign VM on a VMID is an error;
//! 4. [`ensure`]: image onto the node's `import` storage, create the VM
//!    importing it, convert to a template, as a graph of steps that reports
//!    the engine's events.
//!
//! A converged run sends no request that changes anything.

mod execute;
mod image;
mod marker;
mod observe;
mod plan;

pub use execute::{EnsureContext, EnsureTimeouts, ensure};
pub use image::{ImageError, ImageOrigin, ResolvedImage, resolve_images};
pub use marker::TemplateMarker;
pub use observe::observe_templates;
pub use plan::{
    DesiredTemplate, ObservedTemplate, TEMPLATE_TAG, TemplateAction, TemplatePlan,
    TemplatePlanError, TemplatePlanItem, desired_templates, plan_templates,
};
