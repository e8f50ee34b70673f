//! blockback core: everything a backup tool needs except a user interface.
//!
//! - [`image`]: the block-image model every backend implements (file, local
//!   store, RBD), modelled on librbd's semantics, and its conformance suite.
//! - [`store`]: the embedded local store (content-addressed, deduplicated,
//!   compressed, verified chunks; images with immutable snapshots).
//! - [`engine`]: backup, restore, verify, delete and gc, written once against
//!   the image traits and the [`catalog::Catalog`] trait.
//! - [`stream`]: Ceph's `rbd diff v1`/`v2` and `rbd image v2` formats.
//! - [`crypto`]: ciphers, master keys and key slots for encryption at rest.
//! - [`progress`]: a progress trait the CLI and service implement.
//! - [`objects`]: rules of the named write-once objects a [`image::Pool`]
//!   stores beside its images; [`metadata`]: the backup metadata object.
//!
//! The on-disk format, crash-safety argument and locking rules are in
//! `docs/design.md`.

pub mod catalog;
pub mod checksum;
pub mod crypto;
pub mod engine;
pub mod image;
pub mod iobuf;
pub mod metadata;
pub mod naming;
pub mod objects;
pub mod progress;
pub mod retention;
pub mod store;
pub mod stream;
pub mod zero;
