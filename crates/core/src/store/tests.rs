//! Tests of the local store through its public API (plus a peek at page
//! loads and the key for the diff-cost and corruption tests).

use super::*;
use crate::image::{Extent, ExtentKind, Image, ImageError, Pool};
use crate::progress::NoProgress;
use rand::{RngCore, SeedableRng};
use std::path::Path;

pub(super) const CS: u64 = 4096;

pub(super) fn small_store(dir: &Path) -> LocalStore {
    LocalStore::init(
        dir,
        InitOptions {
            chunk_size: CS as u32,
        },
    )
    .unwrap()
}

pub(super) fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

fn read_all(img: &dyn Image) -> Vec<u8> {
    let mut buf = vec![0u8; img.size().unwrap() as usize];
    img.read_at(0, &mut buf).unwrap();
    buf
}

fn extents(img: &dyn Image, from: Option<&str>) -> Vec<Extent> {
    let mut out = Vec::new();
    let size = img.size().unwrap();
    img.changed_extents(from, 0..size, &mut |e| {
        out.push(e);
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn init_refuses_non_empty_dir_and_open_checks_the_format() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk"), b"x").unwrap();
    assert!(matches!(
        LocalStore::init(dir.path(), InitOptions::default()),
        Err(StoreError::NotAStore { .. })
    ));
    assert!(matches!(
        LocalStore::open(dir.path()),
        Err(StoreError::NotAStore { .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::init(dir.path(), InitOptions::default()).unwrap();
    assert_eq!(store.chunk_size(), u64::from(DEFAULT_CHUNK_SIZE));
    assert!(matches!(
        LocalStore::init(dir.path(), InitOptions::default()),
        Err(StoreError::Exists { .. })
    ));
    let cfg_path = dir.path().join("config.json");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let newer = cfg.replace("\"format\": 1", "\"format\": 99");
    assert_ne!(cfg, newer);
    std::fs::write(&cfg_path, newer).unwrap();
    let err = LocalStore::open(dir.path()).err().unwrap();
    assert!(matches!(err, StoreError::NewerFormat { found: 99, .. }));
    assert!(err.to_string().contains("upgrade blockback"), "{err}");
}

#[test]
fn init_rejects_bad_chunk_sizes() {
    let dir = tempfile::tempdir().unwrap();
    for cs in [0, 1000, 4095, 8 << 20, u32::MAX] {
        let r = LocalStore::init(dir.path(), InitOptions { chunk_size: cs });
        assert!(matches!(r, Err(StoreError::Invalid { .. })), "{cs}");
    }
}

#[test]
fn names_follow_the_reference_and_reject_paths() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let name =
        "volume-0b1e6f4e-1f7c-4d1a-9a3b-2c8d5e6f7a8b.backup.5e1c77aa-0000-4000-8000-000000000001";
    store.create(name, 8192).unwrap();
    for bad in ["a/b", ".hidden", "", "x\0y"] {
        assert!(
            matches!(store.create(bad, 1), Err(ImageError::Invalid { .. })),
            "{bad:?}"
        );
    }
    let img = store.open(name).unwrap();
    let snaps = img.snapshots().unwrap();
    snaps
        .create("backup.5e1c77aa-0000.snap.1700000000.123456")
        .unwrap();
    assert!(matches!(
        snaps.create("bad/snap"),
        Err(ImageError::Invalid { .. })
    ));
    assert!(matches!(
        snaps.create(".dot"),
        Err(ImageError::Invalid { .. })
    ));
    assert_eq!(store.list().unwrap(), vec![name.to_string()]);
    assert!(matches!(
        store.create(name, 1),
        Err(ImageError::Exists { .. })
    ));
}

#[test]
fn unaligned_writes_read_back_and_holes_read_zero() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let size = 10 * CS + 123;
    store.create("img", size).unwrap();
    let img = store.open("img").unwrap();
    let mut model = vec![0u8; size as usize];
    for (i, (off, len)) in [
        (100u64, 5000usize),
        (3 * CS, CS as usize),
        (9 * CS + 7, 1116),
    ]
    .into_iter()
    .enumerate()
    {
        let data = random(len, i as u64);
        img.write_at(off, &data).unwrap();
        model[off as usize..off as usize + len].copy_from_slice(&data);
    }
    img.write_zeroes(3 * CS + 10, 20).unwrap();
    model[3 * CS as usize + 10..3 * CS as usize + 30].fill(0);
    assert_eq!(read_all(&*img), model);
    let mut small = [0u8; 10];
    img.read_at(105, &mut small).unwrap();
    assert_eq!(&small[..], &model[105..115]);
    assert!(matches!(
        img.read_at(size - 1, &mut small),
        Err(ImageError::Invalid { .. })
    ));
    assert!(matches!(
        img.write_at(size, b"x"),
        Err(ImageError::Invalid { .. })
    ));
    img.flush().unwrap();
    drop(img);
    let store = LocalStore::open(dir.path()).unwrap();
    assert_eq!(
        read_all(&*store.open_read_only("img", None).unwrap()),
        model
    );
}

#[test]
fn identical_chunks_are_stored_once_and_zero_chunks_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let data = random(4 * CS as usize, 7);
    for name in ["a", "b"] {
        store.create(name, 8 * CS).unwrap();
        let img = store.open(name).unwrap();
        img.write_at(0, &data).unwrap();
        img.write_at(4 * CS, &vec![0u8; 4 * CS as usize]).unwrap();
        img.flush().unwrap();
    }
    let stats = store.stats().unwrap();
    assert_eq!(stats.chunks, 4);
    assert_eq!(stats.raw_bytes, 4 * CS);
    assert_eq!(stats.logical_bytes, 8 * CS);
    assert!((stats.dedup_ratio - 2.0).abs() < 1e-9);
    let img = store.open_read_only("a", None).unwrap();
    assert_eq!(extents(&*img, None), vec![Extent::data(0, 4 * CS)]);
}

#[test]
fn compressible_chunks_are_stored_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.create("img", 16 * CS).unwrap();
    let img = store.open("img").unwrap();
    let text: Vec<u8> = (0..16 * CS)
        .map(|i| b"blockback "[(i % 10) as usize] ^ (i / CS) as u8)
        .collect();
    img.write_at(0, &text).unwrap();
    img.flush().unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.chunks, 16);
    assert!(stats.stored_bytes * 10 < stats.raw_bytes, "{stats:?}");
    assert_eq!(read_all(&*img), text);
}

#[test]
fn unflushed_writes_are_lost_on_drop_and_the_old_head_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.create("img", 4 * CS).unwrap();
    let first = random(4 * CS as usize, 1);
    let img = store.open("img").unwrap();
    img.write_at(0, &first).unwrap();
    img.flush().unwrap();
    img.write_at(0, &random(4 * CS as usize, 2)).unwrap();
    // Extents force the tree to be materialised; still nothing is published.
    assert_eq!(extents(&*img, None), vec![Extent::data(0, 4 * CS)]);
    let ro = store.open_read_only("img", None).unwrap();
    assert_eq!(read_all(&*ro), first);
    drop(img); // killed backup: no flush
    drop(store);
    let store = LocalStore::open(dir.path()).unwrap();
    let img = store.open_read_only("img", None).unwrap();
    assert_eq!(read_all(&*img), first);
}

