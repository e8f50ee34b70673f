//! Ceph's diff and export stream formats: "rbd diff v1" (`rbd export-diff`),
//! "rbd diff v2" and "rbd image v2" (`rbd export --export-format 2`).
//!
//! - [`DiffWriter`] / [`DiffReader`]: the byte formats, constant memory.
//! - [`export_diff`] / [`import_diff`]: between a stream and an [`crate::image::Image`].
//! - [`merge_diff`]: `rbd merge-diff` for two v1 streams.
//! - [`export_image_v2`] / [`import_image_v2`]: whole images with snapshots.
//!
//! Byte layouts, the rbd CLI's behaviour and where we differ: `docs/streams.md`.

mod bytes;
mod error;
mod export;
pub mod format;
mod imagev2;
mod imagev2_reader;
mod import;
mod merge;
mod readahead;
mod reader;
mod v2header;
mod verify;
mod writepool;
mod writer;
pub mod zeros;

#[cfg(test)]
pub(crate) mod testimage;
#[cfg(test)]
mod tests;

pub use error::{Result, StreamError};
pub use export::{export_diff, ExportReport};
pub use format::DiffFormat;
pub use imagev2::{
    export_image_v2, import_image_v2, ImageV2Header, ImageV2Report, ImportedSnapshot,
};
pub use imagev2_reader::ImageV2Reader;
pub use import::{import_diff, ImportOptions, ImportReport};
pub use merge::merge_diff;
pub use reader::{DiffReader, Record};
pub use writer::DiffWriter;
