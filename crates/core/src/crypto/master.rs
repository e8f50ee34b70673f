//! The master key of a store and the keys derived from it.

use super::cipher::random_bytes;
use super::error::CryptoError;
use zeroize::Zeroizing;

/// 32 random bytes made when an encrypted store is created. Never stored
/// in the clear: key slots hold it wrapped. Every key the store uses is
/// derived from it ([`MasterKey::derive`]), so knowing one derived key
/// (e.g. a base image's LUKS passphrase) reveals neither the master key
/// nor the others.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    pub fn generate() -> Result<MasterKey, CryptoError> {
        let mut key = Zeroizing::new([0u8; 32]);
        random_bytes(key.as_mut())?;
        Ok(MasterKey(key))
    }

    pub(super) fn from_bytes(bytes: &[u8]) -> Option<MasterKey> {
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(bytes.get(..32).filter(|_| bytes.len() == 32)?);
        Some(MasterKey(key))
    }

    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key for one purpose, named by a context string that is unique
    /// to it (BLAKE3's key derivation mode).
    pub fn derive(&self, context: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(context, self.0.as_ref()))
    }

    /// The key for one purpose and one item (e.g. a LUKS passphrase per
    /// base image): the purpose's key hashing the item's name.
    pub fn derive_for(&self, context: &str, item: &[u8]) -> Zeroizing<[u8; 32]> {
        let key = self.derive(context);
        Zeroizing::new(*blake3::keyed_hash(&key, item).as_bytes())
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_purpose_and_item() {
        let m = MasterKey::generate().unwrap();
        assert_ne!(*m.derive("a"), *m.derive("b"));
        assert_ne!(*m.derive_for("a", b"x"), *m.derive_for("a", b"y"));
        assert_eq!(*m.derive_for("a", b"x"), *m.derive_for("a", b"x"));
        assert_ne!(*m.derive("a"), *MasterKey::generate().unwrap().derive("a"));
        assert_eq!(format!("{m:?}"), "MasterKey(..)");
    }
}
