//! Errors of the stream readers, writers and operations.

use std::io;

use crate::image::ImageError;

/// What went wrong; reader errors name the byte offset in the stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("byte {offset}: not an rbd stream (expected {expected:?}, found {found:?})")]
    BadBanner {
        offset: u64,
        expected: &'static str,
        found: String,
    },
    #[error("byte {offset}: unknown record tag 0x{tag:02x} in an rbd diff v1 stream")]
    UnknownTag { offset: u64, tag: u8 },
    #[error("byte {offset}: stream truncated inside {what}")]
    Truncated { offset: u64, what: &'static str },
    #[error("byte {offset}: {what} {start}+{len} is beyond the image size {size}")]
    BeyondSize {
        offset: u64,
        what: &'static str,
        start: u64,
        len: u64,
        size: u64,
    },
    #[error("byte {offset}: snapshot name of {len} bytes is longer than 4096 bytes")]
    NameTooLong { offset: u64, len: u64 },
    #[error("byte {offset}: {why}")]
    Malformed { offset: u64, why: String },
    #[error("byte {offset}: reading the stream failed: {source}")]
    Read { offset: u64, source: io::Error },
    #[error("writing the stream failed: {0}")]
    Write(#[source] io::Error),
    #[error(transparent)]
    Image(#[from] ImageError),
    /// An import stopped because its input ended early.
    #[error("stream truncated at byte {offset}: {consequence}")]
    ImportTruncated { offset: u64, consequence: String },
    #[error("refusing to import into {target}: {why}")]
    Refused { target: String, why: String },
    #[error("{what}: {why}")]
    Inconsistent { what: String, why: String },
    /// A caller used the writer against its rules (a bug, not bad data).
    #[error("stream writer misuse: {0}")]
    Usage(String),
}

pub type Result<T, E = StreamError> = std::result::Result<T, E>;
