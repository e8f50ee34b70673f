//! Bearer tokens: stored as SHA-256 hashes (tokens are 256-bit random
//! strings, so a fast hash is enough and nothing that logs or leaks the
//! configuration reveals a usable token), compared in constant time.
//! Two roles: `read` (GET everything) and `admin` (everything).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads only.
    Read,
    /// Reads and changes.
    Admin,
}

impl Role {
    fn parse(text: &str) -> Option<Role> {
        match text {
            "read" | "read-only" | "readonly" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// One accepted token: a name (for logs), a role, the token's SHA-256.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
}

impl std::fmt::Debug for TokenEntry {
    // The hash is not the token, but keep logs free of it anyway.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("tokens file {path}: {msg}")]
    Bad { path: String, msg: String },
}

/// The accepted tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<(TokenEntry, [u8; 32])>,
}

impl Tokens {
    pub fn new(entries: Vec<TokenEntry>) -> Result<Self, String> {
        let mut out = Vec::new();
        for e in entries {
            let hash = decode_hash(&e.sha256)
                .ok_or_else(|| format!("token {:?}: sha256 must be 64 hex digits", e.name))?;
            out.push((e, hash));
        }
        Ok(Tokens { entries: out })
    }

    /// The caller `presented` authenticates, if any. Every entry is
    /// compared (in constant time) so timing tells nothing.
    pub fn check(&self, presented: &str) -> Option<Caller> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (entry, stored) in &self.entries {
            if bool::from(stored.ct_eq(&hash)) && found.is_none() {
                found = Some(Caller {
                    name: entry.name.clone(),
                    role: entry.role,
                });
            }
        }
        found
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text.trim()).ok()?.try_into().ok()
}

/// Reads a tokens file: `NAME ROLE SHA256HEX` per line, `#` comments.
pub fn read_tokens_file(path: &Path) -> Result<Vec<TokenEntry>, TokenFileError> {
    let bad = |msg: String| TokenFileError::Bad {
        path: path.display().to_string(),
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, role, sha256] = fields[..] else {
            return Err(bad(format!("line {}: expected NAME ROLE SHA256HEX", n + 1)));
        };
        let role = Role::parse(role).ok_or_else(|| {
            bad(format!(
                "line {}: role {role:?} is not read or admin",
                n + 1
            ))
        })?;
        entries.push(TokenEntry {
            name: name.into(),
            role,
            sha256: sha256.to_ascii_lowercase(),
        });
    }
    Ok(entries)
}

/// A new random token (256 bits, URL-safe) and its entry line.
pub fn new_token(name: &str, role: Role) -> (String, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("bbk_{}", hex::encode(bytes));
    let role = match role {
        Role::Read => "read",
        Role::Admin => "admin",
    };
    let line = format!("{name} {role} {}", hash_token(&token));
    (token, line)
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_their_hash() {
        let (token, line) = new_token("ops", Role::Admin);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            format!("# comment\n{line}\nviewer read {}\n", hash_token("r")),
        )
        .unwrap();
        let tokens = Tokens::new(read_tokens_file(&path).unwrap()).unwrap();
        assert_eq!(tokens.check(&token).unwrap().role, Role::Admin);
        assert_eq!(tokens.check("r").unwrap().name, "viewer");
        assert!(tokens.check("wrong").is_none());
        assert!(tokens.check("").is_none());
        assert!(!format!("{:?}", read_tokens_file(&path).unwrap()).contains(&hash_token("r")));
    }

    #[test]
    fn bad_lines_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "ops root abc\n").unwrap();
        let err = read_tokens_file(&path).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("root"), "{err}");
        let short = TokenEntry {
            name: "x".into(),
            role: Role::Read,
            sha256: "ab".into(),
        };
        assert!(Tokens::new(vec![short]).is_err());
    }
}
