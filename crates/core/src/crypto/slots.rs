//! Key slots: the master key wrapped once per credential.
//!
//! ```json
//! {"version":1,"cipher":"aes256gcm","store_id":"<uuid>","slots":[
//!   {"id":"3f9a0c1e","kind":"passphrase","created":1764800000,
//!    "kdf":{"algorithm":"argon2id","memory_kib":65536,"iterations":3,"parallelism":1},
//!    "salt":"<hex 16 bytes>","wrapped":"<hex: nonce || E(master) || tag>"},
//!   {"id":"77c2d410","kind":"key-file","created":..,"kdf":{"algorithm":"blake3"},..}]}
//! ```
//! A slot's wrapping key comes from its credential: argon2id over a
//! passphrase with the slot's salt and parameters, or BLAKE3's KDF over
//! the salt and a key file's content (already high-entropy: no stretching).
//! The wrap is the store's cipher with the store id, cipher, slot id and
//! kind as associated data, so a slot moved to another store or edited
//! does not open. Adding, removing or changing a slot rewrites this
//! document only; data never changes.

use super::cipher::{random_bytes, Cipher};
use super::credential::Credential;
use super::error::CryptoError;
use super::master::MasterKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const VERSION: u32 = 1;
const KEY_FILE_CONTEXT: &str = "blockback 2026-12-04 key slot from a key file";

