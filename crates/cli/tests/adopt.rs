//! `adopt` of a backup pool written the way Cinder's Ceph driver writes it:
//! a legacy base with two backup snapshots, a full-copy image, and a
//! metadata object written with the `rados` CLI.

mod util;
use std::process::Command;
use util::ceph::*;
use util::*;

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
