//! The integrity check of an encrypted store that needs no key: every
//! pack's footer checksum over its stored bytes, and every sealed record
//! and object's trailing checksum. It finds damage (flipped bits,
//! truncation) but, without the key, not a well-formed forgery: the full
//! `verify` with the key authenticates every blob.

use super::config::Config;
use super::core::PACKS_DIR;
use super::error::{Result, StoreError};
use super::meta::{self, IMAGES_DIR};
use super::objects::OBJECTS_DIR;
use super::pack::{self, PACK_EXT};
use crate::crypto::envelope;
use serde::Serialize;
use std::path::Path;

/// A stored file whose checksum does not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedFile {
    pub path: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StoredCheck {
    pub packs: u64,
    pub records: u64,
    pub bytes: u64,
    pub damaged: Vec<DamagedFile>,
}

impl StoredCheck {
    pub fn is_ok(&self) -> bool {
        self.damaged.is_empty()
    }

    fn damaged(&mut self, path: &Path, error: impl Into<String>) {
        self.damaged.push(DamagedFile {
            path: path.display().to_string(),
            error: error.into(),
        });
    }
}

pub fn run(root: &Path) -> Result<StoredCheck> {
    let config = Config::load(root)?;
    if config.encryption.is_none() {
        return Err(StoreError::Invalid {
            what: format!("store {}", root.display()),
            why: "it is not encrypted: its check is `verify` (which needs no key there)".into(),
        });
    }
    let mut check = StoredCheck::default();
    for name in meta::list_dir(&root.join(PACKS_DIR))? {
        if !name.ends_with(&format!(".{PACK_EXT}")) {
            continue;
        }
        let path = root.join(PACKS_DIR).join(&name);
        check.packs += 1;
        match pack::check_stored(&path)? {
            Ok(len) => check.bytes += len,
            Err(why) => check.damaged(&path, why),
        }
    }
    for image in meta::list_images(root)? {
        let dir = root.join(IMAGES_DIR).join(&image);
        let snaps = dir.join(meta::SNAPS_DIR);
        let mut files = vec![dir.join(meta::HEAD_FILE), dir.join(meta::META_FILE)];
        for name in meta::list_dir(&snaps)? {
            if name.ends_with(".json") {
                files.push(snaps.join(name));
            }
        }
        check_records(&mut check, &files)?;
    }
    let objects = root.join(OBJECTS_DIR);
    let names = match objects.exists() {
        true => meta::list_dir(&objects)?,
        false => Vec::new(),
    };
    let files: Vec<_> = names.iter().map(|n| objects.join(n)).collect();
    check_records(&mut check, &files)?;
    Ok(check)
}

fn check_records(check: &mut StoredCheck, files: &[std::path::PathBuf]) -> Result<()> {
    for path in files {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io_path(path, e)),
        };
        check.records += 1;
        check.bytes += bytes.len() as u64;
        if !envelope::intact(&bytes) {
            check.damaged(path, "checksum mismatch: truncated, altered or not sealed");
        }
    }
    Ok(())
}
