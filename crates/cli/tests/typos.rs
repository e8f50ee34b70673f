//! Typos and missing things: refused with one clear line, creating nothing;
//! and what is gone does not keep a backup from being deleted.

mod util;
use std::process::Command;
use util::*;

/// Runs blockback in `cwd` with exactly `args` (no store or catalog added).
fn run_in(cwd: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_blockback"))
        .current_dir(cwd)
        .args(args)
        .env_remove("BLOCKBACK_STORE")
        .env_remove("BLOCKBACK_CATALOG")
        .env("XDG_DATA_HOME", cwd.join("xdg"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.code(), stderr)
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn unknown_store_schemes_and_bare_words_are_refused_creating_nothing() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, MIB, &[(0, 4096)], 1);
    let before = entries(dir.tmp.path());
    for (store, says) in [
        ("s3://bucket", "unknown scheme s3:"),
        ("rbd", "rbd:POOL"),
        ("local:foo", "directory"),
    ] {
        let catalog = dir.path("catalog.sqlite");
        let args = ["--store", store, "--catalog", catalog.to_str().unwrap()];
        let mut all = args.to_vec();
        all.extend(["backup", "create", src.to_str().unwrap()]);
        let (code, stderr) = run_in(dir.tmp.path(), &all);
        assert_eq!(code, Some(1), "--store {store}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "--store {store}: {stderr}");
        assert_eq!(
            entries(dir.tmp.path()),
            before,
            "--store {store} created something"
        );
    }
}

#[test]
fn a_catalog_in_a_missing_directory_is_refused_creating_nothing() {
    let dir = Dir::new();
    let catalog = dir.path("nonexistent/deep/x");
    let store = dir.store();
    let args = [
        "--store",
        store.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
        "backup",
        "list",
    ];
    let (code, stderr) = run_in(dir.tmp.path(), &args);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!dir.path("nonexistent").exists());
}

#[test]
fn a_backup_whose_store_directory_is_gone_can_be_deleted() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, MIB, &[(0, 4096)], 2);
    let store = dir.path("gone-store");
    let record = dir.json(&[
        "--store",
        store.to_str().unwrap(),
        "backup",
        "create",
        src.to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&store).unwrap();
    let out = dir.run(&["backup", "delete", &id_of(&record)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("does not exist"), "no note: {stderr}");
    assert!(dir.json(&["backup", "list"]).as_array().unwrap().is_empty());
    assert!(!store.exists(), "delete re-created the store");
}

#[test]
fn adopt_without_a_store_says_it_does_not_exist() {
    let dir = Dir::new();
    let err = dir.fails(&["adopt"]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!err.contains("not empty"), "{err}");
    assert!(!dir.store().exists());
}