#[test]
fn drop_without_any_flush_keeps_the_previous_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.create("img", 4 * CS).unwrap();
    let img = store.open("img").unwrap();
    img.write_at(0, &random(4 * CS as usize, 1)).unwrap();
    img.flush().unwrap();
    img.write_at(CS, &random(CS as usize, 9)).unwrap();
    drop(img);
    drop(store);
    let store = LocalStore::open(dir.path()).unwrap();
    let img = store.open_read_only("img", None).unwrap();
    assert_eq!(read_all(&*img), random(4 * CS as usize, 1));
    // The unpublished pack is garbage that gc removes.
    let stats = store.gc(&NoProgress).unwrap();
    assert!(stats.leftovers_removed >= 1, "{stats:?}");
    assert_eq!(read_all(&*img), random(4 * CS as usize, 1));
}

#[test]
fn snapshots_are_immutable_listed_in_order_and_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.create("img", 4 * CS).unwrap();
    let img = store.open("img").unwrap();
    let snaps = img.snapshots().unwrap();
    let v1 = random(4 * CS as usize, 1);
    img.write_at(0, &v1).unwrap();
    snaps.create("s1").unwrap();
    assert!(matches!(snaps.create("s1"), Err(ImageError::Exists { .. })));
    img.write_at(CS, &random(CS as usize, 2)).unwrap();
    img.resize(6 * CS).unwrap();
    snaps.create("s2").unwrap();
    let list = snaps.list().unwrap();
    let names: Vec<_> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["s1", "s2"]);
    assert_eq!((list[0].size, list[1].size), (4 * CS, 6 * CS));
    assert!(list[0].timestamp < list[1].timestamp);

    let s1 = snaps.open_snapshot("s1").unwrap();
    assert_eq!(read_all(&*s1), v1);
    assert!(matches!(
        s1.write_at(0, b"x"),
        Err(ImageError::ReadOnly { .. })
    ));
    let ro = store.open_read_only("img", Some("s1")).unwrap();
    assert_eq!(read_all(&*ro), v1);

    snaps.rollback("s1").unwrap();
    assert_eq!(img.size().unwrap(), 4 * CS);
    assert_eq!(read_all(&*img), v1);
    snaps.remove("s2").unwrap();
    assert!(matches!(
        snaps.remove("s2"),
        Err(ImageError::NotFound { .. })
    ));
    assert!(store.open_read_only("img", Some("s2")).is_err());
    assert_eq!(snaps.list().unwrap().len(), 1);
}

