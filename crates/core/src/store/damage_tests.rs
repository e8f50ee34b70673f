//! Damage in the store: chunks found bad are quarantined and stored again
//! by the next write of their content; one unreadable pack only affects the
//! versions that used it.

use super::pack::{self, BlobKind};
use super::tests::{random, small_store, CS};
use super::*;
use crate::image::{ImageError, Pool};
use crate::progress::NoProgress;
use std::path::{Path, PathBuf};

/// Writes `data` into a new image `name` and snapshots it `s`.
fn backup(store: &LocalStore, name: &str, data: &[u8]) {
    if !store.list().unwrap().contains(&name.to_string()) {
        store.create(name, data.len() as u64).unwrap();
    }
    let img = store.open(name).unwrap();
    img.write_at(0, data).unwrap();
    let snaps = img.snapshots().unwrap();
    let n = snaps.list().unwrap().len();
    snaps.create(&format!("s{n}")).unwrap();
}

fn read(store: &LocalStore, name: &str, snap: &str) -> Result<Vec<u8>, ImageError> {
    let img = store.open_read_only(name, Some(snap))?;
    let mut buf = vec![0u8; img.size()? as usize];
    img.read_at(0, &mut buf)?;
    Ok(buf)
}

fn packs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    out.sort();
    out
}

/// Flips a byte inside the stored copy of chunk `id`; returns its pack.
fn damage_chunk(dir: &Path, id: &ChunkId) -> PathBuf {
    for path in packs(dir) {
        let (_, entries, _) = pack::read_index(&path, None).unwrap();
        if let Some(e) = entries.iter().find(|e| e.id == *id) {
            assert_eq!(e.kind, BlobKind::Chunk);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[e.offset as usize + 7] ^= 0x10;
            std::fs::write(&path, &bytes).unwrap();
            return path;
        }
    }
    panic!("chunk {id} not found in any pack");
}

fn first_chunk_id(store: &LocalStore, data: &[u8]) -> ChunkId {
    ChunkId::of(store.inner.blobs.key(), &data[..CS as usize])
}

#[test]
fn a_write_that_reuses_a_damaged_copy_stores_the_content_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let data = random(8 * CS as usize, 1);
    backup(&store, "a", &data);
    let bad = first_chunk_id(&store, &data);
    damage_chunk(dir.path(), &bad);

    // Nothing has read the damaged copy yet: the new image (another volume,
    // or a full backup into a new base) reuses it only after checking it.
    let store = LocalStore::open(dir.path()).unwrap();
    backup(&store, "b", &data);
    assert_eq!(read(&store, "b", "s0").unwrap(), data);
    // The same id now has an intact copy: the old version is whole again.
    assert_eq!(read(&store, "a", "s0").unwrap(), data);
    let fresh = LocalStore::open(dir.path()).unwrap();
    assert_eq!(read(&fresh, "a", "s0").unwrap(), data);
    let report = fresh.verify(&VerifyScope::Store, &NoProgress).unwrap();
    assert!(report.is_ok(), "{report:?}");
    // The damaged copy is out of use and gc drops it with its pack.
    assert!(dir.path().join("packs").read_dir().unwrap().any(|e| e
        .unwrap()
        .path()
        .extension()
        .is_some_and(|x| x == "bad")));
    fresh.gc(&NoProgress).unwrap();
    assert!(fresh
        .verify(&VerifyScope::Store, &NoProgress)
        .unwrap()
        .is_ok());
}

#[test]
fn a_chunk_found_damaged_is_quarantined_and_healed_by_the_next_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let data = random(8 * CS as usize, 2);
    backup(&store, "a", &data);
    let bad = first_chunk_id(&store, &data);
    damage_chunk(dir.path(), &bad);

    let store = LocalStore::open(dir.path()).unwrap();
    let report = store.verify(&VerifyScope::Store, &NoProgress).unwrap();
    assert_eq!(report.bad.len(), 1, "{report:?}");
    assert_eq!(report.bad[0].id, bad.to_hex());
    // Known bad in every later process, with what to do about it.
    let later = LocalStore::open(dir.path()).unwrap();
    let err = read(&later, "a", "s0").unwrap_err().to_string();
    assert!(
        err.contains("quarantined") && err.contains("repair"),
        "{err}"
    );

    // An incremental of the same data into the same image: the chunk at
    // the same place is the same id, yet it is stored again.
    backup(&later, "a", &data);
    assert_eq!(read(&later, "a", "s1").unwrap(), data);
    assert_eq!(read(&later, "a", "s0").unwrap(), data);
    let fresh = LocalStore::open(dir.path()).unwrap();
    assert!(fresh
        .verify(&VerifyScope::Store, &NoProgress)
        .unwrap()
        .is_ok());
}

