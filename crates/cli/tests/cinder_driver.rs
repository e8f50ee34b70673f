//! Cinder's own Ceph backup driver (the real one, from PyPI, in the venv
//! `scripts/python-env.sh` makes) restores backups blockback made into
//! `rbd:backups`: bit-exact, and with the volume's display name and
//! description from our `backup.<id>.meta` -- or, for a volume that was
//! never named, keeping the name Cinder gave the restore's volume.

mod util;
use std::path::Path;
use std::process::Command;
use util::ceph::*;
use util::python::python;
use util::*;

/// Runs `python/cinder_restore.py`: Cinder restores `backup` into a new
/// volume (a file here); returns the volume's name and description.
fn cinder_restore(
    python: &Path,
    conf: &Path,
    dir: &Dir,
    backup: &serde_json::Value,
    target: &Path,
) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/cinder_restore.py");
    let work = tempfile::tempdir_in(dir.tmp.path()).unwrap();
    let size_gib = backup["size"].as_u64().unwrap().div_ceil(1 << 30);
    let out = Command::new(python)
        .arg(script)
        .arg(conf)
        .args([
            backup["id"].as_str().unwrap(),
            backup["volume_id"].as_str().unwrap(),
            backup["image"].as_str().unwrap(),
            &size_gib.to_string(),
        ])
        .arg(target)
        .arg(work.path())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "Cinder's restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("driver output")
}

/// A 1 GiB volume (Cinder sizes are whole GiB) with 2 MiB of scattered data.
fn cinder_sized_volume(conf: &Path, prefix: &str) -> String {
    let volume = format!("volumes/{}", unique(prefix));
    rbd(conf, &["create", "--size", "1G", &volume]);
    scatter_writes(conf, &volume, "2M");
    volume
}

fn exported(conf: &Path, dir: &Dir, volume: &str) -> String {
    let path = dir.path("exported.img");
    let _ = std::fs::remove_file(&path);
    rbd(
        conf,
        &["export", "--no-progress", volume, path.to_str().unwrap()],
    );
    sha256(&path)
}

#[test]
fn cinder_restores_our_backups_with_the_volume_display_name() {
    let Some(conf) = cluster() else { return };
    let Some(python) = python() else { return };
    let dir = Dir::new();
    let bb = |args: &[&str]| {
        let mut all = vec!["--store", "rbd:backups"];
        all.extend_from_slice(args);
        json(&dir, &conf, &all)
    };

    // Named once; the incremental keeps the name without being told again.
    let named = cinder_sized_volume(&conf, "cinder-named");
    let source = format!("rbd:{named}");
    bb(&[
        "backup",
        "create",
        &source,
        "--name",
        "web db",
        "--description",
        "the db",
    ]);
    scatter_writes(&conf, &named, "1M");
    let second = bb(&["backup", "create", &source]);
    assert_eq!(second["kind"], "incremental", "{second}");
    let target = dir.path("cinder-restored.img");
    let volume = cinder_restore(&python, &conf, &dir, &second, &target);
    assert_eq!(volume["display_name"], "web db", "{volume}");
    assert_eq!(volume["display_description"], "the db", "{volume}");
    assert_eq!(sha256(&target), exported(&conf, &dir, &named));

    // Never named: the volume Cinder created for the restore keeps its name.
    let unnamed = cinder_sized_volume(&conf, "cinder-unnamed");
    let backup = bb(&["backup", "create", &format!("rbd:{unnamed}")]);
    let volume = cinder_restore(&python, &conf, &dir, &backup, &target);
    assert_eq!(
        volume["display_name"],
        format!("restore_backup_{}", id_of(&backup)),
        "the restored volume was renamed: {volume}"
    );

    for b in bb(&["backup", "list"]).as_array().unwrap() {
        bb(&["backup", "delete", &id_of(b)]);
    }
    rbd(&conf, &["rm", "--no-progress", &named]);
    rbd(&conf, &["rm", "--no-progress", &unnamed]);
}
