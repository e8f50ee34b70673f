//! Checks of images made with `Pool::create_to_fill` (through
//! [`ImageFactory::create_to_fill`]): once flushed, such an image is like
//! any other.

use super::snapshots::{check_diff, create_snap, remove_snaps};
use super::support::{ensure, Ctx, Shadow, KIB, MIB};
use super::{CheckResult, ImageFactory};

const SIZE: u64 = 16 * MIB;

/// Filled nearly whole and flushed, it holds what was written, and is as
/// cheap to ask what changed as an image made with `create`.
pub(super) fn filled_image_is_whole_after_flush(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create_to_fill(SIZE))?;
    for (i, at) in (0..SIZE).step_by(MIB as usize).enumerate() {
        if i % 5 != 3 {
            s.write(at, MIB, 10 + i as u64)?;
        }
    }
    s.img.flush().ctx(&*s.img, "flush")?;
    s.verify("after the flush")?;
    let created = f.create(SIZE);
    ensure!(
        s.img.changed_since_is_cheap() == created.changed_since_is_cheap(),
        "{}: changed_since_is_cheap is {} for a filled image, {} for a created one",
        s.img.describe(),
        s.img.changed_since_is_cheap(),
        created.changed_since_is_cheap()
    );
    Ok(())
}

/// A snapshot of a filled image, then a few writes: the diff since the
/// snapshot is exact.
pub(super) fn filled_image_diffs_since_a_snapshot(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create_to_fill(SIZE))?;
    s.write(0, SIZE, 7)?;
    s.img.flush().ctx(&*s.img, "flush")?;
    create_snap(&*s.img, "filled")?;
    let filled = s.data.clone();
    s.write(5 * MIB + 3, 4 * KIB, 8)?;
    s.zero(9 * MIB, 64 * KIB)?;
    s.verify("HEAD after changes")?;
    check_diff(&*s.img, "filled", &filled, &s.data)?;
    remove_snaps(&*s.img, &["filled"])
}
