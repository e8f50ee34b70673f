//! Where backups are stored (`--store`) and where the catalog lives
//! (`--catalog`), checked so that a typo is refused instead of creating a
//! store or directories somewhere unexpected.

use crate::address::{absolute, unknown_scheme};
use crate::error::{invalid, OpsResult};
use blockback_rbd::RbdSpec;
use std::path::{Path, PathBuf};

/// Where backups are stored.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    Local(PathBuf),
    Rbd(String),
}

/// Words that name a kind of address, never a store directory by accident.
const RESERVED: [&str; 3] = ["rbd", "local", "backup"];

impl StoreLocation {
    /// Parses a store as given with --store or recorded in the catalog: a
    /// directory, or `rbd:POOL`.
    pub fn parse(text: &str) -> OpsResult<Self> {
        if RbdSpec::is_rbd(text) {
            let spec = RbdSpec::parse(text)?;
            if spec.image.is_some() {
                return invalid(format!(
                    "store {text}: give a pool (rbd:POOL), not an image"
                ));
            }
            return Ok(StoreLocation::Rbd(spec.pool));
        }
        if text.is_empty() {
            return invalid("the store is empty: give a directory or rbd:POOL");
        }
        if let Some(rest) = text.strip_prefix("local:") {
            return invalid(format!(
                "store {text}: local:IMAGE names a volume image; a local store is given as a directory (--store {rest} or --store ./{rest})"
            ));
        }
        if let Some(scheme) = unknown_scheme(text) {
            return invalid(format!(
                "store {text}: unknown scheme {scheme}; give a directory or rbd:POOL (write ./{text} for a directory of that name)"
            ));
        }
        if RESERVED.contains(&text) {
            return invalid(format!(
                "store {text}: give rbd:POOL for an RBD pool, or ./{text} for a directory of that name"
            ));
        }
        Ok(StoreLocation::Local(absolute(Path::new(text))?))
    }

    /// The store as recorded in the catalog.
    pub fn label(&self) -> String {
        match self {
            StoreLocation::Local(p) => p.display().to_string(),
            StoreLocation::Rbd(pool) => format!("rbd:{pool}"),
        }
    }
}

/// Refuses a path the user gave whose parent directory does not exist:
/// a typo must not create a tree of directories. `what` names the option.
pub fn require_parent(path: &Path, what: &str) -> OpsResult<()> {
    let absolute = absolute(path)?;
    match absolute.parent() {
        Some(parent) if !parent.is_dir() => invalid(format!(
            "{what} {}: directory {} does not exist; create it first or give another path",
            path.display(),
            parent.display()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_refused_with_what_to_give() {
        for (text, says) in [
            ("s3://bucket", "unknown scheme s3:"),
            ("rbd", "rbd:POOL"),
            ("local:foo", "directory"),
            ("rbd:pool/image", "not an image"),
            ("", "empty"),
        ] {
            let e = StoreLocation::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert_eq!(
            StoreLocation::parse("rbd:backups").unwrap(),
            StoreLocation::Rbd("backups".into())
        );
        assert!(matches!(
            StoreLocation::parse("./rbd").unwrap(),
            StoreLocation::Local(_)
        ));
        assert!(matches!(
            StoreLocation::parse("/srv/backups").unwrap(),
            StoreLocation::Local(_)
        ));
    }

    #[test]
    fn a_missing_parent_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(require_parent(&dir.path().join("x"), "--catalog").is_ok());
        let e = require_parent(&dir.path().join("deep/x"), "--catalog")
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        assert!(!dir.path().join("deep").exists());
    }
}
