//! The Proxmox VE API client.