/// argon2id cost of a passphrase slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// 64 MiB, 3 passes, 1 lane: RFC 9106's second recommendation with
    /// one lane (a backup host need not spend every core on unlocking).
    fn default() -> Self {
        Argon2Params {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    fn argon2(&self) -> Result<argon2::Argon2<'static>, CryptoError> {
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| CryptoError::Invalid {
                    what: "argon2id parameters".into(),
                    why: e.to_string(),
                })?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }

    /// Checks the parameters as argon2 will (memory >= 8 KiB per lane, ...).
    pub fn check(&self) -> Result<(), CryptoError> {
        self.argon2().map(|_| ())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm")]
pub enum Kdf {
    #[serde(rename = "argon2id")]
    Argon2id(Argon2Params),
    #[serde(rename = "blake3")]
    Blake3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotKind {
    #[serde(rename = "passphrase")]
    Passphrase,
    #[serde(rename = "key-file")]
    KeyFile,
}

impl SlotKind {
    pub fn name(&self) -> &'static str {
        match self {
            SlotKind::Passphrase => "passphrase",
            SlotKind::KeyFile => "key-file",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slot {
    pub id: String,
    pub kind: SlotKind,
    /// Unix seconds.
    pub created: u64,
    pub kdf: Kdf,
    salt: String,
    wrapped: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySlots {
    pub version: u32,
    pub cipher: Cipher,
    pub store_id: String,
    pub slots: Vec<Slot>,
}

/// What unlocking found: the master key and the slot that opened it.
#[derive(Debug)]
pub struct Unlocked {
    pub master: MasterKey,
    pub slot: String,
}

impl KeySlots {
    /// A new master key with one slot for `cred`.
    pub fn create(
        cipher: Cipher,
        cred: &Credential,
        params: Argon2Params,
    ) -> Result<(KeySlots, MasterKey), CryptoError> {
        let master = MasterKey::generate()?;
        let mut slots = KeySlots {
            version: VERSION,
            cipher,
            store_id: uuid::Uuid::new_v4().to_string(),
            slots: Vec::new(),
        };
        slots.add(&master, cred, params)?;
        Ok((slots, master))
    }

    pub fn from_json(bytes: &[u8], what: &str) -> Result<KeySlots, CryptoError> {
        let slots: KeySlots = serde_json::from_slice(bytes).map_err(|e| CryptoError::Invalid {
            what: format!("key slots of {what}"),
            why: e.to_string(),
        })?;
        if slots.version != VERSION {
            return Err(CryptoError::Invalid {
                what: format!("key slots of {what}"),
                why: format!("version {} (this blockback knows {VERSION})", slots.version),
            });
        }
        Ok(slots)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Plain data: serialisation cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Adds a slot for `cred`; returns its id.
    pub fn add(
        &mut self,
        master: &MasterKey,
        cred: &Credential,
        params: Argon2Params,
    ) -> Result<String, CryptoError> {
        let mut raw_id = [0u8; 4];
        random_bytes(&mut raw_id)?;
        let id = hex::encode(raw_id);
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        let (kind, kdf) = match cred {
            Credential::Passphrase(_) => (SlotKind::Passphrase, Kdf::Argon2id(params)),
            Credential::KeyFile { .. } => (SlotKind::KeyFile, Kdf::Blake3),
        };
        let wrapping = wrapping_key(&kdf, &salt, cred)?;
        let ad = self.ad(&id, kind);
        let wrapped = self.cipher.seal(&wrapping, &ad, master.bytes())?;
        self.slots.push(Slot {
            id: id.clone(),
            kind,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            kdf,
            salt: hex::encode(salt),
            wrapped: hex::encode(wrapped),
        });
        Ok(id)
    }

    /// Removes slot `id`; the last slot cannot go (the data would be lost).
    pub fn remove(&mut self, id: &str) -> Result<(), CryptoError> {
        if !self.slots.iter().any(|s| s.id == id) {
            return Err(CryptoError::Invalid {
                what: format!("key slot {id}"),
                why: "no such slot (see `key list`)".into(),
            });
        }
        if self.slots.len() == 1 {
            return Err(CryptoError::Invalid {
                what: format!("key slot {id}"),
                why: "it is the only one: add another key first, or the data could never be read again".into(),
            });
        }
        self.slots.retain(|s| s.id != id);
        Ok(())
    }

    /// Replaces slot `id` by a slot for `cred` (same id, fresh salt).
    pub fn rewrap(
        &mut self,
        master: &MasterKey,
        id: &str,
        cred: &Credential,
        params: Argon2Params,
    ) -> Result<(), CryptoError> {
        let pos =
            self.slots
                .iter()
                .position(|s| s.id == id)
                .ok_or_else(|| CryptoError::Invalid {
                    what: format!("key slot {id}"),
                    why: "no such slot".into(),
                })?;
        let created = self.add(master, cred, params)?;
        let mut slot = self
            .slots
            .pop()
            .filter(|s| s.id == created)
            .ok_or_else(|| CryptoError::Invalid {
                what: "key slots".into(),
                why: "slot vanished while rewrapping".into(),
            })?;
        // Re-seal under the old id (it is part of the associated data).
        let wrapping = wrapping_key(&slot.kdf, &hex_bytes(&slot.salt)?, cred)?;
        let ad = self.ad(id, slot.kind);
        slot.wrapped = hex::encode(self.cipher.seal(&wrapping, &ad, master.bytes())?);
        slot.id = id.to_string();
        self.slots[pos] = slot;
        Ok(())
    }

    /// Tries every credential on every slot of its kind.
    pub fn unlock(&self, what: &str, creds: &[Credential]) -> Result<Unlocked, CryptoError> {
        if creds.is_empty() {
            return Err(CryptoError::NoKey { what: what.into() });
        }
        for cred in creds {
            let kind = match cred {
                Credential::Passphrase(_) => SlotKind::Passphrase,
                Credential::KeyFile { .. } => SlotKind::KeyFile,
            };
            for slot in self.slots.iter().filter(|s| s.kind == kind) {
                if let Some(master) = self.try_slot(slot, cred)? {
                    return Ok(Unlocked {
                        master,
                        slot: slot.id.clone(),
                    });
                }
            }
        }
        let given: Vec<String> = creds.iter().map(Credential::describe).collect();
        Err(CryptoError::WrongKey {
            what: what.into(),
            given: given.join(" or "),
        })
    }

    fn try_slot(&self, slot: &Slot, cred: &Credential) -> Result<Option<MasterKey>, CryptoError> {
        let wrapping = wrapping_key(&slot.kdf, &hex_bytes(&slot.salt)?, cred)?;
        let wrapped = hex_bytes(&slot.wrapped)?;
        let ad = self.ad(&slot.id, slot.kind);
        match self.cipher.open(&wrapping, &ad, &wrapped) {
            Ok(bytes) => Ok(MasterKey::from_bytes(&Zeroizing::new(bytes))),
            Err(_) => Ok(None),
        }
    }

    fn ad(&self, id: &str, kind: SlotKind) -> Vec<u8> {
        format!(
            "blockback key slot v{VERSION}\0{}\0{}\0{id}\0{}",
            self.store_id,
            self.cipher.name(),
            kind.name()
        )
        .into_bytes()
    }
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, CryptoError> {
    hex::decode(s).map_err(|e| CryptoError::Invalid {
        what: "key slot".into(),
        why: e.to_string(),
    })
}

fn wrapping_key(
    kdf: &Kdf,
    salt: &[u8],
    cred: &Credential,
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let mut key = Zeroizing::new([0u8; 32]);
    match (kdf, cred) {
        (Kdf::Argon2id(params), Credential::Passphrase(pass)) => params
            .argon2()?
            .hash_password_into(pass.as_bytes(), salt, key.as_mut())
            .map_err(|e| CryptoError::Invalid {
                what: "argon2id".into(),
                why: e.to_string(),
            })?,
        (Kdf::Blake3, Credential::KeyFile { secret, .. }) => {
            let mut material = Zeroizing::new(salt.to_vec());
            material.extend_from_slice(secret);
            *key = blake3::derive_key(KEY_FILE_CONTEXT, &material);
        }
        _ => {
            return Err(CryptoError::Invalid {
                what: "key slot".into(),
                why: "its key derivation does not fit the credential".into(),
            })
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const FAST: Argon2Params = Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn pass(s: &str) -> Credential {
        Credential::Passphrase(Zeroizing::new(s.into()))
    }

    fn key_file(bytes: &[u8]) -> Credential {
        Credential::KeyFile {
            path: "k".into(),
            secret: Zeroizing::new(bytes.to_vec()),
        }
    }

    #[test]
    fn slots_unlock_with_their_credential_only() {
        for cipher in [Cipher::Aes256Gcm, Cipher::XChaCha20Poly1305] {
            let (mut slots, master) = KeySlots::create(cipher, &pass("old"), FAST).unwrap();
            let got = slots.unlock("s", &[pass("old")]).unwrap();
            assert_eq!(got.master.bytes(), master.bytes());
            let err = slots.unlock("s", &[pass("zq-secret-9")]).unwrap_err();
            assert!(matches!(err, CryptoError::WrongKey { .. }), "{err}");
            assert!(!err.to_string().contains("zq-secret"), "no secret in {err}");
            assert!(matches!(
                slots.unlock("s", &[]),
                Err(CryptoError::NoKey { .. })
            ));
            let file_slot = slots.add(&master, &key_file(&[5; 32]), FAST).unwrap();
            assert!(slots.unlock("s", &[key_file(&[5; 32])]).is_ok());
            assert!(slots.unlock("s", &[key_file(&[6; 32])]).is_err());
            // Change the passphrase: the old one stops working.
            let first = slots.slots[0].id.clone();
            slots.rewrap(&master, &first, &pass("new"), FAST).unwrap();
            assert!(slots.unlock("s", &[pass("old")]).is_err());
            let reread = KeySlots::from_json(&slots.to_json(), "s").unwrap();
            assert_eq!(reread.unlock("s", &[pass("new")]).unwrap().slot, first);
            // Remove; never the last one.
            slots.remove(&file_slot).unwrap();
            assert!(slots.unlock("s", &[key_file(&[5; 32])]).is_err());
            assert!(slots.remove(&first).is_err());
        }
    }

    #[test]
    fn a_slot_moved_to_another_store_does_not_open() {
        let (a, _) = KeySlots::create(Cipher::Aes256Gcm, &pass("p"), FAST).unwrap();
        let (mut b, _) = KeySlots::create(Cipher::Aes256Gcm, &pass("p"), FAST).unwrap();
        b.slots = a.slots.clone();
        assert!(b.unlock("b", &[pass("p")]).is_err());
    }
}
