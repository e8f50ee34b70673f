//! The Ceph cluster going down in the middle of a backup into `rbd:backups`.
//!
//! The test starts a throwaway cluster of its own (scripts/ceph-cluster.sh,
//! under a temp dir), so it can kill and restart it without disturbing the
//! shared test cluster; a guard stops it even when an assertion fails. It
//! runs where the other Ceph tests run (`BLOCKBACK_TEST_CEPH_CONF` set, or
//! required by `BLOCKBACK_REQUIRE_CEPH=1`).

mod util;
use serde_json::Value;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use util::ceph::{cluster, rbd};
use util::own_cluster::OwnCluster;
use util::*;

/// Short client timeouts, so that the outage turns into an error quickly
/// (blockback's own default is 120 s per operation).
const CEPH_ARGS: &str =
    "--rados_osd_op_timeout 5 --rados_mon_op_timeout 5 --client_mount_timeout 5";
/// The operation timeout CEPH_ARGS sets: the whole backup must fail within
/// about that (issue 18: it took one timeout per remaining operation).
const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// `size` bytes of incompressible data, every 4 MiB block different.
fn write_random_file(path: &Path, size: u64) {
    let block = 4 * MIB;
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(41);
    let mut data = random_bytes(&mut rng, block);
    let mut out = BufWriter::new(File::create(path).expect("create source"));
    for i in 0..size / block {
        data[..8].copy_from_slice(&i.to_le_bytes());
        out.write_all(&data).expect("write source");
    }
    out.flush().expect("flush source");
}

/// Source bytes read before the outage: past the queue of reads ahead of
/// the writes (16 x 4 MiB), under a tenth of the source.
const TRANSFER_READ: u64 = 96 * MIB;

