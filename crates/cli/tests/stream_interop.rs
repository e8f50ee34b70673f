//! Ceph stream formats against the real rbd CLI on the test cluster.

mod util;
use std::path::Path;
use util::ceph::{cluster, rbd, unique};
use util::*;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Exports `image[@snap]` with the rbd CLI and returns its sha256.
fn rbd_sha(conf: &Path, dir: &Dir, spec: &str) -> String {
    let out = dir.path(&unique("export"));
    rbd(conf, &["export", spec, p(&out)]);
    let sum = sha256(&out);
    std::fs::remove_file(out).unwrap();
    sum
}

/// A hand-built `rbd diff v1` stream (layout from the reference).
fn v1_diff(size: u64, records: &[(u64, Option<Vec<u8>>, u64)]) -> Vec<u8> {
    let mut out = b"rbd diff v1\n".to_vec();
    out.push(b's');
    out.extend_from_slice(&size.to_le_bytes());
    for (off, data, len) in records {
        out.push(if data.is_some() { b'w' } else { b'z' });
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        if let Some(d) = data {
            out.extend_from_slice(d);
        }
    }
    out.push(b'e');
    out
}

#[test]
fn our_v1_streams_go_through_rbd_import_diff_exactly() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let src = dir.path("disk.img");
    // Unaligned extents and a zero run inside data.
    make_image(&src, 12 * MIB, &[(1234, 3 * MIB), (7 * MIB + 77, MIB)], 41);
    write_at(&src, MIB, &vec![0u8; 300_000]);
    let b1 = dir.backup(&src);
    let v1 = sha256(&src);
    // Change, zero a range, and grow the image.
    write_at(&src, 5 * MIB + 3, &text_bytes(70_001));
    write_at(&src, 7 * MIB, &vec![0u8; 200_000]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&src)
        .unwrap()
        .set_len(14 * MIB)
        .unwrap();
    write_at(&src, 13 * MIB + 5, b"grown");
    let b2 = dir.backup(&src);
    let base = b1["image"].as_str().unwrap();
    let (s1, s2) = (
        b1["snapshot"].as_str().unwrap(),
        b2["snapshot"].as_str().unwrap(),
    );

    let full = dir.path("full.diff");
    dir.ok(&["export-diff", &format!("backup:{}", id_of(&b1)), p(&full)]);
    let inc = dir.path("inc.diff");
    dir.ok(&[
        "export-diff",
        &format!("local:{base}@{s2}"),
        p(&inc),
        "--from-snap",
        s1,
    ]);
    let image = unique("imported");
    rbd(
        &conf,
        &["create", "--size", "1M", &format!("volumes/{image}")],
    );
    rbd(
        &conf,
        &["import-diff", p(&full), &format!("volumes/{image}")],
    );
    assert_eq!(rbd_sha(&conf, &dir, &format!("volumes/{image}@{s1}")), v1);
    rbd(
        &conf,
        &["import-diff", p(&inc), &format!("volumes/{image}")],
    );
    assert_eq!(
        rbd_sha(&conf, &dir, &format!("volumes/{image}@{s2}")),
        sha256(&src)
    );
    let incremental_size = std::fs::metadata(&inc).unwrap().len();
    assert!(
        incremental_size < 2 * MIB,
        "incremental stream carries only changes: {incremental_size}"
    );
    rbd(&conf, &["snap", "purge", &format!("volumes/{image}")]);
    rbd(&conf, &["rm", &format!("volumes/{image}")]);
}

