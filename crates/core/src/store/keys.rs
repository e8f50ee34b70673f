//! `keys.json`: the key slots of an encrypted store (see
//! [`crate::crypto::KeySlots`]), replaced atomically by `key` commands
//! under `keys.lock`.

use super::error::StoreError;
use super::meta::write_atomic;
use crate::crypto::{CryptoError, KeySlots, SlotStore};
use std::path::{Path, PathBuf};

pub const KEYS_FILE: &str = "keys.json";
pub const KEYS_LOCK: &str = "keys.lock";

/// The key slots of the store at `root`.
pub struct LocalSlots {
    pub root: PathBuf,
}

impl LocalSlots {
    pub fn new(root: &Path) -> Self {
        LocalSlots {
            root: root.to_path_buf(),
        }
    }
}

impl SlotStore for LocalSlots {
    fn describe(&self) -> String {
        format!("store {}", self.root.display())
    }

    fn load_slots(&self) -> Result<KeySlots, CryptoError> {
        let path = self.root.join(KEYS_FILE);
        let bytes = std::fs::read(&path).map_err(|source| CryptoError::Io {
            what: path.display().to_string(),
            source,
        })?;
        KeySlots::from_json(&bytes, &self.describe())
    }

    fn save_slots(&self, slots: &KeySlots) -> Result<(), CryptoError> {
        write_atomic(&self.root, KEYS_FILE, &slots.to_json()).map_err(|e| match e {
            StoreError::Key(k) => k,
            other => CryptoError::Io {
                what: self.root.join(KEYS_FILE).display().to_string(),
                source: std::io::Error::other(other.to_string()),
            },
        })
    }
}

/// Key management of the store at `root`: every change proves a working
/// key first and rewrites `keys.json` only, under `keys.lock`, so two
/// concurrent changes never lose each other's slots.
pub mod manage {
    use super::LocalSlots;
    use crate::crypto::{self, Argon2Params, Credential, KeySource, Slot, SlotStore};
    use crate::store::config::Config;
    use crate::store::error::{Result, StoreError};
    use crate::store::lock::keys_exclusive;
    use std::path::Path;
    use zeroize::Zeroizing;

    fn encrypted(root: &Path) -> Result<LocalSlots> {
        let config = Config::load(root)?;
        if config.encryption.is_none() {
            return Err(StoreError::Invalid {
                what: format!("store {}", root.display()),
                why: "it is not encrypted: it has no keys (encryption is chosen at init)".into(),
            });
        }
        Ok(LocalSlots::new(root))
    }

    /// The slots (ids, kinds, creation times; nothing secret). Needs no key.
    pub fn list(root: &Path) -> Result<Vec<Slot>> {
        Ok(encrypted(root)?.load_slots()?.slots)
    }

    pub fn add(
        root: &Path,
        keys: &dyn KeySource,
        new: &Credential,
        params: Argon2Params,
    ) -> Result<String> {
        let slots = encrypted(root)?;
        let _lock = keys_exclusive(root)?;
        Ok(crypto::add_key(&slots, keys, new, params)?)
    }

    pub fn remove(root: &Path, keys: &dyn KeySource, id: &str) -> Result<()> {
        let slots = encrypted(root)?;
        let _lock = keys_exclusive(root)?;
        Ok(crypto::remove_key(&slots, keys, id)?)
    }

    pub fn change_passphrase(
        root: &Path,
        keys: &dyn KeySource,
        new: Zeroizing<String>,
        params: Argon2Params,
    ) -> Result<String> {
        let slots = encrypted(root)?;
        let _lock = keys_exclusive(root)?;
        Ok(crypto::change_passphrase(&slots, keys, new, params)?)
    }
}
