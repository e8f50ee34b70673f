//! Raw image files and block devices as [`Image`]s.
//!
//! All I/O is positional (`pread`/`pwrite`), so one handle serves several
//! threads without locking. Regular files are treated as sparse: holes are
//! skipped by `changed_extents(None, ..)` (SEEK_DATA/SEEK_HOLE) and
//! `write_zeroes` punches holes. Block devices report their whole range as
//! data and zero with BLKZEROOUT. Neither has snapshots.

use super::{check_range, Extent, ExtentVisitor, Image, ImageError, Result, Snapshots};
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Zeros are written in pieces of this size when no faster way exists.
const ZERO_BUF: usize = 1 << 20;

/// `_IO(0x12, 127)` from `<linux/fs.h>`; not exported by the libc crate.
const BLKZEROOUT: u64 = 0x127f;

/// Block devices address 512-byte sectors; BLKZEROOUT needs that alignment.
const SECTOR: u64 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    BlockDevice,
}

/// A raw image file or block device.
#[derive(Debug)]
pub struct FileImage {
    file: File,
    path: PathBuf,
    kind: Kind,
    writable: bool,
}

impl FileImage {
    /// Opens an existing file or block device, read-write when `writable`.
    pub fn open(path: impl AsRef<Path>, writable: bool) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        // Checked before opening too: opening a FIFO would block.
        let meta = std::fs::metadata(&path).map_err(|e| io_error(&path, e))?;
        kind_of(&path, &meta)?;
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        let meta = file.metadata().map_err(|e| io_error(&path, e))?;
        let kind = kind_of(&path, &meta)?;
        Ok(FileImage {
            file,
            path,
            kind,
            writable,
        })
    }

    /// Creates a new sparse (all-zero) file of `size` bytes; fails with
    /// [`ImageError::Exists`] if `path` exists.
    pub fn create(path: impl AsRef<Path>, size: u64) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        file.set_len(size).map_err(|e| io_error(&path, e))?;
        Ok(FileImage {
            file,
            path,
            kind: Kind::Regular,
            writable: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_block_device(&self) -> bool {
        self.kind == Kind::BlockDevice
    }

    fn err(&self, e: io::Error) -> ImageError {
        io_error(&self.path, e)
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(ImageError::ReadOnly {
                what: self.describe(),
            })
        }
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        check_range(&|| self.describe(), offset, len, self.size()?)
    }

    fn unsupported(&self, op: &'static str) -> ImageError {
        ImageError::Unsupported {
            what: self.describe(),
            op,
        }
    }

    /// Writes zeros the slow way; always correct.
    fn write_zero_bytes(&self, mut offset: u64, len: u64) -> Result<()> {
        let zeros = vec![0u8; ZERO_BUF.min(len as usize)];
        let end = offset + len;
        while offset < end {
            let n = (end - offset).min(zeros.len() as u64) as usize;
            self.file
                .write_all_at(&zeros[..n], offset)
                .map_err(|e| self.err(e))?;
            offset += n as u64;
        }
        Ok(())
    }

    /// Deallocates the range of a regular file; false when the filesystem
    /// cannot punch holes (the caller then writes zeros).
    fn punch_hole(&self, offset: u64, len: u64) -> Result<bool> {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        let (off, n) = (to_off(offset)?, to_off(len)?);
        // SAFETY: fallocate only reads its integer arguments; the fd is ours.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), mode, off, n) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => Ok(false),
            _ => Err(self.err(e)),
        }
    }

    /// Punches a hole, or writes zeros where the filesystem cannot.
    fn zero_file_range(&self, offset: u64, len: u64) -> Result<()> {
        if self.punch_hole(offset, len)? {
            return Ok(());
        }
        self.write_zero_bytes(offset, len)
    }

    /// Zeros the sector-aligned middle of the range with BLKZEROOUT and the
    /// unaligned edges (or everything, if the ioctl fails) by writing.
    fn zero_block_range(&self, offset: u64, len: u64) -> Result<()> {
        let end = offset + len;
        let start_al = offset.div_ceil(SECTOR) * SECTOR;
        let end_al = end / SECTOR * SECTOR;
        if start_al >= end_al || !self.blkzeroout(start_al, end_al - start_al) {
            return self.write_zero_bytes(offset, len);
        }
        self.write_zero_bytes(offset, start_al - offset)?;
        self.write_zero_bytes(end_al, end - end_al)
    }

    fn blkzeroout(&self, offset: u64, len: u64) -> bool {
        let range: [u64; 2] = [offset, len];
        // SAFETY: BLKZEROOUT reads a `u64[2]` that lives across the call.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), BLKZEROOUT as _, range.as_ptr()) };
        rc == 0
    }

    /// Visits the data extents of `range` of a regular file via SEEK_DATA /
    /// SEEK_HOLE; filesystems without support report it as one extent.
    fn data_extents(&self, range: Range<u64>, visit: &mut ExtentVisitor<'_>) -> Result<()> {
        let mut pos = range.start;
        while pos < range.end {
            let data = match self.lseek(pos, libc::SEEK_DATA)? {
                SeekTo::Found(d) if d < range.end => d,
                SeekTo::Found(_) | SeekTo::PastEnd => return Ok(()),
                SeekTo::Unsupported => return visit(Extent::data(pos, range.end - pos)),
            };
            let hole = match self.lseek(data, libc::SEEK_HOLE)? {
                // At least one byte, so a file changing underneath cannot
                // make this loop spin; reporting extra bytes is allowed.
                SeekTo::Found(h) => h.clamp(data + 1, range.end),
                SeekTo::PastEnd | SeekTo::Unsupported => range.end,
            };
            visit(Extent::data(data, hole - data))?;
            pos = hole;
        }
        Ok(())
    }

    /// Starts writing `len` bytes at `offset` to the disk without waiting.
    /// A restore writes a whole volume and then flushes: left to the
    /// kernel, most of it is still dirty then and the flush writes it
    /// after the transfer (0.3 s of a 1.4 s restore of 1 GiB); started
    /// here, the disk writes overlap the reads. Best effort: the flush
    /// still makes it durable, so an error here changes nothing.
    fn start_writeback(&self, offset: u64, len: usize) {
        let (Ok(offset), Ok(len)) = (
            libc::off64_t::try_from(offset),
            libc::off64_t::try_from(len),
        ) else {
            return;
        };
        // SAFETY: a plain syscall on a descriptor this image owns.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                offset,
                len,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }

    /// One `lseek`; the fd's position is not used by positional I/O, so
    /// moving it here is harmless even with concurrent callers.
    fn lseek(&self, pos: u64, whence: libc::c_int) -> Result<SeekTo> {
        // SAFETY: lseek only takes integers; the fd is ours.
        let rc = unsafe { libc::lseek(self.file.as_raw_fd(), to_off(pos)?, whence) };
        if rc >= 0 {
            return Ok(SeekTo::Found(rc as u64));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(SeekTo::PastEnd),
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(SeekTo::Unsupported),
            _ => Err(self.err(e)),
        }
    }
}

