//! Helpers of the checks: deterministic data, a shadow copy of the expected
//! contents, extent collection and error matching.

use super::CheckResult;
use crate::image::{Extent, ExtentKind, Image, ImageError};
use std::fmt::Display;
use std::ops::Range;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
/// Reads for verification go in pieces of this size.
const READ_PIECE: u64 = MIB;

/// Fails the check with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}
pub(crate) use ensure;

/// Adds the image and operation to a backend error.
pub trait Ctx<T> {
    fn ctx(self, img: &dyn Image, op: impl Display) -> Result<T, String>;
}

impl<T> Ctx<T> for crate::image::Result<T> {
    fn ctx(self, img: &dyn Image, op: impl Display) -> Result<T, String> {
        self.map_err(|e| format!("{}: {op} failed: {e}", img.describe()))
    }
}

/// Deterministic bytes (xorshift64*): no rand dependency, same data every run.
pub fn pattern(seed: u64, len: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let word = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        // Never a zero byte, so a write can always be told apart from a hole.
        out.extend(word.iter().map(|b| b | 1));
    }
    out.truncate(len as usize);
    out
}

/// Reads `len` bytes at `offset`.
pub fn read(img: &dyn Image, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len as usize];
    img.read_at(offset, &mut buf)
        .ctx(img, format_args!("read_at({offset}, {len})"))?;
    Ok(buf)
}

/// No image of the suite is larger; a bigger size is a backend bug, and
/// must not make the suite allocate it.
const MAX_SIZE: u64 = 64 * MIB;

/// Reads the whole image in pieces.
pub fn read_all(img: &dyn Image) -> Result<Vec<u8>, String> {
    let size = img.size().ctx(img, "size")?;
    ensure!(
        size <= MAX_SIZE,
        "{}: implausible size {size}",
        img.describe()
    );
    let mut out = Vec::with_capacity(size as usize);
    let mut pos = 0;
    while pos < size {
        let n = READ_PIECE.min(size - pos);
        out.extend(read(img, pos, n)?);
        pos += n;
    }
    Ok(out)
}

/// The first offset where `got` and `want` differ, described.
pub fn compare(what: &str, got: &[u8], want: &[u8]) -> CheckResult {
    ensure!(
        got.len() == want.len(),
        "{what}: length {} but expected {}",
        got.len(),
        want.len()
    );
    match got.iter().zip(want).position(|(g, w)| g != w) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: byte {i} is {:#04x}, expected {:#04x}",
            got[i], want[i]
        )),
    }
}

/// An image with the contents it should have.
pub struct Shadow {
    pub img: Box<dyn Image>,
    pub data: Vec<u8>,
}

impl Shadow {
    pub fn new(img: Box<dyn Image>) -> Result<Self, String> {
        let size = img.size().ctx(&*img, "size")?;
        Ok(Shadow {
            img,
            data: vec![0; size as usize],
        })
    }

    pub fn write(&mut self, offset: u64, len: u64, seed: u64) -> CheckResult {
        let bytes = pattern(seed, len);
        self.img
            .write_at(offset, &bytes)
            .ctx(&*self.img, format_args!("write_at({offset}, {len})"))?;
        self.data[offset as usize..(offset + len) as usize].copy_from_slice(&bytes);
        Ok(())
    }

    pub fn zero(&mut self, offset: u64, len: u64) -> CheckResult {
        self.img
            .write_zeroes(offset, len)
            .ctx(&*self.img, format_args!("write_zeroes({offset}, {len})"))?;
        self.data[offset as usize..(offset + len) as usize].fill(0);
        Ok(())
    }

    pub fn resize(&mut self, size: u64) -> CheckResult {
        self.img
            .resize(size)
            .ctx(&*self.img, format_args!("resize({size})"))?;
        self.data.resize(size as usize, 0);
        Ok(())
    }

