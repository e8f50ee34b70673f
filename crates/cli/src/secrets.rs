//! Key material from the command line's sources: --key-file,
//! --passphrase-file, $BLOCKBACK_PASSPHRASE, or a prompt when stdin is a
//! terminal. Passphrases are never taken as option values (command lines
//! are visible to every user of the host) and never logged.

use crate::args::KeyArgs;
use anyhow::{bail, Result};
use blockback_core::crypto::{read_passphrase_file, CryptoError};
use blockback_ops::{keys_from_files, StoreKeys};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The current passphrase, when no file names one.
const PASSPHRASE_ENV: &str = "BLOCKBACK_PASSPHRASE";
/// A new passphrase (`key add`, `key change-passphrase`), when no file names one.
const NEW_PASSPHRASE_ENV: &str = "BLOCKBACK_NEW_PASSPHRASE";

/// The keys every command opens encrypted local stores with. The prompt is
/// asked only when an encrypted store is opened and nothing else was given.
pub fn store_keys(args: &KeyArgs) -> Result<StoreKeys> {
    let mut keys = keys_from_files(args.key_file.as_deref(), args.passphrase_file.as_deref())?;
    if keys.passphrase.is_none() {
        keys.passphrase = env_secret(PASSPHRASE_ENV);
    }
    if interactive() {
        keys = keys.with_prompt(Box::new(|what| ask(&format!("Passphrase of {what}: "))));
    }
    Ok(StoreKeys::new(Arc::new(keys)))
}

/// The passphrase to give a new store or slot: from `file`, `env`, or
/// (when `prompt`) asked twice at a terminal; `None` when there is no source.
fn new_passphrase(
    file: Option<&Path>,
    env: &str,
    prompt: bool,
) -> Result<Option<Zeroizing<String>>> {
    if let Some(path) = file {
        return Ok(Some(read_passphrase_file(path)?));
    }
    if let Some(p) = env_secret(env) {
        return Ok(Some(p));
    }
    if !prompt || !interactive() {
        return Ok(None);
    }
    let first = ask("New passphrase: ")?;
    if first.is_empty() {
        bail!("the passphrase is empty");
    }
    if *ask("Repeat the new passphrase: ")? != *first {
        bail!("the passphrases differ; nothing was changed");
    }
    Ok(Some(first))
}

/// The new passphrase of `key add` / `key change-passphrase`.
pub fn new_slot_passphrase(file: Option<&Path>) -> Result<Option<Zeroizing<String>>> {
    new_passphrase(file, NEW_PASSPHRASE_ENV, true)
}

/// The passphrase of a new store (`store init --encryption`): the same
/// sources as the current one of other commands; asked at a terminal only
/// when no key file was given.
pub fn init_passphrase(args: &KeyArgs) -> Result<Option<Zeroizing<String>>> {
    let prompt = args.key_file.is_none();
    new_passphrase(args.passphrase_file.as_deref(), PASSPHRASE_ENV, prompt)
}

fn env_secret(name: &str) -> Option<Zeroizing<String>> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Zeroizing::new)
}

fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

fn ask(prompt: &str) -> Result<Zeroizing<String>, CryptoError> {
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|source| CryptoError::Io {
            what: "the passphrase prompt".into(),
            source,
        })
}
