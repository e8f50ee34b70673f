//! The semantic error every image backend maps its own errors into.

use std::io;

/// Errors of the image model. Each message names the pool, image, snapshot
/// or path it is about (`what`).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    Exists { what: String },
    #[error("{what} is busy (open or locked elsewhere); retry when it is released")]
    Busy { what: String },
    #[error("{what} has snapshots; remove them first")]
    HasSnapshots { what: String },
    #[error("{what} is read-only")]
    ReadOnly { what: String },
    #[error("permission denied on {what}")]
    PermissionDenied { what: String },
    #[error("invalid {what}: {why}")]
    Invalid { what: String, why: String },
    #[error("{what}: {op} is not supported by this kind of image")]
    Unsupported { what: String, op: &'static str },
    #[error("corrupt data in {what}: {why}")]
    Corrupt { what: String, why: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// A backend failure with no better variant (e.g. an unexpected errno).
    #[error("{what}: {msg}")]
    Backend { what: String, msg: String },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

impl ImageError {
    /// Maps an I/O error about `what` to the closest semantic variant.
    pub fn from_io(what: impl Into<String>, source: io::Error) -> Self {
        let what = what.into();
        match source.kind() {
            io::ErrorKind::NotFound => ImageError::NotFound { what },
            io::ErrorKind::AlreadyExists => ImageError::Exists { what },
            io::ErrorKind::PermissionDenied => ImageError::PermissionDenied { what },
            _ => ImageError::Io { what, source },
        }
    }

    /// True for errors worth retrying after a delay (busy images).
    pub fn is_busy(&self) -> bool {
        matches!(self, ImageError::Busy { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ImageError::NotFound { .. })
    }
}
