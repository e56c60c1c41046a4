//! Shared by the unit tests: the example inventories and throwaway keys
//! (made for these tests only; they guard nothing).

use std::path::PathBuf;

use kiln_inventory::Inventory;

pub const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC/Wqd8fBeliUlUSfo1SQDji2PxCu7lYS6bB7UYNNO70 kiln@test";

pub const HOST_PRIVATE: &str = include_str!("../tests/fixtures/host_ed25519");

pub fn inventory(example: &str) -> Inventory {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../inventory/examples")
        .join(example);
    match kiln_inventory::load(&path) {
        Ok(inventory) => inventory,
        Err(error) => panic!("{}", error.render(false)),
    }
}
