//! The backup metadata object of the reference design: one write-once
//! object `backup.<backup_id>.meta` per backup in the backup pool, holding
//! the volume's metadata as JSON so a restore can bring it back:
//!
//! ```text
//! {"version": 2, "volume-base-metadata": {...}, "volume-metadata": {...},
//!  "volume-glance-metadata": {...}}
//! ```
//!
//! Operators' existing pools hold objects Cinder wrote, so both directions
//! follow Cinder: we write version 2 with Python's separators and key
//! order, leaving out empty sections as Cinder does; we read versions 1
//! and 2 (same layout; Cinder differs between them only in which fields it
//! restores) and refuse any other version. A missing section reads as
//! empty; unknown top-level keys are ignored, as Cinder does.

mod apply;

pub use apply::{apply_volume_metadata, AppliedMetadata};

use crate::image::{ImageError, Pool};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io;

/// The version this blockback writes.
pub const METADATA_VERSION: u32 = 2;

const BASE_KEY: &str = "volume-base-metadata";
const VOLUME_KEY: &str = "volume-metadata";
const GLANCE_KEY: &str = "volume-glance-metadata";

/// What one backup records about its volume.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupMetadata {
    /// The volume's own fields (Cinder: the `volumes` row), any JSON.
    pub volume_base: BTreeMap<String, Value>,
    /// User metadata of the volume (string key/value).
    pub volume: BTreeMap<String, String>,
    /// Image (glance) metadata of the volume (string key/value).
    pub glance: BTreeMap<String, String>,
}

/// Errors of reading and writing backup metadata; each names the object.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("backup metadata {object} has unsupported version {version}; upgrade blockback")]
    UnsupportedVersion { object: String, version: String },
    #[error("backup metadata {object} is invalid: {why}")]
    Invalid { object: String, why: String },
    #[error("backup metadata {object} already exists (it is written once per backup)")]
    Exists { object: String },
    #[error(transparent)]
    Pool(#[from] ImageError),
}

/// The name of backup `backup_id`'s metadata object: `backup.<id>.meta`.
pub fn meta_object_name(backup_id: &str) -> String {
    format!("backup.{backup_id}.meta")
}

/// The wire layout, fields in Cinder's order; like Cinder, a section is
/// only written when it has entries.
#[derive(Serialize)]
struct WireOut<'a> {
    version: u32,
    #[serde(rename = "volume-base-metadata", skip_serializing_if = "is_empty")]
    volume_base: &'a BTreeMap<String, Value>,
    #[serde(rename = "volume-metadata", skip_serializing_if = "is_empty")]
    volume: &'a BTreeMap<String, String>,
    #[serde(rename = "volume-glance-metadata", skip_serializing_if = "is_empty")]
    glance: &'a BTreeMap<String, String>,
}

fn is_empty<V>(map: &&BTreeMap<String, V>) -> bool {
    map.is_empty()
}

impl BackupMetadata {
    /// Version-2 JSON, as Cinder writes it: `{"version": 2, ...}` with the
    /// non-empty sections, Python's separators, non-ASCII as UTF-8.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireOut {
            version: METADATA_VERSION,
            volume_base: &self.volume_base,
            volume: &self.volume,
            glance: &self.glance,
        };
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
        // String-keyed maps of JSON values into memory: nothing can fail.
        wire.serialize(&mut ser)
            .expect("serialising string-keyed JSON maps into memory cannot fail");
        out
    }

    /// Parses version 1 or 2 JSON (errors say "backup metadata JSON").
    pub fn from_json(bytes: &[u8]) -> Result<Self, MetadataError> {
        parse(bytes, "JSON")
    }
}

/// Parses the content of `object`, naming it in every error.
fn parse(bytes: &[u8], object: &str) -> Result<BackupMetadata, MetadataError> {
    let invalid = |why: String| MetadataError::Invalid {
        object: object.to_string(),
        why,
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let Value::Object(mut top) = value else {
        return Err(invalid("the top level is not a JSON object".into()));
    };
    check_version(top.get("version"), object)?;
    Ok(BackupMetadata {
        volume_base: section(&mut top, BASE_KEY, object)?,
        volume: section(&mut top, VOLUME_KEY, object)?,
        glance: section(&mut top, GLANCE_KEY, object)?,
    })
}

/// Section `key` (absent: empty, as Cinder omits empty sections).
fn section<V: DeserializeOwned>(
    top: &mut Map<String, Value>,
    key: &str,
    object: &str,
) -> Result<BTreeMap<String, V>, MetadataError> {
    match top.remove(key) {
        None => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_value(v).map_err(|e| MetadataError::Invalid {
            object: object.into(),
            why: format!("section \"{key}\": {e}"),
        }),
    }
}

/// Versions 1 and 2 are read (Python compares numbers, so 2.0 is 2).
fn check_version(version: Option<&Value>, object: &str) -> Result<(), MetadataError> {
    let Some(version) = version else {
        return Err(MetadataError::Invalid {
            object: object.into(),
            why: "it has no \"version\"".into(),
        });
    };
    match version.as_f64() {
        Some(v) if v == 1.0 || v == 2.0 => Ok(()),
        _ => Err(MetadataError::UnsupportedVersion {
            object: object.into(),
            version: version.to_string(),
        }),
    }
}

/// Writes backup `backup_id`'s metadata object; `Exists` if it is there.
pub fn write_backup_metadata(
    pool: &dyn Pool,
    backup_id: &str,
    meta: &BackupMetadata,
) -> Result<(), MetadataError> {
    let object = meta_object_name(backup_id);
    pool.put_object(&object, &meta.to_json())
        .map_err(|e| match e {
            ImageError::Exists { .. } => MetadataError::Exists { object },
            e => MetadataError::Pool(e),
        })
}

/// Reads backup `backup_id`'s metadata; `None` when the object is missing.
pub fn read_backup_metadata(
    pool: &dyn Pool,
    backup_id: &str,
) -> Result<Option<BackupMetadata>, MetadataError> {
    let object = meta_object_name(backup_id);
    match pool.get_object(&object)? {
        Some(bytes) => parse(&bytes, &object).map(Some),
        None => Ok(None),
    }
}

/// Removes backup `backup_id`'s metadata object (missing is fine), as
/// Cinder does when it deletes a backup.
pub fn remove_backup_metadata(pool: &dyn Pool, backup_id: &str) -> Result<(), MetadataError> {
    Ok(pool.remove_object(&meta_object_name(backup_id))?)
}

/// `json.dumps` separators: `", "` between items and `": "` after keys.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests;