#[test]
fn rbd_export_diff_streams_import_into_files_and_the_local_store() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let image = unique("exported");
    let spec = format!("volumes/{image}");
    let src = dir.path("v1.img");
    make_image(&src, 16 * MIB, &[(0, 2 * MIB), (9 * MIB, 3 * MIB)], 42);
    rbd(&conf, &["import", p(&src), &spec]);
    rbd(&conf, &["snap", "create", &format!("{spec}@s1")]);
    let change = v1_diff(
        16 * MIB,
        &[
            (4097, Some(text_bytes(10_000)), 10_000),
            (9 * MIB + 100, None, 50_000),
            (15 * MIB, Some(vec![7u8; 4096]), 4096),
        ],
    );
    let change_file = dir.path("change.diff");
    std::fs::write(&change_file, change).unwrap();
    rbd(&conf, &["import-diff", p(&change_file), &spec]);
    rbd(&conf, &["snap", "create", &format!("{spec}@s2")]);
    let (want1, want2) = (
        rbd_sha(&conf, &dir, &format!("{spec}@s1")),
        rbd_sha(&conf, &dir, &format!("{spec}@s2")),
    );

    let full = dir.path("full.diff");
    let inc = dir.path("inc.diff");
    let whole = dir.path("whole.diff");
    rbd(&conf, &["export-diff", &format!("{spec}@s1"), p(&full)]);
    rbd(
        &conf,
        &[
            "export-diff",
            "--from-snap",
            "s1",
            &format!("{spec}@s2"),
            p(&inc),
        ],
    );
    rbd(
        &conf,
        &[
            "export-diff",
            "--whole-object",
            "--from-snap",
            "s1",
            &format!("{spec}@s2"),
            p(&whole),
        ],
    );

    for (name, incremental) in [("inc", &inc), ("whole", &whole)] {
        let file = dir.path(&format!("{name}.img"));
        dir.ok(&["import-diff", p(&full), p(&file)]);
        assert_eq!(sha256(&file), want1, "{name}: full stream into a file");
        dir.ok(&["import-diff", "--force", p(incremental), p(&file)]);
        assert_eq!(
            sha256(&file),
            want2,
            "{name}: incremental stream into a file"
        );

        let local = format!("local:{name}");
        dir.ok(&["import-diff", p(&full), &local]);
        dir.ok(&["import-diff", p(incremental), &local]);
        let back = dir.path(&format!("{name}-back.img"));
        let diff = dir.path(&format!("{name}-back.diff"));
        dir.ok(&["export-diff", &format!("{local}@s2"), p(&diff)]);
        dir.ok(&["import-diff", p(&diff), p(&back)]);
        assert_eq!(sha256(&back), want2, "{name}: through the local store");
    }
    rbd(&conf, &["snap", "purge", &spec]);
    rbd(&conf, &["rm", &spec]);
}

#[test]
fn rbd_image_v2_exports_round_trip_with_snapshots_and_meta() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let image = unique("v2");
    let spec = format!("volumes/{image}");
    let src = dir.path("v1.img");
    make_image(&src, 8 * MIB, &[(0, MIB), (5 * MIB, MIB)], 43);
    rbd(&conf, &["import", p(&src), &spec]);
    rbd(&conf, &["image-meta", "set", &spec, "owner", "ops-team"]);
    rbd(&conf, &["snap", "create", &format!("{spec}@one")]);
    rbd(&conf, &["snap", "protect", &format!("{spec}@one")]);
    let change = dir.path("c.diff");
    std::fs::write(
        &change,
        v1_diff(8 * MIB, &[(MIB / 2, Some(text_bytes(70_000)), 70_000)]),
    )
    .unwrap();
    rbd(&conf, &["import-diff", p(&change), &spec]);
    rbd(&conf, &["snap", "create", &format!("{spec}@two")]);
    std::fs::write(&change, v1_diff(8 * MIB, &[(6 * MIB, None, MIB)])).unwrap();
    rbd(&conf, &["import-diff", p(&change), &spec]);
    let exported = dir.path("image.v2");
    rbd(
        &conf,
        &["export", "--export-format", "2", &spec, p(&exported)],
    );

    let report = dir.json(&["import", p(&exported), "local:copy"]);
    assert_eq!(report["meta"]["owner"], "ops-team");
    assert_eq!(report["snapshots"].as_array().unwrap().len(), 2);
    for snap in ["one", "two"] {
        let diff = dir.path(&format!("{snap}.diff"));
        let file = dir.path(&format!("{snap}.img"));
        dir.ok(&["export-diff", &format!("local:copy@{snap}"), p(&diff)]);
        dir.ok(&["import-diff", p(&diff), p(&file)]);
        assert_eq!(
            sha256(&file),
            rbd_sha(&conf, &dir, &format!("{spec}@{snap}")),
            "snapshot {snap}"
        );
    }
    let head = dir.path("head.diff");
    let head_file = dir.path("head.img");
    dir.ok(&["export-diff", "local:copy", p(&head)]);
    dir.ok(&["import-diff", p(&head), p(&head_file)]);
    assert_eq!(sha256(&head_file), rbd_sha(&conf, &dir, &spec));

    // And back into Ceph through `rbd import --export-format 2`.
    let ours = dir.path("ours.v2");
    dir.ok(&["export", "local:copy", p(&ours)]);
    let back = format!("volumes/{}", unique("back"));
    rbd(&conf, &["import", "--export-format", "2", p(&ours), &back]);
    for snap in ["one", "two"] {
        assert_eq!(
            rbd_sha(&conf, &dir, &format!("{back}@{snap}")),
            rbd_sha(&conf, &dir, &format!("{spec}@{snap}"))
        );
    }
    assert_eq!(rbd_sha(&conf, &dir, &back), rbd_sha(&conf, &dir, &spec));
    rbd(&conf, &["snap", "unprotect", &format!("{spec}@one")]);
    for s in [&spec, &back] {
        rbd(&conf, &["snap", "purge", s]);
        rbd(&conf, &["rm", s]);
    }
}
