//! Checks of the "every method may be called from several threads" contract.

use super::support::{pattern, Ctx, Shadow, KIB, MIB};
use super::{CheckResult, ImageFactory};
use crate::image::Image;

const THREADS: u64 = 4;
const PIECES: u64 = 48;
const PIECE: u64 = 1500;
/// Crosses the 4 MiB object boundary; pieces of all threads interleave
/// inside the same 4 KiB blocks and 32 KiB chunks.
const START: u64 = 4 * MIB - 100 * KIB + 3;

fn offset(thread: u64, piece: u64) -> u64 {
    START + (piece * THREADS + thread) * PIECE
}

/// One thread's share: its pieces, each with a zeroed hole in the middle.
fn write_share(img: &dyn Image, thread: u64) -> CheckResult {
    for piece in 0..PIECES {
        let off = offset(thread, piece);
        let data = pattern(thread * 1000 + piece, PIECE);
        img.write_at(off, &data).ctx(
            img,
            format_args!("write_at({off}, {PIECE}) from thread {thread}"),
        )?;
        img.write_zeroes(off + 500, 100)
            .ctx(img, format_args!("write_zeroes({}, 100)", off + 500))?;
    }
    Ok(())
}

/// Neighbouring writes from several threads at once: none may be lost (a
/// read-modify-write without locking in a chunked backend loses some).
pub(super) fn concurrent_writes(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(8 * MIB))?;
    let img: &dyn Image = &*s.img;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| scope.spawn(move || write_share(img, t)))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err("a writer thread panicked".into()))
        })
    })?;
    for t in 0..THREADS {
        for piece in 0..PIECES {
            let off = offset(t, piece) as usize;
            let data = pattern(t * 1000 + piece, PIECE);
            s.data[off..off + PIECE as usize].copy_from_slice(&data);
            s.data[off + 500..off + 600].fill(0);
        }
    }
    s.verify("after concurrent writes")
}
