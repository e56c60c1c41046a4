//! Placeholder: filled by the Proxmox client work.
