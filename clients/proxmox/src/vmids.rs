//! VMIDs held in this process between "PVE says it is free" and "the VM
//! exists", so two callers of one client never race for the same id.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

/// In-process VMID reservations. `nextid` reserves nothing, so ids handed
/// out but not yet created are remembered here until the clone finished.
#[derive(Debug, Default)]
pub(crate) struct VmidBook {
    reserved: Arc<Mutex<BTreeSet<u32>>>,
}

impl VmidBook {
    /// Holds `vmid` unless another caller of this client already does. Held
    /// before PVE is asked about it, so no two callers ever check the same
    /// id and allocations need not queue behind each other's requests.
    pub(crate) fn reserve(&self, vmid: u32) -> Option<VmidReservation> {
        let inserted = self
            .reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(vmid);
        inserted.then(|| VmidReservation {
            vmid,
            book: self.reserved.clone(),
        })
    }
}

/// A VMID held for this process; dropping it releases the hold (do that
/// once the VM exists or the attempt is abandoned).
#[derive(Debug)]
pub struct VmidReservation {
    vmid: u32,
    book: Arc<Mutex<BTreeSet<u32>>>,
}

impl VmidReservation {
    pub fn vmid(&self) -> u32 {
        self.vmid
    }
}

impl Drop for VmidReservation {
    fn drop(&mut self) {
        self.book
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.vmid);
    }
}
