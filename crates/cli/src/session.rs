//! What every command opens: the catalog, the store, the engine.

use crate::config::{Config, StoreLocation};
use crate::endpoint::{open_store, Connections, StoreHandle};
use crate::progress::CliProgress;
use anyhow::Result;
use blockback_catalog::SqliteCatalog;
use blockback_core::catalog::BackupRecord;
use blockback_core::engine::{DigestDir, Engine, LockDir};
use blockback_core::image::Pool;

pub struct Session {
    pub config: Config,
    pub catalog: SqliteCatalog,
    pub progress: CliProgress,
    pub connections: Connections,
}

impl Session {
    /// Opens the catalog and repairs what interrupted runs left behind.
    pub fn open(config: Config) -> Result<Self> {
        let catalog = SqliteCatalog::open(&config.catalog)?;
        let progress = CliProgress::new(config.quiet || config.json);
        let session = Session {
            config,
            catalog,
            progress,
            connections: Connections::default(),
        };
        session.recover()?;
        Ok(session)
    }

    pub fn engine(&self) -> Engine<'_> {
        Engine::new(
            &self.catalog,
            LockDir::new(self.config.lock_dir()),
            DigestDir::new(self.config.digest_dir()),
            &self.progress,
        )
    }

    /// Opens the configured store (an RBD one with the --rbd-* layout for
    /// new bases); a local one is created first when `create` and it does
    /// not exist yet.
    pub fn store(&self, create: bool) -> Result<StoreHandle> {
        let store = open_store(
            &self.config.store,
            &self.config.store_ceph,
            &self.connections,
            create,
        )?;
        Ok(store.with_layout(&self.config.store_layout))
    }

    /// Opens the store a backup was written to.
    pub fn store_of(&self, backup: &BackupRecord) -> Result<StoreHandle> {
        open_store(
            &StoreLocation::parse(&backup.store)?,
            &self.config.store_ceph,
            &self.connections,
            false,
        )
    }

    fn recover(&self) -> Result<()> {
        let open = |label: &str| -> Option<Box<dyn Pool>> {
            let location = StoreLocation::parse(label).ok()?;
            match open_store(&location, &self.config.store_ceph, &self.connections, false).ok()? {
                StoreHandle::Local(s) => Some(Box::new(s)),
                StoreHandle::Rbd(p) => Some(Box::new(p)),
            }
        };
        for r in self.engine().recover_interrupted(&open)? {
            tracing::warn!("backup {} was {}: {}", r.backup, r.was, r.note);
            if !self.config.quiet {
                eprintln!(
                    "note: backup {} was {} by a process that died: {}",
                    r.backup, r.was, r.note
                );
            }
        }
        Ok(())
    }
}