/// Bytes a process has read so far (`rchar`: every read and pread).
fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|line| line.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A child process that must not outlive a failed assertion.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for `child` to exit; kills it and fails after `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the backup did not exit within {limit:?} of the outage");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn blockback(dir: &Dir, conf: &Path, args: &[&str]) -> Command {
    let mut all = vec![
        "--ceph-conf",
        conf.to_str().unwrap(),
        "--store",
        "rbd:backups",
    ];
    all.extend_from_slice(args);
    let mut cmd = dir.command(&all);
    cmd.env("CEPH_ARGS", CEPH_ARGS);
    cmd
}

fn run_ok(dir: &Dir, conf: &Path, args: &[&str]) -> Vec<u8> {
    let out = blockback(dir, conf, args).output().expect("run blockback");
    assert!(
        out.status.success(),
        "blockback {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn ok_json(dir: &Dir, conf: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_slice(&run_ok(dir, conf, &all)).expect("json")
}

/// Starts a backup of `src`, freezes it while it transfers, takes the
/// cluster down and lets the backup run into the outage; returns its exit
/// code, its stderr and how long it ran on after the outage.
///
/// Freezing the client (not the cluster) for that moment makes the outage
/// hit mid-transfer however fast the machine is; the cluster itself is
/// killed outright, as in a real outage. "While it transfers" is when the
/// backup has read `TRANSFER_READ` of its 1 GiB source (`rchar` in
/// /proc/PID/io, exact and instant): the base image exists and writes are
/// in flight, far from the end. Waiting for the pool to show data instead
/// (`rbd du`, seconds per call) let a fast transfer finish first, and the
/// outage then hit the base snapshot.
fn backup_into_outage(dir: &Dir, ceph: &OwnCluster, src: &Path) -> (i32, String, Duration) {
    let err_path = dir.path("backup.err");
    let child = blockback(
        dir,
        &ceph.conf,
        &["backup", "create", src.to_str().unwrap()],
    )
    .stdout(Stdio::null())
    .stderr(File::create(&err_path).unwrap())
    .spawn()
    .expect("spawn backup");
    let mut guard = KillOnDrop(child);
    let child = &mut guard.0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while bytes_read(child.id()) < TRANSFER_READ {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the backup ended ({status}) before any outage: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the backup did not read {TRANSFER_READ} bytes of its source in 60 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(child, "-STOP");
    ceph.down();
    signal(child, "-CONT");
    let resumed = Instant::now();
    let status = wait_bounded(child, Duration::from_secs(100));
    let ran_on = resumed.elapsed();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    (status.code().unwrap_or(-1), stderr, ran_on)
}

/// The failed backup's cluster-wide volume lock could not be released
/// (the cluster was down) and stays until its lease (30 s) runs out: a
/// retry before that is refused as busy, then succeeds.
fn retry_once_the_lock_expires(dir: &Dir, conf: &Path, src: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let args = ["--json", "backup", "create", src.to_str().unwrap()];
        let out = blockback(dir, conf, &args).output().expect("run blockback");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).expect("json");
        }
        assert!(
            stderr.contains("volume busy") && Instant::now() < deadline,
            "retry: {stderr}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn cluster_down_mid_backup_fails_cleanly_and_a_retry_succeeds() {
    if cluster().is_none() {
        return;
    }
    let ceph = OwnCluster::start();
    let dir = Dir::new();
    let src = dir.path("disk.img");
    write_random_file(&src, 1024 * MIB);

    let (code, stderr, ran_on) = backup_into_outage(&dir, &ceph, &src);
    eprintln!("backup failed {ran_on:?} after the outage");
    assert_eq!(code, 1, "{stderr}");
    // The first request to time out trips the connection; requests sent
    // just before it end within their own timeout (librbd cannot cancel
    // them), then everything fails at once (cleanup, lock release, close):
    // at most two timeouts, and a little room for a loaded machine.
    assert!(
        ran_on <= 2 * OP_TIMEOUT + Duration::from_secs(3),
        "the backup ran {ran_on:?} into the outage; the timeout is {OP_TIMEOUT:?}: {stderr}"
    );
    let errors: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("blockback: error"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected: {stderr}");
    assert!(
        errors[0].contains("backups/")
            && errors[0].contains("Ceph is unreachable")
            && errors[0].contains("ceph -s"),
        "{}",
        errors[0]
    );

    ceph.up();
    let list = ok_json(&dir, &ceph.conf, &["backup", "list"]);
    let records = list.as_array().expect("list");
    assert_eq!(records.len(), 1, "{list}");
    let failed = &records[0];
    assert_eq!(failed["status"], "error", "{failed}");
    assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()));
    let failed_id = id_of(failed);
    // Nothing of it is published: no snapshot on any base, no metadata object.
    for image in rbd(&ceph.conf, &["ls", "backups"]).lines() {
        let snaps = rbd(&ceph.conf, &["snap", "ls", &format!("backups/{image}")]);
        assert!(!snaps.contains(&failed_id), "{image}: {snaps}");
    }
    let objects = Command::new("rados")
        .arg("-c")
        .arg(&ceph.conf)
        .args(["-p", "backups", "ls"])
        .output()
        .expect("rados ls");
    assert!(objects.status.success());
    let objects = String::from_utf8_lossy(&objects.stdout);
    let meta = format!("backup.{failed_id}.meta");
    assert!(!objects.lines().any(|o| o == meta), "{objects}");

    let retry = retry_once_the_lock_expires(&dir, &ceph.conf, &src);
    assert_eq!(retry["status"], "available", "{retry}");
    assert_ne!(retry["image"], failed["image"], "a new chain");
    let out = dir.path("restored.img");
    run_ok(
        &dir,
        &ceph.conf,
        &["backup", "restore", &id_of(&retry), out.to_str().unwrap()],
    );
    assert_eq!(sha256(&out), sha256(&src));

    // The failed attempt's base (written in part, never snapshotted) stays
    // until its record is deleted; librbd first waits out the dead
    // client's exclusive lock (about 30 s), then removes it.
    run_ok(&dir, &ceph.conf, &["backup", "delete", &failed_id]);
    let images = rbd(&ceph.conf, &["ls", "backups"]);
    assert!(
        !images.contains(failed["image"].as_str().unwrap()),
        "{images}"
    );
}
