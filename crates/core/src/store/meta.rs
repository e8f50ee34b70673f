//! Published metadata: one directory per image holding `head.json` and one
//! `snaps/<name>.json` per snapshot, each written atomically (temp file,
//! fsync, rename, directory fsync).
//!
//! ```text
//! <store>/images/<image>/head.json        {"size":..,"root":"<hex>"}
//! <store>/images/<image>/snaps/<s>.json   {"name":..,"size":..,"root":..,"created_ns":..}
//! <store>/images/<image>/meta.json        {"key":"value",...} (absent: none)
//! <store>/images/<image>/lock             flock: held exclusive by the writer
//! ```

use super::crypto::StoreCrypto;
use super::error::{Result, StoreError};
use super::id::ChunkId;
use super::pack::sync_dir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const IMAGES_DIR: &str = "images";
pub const HEAD_FILE: &str = "head.json";
pub const SNAPS_DIR: &str = "snaps";
pub const LOCK_FILE: &str = "lock";
pub const META_FILE: &str = "meta.json";
const MAX_NAME: usize = 200;

/// A published version of an image: its size and tree root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub size: u64,
    pub root: ChunkId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapRecord {
    pub name: String,
    pub size: u64,
    pub root: ChunkId,
    /// Creation time, ns since the epoch; strictly increasing per image so
    /// that listing order is creation order.
    pub created_ns: u64,
}

/// Image names: the reference names (`volume-<uuid>.backup.<uuid>`) and
/// anything else that is one safe path component.
pub fn check_image_name(name: &str) -> Result<()> {
    check_component(name, "image name")
}

/// Snapshot names: the characters rbd accepts, not starting with a dot.
pub fn check_snap_name(name: &str) -> Result<()> {
    check_component(name, "snapshot name")?;
    if !crate::naming::is_valid_snap_name(name) {
        return Err(invalid(
            name,
            "snapshot name",
            "use letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

fn check_component(name: &str, what: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(invalid(name, what, "must be 1 to 200 bytes"));
    }
    if name.starts_with('.') || name.contains('/') || name.contains('\0') {
        return Err(invalid(
            name,
            what,
            "must not contain '/' or start with '.'",
        ));
    }
    Ok(())
}

fn invalid(name: &str, what: &str, why: &str) -> StoreError {
    StoreError::Invalid {
        what: format!("{what} {name:?}"),
        why: why.into(),
    }
}

pub fn image_dir(root: &Path, image: &str) -> PathBuf {
    root.join(IMAGES_DIR).join(image)
}

fn snap_path(root: &Path, image: &str, snap: &str) -> PathBuf {
    image_dir(root, image)
        .join(SNAPS_DIR)
        .join(format!("{snap}.json"))
}

/// Writes `bytes` to `dir/name` atomically and durably.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".tmp-{}-{name}", uuid::Uuid::new_v4().simple()));
    let io = |e| StoreError::io_path(&tmp, e);
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, dir.join(name)).map_err(io)?;
    sync_dir(dir)
}

/// The image records of a store: JSON, sealed (crypto.rs) in an encrypted
/// store with the record's name as associated data, so that a record
/// copied over another (a HEAD onto another image, one snapshot's record
/// onto another's) does not open.
pub struct Records {
    root: PathBuf,
    crypto: Option<Arc<StoreCrypto>>,
}

impl Records {
    pub fn new(root: PathBuf, crypto: Option<Arc<StoreCrypto>>) -> Self {
        Records { root, crypto }
    }

    fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &Path,
        name: &str,
        what: &str,
    ) -> Result<T> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound { what: what.into() },
            _ => StoreError::io_path(path, e),
        })?;
        let shown = path.display().to_string();
        let bytes = match &self.crypto {
            Some(c) => c.open_record(name, &bytes, &shown)?,
            None => bytes,
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            what: shown,
            why: e.to_string(),
        })
    }

    fn to_bytes<T: Serialize>(&self, value: &T, name: &str) -> Result<Vec<u8>> {
        let json = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Invalid {
            what: "record".into(),
            why: e.to_string(),
        })?;
        match &self.crypto {
            Some(c) => c.seal_record(name, &json),
            None => Ok(json),
        }
    }

    pub fn read_head(&self, image: &str) -> Result<Version> {
        let path = image_dir(&self.root, image).join(HEAD_FILE);
        self.read_json(&path, &head_name(image), &format!("image {image}"))
    }

    pub fn write_head(&self, image: &str, v: &Version) -> Result<()> {
        let bytes = self.to_bytes(v, &head_name(image))?;
        write_atomic(&image_dir(&self.root, image), HEAD_FILE, &bytes)
    }

    /// The key/value metadata of `image` (empty when it has none).
    pub fn read_image_meta(&self, image: &str) -> Result<BTreeMap<String, String>> {
        let path = image_dir(&self.root, image).join(META_FILE);
        let name = format!("meta\0{image}");
        match self.read_json(&path, &name, &format!("metadata of image {image}")) {
            Err(StoreError::NotFound { .. }) => Ok(BTreeMap::new()),
            other => other,
        }
    }

    pub fn write_image_meta(&self, image: &str, meta: &BTreeMap<String, String>) -> Result<()> {
        let bytes = self.to_bytes(meta, &format!("meta\0{image}"))?;
        write_atomic(&image_dir(&self.root, image), META_FILE, &bytes)
    }

    pub fn read_snap(&self, image: &str, snap: &str) -> Result<SnapRecord> {
        check_snap_name(snap)?;
        let path = snap_path(&self.root, image, snap);
        let rec: SnapRecord = self.read_json(
            &path,
            &snap_name(image, snap),
            &format!("snapshot {image}@{snap}"),
        )?;
        self.check_snap_record(&rec, snap, &path)?;
        Ok(rec)
    }

    /// A record's own name must be its file's (sealed records are bound
    /// to it anyway; this catches a plain record copied under another name).
    fn check_snap_record(&self, rec: &SnapRecord, snap: &str, path: &Path) -> Result<()> {
        if rec.name == snap {
            return Ok(());
        }
        Err(StoreError::Corrupt {
            what: path.display().to_string(),
            why: format!("holds the record of snapshot {:?}", rec.name),
        })
    }

    pub fn write_snap(&self, image: &str, rec: &SnapRecord) -> Result<()> {
        let dir = image_dir(&self.root, image).join(SNAPS_DIR);
        let bytes = self.to_bytes(rec, &snap_name(image, &rec.name))?;
        write_atomic(&dir, &format!("{}.json", rec.name), &bytes)
    }

    /// The snapshots of `image`, oldest first.
    pub fn list_snaps(&self, image: &str) -> Result<Vec<SnapRecord>> {
        let dir = image_dir(&self.root, image).join(SNAPS_DIR);
        let mut snaps = Vec::new();
        for name in list_dir(&dir)? {
            if let Some(stem) = name.strip_suffix(".json") {
                let path = dir.join(&name);
                let rec: SnapRecord = self.read_json(&path, &snap_name(image, stem), stem)?;
                self.check_snap_record(&rec, stem, &path)?;
                snaps.push(rec);
            }
        }
        snaps.sort_by(|a, b| (a.created_ns, &a.name).cmp(&(b.created_ns, &b.name)));
        Ok(snaps)
    }

    /// Creates the image directory atomically: built under a temp name,
    /// then renamed into place (a crash leaves only a dot-named leftover).
    pub fn create_image(&self, image: &str, size: u64) -> Result<()> {
        let images = self.root.join(IMAGES_DIR);
        let final_dir = images.join(image);
        if final_dir.exists() {
            return Err(StoreError::Exists {
                what: format!("image {image}"),
            });
        }
        let tmp = images.join(format!(".new-{}", uuid::Uuid::new_v4().simple()));
        let io = |e| StoreError::io_path(&tmp, e);
        std::fs::create_dir_all(tmp.join(SNAPS_DIR)).map_err(io)?;
        let head = Version {
            size,
            root: ChunkId::NULL,
        };
        write_atomic(&tmp, HEAD_FILE, &self.to_bytes(&head, &head_name(image))?)?;
        std::fs::File::create(tmp.join(LOCK_FILE)).map_err(io)?;
        sync_dir(&tmp.join(SNAPS_DIR))?;
        // rename(2) onto an existing non-empty directory fails, so a racing
        // create of the same name cannot be overwritten.
        std::fs::rename(&tmp, &final_dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            match e.raw_os_error() {
                Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => StoreError::Exists {
                    what: format!("image {image}"),
                },
                _ => StoreError::io_path(&final_dir, e),
            }
        })?;
        sync_dir(&images)
    }
}

