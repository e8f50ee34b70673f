//! Errors of key handling and decryption. Messages never contain key
//! material, passphrases or key file contents.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("{what} is encrypted: give a key file or a passphrase to open it")]
    NoKey { what: String },
    #[error("{what}: no key slot accepts the given {given} (wrong key file or passphrase)")]
    WrongKey { what: String, given: String },
    #[error("key file {}: {why}", path.display())]
    KeyFile { path: PathBuf, why: String },
    #[error("passphrase file {}: {why}", path.display())]
    PassphraseFile { path: PathBuf, why: String },
    #[error("invalid {what}: {why}")]
    Invalid { what: String, why: String },
    #[error("{what} cannot be decrypted: {why}")]
    Corrupt { what: String, why: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}
