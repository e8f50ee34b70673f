//! Shared helpers for the tests that run against a real Ceph cluster.
//!
//! The cluster's conf path comes from `BLOCKBACK_TEST_CEPH_CONF` (start one
//! with `scripts/ceph-cluster.sh start DIR`; the conf's `keyring` setting
//! finds `DIR/ceph.client.<id>.keyring`). Without it the tests fail when
//! `BLOCKBACK_REQUIRE_CEPH=1` and otherwise skip loudly.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use blockback_core::image::{Image, Pool};
use blockback_rbd::{Cluster, ClusterConfig, RbdPool};

pub const POOL: &str = "volumes";
pub const OTHER_POOL: &str = "backups";
pub const MIB: u64 = 1 << 20;

/// The test cluster's conf, or `None` (after a loud message) to skip.
pub fn conf() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BLOCKBACK_TEST_CEPH_CONF") {
        return Some(PathBuf::from(p));
    }
    assert!(
        std::env::var("BLOCKBACK_REQUIRE_CEPH").as_deref() != Ok("1"),
        "BLOCKBACK_REQUIRE_CEPH=1 but BLOCKBACK_TEST_CEPH_CONF is not set \
         (scripts/ceph-cluster.sh start DIR prints the conf path)"
    );
    eprintln!("!!! skipped: no cluster (set BLOCKBACK_TEST_CEPH_CONF to run the Ceph tests) !!!");
    None
}

pub fn config(conf: PathBuf, id: &str) -> ClusterConfig {
    ClusterConfig {
        conf: Some(conf),
        id: id.into(),
        keyring: None,
    }
}

/// A client.admin connection, or `None` to skip.
pub fn admin() -> Option<Arc<Cluster>> {
    let conf = conf()?;
    Some(Cluster::connect(&config(conf, "admin")).expect("connect as client.admin"))
}

/// The admin connection's `volumes` pool, or `None` to skip.
pub fn pool() -> Option<RbdPool> {
    Some(admin()?.open_pool(POOL).expect("open pool volumes"))
}

/// A name no other test (or earlier run) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("bbt-{tag}-{}-{n}-{nanos}", std::process::id())
}

/// An image removed (with its snapshots) when dropped, so failing tests
/// leave nothing behind.
pub struct TempImage<'a> {
    pub pool: &'a RbdPool,
    pub name: String,
}

impl<'a> TempImage<'a> {
    pub fn create(pool: &'a RbdPool, tag: &str, size: u64) -> Self {
        let name = unique(tag);
        pool.create(&name, size).expect("create test image");
        TempImage { pool, name }
    }

    pub fn adopt(pool: &'a RbdPool, name: String) -> Self {
        TempImage { pool, name }
    }

    pub fn open(&self) -> Box<dyn Image> {
        self.pool.open(&self.name).expect("open test image")
    }
}

impl Drop for TempImage<'_> {
    fn drop(&mut self) {
        if let Ok(img) = self.pool.open(&self.name) {
            if let Some(snaps) = img.snapshots() {
                for s in snaps.list().unwrap_or_default() {
                    let _ = snaps.remove(&s.name);
                }
            }
        }
        if let Err(e) = self.pool.remove(&self.name) {
            if !e.is_not_found() {
                eprintln!("cleanup of {} failed: {e}", self.name);
            }
        }
    }
}

/// Deterministic bytes that differ per offset and seed.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

pub fn read(img: &dyn Image, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    img.read_at(offset, &mut buf).expect("read");
    buf
}
