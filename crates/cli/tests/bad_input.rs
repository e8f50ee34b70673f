//! Bad input: one clear error line, exit code 1, nothing changed.

mod util;
use fs2::FileExt;
use util::*;

#[test]
fn missing_source_is_refused_and_creates_no_store() {
    let dir = Dir::new();
    let err = dir.fails(&["backup", "create", dir.path("nope.img").to_str().unwrap()]);
    assert!(err.contains("nope.img"), "{err}");
    assert!(!dir.store().exists());
}

#[test]
fn zero_size_volume_is_refused() {
    let dir = Dir::new();
    let src = dir.path("empty.img");
    std::fs::File::create(&src).unwrap();
    let err = dir.fails(&["backup", "create", src.to_str().unwrap()]);
    assert!(err.contains("need non-zero volume size"), "{err}");
    assert!(dir.json(&["backup", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn directory_source_is_refused() {
    let dir = Dir::new();
    let err = dir.fails(&["backup", "create", dir.tmp.path().to_str().unwrap()]);
    assert!(err.contains("directory"), "{err}");
}

#[test]
fn unknown_backup_id_is_refused_and_no_target_is_created() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, MIB, &[(0, 4096)], 1);
    dir.backup(&src);
    let target = dir.path("out.img");
    let err = dir.fails(&[
        "backup",
        "restore",
        "00000000-0000-0000-0000-000000000000",
        target.to_str().unwrap(),
    ]);
    assert!(err.contains("not found"), "{err}");
    assert!(!target.exists());
    dir.fails(&["backup", "show", "zzz"]);
    dir.fails(&["backup", "delete", "zzz"]);
}

#[test]
fn too_small_target_is_refused_and_left_unchanged() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 4 * MIB, &[(0, MIB)], 2);
    let record = dir.backup(&src);
    let target = dir.path("small.img");
    make_image(&target, 2 * MIB, &[(0, 2 * MIB)], 3);
    let before = sha256(&target);
    let err = dir.fails(&[
        "backup",
        "restore",
        &id_of(&record),
        target.to_str().unwrap(),
    ]);
    assert!(err.contains("at least"), "{err}");
    assert_eq!(sha256(&target), before);
}

#[test]
fn directory_target_is_refused() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, MIB, &[(0, 4096)], 4);
    let record = dir.backup(&src);
    let err = dir.fails(&[
        "backup",
        "restore",
        &id_of(&record),
        dir.tmp.path().to_str().unwrap(),
    ]);
    assert!(err.contains("directory"), "{err}");
}

#[test]
fn store_path_that_cannot_be_created_is_refused() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, MIB, &[(0, 4096)], 5);
    let blocker = dir.path("file");
    std::fs::write(&blocker, b"x").unwrap();
    let store = blocker.join("store");
    let out = dir
        .command(&[
            "--store",
            store.to_str().unwrap(),
            "backup",
            "create",
            src.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("store"));
}

#[test]
fn second_backup_of_a_volume_while_one_runs_is_refused() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, MIB, &[(0, 4096)], 6);
    let first = dir.backup(&src);
    let volume = first["volume_id"].as_str().unwrap();
    let lock_path = dir
        .path("catalog.locks")
        .join(format!("volume-{volume}.lock"));
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.lock_exclusive().unwrap();
    let err = dir.fails(&["backup", "create", src.to_str().unwrap()]);
    assert!(err.contains("running"), "{err}");
    drop(lock);
    assert_eq!(dir.json(&["backup", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn usage_errors_exit_with_2() {
    let dir = Dir::new();
    assert_eq!(dir.run(&["backup", "frobnicate"]).status.code(), Some(2));
    assert_eq!(
        dir.run(&["backup", "create", "a", "--meta", "novalue"])
            .status
            .code(),
        Some(1)
    );
}
