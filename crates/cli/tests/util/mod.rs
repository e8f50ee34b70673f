//! Test harness: the real `blockback` binary in a temp directory.
#![allow(dead_code)]

pub mod ceph;
pub mod jobs;
pub mod own_cluster;
pub mod postgres;
pub mod python;
pub mod service;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const MIB: u64 = 1024 * 1024;

/// A temp dir with a store and catalog of its own.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_blockback"));
        if !args.contains(&"--store") {
            cmd.arg("--store").arg(self.store());
        }
        cmd.arg("--catalog").arg(self.path("catalog.sqlite"));
        cmd.args(args)
            .env_remove("BLOCKBACK_STORE")
            .env_remove("BLOCKBACK_CATALOG");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run blockback")
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "blockback {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8 stdout")
    }

    /// Runs with --json, requires success, parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("json output")
    }

    /// Runs, requires failure with exit code 1 and one line on stderr; returns it.
    pub fn fails(&self, args: &[&str]) -> String {
        failed(args, self.run(args))
    }

    pub fn backup(&self, source: &Path) -> serde_json::Value {
        self.json(&["backup", "create", source.to_str().unwrap()])
    }

    /// Restores `backup` into a new file and returns the file's sha256.
    pub fn restored_sha256(&self, backup: &serde_json::Value) -> String {
        let id = id_of(backup);
        let out = self.path(&format!("restored-{id}.img"));
        self.ok(&["backup", "restore", &id, out.to_str().unwrap()]);
        let sum = sha256(&out);
        std::fs::remove_file(&out).unwrap();
        sum
    }
}

/// What `blockback args` printed as `out`, required to be a failure with
/// exit code 1 and one error line on stderr; returns that line.
pub fn failed(args: &[&str], out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "blockback {args:?} should fail: {stderr}"
    );
    let lines: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("blockback: error"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {stderr}");
    lines[0].to_string()
}

/// Waits until a backup run by `child` has recorded itself as creating
/// (listing does not disturb it: recovery skips volumes whose lock is
/// held); false when `child` exited first or nothing showed up in time.
pub fn wait_for_creating(dir: &Dir, child: &mut std::process::Child) -> bool {
    for _ in 0..500 {
        if child.try_wait().expect("child status").is_some() {
            return false;
        }
        if any_creating(dir) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    false
}

fn any_creating(dir: &Dir) -> bool {
    let list = dir.json(&["backup", "list"]);
    let backups = list.as_array().expect("list");
    backups.iter().any(|b| b["status"] == "creating")
}

/// Sends `sig` ("-STOP", "-CONT", ...) to `child`.
pub fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {}", child.id());
}

/// Like [`wait_for_creating`], but leaves the backup stopped (SIGSTOP)
/// while it is creating, so it still holds its volume lock however fast it
/// would have finished; the caller sends "-CONT". It is only left stopped
/// outside a catalog write: stopped inside one, it would hold the catalog
/// from every command that writes (a restore marks its backup restoring).
/// False when `child` exited first.
pub fn stop_while_creating(dir: &Dir, child: &mut std::process::Child) -> bool {
    for _ in 0..500 {
        signal(child, "-STOP");
        if child.try_wait().expect("child status").is_some() {
            return false;
        }
        if catalog_writable_now(dir) && any_creating(dir) {
            return true;
        }
        signal(child, "-CONT");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    false
}

/// Whether no other process holds the catalog's write lock: a write
/// transaction begun without waiting.
fn catalog_writable_now(dir: &Dir) -> bool {
    let conn = rusqlite::Connection::open(dir.path("catalog.sqlite")).expect("catalog");
    conn.busy_timeout(std::time::Duration::ZERO).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK").is_ok()
}

/// Writes a sparse image: random and text extents at the given places.
pub fn make_image(path: &Path, size: u64, extents: &[(u64, u64)], seed: u64) {
    let file = File::create(path).expect("create image");
    file.set_len(size).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (i, &(off, len)) in extents.iter().enumerate() {
        let data = if i % 2 == 0 {
            random_bytes(&mut rng, len)
        } else {
            text_bytes(len)
        };
        write_at(path, off, &data);
    }
}

pub fn random_bytes(rng: &mut ChaCha8Rng, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    rng.fill(&mut v[..]);
    v
}

pub fn text_bytes(len: u64) -> Vec<u8> {
    b"the quick brown fox jumps over the lazy volume "
        .iter()
        .cycle()
        .take(len as usize)
        .copied()
        .collect()
}

pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(data).unwrap();
}

pub fn sha256(path: &Path) -> String {
    let mut f = File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Bytes allocated on disk.
pub fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// Total size of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// All files under `dir`, largest first.
pub fn files_by_size(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((meta.len(), entry.path()));
            }
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.0));
    out
}

pub fn id_of(record: &serde_json::Value) -> String {
    record["id"].as_str().expect("id").to_string()
}
