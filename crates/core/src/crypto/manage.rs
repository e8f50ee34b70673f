//! Key management on any store that keeps key slots: unlock, add, remove,
//! change a passphrase. Each operation proves the caller holds a working
//! key first, changes only the slots document, and writes it back whole
//! (the store replaces it atomically); data is never rewritten.

use super::credential::{Credential, KeySource};
use super::error::CryptoError;
use super::slots::{Argon2Params, KeySlots, SlotKind, Unlocked};
use zeroize::Zeroizing;

/// Where a store keeps its key slots (a local store's `keys.json`, an RBD
/// store's `blockback.keys` object).
pub trait SlotStore {
    /// For messages: `store:/path`, `rbd:pool`.
    fn describe(&self) -> String;
    fn load_slots(&self) -> Result<KeySlots, CryptoError>;
    /// Replaces the slots atomically (readers see the old or the new).
    fn save_slots(&self, slots: &KeySlots) -> Result<(), CryptoError>;
}

/// Opens the master key with the credentials of `keys`.
pub fn unlock(
    store: &dyn SlotStore,
    keys: &dyn KeySource,
) -> Result<(KeySlots, Unlocked), CryptoError> {
    let slots = store.load_slots()?;
    let what = store.describe();
    let unlocked = slots.unlock(&what, &keys.credentials(&what)?)?;
    Ok((slots, unlocked))
}

/// Adds a slot for `new`; returns its id.
pub fn add_key(
    store: &dyn SlotStore,
    keys: &dyn KeySource,
    new: &Credential,
    params: Argon2Params,
) -> Result<String, CryptoError> {
    let (mut slots, unlocked) = unlock(store, keys)?;
    let id = slots.add(&unlocked.master, new, params)?;
    store.save_slots(&slots)?;
    Ok(id)
}

/// Removes slot `id` (never the last one).
pub fn remove_key(
    store: &dyn SlotStore,
    keys: &dyn KeySource,
    id: &str,
) -> Result<(), CryptoError> {
    let (mut slots, _) = unlock(store, keys)?;
    slots.remove(id)?;
    store.save_slots(&slots)
}

/// Rewraps the passphrase slot that the given passphrase opens with a new
/// passphrase; the old one stops working. Returns the slot id.
pub fn change_passphrase(
    store: &dyn SlotStore,
    keys: &dyn KeySource,
    new: Zeroizing<String>,
    params: Argon2Params,
) -> Result<String, CryptoError> {
    let what = store.describe();
    let mut slots = store.load_slots()?;
    let creds: Vec<Credential> = keys
        .credentials(&what)?
        .into_iter()
        .filter(|c| matches!(c, Credential::Passphrase(_)))
        .collect();
    if creds.is_empty() {
        return Err(CryptoError::Invalid {
            what: "change-passphrase".into(),
            why: "give the current passphrase (a key file opens no passphrase slot)".into(),
        });
    }
    let unlocked = slots.unlock(&what, &creds)?;
    let slot = slots.slots.iter().find(|s| s.id == unlocked.slot);
    debug_assert!(slot.is_some_and(|s| s.kind == SlotKind::Passphrase));
    slots.rewrap(
        &unlocked.master,
        &unlocked.slot,
        &Credential::Passphrase(new),
        params,
    )?;
    store.save_slots(&slots)?;
    Ok(unlocked.slot)
}
