//! Block digests kept beside the catalog for backups an incremental may
//! continue from.
//!
//! An incremental transfers only changed blocks, yet records the checksum
//! of the whole volume; it takes the unchanged blocks' digests from its
//! parent's file here. A file is `<dir>/<backup id>.digests`: the 8-byte
//! magic `BBDIGST1`, the volume size (u64 LE), then one 32-byte digest per
//! 32 KiB block. It is written to a temporary file, synced and renamed, and
//! it validates itself: it is used only when its digests make exactly the
//! checksum the catalog recorded for the backup. Files are kept for the
//! backups whose source snapshots are kept (the possible parents).

use super::error::{EngineError, EngineResult};
use crate::checksum::{block_count, BlockDigests};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use uuid::Uuid;

const MAGIC: &[u8; 8] = b"BBDIGST1";

/// The directory of digest files.
#[derive(Debug, Clone)]
pub struct DigestDir {
    dir: PathBuf,
}

impl DigestDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DigestDir { dir: dir.into() }
    }

    fn path_of(&self, backup: Uuid) -> PathBuf {
        self.dir.join(format!("{backup}.digests"))
    }

    fn io(&self, path: &Path, e: std::io::Error) -> EngineError {
        EngineError::Io {
            what: path.display().to_string(),
            source: e,
        }
    }

    /// Stores the digests of `backup` durably.
    pub fn save(&self, backup: Uuid, digests: &BlockDigests) -> EngineResult<()> {
        fs::create_dir_all(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        let path = self.path_of(backup);
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| self.io(&path, e))?;
        let mut out = std::io::BufWriter::new(tmp.as_file_mut());
        let write = |out: &mut std::io::BufWriter<&mut fs::File>| -> std::io::Result<()> {
            out.write_all(MAGIC)?;
            out.write_all(&digests.size().to_le_bytes())?;
            for d in digests.as_bytes() {
                out.write_all(d)?;
            }
            out.flush()
        };
        write(&mut out).map_err(|e| self.io(&path, e))?;
        drop(out);
        tmp.as_file().sync_all().map_err(|e| self.io(&path, e))?;
        tmp.persist(&path).map_err(|e| self.io(&path, e.error))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// The digests of `backup` when its file exists and makes `checksum`.
    pub fn load(&self, backup: Uuid, checksum: &str) -> Option<BlockDigests> {
        let path = self.path_of(backup);
        let mut bytes = Vec::new();
        fs::File::open(&path).ok()?.read_to_end(&mut bytes).ok()?;
        let digests = parse(&bytes)?;
        if digests.checksum() == checksum {
            Some(digests)
        } else {
            tracing::warn!("{} does not match backup {backup}; ignored", path.display());
            None
        }
    }

    /// Removes the digests of `backup` (a missing file is fine).
    pub fn remove(&self, backup: Uuid) -> EngineResult<()> {
        let path = self.path_of(backup);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io(&path, e)),
            _ => Ok(()),
        }
    }
}

fn parse(bytes: &[u8]) -> Option<BlockDigests> {
    let (magic, rest) = bytes.split_first_chunk::<8>()?;
    if magic != MAGIC {
        return None;
    }
    let (size, rest) = rest.split_first_chunk::<8>()?;
    let size = u64::from_le_bytes(*size);
    if rest.len() as u64 != block_count(size) as u64 * 32 {
        return None;
    }
    let digests = rest
        .chunks_exact(32)
        .map(|c| c.try_into().unwrap_or([0; 32]))
        .collect();
    BlockDigests::from_vec(size, digests)
}

/// Makes a rename in `dir` durable; best effort (some filesystems refuse).
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{block_digest, CHECKSUM_BLOCK};

    #[test]
    fn saved_digests_load_only_with_their_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let store = DigestDir::new(dir.path().join("d"));
        let id = Uuid::new_v4();
        let mut digests = BlockDigests::zeroed(3 * CHECKSUM_BLOCK + 5);
        digests.set(CHECKSUM_BLOCK, block_digest(b"x"));
        store.save(id, &digests).unwrap();
        assert_eq!(store.load(id, &digests.checksum()), Some(digests.clone()));
        assert_eq!(store.load(id, "blake3-32k:00"), None);
        store.remove(id).unwrap();
        store.remove(id).unwrap();
        assert_eq!(store.load(id, &digests.checksum()), None);
    }

    #[test]
    fn truncated_or_foreign_files_are_ignored() {
        let digests = BlockDigests::zeroed(2 * CHECKSUM_BLOCK);
        let dir = tempfile::tempdir().unwrap();
        let store = DigestDir::new(dir.path());
        let id = Uuid::new_v4();
        store.save(id, &digests).unwrap();
        let path = store.path_of(id);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(store.load(id, &digests.checksum()), None);
        fs::write(&path, b"garbage").unwrap();
        assert_eq!(store.load(id, &digests.checksum()), None);
    }
}
