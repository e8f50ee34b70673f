//! Ceph RBD backend for blockback.
//!
//! librados and librbd are loaded at run time (`librados.so.2`,
//! `librbd.so.1`), so this crate builds everywhere and fails at
//! [`Cluster::connect`] with an install hint where Ceph is missing. All
//! unsafe code lives in `ffi`; the rest is safe wrappers:
//!
//! - [`ClusterConfig`] / [`Cluster`]: one client connection (`Arc`-shared);
//! - [`RbdPool`]: a pool as a [`blockback_core::image::Pool`], including
//!   its named RADOS objects (`put_object`, `get_object`, `remove_object`);
//! - [`RbdImage`]: an image (HEAD or snapshot) as an
//!   [`Image`](blockback_core::image::Image) with
//!   [`Snapshots`](blockback_core::image::Snapshots) and
//!   [`ImageMetadata`](blockback_core::image::ImageMetadata);
//! - [`RbdSpec`]: `rbd:POOL[/IMAGE[@SNAP]]` specs.

mod breaker;
mod cluster;
mod diff;
mod encoding;
mod error;
mod ffi;
mod image;
mod layout;
mod locks;
mod metadata;
mod objectmap;
mod objects;
mod pool;
mod slot;
mod snapshots;
mod spare;
mod spec;

pub use cluster::{Cluster, ClusterConfig, DEFAULT_CONNECT_TIMEOUT};
pub use image::{RbdImage, DEFAULT_QUEUE_DEPTH};
pub use layout::{parse_features, FEATURE_NAMES};
pub use locks::{RadosLocks, DEFAULT_LOCK_LEASE};
pub use pool::{features, librbd_version, CreateOptions, RbdPool};
pub use spec::RbdSpec;
