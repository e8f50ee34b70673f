//! The two AEAD ciphers a store may use, behind one small interface.
//!
//! Sealed form: `nonce || ciphertext || tag` (16-byte tag). Nonces are
//! random from the OS, 12 bytes for AES-256-GCM and 24 for
//! XChaCha20-Poly1305.

use super::error::CryptoError;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use ring::aead;
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

    /// Authenticates and decrypts a sealed message where it lies, and
    /// returns the plaintext inside `sealed`: no copy of the body, which on
    /// a restore is every byte read.
    pub fn open_in_place<'a>(
        &self,
        key: &[u8; 32],
        ad: &[u8],
        sealed: &'a mut [u8],
    ) -> Result<&'a [u8], AuthFailed> {
        let n = self.nonce_len();
        if sealed.len() < n + TAG_LEN {
            return Err(AuthFailed);
        }
        let (nonce, rest) = sealed.split_at_mut(n);
        let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        self.decrypt(key, nonce, ad, body, tag)?;
        Ok(body)
    }

    /// `open_in_place` on a copy: fails without a hint of why, as a wrong
    /// key and tampering look the same.
    pub fn open(&self, key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AuthFailed> {
        let mut buf = sealed.to_vec();
        let plain_len = self.open_in_place(key, ad, &mut buf)?.len();
        buf.truncate(self.nonce_len() + plain_len);
        buf.drain(..self.nonce_len());
        Ok(buf)
    }

    fn encrypt(&self, key: &[u8; 32], nonce: &[u8], ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        // Infallible for our sizes (the AEADs refuse only messages beyond
        // 64 GiB); a zero tag would make the message fail to open.
        let tag = match self {
            Cipher::Aes256Gcm => aes256gcm_seal(key, nonce, ad, buf),
            Cipher::XChaCha20Poly1305 => chacha20poly1305::XChaCha20Poly1305::new(key.into())
                .encrypt_in_place_detached(nonce.into(), ad, buf)
                .map(|t| t.into())
                .map_err(|_| ()),
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
        match self {
            Cipher::Aes256Gcm => aes256gcm_open(key, nonce, ad, buf, tag),
            Cipher::XChaCha20Poly1305 => chacha20poly1305::XChaCha20Poly1305::new(key.into())
                .decrypt_in_place_detached(nonce.into(), ad, buf, tag.into())
                .map_err(|_| AuthFailed),
        }
    }
}

/// AES-256-GCM through `ring`, whose assembly (AES-NI with a
/// carry-less-multiply GHASH) runs several times faster than the portable
/// GHASH of RustCrypto's `aes-gcm` on this kind of machine; the sealed bytes
/// are the same standard GCM, so stores sealed by either open with the other.
fn aes256gcm_key(key: &[u8; 32]) -> Option<aead::LessSafeKey> {
    aead::UnboundKey::new(&aead::AES_256_GCM, key)
        .ok()
        .map(aead::LessSafeKey::new)
}

fn aes256gcm_seal(
    key: &[u8; 32],
    nonce: &[u8],
    ad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], ()> {
    let key = aes256gcm_key(key).ok_or(())?;
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| ())?;
    let tag = key
        .seal_in_place_separate_tag(nonce, aead::Aad::from(ad), buf)
        .map_err(|_| ())?;
    tag.as_ref().try_into().map_err(|_| ())
}

fn aes256gcm_open(
    key: &[u8; 32],
    nonce: &[u8],
    ad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<(), AuthFailed> {
    let key = aes256gcm_key(key).ok_or(AuthFailed)?;
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| AuthFailed)?;
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| AuthFailed)?;
    key.open_in_place_separate_tag(nonce, aead::Aad::from(ad), aead::Tag::from(tag), buf, 0..)
        .map(|_| ())
        .map_err(|_| AuthFailed)
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
            let mut in_place = sealed.clone();
            assert_eq!(
                cipher.open_in_place(&key, b"ad", &mut in_place).unwrap(),
                b"hello world"
            );
            assert!(cipher.open_in_place(&key, b"ad", &mut bad).is_err());
            assert!(cipher
                .open_in_place(&key, b"ad", &mut in_place[..10])
                .is_err());
            // Fresh nonces: the same message seals differently.
            assert_ne!(cipher.seal(&key, b"ad", b"hello world").unwrap(), sealed);
            assert_eq!(Cipher::parse(cipher.name()), Some(cipher));
        }
    }

    // The GCM specification's AES-256 test cases 13 and 14 (zero key and
    // IV): proves the sealed form is standard GCM, not merely self-consistent.
    #[test]
    fn aes256gcm_matches_the_gcm_specification_vectors() {
        let key = [0u8; 32];
        let nonce = [0u8; 12];
        let mut empty: [u8; 0] = [];
        let tag = aes256gcm_seal(&key, &nonce, b"", &mut empty).unwrap();
        assert_eq!(hex::encode(tag), "530f8afbc74536b9a963b4f1c4cb738b");

        let mut block = [0u8; 16];
        let tag = aes256gcm_seal(&key, &nonce, b"", &mut block).unwrap();
        assert_eq!(hex::encode(block), "cea7403d4d606b6e074ec5d3baf39d18");
        assert_eq!(hex::encode(tag), "d0d1c8a799996bf0265b98b5d48ab919");
        aes256gcm_open(&key, &nonce, b"", &mut block, &tag).unwrap();
        assert_eq!(block, [0u8; 16]);
    }

    // Stores sealed before the switch to `ring` were sealed by RustCrypto's
    // aes-gcm: each must open what the other sealed, with associated data.
    #[test]
    fn aes256gcm_is_interchangeable_with_rustcrypto() {
        use aes_gcm::aead::{Aead, Payload};
        let key = [7u8; 32];
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let rustcrypto = aes_gcm::Aes256Gcm::new((&key).into());

        let ours = Cipher::Aes256Gcm.seal(&key, b"chunk", &plain).unwrap();
        let (nonce, body) = ours.split_at(12);
        let theirs_open = rustcrypto
            .decrypt(
                nonce.into(),
                Payload {
                    msg: body,
                    aad: b"chunk",
                },
            )
            .unwrap();
        assert_eq!(theirs_open, plain);

        let nonce = [3u8; 12];
        let mut theirs = nonce.to_vec();
        theirs.extend(
            rustcrypto
                .encrypt(
                    (&nonce).into(),
                    Payload {
                        msg: &plain,
                        aad: b"chunk",
                    },
                )
                .unwrap(),
        );
        assert_eq!(
            Cipher::Aes256Gcm.open(&key, b"chunk", &theirs).unwrap(),
            plain
        );
        assert!(Cipher::Aes256Gcm.open(&key, b"other", &theirs).is_err());
    }
}
