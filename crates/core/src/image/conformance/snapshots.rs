//! Checks of the snapshot operations and of `changed_extents(Some(snap))`.

use super::support::{
    check_extent_order, check_zero_extents, compare, covered, ensure, expect_err, extents,
    is_exists, is_not_found, is_read_only, read_all, Ctx, Shadow, KIB, MIB,
};
use super::{CheckResult, ImageFactory};
use crate::image::{Image, Snapshots};
use std::time::{Duration, SystemTime};

/// Snapshot timestamps may come from another machine's clock (a Ceph
/// cluster) with second resolution; allow this much skew.
const CLOCK_SLACK: Duration = Duration::from_secs(120);

fn snaps(img: &dyn Image) -> Result<&dyn Snapshots, String> {
    img.snapshots()
        .ok_or_else(|| format!("{}: snapshots() is None", img.describe()))
}

pub(super) fn create_snap(img: &dyn Image, name: &str) -> CheckResult {
    snaps(img)?
        .create(name)
        .ctx(img, format_args!("create snapshot {name}"))
}

fn open_snap(img: &dyn Image, name: &str) -> Result<Box<dyn Image>, String> {
    snaps(img)?
        .open_snapshot(name)
        .ctx(img, format_args!("open_snapshot({name})"))
}

pub(super) fn remove_snaps(img: &dyn Image, names: &[&str]) -> CheckResult {
    for name in names {
        snaps(img)?
            .remove(name)
            .ctx(img, format_args!("remove snapshot {name}"))?;
    }
    Ok(())
}

pub(super) fn presence(f: &dyn ImageFactory) -> CheckResult {
    let img = f.create(MIB);
    ensure!(
        img.snapshots().is_some() == f.has_snapshots(),
        "{}: snapshots() is_some = {}, but the factory says has_snapshots = {}",
        img.describe(),
        img.snapshots().is_some(),
        f.has_snapshots()
    );
    Ok(())
}

pub(super) fn create_list(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(2 * MIB))?;
    let before = SystemTime::now();
    s.write(0, 100, 1)?;
    create_snap(&*s.img, "one")?;
    s.resize(3 * MIB)?;
    create_snap(&*s.img, "two")?;
    let after = SystemTime::now();
    let res = snaps(&*s.img)?.create("one");
    expect_err(&*s.img, "create of a taken name", res, "Exists", is_exists)?;
    let list = snaps(&*s.img)?.list().ctx(&*s.img, "list snapshots")?;
    let what = s.img.describe();
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    ensure!(
        names == ["one", "two"],
        "{what}: snapshots {names:?}, expected [one, two]"
    );
    ensure!(
        list[0].size == 2 * MIB && list[1].size == 3 * MIB,
        "{what}: snapshot sizes {} and {}, expected {} and {}",
        list[0].size,
        list[1].size,
        2 * MIB,
        3 * MIB
    );
    for info in &list {
        ensure!(
            info.timestamp + CLOCK_SLACK >= before && info.timestamp <= after + CLOCK_SLACK,
            "{what}: snapshot {} has timestamp {:?}, not near now",
            info.name,
            info.timestamp
        );
    }
    ensure!(
        list[0].timestamp <= list[1].timestamp,
        "{what}: the older snapshot has the newer timestamp"
    );
    remove_snaps(&*s.img, &["one", "two"])
}