#[test]
fn snapshot_of_unchanged_head_reuses_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.create("img", 64 * CS).unwrap();
    let img = store.open("img").unwrap();
    let data = random(64 * CS as usize, 5);
    img.write_at(0, &data).unwrap();
    img.snapshots().unwrap().create("a").unwrap();
    let packs = store.stats().unwrap().packs;
    // Rewriting identical data is a no-op: nothing new is stored.
    img.write_at(0, &data).unwrap();
    img.snapshots().unwrap().create("b").unwrap();
    let root = |s: &str| store.inner.records.read_snap("img", s).unwrap().root;
    assert_eq!(root("a"), root("b"));
    assert_eq!(store.stats().unwrap().packs, packs);
    assert!(extents(&*img, Some("a")).is_empty());
}

#[test]
fn diff_reports_data_and_zero_extents_merged_at_chunk_granularity() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.create("img", 20 * CS).unwrap();
    let img = store.open("img").unwrap();
    img.write_at(0, &random(6 * CS as usize, 1)).unwrap();
    img.write_at(10 * CS + 5, b"hello").unwrap();
    assert_eq!(
        extents(&*img, None),
        vec![Extent::data(0, 6 * CS), Extent::data(10 * CS, CS)]
    );
    img.snapshots().unwrap().create("s").unwrap();
    img.write_zeroes(CS, 2 * CS).unwrap();
    img.write_at(4 * CS, &random(CS as usize, 2)).unwrap();
    img.write_at(15 * CS, &random(2 * CS as usize, 3)).unwrap();
    assert_eq!(
        extents(&*img, Some("s")),
        vec![
            Extent::zero(CS, 2 * CS),
            Extent::data(4 * CS, CS),
            Extent::data(15 * CS, 2 * CS),
        ]
    );
    // Sub-range requests are clipped.
    let mut out = Vec::new();
    img.changed_extents(Some("s"), CS + 100..4 * CS + 10, &mut |e| {
        out.push(e);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        out,
        vec![
            Extent::zero(CS + 100, 2 * CS - 100),
            Extent::data(4 * CS, 10)
        ]
    );
    assert_eq!(out[0].kind, ExtentKind::Zero);
}

#[test]
fn diff_of_a_large_image_touches_few_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    // 8 GiB at 4 KiB chunks: 2 Mi chunks, a three-level tree.
    let size = 8u64 << 30;
    store.create("big", size).unwrap();
    let img = store.open("big").unwrap();
    for i in 0..64u64 {
        img.write_at(i * (size / 64), &random(CS as usize, i))
            .unwrap();
    }
    let snaps = img.snapshots().unwrap();
    snaps.create("s1").unwrap();
    img.write_at(size / 2 + 7 * CS, &random(CS as usize, 99))
        .unwrap();
    snaps.create("s2").unwrap();
    let s2 = snaps.open_snapshot("s2").unwrap();
    let before = store.page_loads();
    let found = extents(&*s2, Some("s1"));
    let loads = store.page_loads() - before;
    assert_eq!(found, vec![Extent::data(size / 2 + 7 * CS, CS)]);
    // Root, one interior and one leaf page on each side.
    assert!(loads <= 6, "diff loaded {loads} pages");
    // Diff from nothing visits only the allocated paths too.
    let before = store.page_loads();
    assert_eq!(extents(&*s2, None).len(), 65);
    assert!(store.page_loads() - before < 200);
}