    /// Compares size and every byte with the expected contents.
    pub fn verify(&self, when: &str) -> CheckResult {
        let size = self.img.size().ctx(&*self.img, "size")?;
        ensure!(
            size == self.data.len() as u64,
            "{} {when}: size {size}, expected {}",
            self.img.describe(),
            self.data.len()
        );
        let got = read_all(&*self.img)?;
        compare(&format!("{} {when}", self.img.describe()), &got, &self.data)
    }

    /// Reads `offset..offset+len` in one call and compares it.
    pub fn verify_window(&self, offset: u64, len: u64) -> CheckResult {
        let got = read(&*self.img, offset, len)?;
        let want = &self.data[offset as usize..(offset + len) as usize];
        let what = format!("{} read_at({offset}, {len})", self.img.describe());
        compare(&what, &got, want)
    }
}

/// All extents `changed_extents(from, range)` reports.
pub fn extents(
    img: &dyn Image,
    from: Option<&str>,
    range: Range<u64>,
) -> Result<Vec<Extent>, String> {
    let mut out = Vec::new();
    img.changed_extents(from, range.clone(), &mut |e| {
        out.push(e);
        Ok(())
    })
    .ctx(img, format_args!("changed_extents({from:?}, {range:?})"))?;
    Ok(out)
}

/// Extents are non-empty, ascending, non-overlapping and inside `range`.
pub fn check_extent_order(what: &str, list: &[Extent], range: &Range<u64>) -> CheckResult {
    let mut prev_end = range.start;
    for e in list {
        ensure!(e.len > 0, "{what}: empty extent {e:?}");
        ensure!(
            e.offset >= prev_end,
            "{what}: extent {e:?} starts before {prev_end} (overlap, unordered or before the range)"
        );
        // Saturating: a broken backend's extent must fail the check, not
        // overflow in it.
        ensure!(
            e.offset.saturating_add(e.len) <= range.end,
            "{what}: extent {e:?} ends beyond {}",
            range.end
        );
        prev_end = e.end();
    }
    Ok(())
}

/// Marks every byte of `len` that lies in an extent (of any kind).
pub fn covered(list: &[Extent], len: u64) -> Vec<bool> {
    let mut map = vec![false; len as usize];
    for e in list {
        let end = e.end().min(len);
        if e.offset < end {
            map[e.offset as usize..end as usize].fill(true);
        }
    }
    map
}

/// Zero extents must read as zeros in `data` (the end point's contents).
pub fn check_zero_extents(what: &str, list: &[Extent], data: &[u8]) -> CheckResult {
    for e in list.iter().filter(|e| e.kind == ExtentKind::Zero) {
        let bytes = &data[e.offset as usize..e.end() as usize];
        if let Some(i) = bytes.iter().position(|b| *b != 0) {
            return Err(format!(
                "{what}: Zero extent {e:?} holds data at {}",
                e.offset + i as u64
            ));
        }
    }
    Ok(())
}

/// The result must be an error of the kind `matches` accepts.
pub fn expect_err<T>(
    img: &dyn Image,
    op: &str,
    res: crate::image::Result<T>,
    want: &str,
    matches: fn(&ImageError) -> bool,
) -> CheckResult {
    match res {
        Err(e) if matches(&e) => Ok(()),
        Err(e) => Err(format!(
            "{}: {op}: expected {want}, got {e:?}",
            img.describe()
        )),
        Ok(_) => Err(format!("{}: {op}: expected {want}, got Ok", img.describe())),
    }
}

pub fn is_invalid(e: &ImageError) -> bool {
    matches!(e, ImageError::Invalid { .. })
}

pub fn is_read_only(e: &ImageError) -> bool {
    matches!(e, ImageError::ReadOnly { .. })
}

pub fn is_not_found(e: &ImageError) -> bool {
    matches!(e, ImageError::NotFound { .. })
}

pub fn is_exists(e: &ImageError) -> bool {
    matches!(e, ImageError::Exists { .. })
}

pub fn is_any(_: &ImageError) -> bool {
    true
}
