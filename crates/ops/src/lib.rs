//! blockback operations: open what the user names and run each operation.
//!
//! The engine (`blockback-core`) works on traits: pools, images, a
//! catalog. This crate is what turns names into those -- one address
//! grammar for every command ([`address`]), store locations
//! ([`location`]), cluster connections ([`Connections`]), volumes
//! ([`volume`]) -- and offers each operation as a typed request
//! ([`BackupOptions`], [`RestoreOptions`], [`DeleteOptions`]) that the CLI
//! and the service both call. No terminal code, no clap: errors are
//! [`OpsError`], progress goes through the core's `Progress` trait.

pub mod address;
mod backup;
mod catalog;
mod connections;
mod delete;
mod error;
mod export;
mod images;
mod keys;
mod live;
pub mod location;
mod locks;
mod maintenance;
mod restore;
mod settings;
pub mod store;
pub mod volume;

pub use address::Address;
pub use backup::BackupOptions;
pub use catalog::CatalogLocation;
pub use connections::{Connections, Connector};
pub use delete::{DeleteOptions, Deleted};
pub use error::{OpsError, OpsResult};
pub use export::{BackupExport, ExportClosed, ExportEnd, ExportOptions};
pub use images::Opened;
pub use keys::{keys_from_files, StoreKeys};
pub use location::{require_parent, StoreLocation};
pub use locks::StoreLocks;
pub use restore::{RestoreOptions, TargetKind};
pub use settings::Settings;
pub use store::StoreHandle;
pub use volume::Volume;

use blockback_core::catalog::{resolve_backup, BackupRecord, Catalog};
use blockback_core::engine::{DigestDir, Engine, LockDir, TransferBuffers};
use blockback_core::progress::Progress;
pub use blockback_rbd::DEFAULT_LOCK_LEASE;

/// One caller's view of blockback: its settings, catalog, cluster
/// connections and progress sink. Cheap to build per request.
pub struct Ops<'a> {
    pub settings: &'a Settings,
    pub catalog: &'a dyn Catalog,
    pub connections: &'a Connections,
    pub progress: &'a dyn Progress,
    /// A bound on transfer buffers shared with other callers' jobs (the
    /// service's); `None`: each transfer's workers keep their own (the CLI).
    pub buffers: Option<&'a TransferBuffers>,
}

impl<'a> Ops<'a> {
    pub fn engine(&self) -> Engine<'a> {
        let locks = StoreLocks::new(
            LockDir::new(self.settings.lock_dir()),
            self.connections,
            self.settings.store_ceph.clone(),
            self.settings.lock_lease,
        );
        let mut engine = Engine::new(
            self.catalog,
            locks,
            DigestDir::new(self.settings.digest_dir()),
            self.progress,
        );
        engine.copy.buffers = self.buffers;
        engine
    }

    /// Opens the configured store (an RBD one with the configured layout
    /// for new bases); a local one is created first when `create` and it
    /// does not exist yet.
    pub fn store(&self, create: bool) -> OpsResult<StoreHandle> {
        self.settings.check()?;
        let store = store::open_store(
            &self.settings.store,
            &self.settings.store_ceph,
            self.connections,
            &self.settings.keys,
            create,
        )?;
        Ok(store.with_layout(&self.settings.store_layout))
    }

    /// Opens the store a backup was written to.
    pub fn store_of(&self, backup: &BackupRecord) -> OpsResult<StoreHandle> {
        let location = StoreLocation::parse(&backup.store)?;
        self.settings.catalog.check_store(&location)?;
        store::open_store(
            &location,
            &self.settings.store_ceph,
            self.connections,
            &self.settings.keys,
            false,
        )
    }

    /// The backup a user-given id or unique prefix names.
    pub fn backup_record(&self, given: &str) -> OpsResult<BackupRecord> {
        Ok(resolve_backup(self.catalog, given)?)
    }

    /// Parses a volume address by the one `local:` rule.
    pub fn volume(&self, text: &str) -> OpsResult<Volume> {
        Volume::parse(text, self.settings.volume_store())
    }
}
