//! `config.json`: format version, chunk size and hashing key of a store.

use super::error::{Result, StoreError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The on-disk format this build writes and the newest it can read.
pub const FORMAT_VERSION: u32 = 1;
pub const DEFAULT_CHUNK_SIZE: u32 = 32 * 1024;
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
pub const CONFIG_FILE: &str = "config.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub format: u32,
    pub chunk_size: u32,
    /// Key of the keyed BLAKE3 chunk ids (hex of 32 random bytes).
    pub key: String,
    pub zstd_level: i32,
}

impl Config {
    pub fn new(chunk_size: u32, key: [u8; 32]) -> Result<Self> {
        check_chunk_size(u64::from(chunk_size))?;
        Ok(Config {
            format: FORMAT_VERSION,
            chunk_size,
            key: hex::encode(key),
            zstd_level: DEFAULT_ZSTD_LEVEL,
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
        cfg.key_bytes()?;
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
