//! Named write-once objects of the local store: one file per object under
//! `<store>/objects/` (created on first put), beside the images.
//!
//! Objects are not chunks: no dedup, no packs, and gc never removes them
//! (it only removes dot-named temp files of interrupted puts, under its
//! exclusive lock; a put holds the store lock shared while its temp file
//! exists).

use super::error::{Result, StoreError};
use super::lock;
use super::pack::sync_dir;
use crate::objects::MAX_OBJECT_SIZE;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

pub const OBJECTS_DIR: &str = "objects";

fn object_path(root: &Path, name: &str) -> PathBuf {
    root.join(OBJECTS_DIR).join(name)
}

/// Writes object `name` unless it exists (`Exists`): the data goes to a
/// durable temp file first, which is then hard-linked to the final name
/// (link(2) fails if the name is taken, so a racing put cannot overwrite
/// it and readers never see a partial object).
pub fn put(root: &Path, name: &str, data: &[u8]) -> Result<()> {
    // gc removes dot-named leftovers: keep it out while our temp file exists.
    let _gc = lock::store_shared(root)?;
    let dir = ensure_dir(root)?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let linked = write_durably(&tmp, data).and_then(|()| link_new(&tmp, &dir.join(name), name));
    if let Err(e) = std::fs::remove_file(&tmp) {
        // The object (if linked) is complete; a stray temp file is gc's.
        if e.kind() != ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {e}", tmp.display());
        }
    }
    linked?;
    sync_dir(&dir)
}

/// The objects directory, created (durably) when missing.
fn ensure_dir(root: &Path) -> Result<PathBuf> {
    let dir = root.join(OBJECTS_DIR);
    match std::fs::create_dir(&dir) {
        Ok(()) => sync_dir(root)?,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(StoreError::io_path(&dir, e)),
    }
    Ok(dir)
}

fn write_durably(path: &Path, data: &[u8]) -> Result<()> {
    let io = |e| StoreError::io_path(path, e);
    let mut f = File::create_new(path).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)
}

fn link_new(tmp: &Path, dest: &Path, name: &str) -> Result<()> {
    std::fs::hard_link(tmp, dest).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => StoreError::Exists {
            what: format!("object {name}"),
        },
        _ => StoreError::io_path(dest, e),
    })
}

/// The content of object `name`, `None` when missing; an object larger
/// than [`MAX_OBJECT_SIZE`] is refused before it is read.
pub fn get(root: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let path = object_path(root, name);
    let io = |e| StoreError::io_path(&path, e);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().map_err(io)?.len();
    check_size(len)?;
    let mut data = Vec::with_capacity(len as usize);
    // take(): the file cannot grow past the cap between stat and read.
    file.take(MAX_OBJECT_SIZE + SEAL_SLACK + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    check_size(data.len() as u64)?;
    Ok(Some(data))
}

/// Bytes an object may have on disk beyond [`MAX_OBJECT_SIZE`]: the seal
/// of an encrypted store's objects (crypto.rs).
const SEAL_SLACK: u64 = 256;

fn check_size(len: u64) -> Result<()> {
    if len <= MAX_OBJECT_SIZE + SEAL_SLACK {
        return Ok(());
    }
    Err(StoreError::Invalid {
        what: "object".into(),
        why: format!("{len} bytes is more than the object size limit of {MAX_OBJECT_SIZE}"),
    })
}

/// Removes object `name`; missing (or no objects directory) is fine.
pub fn remove(root: &Path, name: &str) -> Result<()> {
    let path = object_path(root, name);
    match std::fs::remove_file(&path) {
        Ok(()) => sync_dir(&root.join(OBJECTS_DIR)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io_path(&path, e)),
    }
}

/// Removes temp files of interrupted puts. Only safe under gc's exclusive
/// store lock (a put holds it shared while its temp file exists).
pub fn remove_leftovers(root: &Path) -> Result<usize> {
    let dir = root.join(OBJECTS_DIR);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io_path(&dir, e)),
    };
    let mut removed = 0;
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io_path(&dir, e))?;
        let is_temp = entry.file_name().to_string_lossy().starts_with(".tmp-");
        if is_temp && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{ImageError, Pool};
    use crate::progress::NoProgress;
    use crate::store::{InitOptions, LocalStore};
    use tempfile::TempDir;

    fn store() -> (TempDir, LocalStore) {
        let dir = TempDir::new().unwrap();
        let store = LocalStore::init(dir.path(), InitOptions::default()).unwrap();
        (dir, store)
    }

    #[test]
    fn a_store_without_objects_dir_reads_none_and_removes_ok() {
        let (dir, store) = store();
        assert!(!dir.path().join(OBJECTS_DIR).exists());
        assert_eq!(store.get_object("backup.a.meta").unwrap(), None);
        store.remove_object("backup.a.meta").unwrap();
        store.put_object("backup.a.meta", b"{}").unwrap();
        assert!(dir.path().join(OBJECTS_DIR).join("backup.a.meta").is_file());
    }

    #[test]
    fn objects_survive_reopen_and_gc_and_are_not_images() {
        let (dir, store) = store();
        store.put_object("backup.a.meta", b"meta").unwrap();
        store.create("img", 1 << 20).unwrap();
        // A temp file of a put killed before its link.
        let leftover = dir.path().join(OBJECTS_DIR).join(".tmp-deadbeef");
        std::fs::write(&leftover, b"partial").unwrap();
        let stats = store.gc(&NoProgress).unwrap();
        assert!(stats.leftovers_removed >= 1);
        assert!(!leftover.exists());
        let reopened = LocalStore::open(dir.path()).unwrap();
        assert_eq!(reopened.list().unwrap(), vec!["img".to_string()]);
        let got = reopened.get_object("backup.a.meta").unwrap();
        assert_eq!(got.as_deref(), Some(&b"meta"[..]));
    }

    #[test]
    fn a_refused_put_leaves_no_temp_file() {
        let (dir, store) = store();
        store.put_object("o", b"1").unwrap();
        let err = store.put_object("o", b"2").unwrap_err();
        assert!(matches!(err, ImageError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("\"o\""), "{err}");
        let names: Vec<_> = std::fs::read_dir(dir.path().join(OBJECTS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("o")]);
    }

    #[test]
    fn an_oversized_object_on_disk_is_refused_not_read() {
        let (dir, store) = store();
        store.put_object("big", b"").unwrap();
        let path = dir.path().join(OBJECTS_DIR).join("big");
        // Sparse: costs no disk space, would cost 16 MiB + 1 of memory.
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(MAX_OBJECT_SIZE + SEAL_SLACK + 1)
            .unwrap();
        let err = store.get_object("big").unwrap_err();
        assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("\"big\""), "{err}");
    }

    #[test]
    fn concurrent_puts_of_one_name_have_one_winner() {
        let (_dir, store) = store();
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u8)
                .map(|i| {
                    let store = &store;
                    s.spawn(move || store.put_object("race", &[i; 1000]).map(|()| i))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<u8> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, ImageError::Exists { .. }), "{e}");
            }
        }
        let got = store.get_object("race").unwrap().unwrap();
        assert_eq!(got, vec![winners[0]; 1000]);
    }
}
