//! Resolved configuration: where the store, catalog and locks live.

use crate::args::Cli;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Paths every command works with, resolved from flags, environment and defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub store: PathBuf,
    pub catalog: PathBuf,
    pub json: bool,
    pub quiet: bool,
}

impl Config {
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        let store = match &cli.store {
            Some(p) => absolute(p)?,
            None => data_dir()?.join("store"),
        };
        let catalog = match &cli.catalog {
            Some(p) => absolute(p)?,
            None => data_dir()?.join("catalog.sqlite"),
        };
        Ok(Config { store, catalog, json: cli.json, quiet: cli.quiet })
    }

    /// Volume lock files live beside the catalog they protect.
    pub fn lock_dir(&self) -> PathBuf {
        self.catalog.with_extension("locks")
    }

    /// The store as recorded in the catalog.
    pub fn store_label(&self) -> String {
        self.store.display().to_string()
    }
}

/// `$XDG_DATA_HOME/blockback`, or `~/.local/share/blockback`.
fn data_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("blockback"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/blockback")),
        None => bail!("neither XDG_DATA_HOME nor HOME is set; pass --store and --catalog"),
    }
}

/// Makes `path` absolute without requiring it to exist.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve path {}", path.display()))
}
