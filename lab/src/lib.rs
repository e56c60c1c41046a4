//! kiln-lab: a Proxmox-VE-compatible lab held to the official API schema.
