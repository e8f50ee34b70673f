//! Ceph's diff and export stream formats: "rbd diff v1" (`rbd export-diff`),
//! "rbd diff v2" and "rbd image v2" (`rbd export --export-format 2`).
//!
//! - [`DiffWriter`] / [`DiffReader`]: the byte formats, constant memory.
//! - [`export_diff`] / [`import_diff`]: between a stream and an [`crate::image::Image`].
//! - [`merge_diff`]: `rbd merge-diff` for two v1 streams.
//! - [`export_image_v2`] / [`import_image_v2`]: whole images with snapshots.
//!
//! Byte layouts and the rbd CLI's behaviour: `docs/streams.md`.

mod error;
pub mod format;
mod reader;
mod writer;
pub mod zeros;

pub use error::{Result, StreamError};
pub use format::DiffFormat;
pub use reader::{DiffReader, Record};
pub use writer::DiffWriter;

mod export;
mod readahead;
#[cfg(test)]
pub(crate) mod testimage;

pub use export::{export_diff, ExportReport};
mod import;
mod verify;
mod writepool;

pub use import::{import_diff, ImportOptions, ImportReport};
