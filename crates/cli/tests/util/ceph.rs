//! Helpers for tests against the real Ceph test cluster.

use super::Dir;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The test cluster's conf; `None` (skip, loudly) only when Ceph is not required.
pub fn cluster() -> Option<PathBuf> {
    match std::env::var_os("BLOCKBACK_TEST_CEPH_CONF") {
        Some(conf) => Some(PathBuf::from(conf)),
        None if std::env::var("BLOCKBACK_REQUIRE_CEPH").as_deref() == Ok("1") => {
            panic!("BLOCKBACK_REQUIRE_CEPH=1 but BLOCKBACK_TEST_CEPH_CONF is not set: start the test cluster")
        }
        None => {
            eprintln!("SKIPPED: no Ceph test cluster (set BLOCKBACK_TEST_CEPH_CONF)");
            None
        }
    }
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand::random::<u32>())
}

/// Runs the real `rbd` CLI against the test cluster.
pub fn rbd(conf: &Path, args: &[&str]) -> String {
    let out = Command::new("rbd")
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .expect("rbd CLI");
    assert!(
        out.status.success(),
        "rbd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Dirties `total` (e.g. "1M") of `image` with random 4 KiB writes, as a
/// running VM would (`rbd bench`).
pub fn scatter_writes(conf: &Path, image: &str, total: &str) {
    let args = ["bench", "--io-type", "write", "--io-size", "4096"];
    let mut all = args.to_vec();
    all.extend(["--io-total", total, "--io-pattern", "rand", image]);
    rbd(conf, &all);
}

pub fn with_conf(dir: &Dir, conf: &Path, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = vec!["--ceph-conf".into(), conf.display().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let _ = dir;
    all
}

pub fn ok(dir: &Dir, conf: &Path, args: &[&str]) -> String {
    let all = with_conf(dir, conf, args);
    dir.ok(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

pub fn json(dir: &Dir, conf: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(dir, conf, &all)).expect("json")
}

pub fn fails(dir: &Dir, conf: &Path, args: &[&str]) -> String {
    let all = with_conf(dir, conf, args);
    dir.fails(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

/// What `rbd diff` reports between two snapshots of a base: data bytes and
/// the 4 MiB objects its extents touch.
pub fn snap_diff(
    conf: &Path,
    image: &str,
    from: &str,
    to: &str,
) -> (u64, std::collections::BTreeSet<u64>) {
    let out = rbd(
        conf,
        &[
            "diff",
            "--from-snap",
            from,
            &format!("backups/{image}@{to}"),
            "--format",
            "json",
        ],
    );
    let extents: serde_json::Value = serde_json::from_str(&out).expect("rbd diff json");
    let (mut data, mut objects) = (0, std::collections::BTreeSet::new());
    for e in extents.as_array().expect("extents") {
        let (offset, len) = (e["offset"].as_u64().unwrap(), e["length"].as_u64().unwrap());
        if e["exists"].as_str() == Some("true") {
            data += len;
        }
        objects.extend(offset / (4 * super::MIB)..(offset + len).div_ceil(4 * super::MIB));
    }
    (data, objects)
}
