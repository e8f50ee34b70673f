//! The store's own error type, mapped to [`ImageError`] at the trait boundary.

use crate::image::ImageError;
use std::io;
use std::path::{Path, PathBuf};

/// Errors of store-level operations (init, open, gc, verify) and the
/// internals; trait methods convert them with [`StoreError::into_image`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{}: not a blockback store (no config.json) and not empty", path.display())]
    NotAStore { path: PathBuf },
    #[error("store {} has format {found}, this blockback knows {known}; upgrade blockback", path.display())]
    NewerFormat {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("store {} is read-only (read-only media or not writable by this user): it can be read, verified and restored from, not changed", path.display())]
    NotWritable { path: PathBuf },
    #[error("{what} is busy: {why}")]
    Busy { what: String, why: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    Exists { what: String },
    #[error("{what} has snapshots; remove them first")]
    HasSnapshots { what: String },
    #[error("invalid {what}: {why}")]
    Invalid { what: String, why: String },
    #[error("corrupt data in {what}: {why}")]
    Corrupt { what: String, why: String },
    /// Keys: no key given for an encrypted store, a wrong one, a key file
    /// that cannot be read.
    #[error(transparent)]
    Key(#[from] crate::crypto::CryptoError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        StoreError::Io {
            what: what.into(),
            source,
        }
    }

    /// An I/O error on `path`; a full file system says what frees space.
    pub fn io_path(path: &Path, source: io::Error) -> Self {
        let source = match source.raw_os_error() {
            Some(libc::ENOSPC) => io::Error::new(
                source.kind(),
                format!(
                    "{source}; `blockback gc` frees the space of deleted and interrupted backups"
                ),
            ),
            _ => source,
        };
        Self::io(path.display().to_string(), source)
    }

    /// Maps to the image model's error; `what` names `store:<path> image@snap`.
    pub fn into_image(self, what: String) -> ImageError {
        match self {
            StoreError::Io { what: w, source } => match ImageError::from_io(w, source) {
                ImageError::Io { what: w, source } => ImageError::Io {
                    what: format!("{what}: {w}"),
                    source,
                },
                ImageError::PermissionDenied { what: w } => ImageError::PermissionDenied {
                    what: format!("{what}: {w}"),
                },
                other => ImageError::Backend {
                    what,
                    msg: other.to_string(),
                },
            },
            StoreError::Busy { why, .. } => ImageError::Busy {
                what: format!("{what} ({why})"),
            },
            StoreError::NotFound { what: w } => ImageError::NotFound {
                what: format!("{what}: {w}"),
            },
            StoreError::Exists { .. } => ImageError::Exists { what },
            StoreError::HasSnapshots { .. } => ImageError::HasSnapshots { what },
            StoreError::Invalid { why, .. } => ImageError::Invalid { what, why },
            StoreError::Corrupt { what: w, why } => ImageError::Corrupt {
                what,
                why: format!("{w}: {why}"),
            },
            StoreError::NotWritable { .. } => ImageError::PermissionDenied { what },
            other => ImageError::Backend {
                what,
                msg: other.to_string(),
            },
        }
    }
}
