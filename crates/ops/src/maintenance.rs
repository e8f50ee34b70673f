//! Recovery of interrupted operations, and adopting a store's backups.

use crate::error::OpsResult;
use crate::location::StoreLocation;
use crate::store::{open_store, StoreHandle};
use crate::Ops;
use blockback_core::engine::{AdoptReport, Recovered};
use blockback_core::image::Pool;

impl Ops<'_> {
    /// Repairs what interrupted runs left behind (see the engine's
    /// `recover_interrupted`); stores that cannot be opened are skipped.
    pub fn recover(&self) -> OpsResult<Vec<Recovered>> {
        let open = |label: &str| -> Option<Box<dyn Pool>> {
            let location = StoreLocation::parse(label).ok()?;
            let ceph = &self.settings.store_ceph;
            match open_store(
                &location,
                ceph,
                self.connections,
                &self.settings.keys,
                false,
            )
            .ok()?
            {
                StoreHandle::Local(s) => Some(Box::new(s)),
                StoreHandle::Rbd(p) => Some(Box::new(p)),
            }
        };
        Ok(self.engine().recover_interrupted(&open)?)
    }

    /// Records the backups the configured store holds. Their volumes are
    /// `rbd:VOLUME_POOL/volume-<id>` (or, for a local store with a volume
    /// store, `local:` images of it). `only`: just the backups of that volume.
    pub fn adopt(
        &self,
        volume_pool: &str,
        checksums: bool,
        only: Option<uuid::Uuid>,
    ) -> OpsResult<AdoptReport> {
        let store = self.store(false)?;
        let label = self.settings.store.label();
        let volume_store = self.settings.volume_store.clone();
        let source_of = |id: &uuid::Uuid| match (&store, &volume_store) {
            (StoreHandle::Local(_), Some(dir)) => format!("local:{}/volume-{id}", dir.display()),
            _ => format!("rbd:{volume_pool}/volume-{id}"),
        };
        Ok(self
            .engine()
            .adopt(store.pool(), &label, &source_of, checksums, only)?)
    }
}
