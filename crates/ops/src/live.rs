//! `backup restore --live` as a typed request: the engine's live restore
//! into an RBD or local-store image (the caller serves its view and runs
//! its copier).

use crate::address::Address;
use crate::error::{invalid, OpsResult};
use crate::restore::{image_target, TargetKind};
use crate::store::open_local;
use crate::volume::Volume;
use crate::Ops;
use blockback_core::engine::{LiveRestore, RestoreRequest};
use blockback_core::image::Pool;

impl Ops<'_> {
    /// Starts a live restore of `backup` into the new image `target`
    /// (`rbd:POOL/IMAGE` or `local:IMAGE`), or resumes the unfinished one
    /// that image holds.
    pub fn begin_live_restore(&self, backup: &str, target: &str) -> OpsResult<LiveRestore> {
        let record = self.backup_record(backup)?;
        let store = self.store_of(&record)?;
        self.with_target_pool(target, |pool, name, label| {
            let to = image_target(pool, name, label, TargetKind::NewOrExisting)?;
            let request = RestoreRequest {
                backup: &record,
                store: store.pool(),
                to,
            };
            Ok(self.engine().begin_live_restore(&request)?)
        })
    }

    /// Removes the target an interrupted live restore of `backup` left.
    pub fn abandon_live_restore(&self, backup: &str, target: &str) -> OpsResult<()> {
        let record = self.backup_record(backup)?;
        self.with_target_pool(target, |pool, name, label| {
            Ok(self
                .engine()
                .abandon_live_restore(&record, pool, name, &label)?)
        })
    }

    fn with_target_pool<T>(
        &self,
        target: &str,
        op: impl FnOnce(&dyn Pool, &str, String) -> OpsResult<T>,
    ) -> OpsResult<T> {
        let address = Address::parse(target)?;
        address.require_writable()?;
        let volume = Volume::from_address(&address, self.settings.volume_store())?;
        let label = volume.target_label();
        match &volume {
            Volume::Rbd(spec) => {
                let pool = self.connections.open_pool(&self.settings.volume_ceph, &spec.pool)?;
                op(&pool, spec.require_image()?, label)
            }
            Volume::Local {
                store: dir, image, ..
            } => op(&open_local(dir, &self.settings.volume_keys(), false)?, image, label),
            Volume::File(p) => invalid(format!(
                "a live restore writes into an image (rbd:POOL/IMAGE or local:IMAGE), not into the file {}; restore files without --live",
                p.display()
            )),
        }
    }
}
