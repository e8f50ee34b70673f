//! The encryption layer of an encrypted store, beside [`super::codec`]:
//! keys derived from the master key, sealing of blobs (chunks and index
//! pages), of pack indexes and of records (image records, named objects).
//!
//! - Chunk and page ids are keyed with `derive("... chunk ids")`: equal
//!   content has equal ids inside the store (dedup), ids say nothing
//!   across stores.
//! - A blob is sealed as `nonce || E(stored) || tag` (after compression)
//!   under its own key, `keyed_hash(derive("... blobs"), kind || id)`: no
//!   key ever seals enough messages for nonce reuse to matter, and a blob
//!   moved under another id (or another store) does not open.
//! - Pack indexes and records are sealed under `derive("... records")`
//!   with random nonces and associated data naming what they are.

use super::error::StoreError;
use super::id::ChunkId;
use super::pack::BlobKind;
use crate::crypto::{envelope, Cipher, MasterKey};
use zeroize::Zeroizing;

const ID_CONTEXT: &str = "blockback 2026-12-04 local store chunk ids";
const BLOB_CONTEXT: &str = "blockback 2026-12-04 local store blobs";
const RECORD_CONTEXT: &str = "blockback 2026-12-04 local store records";

pub struct StoreCrypto {
    pub cipher: Cipher,
    blob_key: Zeroizing<[u8; 32]>,
    record_key: Zeroizing<[u8; 32]>,
}

impl StoreCrypto {
    /// The layer and the chunk-id key of a store with this master key.
    pub fn new(master: &MasterKey, cipher: Cipher) -> (StoreCrypto, [u8; 32]) {
        let crypto = StoreCrypto {
            cipher,
            blob_key: master.derive(BLOB_CONTEXT),
            record_key: master.derive(RECORD_CONTEXT),
        };
        (crypto, *master.derive(ID_CONTEXT))
    }

    fn blob_key(&self, kind: BlobKind, id: &ChunkId) -> Zeroizing<[u8; 32]> {
        let mut hasher = blake3::Hasher::new_keyed(&self.blob_key);
        hasher.update(&[kind as u8]).update(&id.0);
        Zeroizing::new(*hasher.finalize().as_bytes())
    }

    /// Appends the sealed form of a blob's stored bytes to `out`.
    pub fn seal_blob(
        &self,
        kind: BlobKind,
        id: &ChunkId,
        stored: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let key = self.blob_key(kind, id);
        self.cipher
            .seal_into(&key, &[], stored, out)
            .map_err(StoreError::from)
    }

    /// Opens a sealed blob where it lies and returns its stored bytes
    /// (inside `sealed`); the error says why, for messages.
    pub fn open_blob<'a>(
        &self,
        kind: BlobKind,
        id: &ChunkId,
        sealed: &'a mut [u8],
    ) -> Result<&'a [u8], String> {
        let key = self.blob_key(kind, id);
        (self.cipher.open_in_place(&key, &[], sealed))
            .map_err(|_| "authentication failed (altered, or not this store's blob)".into())
    }

    /// Seals a pack's index (its name is not bound: packs may be renamed
    /// freely, every blob authenticates itself).
    pub fn seal_index(&self, index: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(self.cipher.seal(&self.record_key, b"pack index", index)?)
    }

    pub fn open_index(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        self.cipher
            .open(&self.record_key, b"pack index", sealed)
            .ok()
    }

    /// Seals a record named `name` (e.g. `head\0<image>`).
    pub fn seal_record(&self, name: &str, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(envelope::seal(
            self.cipher,
            &self.record_key,
            name.as_bytes(),
            plain,
        )?)
    }

    pub fn open_record(&self, name: &str, bytes: &[u8], what: &str) -> Result<Vec<u8>, StoreError> {
        envelope::open(self.cipher, &self.record_key, name.as_bytes(), bytes, what).map_err(|e| {
            StoreError::Corrupt {
                what: what.into(),
                why: e.to_string(),
            }
        })
    }
}
