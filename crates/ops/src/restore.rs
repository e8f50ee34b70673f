//! `backup restore` as a typed request: the address of the target and
//! whether it must be new, must exist, or either.

use crate::address::Address;
use crate::error::{invalid, OpsResult};
use crate::store::open_local;
use crate::volume::Volume;
use crate::Ops;
use blockback_core::engine::{RestoreRequest, RestoreTo, Restored};
use blockback_core::image::Pool;
use std::path::Path;

/// Whether a restore creates its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetKind {
    /// Create it; refused when something of that name exists.
    New,
    /// Write onto it; refused when it does not exist.
    Existing,
    /// Create it when absent, else write onto it (the CLI's choice).
    #[default]
    NewOrExisting,
}

/// A restore of backup `backup` (id or unique prefix) into `target`.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub backup: String,
    /// File or device path, `rbd:POOL/IMAGE` or `local:IMAGE`.
    pub target: String,
    pub kind: TargetKind,
}

impl Ops<'_> {
    /// Restores a backup; the engine checks, locks, creates the target and
    /// removes it again on failure.
    pub fn restore(&self, options: &RestoreOptions) -> OpsResult<Restored> {
        let record = self.backup_record(&options.backup)?;
        let address = Address::parse(&options.target)?;
        address.require_writable()?;
        let volume = Volume::from_address(&address, self.settings.volume_store())?;
        let store = self.store_of(&record)?;
        let restore = |to: RestoreTo<'_>| {
            let request = RestoreRequest {
                backup: &record,
                store: store.pool(),
                to,
            };
            Ok(self.engine().restore(&request)?)
        };
        match &volume {
            Volume::File(path) => restore(file_target(path, options.kind)?),
            Volume::Rbd(spec) => {
                let pool = self
                    .connections
                    .open_pool(&self.settings.volume_ceph, &spec.pool)?;
                let name = spec.require_image()?;
                restore(image_target(
                    &pool,
                    name,
                    volume.target_label(),
                    options.kind,
                )?)
            }
            Volume::Local {
                store: dir, image, ..
            } => {
                let pool = open_local(dir, &self.settings.volume_keys(), false)?;
                restore(image_target(
                    &pool,
                    image,
                    volume.target_label(),
                    options.kind,
                )?)
            }
        }
    }
}

fn file_target(path: &Path, kind: TargetKind) -> OpsResult<RestoreTo<'_>> {
    let exists = path.exists();
    match (kind, exists) {
        (TargetKind::New, true) => invalid(format!(
            "restore target {} exists; give a new path, or restore onto it as an existing target",
            path.display()
        )),
        (TargetKind::Existing, false) => invalid(format!(
            "restore target {} does not exist; give an existing file or device, or restore to a new file",
            path.display()
        )),
        (_, true) => Ok(RestoreTo::ExistingFile(path)),
        (_, false) => Ok(RestoreTo::NewFile(path)),
    }
}

pub(crate) fn image_target<'p>(
    pool: &'p dyn Pool,
    name: &'p str,
    label: String,
    kind: TargetKind,
) -> OpsResult<RestoreTo<'p>> {
    let exists = pool.exists(name)?;
    match (kind, exists) {
        (TargetKind::New, true) => invalid(format!(
            "restore target {label} exists; give a new image name, or restore onto it as an existing target"
        )),
        (TargetKind::Existing, false) => invalid(format!(
            "restore target {label} does not exist; give an existing image, or restore to a new one"
        )),
        (_, true) => Ok(RestoreTo::ExistingImage { pool, name, label }),
        (_, false) => Ok(RestoreTo::NewImage { pool, name, label }),
    }
}
