//! Killing the process: a kill -9 at any point loses no completed backup.

mod util;
use std::process::Stdio;
use std::time::Duration;
use util::*;

const SIZE: u64 = 96 * MIB;

/// Backs up once, changes the image, then kills a second backup `delay`
/// after it is recorded as creating; the store must still verify and the
/// first backup restore. Returns whether the kill landed mid-backup (the
/// backup ended as error).
fn kill_backup_after(delay: Duration, seed: u64) -> bool {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, SIZE, &[(0, 40 * MIB), (50 * MIB, 40 * MIB)], seed);
    let first = dir.backup(&src);
    let v1 = sha256(&src);
    make_image(
        &src,
        SIZE,
        &[(0, 40 * MIB), (50 * MIB, 40 * MIB)],
        seed + 100,
    );
    let mut child = dir
        .command(&["--quiet", "backup", "create", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Timing from the spawn missed the backup altogether on a loaded CI
    // machine; from the creating record the delays fall inside the copy.
    wait_for_creating(&dir, &mut child);
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
    // The next command recovers: the killed backup (if it did not finish) is error.
    let list = dir.json(&["backup", "list"]);
    let mut interrupted = false;
    for b in list.as_array().unwrap() {
        assert!(
            b["status"] == "available" || b["status"] == "error",
            "left {b}"
        );
        interrupted |= b["status"] == "error";
    }
    dir.ok(&["verify", &id_of(&first)]);
    let out = dir.path("r.img");
    dir.ok(&["backup", "restore", &id_of(&first), out.to_str().unwrap()]);
    assert_eq!(sha256(&out), v1);
    // And a new backup works after the crash.
    let third = dir.backup(&src);
    assert_eq!(third["status"], "available");
    dir.ok(&["verify"]);
    interrupted
}

#[test]
fn kill_during_backup_keeps_previous_backups_restorable() {
    let mut interrupted = 0;
    for (i, ms) in [0u64, 40, 120, 300].into_iter().enumerate() {
        interrupted += kill_backup_after(Duration::from_millis(ms), i as u64 * 10) as u32;
    }
    eprintln!("{interrupted} of 4 kills landed mid-backup");
    assert!(
        interrupted > 0,
        "no kill landed during a backup: the test proves nothing"
    );
}

#[test]
fn kill_during_gc_keeps_the_store_consistent() {
    for ms in [5u64, 40, 120] {
        let dir = Dir::new();
        let src = dir.path("disk.img");
        make_image(&src, SIZE, &[(0, 40 * MIB)], ms);
        let doomed = dir.backup(&src);
        make_image(&src, SIZE, &[(0, 20 * MIB), (60 * MIB, 30 * MIB)], ms + 1);
        let kept = dir.json(&["backup", "create", "--full", src.to_str().unwrap()]);
        let kept_sum = sha256(&src);
        dir.ok(&["backup", "delete", &id_of(&doomed)]);
        let mut child = dir
            .command(&["--quiet", "gc"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        dir.ok(&["verify"]);
        let out = dir.path("r.img");
        dir.ok(&["backup", "restore", &id_of(&kept), out.to_str().unwrap()]);
        assert_eq!(sha256(&out), kept_sum);
        dir.ok(&["gc"]);
        dir.ok(&["verify"]);
    }
}

const DIFF_SIZE: u64 = 192 * MIB;

/// Loads `file` into the store image `local:vol` (HEAD) through an rbd diff stream.
fn load_volume(dir: &Dir, file: &std::path::Path) {
    let stream = dir.path("load.diff");
    dir.ok(&[
        "export-diff",
        file.to_str().unwrap(),
        stream.to_str().unwrap(),
    ]);
    dir.ok(&["import-diff", stream.to_str().unwrap(), "local:vol"]);
}

/// A differential backup of a local-store volume killed after `delay`:
/// the previous backup stays restorable and the chain continues.
fn kill_differential_after(delay: Duration, seed: u64) -> bool {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    let extents = [(0, 60 * MIB), (100 * MIB, 60 * MIB)];
    make_image(&src, DIFF_SIZE, &extents, seed);
    load_volume(&dir, &src);
    let first = dir.json(&["backup", "create", "local:vol"]);
    let v1 = sha256(&src);
    make_image(&src, DIFF_SIZE, &extents, seed + 100);
    load_volume(&dir, &src);
    let mut child = dir
        .command(&["--quiet", "backup", "create", "local:vol"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_creating(&dir, &mut child);
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
    let list = dir.json(&["backup", "list"]);
    let statuses: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].clone())
        .collect();
    assert!(
        statuses.iter().all(|s| s == "available" || s == "error"),
        "left {statuses:?}"
    );
    let interrupted = statuses.iter().any(|s| s == "error");
    let out = dir.path("r.img");
    dir.ok(&["backup", "restore", &id_of(&first), out.to_str().unwrap()]);
    assert_eq!(sha256(&out), v1);
    let next = dir.json(&["backup", "create", "local:vol"]);
    if interrupted {
        assert_eq!(
            next["kind"], "incremental",
            "the chain did not survive the kill: {next}"
        );
    }
    std::fs::remove_file(&out).unwrap();
    dir.ok(&["backup", "restore", &id_of(&next), out.to_str().unwrap()]);
    assert_eq!(sha256(&out), sha256(&src));
    dir.ok(&["verify"]);
    interrupted
}

#[test]
fn kill_during_differential_backup_keeps_the_chain() {
    let mut interrupted = 0;
    for (i, ms) in [0u64, 40, 120, 300].into_iter().enumerate() {
        interrupted += kill_differential_after(Duration::from_millis(ms), 1000 + i as u64) as u32;
    }
    eprintln!("{interrupted} of 4 kills landed mid-backup");
    assert!(
        interrupted > 0,
        "no kill landed during a backup: the test proves nothing"
    );
}

/// A differential backup of a local-store volume killed as soon as it
/// says it committed (its debug log line): whether it got to publish
/// itself or recovery finishes it, it ends available, restores what the
/// volume held, and the next backup continues from it. Returns whether
/// recovery was what finished it.
fn kill_right_after_commit(seed: u64) -> bool {
    use std::io::BufRead;
    let dir = Dir::new();
    let src = dir.path("disk.img");
    let extents = [(0, 60 * MIB), (100 * MIB, 60 * MIB)];
    make_image(&src, DIFF_SIZE, &extents, seed);
    load_volume(&dir, &src);
    dir.json(&["backup", "create", "local:vol"]);
    make_image(&src, DIFF_SIZE, &extents, seed + 100);
    load_volume(&dir, &src);
    let v2 = sha256(&src);
    let mut child = dir
        .command(&["--quiet", "backup", "create", "local:vol"])
        .env("BLOCKBACK_LOG", "blockback_core=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let committed = stderr
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains("committed: recovery finishes it"));
    let _ = child.kill();
    let _ = child.wait();
    let line = committed.expect("the backup never logged its commit");
    let out = dir.run(&["--json", "backup", "list"]);
    let notes = String::from_utf8_lossy(&out.stderr).to_string();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let killed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| line.contains(b["id"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("no record of the killed backup in {list}"))
        .clone();
    assert_eq!(killed["status"], "available", "{killed} ({notes})");
    assert_eq!(dir.restored_sha256(&killed), v2);
    make_image(&src, DIFF_SIZE, &extents, seed + 200);
    load_volume(&dir, &src);
    let next = dir.json(&["backup", "create", "local:vol"]);
    assert_eq!(next["kind"], "incremental", "{next}");
    assert_eq!(next["parent"], killed["id"], "{next}");
    assert_eq!(dir.restored_sha256(&next), sha256(&src));
    dir.ok(&["verify"]);
    notes.contains("it was completed")
}

#[test]
fn kill_right_after_the_commit_finishes_the_backup() {
    let finished_by_recovery = (0..3u64)
        .map(|i| kill_right_after_commit(2000 + i))
        .filter(|&by_recovery| by_recovery)
        .count();
    eprintln!("recovery finished {finished_by_recovery} of 3 killed backups");
    assert!(
        finished_by_recovery > 0,
        "every killed backup had published itself: the test proves nothing"
    );
}
