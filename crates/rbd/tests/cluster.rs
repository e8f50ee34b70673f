//! Connecting: users, keyrings, confs, pools, two connections at once.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use blockback_core::image::{ImageError, Pool};
use blockback_rbd::{Cluster, ClusterConfig};
use common::*;

fn conf_dir(conf: &std::path::Path) -> PathBuf {
    conf.parent().expect("conf has a directory").to_path_buf()
}

#[test]
fn connects_as_admin_and_lists_pools() {
    let Some(cluster) = admin() else { return };
    assert!(cluster.describe().contains("client.admin"));
    for pool in [POOL, OTHER_POOL] {
        cluster.open_pool(pool).unwrap().list().unwrap();
    }
}

#[test]
fn missing_conf_file_is_not_found_naming_the_file() {
    let Some(_) = conf() else { return };
    let cfg = config("/nonexistent/bb/ceph.conf".into(), "admin");
    let err = Cluster::connect(&cfg).unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/bb/ceph.conf"),
        "{err}"
    );
}

#[test]
fn unparsable_conf_is_refused() {
    let Some(_) = conf() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ceph.conf");
    std::fs::write(&bad, "[global\nmon host = = =\n\0\0").unwrap();
    let err = Cluster::connect(&config(bad.clone(), "admin")).unwrap_err();
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
}

#[test]
fn empty_user_is_refused() {
    let Some(conf) = conf() else { return };
    let err = Cluster::connect(&config(conf, "")).unwrap_err();
    assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn unknown_user_without_keyring_is_a_clear_error() {
    let Some(conf) = conf() else { return };
    let err = Cluster::connect(&config(conf, "nobody")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("client.nobody"), "{msg}");
    assert!(msg.contains("keyring"), "{msg}");
}

#[test]
fn missing_keyring_file_is_not_found_naming_it() {
    let Some(conf) = conf() else { return };
    let cfg = ClusterConfig {
        keyring: Some("/nonexistent/bb.keyring".into()),
        ..config(conf, "blockback")
    };
    let err = Cluster::connect(&cfg).unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/bb.keyring"), "{err}");
}

#[test]
fn wrong_key_fails_within_the_timeout_naming_user_and_keyring() {
    let Some(conf) = conf() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("wrong.keyring");
    // A well-formed key that is not client.blockback's.
    let key = "AQDeDAhr67SBCxAAwTGiaud3pK9uqBQuWvc+/Q==";
    std::fs::write(&keyring, format!("[client.blockback]\n\tkey = {key}\n")).unwrap();
    let cfg = ClusterConfig {
        keyring: Some(keyring),
        ..config(conf, "blockback")
    };
    // librados does not report a refused key: it retries until the mount
    // timeout, so the error can only be a timeout that names the suspects.
    let started = Instant::now();
    let err = Cluster::connect_with_timeout(&cfg, Duration::from_secs(3)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("client.blockback"), "{msg}");
    assert!(msg.contains("--keyring"), "{msg}");
}

#[test]
fn second_user_with_explicit_keyring_works_on_both_pools() {
    let Some(conf) = conf() else { return };
    let cfg = ClusterConfig {
        keyring: Some(conf_dir(&conf).join("ceph.client.blockback.keyring")),
        ..config(conf, "blockback")
    };
    let cluster = Cluster::connect(&cfg).unwrap();
    assert!(cluster.describe().contains("client.blockback"));
    for p in [POOL, OTHER_POOL] {
        let pool = cluster.open_pool(p).unwrap();
        let img = TempImage::create(&pool, "user", MIB);
        img.open().write_at(0, b"hello").unwrap();
    }
}

#[test]
fn missing_pool_is_not_found_naming_the_pool() {
    let Some(cluster) = admin() else { return };
    let err = cluster.open_pool("bb-no-such-pool").unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("bb-no-such-pool"), "{err}");
}

#[test]
fn two_connections_as_different_users_at_once() {
    let Some(conf) = conf() else { return };
    let a = Cluster::connect(&config(conf.clone(), "admin")).unwrap();
    let b = Cluster::connect(&config(conf, "blockback")).unwrap();
    let pa = a.open_pool(POOL).unwrap();
    let pb = b.open_pool(OTHER_POOL).unwrap();
    let src = TempImage::create(&pa, "xsrc", 4 * MIB);
    let dst = TempImage::create(&pb, "xdst", 4 * MIB);
    let data = pattern(7, 64 * 1024);
    src.open().write_at(MIB, &data).unwrap();
    // Copy across the two connections, as a cross-cluster restore would.
    let copied = read(src.open().as_ref(), MIB, data.len());
    let out = dst.open();
    out.write_at(MIB, &copied).unwrap();
    out.flush().unwrap();
    let back = b.open_pool(OTHER_POOL).unwrap().open(&dst.name).unwrap();
    assert_eq!(read(back.as_ref(), MIB, data.len()), data);
}
