//! What unlocks a store: key files and passphrases, and where they come
//! from. The library never reads a terminal: a caller that can prompt
//! passes a prompt, asked only when an encrypted store is opened.

use super::cipher::random_bytes;
use super::error::CryptoError;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Key files hold at least this many bytes (a generated one: 32 random
/// bytes as 64 hex digits).
const MIN_KEY_FILE: u64 = 16;
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// One secret to try.
pub enum Credential {
    KeyFile {
        path: PathBuf,
        secret: Zeroizing<Vec<u8>>,
    },
    Passphrase(Zeroizing<String>),
}

impl Credential {
    /// For messages: which kind of secret, never the secret.
    pub fn describe(&self) -> String {
        match self {
            Credential::KeyFile { path, .. } => format!("key file {}", path.display()),
            Credential::Passphrase(_) => "passphrase".into(),
        }
    }
}

/// Where the credentials for an encrypted store come from.
pub trait KeySource: Send + Sync {
    /// The credentials to try on `what` (a store, for messages); a prompt,
    /// if any, is asked here (once).
    fn credentials(&self, what: &str) -> Result<Vec<Credential>, CryptoError>;
    /// Whether the user named key material: opening an unencrypted store
    /// as a backup target then is refused (its encryption may have been
    /// stripped by someone with access to it).
    fn given(&self) -> bool;
}

/// No credentials: encrypted stores fail to open with `NoKey`.
pub struct NoKeys;

impl KeySource for NoKeys {
    fn credentials(&self, _what: &str) -> Result<Vec<Credential>, CryptoError> {
        Ok(Vec::new())
    }
    fn given(&self) -> bool {
        false
    }
}

type Prompt = Box<dyn Fn(&str) -> Result<Zeroizing<String>, CryptoError> + Send + Sync>;

/// Key files and a passphrase named by the user, and a prompt to ask for
/// a passphrase when neither was named.
#[derive(Default)]
pub struct GivenKeys {
    pub key_file: Option<PathBuf>,
    pub passphrase: Option<Zeroizing<String>>,
    prompt: Option<Prompt>,
    prompted: Mutex<Option<Zeroizing<String>>>,
}

impl GivenKeys {
    pub fn new(key_file: Option<PathBuf>, passphrase: Option<Zeroizing<String>>) -> Self {
        GivenKeys {
            key_file,
            passphrase,
            ..GivenKeys::default()
        }
    }

    /// Asks `prompt(what)` for a passphrase when nothing else was given.
    pub fn with_prompt(mut self, prompt: Prompt) -> Self {
        self.prompt = Some(prompt);
        self
    }
}

impl KeySource for GivenKeys {
    fn credentials(&self, what: &str) -> Result<Vec<Credential>, CryptoError> {
        let mut out = Vec::new();
        if let Some(path) = &self.key_file {
            out.push(Credential::KeyFile {
                path: path.clone(),
                secret: read_key_file(path)?,
            });
        }
        if let Some(p) = &self.passphrase {
            out.push(Credential::Passphrase(p.clone()));
        }
        if out.is_empty() {
            if let Some(prompt) = &self.prompt {
                let mut asked = self.prompted.lock().unwrap_or_else(|p| p.into_inner());
                if asked.is_none() {
                    *asked = Some(prompt(what)?);
                }
                out.extend(asked.clone().map(Credential::Passphrase));
            }
        }
        Ok(out)
    }

    fn given(&self) -> bool {
        self.key_file.is_some() || self.passphrase.is_some()
    }
}

fn read_secret(path: &Path, min: u64) -> Result<Zeroizing<Vec<u8>>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() < min || meta.len() > MAX_SECRET_FILE {
        return Err(format!(
            "{} bytes; expected {min} to {MAX_SECRET_FILE}",
            meta.len()
        ));
    }
    let mut data = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.take(MAX_SECRET_FILE)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    Ok(data)
}

/// The secret of a key file (its whole content).
pub fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    read_secret(path, MIN_KEY_FILE).map_err(|why| CryptoError::KeyFile {
        path: path.to_path_buf(),
        why,
    })
}

/// A passphrase from a file: its content less one trailing newline.
pub fn read_passphrase_file(path: &Path) -> Result<Zeroizing<String>, CryptoError> {
    let err = |why: String| CryptoError::PassphraseFile {
        path: path.to_path_buf(),
        why,
    };
    let bytes = read_secret(path, 1).map_err(err)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| err("not UTF-8 text".into()))?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    if text.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(Zeroizing::new(text.to_string()))
}

/// Writes a new key file: 32 random bytes as 64 hex digits, readable by
/// the owner only; an existing file is never replaced.
pub fn write_new_key_file(path: &Path) -> Result<(), CryptoError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| CryptoError::KeyFile {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    let mut raw = Zeroizing::new([0u8; 32]);
    random_bytes(raw.as_mut())?;
    let text = Zeroizing::new(format!("{}\n", hex::encode(raw.as_ref())));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_passphrase_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        write_new_key_file(&key).unwrap();
        assert!(write_new_key_file(&key).is_err(), "never replaced");
        assert_eq!(read_key_file(&key).unwrap().len(), 65);
        let mode = std::fs::metadata(&key).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let short = dir.path().join("short");
        std::fs::write(&short, b"abc").unwrap();
        assert!(read_key_file(&short)
            .unwrap_err()
            .to_string()
            .contains("3 bytes"));
        let missing = read_key_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
        let pass = dir.path().join("pass");
        std::fs::write(&pass, b"correct horse\r\n").unwrap();
        assert_eq!(
            read_passphrase_file(&pass).unwrap().as_str(),
            "correct horse"
        );
        std::fs::write(&pass, b"\n").unwrap();
        assert!(read_passphrase_file(&pass).is_err());
    }

    #[test]
    fn a_prompt_is_asked_once_and_only_without_given_keys() {
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        let keys = GivenKeys::default().with_prompt(Box::new(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Zeroizing::new("pw".to_string()))
        }));
        assert!(!keys.given());
        assert_eq!(keys.credentials("s").unwrap().len(), 1);
        assert_eq!(keys.credentials("s").unwrap().len(), 1);
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
        let given = GivenKeys::new(None, Some(Zeroizing::new("x".into())));
        assert!(given.given());
    }
}
