//! kiln-inventory
