//! Checks of size, reads, writes, write-zeroes, flush and resize.
//!
//! Offsets straddle the boundaries backends cut images at: 4 KiB blocks,
//! 32/64 KiB chunks, 1 MiB and the 4 MiB RBD object size.

use super::support::{ensure, expect_err, is_any, is_invalid, read, Ctx, Shadow, KIB, MIB};
use super::{CheckResult, ImageFactory};

/// (offset, len) writes at unaligned places across chunk/object boundaries.
const SCATTERED: &[(u64, u64)] = &[
    (0, 1),
    (4 * KIB - 3, 9),
    (32 * KIB - 100, 200),
    (64 * KIB - 1, 2),
    (MIB + 7, 300 * KIB),
    (4 * MIB - 5000, 10_000),
    (8 * MIB - 1, 4 * KIB + 2),
    (12 * MIB - 1, 1),
];

/// Writes `SCATTERED` with distinct data.
pub(super) fn write_scattered(s: &mut Shadow) -> CheckResult {
    for (i, &(off, len)) in SCATTERED.iter().enumerate() {
        s.write(off, len, 100 + i as u64)?;
    }
    Ok(())
}

pub(super) fn size_matches_create(f: &dyn ImageFactory) -> CheckResult {
    for size in [MIB, 8 * MIB + 4097] {
        let img = f.create(size);
        let got = img.size().ctx(&*img, "size")?;
        ensure!(
            got == size,
            "{}: size {got}, created with {size}",
            img.describe()
        );
    }
    Ok(())
}

pub(super) fn fresh_image_reads_zero(f: &dyn ImageFactory) -> CheckResult {
    Shadow::new(f.create(6 * MIB + 513))?.verify("when fresh")
}

pub(super) fn write_read_round_trip(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(12 * MIB))?;
    write_scattered(&mut s)?;
    s.verify("after scattered writes")?;
    // Reads that start and end at unaligned places, across boundaries.
    for (off, len) in [(32 * KIB - 7, 14), (MIB, 300 * KIB + 100), (4 * MIB - 1, 2)] {
        s.verify_window(off, len)?;
    }
    s.verify_window(4 * MIB - 6000, 4 * MIB + 12_000)
}

pub(super) fn overwrite_inside_data(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(6 * MIB))?;
    s.write(3 * MIB, 2 * MIB, 1)?;
    // Small pieces inside written data: read-modify-write in chunked stores.
    for (i, off) in [
        3 * MIB + 1,
        3 * MIB + 32 * KIB - 2,
        4 * MIB - 3,
        5 * MIB - 1,
    ]
    .into_iter()
    .enumerate()
    {
        s.write(off, 1 + i as u64 * 3, 50 + i as u64)?;
    }
    s.write(0, 5 * MIB - 10, 2)?;
    s.verify("after overwrites")
}

pub(super) fn read_past_end_is_invalid(f: &dyn ImageFactory) -> CheckResult {
    let size = MIB + 3;
    let img = f.create(size);
    read(&*img, size - 2, 2)?;
    for (off, len) in [(size - 1, 2), (size, 1), (size + MIB, 10), (u64::MAX, 1)] {
        let mut buf = vec![0u8; len];
        let res = img.read_at(off, &mut buf);
        let op = format!("read_at({off}, {len})");
        expect_err(&*img, &op, res, "Invalid", is_invalid)?;
    }
    Ok(())
}

/// A write beyond the end must fail and must neither grow the image nor
/// write the part that fits.
pub(super) fn write_past_end_fails(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(MIB + 3))?;
    let size = MIB + 3;
    let res = s.img.write_at(size - 1, &[7, 7]);
    expect_err(&*s.img, "write_at(size-1, 2)", res, "an error", is_any)?;
    let res = s.img.write_zeroes(size + 1, 1);
    expect_err(&*s.img, "write_zeroes(size+1, 1)", res, "an error", is_any)?;
    s.verify("after refused writes")?;
    // The last byte itself is still writable.
    s.write(size - 1, 1, 3)?;
    s.verify("after writing the last byte")
}

pub(super) fn write_zeroes_exact(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(8 * MIB))?;
    s.write(0, 4 * MIB + 256 * KIB, 1)?;
    let ranges = [
        (1, 1),
        (32 * KIB - 3, 7),
        (100 * KIB + 1, 64 * KIB + 3),
        (MIB, MIB),
        (4 * MIB - 1000, 2000),
        (4 * MIB + 256 * KIB - 1, 1),
        (6 * MIB + 5, 100),
    ];
    for (off, len) in ranges {
        s.zero(off, len)?;
    }
    s.verify("after write_zeroes")?;
    // Data written back into a zeroed range is not lost to the zeroing.
    s.write(MIB + 10, 20, 2)?;
    s.zero(0, 0)?;
    s.verify("after rewriting a zeroed range")
}

pub(super) fn flush_keeps_data(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(5 * MIB))?;
    s.img.flush().ctx(&*s.img, "flush of a fresh image")?;
    write_range_set(&mut s)?;
    s.img.flush().ctx(&*s.img, "flush")?;
    s.verify("after flush")
}

fn write_range_set(s: &mut Shadow) -> CheckResult {
    s.write(10, 4 * MIB, 1)?;
    s.zero(2 * MIB - 1, 3)
}

pub(super) fn resize_grow_reads_zero(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(MIB + 100))?;
    s.write(MIB, 100, 1)?;
    s.resize(5 * MIB + 7)?;
    s.verify("after growing")?;
    s.write(5 * MIB, 7, 2)?;
    s.verify("after writing the grown area")
}

/// Shrinking drops the tail for good: growing again must not bring it back.
pub(super) fn resize_shrink_then_grow(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(6 * MIB))?;
    s.write(MIB - 5, 300 * KIB, 1)?;
    s.write(4 * MIB - 100, 200, 2)?;
    s.write(6 * MIB - 10, 10, 3)?;
    s.resize(MIB + 100 * KIB)?;
    s.verify("after shrinking")?;
    let mut buf = [0u8; 1];
    let res = s.img.read_at(MIB + 100 * KIB, &mut buf);
    expect_err(&*s.img, "read_at(new size, 1)", res, "Invalid", is_invalid)?;
    s.resize(6 * MIB)?;
    s.verify("after shrinking and growing again")
}
