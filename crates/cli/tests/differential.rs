//! Differential backups through the CLI: an RBD volume into an RBD store
//! (another pool), and a local-store volume into the local store.

mod util;
use util::ceph::*;
use util::*;

/// `rbd snap ls` names of `image`.
fn snap_names(conf: &std::path::Path, image: &str) -> Vec<String> {
    let out = rbd(conf, &["snap", "ls", "--format", "json", image]);
    let list: serde_json::Value = serde_json::from_str(&out).expect("snap ls json");
    let names = list.as_array().expect("array").iter();
    names
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn export_sha(conf: &std::path::Path, dir: &Dir, image: &str) -> String {
    let out = dir.path("export.img");
    let _ = std::fs::remove_file(&out);
    rbd(
        conf,
        &["export", "--no-progress", image, out.to_str().unwrap()],
    );
    sha256(&out)
}

#[test]
fn rbd_volume_chain_into_another_pool() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 24 * MIB, &[(MIB, 3 * MIB), (16 * MIB, 2 * MIB)], 7);
    let volume = format!("volumes/{}", unique("dvol"));
    rbd(
        &conf,
        &["import", "--no-progress", src.to_str().unwrap(), &volume],
    );
    let source = format!("rbd:{volume}");
    let bb = |args: &[&str]| {
        let mut all = vec!["--store", "rbd:backups"];
        all.extend_from_slice(args);
        json(&dir, &conf, &all)
    };
    let first = bb(&["backup", "create", &source]);
    assert_eq!(first["kind"], "full");
    scatter_writes(&conf, &volume, "1M");
    let second = bb(&[
        "backup",
        "create",
        "--meta",
        "owner=ops team",
        "--meta",
        "conf_rbd_cache=false",
        &source,
    ]);
    assert_eq!(second["kind"], "incremental");
    let written = second["bytes_written"].as_u64().unwrap();
    assert!(
        written > 0 && written <= 2 * MIB,
        "an incremental of 1 MiB of writes wrote {written}"
    );
    assert_eq!(
        snap_names(&conf, &volume),
        [second["snapshot"].as_str().unwrap()]
    );
    // What the store grew by is what the base's own diff lists, though
    // the engine counts it from the source's diff (no second diff).
    let snap = |r: &serde_json::Value| r["snapshot"].as_str().unwrap().to_string();
    let base = second["image"].as_str().unwrap();
    let (added, _) = snap_diff(&conf, base, &snap(&first), &snap(&second));
    assert!(added > 0);
    assert_eq!(second["bytes_stored"], added, "{second}");
    // Nothing changed since: the chain continues without the new snapshot
    // being opened or read, and the backup restores what the volume holds.
    let same = bb(&["backup", "create", &source]);
    assert_eq!(same["kind"], "incremental", "{same}");
    assert_eq!(same["bytes_read"], 0, "{same}");
    assert_eq!(same["bytes_written"], 0, "{same}");
    assert_eq!(same["bytes_stored"], 0, "{same}");
    assert!(same["phases"].get("transfer").is_none(), "{same}");
    assert_eq!(same["checksum"], second["checksum"]);
    let same_file = dir.path("same.img");
    bb(&[
        "backup",
        "restore",
        &id_of(&same),
        same_file.to_str().unwrap(),
    ]);
    assert_eq!(sha256(&same_file), export_sha(&conf, &dir, &volume));

    let copy = format!("volumes/{}", unique("dcopy"));
    let report = bb(&["backup", "restore", &id_of(&second), &format!("rbd:{copy}")]);
    assert_eq!(report["differential"], true);
    // Cinder's unit: whole GiB.
    assert_eq!(report["metadata"]["volume-base-metadata"]["size"], 1);
    // The user keys come back as image metadata, except a librbd setting.
    assert_eq!(report["metadata_applied"], serde_json::json!(["owner"]));
    assert!(
        report["metadata_skipped"]["conf_rbd_cache"].is_string(),
        "{report}"
    );
    let owner = rbd(&conf, &["image-meta", "get", &copy, "owner"]);
    assert_eq!(owner.trim_end(), "ops team");
    let keys = rbd(&conf, &["image-meta", "list", &copy]);
    assert!(!keys.contains("conf_rbd_cache"), "{keys}");
    assert_eq!(
        export_sha(&conf, &dir, &copy),
        export_sha(&conf, &dir, &volume)
    );
    assert!(
        snap_names(&conf, &copy).is_empty(),
        "the restored volume has snapshots"
    );
    let restored = dir.path("first.img");
    bb(&[
        "backup",
        "restore",
        &id_of(&first),
        restored.to_str().unwrap(),
    ]);
    assert_eq!(sha256(&restored), sha256(&src));

    // A broken chain: --incremental refuses, the default starts a new chain.
    rbd(
        &conf,
        &[
            "snap",
            "rm",
            "--no-progress",
            &format!("{volume}@{}", same["snapshot"].as_str().unwrap()),
        ],
    );
    let with_store = [
        "--store",
        "rbd:backups",
        "backup",
        "create",
        "--incremental",
        &source,
    ];
    let err = fails(&dir, &conf, &with_store);
    assert!(
        err.contains("cannot continue") && err.contains("missing on the source"),
        "{err}"
    );
    let all = with_conf(
        &dir,
        &conf,
        &["--store", "rbd:backups", "backup", "create", &source],
    );
    let out = dir.run(&all.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("starting a new chain"),
        "no reason shown: {stderr}"
    );

    let list = bb(&["backup", "list"]);
    for b in list.as_array().expect("list") {
        bb(&["backup", "delete", b["id"].as_str().unwrap()]);
    }
    assert!(
        snap_names(&conf, &volume).is_empty(),
        "source snapshots left"
    );
    let vid = first["volume_id"].as_str().unwrap();
    let left = rbd(&conf, &["ls", "backups"]);
    assert!(!left.contains(vid), "bases left: {left}");
    rbd(&conf, &["rm", "--no-progress", &volume]);
    rbd(&conf, &["rm", "--no-progress", &copy]);
}

