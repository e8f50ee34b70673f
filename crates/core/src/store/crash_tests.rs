//! Crash safety with a real kill -9: a child process (this test binary,
//! re-run on one ignored test) writes, flushes and snapshots in a loop; the
//! parent kills it at various moments and checks that every snapshot holds
//! exactly what was written before it and that the store verifies.

use super::*;
use crate::image::Pool;
use crate::progress::NoProgress;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CS: u64 = 4096;
const SIZE: u64 = 2 << 20;
const ENV: &str = "BLOCKBACK_STORE_CRASH_CHILD";

fn content(gen: u64) -> Vec<u8> {
    (0..SIZE)
        .map(|i| match (i / CS + gen) % 4 {
            0 => 0,
            1 => (gen as u8).wrapping_add(1),
            _ => ((i.wrapping_mul(2654435761) >> 7) as u8) ^ gen as u8,
        })
        .collect()
}

/// The child: endless write / flush / snapshot generations.
#[test]
#[ignore]
fn crash_child() {
    let Some(path) = std::env::var_os(ENV) else {
        return;
    };
    let store = LocalStore::open(Path::new(&path)).unwrap();
    let img = store.open("img").unwrap();
    let snaps = img.snapshots().unwrap();
    let first = snaps.list().unwrap().len() as u64;
    for gen in first.. {
        let data = content(gen);
        let half = SIZE as usize / 2;
        // Unaligned pieces, a flush half-way: HEAD is published mid-generation.
        img.write_at(0, &data[..half + 100]).unwrap();
        img.flush().unwrap();
        img.write_at(half as u64 + 100, &data[half + 100..])
            .unwrap();
        snaps.create(&format!("gen.{gen:06}")).unwrap();
    }
}

/// The gc child: endless make-garbage / gc rounds (repacks included).
#[test]
#[ignore]
fn crash_gc_child() {
    let Some(path) = std::env::var_os(ENV) else {
        return;
    };
    let store = LocalStore::open(Path::new(&path)).unwrap();
    for round in 0u64.. {
        let name = format!("tmp{round}");
        store.create(&name, SIZE).unwrap();
        let img = store.open(&name).unwrap();
        img.write_at(0, &content(round + 1000)).unwrap();
        img.flush().unwrap();
        drop(img);
        store.remove(&name).unwrap();
        store.gc(&NoProgress).unwrap();
    }
}

fn run_and_kill(path: &Path, child: &str, after: Duration) {
    let exe = std::env::current_exe().unwrap();
    let test = format!("store::crash_tests::{child}");
    let mut child = Command::new(exe)
        .args(["--exact", &test, "--ignored", "--nocapture"])
        .env(ENV, path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn check_store(path: &Path) -> usize {
    let store = LocalStore::open(path).unwrap();
    let img = store.open_read_only("img", None).unwrap();
    let mut buf = vec![0u8; SIZE as usize];
    img.read_at(0, &mut buf).unwrap();
    let snaps = img.snapshots().unwrap().list().unwrap();
    for (gen, s) in snaps.iter().enumerate() {
        assert_eq!(s.name, format!("gen.{gen:06}"));
        let snap = store.open_read_only("img", Some(&s.name)).unwrap();
        snap.read_at(0, &mut buf).unwrap();
        assert!(buf == content(gen as u64), "snapshot {} differs", s.name);
    }
    let report = store.verify(&VerifyScope::Store, &NoProgress).unwrap();
    assert!(report.is_ok(), "{:?}", report.bad);
    snaps.len()
}

#[test]
fn kill_9_at_any_moment_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::init(
        dir.path(),
        InitOptions {
            chunk_size: CS as u32,
        },
    )
    .unwrap();
    store.create("img", SIZE).unwrap();
    drop(store);
    let mut generations = 0;
    for ms in [150u64, 330, 90, 500, 260] {
        run_and_kill(dir.path(), "crash_child", Duration::from_millis(ms));
        generations = check_store(dir.path());
        eprintln!("after kill at {ms} ms: {generations} generations");
    }
    assert!(generations > 0, "the child never got to a snapshot");
    // gc after the crashes reclaims their garbage and keeps everything.
    let store = LocalStore::open(dir.path()).unwrap();
    store.gc(&NoProgress).unwrap();
    drop(store);
    assert_eq!(check_store(dir.path()), generations);
}

#[test]
fn kill_9_during_gc_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::init(
        dir.path(),
        InitOptions {
            chunk_size: CS as u32,
        },
    )
    .unwrap();
    store.create("img", SIZE).unwrap();
    let img = store.open("img").unwrap();
    for gen in 0..3 {
        img.write_at(0, &content(gen)).unwrap();
        img.snapshots()
            .unwrap()
            .create(&format!("gen.{gen:06}"))
            .unwrap();
    }
    drop((img, store));
    for ms in [120u64, 270, 60, 400, 200] {
        run_and_kill(dir.path(), "crash_gc_child", Duration::from_millis(ms));
        assert_eq!(check_store(dir.path()), 3);
    }
    let store = LocalStore::open(dir.path()).unwrap();
    store.gc(&NoProgress).unwrap();
    drop(store);
    assert_eq!(check_store(dir.path()), 3);
}

fn object_content(n: u64) -> Vec<u8> {
    let len = 256 * 1024 + (n % 7) * 100_003;
    (0..len).map(|i| (i.wrapping_mul(31) ^ n) as u8).collect()
}

/// The object child: endless puts of obj.<n> (n counting on from what
/// exists), a gc every few puts.
#[test]
#[ignore]
fn crash_object_child() {
    let Some(path) = std::env::var_os(ENV) else {
        return;
    };
    let store = LocalStore::open(Path::new(&path)).unwrap();
    let first = (0..)
        .find(|n| store.get_object(&format!("obj.{n}")).unwrap().is_none())
        .unwrap();
    for n in first.. {
        store
            .put_object(&format!("obj.{n}"), &object_content(n))
            .unwrap();
        if n % 5 == 4 {
            store.gc(&NoProgress).unwrap();
        }
    }
}

/// Objects 0..k exist whole, nothing after them; returns k.
fn check_objects(path: &Path) -> u64 {
    let store = LocalStore::open(path).unwrap();
    let mut n = 0;
    while let Some(data) = store.get_object(&format!("obj.{n}")).unwrap() {
        assert!(data == object_content(n), "obj.{n} is not what was put");
        n += 1;
    }
    for later in n + 1..n + 3 {
        let name = format!("obj.{later}");
        assert!(store.get_object(&name).unwrap().is_none(), "{name} exists");
    }
    n
}

#[test]
fn kill_9_during_object_puts_leaves_whole_objects_or_none() {
    let dir = tempfile::tempdir().unwrap();
    drop(LocalStore::init(dir.path(), InitOptions::default()).unwrap());
    let mut count = 0;
    for ms in [80u64, 210, 35, 150] {
        run_and_kill(dir.path(), "crash_object_child", Duration::from_millis(ms));
        count = check_objects(dir.path());
        eprintln!("after kill at {ms} ms: {count} objects");
    }
    assert!(count > 0, "the child never put an object");
    // gc removes the temp files of killed puts and keeps every object.
    let store = LocalStore::open(dir.path()).unwrap();
    store.gc(&NoProgress).unwrap();
    let objects = dir.path().join(super::objects::OBJECTS_DIR);
    for entry in std::fs::read_dir(objects).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(!name.to_string_lossy().starts_with('.'), "{name:?} left");
    }
    drop(store);
    assert_eq!(check_objects(dir.path()), count);
}
