//! A differential chain across two clusters: the volume in the shared test
//! cluster, the backups in a throwaway cluster of this test's own.

mod util;
use serde_json::Value;
use std::path::Path;
use util::ceph::{cluster, rbd, scatter_writes, unique};
use util::own_cluster::OwnCluster;
use util::*;

/// blockback with the store on `store_conf`'s cluster and volumes on `volume_conf`'s.
fn bb(dir: &Dir, store_conf: &Path, volume_conf: &Path, args: &[&str]) -> Value {
    let mut all = vec![
        "--json",
        "--ceph-conf",
        store_conf.to_str().unwrap(),
        "--volume-ceph-conf",
        volume_conf.to_str().unwrap(),
        "--store",
        "rbd:backups",
    ];
    all.extend_from_slice(args);
    serde_json::from_str(&dir.ok(&all)).expect("json")
}

fn export_sha(conf: &Path, dir: &Dir, spec: &str) -> String {
    let out = dir.path(&unique("export"));
    rbd(
        conf,
        &["export", "--no-progress", spec, out.to_str().unwrap()],
    );
    let sum = sha256(&out);
    std::fs::remove_file(&out).unwrap();
    sum
}

#[test]
fn differential_chain_into_another_cluster() {
    let Some(here) = cluster() else { return };
    let there = OwnCluster::start();
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 16 * MIB, &[(0, 3 * MIB), (10 * MIB, 2 * MIB)], 21);
    let volume = format!("volumes/{}", unique("xcl"));
    rbd(
        &here,
        &["import", "--no-progress", src.to_str().unwrap(), &volume],
    );
    let source = format!("rbd:{volume}");

    let first = bb(&dir, &there.conf, &here, &["backup", "create", &source]);
    assert_eq!(first["kind"], "full");
    let base = first["image"].as_str().unwrap().to_string();
    scatter_writes(&here, &volume, "512K");
    let second = bb(&dir, &there.conf, &here, &["backup", "create", &source]);
    assert_eq!(second["kind"], "incremental", "{second}");
    assert_eq!(second["image"], first["image"]);
    // Each backup is a snapshot of the one base in the other cluster.
    let snaps = rbd(&there.conf, &["snap", "ls", &format!("backups/{base}")]);
    for b in [&first, &second] {
        let name = b["snapshot"].as_str().unwrap();
        assert!(snaps.contains(name), "{name} not on the base: {snaps}");
    }
    assert!(
        !rbd(&here, &["ls", "backups"]).contains(&base),
        "the base was created in the volume's cluster"
    );

    let copy = format!("volumes/{}", unique("xcl-copy"));
    let report = bb(
        &dir,
        &there.conf,
        &here,
        &["backup", "restore", &id_of(&second), &format!("rbd:{copy}")],
    );
    assert_eq!(report["differential"], true, "{report}");
    assert_eq!(
        export_sha(&here, &dir, &copy),
        export_sha(&here, &dir, &volume)
    );
    bb(&dir, &there.conf, &here, &["verify", &id_of(&first)]);

    for b in [&first, &second] {
        bb(&dir, &there.conf, &here, &["backup", "delete", &id_of(b)]);
    }
    assert!(
        !rbd(&there.conf, &["ls", "backups"]).contains(&base),
        "the base is left after deleting every backup"
    );
    let left = rbd(&here, &["snap", "ls", &volume]);
    assert!(left.trim().is_empty(), "source snapshots left: {left}");
    rbd(&here, &["rm", "--no-progress", &volume]);
    rbd(&here, &["rm", "--no-progress", &copy]);
}
