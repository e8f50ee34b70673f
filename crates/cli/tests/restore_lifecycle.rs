//! The restore life cycle the engine owns: only available backups are
//! restored, a restore is alive while it runs (other commands neither
//! recover it nor delete its backup), and a killed one is recovered.

mod util;
use blockback_catalog::SqliteCatalog;
use blockback_core::catalog::{BackupStatus, Catalog};
use std::process::{Child, Stdio};
use util::*;

const SIZE: u64 = 128 * MIB;

/// A store with one backup of a large, mostly random image.
fn backed_up(dir: &Dir) -> (String, String) {
    let src = dir.path("disk.img");
    make_image(&src, SIZE, &[(0, 60 * MIB), (64 * MIB, 60 * MIB)], 11);
    let record = dir.backup(&src);
    (id_of(&record), sha256(&src))
}

fn status_of(dir: &Dir, id: &str) -> String {
    let shown = dir.json(&["backup", "show", id]);
    shown["status"].as_str().unwrap().to_string()
}

fn start_restore(dir: &Dir, id: &str, target: &str) -> Child {
    dir.command(&["--quiet", "backup", "restore", id, target])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the backup is recorded as restoring; false when `child`
/// ended first.
fn wait_for_restoring(dir: &Dir, id: &str, child: &mut Child) -> bool {
    for _ in 0..2000 {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if status_of(dir, id) == "restoring" {
            return true;
        }
    }
    false
}

fn finish(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn restore_of_an_errored_backup_is_refused_and_changes_nothing() {
    let dir = Dir::new();
    let (id, _) = backed_up(&dir);
    let catalog = SqliteCatalog::open(dir.path("catalog.sqlite")).unwrap();
    let mut record = catalog.backup(id.parse().unwrap()).unwrap();
    record.status = BackupStatus::Error;
    record.error = Some("failed on purpose".into());
    catalog.update_backup(&record).unwrap();
    for target in ["local:restored", dir.path("r.img").to_str().unwrap()] {
        let err = dir.fails(&["backup", "restore", &id, target]);
        assert!(err.contains("is error, not available"), "{err}");
    }
    assert!(!dir.path("r.img").exists());
    let err = dir.fails(&["export", "local:restored", dir.path("x").to_str().unwrap()]);
    assert!(
        err.contains("not found"),
        "the refused restore created its target: {err}"
    );
    assert_eq!(status_of(&dir, &id), "error");
}

#[test]
fn commands_during_a_restore_do_not_disturb_it() {
    let dir = Dir::new();
    let (id, sha) = backed_up(&dir);
    let (first, second) = (dir.path("first.img"), dir.path("second.img"));
    let mut child = start_restore(&dir, &id, first.to_str().unwrap());
    assert!(
        wait_for_restoring(&dir, &id, &mut child),
        "the restore ended before it was seen running"
    );
    // A command opening the catalog runs recovery: it must see the restore
    // as alive, not flip it.
    let listed = dir.run(&["backup", "list"]);
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(!stderr.contains("died"), "{stderr}");
    assert_eq!(status_of(&dir, &id), "restoring");
    let err = dir.fails(&["backup", "delete", &id]);
    assert!(err.contains("being restored"), "{err}");
    // A second restore of the same backup runs beside the first.
    dir.ok(&["backup", "restore", &id, second.to_str().unwrap()]);
    finish(child);
    assert_eq!(sha256(&first), sha);
    assert_eq!(sha256(&second), sha);
    assert_eq!(status_of(&dir, &id), "available");
    dir.ok(&["backup", "delete", &id]);
}

#[test]
fn a_killed_restore_is_recovered_and_its_backup_restores_again() {
    let dir = Dir::new();
    let (id, sha) = backed_up(&dir);
    let target = dir.path("killed.img");
    let mut child = start_restore(&dir, &id, target.to_str().unwrap());
    assert!(wait_for_restoring(&dir, &id, &mut child));
    child.kill().unwrap();
    child.wait().unwrap();
    let listed = dir.run(&["backup", "list"]);
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(stderr.contains("was restoring"), "{stderr}");
    assert_eq!(status_of(&dir, &id), "available");
    let again = dir.path("again.img");
    dir.ok(&["backup", "restore", &id, again.to_str().unwrap()]);
    assert_eq!(sha256(&again), sha);
}

#[test]
fn a_restore_onto_a_volume_being_backed_up_is_refused() {
    let dir = Dir::new();
    let (id, _) = backed_up(&dir);
    let src = dir.path("disk.img");
    let mut backup = dir
        .command(&["--quiet", "backup", "create", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Stopped while seen creating: a second backup of an unchanged image
    // can finish before the restore below has even started.
    assert!(
        stop_while_creating(&dir, &mut backup),
        "backup not seen running"
    );
    let restore = ["backup", "restore", &id, src.to_str().unwrap()];
    let refused = dir.run(&restore);
    signal(&backup, "-CONT");
    let err = failed(&restore, refused);
    assert!(err.contains("is running"), "{err}");
    assert!(backup.wait().unwrap().success());
}
