//! `--rbd-features`, `--rbd-order`, `--rbd-stripe-unit`, `--rbd-stripe-count`:
//! the layout of the base images an RBD store creates, against the real
//! test cluster (`BLOCKBACK_TEST_CEPH_CONF`).

mod util;
use serde_json::Value;
use util::ceph::*;
use util::*;

fn rbd_info(conf: &std::path::Path, image: &str) -> Value {
    let out = rbd(
        conf,
        &["info", &format!("backups/{image}"), "--format", "json"],
    );
    serde_json::from_str(&out).expect("rbd info json")
}

/// One test, so that "nothing changed in the pool" is not disturbed by a
/// sibling test writing to it at the same time.
#[test]
fn striped_store_layout_is_applied_and_bad_values_change_nothing() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(
        &src,
        12 * MIB,
        &[(0, MIB + 4096), (5 * MIB + 100, 2 * MIB), (11 * MIB, 777)],
        51,
    );
    let s = src.to_str().unwrap();

    let before = rbd(&conf, &["ls", "backups"]);
    let bad: [(&[&str], &str); 4] = [
        (
            &["--rbd-stripe-unit", "3000", "--rbd-stripe-count", "4"],
            "--rbd-stripe-unit",
        ),
        (
            &["--rbd-stripe-unit", "65536", "--rbd-stripe-count", "0"],
            "--rbd-stripe-count",
        ),
        (&["--rbd-features", "layering,nonsense"], "nonsense"),
        (&["--rbd-order", "40"], "--rbd-order"),
    ];
    for (flags, named) in bad {
        let mut args = vec!["--store", "rbd:backups"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["backup", "create", s]);
        let err = fails(&dir, &conf, &args);
        assert!(err.contains(named), "{flags:?}: {err}");
    }
    assert_eq!(rbd(&conf, &["ls", "backups"]), before, "no image created");
    assert!(
        json(&dir, &conf, &["backup", "list"])
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing recorded"
    );

    let record = json(
        &dir,
        &conf,
        &[
            "--store",
            "rbd:backups",
            "--rbd-stripe-unit",
            "65536",
            "--rbd-stripe-count",
            "4",
            "backup",
            "create",
            s,
        ],
    );
    let image = record["image"].as_str().unwrap().to_string();
    let info = rbd_info(&conf, &image);
    assert_eq!(info["stripe_unit"], 65536, "{info}");
    assert_eq!(info["stripe_count"], 4, "{info}");
    let features: Vec<_> = info["features"].as_array().unwrap().iter().collect();
    assert!(features.iter().any(|f| *f == "striping"), "{info}");
    let out = dir.path("restored.img");
    ok(
        &dir,
        &conf,
        &["backup", "restore", &id_of(&record), out.to_str().unwrap()],
    );
    assert_eq!(sha256(&out), sha256(&src));
    ok(&dir, &conf, &["backup", "delete", &id_of(&record)]);

    // Explicit features and object size, no striping.
    let record = json(
        &dir,
        &conf,
        &[
            "--store",
            "rbd:backups",
            "--rbd-features",
            "layering,exclusive-lock",
            "--rbd-order",
            "20",
            "backup",
            "create",
            "--full",
            s,
        ],
    );
    let info = rbd_info(&conf, record["image"].as_str().unwrap());
    assert_eq!(info["order"], 20, "{info}");
    let mut features: Vec<_> = info["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    features.sort();
    assert_eq!(features, ["exclusive-lock", "layering"], "{info}");
    ok(&dir, &conf, &["backup", "delete", &id_of(&record)]);
}
