//! Encrypted local stores: `store init --encryption`, `key list|add|
//! remove|change-passphrase` and `verify --stored-only`. None of them
//! needs the catalog; none prints or logs key material.

use crate::args::{KeyArgs, KeyCommand};
use crate::config::Config;
use crate::output::emit;
use crate::secrets;
use anyhow::{bail, Context, Result};
use blockback_core::crypto::{
    read_key_file, write_new_key_file, Argon2Params, Cipher, Credential, Slot,
};
use blockback_core::store::{InitOptions, LocalStore};
use blockback_ops::StoreLocation;
use std::path::{Path, PathBuf};

/// Creates an encrypted store: the first key slot from --key-file (written
/// when missing) or else a passphrase; with both, a second slot for the
/// passphrase. Nothing is left behind when it fails.
pub fn init(path: &Path, options: InitOptions, cipher: Cipher, args: &KeyArgs) -> Result<String> {
    let written = match &args.key_file {
        Some(file) if !file.exists() => {
            blockback_ops::require_parent(file, "--key-file")?;
            write_new_key_file(file)?;
            Some(file.clone())
        }
        _ => None,
    };
    let result = init_with_credentials(path, options, cipher, args);
    if let (Err(_), Some(file)) = (&result, &written) {
        let _ = std::fs::remove_file(file);
    }
    let mut text = result?;
    if let Some(file) = written {
        text.push_str(&format!(
            "\nwrote a new key file {}: keep a copy apart from the store; without it (or a passphrase slot) its backups cannot be read",
            file.display()
        ));
    }
    Ok(text)
}

fn init_with_credentials(
    path: &Path,
    options: InitOptions,
    cipher: Cipher,
    args: &KeyArgs,
) -> Result<String> {
    let key_file = args
        .key_file
        .as_deref()
        .map(key_file_credential)
        .transpose()?;
    let passphrase = secrets::init_passphrase(args)?.map(Credential::Passphrase);
    let (first, second) = match (key_file, passphrase) {
        (Some(k), p) => (k, p),
        (None, Some(p)) => (p, None),
        (None, None) => bail!(
            "--encryption {}: give --key-file PATH (written when it does not exist) or a passphrase (--passphrase-file, $BLOCKBACK_PASSPHRASE, or a terminal to be asked at)",
            cipher.name()
        ),
    };
    let params = Argon2Params::default();
    LocalStore::init_encrypted(path, options, cipher, first, params)
        .with_context(|| format!("cannot create the store at {}", path.display()))?;
    if let Some(extra) = &second {
        let keys = blockback_core::crypto::GivenKeys::new(args.key_file.clone(), None);
        if let Err(e) = LocalStore::key_add(path, &keys, extra, params) {
            // A store missing the slot the user asked for is not what
            // they asked for: remove it (it holds no data yet).
            let _ = std::fs::remove_dir_all(path);
            return Err(e).context("cannot add the passphrase slot");
        }
    }
    let slots = LocalStore::key_list(path)?;
    Ok(format!(
        "initialised store {} (encrypted with {}; key slots: {})",
        path.display(),
        cipher.name(),
        slots.iter().map(slot_text).collect::<Vec<_>>().join(", ")
    ))
}

fn key_file_credential(path: &Path) -> Result<Credential> {
    Ok(Credential::KeyFile {
        path: path.to_path_buf(),
        secret: read_key_file(path)?,
    })
}

fn slot_text(slot: &Slot) -> String {
    format!("{} {}", slot.kind.name(), slot.id)
}