#[test]
fn resize_grows_and_shrink_drops_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.create("img", 0).unwrap();
    let img = store.open("img").unwrap();
    assert_eq!(img.size().unwrap(), 0);
    assert!(extents(&*img, None).is_empty());
    img.resize(3 * CS).unwrap();
    let data = random(3 * CS as usize, 4);
    img.write_at(0, &data).unwrap();
    img.resize(CS + 10).unwrap();
    img.resize(4 * CS).unwrap();
    let mut want = vec![0u8; 4 * CS as usize];
    want[..CS as usize + 10].copy_from_slice(&data[..CS as usize + 10]);
    assert_eq!(read_all(&*img), want);
    // Growing past a tree level and back keeps the data.
    img.resize(2 << 30).unwrap();
    img.write_at((2 << 30) - CS, &data[..CS as usize]).unwrap();
    img.resize(4 * CS).unwrap();
    assert_eq!(read_all(&*img), want);
    drop(img);
    let ro = store.open_read_only("img", None).unwrap();
    assert_eq!(ro.size().unwrap(), 4 * CS);
    assert_eq!(read_all(&*ro), want);
}

#[test]
fn remove_refuses_while_snapshots_exist_or_open_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.create("img", CS).unwrap();
    let img = store.open("img").unwrap();
    assert!(matches!(store.open("img"), Err(ImageError::Busy { .. })));
    assert!(matches!(store.remove("img"), Err(ImageError::Busy { .. })));
    img.snapshots().unwrap().create("s").unwrap();
    drop(img);
    assert!(matches!(
        store.remove("img"),
        Err(ImageError::HasSnapshots { .. })
    ));
    let ro = store.open_read_only("img", None).unwrap();
    ro.snapshots().unwrap().remove("s").unwrap();
    store.remove("img").unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(matches!(
        store.open("img"),
        Err(ImageError::NotFound { .. })
    ));
    assert!(matches!(
        store.remove("img"),
        Err(ImageError::NotFound { .. })
    ));
}

#[test]
fn a_flipped_byte_is_reported_with_chunk_pack_and_users() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.create("img", 2 * CS).unwrap();
    let img = store.open("img").unwrap();
    let data = random(2 * CS as usize, 1);
    img.write_at(0, &data).unwrap();
    img.snapshots().unwrap().create("snap1").unwrap();
    drop(img);
    let bad_id = ChunkId::of(store.inner.blobs.key(), &data[..CS as usize]);
    let pack = std::fs::read_dir(dir.path().join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[8 + 100] ^= 1; // inside the first blob: the first chunk written
    std::fs::write(&pack, &bytes).unwrap();

    let store = LocalStore::open(dir.path()).unwrap();
    let img = store.open_read_only("img", Some("snap1")).unwrap();
    let mut buf = vec![0u8; CS as usize];
    let err = img.read_at(0, &mut buf).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, ImageError::Corrupt { .. }), "{msg}");
    assert!(msg.contains(&bad_id.to_hex()), "{msg}");
    let pack_name = pack.file_stem().unwrap().to_string_lossy().to_string();
    assert!(msg.contains(&pack_name), "{msg}");
    img.read_at(CS, &mut buf).unwrap();

    let report = store.verify(&VerifyScope::Store, &NoProgress).unwrap();
    assert_eq!(report.bad.len(), 1, "{report:?}");
    assert_eq!(report.bad[0].id, bad_id.to_hex());
    let users: Vec<_> = report.bad[0]
        .users
        .iter()
        .map(|u| u.snapshot.clone())
        .collect();
    assert_eq!(users, vec![None, Some("snap1".to_string())]);
    assert_eq!(report.chunks, 2);
    let users = store.chunk_users(&bad_id).unwrap();
    assert_eq!(users.len(), 2);
    let scoped = VerifyScope::Version {
        image: "img".into(),
        snap: Some("snap1".into()),
    };
    let report = store.verify(&scoped, &NoProgress).unwrap();
    assert_eq!(report.bad.len(), 1);
}

