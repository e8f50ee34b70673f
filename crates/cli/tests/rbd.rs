//! The CLI against the real test cluster (`BLOCKBACK_TEST_CEPH_CONF`, set by
//! scripts/test.sh). Without it the tests fail when `BLOCKBACK_REQUIRE_CEPH=1`
//! and are reported as skipped otherwise.

mod util;
use std::process::{Command, Stdio};
use std::time::Duration;
use util::ceph::*;
use util::*;

#[test]
fn file_into_rbd_store_restores_to_a_sparse_file_and_a_new_rbd_image() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(
        &src,
        24 * MIB,
        &[
            (0, 3 * MIB),
            (9 * MIB + 4096, MIB + 777),
            (20 * MIB, 2 * MIB),
        ],
        31,
    );
    let record = json(
        &dir,
        &conf,
        &[
            "--store",
            "rbd:backups",
            "backup",
            "create",
            src.to_str().unwrap(),
        ],
    );
    assert_eq!(record["store"], "rbd:backups");
    let id = id_of(&record);
    let out = dir.path("restored.img");
    ok(
        &dir,
        &conf,
        &["backup", "restore", &id, out.to_str().unwrap()],
    );
    assert_eq!(sha256(&out), sha256(&src));
    assert!(
        allocated(&out) <= allocated(&src) + 3 * 64 * 1024,
        "restore must stay sparse"
    );
    let target = unique("restored");
    ok(
        &dir,
        &conf,
        &["backup", "restore", &id, &format!("rbd:volumes/{target}")],
    );
    let exported = dir.path("exported.img");
    rbd(
        &conf,
        &[
            "export",
            &format!("volumes/{target}"),
            exported.to_str().unwrap(),
        ],
    );
    assert_eq!(sha256(&exported), sha256(&src));
    ok(&dir, &conf, &["verify", &id]);
    ok(&dir, &conf, &["backup", "delete", &id]);
    let images = rbd(&conf, &["ls", "backups"]);
    assert!(
        !images.contains(record["image"].as_str().unwrap()),
        "base removed with its last backup"
    );
    rbd(&conf, &["rm", &format!("volumes/{target}")]);
}

#[test]
fn rbd_volume_into_local_store_restores_to_a_new_rbd_image() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 16 * MIB, &[(MIB, 2 * MIB), (12 * MIB, MIB)], 32);
    let volume = unique("vol");
    rbd(
        &conf,
        &[
            "import",
            src.to_str().unwrap(),
            &format!("volumes/{volume}"),
        ],
    );
    let record = json(
        &dir,
        &conf,
        &["backup", "create", &format!("rbd:volumes/{volume}")],
    );
    assert_eq!(record["source"], format!("rbd:volumes/{volume}"));
    let target = unique("copy");
    ok(
        &dir,
        &conf,
        &[
            "backup",
            "restore",
            &id_of(&record),
            &format!("rbd:volumes/{target}"),
        ],
    );
    let exported = dir.path("exported.img");
    rbd(
        &conf,
        &[
            "export",
            &format!("volumes/{target}"),
            exported.to_str().unwrap(),
        ],
    );
    assert_eq!(sha256(&exported), sha256(&src));
    // The backup's snapshot stays on the source for the next incremental.
    let snaps = rbd(&conf, &["snap", "ls", &format!("volumes/{volume}")]);
    assert!(
        snaps.contains(record["snapshot"].as_str().unwrap()),
        "{snaps}"
    );
    rbd(&conf, &["snap", "purge", &format!("volumes/{volume}")]);
    rbd(&conf, &["rm", &format!("volumes/{volume}")]);
    rbd(&conf, &["rm", &format!("volumes/{target}")]);
}

#[test]
fn another_client_identity_on_the_volume_side_works() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 8 * MIB, &[(0, MIB)], 33);
    let volume = unique("xclient");
    rbd(
        &conf,
        &[
            "import",
            src.to_str().unwrap(),
            &format!("volumes/{volume}"),
        ],
    );
    let record = json(
        &dir,
        &conf,
        &[
            "--store",
            "rbd:backups",
            "--volume-ceph-id",
            "blockback",
            "backup",
            "create",
            &format!("rbd:volumes/{volume}"),
        ],
    );
    let out = dir.path("r.img");
    ok(
        &dir,
        &conf,
        &["backup", "restore", &id_of(&record), out.to_str().unwrap()],
    );
    assert_eq!(sha256(&out), sha256(&src));
    ok(&dir, &conf, &["backup", "delete", &id_of(&record)]);
    rbd(&conf, &["rm", &format!("volumes/{volume}")]);
}

#[test]
fn bad_ceph_input_gets_one_clear_line() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, MIB, &[(0, 4096)], 34);
    let s = src.to_str().unwrap();
    let err = fails(
        &dir,
        &conf,
        &["--store", "rbd:no-such-pool", "backup", "create", s],
    );
    assert!(err.contains("no-such-pool"), "{err}");
    let err = fails(
        &dir,
        &conf,
        &["backup", "create", "rbd:volumes/no-such-image"],
    );
    assert!(
        err.contains("no-such-image") && err.contains("not found"),
        "{err}"
    );
    let err = fails(
        &dir,
        &conf,
        &[
            "--ceph-id",
            "",
            "--store",
            "rbd:backups",
            "backup",
            "create",
            s,
        ],
    );
    assert!(err.contains("ceph-id"), "{err}");
    let err = fails(
        &dir,
        &conf,
        &[
            "--ceph-id",
            "nobody",
            "--store",
            "rbd:backups",
            "backup",
            "create",
            s,
        ],
    );
    assert!(err.contains("nobody"), "{err}");
    let err = fails(
        &dir,
        &conf,
        &[
            "--keyring",
            "/nonexistent/keyring",
            "--store",
            "rbd:backups",
            "backup",
            "create",
            s,
        ],
    );
    assert!(
        err.to_lowercase().contains("keyring") || err.contains("/nonexistent"),
        "{err}"
    );
    assert!(
        json(&dir, &conf, &["backup", "list"])
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing recorded"
    );
}

