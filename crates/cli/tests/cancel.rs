//! Ctrl-C (SIGINT) during a backup: the backup ends as error with a clear
//! line, nothing partial stays published, and the next backup works.

mod util;
use std::process::Stdio;
use util::*;

#[test]
fn ctrl_c_cancels_a_backup_and_cleans_up() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 256 * MIB, &[(0, 200 * MIB)], 77);
    let mut child = dir
        .command(&["backup", "create", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for_creating(&dir, &mut child),
        "the backup never started"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // The backup finished before the signal was seen: nothing to check.
        eprintln!("backup finished before Ctrl-C landed");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("blockback: error"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("cancelled by the user"), "{stderr}");
    let list = dir.json(&["backup", "list"]);
    let only = &list.as_array().unwrap()[0];
    assert_eq!(only["status"], "error", "{list}");
    dir.ok(&["verify"]);
    let next = dir.backup(&src);
    assert_eq!(next["status"], "available");
    assert_eq!(dir.restored_sha256(&next), sha256(&src));
}