#[test]
fn gc_reclaims_removed_images_and_keeps_live_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let keep = random(8 * CS as usize, 1);
    for (name, seed) in [("keep", 1), ("drop", 2)] {
        store.create(name, 8 * CS).unwrap();
        let img = store.open(name).unwrap();
        img.write_at(0, &random(8 * CS as usize, seed)).unwrap();
        img.flush().unwrap();
    }
    let img = store.open("keep").unwrap();
    img.write_at(0, &keep[..CS as usize]).unwrap(); // same data: no-op
    img.flush().unwrap();
    drop(img);
    // Busy while a writer is open.
    let writer = store.open("keep").unwrap();
    let err = gc::run(&store.inner, &NoProgress, std::time::Duration::ZERO).err();
    assert!(matches!(err, Some(StoreError::Busy { .. })), "{err:?}");
    drop(writer);

    let before = store.stats().unwrap();
    store.remove("drop").unwrap();
    let stats = store.gc(&NoProgress).unwrap();
    assert!(stats.bytes_freed > 0, "{stats:?}");
    let after = store.stats().unwrap();
    assert_eq!(after.chunks, 8);
    assert!(after.pack_bytes < before.pack_bytes);
    assert_eq!(
        read_all(&*store.open_read_only("keep", None).unwrap()),
        keep
    );
    // A fresh process sees the same.
    let store = LocalStore::open(dir.path()).unwrap();
    assert_eq!(
        read_all(&*store.open_read_only("keep", None).unwrap()),
        keep
    );
    assert!(store
        .verify(&VerifyScope::Store, &NoProgress)
        .unwrap()
        .is_ok());
    // A second gc finds nothing more to delete.
    assert_eq!(store.gc(&NoProgress).unwrap().packs_deleted, 0);
}

#[test]
fn concurrent_writers_on_one_handle() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let size = 256 * CS;
    store.create("img", size).unwrap();
    let img = store.open("img").unwrap();
    let data = random(size as usize, 11);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (img, data) = (&img, &data);
            s.spawn(move || {
                // Interleaved, unaligned pieces so that threads share chunks.
                let piece = 3 * CS as usize / 2;
                for (i, part) in data.chunks(piece).enumerate() {
                    if i as u64 % 4 == t {
                        img.write_at((i * piece) as u64, part).unwrap();
                    }
                }
            });
        }
    });
    img.flush().unwrap();
    assert_eq!(read_all(&*img), data);
    // Partial writes stored intermediate chunks (garbage for gc), but the
    // published version is whole and verifies.
    drop(img);
    store.gc(&NoProgress).unwrap();
    assert_eq!(read_all(&*store.open_read_only("img", None).unwrap()), data);
    let report = store.verify(&VerifyScope::Store, &NoProgress).unwrap();
    assert!(report.is_ok());
    assert_eq!(report.chunks, 256);
}

#[test]
fn a_second_store_instance_sees_published_data() {
    let dir = tempfile::tempdir().unwrap();
    let a = small_store(dir.path());
    let b = LocalStore::open(dir.path()).unwrap();
    a.create("img", 4 * CS).unwrap();
    let img = a.open("img").unwrap();
    let data = random(4 * CS as usize, 3);
    img.write_at(0, &data).unwrap();
    img.flush().unwrap();
    assert_eq!(read_all(&*b.open_read_only("img", None).unwrap()), data);
}

#[test]
fn a_stale_instance_does_not_dedup_against_chunks_gc_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let a = small_store(dir.path());
    let data = random(4 * CS as usize, 21);
    a.create("old", 4 * CS).unwrap();
    let img = a.open("old").unwrap();
    img.write_at(0, &data).unwrap();
    img.flush().unwrap();
    drop(img);
    let b = LocalStore::open(dir.path()).unwrap(); // knows the chunks
    a.remove("old").unwrap();
    assert!(a.gc(&NoProgress).unwrap().packs_deleted >= 1);
    b.create("new", 4 * CS).unwrap();
    let img = b.open("new").unwrap();
    img.write_at(0, &data).unwrap();
    img.flush().unwrap();
    drop(img);
    let fresh = LocalStore::open(dir.path()).unwrap();
    assert_eq!(read_all(&*fresh.open_read_only("new", None).unwrap()), data);
}

