//! Errors of the server's interface (binding, exports). What goes wrong
//! with one client is logged and ends that connection only.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: io::Error },
    #[error("an export named {0} is already served; stop it first or give another name")]
    ExportExists(String),
    #[error("no export named {0} is served")]
    NoSuchExport(String),
    #[error("this server already serves {0} exports, its limit; stop one first")]
    TooManyExports(usize),
    #[error("the export {name} could not be opened: {source}")]
    Image {
        name: String,
        source: blockback_core::image::ImageError,
    },
    #[error("{0}")]
    Io(#[from] io::Error),
}

pub type NbdResult<T> = Result<T, NbdError>;
