//! Named RADOS objects of an RBD pool: the shared object conformance group,
//! the backup metadata object, and byte-level interoperability with the
//! `rados` CLI (what Cinder's python-rados bindings write and read).

mod common;

use std::path::Path;
use std::process::Command;

use blockback_core::image::conformance::run_pool_object_suite;
use blockback_core::image::{ImageError, Pool};
use blockback_core::metadata::{
    meta_object_name, read_backup_metadata, remove_backup_metadata, write_backup_metadata,
    BackupMetadata,
};
use blockback_rbd::{Cluster, RbdPool};
use common::*;

/// Removes object `name` from `pool` when dropped, so failing tests leave
/// nothing behind.
struct TempObject<'a> {
    pool: &'a RbdPool,
    name: String,
}

impl Drop for TempObject<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.pool.remove_object(&self.name) {
            eprintln!("cleanup of object {} failed: {e}", self.name);
        }
    }
}

/// The backup pool, as Cinder keeps its metadata objects there.
fn backups() -> Option<RbdPool> {
    Some(admin()?.open_pool(OTHER_POOL).expect("open pool backups"))
}

/// `rados -c CONF --id admin -p backups ARGS...`, which must succeed.
fn rados(conf: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("rados")
        .arg("-c")
        .arg(conf)
        .args(["--id", "admin", "-p", OTHER_POOL])
        .args(args)
        .output()
        .expect("run the rados CLI (ceph-common)");
    assert!(
        out.status.success(),
        "rados {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn rbd_pools_pass_the_object_conformance_group() {
    let Some(pool) = backups() else { return };
    run_pool_object_suite(&pool);
    // The reserved-name check tried to remove rbd_directory: the pool's
    // image directory must still work.
    pool.list().expect("list images after the object checks");
}

#[test]
fn metadata_object_is_write_once_and_read_back() {
    let Some(pool) = backups() else { return };
    let id = unique("meta");
    let _cleanup = TempObject {
        pool: &pool,
        name: meta_object_name(&id),
    };
    assert!(read_backup_metadata(&pool, &id).unwrap().is_none());
    let mut meta = BackupMetadata::default();
    meta.volume.insert("owner".into(), "team-a".into());
    meta.volume_base.insert("size".into(), 10.into());
    write_backup_metadata(&pool, &id, &meta).unwrap();
    let err = write_backup_metadata(&pool, &id, &BackupMetadata::default()).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(read_backup_metadata(&pool, &id).unwrap(), Some(meta));
    remove_backup_metadata(&pool, &id).unwrap();
    assert!(read_backup_metadata(&pool, &id).unwrap().is_none());
}

#[test]
fn objects_interoperate_with_the_rados_cli() {
    let Some(conf) = conf() else { return };
    let Some(pool) = backups() else { return };
    let dir = tempfile::tempdir().unwrap();
    // What Cinder wrote: read by us.
    let cinder = unique("cinder");
    let name = meta_object_name(&cinder);
    let _c1 = TempObject {
        pool: &pool,
        name: name.clone(),
    };
    let json =
        br#"{"version": 2, "volume-base-metadata": {"size": 1}, "volume-metadata": {"k": "v"}}"#;
    let src = dir.path().join("in.json");
    std::fs::write(&src, json).unwrap();
    rados(&conf, &["put", &name, src.to_str().unwrap()]);
    let meta = read_backup_metadata(&pool, &cinder).unwrap().unwrap();
    assert_eq!(meta.volume["k"], "v");
    // What we wrote: read by rados, byte for byte.
    let ours = unique("ours");
    let name = meta_object_name(&ours);
    let _c2 = TempObject {
        pool: &pool,
        name: name.clone(),
    };
    write_backup_metadata(&pool, &ours, &meta).unwrap();
    let dst = dir.path().join("out.json");
    rados(&conf, &["get", &name, dst.to_str().unwrap()]);
    assert_eq!(std::fs::read(&dst).unwrap(), meta.to_json());
}

#[test]
fn the_restricted_rbd_user_can_use_objects() {
    let Some(conf) = conf() else { return };
    let cluster =
        Cluster::connect(&config(conf, "blockback")).expect("connect as client.blockback");
    let pool = cluster.open_pool(OTHER_POOL).unwrap();
    let name = unique("user");
    let _cleanup = TempObject {
        pool: &pool,
        name: name.clone(),
    };
    pool.put_object(&name, b"data").unwrap();
    assert_eq!(
        pool.get_object(&name).unwrap().as_deref(),
        Some(&b"data"[..])
    );
    let err = pool.put_object(&name, b"other").unwrap_err();
    assert!(matches!(err, ImageError::Exists { .. }), "{err}");
}

#[test]
fn objects_of_one_pool_are_not_in_another() {
    let Some(cluster) = admin() else { return };
    let backups = cluster.open_pool(OTHER_POOL).unwrap();
    let volumes = cluster.open_pool(POOL).unwrap();
    let name = unique("pools");
    let _cleanup = TempObject {
        pool: &backups,
        name: name.clone(),
    };
    backups.put_object(&name, b"x").unwrap();
    assert_eq!(volumes.get_object(&name).unwrap(), None);
    // Objects are not images.
    assert!(!backups.list().unwrap().contains(&name));
}

#[test]
fn librbds_own_objects_are_out_of_reach() {
    let Some(conf) = conf() else { return };
    let Some(pool) = pool() else { return };
    // An image makes sure the pool has its rbd_directory object.
    let img = TempImage::create(&pool, "reserved", MIB);
    for name in ["rbd_directory", "rbd_info"] {
        let err = pool.remove_object(name).unwrap_err();
        assert!(matches!(err, ImageError::Invalid { .. }), "{name}: {err}");
        let err = pool.get_object(name).unwrap_err();
        assert!(err.to_string().contains("reserved"), "{name}: {err}");
    }
    let out = Command::new("rados")
        .arg("-c")
        .arg(&conf)
        .args(["--id", "admin", "-p", POOL, "stat", "rbd_directory"])
        .output()
        .expect("run the rados CLI (ceph-common)");
    assert!(out.status.success(), "rbd_directory is gone");
    assert!(pool.list().unwrap().contains(&img.name));
}

#[test]
fn an_oversized_object_is_refused_not_read() {
    let Some(conf) = conf() else { return };
    let Some(pool) = backups() else { return };
    let name = unique("big");
    let _cleanup = TempObject {
        pool: &pool,
        name: name.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big");
    let limit = blockback_core::objects::MAX_OBJECT_SIZE;
    std::fs::write(&src, vec![7u8; limit as usize + 1]).unwrap();
    rados(&conf, &["put", &name, src.to_str().unwrap()]);
    let err = pool.get_object(&name).unwrap_err();
    assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains(&name), "{err}");
}
