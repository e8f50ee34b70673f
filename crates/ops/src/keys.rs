//! The key material encrypted local stores are opened with: one value per
//! command (or per service), handed to every place that opens a local
//! store, so the CLI and the service unlock stores the same way.

use crate::error::OpsResult;
use blockback_core::crypto::{
    read_passphrase_file, Credential, CryptoError, GivenKeys, KeySource, NoKeys,
};
use blockback_core::store::StoreError;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The credentials a key file and a passphrase file name (the CLI's
/// `--key-file` / `--passphrase-file`, the service's `key_file` /
/// `passphrase_file`). The passphrase file is read now; the key file when
/// an encrypted store is opened.
pub fn keys_from_files(
    key_file: Option<&Path>,
    passphrase_file: Option<&Path>,
) -> OpsResult<GivenKeys> {
    let passphrase = passphrase_file
        .map(read_passphrase_file)
        .transpose()
        .map_err(StoreError::from)?;
    Ok(GivenKeys::new(key_file.map(Path::to_path_buf), passphrase))
}

/// Credentials for encrypted local stores (never printed: `Debug` says only
/// whether any were given).
#[derive(Clone)]
pub struct StoreKeys {
    source: Arc<dyn KeySource>,
    /// False for stores other than the backup store (a volume store): an
    /// unencrypted one is fine there even when keys were given.
    strict: bool,
}

impl StoreKeys {
    /// No keys: encrypted stores fail to open with "give a key".
    pub fn none() -> Self {
        StoreKeys::new(Arc::new(NoKeys))
    }

    pub fn new(source: Arc<dyn KeySource>) -> Self {
        StoreKeys {
            source,
            strict: true,
        }
    }

    /// The same credentials for a store that holds volumes, not backups.
    pub fn for_volume_store(&self) -> Self {
        StoreKeys {
            source: self.source.clone(),
            strict: false,
        }
    }

    /// Whether the user named key material (a key file or passphrase).
    pub fn given(&self) -> bool {
        self.source.given()
    }
}

impl Default for StoreKeys {
    fn default() -> Self {
        StoreKeys::none()
    }
}

impl KeySource for StoreKeys {
    fn credentials(&self, what: &str) -> Result<Vec<Credential>, CryptoError> {
        self.source.credentials(what)
    }

    fn given(&self) -> bool {
        self.strict && self.source.given()
    }
}

impl fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreKeys")
            .field("given", &self.source.given())
            .finish_non_exhaustive()
    }
}
