//! `backup list` and `backup show`.

use super::backup::summary_line;
use crate::endpoint::Volume;
use crate::output::emit;
use crate::session::Session;
use anyhow::Result;
use blockback_core::catalog::{resolve_backup, Catalog};

pub fn list(session: &Session, source: Option<&str>) -> Result<()> {
    let mut backups = session.catalog.list_backups(None)?;
    if let Some(source) = source {
        let volume = Volume::parse(source, session.config.volume_store.as_deref())?;
        let wanted = volume.label().unwrap_or_else(|_| source.to_string());
        backups.retain(|b| b.source == wanted);
    }
    emit(session.config.json, &backups, || {
        backups
            .iter()
            .map(summary_line)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

pub fn show(session: &Session, backup: &str) -> Result<()> {
    let record = resolve_backup(&session.catalog, backup)?;
    emit(session.config.json, &record, || {
        let value = serde_json::to_value(&record).unwrap_or_default();
        let Some(map) = value.as_object() else {
            return String::new();
        };
        map.iter()
            .map(|(k, v)| format!("{k:>14}: {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}