/// Writes through a snapshot fail; its contents and size stay as they were
/// while HEAD is written, zeroed and grown.
pub(super) fn read_only_frozen(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(5 * MIB))?;
    s.write(MIB - 10, 2 * MIB, 1)?;
    create_snap(&*s.img, "frozen")?;
    let frozen = s.data.clone();
    let snap = open_snap(&*s.img, "frozen")?;
    let res = snap.write_at(0, &[1]);
    expect_err(
        &*snap,
        "write_at on a snapshot",
        res,
        "ReadOnly",
        is_read_only,
    )?;
    let res = snap.write_zeroes(0, 1);
    expect_err(
        &*snap,
        "write_zeroes on a snapshot",
        res,
        "ReadOnly",
        is_read_only,
    )?;
    let res = snap.resize(MIB);
    expect_err(
        &*snap,
        "resize of a snapshot",
        res,
        "ReadOnly",
        is_read_only,
    )?;
    s.write(MIB, 100 * KIB, 2)?;
    s.zero(2 * MIB, 5000)?;
    s.resize(7 * MIB)?;
    s.write(6 * MIB, 10, 3)?;
    s.verify("HEAD after changes")?;
    let got = read_all(&*snap)?;
    compare(
        &format!("{} after HEAD changed", snap.describe()),
        &got,
        &frozen,
    )?;
    drop(snap);
    remove_snaps(&*s.img, &["frozen"])
}

/// `prepare_open` before a snapshot is made changes nothing but perhaps
/// speed: the snapshot opened after reads as it was made, though HEAD
/// changed meanwhile; a preparation for another name, or for a snapshot
/// never opened, is harmless.
pub(super) fn prepared_open_reads_the_snapshot(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(3 * MIB))?;
    s.write(100 * KIB, MIB, 4)?;
    snaps(&*s.img)?.prepare_open("early");
    create_snap(&*s.img, "early")?;
    let at_early = s.data.clone();
    s.write(200 * KIB, 50 * KIB, 5)?;
    snaps(&*s.img)?.prepare_open("elsewhere");
    create_snap(&*s.img, "late")?;
    let at_late = s.data.clone();
    s.write(300 * KIB, 50 * KIB, 6)?;
    for (name, want) in [("early", &at_early), ("late", &at_late)] {
        let snap = open_snap(&*s.img, name)?;
        compare(
            &format!("{} read", snap.describe()),
            &read_all(&*snap)?,
            want,
        )?;
    }
    snaps(&*s.img)?.prepare_open("never");
    s.verify("HEAD")?;
    remove_snaps(&*s.img, &["early", "late"])
}

/// Checks `to.changed_extents(Some(from))` against both contents: outside
/// the extents they are equal, Zero extents read zeros at `to`.
pub(super) fn check_diff(to: &dyn Image, from: &str, old: &[u8], new: &[u8]) -> CheckResult {
    let size = new.len() as u64;
    let what = format!("{} changed_extents(Some({from}))", to.describe());
    let list = extents(to, Some(from), 0..size)?;
    check_extent_order(&what, &list, &(0..size))?;
    check_zero_extents(&what, &list, new)?;
    let map = covered(&list, size);
    for (i, &n) in new.iter().enumerate() {
        let o = old.get(i).copied().unwrap_or(0);
        ensure!(map[i] || o == n, "{what}: changed byte {i} is in no extent");
    }
    Ok(())
}

/// Snapshot, change, snapshot, change: HEAD against each snapshot and the
/// second snapshot against the first.
pub(super) fn extents_since_snapshot(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(12 * MIB))?;
    s.write(0, 6 * MIB, 1)?;
    create_snap(&*s.img, "a")?;
    let a = s.data.clone();
    s.write(32 * KIB - 1, 2, 2)?;
    s.zero(MIB + 3, 70 * KIB)?;
    s.write(4 * MIB - 7, 14, 3)?;
    s.zero(5 * MIB, MIB)?;
    create_snap(&*s.img, "b")?;
    let b = s.data.clone();
    s.write(11 * MIB + 5, 5, 4)?;
    s.zero(3, 1)?;
    s.verify("HEAD after changes")?;
    check_diff(&*s.img, "a", &a, &s.data)?;
    check_diff(&*s.img, "b", &b, &s.data)?;
    let snap_b = open_snap(&*s.img, "b")?;
    check_diff(&*snap_b, "a", &a, &b)?;
    drop(snap_b);
    remove_snaps(&*s.img, &["a", "b"])
}

