//! `adopt` of a backup pool written the way Cinder's Ceph driver writes it:
//! a legacy base with two backup snapshots, a full-copy image, and a
//! metadata object written with the `rados` CLI.

mod util;
use std::process::Command;
use std::sync::Mutex;
use util::ceph::*;
use util::*;

/// `adopt` takes in every backup image of the pool: the tests of this file
/// share `backups`, so they take turns.
static POOL: Mutex<()> = Mutex::new(());

fn take_pool() -> std::sync::MutexGuard<'static, ()> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

fn rados_put(conf: &std::path::Path, object: &str, file: &std::path::Path) {
    let out = Command::new("rados")
        .arg("-c")
        .arg(conf)
        .args(["-p", "backups", "put", object])
        .arg(file)
        .output()
        .expect("rados CLI");
    assert!(
        out.status.success(),
        "rados put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cinder_backups_are_adopted_restored_and_deleted() {
    let Some(conf) = cluster() else { return };
    let _pool = take_pool();
    let dir = Dir::new();
    let (vid, vid2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let (b1, b2, b3) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    let files: Vec<_> = (0..3)
        .map(|i| {
            let f = dir.path(&format!("v{i}.img"));
            make_image(&f, 12 * MIB, &[(0, 4 * MIB), (8 * MIB, MIB)], 50 + i);
            f
        })
        .collect();
    let base = format!("backups/volume-{vid}.backup.base");
    rbd(
        &conf,
        &["import", "--no-progress", files[0].to_str().unwrap(), &base],
    );
    rbd(
        &conf,
        &[
            "snap",
            "create",
            "--no-progress",
            &format!("{base}@backup.{b1}.snap.1700000000.5"),
        ],
    );
    let diff = dir.path("v1.diff");
    dir.ok(&[
        "export-diff",
        files[1].to_str().unwrap(),
        diff.to_str().unwrap(),
    ]);
    rbd(
        &conf,
        &[
            "import-diff",
            "--no-progress",
            diff.to_str().unwrap(),
            &base,
        ],
    );
    rbd(
        &conf,
        &[
            "snap",
            "create",
            "--no-progress",
            &format!("{base}@backup.{b2}.snap.1700000100.25"),
        ],
    );
    let copy = format!("backups/volume-{vid2}.backup.{b3}");
    rbd(
        &conf,
        &["import", "--no-progress", files[2].to_str().unwrap(), &copy],
    );
    let meta = dir.path("meta.json");
    std::fs::write(&meta, r#"{"version": 2, "volume-base-metadata": {"display_name": "web"}, "volume-metadata": {"owner": "ops"}}"#).unwrap();
    rados_put(&conf, &format!("backup.{b1}.meta"), &meta);

    let report = json(&dir, &conf, &["--store", "rbd:backups", "adopt"]);
    let adopted = report["adopted"].as_array().unwrap();
    let find = |id: &uuid::Uuid| {
        adopted
            .iter()
            .find(|b| b["id"] == id.to_string())
            .unwrap_or_else(|| panic!("{id} not adopted: {report}"))
            .clone()
    };
    let (r1, r2, r3) = (find(&b1), find(&b2), find(&b3));
    assert_eq!(
        (
            r1["kind"].as_str(),
            r2["kind"].as_str(),
            r3["kind"].as_str()
        ),
        (Some("full"), Some("incremental"), Some("full"))
    );
    assert_eq!(r1["metadata"]["user.owner"], "ops");
    assert_eq!(r1["source"], format!("rbd:volumes/volume-{vid}"));
    assert_eq!(r3["snapshot"], "");
    for (id, file) in [(b1, &files[0]), (b2, &files[1]), (b3, &files[2])] {
        let out = dir.path(&format!("restored-{id}.img"));
        ok(
            &dir,
            &conf,
            &[
                "--store",
                "rbd:backups",
                "backup",
                "restore",
                &id.to_string(),
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(sha256(&out), sha256(file), "backup {id}");
    }
    ok(
        &dir,
        &conf,
        &["--store", "rbd:backups", "verify", &b2.to_string()],
    );
    let again = json(&dir, &conf, &["--store", "rbd:backups", "adopt"]);
    assert_eq!(
        again["adopted"].as_array().unwrap().len(),
        0,
        "adopted twice: {again}"
    );

    ok(&dir, &conf, &["backup", "delete", &b1.to_string()]);
    let snaps = rbd(&conf, &["snap", "ls", &base]);
    assert!(
        !snaps.contains(&b1.to_string()) && snaps.contains(&b2.to_string()),
        "{snaps}"
    );
    ok(&dir, &conf, &["backup", "delete", &b3.to_string()]);
    ok(&dir, &conf, &["backup", "delete", &b2.to_string()]);
    let left = rbd(&conf, &["ls", "backups"]);
    assert!(
        !left.contains(&vid.to_string()) && !left.contains(&vid2.to_string()),
        "{left}"
    );
}

/// Runs a shell pipeline of rbd commands against the test cluster.
fn rbd_pipe(conf: &std::path::Path, from: &str, to: &str) {
    let c = conf.display();
    let line = format!("rbd -c {c} export-diff --no-progress {from} - | rbd -c {c} import-diff --no-progress - {to}");
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", &line])
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Cinder's own incremental flow (source snapshot, `rbd export-diff |
/// rbd import-diff` into the legacy base, older source snapshot removed),
/// adopted, given checksums, and continued by blockback.
#[test]
fn an_adopted_cinder_chain_with_checksums_continues_incrementally() {
    let Some(conf) = cluster() else { return };
    let _pool = take_pool();
    let dir = Dir::new();
    let vid = uuid::Uuid::new_v4();
    let (b1, b2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let src = dir.path("v.img");
    make_image(&src, 12 * MIB, &[(0, 3 * MIB), (7 * MIB, 2 * MIB)], 77);
    let volume = format!("volumes/volume-{vid}");
    rbd(
        &conf,
        &["import", "--no-progress", src.to_str().unwrap(), &volume],
    );
    let base = format!("backups/volume-{vid}.backup.base");
    rbd(&conf, &["create", "--size", "12M", &base]);
    let (s1, s2) = (
        format!("backup.{b1}.snap.1700000000.5"),
        format!("backup.{b2}.snap.1700000100.25"),
    );
    rbd(
        &conf,
        &["snap", "create", "--no-progress", &format!("{volume}@{s1}")],
    );
    rbd_pipe(&conf, &format!("{volume}@{s1}"), &base);
    scatter_writes(&conf, &volume, "256K");
    rbd(
        &conf,
        &["snap", "create", "--no-progress", &format!("{volume}@{s2}")],
    );
    rbd_pipe(&conf, &format!("--from-snap {s1} {volume}@{s2}"), &base);
    rbd(
        &conf,
        &["snap", "rm", "--no-progress", &format!("{volume}@{s1}")],
    );
    let bb = |args: &[&str]| {
        let mut all = vec!["--store", "rbd:backups"];
        all.extend_from_slice(args);
        json(&dir, &conf, &all)
    };

    let of_volume = |report: &serde_json::Value, key: &str| -> Vec<serde_json::Value> {
        let list = report[key].as_array().unwrap().iter();
        list.filter(|b| b["volume_id"] == vid.to_string())
            .cloned()
            .collect()
    };
    let plain = bb(&["adopt"]);
    let adopted = of_volume(&plain, "adopted");
    assert_eq!(adopted.len(), 2, "{plain}");
    assert!(adopted.iter().all(|b| b["checksum"].is_null()), "{plain}");
    // Without checksums the chain cannot continue: the error names the fix.
    let all = with_conf(&dir, &conf, &["--store", "rbd:backups", "backup", "create"]);
    let mut all: Vec<&str> = all.iter().map(String::as_str).collect();
    let source = format!("rbd:{volume}");
    all.extend(["--incremental", &source]);
    let err = dir.fails(&all);
    assert!(err.contains("adopt --checksums"), "{err}");
    // verify reads them back, and says there was nothing to compare with.
    let text = ok(
        &dir,
        &conf,
        &["--store", "rbd:backups", "verify", &b2.to_string()],
    );
    assert!(text.contains("no recorded checksum"), "{text}");
    let checked = bb(&["verify", &b2.to_string()]);
    assert_eq!(
        checked["verified"][0]["checksum_compared"], false,
        "{checked}"
    );
    let summed = bb(&["adopt", "--checksums"]);
    assert_eq!(of_volume(&summed, "adopted").len(), 0, "{summed}");
    let checksummed = of_volume(&summed, "checksummed");
    assert_eq!(checksummed.len(), 2, "{summed}");
    assert!(
        checksummed.iter().all(|b| b["checksum"].is_string()),
        "{summed}"
    );
    bb(&["verify", &b1.to_string()]);
    bb(&["verify", &b2.to_string()]);
    let again = bb(&["adopt", "--checksums"]);
    assert_eq!(of_volume(&again, "checksummed").len(), 0, "{again}");

    scatter_writes(&conf, &volume, "256K");
    let next = bb(&["backup", "create", &format!("rbd:{volume}")]);
    assert_eq!(next["kind"], "incremental", "{next}");
    assert_eq!(next["parent"], b2.to_string());
    assert_eq!(next["image"], format!("volume-{vid}.backup.base"));
    let head = dir.path("head.img");
    rbd(
        &conf,
        &["export", "--no-progress", &volume, head.to_str().unwrap()],
    );
    let out = dir.path("next.img");
    bb(&["backup", "restore", &id_of(&next), out.to_str().unwrap()]);
    assert_eq!(sha256(&out), sha256(&head));
    bb(&["verify", &id_of(&next)]);

    for id in [b1.to_string(), b2.to_string(), id_of(&next)] {
        bb(&["backup", "delete", &id]);
    }
    let left = rbd(&conf, &["ls", "backups"]);
    assert!(!left.contains(&vid.to_string()), "{left}");
    rbd(&conf, &["rm", "--no-progress", &volume]);
}
