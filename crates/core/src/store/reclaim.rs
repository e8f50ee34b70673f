//! Freeing a failed backup's data at once rather than at the next gc: on a
//! full file system, the next backup (and the catalog beside the store)
//! would fail for want of the space it holds.
//!
//! Under the exclusive store lock (so no other process writes and can have
//! reused these blobs), taken without waiting long: the open pack is
//! dropped unsealed (nothing published uses an unsealed pack), so are the
//! unsealed packs and temp files of dead processes (gc's leftovers: a
//! killed backup's, when the next command recovers it), and each
//! pack this process sealed that holds no blob of any published version is
//! deleted -- gc's rules, limited to our own packs. When other writers
//! hold the lock, nothing is freed and the error says to run gc.

use super::core::Store;
use super::error::{Result, StoreError};
use super::gc;
use super::lock;
use crate::progress::NoProgress;
use std::time::Duration;

/// How long to wait for other writers before leaving the data to gc.
const WAIT: Duration = Duration::from_secs(1);

pub fn run(store: &Store) -> Result<()> {
    let _lock = lock::store_exclusive(&store.root, WAIT).map_err(|e| match e {
        StoreError::Busy { what, .. } => StoreError::Busy {
            what,
            why: "other backups are writing, so the data of the failed one stays in the \
                  store until `blockback gc`"
                .into(),
        },
        other => other,
    })?;
    store.blobs.abandon_open_pack()?;
    // No writer is active anywhere while we hold the lock: unsealed packs
    // are of dead processes (a killed backup being recovered), as gc knows.
    gc::remove_leftovers(store)?;
    let own = store.blobs.take_own_packs();
    if own.is_empty() {
        return Ok(());
    }
    let _maint = store.blobs.maintenance();
    let marked = gc::mark(store, &NoProgress)?;
    if !marked.unreadable_pages.is_empty() {
        return Ok(()); // what is live is unknown: gc decides, knowing that
    }
    for name in own {
        let num = {
            let index = store.blobs.read_index();
            let Some(num) = index.pack_number(&name) else {
                continue;
            };
            let in_use =
                (index.map.iter()).any(|(id, loc)| loc.pack == num && marked.live.contains(id));
            if in_use {
                continue;
            }
            num
        };
        gc::delete_pack(store, num)?;
    }
    super::pack::sync_dir(store.blobs.dir())
}
