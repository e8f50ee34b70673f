//! The one address grammar of every command (backup sources, restore
//! targets, stream sources and targets, `backup list --source`):
//!
//! - `rbd:POOL/IMAGE[@SNAP]`: an RBD image, on the volume-side cluster;
//! - `local:IMAGE[@SNAP]`: an image of the volume store (`--volume-store`,
//!   which defaults to `--store` when that is a local store);
//! - `backup:ID`: a backup (its base image at its snapshot), read-only;
//! - anything else: a file or block device path.
//!
//! An unknown `SCHEME:` prefix is refused rather than taken as a file name.

use crate::error::{invalid, OpsResult};
use blockback_rbd::RbdSpec;
use std::fmt;
use std::path::{Path, PathBuf};

/// An image as the user named it.
#[derive(Debug, Clone, PartialEq)]
pub enum Address {
    File(PathBuf),
    Rbd(RbdSpec),
    Local { image: String, snap: Option<String> },
    Backup(String),
}

const LOCAL: &str = "local:";
const BACKUP: &str = "backup:";

impl Address {
    /// Parses an address; relative paths stay relative (see [`Self::absolute`]).
    pub fn parse(text: &str) -> OpsResult<Self> {
        if RbdSpec::is_rbd(text) {
            let spec = RbdSpec::parse(text)?;
            spec.require_image()?;
            return Ok(Address::Rbd(spec));
        }
        if let Some(rest) = text.strip_prefix(LOCAL) {
            return parse_local(text, rest);
        }
        if let Some(id) = text.strip_prefix(BACKUP) {
            if id.is_empty() {
                return invalid(format!(
                    "{text}: give backup:ID (a backup id or unique prefix)"
                ));
            }
            return Ok(Address::Backup(id.to_string()));
        }
        if text.is_empty() {
            return invalid(
                "an empty address: give a file, rbd:POOL/IMAGE, local:IMAGE or backup:ID",
            );
        }
        if let Some(scheme) = unknown_scheme(text) {
            return invalid(format!(
                "{text}: unknown scheme {scheme}: give a file path, rbd:POOL/IMAGE[@SNAP], local:IMAGE[@SNAP] or backup:ID (write ./{text} for a file of that name)"
            ));
        }
        Ok(Address::File(PathBuf::from(text)))
    }

    /// The same address with a file path made absolute.
    pub fn absolute(self) -> OpsResult<Self> {
        match self {
            Address::File(p) => Ok(Address::File(absolute(&p)?)),
            other => Ok(other),
        }
    }

    /// The snapshot the address names, if any.
    pub fn snap(&self) -> Option<&str> {
        match self {
            Address::Local { snap, .. } => snap.as_deref(),
            Address::Rbd(spec) => spec.snap.as_deref(),
            _ => None,
        }
    }

    /// Refuses addresses that cannot be written: snapshots and backups.
    pub fn require_writable(&self) -> OpsResult<()> {
        match self {
            Address::Backup(id) => invalid(format!(
                "backup:{id} is read-only; write to a file, local:IMAGE or rbd:POOL/IMAGE"
            )),
            _ if self.snap().is_some() => invalid(format!(
                "{self} names a snapshot; snapshots are read-only, name the image without @SNAP"
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::File(p) => write!(f, "{}", p.display()),
            Address::Rbd(spec) => write!(f, "{spec}"),
            Address::Local { image, snap } => {
                write!(f, "{LOCAL}{image}")?;
                match snap {
                    Some(s) => write!(f, "@{s}"),
                    None => Ok(()),
                }
            }
            Address::Backup(id) => write!(f, "{BACKUP}{id}"),
        }
    }
}

fn parse_local(text: &str, rest: &str) -> OpsResult<Address> {
    let (image, snap) = match rest.split_once('@') {
        Some((i, s)) => (i, Some(s)),
        None => (rest, None),
    };
    let bad = |name: &str| name.is_empty() || name.contains('/') || name.contains('@');
    if bad(image) || snap.is_some_and(bad) {
        return invalid(format!(
            "{text}: give local:IMAGE[@SNAP] (an image name of the volume store)"
        ));
    }
    Ok(Address::Local {
        image: image.to_string(),
        snap: snap.map(str::to_string),
    })
}

/// `SCHEME:` at the start of `text` when it looks like a URL scheme
/// (`s3://bucket`, `nbd:host`), which a path hardly ever does.
pub(crate) fn unknown_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let scheme_like = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_like.then(|| &text[..=scheme.len()])
}

/// Makes `path` absolute without requiring it to exist.
pub fn absolute(path: &Path) -> OpsResult<PathBuf> {
    std::path::absolute(path).map_err(|e| {
        crate::OpsError::Invalid(format!("cannot resolve path {}: {e}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_kind_parses() {
        assert_eq!(
            Address::parse("local:v@s").unwrap(),
            Address::Local {
                image: "v".into(),
                snap: Some("s".into())
            }
        );
        assert_eq!(
            Address::parse("backup:5e1c").unwrap(),
            Address::Backup("5e1c".into())
        );
        assert!(matches!(
            Address::parse("rbd:volumes/v@s").unwrap(),
            Address::Rbd(_)
        ));
        assert_eq!(
            Address::parse("./disk.img").unwrap(),
            Address::File("./disk.img".into())
        );
        assert_eq!(
            Address::parse("/dev/sdb").unwrap(),
            Address::File("/dev/sdb".into())
        );
    }

    #[test]
    fn typos_and_unknown_schemes_are_refused() {
        for bad in [
            "s3://bucket/x",
            "nbd:host",
            "local:",
            "local:a/b",
            "local:a@",
            "backup:",
            "rbd:pool",
            "",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad} accepted");
        }
        let e = Address::parse("s3://bucket").unwrap_err().to_string();
        assert!(e.contains("unknown scheme s3:"), "{e}");
    }

    proptest! {
        #[test]
        fn parse_inverts_display(image in "[a-z0-9_]{1,12}", snap in proptest::option::of("[a-z0-9_]{1,8}"), kind in 0..3u8) {
            let addr = match kind {
                0 => Address::Local { image: image.clone(), snap: snap.clone() },
                1 => Address::Rbd(blockback_rbd::RbdSpec::parse(&format!("rbd:pool/{image}")).unwrap()),
                _ => Address::File(PathBuf::from(format!("/tmp/{image}"))),
            };
            prop_assert_eq!(Address::parse(&addr.to_string()).unwrap(), addr);
        }
    }
}
