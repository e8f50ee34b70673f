//! What every command opens: the catalog, the store, the engine.

use crate::config::Config;
use crate::progress::CliProgress;
use anyhow::{Context, Result};
use blockback_catalog::SqliteCatalog;
use blockback_core::engine::{Engine, LockDir};
use blockback_core::image::Pool;
use blockback_core::store::LocalStore;
use std::path::Path;

pub struct Session {
    pub config: Config,
    pub catalog: SqliteCatalog,
    pub progress: CliProgress,
}

impl Session {
    /// Opens the catalog and repairs what interrupted runs left behind.
    pub fn open(config: Config) -> Result<Self> {
        let catalog = SqliteCatalog::open(&config.catalog)?;
        let progress = CliProgress::new(config.quiet || config.json);
        let session = Session { config, catalog, progress };
        session.recover()?;
        Ok(session)
    }

    pub fn engine(&self) -> Engine<'_> {
        Engine::new(&self.catalog, LockDir::new(self.config.lock_dir()), &self.progress)
    }

    /// Opens the configured store; creates it first when `create` and the
    /// directory does not exist yet.
    pub fn store(&self, create: bool) -> Result<LocalStore> {
        open_store(&self.config.store, create)
    }

    fn recover(&self) -> Result<()> {
        let open = |label: &str| -> Option<Box<dyn Pool>> {
            LocalStore::open(Path::new(label)).ok().map(|s| Box::new(s) as Box<dyn Pool>)
        };
        for r in self.engine().recover_interrupted(&open)? {
            tracing::warn!("backup {} was {}: {}", r.backup, r.was, r.note);
            if !self.config.quiet {
                eprintln!("note: backup {} was {} by a process that died: {}", r.backup, r.was, r.note);
            }
        }
        Ok(())
    }
}

/// Opens the store at `path`, creating it when `create` and it is absent.
pub fn open_store(path: &Path, create: bool) -> Result<LocalStore> {
    if create && !path.exists() {
        return LocalStore::init(path, Default::default())
            .with_context(|| format!("cannot create the store at {}", path.display()));
    }
    Ok(LocalStore::open(path)?)
}