#[test]
fn local_store_volume_chain() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 16 * MIB, &[(0, 2 * MIB), (9 * MIB, MIB)], 11);
    let stream = dir.path("full.diff");
    dir.ok(&[
        "export-diff",
        src.to_str().unwrap(),
        stream.to_str().unwrap(),
    ]);
    dir.ok(&["import-diff", stream.to_str().unwrap(), "local:vol"]);
    let first = dir.json(&["backup", "create", "local:vol"]);
    assert_eq!(first["kind"], "full");
    assert!(
        first["source"].as_str().unwrap().starts_with("local:"),
        "{first}"
    );

    write_at(
        &src,
        5 * MIB,
        &random_bytes(&mut rand_chacha_rng(3), 300_000),
    );
    dir.ok(&[
        "export-diff",
        src.to_str().unwrap(),
        stream.to_str().unwrap(),
    ]);
    dir.ok(&["import-diff", stream.to_str().unwrap(), "local:vol"]);
    let second = dir.json(&["backup", "create", "--meta", "owner=ops", "local:vol"]);
    assert_eq!(second["kind"], "incremental");
    let written = second["bytes_written"].as_u64().unwrap();
    assert!(
        written <= 400_000,
        "an incremental of 300 kB wrote {written}"
    );
    let restored = dir.path("restored.img");
    let report = dir.json(&[
        "backup",
        "restore",
        &id_of(&second),
        restored.to_str().unwrap(),
    ]);
    assert_eq!(sha256(&restored), sha256(&src));
    let why = report["metadata_skipped"]["owner"].as_str().unwrap_or("");
    assert!(why.contains("keeps no metadata"), "{report}");
    dir.ok(&["verify", &id_of(&second)]);

    // Into a new local-store image: the user key is set on it.
    let report = dir.json(&["backup", "restore", &id_of(&second), "local:copy"]);
    assert_eq!(report["metadata_applied"], serde_json::json!(["owner"]));
    let meta = std::fs::read_to_string(dir.store().join("images/copy/meta.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["owner"], "ops");
}

fn rand_chacha_rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}
