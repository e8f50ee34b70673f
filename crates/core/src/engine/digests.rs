//! Block digests kept beside the catalog for backups an incremental may
//! continue from.
//!
//! An incremental transfers only changed blocks, yet records the checksum
//! of the whole volume; it takes the unchanged blocks' digests from its
//! parent's file here. A file is `<dir>/<backup id>.digests`: the 8-byte
//! magic `BBDIGST1`, the volume size (u64 LE), then one 32-byte digest per
//! 32 KiB block. Files are streamed, never held in memory: a full backup
//! writes its digests as the transfer produces them (in volume order), an
//! incremental merges its parent's file with its own changes. A file is
//! written to a temporary file, synced and renamed, and it validates
//! itself: it is used only when its digests make exactly the checksum the
//! catalog recorded. Files are kept for the backups whose source snapshots
//! are kept (the possible parents).

use super::error::{EngineError, EngineResult};
use super::unchanged::TargetDigests;
use crate::checksum::{block_count, zero_block_digest, VolumeChecksum, CHECKSUM_BLOCK};
use crate::image::ImageError;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;
use uuid::Uuid;

const MAGIC: &[u8; 8] = b"BBDIGST1";

/// The directory of digest files.
#[derive(Debug, Clone)]
pub struct DigestDir {
    dir: PathBuf,
}

/// A new backup's block digests as its transfer leaves them.
pub enum NewDigests {
    /// Written while transferring; [`DigestDir::commit`] makes them the
    /// backup's file.
    Written(DigestWriter),
    /// The parent's (a source unchanged since it): its file linked by
    /// [`DigestDir::link`], its segments in the store shared (the record
    /// names their owner: [`super::digest_objects::DIGESTS_IN`]).
    Shared,
}

/// A digest file being written; [`DigestDir::commit`] publishes it.
pub struct DigestWriter {
    out: BufWriter<NamedTempFile>,
    size: u64,
    written: usize,
}

impl DigestWriter {
    /// Appends the digest of the next block.
    pub fn push(&mut self, digest: &[u8; 32]) -> std::io::Result<()> {
        self.written += 1;
        self.out.write_all(digest)
    }
}