#[test]
fn deleting_a_backup_whose_base_is_open_elsewhere_retries_then_fails_busy() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 4 * MIB, &[(0, MIB)], 35);
    let record = json(
        &dir,
        &conf,
        &[
            "--store",
            "rbd:backups",
            "backup",
            "create",
            src.to_str().unwrap(),
        ],
    );
    let image = record["image"].as_str().unwrap().to_string();
    let mut watcher = Command::new("rbd")
        .arg("-c")
        .arg(&conf)
        .args(["watch", &format!("backups/{image}")])
        // `rbd watch` exits at end of input: keep its stdin open.
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        rbd(&conf, &["status", &format!("backups/{image}")]).contains("watcher="),
        "the watch must hold"
    );
    let start = std::time::Instant::now();
    let err = fails(
        &dir,
        &conf,
        &["backup", "delete", "--retry-delay", "0.5", &id_of(&record)],
    );
    assert!(err.contains("busy"), "{err}");
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "3 retries 0.5 s apart"
    );
    let _ = watcher.kill();
    let _ = watcher.wait();
    ok(&dir, &conf, &["backup", "delete", &id_of(&record)]);
    assert!(!rbd(&conf, &["ls", "backups"]).contains(&image));
}

/// Issue 18: a file source backed up into an RBD store wrote the whole
/// volume into the base on every incremental.
#[test]
fn file_source_incrementals_into_rbd_write_only_what_changed() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(
        &src,
        64 * MIB,
        &[(0, 8 * MIB), (20 * MIB, 4 * MIB), (40 * MIB, 16 * MIB)],
        18,
    );
    let create = |dir: &Dir| {
        json(
            dir,
            &conf,
            &[
                "--store",
                "rbd:backups",
                "backup",
                "create",
                src.to_str().unwrap(),
            ],
        )
    };
    let mut states = Vec::new();
    let full = create(&dir);
    assert_eq!(full["kind"], "full", "{full}");
    states.push((id_of(&full), sha256(&src)));

    let same = create(&dir);
    assert_eq!(same["kind"], "incremental", "{same}");
    assert_eq!(same["image"], full["image"], "one chain");
    assert_eq!(same["bytes_written"], 0, "nothing changed: {same}");
    assert_eq!(same["bytes_stored"], 0, "nothing added: {same}");
    let image = full["image"].as_str().unwrap().to_string();
    let snap = |r: &serde_json::Value| r["snapshot"].as_str().unwrap().to_string();
    let (data, objects) = snap_diff(&conf, &image, &snap(&full), &snap(&same));
    assert_eq!((data, objects.len()), (0, 0), "rbd diff: nothing");
    states.push((id_of(&same), sha256(&src)));

    // 1 MiB changed, 2 MiB of data turned to zeros, 1 MiB written into a hole.
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(7);
    write_at(&src, 2 * MIB, &random_bytes(&mut rng, MIB));
    write_at(&src, 44 * MIB, &vec![0u8; 2 * MIB as usize]);
    write_at(&src, 30 * MIB, &random_bytes(&mut rng, MIB));
    let changed = create(&dir);
    assert_eq!(changed["kind"], "incremental", "{changed}");
    assert_eq!(
        changed["bytes_written"],
        2 * MIB,
        "only the changes: {changed}"
    );
    // librbd's exact diff lists a new object from its start, and a zeroed
    // range inside an object as data: only the three objects touched.
    let (data, objects) = snap_diff(&conf, &image, &snap(&same), &snap(&changed));
    assert_eq!(
        objects,
        [0, 7, 11].into(),
        "rbd diff: only the changed objects"
    );
    assert_eq!(
        changed["bytes_stored"], data,
        "what rbd diff lists: {changed}"
    );
    states.push((id_of(&changed), sha256(&src)));

    // The volume back to its first content, but for the zeroed region.
    make_image(
        &src,
        64 * MIB,
        &[(0, 8 * MIB), (20 * MIB, 4 * MIB), (40 * MIB, 16 * MIB)],
        18,
    );
    write_at(&src, 44 * MIB, &vec![0u8; 2 * MIB as usize]);
    let back = create(&dir);
    assert_eq!(
        back["bytes_written"], MIB,
        "1 MiB of data, 1 MiB zeroed: {back}"
    );
    states.push((id_of(&back), sha256(&src)));

    for (id, want) in &states {
        let out = dir.path(&format!("restored-{id}.img"));
        ok(
            &dir,
            &conf,
            &["backup", "restore", id, out.to_str().unwrap()],
        );
        assert_eq!(&sha256(&out), want, "backup {id} restores bit-exact");
        std::fs::remove_file(&out).unwrap();
    }
    ok(&dir, &conf, &["verify", &states[3].0]);
    for (id, _) in states.iter().rev() {
        ok(&dir, &conf, &["backup", "delete", id]);
    }
}