#[test]
fn an_interrupted_repack_leaves_a_readable_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let keep = random(4 * CS as usize, 1);
    store.create("keep", 4 * CS).unwrap();
    store.create("drop", 12 * CS).unwrap();
    // Both images in one pack: after "drop" goes the pack is mostly dead.
    let (k, d) = (store.open("keep").unwrap(), store.open("drop").unwrap());
    k.write_at(0, &keep).unwrap();
    d.write_at(0, &random(12 * CS as usize, 2)).unwrap();
    k.flush().unwrap();
    d.flush().unwrap();
    drop((k, d));
    let packs_dir = dir.path().join("packs");
    let saved: Vec<_> = std::fs::read_dir(&packs_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    store.remove("drop").unwrap();
    let stats = store.gc(&NoProgress).unwrap();
    assert!(stats.packs_repacked >= 1, "{stats:?}");
    // Simulate a kill after the new pack was written but before the old
    // ones were deleted: both exist.
    for (path, bytes) in &saved {
        std::fs::write(path, bytes).unwrap();
    }
    let store = LocalStore::open(dir.path()).unwrap();
    assert_eq!(
        read_all(&*store.open_read_only("keep", None).unwrap()),
        keep
    );
    store.gc(&NoProgress).unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    assert_eq!(
        read_all(&*store.open_read_only("keep", None).unwrap()),
        keep
    );
    assert!(store
        .verify(&VerifyScope::Store, &NoProgress)
        .unwrap()
        .is_ok());
    assert_eq!(store.stats().unwrap().chunks, 4);
}

#[test]
fn diff_across_a_resize_that_changes_the_tree_depth() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.create("img", 4 * CS).unwrap();
    let img = store.open("img").unwrap();
    let snaps = img.snapshots().unwrap();
    img.write_at(0, &random(2 * CS as usize, 1)).unwrap();
    snaps.create("small").unwrap();
    let big = 8u64 << 30;
    img.resize(big).unwrap();
    img.write_at(big - CS, &random(CS as usize, 2)).unwrap();
    assert_eq!(
        extents(&*img, Some("small")),
        vec![Extent::data(big - CS, CS)]
    );
    snaps.create("big").unwrap();
    img.resize(4 * CS).unwrap();
    img.write_zeroes(0, CS).unwrap();
    assert_eq!(extents(&*img, Some("big")), vec![Extent::zero(0, CS)]);
    assert_eq!(extents(&*img, Some("small")), vec![Extent::zero(0, CS)]);
}

#[test]
fn zeroing_whole_leaves_makes_holes() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let leaf = tree::FANOUT as u64 * CS;
    store.create("img", 3 * leaf).unwrap();
    let img = store.open("img").unwrap();
    img.write_at(leaf - CS, &random(2 * CS as usize, 1))
        .unwrap();
    img.write_at(2 * leaf + 5 * CS, &random(CS as usize, 2))
        .unwrap();
    img.write_zeroes(CS, 3 * leaf - 2 * CS).unwrap();
    assert!(extents(&*img, None).is_empty());
    let mut buf = vec![1u8; 3 * leaf as usize];
    img.read_at(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
}

#[test]
fn packs_roll_over_while_threads_write_and_all_are_sealed_by_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store
        .inner
        .blobs
        .pack_target
        .store(64 << 10, std::sync::atomic::Ordering::Relaxed);
    let size = 1024 * CS;
    store.create("img", size).unwrap();
    let img = store.open("img").unwrap();
    let data = random(size as usize, 5);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (img, data) = (&img, &data);
            s.spawn(move || {
                for (i, c) in data.chunks(16 * CS as usize).enumerate() {
                    if i % 4 == t {
                        img.write_at(i as u64 * 16 * CS, c).unwrap();
                    }
                }
            });
        }
    });
    img.flush().unwrap();
    let parts = std::fs::read_dir(dir.path().join("packs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "part")
        })
        .count();
    assert_eq!(parts, 0);
    drop(img);
    let store = LocalStore::open(dir.path()).unwrap();
    assert!(store.stats().unwrap().packs > 10);
    assert_eq!(read_all(&*store.open_read_only("img", None).unwrap()), data);
    assert!(store
        .verify(&VerifyScope::Store, &NoProgress)
        .unwrap()
        .is_ok());
}