#[test]
fn a_quarantined_chunk_is_kept_by_gc_until_an_intact_copy_exists() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let data = random(8 * CS as usize, 3);
    backup(&store, "a", &data);
    let bad = first_chunk_id(&store, &data);
    let pack = damage_chunk(dir.path(), &bad);
    let store = LocalStore::open(dir.path()).unwrap();
    assert!(read(&store, "a", "s0").is_err());
    let stats = store.gc(&NoProgress).unwrap();
    assert!(pack.exists(), "the only copy, damaged or not, stays");
    assert_eq!(stats.kept.len(), 1, "{stats:?}");
    backup(&store, "a", &data);
    store.gc(&NoProgress).unwrap();
    assert_eq!(read(&store, "a", "s0").unwrap(), data);
}

/// Two versions in two packs: `a` (first pack) and `b` (second).
fn two_packs(dir: &Path) -> (Vec<u8>, Vec<u8>, PathBuf) {
    let store = small_store(dir);
    let a = random(8 * CS as usize, 10);
    backup(&store, "a", &a);
    let first = packs(dir);
    let b = random(8 * CS as usize, 11);
    backup(&store, "b", &b);
    assert_eq!(packs(dir).len(), 2);
    (a, b, first[0].clone())
}

/// Damage done to the pack of `a` in each test below.
fn check_only_users_of_the_pack_fail(dir: &Path, a: &[u8], b: &[u8]) {
    let store = LocalStore::open(dir).unwrap();
    assert_eq!(read(&store, "b", "s0").unwrap(), b);
    let err = read(&store, "a", "s0").unwrap_err();
    assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
    assert_ne!(read(&store, "a", "s0").ok().as_deref(), Some(a));
    let report = store.verify(&VerifyScope::Store, &NoProgress).unwrap();
    assert_eq!(report.unreadable_packs.len(), 1, "{report:?}");
    assert!(!report.bad.is_empty());
    for bad in &report.bad {
        let images: Vec<_> = bad.users.iter().map(|u| u.image.as_str()).collect();
        assert!(images.iter().all(|i| *i == "a"), "{report:?}");
    }
    let scoped = VerifyScope::Version {
        image: "b".into(),
        snap: Some("s0".into()),
    };
    assert!(store.verify(&scoped, &NoProgress).unwrap().is_ok());
    // gc works and never deletes what it cannot account for.
    let stats = store.gc(&NoProgress).unwrap();
    assert_eq!(stats.unreadable_packs.len(), 1, "{stats:?}");
    assert_eq!(read(&store, "b", "s0").unwrap(), b);
}

#[test]
fn a_pack_with_a_damaged_index_only_fails_the_versions_using_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, pack) = two_packs(dir.path());
    let mut bytes = std::fs::read(&pack).unwrap();
    let len = bytes.len();
    bytes[len - 56 - 10] ^= 0xff; // inside the index, before the footer
    std::fs::write(&pack, &bytes).unwrap();
    check_only_users_of_the_pack_fail(dir.path(), &a, &b);
    assert!(pack.exists());
}

#[test]
fn a_pack_with_a_damaged_footer_only_fails_the_versions_using_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, pack) = two_packs(dir.path());
    let mut bytes = std::fs::read(&pack).unwrap();
    let len = bytes.len();
    bytes[len - 3] ^= 0xff; // the footer magic
    std::fs::write(&pack, &bytes).unwrap();
    check_only_users_of_the_pack_fail(dir.path(), &a, &b);
    assert!(pack.exists());
}

#[test]
fn a_truncated_pack_only_fails_the_versions_using_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, pack) = two_packs(dir.path());
    let len = std::fs::metadata(&pack).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&pack).unwrap();
    file.set_len(len / 2).unwrap();
    check_only_users_of_the_pack_fail(dir.path(), &a, &b);
    assert!(pack.exists());
}

#[test]
fn a_stray_junk_pack_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let data = random(8 * CS as usize, 12);
    backup(&store, "a", &data);
    let junk = dir.path().join("packs").join("junk.pack");
    std::fs::write(&junk, b"not a pack at all").unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    assert_eq!(read(&store, "a", "s0").unwrap(), data);
    let report = store.verify(&VerifyScope::Store, &NoProgress).unwrap();
    assert!(report.bad.is_empty(), "{report:?}");
    assert_eq!(report.unreadable_packs[0].pack, "junk.pack");
    let stats = store.gc(&NoProgress).unwrap();
    assert_eq!(stats.unreadable_packs.len(), 1);
    assert!(junk.exists());
    // New writes work beside it.
    backup(&store, "a", &random(8 * CS as usize, 13));
}
