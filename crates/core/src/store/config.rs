//! `config.json`: format version, chunk size and hashing key of a store
//! (or, for an encrypted store, its cipher: the key is in no file).

use super::error::{Result, StoreError};
use crate::crypto::Cipher;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The newest on-disk format this build can read: 1 = unencrypted (what
/// unencrypted stores are still written as, so older builds read them),
/// 2 = encrypted.
pub const FORMAT_VERSION: u32 = 2;
const FORMAT_PLAIN: u32 = 1;
const FORMAT_ENCRYPTED: u32 = 2;
pub const DEFAULT_CHUNK_SIZE: u32 = 32 * 1024;
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
pub const CONFIG_FILE: &str = "config.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub format: u32,
    pub chunk_size: u32,
    /// Key of the keyed BLAKE3 chunk ids (hex of 32 random bytes); empty
    /// in an encrypted store, whose id key derives from the master key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    pub zstd_level: i32,
    /// The cipher of an encrypted store (its key slots: `keys.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Cipher>,
}

impl Config {
    pub fn new(chunk_size: u32, key: [u8; 32]) -> Result<Self> {
        check_chunk_size(u64::from(chunk_size))?;
        Ok(Config {
            format: FORMAT_PLAIN,
            chunk_size,
            key: hex::encode(key),
            zstd_level: DEFAULT_ZSTD_LEVEL,
            encryption: None,
        })
    }

    pub fn new_encrypted(chunk_size: u32, cipher: Cipher) -> Result<Self> {
        check_chunk_size(u64::from(chunk_size))?;
        Ok(Config {
            format: FORMAT_ENCRYPTED,
            chunk_size,
            key: String::new(),
            zstd_level: DEFAULT_ZSTD_LEVEL,
            encryption: Some(cipher),
        })
    }

    /// Reads and validates `config.json` of the store at `root`.
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join(CONFIG_FILE);
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io_path(&path, e))?;
        let cfg: Config = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            what: path.display().to_string(),
            why: e.to_string(),
        })?;
        if cfg.format > FORMAT_VERSION {
            return Err(StoreError::NewerFormat {
                path: root.to_path_buf(),
                found: cfg.format,
                known: FORMAT_VERSION,
            });
        }
        check_chunk_size(u64::from(cfg.chunk_size))?;
        let corrupt = |why: &str| StoreError::Corrupt {
            what: path.display().to_string(),
            why: why.into(),
        };
        match (cfg.encryption, cfg.format) {
            (None, FORMAT_PLAIN) => {
                cfg.key_bytes()?;
            }
            (Some(_), FORMAT_ENCRYPTED) if cfg.key.is_empty() => {}
            (Some(_), _) => return Err(corrupt("an encrypted store must be format 2 with no key")),
            (None, _) => {
                return Err(corrupt(
                    "format 2 is for encrypted stores, but no cipher is named",
                ))
            }
        }
        Ok(cfg)
    }

    pub fn key_bytes(&self) -> Result<[u8; 32]> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(&self.key, &mut key).map_err(|e| StoreError::Corrupt {
            what: CONFIG_FILE.into(),
            why: format!("bad key: {e}"),
        })?;
        Ok(key)
    }
}

/// Chunk sizes are powers of two from 4 KiB to 4 MiB (a leaf page of 1024
/// ids then covers 4 MiB .. 4 GiB).
fn check_chunk_size(size: u64) -> Result<()> {
    if size.is_power_of_two() && (4096..=4 << 20).contains(&size) {
        return Ok(());
    }
    Err(StoreError::Invalid {
        what: "chunk size".into(),
        why: format!("{size} is not a power of two between 4 KiB and 4 MiB"),
    })
}

/// 32 random bytes from the OS, for the store key.
pub fn random_key() -> Result<[u8; 32]> {
    use std::io::Read;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| StoreError::io("/dev/urandom", e))?;
    Ok(key)
}