/// Extents since a snapshot taken before the image grew.
pub(super) fn extents_since_grown(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(2 * MIB))?;
    s.write(MIB, MIB, 1)?;
    create_snap(&*s.img, "small")?;
    let small = s.data.clone();
    s.resize(6 * MIB + 3)?;
    s.write(2 * MIB - 1, 2, 2)?;
    s.write(6 * MIB, 3, 3)?;
    s.verify("HEAD after growing")?;
    check_diff(&*s.img, "small", &small, &s.data)?;
    remove_snaps(&*s.img, &["small"])
}

/// Rollback restores contents and size; HEAD stays writable.
pub(super) fn rollback(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(3 * MIB))?;
    s.write(100, 2 * MIB, 1)?;
    create_snap(&*s.img, "base")?;
    let base = s.data.clone();
    s.write(MIB, 10, 2)?;
    s.zero(0, MIB)?;
    s.resize(5 * MIB)?;
    s.write(4 * MIB, 10, 3)?;
    snaps(&*s.img)?
        .rollback("base")
        .ctx(&*s.img, "rollback(base)")?;
    s.data = base;
    s.verify("after rollback")?;
    s.write(7, 7, 4)?;
    s.verify("after writing the rolled-back HEAD")?;
    let list = snaps(&*s.img)?.list().ctx(&*s.img, "list snapshots")?;
    ensure!(
        list.len() == 1 && list[0].name == "base",
        "{}: after rollback the snapshots are {list:?}",
        s.img.describe()
    );
    remove_snaps(&*s.img, &["base"])
}

/// Removed and never-created snapshots are NotFound everywhere.
pub(super) fn remove_and_missing(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(MIB))?;
    s.write(0, 10, 1)?;
    create_snap(&*s.img, "gone")?;
    create_snap(&*s.img, "kept")?;
    remove_snaps(&*s.img, &["gone"])?;
    let sn = snaps(&*s.img)?;
    let list = sn.list().ctx(&*s.img, "list snapshots")?;
    ensure!(
        list.len() == 1 && list[0].name == "kept",
        "{}: after removing one of two snapshots: {list:?}",
        s.img.describe()
    );
    for name in ["gone", "never"] {
        let img = &*s.img;
        expect_err(
            img,
            "open_snapshot",
            sn.open_snapshot(name),
            "NotFound",
            is_not_found,
        )?;
        expect_err(img, "remove", sn.remove(name), "NotFound", is_not_found)?;
        expect_err(img, "rollback", sn.rollback(name), "NotFound", is_not_found)?;
        let res = img.changed_extents(Some(name), 0..MIB, &mut |_| Ok(()));
        expect_err(img, "changed_extents", res, "NotFound", is_not_found)?;
    }
    // A removed name can be taken again.
    create_snap(&*s.img, "gone")?;
    remove_snaps(&*s.img, &["gone", "kept"])?;
    s.verify("after snapshot removals")
}

/// An image released (done with for now) still works: the next calls
/// reopen it, on HEAD and on a snapshot, and data written before stays.
pub(super) fn released_image_reopens(f: &dyn ImageFactory) -> CheckResult {
    let mut s = Shadow::new(f.create(3 * MIB))?;
    s.write(MIB - 7, 200 * KIB, 4)?;
    create_snap(&*s.img, "kept")?;
    let kept = s.data.clone();
    s.img.release();
    s.verify("HEAD after release")?;
    s.write(2 * MIB, 10, 5)?;
    s.img.release();
    create_snap(&*s.img, "after")?;
    s.img.release();
    let snap = open_snap(&*s.img, "kept")?;
    snap.release();
    compare(
        &format!("{} after release", snap.describe()),
        &read_all(&*snap)?,
        &kept,
    )?;
    drop(snap);
    s.img.release();
    remove_snaps(&*s.img, &["kept", "after"])?;
    s.verify("HEAD after its snapshots went")
}
