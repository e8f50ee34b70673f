use super::FileImage;
use crate::image::conformance::{run_image_suite, ImageFactory};
use crate::image::{Image, ImageError};
use std::cell::Cell;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

/// Fresh sparse files in one temp dir.
struct Files {
    dir: TempDir,
    next: Cell<u32>,
}

impl Files {
    fn new() -> Self {
        Files {
            dir: TempDir::new().expect("temp dir"),
            next: Cell::new(0),
        }
    }
}

impl ImageFactory for Files {
    fn create(&self, size: u64) -> Box<dyn Image> {
        self.next.set(self.next.get() + 1);
        let path = self.dir.path().join(format!("img{}", self.next.get()));
        Box::new(FileImage::create(path, size).expect("create image file"))
    }

    fn has_snapshots(&self) -> bool {
        false
    }

    fn has_metadata(&self) -> bool {
        false
    }
}

#[test]
fn conformance() {
    run_image_suite(&Files::new());
}

#[test]
fn create_refuses_existing_file() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("a");
    FileImage::create(&path, MIB).unwrap();
    let err = FileImage::create(&path, MIB).unwrap_err();
    assert!(matches!(err, ImageError::Exists { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn directory_is_invalid() {
    let dir = TempDir::new().unwrap();
    for writable in [false, true] {
        let err = FileImage::open(dir.path(), writable).unwrap_err();
        assert!(
            matches!(&err, ImageError::Invalid { why, .. } if why == "is a directory"),
            "writable={writable}: {err:?}"
        );
    }
}

#[test]
fn character_device_is_invalid() {
    let err = FileImage::open("/dev/null", false).unwrap_err();
    assert!(matches!(err, ImageError::Invalid { .. }), "{err:?}");
}

/// Opening a FIFO would block forever; it must be refused up front.
#[test]
fn fifo_is_invalid() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("fifo");
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let err = FileImage::open(&path, false).unwrap_err();
    assert!(matches!(err, ImageError::Invalid { .. }), "{err:?}");
}

#[test]
fn missing_file_is_not_found() {
    let dir = TempDir::new().unwrap();
    let err = FileImage::open(dir.path().join("nope"), false).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[test]
fn read_only_refuses_writes() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("a");
    FileImage::create(&path, MIB)
        .unwrap()
        .write_at(5, b"abc")
        .unwrap();
    let img = FileImage::open(&path, false).unwrap();
    let is_ro = |r: crate::image::Result<()>| matches!(r, Err(ImageError::ReadOnly { .. }));
    assert!(is_ro(img.write_at(0, b"x")));
    assert!(is_ro(img.write_zeroes(0, 1)));
    assert!(is_ro(img.resize(2 * MIB)));
    let mut buf = [0u8; 3];
    img.read_at(5, &mut buf).unwrap();
    assert_eq!(&buf, b"abc");
    assert_eq!(img.size().unwrap(), MIB);
}

#[test]
fn extents_since_snapshot_unsupported() {
    let dir = TempDir::new().unwrap();
    let img = FileImage::create(dir.path().join("a"), MIB).unwrap();
    let res = img.changed_extents(Some("s"), 0..MIB, &mut |_| Ok(()));
    assert!(
        matches!(res, Err(ImageError::Unsupported { .. })),
        "{res:?}"
    );
}

fn extents(img: &FileImage) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    img.changed_extents(None, 0..img.size().unwrap(), &mut |e| {
        out.push((e.offset, e.len));
        Ok(())
    })
    .unwrap();
    out
}

/// The test filesystem (ext4/tmpfs/xfs) supports holes, so the holes of a
/// sparse file must not be reported.
#[test]
fn holes_are_skipped() {
    let dir = TempDir::new().unwrap();
    let img = FileImage::create(dir.path().join("a"), 16 * MIB).unwrap();
    assert_eq!(extents(&img), vec![]);
    img.write_at(8 * MIB + 10, &[1; 100]).unwrap();
    let list = extents(&img);
    assert_eq!(list.len(), 1, "{list:?}");
    let (off, len) = list[0];
    assert!(
        off <= 8 * MIB + 10 && off + len >= 8 * MIB + 110,
        "{list:?}"
    );
    assert!(len <= MIB, "a 100-byte write reported as {len} bytes");
}

#[test]
fn write_zeroes_punches_holes() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("a");
    let img = FileImage::create(&path, 4 * MIB).unwrap();
    img.write_at(0, &vec![7u8; 4 * MIB as usize]).unwrap();
    img.flush().unwrap();
    let blocks = |p: &std::path::Path| std::fs::metadata(p).unwrap().blocks();
    let full = blocks(&path);
    img.write_zeroes(MIB, 2 * MIB).unwrap();
    assert!(blocks(&path) < full, "no space was freed");
    assert_eq!(img.size().unwrap(), 4 * MIB);
    assert_eq!(extents(&img), vec![(0, MIB), (3 * MIB, MIB)]);
}