/// The outcome of a SEEK_DATA/SEEK_HOLE `lseek`.
enum SeekTo {
    Found(u64),
    /// ENXIO: no data (or hole) at or after the position.
    PastEnd,
    /// The filesystem or kernel does not know SEEK_DATA/SEEK_HOLE.
    Unsupported,
}

impl Image for FileImage {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn size(&self) -> Result<u64> {
        match self.kind {
            Kind::Regular => Ok(self.file.metadata().map_err(|e| self.err(e))?.len()),
            // A block device's metadata says 0; its end offset is its size.
            Kind::BlockDevice => (&self.file).seek(SeekFrom::End(0)).map_err(|e| self.err(e)),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len() as u64)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| self.err(e))
    }

    fn changed_extents(
        &self,
        from_snap: Option<&str>,
        range: Range<u64>,
        visit: &mut ExtentVisitor<'_>,
    ) -> Result<()> {
        if from_snap.is_some() {
            return Err(self.unsupported("changed extents since a snapshot"));
        }
        let end = range.end.min(self.size()?);
        if range.start >= end {
            return Ok(());
        }
        match self.kind {
            Kind::Regular => self.data_extents(range.start..end, visit),
            Kind::BlockDevice => visit(Extent::data(range.start, end - range.start)),
        }
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.check_range(offset, data.len() as u64)?;
        self.file
            .write_all_at(data, offset)
            .map_err(|e| self.err(e))?;
        self.start_writeback(offset, data.len());
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.check_writable()?;
        self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        match self.kind {
            Kind::Regular => self.zero_file_range(offset, len),
            Kind::BlockDevice => self.zero_block_range(offset, len),
        }
    }

    fn flush(&self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| self.err(e))
    }

    fn resize(&self, size: u64) -> Result<()> {
        self.check_writable()?;
        match self.kind {
            Kind::Regular => self.file.set_len(size).map_err(|e| self.err(e)),
            Kind::BlockDevice => Err(self.unsupported("resize")),
        }
    }

    fn snapshots(&self) -> Option<&dyn Snapshots> {
        None
    }
}

/// Only regular files and block devices hold images.
fn kind_of(path: &Path, meta: &std::fs::Metadata) -> Result<Kind> {
    let ft = meta.file_type();
    if ft.is_file() {
        Ok(Kind::Regular)
    } else if ft.is_block_device() {
        Ok(Kind::BlockDevice)
    } else if ft.is_dir() {
        Err(is_a_directory(path))
    } else {
        Err(ImageError::Invalid {
            what: path.display().to_string(),
            why: "not a regular file or block device".into(),
        })
    }
}

fn is_a_directory(path: &Path) -> ImageError {
    ImageError::Invalid {
        what: path.display().to_string(),
        why: "is a directory".into(),
    }
}

/// Maps an I/O error on `path`; EISDIR (opening a directory for writing)
/// becomes the same Invalid error as a directory opened read-only.
fn io_error(path: &Path, e: io::Error) -> ImageError {
    if e.raw_os_error() == Some(libc::EISDIR) {
        return is_a_directory(path);
    }
    ImageError::from_io(path.display().to_string(), e)
}

/// Offsets beyond `off_t` cannot exist in a file; say so instead of wrapping.
fn to_off(v: u64) -> Result<libc::off_t> {
    libc::off_t::try_from(v).map_err(|_| ImageError::Invalid {
        what: "offset".into(),
        why: format!("{v} does not fit in off_t"),
    })
}

#[cfg(test)]
mod tests;
