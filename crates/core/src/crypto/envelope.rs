//! Sealed records: small encrypted files and objects (a local store's
//! image records and named objects, an RBD store's named objects).
//!
//! ```text
//! "BBSEAL01" | nonce | ciphertext | tag | blake3(everything before)[32]
//! ```
//! The associated data names what the record is (e.g. `head\0<image>`),
//! so a record copied over another one does not open. The trailing
//! checksum covers the stored bytes: [`intact`] checks it without the key.

use super::cipher::Cipher;
use super::error::CryptoError;

pub const MAGIC: &[u8; 8] = b"BBSEAL01";
const SUM_LEN: usize = 32;

/// Bytes a sealed record has beyond its plaintext.
pub fn overhead(cipher: Cipher) -> usize {
    MAGIC.len() + cipher.overhead() + SUM_LEN
}

pub fn seal(
    cipher: Cipher,
    key: &[u8; 32],
    ad: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::with_capacity(plain.len() + overhead(cipher));
    out.extend_from_slice(MAGIC);
    cipher.seal_into(key, ad, plain, &mut out)?;
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    Ok(out)
}

/// Whether `bytes` is a whole sealed record (magic and checksum): the
/// check that needs no key.
pub fn intact(bytes: &[u8]) -> bool {
    bytes.len() >= MAGIC.len() + SUM_LEN
        && bytes.starts_with(MAGIC)
        && blake3::hash(&bytes[..bytes.len() - SUM_LEN]).as_bytes()[..]
            == bytes[bytes.len() - SUM_LEN..]
}

pub fn open(
    cipher: Cipher,
    key: &[u8; 32],
    ad: &[u8],
    bytes: &[u8],
    what: &str,
) -> Result<Vec<u8>, CryptoError> {
    let corrupt = |why: &str| CryptoError::Corrupt {
        what: what.into(),
        why: why.into(),
    };
    if !intact(bytes) {
        return Err(corrupt(
            "not a whole sealed record (checksum mismatch, truncated or not encrypted)",
        ));
    }
    let body = &bytes[MAGIC.len()..bytes.len() - SUM_LEN];
    cipher.open(key, ad, body).map_err(|_| {
        corrupt("authentication failed (altered, moved from elsewhere, or another key)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_open_only_unaltered_under_their_name() {
        let key = [3u8; 32];
        let rec = seal(Cipher::Aes256Gcm, &key, b"head\0a", b"{\"size\":1}").unwrap();
        assert!(intact(&rec));
        assert_eq!(
            open(Cipher::Aes256Gcm, &key, b"head\0a", &rec, "r").unwrap(),
            b"{\"size\":1}"
        );
        assert!(open(Cipher::Aes256Gcm, &key, b"head\0b", &rec, "r").is_err());
        let mut flipped = rec.clone();
        flipped[12] ^= 1;
        assert!(!intact(&flipped));
        assert!(open(Cipher::Aes256Gcm, &key, b"head\0a", &flipped, "r").is_err());
        assert!(!intact(&rec[..rec.len() - 1]));
        assert!(!intact(b"{\"size\":1}"));
    }
}