fn head_name(image: &str) -> String {
    format!("head\0{image}")
}

fn snap_name(image: &str, snap: &str) -> String {
    format!("snap\0{image}\0{snap}")
}

pub fn remove_snap(root: &Path, image: &str, snap: &str) -> Result<()> {
    check_snap_name(snap)?;
    let path = snap_path(root, image, snap);
    std::fs::remove_file(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFound {
            what: format!("snapshot {image}@{snap}"),
        },
        _ => StoreError::io_path(&path, e),
    })?;
    sync_dir(&image_dir(root, image).join(SNAPS_DIR))
}

/// The images of the store, sorted.
pub fn list_images(root: &Path) -> Result<Vec<String>> {
    let mut names = list_dir(&root.join(IMAGES_DIR))?;
    names.sort();
    Ok(names)
}

/// Entry names of `dir` that do not start with '.' (temp files).
pub fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| StoreError::io_path(dir, e))?;
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io_path(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes the image directory: renamed to a dot name first (atomic), then
/// deleted; gc removes leftovers of a crash in between.
pub fn remove_image_dir(root: &Path, image: &str) -> Result<()> {
    let images = root.join(IMAGES_DIR);
    let tmp = images.join(format!(".del-{}", uuid::Uuid::new_v4().simple()));
    std::fs::rename(images.join(image), &tmp).map_err(|e| StoreError::io_path(&tmp, e))?;
    sync_dir(&images)?;
    std::fs::remove_dir_all(&tmp).map_err(|e| StoreError::io_path(&tmp, e))
}

/// Removes dot-named leftovers (temp records, half-created or half-removed
/// images). Only safe while no other process writes to the store (gc).
pub fn remove_leftovers(root: &Path) -> Result<usize> {
    let images = root.join(IMAGES_DIR);
    let mut removed = remove_dot_entries(&images)?;
    for image in list_dir(&images)? {
        let dir = images.join(&image);
        removed += remove_dot_entries(&dir)?;
        removed += remove_dot_entries(&dir.join(SNAPS_DIR))?;
    }
    Ok(removed)
}

fn remove_dot_entries(dir: &Path) -> Result<usize> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io_path(dir, e)),
    };
    let mut removed = 0;
    for entry in rd.flatten() {
        if !entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed += usize::from(gone.is_ok());
    }
    Ok(removed)
}
