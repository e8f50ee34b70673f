//! Checks of `changed_extents(None, ..)`: the allocated extents.

use super::basic::write_scattered;
use super::support::{
    check_extent_order, check_zero_extents, covered, ensure, extents, Ctx, Shadow, MIB,
};
use super::{CheckResult, ImageFactory};
use crate::image::{ExtentKind, ImageError};

/// A 12 MiB image with scattered writes and a zeroed hole in the middle.
fn scattered_image(f: &dyn ImageFactory) -> Result<Shadow, String> {
    let mut s = Shadow::new(f.create(12 * MIB))?;
    write_scattered(&mut s)?;
    s.write(5 * MIB, MIB, 7)?;
    s.zero(5 * MIB + 1000, 5000)?;
    Ok(s)
}

/// Every byte outside the reported extents, and inside Zero extents, must
/// be zero: that is what "allocated extents" promises a backup.
fn check_from_nothing(s: &Shadow, range: std::ops::Range<u64>) -> CheckResult {
    let what = format!("{} changed_extents(None, {range:?})", s.img.describe());
    let list = extents(&*s.img, None, range.clone())?;
    check_extent_order(&what, &list, &range)?;
    check_zero_extents(&what, &list, &s.data)?;
    let map = covered(&list, s.data.len() as u64);
    for pos in range {
        let i = pos as usize;
        ensure!(
            map[i] || s.data[i] == 0,
            "{what}: data at {pos} is in no extent"
        );
    }
    Ok(())
}

pub(super) fn cover_all_data(f: &dyn ImageFactory) -> CheckResult {
    let s = scattered_image(f)?;
    s.verify("before listing extents")?;
    check_from_nothing(&s, 0..12 * MIB)
}

pub(super) fn within_subrange(f: &dyn ImageFactory) -> CheckResult {
    let s = scattered_image(f)?;
    let size = 12 * MIB;
    for range in [
        MIB + 5..5 * MIB + 3,
        size - 1..size,
        0..1,
        4 * MIB..4 * MIB + 1,
    ] {
        check_from_nothing(&s, range)?;
    }
    Ok(())
}

/// A range reaching past the end is either refused as Invalid or clipped:
/// no extent may reach beyond the size.
pub(super) fn not_beyond_size(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(3 * MIB + 5))?;
    s.write(3 * MIB, 5, 1)?;
    let range = 0..8 * MIB;
    let mut list = Vec::new();
    let res = s.img.changed_extents(None, range.clone(), &mut |e| {
        list.push(e);
        Ok(())
    });
    if let Err(ImageError::Invalid { .. }) = res {
        return Ok(());
    }
    res.ctx(&*s.img, "changed_extents(None, 0..8 MiB)")?;
    let what = format!("{} changed_extents(None, {range:?})", s.img.describe());
    check_extent_order(&what, &list, &(0..3 * MIB + 5))?;
    let data_end = list.iter().rfind(|e| e.kind == ExtentKind::Data);
    ensure!(
        data_end.is_some_and(|e| e.end() == 3 * MIB + 5),
        "{what}: the data at the last 5 bytes is not reported: {list:?}"
    );
    Ok(())
}

/// An error returned by the visitor stops the iteration and is returned.
pub(super) fn visitor_error_stops(f: &dyn ImageFactory) -> CheckResult {
    let s = scattered_image(f)?;
    let mut calls = 0;
    let res = s.img.changed_extents(None, 0..12 * MIB, &mut |_| {
        calls += 1;
        Err(ImageError::Backend {
            what: "visitor".into(),
            msg: "stop".into(),
        })
    });
    let what = s.img.describe();
    ensure!(
        matches!(&res, Err(ImageError::Backend { msg, .. }) if msg == "stop"),
        "{what}: the visitor's error was not returned: {res:?}"
    );
    ensure!(
        calls == 1,
        "{what}: visitor called {calls} times after failing"
    );
    Ok(())
}
