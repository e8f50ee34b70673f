//! Errors of opening things and running operations.

use blockback_core::catalog::CatalogError;
use blockback_core::engine::EngineError;
use blockback_core::image::ImageError;
use blockback_core::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Nbd(#[from] blockback_nbd::NbdError),
    /// An address, store or path the user gave that cannot be used; the
    /// message names it and says what to give instead.
    #[error("{0}")]
    Invalid(String),
    #[error("no store at {path}: the directory does not exist; give the right --store, or create one with `blockback store init` (a first `backup create` also does)")]
    StoreMissing { path: String },
    #[error("cannot create the store at {path}: {source}")]
    CreateStore { path: String, source: StoreError },
}

impl OpsError {
    /// Whether the thing operated on (image, pool, store, file) is missing.
    pub fn is_not_found(&self) -> bool {
        match self {
            OpsError::Image(e) | OpsError::Engine(EngineError::Image(e)) => e.is_not_found(),
            OpsError::StoreMissing { .. } => true,
            _ => false,
        }
    }
}

pub type OpsResult<T> = std::result::Result<T, OpsError>;

/// Shorthand for [`OpsError::Invalid`].
pub(crate) fn invalid<T>(message: impl Into<String>) -> OpsResult<T> {
    Err(OpsError::Invalid(message.into()))
}
