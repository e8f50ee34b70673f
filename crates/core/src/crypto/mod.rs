//! Encryption at rest: ciphers, the master key and its key slots, and the
//! credentials that unlock them. Shared by the local store (chunks, index
//! pages, pack indexes, records) and the RBD store (its key object, the
//! LUKS passphrases of its base images, its named objects).
//!
//! - [`Cipher`]: AES-256-GCM or XChaCha20-Poly1305 (RustCrypto), sealing
//!   `nonce || ciphertext || tag`.
//! - [`MasterKey`]: 32 random bytes per store; every key the store uses is
//!   derived from it with BLAKE3's KDF under a context string.
//! - [`KeySlots`]: the master key wrapped once per credential (a key file,
//!   or a passphrase through argon2id with its parameters stored), so keys
//!   are added, removed and changed without touching data.
//! - [`envelope`]: sealed records with a checksum over the stored bytes, so
//!   integrity can be checked without the key.
//!
//! Formats and the threat model: docs/design.md, "Encryption at rest".

mod cipher;
mod credential;
pub mod envelope;
mod error;
mod manage;
mod master;
mod slots;

pub use cipher::{random_bytes, Cipher, TAG_LEN};
pub use credential::{
    read_key_file, read_passphrase_file, write_new_key_file, Credential, GivenKeys, KeySource,
    NoKeys,
};
pub use error::CryptoError;
pub use manage::{add_key, change_passphrase, remove_key, unlock, SlotStore};
pub use master::MasterKey;
pub use slots::{Argon2Params, Kdf, KeySlots, Slot, SlotKind, Unlocked};
