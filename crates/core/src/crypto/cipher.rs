//! The two AEAD ciphers a store may use, behind one small interface.
//!
//! Sealed form: `nonce || ciphertext || tag` (16-byte tag). Nonces are
//! random from the OS, 12 bytes for AES-256-GCM and 24 for
//! XChaCha20-Poly1305.

use super::error::CryptoError;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use serde::{Deserialize, Serialize};

pub const TAG_LEN: usize = 16;

/// A sealed message did not open: altered, truncated, another key or
/// other associated data (deliberately indistinguishable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cipher {
    #[serde(rename = "aes256gcm")]
    Aes256Gcm,
    #[serde(rename = "xchacha20poly1305")]
    XChaCha20Poly1305,
}

impl Cipher {
    pub const NAMES: [&'static str; 2] = ["aes256gcm", "xchacha20poly1305"];

    pub fn parse(name: &str) -> Option<Cipher> {
        match name {
            "aes256gcm" => Some(Cipher::Aes256Gcm),
            "xchacha20poly1305" => Some(Cipher::XChaCha20Poly1305),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "aes256gcm",
            Cipher::XChaCha20Poly1305 => "xchacha20poly1305",
        }
    }

    pub fn nonce_len(&self) -> usize {
        match self {
            Cipher::Aes256Gcm => 12,
            Cipher::XChaCha20Poly1305 => 24,
        }
    }

    /// Bytes a sealed message has beyond its plaintext.
    pub fn overhead(&self) -> usize {
        self.nonce_len() + TAG_LEN
    }

    /// Appends `nonce || E(plain) || tag` to `out`.
    pub fn seal_into(
        &self,
        key: &[u8; 32],
        ad: &[u8],
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let start = out.len();
        let n = self.nonce_len();
        out.resize(start + n, 0);
        fresh_nonce(&mut out[start..start + n])?;
        out.extend_from_slice(plain);
        let (head, body) = out[start..].split_at_mut(n);
        let tag = self.encrypt(key, head, ad, body);
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// `seal_into` a new vector.
    pub fn seal(&self, key: &[u8; 32], ad: &[u8], plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(plain.len() + self.overhead());
        self.seal_into(key, ad, plain, &mut out)?;
        Ok(out)
    }

    /// Authenticates and decrypts a sealed message into `out` (cleared
    /// first). Fails without a hint of why: a wrong key and tampering look
    /// the same.
    pub fn open_into(
        &self,
        key: &[u8; 32],
        ad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AuthFailed> {
        let n = self.nonce_len();
        if sealed.len() < n + TAG_LEN {
            return Err(AuthFailed);
        }
        let (nonce, rest) = sealed.split_at(n);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        out.clear();
        out.extend_from_slice(body);
        self.decrypt(key, nonce, ad, out, tag)
    }

    pub fn open(&self, key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AuthFailed> {
        let mut out = Vec::new();
        self.open_into(key, ad, sealed, &mut out)?;
        Ok(out)
    }

    fn encrypt(&self, key: &[u8; 32], nonce: &[u8], ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        // Infallible for our sizes (the AEADs refuse only messages beyond
        // 64 GiB); a zero tag would make the message fail to open.
        let tag = match self {
            Cipher::Aes256Gcm => aes_gcm::Aes256Gcm::new(key.into())
                .encrypt_in_place_detached(nonce.into(), ad, buf)
                .map(|t| t.into()),
            Cipher::XChaCha20Poly1305 => chacha20poly1305::XChaCha20Poly1305::new(key.into())
                .encrypt_in_place_detached(nonce.into(), ad, buf)
                .map(|t| t.into()),
        };
        tag.unwrap_or([0; TAG_LEN])
    }

    fn decrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8],
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), AuthFailed> {
        let ok = match self {
            Cipher::Aes256Gcm => aes_gcm::Aes256Gcm::new(key.into()).decrypt_in_place_detached(
                nonce.into(),
                ad,
                buf,
                tag.into(),
            ),
            Cipher::XChaCha20Poly1305 => chacha20poly1305::XChaCha20Poly1305::new(key.into())
                .decrypt_in_place_detached(nonce.into(), ad, buf, tag.into()),
        };
        ok.map_err(|_| AuthFailed)
    }
}

/// Fills `buf` from the operating system's random source (the
/// `getrandom` crate: getrandom(2) on Linux).
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::getrandom(buf).map_err(|e| CryptoError::Io {
        what: "getrandom".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// A random nonce per message, straight from the OS: every blob is
/// sealed under its own key (store/crypto.rs) and records are few, so
/// random 96-bit (AES-GCM) or 192-bit (XChaCha) nonces never collide in
/// practice, and one system call costs little beside sealing a chunk.
fn fresh_nonce(out: &mut [u8]) -> Result<(), CryptoError> {
    random_bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ciphers_round_trip_and_detect_tampering() {
        for cipher in [Cipher::Aes256Gcm, Cipher::XChaCha20Poly1305] {
            let key = [9u8; 32];
            let sealed = cipher.seal(&key, b"ad", b"hello world").unwrap();
            assert_eq!(sealed.len(), 11 + cipher.overhead());
            assert_eq!(cipher.open(&key, b"ad", &sealed).unwrap(), b"hello world");
            assert!(cipher.open(&key, b"other", &sealed).is_err());
            assert!(cipher.open(&[8u8; 32], b"ad", &sealed).is_err());
            let mut bad = sealed.clone();
            bad[cipher.nonce_len() + 3] ^= 1;
            assert!(cipher.open(&key, b"ad", &bad).is_err());
            assert!(cipher.open(&key, b"ad", &sealed[..10]).is_err());
            // Fresh nonces: the same message seals differently.
            assert_ne!(cipher.seal(&key, b"ad", b"hello world").unwrap(), sealed);
            assert_eq!(Cipher::parse(cipher.name()), Some(cipher));
        }
    }
}