impl DigestDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DigestDir { dir: dir.into() }
    }

    /// Where `backup`'s file is (or would be).
    pub fn path(&self, backup: Uuid) -> PathBuf {
        self.path_of(backup)
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

    /// Starts the digest file of a volume of `size` bytes.
    pub fn writer(&self, size: u64) -> EngineResult<DigestWriter> {
        fs::create_dir_all(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        let tmp = NamedTempFile::new_in(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        let mut out = BufWriter::new(tmp);
        let header = |out: &mut BufWriter<NamedTempFile>| {
            out.write_all(MAGIC)?;
            out.write_all(&size.to_le_bytes())
        };
        header(&mut out).map_err(|e| self.io(&self.dir, e))?;
        Ok(DigestWriter {
            out,
            size,
            written: 0,
        })
    }

    /// Publishes a complete digest file as `backup`'s, durably.
    pub fn commit(&self, backup: Uuid, writer: DigestWriter) -> EngineResult<()> {
        let path = self.path_of(backup);
        if writer.written != block_count(writer.size) {
            return Err(EngineError::Invalid(format!(
                "{}: {} block digests for a volume of {} blocks",
                path.display(),
                writer.written,
                block_count(writer.size)
            )));
        }
        let tmp = writer
            .out
            .into_inner()
            .map_err(|e| self.io(&path, e.into_error()))?;
        tmp.as_file().sync_all().map_err(|e| self.io(&path, e))?;
        tmp.persist(&path).map_err(|e| self.io(&path, e.error))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// Makes `parent`'s file `backup`'s too, for a volume unchanged since
    /// `parent`: a hard link, so the cost does not grow with the volume
    /// (files are never written in place, only replaced, so sharing the
    /// inode is safe); a copy where the file system has no hard links.
    /// Nothing is read: the link makes the same claim as the parent's file
    /// (the same checksum), and a reader checks it.
    pub fn link(&self, parent: Uuid, backup: Uuid) -> EngineResult<()> {
        let from = self.path_of(parent);
        let path = self.path_of(backup);
        // Linked beside its final name, then renamed over it: a file of
        // `backup` left by an earlier attempt is replaced whole.
        let staged = self.dir.join(format!(".{backup}.linking"));
        let _ = fs::remove_file(&staged);
        if let Err(e) = fs::hard_link(&from, &staged) {
            tracing::debug!("cannot link {}: {e}; copying", from.display());
            copy_durably(&from, &staged).map_err(|e| self.io(&from, e))?;
        }
        fs::rename(&staged, &path).map_err(|e| {
            let _ = fs::remove_file(&staged);
            self.io(&path, e)
        })?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// Whether `backup`'s file is here with the length of a volume of
    /// `size` bytes: nothing read, so nothing verified (a reader checks
    /// the content: [`Self::valid`], [`Self::derive`]).
    pub fn present(&self, backup: Uuid, size: u64) -> bool {
        fs::metadata(self.path_of(backup)).is_ok_and(|m| m.len() == file_len(size))
    }

    /// Whether `backup`'s file exists and makes `checksum`.
    pub fn valid(&self, backup: Uuid, checksum: &str) -> bool {
        let made = stream_file(&self.path_of(backup), |_| Ok(()));
        match made {
            Some((_, sum)) if sum == checksum => true,
            Some(_) => {
                tracing::warn!(
                    "{} does not match backup {backup}; ignored",
                    self.path_of(backup).display()
                );
                false
            }
            None => false,
        }
    }

    /// Opens `backup`'s file as it is stored (to publish it elsewhere).
    pub(super) fn open_file(&self, backup: Uuid) -> EngineResult<File> {
        let path = self.path_of(backup);
        File::open(&path).map_err(|e| self.io(&path, e))
    }

    /// Stores `bytes` (a digest file's content, in pieces, from elsewhere)
    /// as `backup`'s file, durably, only when they make `checksum`: a wrong
    /// or damaged copy is an error and leaves nothing behind.
    pub(super) fn import(
        &self,
        backup: Uuid,
        checksum: &str,
        bytes: impl IntoIterator<Item = EngineResult<Vec<u8>>>,
    ) -> EngineResult<()> {
        let path = self.path_of(backup);
        fs::create_dir_all(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        let tmp = NamedTempFile::new_in(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        let mut out = BufWriter::new(tmp);
        for piece in bytes {
            out.write_all(&piece?).map_err(|e| self.io(&path, e))?;
        }
        let tmp = out
            .into_inner()
            .map_err(|e| self.io(&path, e.into_error()))?;
        tmp.as_file().sync_all().map_err(|e| self.io(&path, e))?;
        let made = stream_file(tmp.path(), |_| Ok(())).map(|(_, sum)| sum);
        if made.as_deref() != Some(checksum) {
            let why = format!("they do not make its recorded checksum {checksum}");
            return Err(EngineError::Invalid(format!(
                "the block digests of backup {backup}: {why}"
            )));
        }
        tmp.persist(&path).map_err(|e| self.io(&path, e.error))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// Writes the digests of a volume of `size` bytes that is `parent`'s
    /// volume with `changes` (block offset and digest, ascending) applied;
    /// returns the writer and the checksum. Blocks beyond the parent's end
    /// read as zeros unless changed; the caller changes the block holding
    /// the old end when the size moved inside a block. The parent's file,
    /// read whole on the way, must make `parent_checksum`.
    pub fn derive(
        &self,
        parent: Uuid,
        parent_checksum: &str,
        size: u64,
        changes: &[(u64, [u8; 32])],
    ) -> EngineResult<(DigestWriter, String)> {
        let mut writer = self.writer(size)?;
        let mut sum = VolumeChecksum::new(size);
        let mut merge = Merge::new(size, changes);
        let parent_path = self.path_of(parent);
        let mut failure = None;
        let streamed = stream_file(&parent_path, |old| {
            if let Some(d) = merge.next(Some(old)) {
                sum.push(&d);
                writer.push(&d).inspect_err(|e| failure = Some(e.kind()))?;
            }
            Ok(())
        });
        let Some((_, parent_sum)) = streamed.filter(|_| failure.is_none()) else {
            return Err(EngineError::Invalid(format!(
                "{}: the parent's block digests could not be read or written",
                parent_path.display()
            )));
        };
        if parent_sum != parent_checksum {
            return Err(EngineError::Invalid(format!(
                "{}: the block digests of backup {parent} do not make its recorded checksum",
                parent_path.display()
            )));
        }
        while let Some(d) = merge.next(None) {
            sum.push(&d);
            writer.push(&d).map_err(|e| self.io(&parent_path, e))?;
        }
        let checksum = sum.finish().ok_or_else(|| {
            EngineError::Invalid(format!("{}: incomplete digests", parent_path.display()))
        })?;
        Ok((writer, checksum))
    }

    /// Opens `backup`'s file for looking up blocks of the volume it becomes
    /// at `new_size` bytes (the caller checks it with [`Self::valid`], or
    /// with [`Self::derive`] before anything it decided is published).
    pub fn reader(&self, backup: Uuid, new_size: u64) -> EngineResult<DigestReader> {
        let path = self.path_of(backup);
        let file = File::open(&path).map_err(|e| self.io(&path, e))?;
        let mut header = [0u8; 16];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| self.io(&path, e))?;
        if &header[..8] != MAGIC {
            return Err(EngineError::Invalid(format!(
                "{}: not a digest file",
                path.display()
            )));
        }
        let size = u64::from_le_bytes(header[8..].try_into().unwrap_or_default());
        Ok(DigestReader {
            file,
            path,
            size,
            new_size,
        })
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

/// Random access to one backup's block digests: what a chain's base HEAD
/// holds before an incremental writes into it (resized to `new_size`).
pub struct DigestReader {
    file: File,
    path: PathBuf,
    /// The volume size the digests describe.
    size: u64,
    new_size: u64,
}

/// The digests as the volume of `new_size` bytes hashes its blocks: `None`
/// where unknown (a block the old end cuts: its old digest covered fewer
/// bytes). Blocks wholly beyond the old end read as zeros (a grown image).
impl TargetDigests for DigestReader {
    fn blocks(&self, first: u64, count: usize) -> crate::image::Result<Vec<Option<[u8; 32]>>> {
        let new_size = self.new_size;
        let stored = (block_count(self.size) as u64)
            .saturating_sub(first)
            .min(count as u64);
        let mut raw = vec![0u8; stored as usize * 32];
        self.file
            .read_exact_at(&mut raw, 16 + first * 32)
            .map_err(|e| ImageError::from_io(self.path.display().to_string(), e))?;
        Ok((0..count as u64)
            .map(|i| {
                let start = (first + i) * CHECKSUM_BLOCK;
                let new_len = (start + CHECKSUM_BLOCK).min(new_size).saturating_sub(start);
                let old_len = (start + CHECKSUM_BLOCK)
                    .min(self.size)
                    .saturating_sub(start);
                if start >= self.size {
                    Some(zero_block_digest(new_len))
                } else if old_len == new_len {
                    let at = i as usize * 32;
                    raw[at..at + 32].try_into().ok()
                } else {
                    None
                }
            })
            .collect())
    }
}

/// Walks the blocks of the new volume: a change where there is one, else
/// the parent's digest, else (beyond the parent) a hole's.
struct Merge<'c> {
    size: u64,
    block: u64,
    blocks: u64,
    changes: std::iter::Peekable<std::slice::Iter<'c, (u64, [u8; 32])>>,
}

impl<'c> Merge<'c> {
    fn new(size: u64, changes: &'c [(u64, [u8; 32])]) -> Self {
        Merge {
            size,
            block: 0,
            blocks: block_count(size) as u64,
            changes: changes.iter().peekable(),
        }
    }

    /// The next block's digest; `old` is the parent's for it, if it had one.
    fn next(&mut self, old: Option<&[u8; 32]>) -> Option<[u8; 32]> {
        if self.block >= self.blocks {
            return None;
        }
        let offset = self.block * CHECKSUM_BLOCK;
        self.block += 1;
        while self.changes.next_if(|c| c.0 < offset).is_some() {}
        if let Some(c) = self.changes.next_if(|c| c.0 == offset) {
            return Some(c.1);
        }
        Some(match old {
            Some(d) => *d,
            None => zero_block_digest(CHECKSUM_BLOCK.min(self.size - offset)),
        })
    }
}

/// Reads the digest file at `path` through `each` (block digests in
/// order); returns its volume size and the checksum its digests make, or
/// `None` when it is missing or malformed.
fn stream_file(
    path: &Path,
    mut each: impl FnMut(&[u8; 32]) -> std::io::Result<()>,
) -> Option<(u64, String)> {
    let mut r = File::open(path).ok()?;
    let mut header = [0u8; 16];
    r.read_exact(&mut header).ok()?;
    if &header[..8] != MAGIC {
        return None;
    }
    let size = u64::from_le_bytes(header[8..].try_into().ok()?);
    let mut sum = VolumeChecksum::new(size);
    // Read and hashed a piece at a time: digest by digest, hashing a GiB
    // of them (a TiB volume's) took seconds.
    let mut piece = vec![0u8; STREAM_PIECE];
    let mut left = 32 * block_count(size) as u64;
    while left > 0 {
        let bytes = &mut piece[..left.min(STREAM_PIECE as u64) as usize];
        r.read_exact(bytes).ok()?;
        sum.push_digests(bytes);
        for digest in bytes.chunks_exact(32) {
            each(digest.try_into().ok()?).ok()?;
        }
        left -= bytes.len() as u64;
    }
    if r.read(&mut [0u8; 1]).ok()? != 0 {
        return None;
    }
    Some((size, sum.finish()?))
}

/// Bytes of a digest file read at a time (a multiple of 32).
const STREAM_PIECE: usize = 1 << 20;

/// The length of the digest file of a volume of `size` bytes.
pub(super) fn file_len(size: u64) -> u64 {
    16 + 32 * block_count(size) as u64
}

/// Copies `from` to the new file `to` and syncs it.
fn copy_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::copy(from, to)?;
    File::open(to)?.sync_all()
}

/// Makes a rename in `dir` durable; best effort (some filesystems refuse).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{block_digest, checksum_of};

    fn write_all(dir: &DigestDir, id: Uuid, data: &[u8]) -> String {
        let mut w = dir.writer(data.len() as u64).unwrap();
        for block in data.chunks(CHECKSUM_BLOCK as usize) {
            w.push(&block_digest(block)).unwrap();
        }
        dir.commit(id, w).unwrap();
        checksum_of(data)
    }

    /// The changes that turn a parent into `data`: every block that differs
    /// or is new, and the block holding the old end.
    fn changes(old: &[u8], data: &[u8]) -> Vec<(u64, [u8; 32])> {
        let b = CHECKSUM_BLOCK as usize;
        let edge = old.len().min(data.len()) / b;
        data.chunks(b)
            .enumerate()
            .filter(|(i, c)| match old.get(i * b..i * b + c.len()) {
                _ if *i == edge => true,
                Some(before) => before != *c,
                None => c.iter().any(|&x| x != 0),
            })
            .map(|(i, c)| ((i * b) as u64, block_digest(c)))
            .collect()
    }

    #[test]
    fn committed_digests_are_valid_only_with_their_checksum() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DigestDir::new(tmp.path().join("d"));
        let id = Uuid::new_v4();
        let sum = write_all(&dir, id, &vec![7u8; 3 * CHECKSUM_BLOCK as usize + 5]);
        assert!(dir.valid(id, &sum));
        assert!(!dir.valid(id, "blake3-32k:00"));
        dir.remove(id).unwrap();
        dir.remove(id).unwrap();
        assert!(!dir.valid(id, &sum));
    }

    #[test]
    fn a_linked_file_outlives_its_parent_and_replaces_a_stale_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DigestDir::new(tmp.path());
        let (parent, child) = (Uuid::new_v4(), Uuid::new_v4());
        let sum = write_all(&dir, parent, &vec![3u8; 2 * CHECKSUM_BLOCK as usize + 9]);
        fs::write(dir.path_of(child), b"stale").unwrap();
        dir.link(parent, child).unwrap();
        assert!(dir.valid(child, &sum));
        dir.remove(parent).unwrap();
        assert!(dir.valid(child, &sum));
        assert!(dir.link(parent, Uuid::new_v4()).is_err());
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn an_incomplete_writer_is_not_committed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DigestDir::new(tmp.path());
        let w = dir.writer(2 * CHECKSUM_BLOCK).unwrap();
        assert!(dir.commit(Uuid::new_v4(), w).is_err());
    }

    #[test]
    fn truncated_or_foreign_files_are_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DigestDir::new(tmp.path());
        let id = Uuid::new_v4();
        let sum = write_all(&dir, id, &vec![1u8; 2 * CHECKSUM_BLOCK as usize]);
        let path = dir.path_of(id);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(!dir.valid(id, &sum));
        fs::write(&path, [&bytes[..], b"x"].concat()).unwrap();
        assert!(!dir.valid(id, &sum));
        fs::write(&path, b"garbage").unwrap();
        assert!(!dir.valid(id, &sum));
    }

    #[test]
    fn derived_digests_make_the_new_volume_checksum() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DigestDir::new(tmp.path());
        let b = CHECKSUM_BLOCK as usize;
        let parent = Uuid::new_v4();
        let old: Vec<u8> = (0..5 * b + 100).map(|i| (i % 251) as u8).collect();
        write_all(&dir, parent, &old);
        let mut cases = Vec::new();
        let mut changed = old.clone();
        changed[2 * b + 3] ^= 0xff;
        cases.push(changed);
        let mut grown = old.clone();
        grown.resize(9 * b + 7, 0);
        grown[8 * b] = 1;
        cases.push(grown);
        let mut shrunk = old.clone();
        shrunk.truncate(3 * b + 10);
        cases.push(shrunk);
        let parent_sum = checksum_of(&old);
        for data in &cases {
            let (w, sum) = dir
                .derive(parent, &parent_sum, data.len() as u64, &changes(&old, data))
                .unwrap();
            assert_eq!(sum, checksum_of(data), "size {}", data.len());
            let child = Uuid::new_v4();
            dir.commit(child, w).unwrap();
            assert!(dir.valid(child, &sum));
        }
        // The parent's file is read whole on the way: one that does not
        // make the parent's checksum is refused, though its length is right.
        assert!(dir.present(parent, old.len() as u64));
        let wrong = checksum_of(&cases[0]);
        let e = dir
            .derive(parent, &wrong, old.len() as u64, &changes(&old, &cases[0]))
            .err()
            .expect("derived from digests that do not make the checksum");
        assert!(e.to_string().contains("recorded checksum"), "{e}");
        assert!(!dir.present(parent, old.len() as u64 + CHECKSUM_BLOCK));
        assert!(!dir.present(Uuid::new_v4(), old.len() as u64));
    }
}
