//! Snapshots: create, list, open, rollback, remove, and their errors.

mod common;

use std::time::{Duration, SystemTime};

use blockback_core::image::{Image, ImageError, Pool, Snapshots};
use common::*;

#[test]
fn snapshot_lifecycle() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "snap", 8 * MIB);
    let h = img.open();
    let snaps = h.snapshots().expect("RBD images have snapshots");
    let before = SystemTime::now() - Duration::from_secs(60);
    h.write_at(0, &pattern(1, 4096)).unwrap();
    snaps.create("one").unwrap();
    h.write_at(0, &pattern(2, 4096)).unwrap();
    h.resize(12 * MIB).unwrap();
    snaps.create("two").unwrap();

    let list = snaps.list().unwrap();
    let names: Vec<_> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!((list[0].size, list[1].size), (8 * MIB, 12 * MIB));
    assert!(list.iter().all(|s| s.timestamp > before), "{list:?}");
    assert!(list[0].timestamp <= list[1].timestamp);

    let err = snaps.create("one").unwrap_err();
    assert!(matches!(err, ImageError::Exists { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("{}@one", img.name)),
        "{err}"
    );

    // The snapshot keeps the old bytes and size and refuses writes.
    let one = snaps.open_snapshot("one").unwrap();
    assert_eq!(one.describe(), format!("volumes/{}@one", img.name));
    assert_eq!(one.size().unwrap(), 8 * MIB);
    assert_eq!(read(one.as_ref(), 0, 4096), pattern(1, 4096));
    let err = one.write_at(0, b"x").unwrap_err();
    assert!(matches!(err, ImageError::ReadOnly { .. }), "{err}");
    assert!(matches!(
        one.write_zeroes(0, 1),
        Err(ImageError::ReadOnly { .. })
    ));
    assert!(matches!(one.resize(MIB), Err(ImageError::ReadOnly { .. })));
    let ro = pool.open_read_only(&img.name, Some("two")).unwrap();
    assert_eq!(read(ro.as_ref(), 0, 4096), pattern(2, 4096));
    drop((one, ro));

    snaps.rollback("one").unwrap();
    assert_eq!(h.size().unwrap(), 8 * MIB);
    assert_eq!(read(h.as_ref(), 0, 4096), pattern(1, 4096));

    let err = pool.remove(&img.name).unwrap_err();
    assert!(matches!(err, ImageError::HasSnapshots { .. }), "{err}");
    snaps.remove("two").unwrap();
    let err = snaps.remove("two").unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("@two"), "{err}");
    snaps.remove("one").unwrap();
    assert!(snaps.list().unwrap().is_empty());
}

/// A backup store's pool skips librbd's quiesce notification; its
/// snapshots must still hold every write made before them.
#[test]
fn snapshots_without_quiesce_hold_the_writes_before_them() {
    let Some(pool) = pool() else { return };
    let pool = pool.without_snapshot_quiesce();
    let img = TempImage::create(&pool, "noquiesce", 8 * MIB);
    let h = img.open();
    let snaps = h.snapshots().expect("RBD images have snapshots");
    let data = pattern(3, 6 * MIB as usize);
    h.write_at(MIB, &data).unwrap();
    snaps.create("kept").unwrap();
    h.write_at(MIB, &pattern(4, 4096)).unwrap();

    let kept = snaps.open_snapshot("kept").unwrap();
    assert_eq!(read(kept.as_ref(), MIB, data.len()), data);
    assert_eq!(read(h.as_ref(), MIB, 4096), pattern(4, 4096));
    drop(kept);
    snaps.remove("kept").unwrap();
}

/// A snapshot announced with `prepare_open` is read through the handle
/// opened then (set to the snapshot once made), which sees the snapshot,
/// not HEAD's later writes; a handle prepared for another snapshot is
/// closed, and so is one nobody took, by the release.
#[test]
fn prepared_snapshots_are_read_through_the_handle_opened_beforehand() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "spare", 8 * MIB);
    let h = pool.open_image(&img.name).unwrap();
    h.write_at(MIB, &pattern(5, 4096)).unwrap();
    h.prepare_open("first");
    assert_eq!(h.prepared_snapshot_read().as_deref(), Some("first"));
    Snapshots::create(&h, "first").unwrap();
    h.write_at(MIB, &pattern(6, 4096)).unwrap();

    let first = h.open_snapshot("first").unwrap();
    assert_eq!(h.prepared_snapshot_read(), None, "taken");
    assert_eq!(first.describe(), format!("volumes/{}@first", img.name));
    assert_eq!(read(first.as_ref(), MIB, 4096), pattern(5, 4096));
    assert!(matches!(
        first.write_at(0, b"x"),
        Err(ImageError::ReadOnly { .. })
    ));
    // Reopened after a release, it is still the snapshot.
    first.release();
    assert_eq!(read(first.as_ref(), MIB, 4096), pattern(5, 4096));
    drop(first);

    h.prepare_open("third");
    Snapshots::create(&h, "second").unwrap();
    Snapshots::create(&h, "third").unwrap();
    let second = h.open_snapshot("second").unwrap();
    assert_eq!(read(second.as_ref(), MIB, 4096), pattern(6, 4096));
    assert_eq!(h.prepared_snapshot_read(), None, "not second's: closed");
    drop(second);
    h.prepare_open("fourth");
    h.release();
    assert_eq!(h.prepared_snapshot_read(), None, "closed by the release");
    for snap in ["first", "second", "third"] {
        h.remove(snap).unwrap();
    }
}

#[test]
fn missing_snapshots_are_not_found_naming_them() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "nosnap", MIB);
    let h = img.open();
    let snaps = h.snapshots().unwrap();
    for err in [
        snaps.open_snapshot("ghost").map(|_| ()).unwrap_err(),
        pool.open_read_only(&img.name, Some("ghost"))
            .map(|_| ())
            .unwrap_err(),
        snaps.rollback("ghost").unwrap_err(),
    ] {
        assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("ghost"), "{err}");
    }
    let err = snaps.create("a/b").unwrap_err();
    assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
}

#[test]
fn read_only_head_refuses_writes() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "rohead", MIB);
    let ro = pool.open_read_only(&img.name, None).unwrap();
    let err = ro.write_at(0, b"x").unwrap_err();
    assert!(matches!(err, ImageError::ReadOnly { .. }), "{err}");
    assert_eq!(read(ro.as_ref(), 0, 10), vec![0; 10]);
}

#[test]
fn listing_grows_past_the_first_buffer() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "manysnaps", MIB);
    let h = img.open();
    let snaps = h.snapshots().unwrap();
    // More than rbd_snap_list's first buffer of 16 entries.
    let names: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
    for n in &names {
        snaps.create(n).unwrap();
    }
    let listed: Vec<String> = snaps.list().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(listed, names);
}
