//! What every command opens: the catalog, progress, cluster connections;
//! the operations themselves are `blockback_ops::Ops`.

use crate::config::Config;
use crate::progress::CliProgress;
use anyhow::Result;
use blockback_core::catalog::Catalog;
use blockback_ops::{Connections, Ops};

pub struct Session {
    pub config: Config,
    pub catalog: Box<dyn Catalog>,
    pub progress: CliProgress,
    pub connections: Connections,
}

impl Session {
    /// Opens the catalog and repairs what interrupted runs left behind.
    pub fn open(config: Config) -> Result<Self> {
        let catalog = config.settings.catalog.open()?;
        let progress = CliProgress::new(config.quiet || config.json);
        let connections = Connections::with_queue_depth(config.rbd_queue_depth);
        let session = Session {
            config,
            catalog,
            progress,
            connections,
        };
        session.recover()?;
        Ok(session)
    }

    /// The operations, on this command's settings, catalog and connections.
    pub fn ops(&self) -> Ops<'_> {
        Ops {
            settings: &self.config.settings,
            catalog: self.catalog.as_ref(),
            connections: &self.connections,
            progress: &self.progress,
            buffers: None,
        }
    }

    fn recover(&self) -> Result<()> {
        for r in self.ops().recover()? {
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