#[test]
fn concurrent_writers_share_one_handle() {
    let dir = TempDir::new().unwrap();
    let img = Arc::new(FileImage::create(dir.path().join("a"), 8 * MIB).unwrap());
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let img = img.clone();
            std::thread::spawn(move || {
                for i in 0..64u64 {
                    let off = (u64::from(t) * 64 + i) * 32 * 1024 + 3;
                    img.write_at(off, &[t + 1; 1000]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut buf = vec![0u8; 1000];
    for t in 0..4u8 {
        for i in [0u64, 63] {
            img.read_at((u64::from(t) * 64 + i) * 32 * 1024 + 3, &mut buf)
                .unwrap();
            assert!(buf.iter().all(|b| *b == t + 1));
        }
    }
}

/// Runs against a real block device (e.g. a loop device), whose contents it
/// destroys: `BLOCKBACK_TEST_BLOCK_DEVICE=/dev/loop0 cargo test -- --ignored`.
#[test]
#[ignore = "needs a scratch block device in BLOCKBACK_TEST_BLOCK_DEVICE"]
fn block_device() {
    let path = std::env::var("BLOCKBACK_TEST_BLOCK_DEVICE")
        .expect("set BLOCKBACK_TEST_BLOCK_DEVICE to a scratch block device");
    let img = FileImage::open(&path, true).unwrap();
    assert!(img.is_block_device());
    let size = img.size().unwrap();
    assert!(size >= 4 * MIB, "device too small: {size}");
    img.write_at(0, &vec![9u8; 4 * MIB as usize]).unwrap();
    // Unaligned at both ends: the middle goes through BLKZEROOUT.
    img.write_zeroes(1000, MIB + 3).unwrap();
    img.flush().unwrap();
    let mut buf = vec![0u8; 4 * MIB as usize];
    img.read_at(0, &mut buf).unwrap();
    let zeroed = 1000..1000 + MIB as usize + 3;
    for (i, b) in buf.iter().enumerate() {
        assert_eq!(*b == 0, zeroed.contains(&i), "byte {i} is {b}");
    }
    assert_eq!(extents(&img), vec![(0, size)]);
    let res = img.resize(size + MIB);
    assert!(
        matches!(res, Err(ImageError::Unsupported { .. })),
        "{res:?}"
    );
    let mut one = [0u8; 1];
    let res = img.read_at(size, &mut one);
    assert!(matches!(res, Err(ImageError::Invalid { .. })), "{res:?}");
}

/// The fallback for filesystems without hole punching, called directly
/// (every filesystem the tests run on can punch holes).
#[test]
fn zero_writing_fallback_is_exact() {
    let dir = TempDir::new().unwrap();
    let img = FileImage::create(dir.path().join("a"), 4 * MIB).unwrap();
    img.write_at(0, &vec![5u8; 4 * MIB as usize]).unwrap();
    // Longer than the 1 MiB zero buffer and unaligned at both ends.
    let (off, len) = (12_345u64, 2 * MIB + 777);
    img.write_zero_bytes(off, len).unwrap();
    let mut buf = vec![0u8; 4 * MIB as usize];
    img.read_at(0, &mut buf).unwrap();
    for (i, b) in buf.iter().enumerate() {
        let zeroed = (off..off + len).contains(&(i as u64));
        assert_eq!(*b == 0, zeroed, "byte {i} is {b}");
    }
}