/// Runs a `key` command on the configured store.
pub fn run(config: &Config, command: &KeyCommand) -> Result<()> {
    let path = local_store(config)?;
    let keys = &config.settings.keys;
    let params = Argon2Params::default();
    match command {
        KeyCommand::List => list(config, &path),
        KeyCommand::Add {
            new_key_file,
            new_passphrase_file,
        } => {
            let (text, id) = match new_key_file {
                Some(file) => add_key_file(&path, keys, file, params)?,
                None => {
                    let pass = need_new(secrets::new_slot_passphrase(
                        new_passphrase_file.as_deref(),
                    )?)?;
                    let id =
                        LocalStore::key_add(&path, keys, &Credential::Passphrase(pass), params)?;
                    (format!("added passphrase slot {id}"), id)
                }
            };
            emit(config.json, &serde_json::json!({ "added": id }), || text)
        }
        KeyCommand::Remove { id } => {
            LocalStore::key_remove(&path, keys, id)?;
            emit(config.json, &serde_json::json!({ "removed": id }), || {
                format!("removed key slot {id}")
            })
        }
        KeyCommand::ChangePassphrase {
            new_passphrase_file,
        } => {
            let pass = need_new(secrets::new_slot_passphrase(
                new_passphrase_file.as_deref(),
            )?)?;
            let id = LocalStore::change_passphrase(&path, keys, pass, params)?;
            emit(config.json, &serde_json::json!({ "changed": id }), || {
                format!("changed the passphrase of slot {id}; the old passphrase no longer opens the store")
            })
        }
    }
}

fn need_new<T>(value: Option<T>) -> Result<T> {
    value.ok_or_else(|| {
        anyhow::anyhow!(
            "give the new passphrase with --new-passphrase-file PATH or $BLOCKBACK_NEW_PASSPHRASE (or run at a terminal to be asked)"
        )
    })
}

fn add_key_file(
    path: &Path,
    keys: &blockback_ops::StoreKeys,
    file: &Path,
    params: Argon2Params,
) -> Result<(String, String)> {
    let fresh = !file.exists();
    if fresh {
        blockback_ops::require_parent(file, "--new-key-file")?;
        write_new_key_file(file)?;
    }
    let added = key_file_credential(file)
        .and_then(|cred| Ok(LocalStore::key_add(path, keys, &cred, params)?));
    match added {
        Ok(id) => {
            let note = match fresh {
                true => format!(" (wrote the new key file {})", file.display()),
                false => String::new(),
            };
            Ok((format!("added key-file slot {id}{note}"), id))
        }
        Err(e) => {
            if fresh {
                let _ = std::fs::remove_file(file);
            }
            Err(e)
        }
    }
}

fn list(config: &Config, path: &Path) -> Result<()> {
    let slots = LocalStore::key_list(path)?;
    let json: Vec<_> = slots
        .iter()
        .map(|s| serde_json::json!({ "id": s.id, "kind": s.kind.name(), "created": s.created }))
        .collect();
    emit(config.json, &json, || {
        slots
            .iter()
            .map(|s| {
                format!(
                    "{}  {}  created {}",
                    s.id,
                    s.kind.name(),
                    crate::output::local_time(s.created as f64)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `verify --stored-only`: the keyless check of an encrypted store.
pub fn verify_stored(config: &Config) -> Result<()> {
    let path = local_store(config)?;
    let check = LocalStore::check_stored(&path)?;
    emit(config.json, &check, || {
        let mut lines = vec![format!(
            "stored files of {}: {} packs and {} records ({}) checked without the key; the data itself is authenticated only by `verify` with the key",
            path.display(),
            check.packs,
            check.records,
            crate::output::bytes(check.bytes)
        )];
        lines.extend(
            check
                .damaged
                .iter()
                .map(|d| format!("DAMAGED: {}: {}", d.path, d.error)),
        );
        lines.join("\n")
    })?;
    if !check.is_ok() {
        bail!(
            "verify --stored-only found {} damaged file(s)",
            check.damaged.len()
        );
    }
    Ok(())
}

/// The configured store, which must be an existing local one.
fn local_store(config: &Config) -> Result<PathBuf> {
    let StoreLocation::Local(path) = &config.settings.store else {
        bail!("keys and --stored-only belong to encrypted local stores; RBD stores are not encrypted by blockback (docs/rbd.md)");
    };
    if !path.exists() {
        bail!(
            "no store at {}: the directory does not exist; give the right --store",
            path.display()
        );
    }
    Ok(path.clone())
}
