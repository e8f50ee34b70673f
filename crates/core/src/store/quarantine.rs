//! Quarantine marks: where a blob was found damaged.
//!
//! `<store>/packs/<pack>.bad` lists, one `<hex id>\n` line each, the blobs
//! of `<pack>.pack` whose stored copy failed its check. The map never
//! points at a marked copy, so the next write of that content stores a new
//! one (healing every version that uses the id), and reads look for another
//! copy instead of failing on the same bytes again.
//!
//! Crash safety: a mark is a hint that never hides good data a reader could
//! use (the marked copy failed its check), so losing one is harmless (the
//! damage is found again on the next read) and a torn last line is skipped.
//! Each mark is one `O_APPEND` write followed by fsync; a new file also
//! fsyncs the directory. gc deletes the file with its pack.

use super::error::{Result, StoreError};
use super::id::ChunkId;
use super::pack;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const BAD_EXT: &str = "bad";

fn path_of(dir: &Path, pack: &str) -> PathBuf {
    dir.join(format!("{pack}.{BAD_EXT}"))
}

/// Every mark in `dir`, by pack name.
pub fn load(dir: &Path) -> Result<HashMap<String, HashSet<ChunkId>>> {
    let mut out: HashMap<String, HashSet<ChunkId>> = HashMap::new();
    let rd = std::fs::read_dir(dir).map_err(|e| StoreError::io_path(dir, e))?;
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pack) = name.strip_suffix(&format!(".{BAD_EXT}")) else {
            continue;
        };
        let text = match std::fs::read_to_string(entry.path()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io_path(&entry.path(), e)),
        };
        let ids = text
            .lines()
            .filter_map(|l| ChunkId::from_hex(l.trim()))
            .collect::<HashSet<_>>();
        out.entry(pack.to_string()).or_default().extend(ids);
    }
    Ok(out)
}

/// Records durably that blob `id` of `pack` is damaged.
pub fn mark(dir: &Path, pack: &str, id: &ChunkId) -> Result<()> {
    let path = path_of(dir, pack);
    let existed = path.exists();
    let io = |e| StoreError::io_path(&path, e);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(io)?;
    // One write: concurrent markers never interleave within a line. The
    // leading newline ends a line torn by a crash, so this one stays whole.
    file.write_all(format!("\n{}\n", id.to_hex()).as_bytes())
        .map_err(io)?;
    file.sync_all().map_err(io)?;
    if !existed {
        pack::sync_dir(dir)?;
    }
    Ok(())
}

/// Removes the marks of a pack that gc deleted.
pub fn remove(dir: &Path, pack: &str) -> Result<()> {
    let path = path_of(dir, pack);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io_path(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_reload_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (ChunkId([1; 32]), ChunkId([2; 32]));
        mark(dir.path(), "p1", &a).unwrap();
        mark(dir.path(), "p1", &b).unwrap();
        mark(dir.path(), "p2", &a).unwrap();
        // A crash in the middle of an append leaves half a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("p2.bad"))
            .unwrap();
        f.write_all(&b.to_hex().as_bytes()[..20]).unwrap();
        assert_eq!(load(dir.path()).unwrap()["p2"], [a].into_iter().collect());
        let c = ChunkId([3; 32]);
        mark(dir.path(), "p2", &c).unwrap();
        let marks = load(dir.path()).unwrap();
        assert_eq!(marks["p1"], [a, b].into_iter().collect());
        assert_eq!(marks["p2"], [a, c].into_iter().collect());
        remove(dir.path(), "p1").unwrap();
        remove(dir.path(), "p1").unwrap();
        assert!(!load(dir.path()).unwrap().contains_key("p1"));
    }
}