#[test]
fn a_corrupt_index_page_is_reported_and_gc_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.create("img", 4 * CS).unwrap();
    let img = store.open("img").unwrap();
    img.write_at(0, &random(4 * CS as usize, 8)).unwrap();
    img.snapshots().unwrap().create("s").unwrap();
    drop(img);
    let head = store.inner.records.read_head("img").unwrap();
    let pack = std::fs::read_dir(dir.path().join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .unwrap();
    let (_, entries, _) = pack::read_index(&pack, None).unwrap();
    let page = entries.iter().find(|e| e.id == head.root).unwrap();
    assert_eq!(page.kind, pack::BlobKind::Page);
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[page.offset as usize + 3] ^= 0x40;
    std::fs::write(&pack, &bytes).unwrap();

    let store = LocalStore::open(dir.path()).unwrap();
    let img = store.open_read_only("img", None).unwrap();
    let err = img.read_at(0, &mut [0u8; 16]).err().unwrap();
    assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
    let report = store.verify(&VerifyScope::Store, &NoProgress).unwrap();
    assert_eq!(report.bad.len(), 1, "{report:?}");
    assert_eq!(report.bad[0].kind, "page");
    assert_eq!(report.bad[0].users.len(), 2);
    // gc runs, but deletes and repacks nothing: what the page references
    // is unknown.
    let packs_before = std::fs::read_dir(dir.path().join("packs")).unwrap().count();
    let stats = store.gc(&NoProgress).unwrap();
    assert_eq!((stats.packs_deleted, stats.packs_repacked), (0, 0));
    assert_eq!(stats.kept.len(), 1, "{stats:?}");
    assert!(std::fs::read_dir(dir.path().join("packs")).unwrap().count() >= packs_before);
}

#[test]
fn a_reader_in_another_instance_survives_a_repack() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let keep = random(4 * CS as usize, 1);
    store.create("keep", 4 * CS).unwrap();
    store.create("drop", 12 * CS).unwrap();
    let (k, d) = (store.open("keep").unwrap(), store.open("drop").unwrap());
    k.write_at(0, &keep).unwrap();
    d.write_at(0, &random(12 * CS as usize, 2)).unwrap();
    k.flush().unwrap();
    d.flush().unwrap();
    drop((k, d));
    let reader = LocalStore::open(dir.path()).unwrap();
    let img = reader.open_read_only("keep", None).unwrap();
    let mut first = vec![0u8; CS as usize];
    img.read_at(0, &mut first).unwrap();
    store.remove("drop").unwrap();
    let stats = store.gc(&NoProgress).unwrap();
    assert!(stats.packs_repacked >= 1, "{stats:?}");
    // The reader's map still points into the unlinked pack: still readable.
    assert_eq!(read_all(&*img), keep);
    // And a fresh handle of the same instance too.
    assert_eq!(
        read_all(&*reader.open_read_only("keep", None).unwrap()),
        keep
    );
}

/// Throughput smoke test: `cargo test --release -p blockback-core --lib
/// store::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::init(dir.path(), InitOptions::default()).unwrap();
    let size = 1u64 << 30;
    store.create("img", size).unwrap();
    let img = store.open("img").unwrap();
    let req = 1usize << 20;
    let mut block = random(req, 1);
    for (i, c) in block.chunks_mut(32 << 10).enumerate() {
        match i % 3 {
            0 => {}
            1 => c.fill(0),
            _ => c
                .iter_mut()
                .enumerate()
                .for_each(|(j, b)| *b = b"some text "[j % 10]),
        }
    }
    let t = std::time::Instant::now();
    std::thread::scope(|s| {
        for th in 0..4u64 {
            let (img, block) = (&img, &block);
            s.spawn(move || {
                let mut buf = block.clone();
                for i in (th..size / req as u64).step_by(4) {
                    for (k, c) in buf.chunks_mut(32 << 10).enumerate() {
                        if k % 3 != 1 {
                            c[..8].copy_from_slice(&(i * 64 + k as u64).to_le_bytes());
                        }
                    }
                    img.write_at(i * req as u64, &buf).unwrap();
                }
            });
        }
    });
    img.flush().unwrap();
    let w = t.elapsed();
    let t = std::time::Instant::now();
    let mut buf = vec![0u8; req];
    for i in 0..size / req as u64 {
        img.read_at(i * req as u64, &mut buf).unwrap();
    }
    let r = t.elapsed();
    let mb = (size >> 20) as f64;
    println!(
        "write {:.0} MiB/s, read {:.0} MiB/s",
        mb / w.as_secs_f64(),
        mb / r.as_secs_f64()
    );
    println!("{:?}", store.stats().unwrap());
}
