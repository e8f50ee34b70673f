//! Retention from the command line: policies, protect, prune (dry run,
//! execution, gc in the same run, interrupted by kill -9), chain length.

mod util;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use util::ceph;
use util::{dir_bytes, id_of, make_image, sha256, write_at, Dir, MIB};

/// A volume and a backup after each of `n` changes; returns the ids and
/// the content hash at each.
fn history(dir: &Dir, name: &str, n: usize) -> (PathBuf, Vec<(String, String)>) {
    let src = dir.path(name);
    make_image(&src, 8 * MIB, &[(0, MIB)], 7);
    let mut out = Vec::new();
    for i in 0..n {
        let data: Vec<u8> = (0..256 * 1024)
            .map(|j| (j * 7 + i * 13) as u8 | 1)
            .collect();
        write_at(&src, (i as u64 % 28) * 256 * 1024, &data);
        let id = id_of(&dir.backup(&src));
        out.push((id, sha256(&src)));
    }
    (src, out)
}

fn ids(dir: &Dir) -> BTreeSet<String> {
    dir.json(&["backup", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect()
}

fn restores_as(dir: &Dir, id: &str, sum: &str) {
    let out = dir.path(&format!("restored-{id}.img"));
    dir.ok(&["backup", "restore", id, out.to_str().unwrap()]);
    assert_eq!(sha256(&out), sum, "backup {id} restored different data");
    std::fs::remove_file(out).unwrap();
}

#[test]
fn prune_removes_what_no_rule_keeps_and_reclaims_the_space() {
    let dir = Dir::new();
    let (_src, backups) = history(&dir, "disk.img", 6);
    dir.ok(&["backup", "protect", &backups[1].0[..8]]);
    dir.ok(&["policy", "set", "--keep-last", "2", "--time-zone", "UTC"]);
    let before = dir_bytes(&dir.store());

    let plan = dir.json(&["prune", "--dry-run"]);
    let verdicts: Vec<(String, String)> = plan["volumes"][0]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["action"].as_str().unwrap().to_string(),
                b["reasons"].to_string(),
            )
        })
        .collect();
    let want = [
        ("remove", r#"["expired"]"#),
        ("keep", r#"["protected"]"#),
        ("remove", r#"["expired"]"#),
        ("remove", r#"["expired"]"#),
        ("keep", r#"["last"]"#),
        ("keep", r#"["newest","last"]"#),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, r)| (a.to_string(), r.to_string()))
        .collect();
    assert_eq!(verdicts, want);
    let text = dir.ok(&["prune", "--dry-run"]);
    assert!(text.contains("would remove 3 of 6"), "{text}");
    assert!(
        text.contains(&format!("remove  {}", backups[0].0)),
        "{text}"
    );
    assert_eq!(ids(&dir).len(), 6, "a dry run removed backups");
    assert_eq!(
        dir_bytes(&dir.store()),
        before,
        "a dry run changed the store"
    );

    let done = dir.json(&["prune"]);
    assert_eq!(done["removed"].as_array().unwrap().len(), 3);
    assert!(done["gc"]["bytes_freed"].as_u64().unwrap() > 0, "{done}");
    let kept: BTreeSet<String> = [1, 4, 5].iter().map(|&i| backups[i].0.clone()).collect();
    assert_eq!(ids(&dir), kept);
    assert!(
        dir_bytes(&dir.store()) < before,
        "gc did not shrink the store"
    );
    for &i in &[1, 4, 5] {
        restores_as(&dir, &backups[i].0, &backups[i].1);
    }
    dir.ok(&["verify"]);
    // Stable: a second prune removes nothing.
    assert_eq!(dir.json(&["prune"])["removed"].as_array().unwrap().len(), 0);

    let refused = dir.fails(&["backup", "delete", &backups[1].0]);
    assert!(
        refused.contains("protected") && refused.contains("unprotect"),
        "{refused}"
    );
    dir.ok(&["backup", "unprotect", &backups[1].0]);
    dir.ok(&["prune"]);
    assert_eq!(
        ids(&dir),
        [4, 5].iter().map(|&i| backups[i].0.clone()).collect()
    );
}

#[test]
fn a_volume_policy_overrides_the_store_default_and_volume_limits_the_prune() {
    let dir = Dir::new();
    let (a, a_backups) = history(&dir, "a.img", 4);
    let (_b, b_backups) = history(&dir, "b.img", 4);
    dir.ok(&["policy", "set", "--keep-last", "1"]);
    dir.ok(&[
        "policy",
        "set",
        "--volume",
        a.to_str().unwrap(),
        "--keep-last",
        "3",
    ]);
    let shown = dir.ok(&["policy", "show", "--volume", "a.img"]);
    assert!(
        shown.contains("keep-last 3") && shown.contains("the volume's own"),
        "{shown}"
    );

    dir.ok(&["prune", "--volume", "b.img"]);
    let left = ids(&dir);
    assert_eq!(left.len(), 5, "only b's 3 old backups go");
    assert!(left.contains(&b_backups[3].0));
    dir.ok(&["prune"]);
    let left = ids(&dir);
    assert_eq!(left.len(), 4);
    assert!(a_backups[1..].iter().all(|(id, _)| left.contains(id)));

    dir.ok(&["policy", "unset", "--volume", "a.img"]);
    dir.ok(&["prune"]);
    assert_eq!(
        ids(&dir).len(),
        2,
        "a follows the store default once its own is unset"
    );
}

#[test]
fn bad_policies_and_unknown_volumes_are_refused_with_one_line() {
    let dir = Dir::new();
    let (_src, _) = history(&dir, "disk.img", 1);
    let span = dir.fails(&["policy", "set", "--keep-within", "soon"]);
    assert!(span.contains("\"soon\"") && span.contains("7d"), "{span}");
    let zone = dir.fails(&[
        "policy",
        "set",
        "--keep-daily",
        "7",
        "--time-zone",
        "Mars/Olympus",
    ]);
    assert!(zone.contains("Mars/Olympus"), "{zone}");
    let chain = dir.fails(&["policy", "set", "--max-chain-length", "0"]);
    assert!(chain.contains("max-chain-length"), "{chain}");
    let volume = dir.fails(&["prune", "--volume", "nope.img"]);
    assert!(
        volume.contains("nope.img") && volume.contains("not in the catalog"),
        "{volume}"
    );
    let unset = dir.fails(&["policy", "unset"]);
    assert!(unset.contains("no policy"), "{unset}");
    assert_eq!(dir.json(&["policy", "show"]).as_array().unwrap().len(), 0);
    // Without a policy, prune keeps everything.
    let plan = dir.json(&["prune"]);
    assert_eq!(plan["removed"].as_array().unwrap().len(), 0);
}

#[test]
fn max_chain_length_starts_a_new_chain() {
    let dir = Dir::new();
    dir.ok(&["policy", "set", "--max-chain-length", "2"]);
    let src = dir.path("disk.img");
    make_image(&src, 4 * MIB, &[(0, MIB)], 1);
    for i in 0..5 {
        write_at(&src, i * 4096, b"changed");
        let out = dir.run(&["backup", "create", src.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(
            stderr.contains("max-chain-length is 2"),
            i % 2 == 0 && i > 0,
            "{i}: {stderr}"
        );
    }
    let kinds: Vec<String> = dir
        .json(&["backup", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["full", "incremental", "full", "incremental", "full"]
    );
}

/// Backups of one volume to prune down to one, with their content.
fn many_to_prune(dir: &Dir) -> Vec<(String, String)> {
    let (_src, backups) = history(dir, "disk.img", 16);
    dir.ok(&["policy", "set", "--keep-last", "1"]);
    backups
}

/// Waits until the prune run by `child` has removed a backup or is
/// removing one; false when it exited first.
fn wait_for_removals(dir: &Dir, child: &mut std::process::Child, all: usize) -> bool {
    for _ in 0..2000 {
        if child.try_wait().expect("child status").is_some() {
            return false;
        }
        let list = dir.json(&["backup", "list"]);
        let list = list.as_array().unwrap();
        if list.len() < all || list.iter().any(|b| b["status"] == "deleting") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

#[test]
fn a_prune_killed_at_any_point_is_finished_by_the_next_prune_or_delete() {
    let mut mid_way = 0;
    for (round, ms) in [0u64, 1, 3, 6, 12, 25].into_iter().enumerate() {
        let dir = Dir::new();
        let backups = many_to_prune(&dir);
        let mut child = dir
            .command(&["--quiet", "prune"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = wait_for_removals(&dir, &mut child, backups.len());
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        let list = dir.json(&["backup", "list"]);
        let left = list.as_array().unwrap();
        let states: Vec<&str> = left.iter().map(|b| b["status"].as_str().unwrap()).collect();
        eprintln!("round {round}: killed {ms} ms into the removals, left {states:?}");
        if started && left.len() > 1 {
            mid_way += 1;
        }
        // Odd rounds: an operator deletes what the killed run left in
        // error by hand first; even rounds: the next prune does it all.
        if round % 2 == 1 {
            for b in left.iter().filter(|b| b["status"] == "error") {
                dir.ok(&["backup", "delete", b["id"].as_str().unwrap()]);
            }
        }
        dir.ok(&["prune"]);
        let (newest, sum) = backups.last().unwrap();
        assert_eq!(ids(&dir), BTreeSet::from([newest.clone()]), "round {round}");
        restores_as(&dir, newest, sum);
        dir.ok(&["gc"]);
        dir.ok(&["verify"]);
        let images: Vec<_> = std::fs::read_dir(dir.store().join("images"))
            .unwrap()
            .collect();
        assert_eq!(
            images.len(),
            1,
            "round {round}: bases of removed backups left"
        );
    }
    eprintln!("{mid_way} of 6 rounds killed prune in the middle of its removals");
    assert!(
        mid_way >= 2,
        "too few rounds killed prune mid-way: {mid_way}"
    );
}

#[test]
fn prune_on_an_rbd_store_removes_snapshots_and_bases() {
    let Some(conf) = ceph::cluster() else { return };
    let dir = Dir::new();
    let src = dir.path("vol.img");
    make_image(&src, 8 * MIB, &[(0, MIB)], 3);
    let rbd = |args: &[&str]| {
        ceph::ok(
            &dir,
            &conf,
            &[&["--store", "rbd:backups"][..], args].concat(),
        )
    };
    rbd(&[
        "policy",
        "set",
        "--keep-last",
        "2",
        "--max-chain-length",
        "3",
    ]);
    let mut made = Vec::new();
    for i in 0..5u64 {
        write_at(&src, i * MIB, &[i as u8 + 1; 4096]);
        let out = ceph::json(
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
        made.push((
            id_of(&out),
            out["image"].as_str().unwrap().to_string(),
            sha256(&src),
        ));
    }
    let text = rbd(&["prune"]);
    assert!(text.contains("removed 3 backups"), "{text}");
    assert!(!text.contains("gc"), "no gc for an RBD store: {text}");
    let kept = ids(&dir);
    assert_eq!(kept, made[3..].iter().map(|m| m.0.clone()).collect());
    let images = ceph::rbd(&conf, &["ls", "backups"]);
    let vid = &made[0].1["volume-".len()..][..36];
    let ours: Vec<&str> = images.lines().filter(|l| l.contains(vid)).collect();
    // Chains of 3: backups 0-2 on the first base (all removed: gone with
    // the last), 3-4 on the second.
    assert_eq!(ours, vec![made[3].1.as_str()], "{images}");
    let snaps = ceph::rbd(&conf, &["snap", "ls", &format!("backups/{}", made[3].1)]);
    for (id, _, _) in &made {
        assert_eq!(snaps.contains(id.as_str()), kept.contains(id), "{snaps}");
    }
    for (id, _, sum) in &made[3..] {
        let out = dir.path("r.img");
        rbd(&["backup", "restore", id, out.to_str().unwrap()]);
        assert_eq!(&sha256(&out), sum);
        std::fs::remove_file(&out).unwrap();
    }
    for id in &kept {
        rbd(&["backup", "delete", id]);
    }
}
