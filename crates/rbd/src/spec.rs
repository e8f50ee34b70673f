//! `rbd:POOL[/IMAGE[@SNAP]]` specs and the name rules behind them.

use std::fmt;

use blockback_core::image::{ImageError, Result};

/// A parsed `rbd:POOL`, `rbd:POOL/IMAGE` or `rbd:POOL/IMAGE@SNAP`
/// (the rbd CLI's `pool/image@snap` with an `rbd:` scheme in front).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RbdSpec {
    pub pool: String,
    pub image: Option<String>,
    pub snap: Option<String>,
}

const PREFIX: &str = "rbd:";

impl RbdSpec {
    pub fn parse(spec: &str) -> Result<RbdSpec> {
        let bad = |why: &str| ImageError::Invalid {
            what: format!("RBD spec '{spec}'"),
            why: format!("{why} (expected rbd:POOL, rbd:POOL/IMAGE or rbd:POOL/IMAGE@SNAP)"),
        };
        let rest = spec
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("missing the 'rbd:' prefix"))?;
        let (path, snap) = match rest.split_once('@') {
            Some((p, s)) => (p, Some(s)),
            None => (rest, None),
        };
        let (pool, image) = match path.split_once('/') {
            Some((p, i)) => (p, Some(i)),
            None => (path, None),
        };
        if image.is_some_and(|i| i.contains('/')) {
            return Err(bad("pool namespaces are not supported"));
        }
        if image.is_none() && snap.is_some() {
            return Err(bad("a snapshot needs an image"));
        }
        check_name("pool", pool).map_err(|e| bad(&e))?;
        if let Some(i) = image {
            check_name("image", i).map_err(|e| bad(&e))?;
        }
        if let Some(s) = snap {
            check_name("snapshot", s).map_err(|e| bad(&e))?;
        }
        Ok(RbdSpec {
            pool: pool.into(),
            image: image.map(Into::into),
            snap: snap.map(Into::into),
        })
    }

    /// The image name, or an error for a pool-only spec.
    pub fn require_image(&self) -> Result<&str> {
        self.image.as_deref().ok_or_else(|| ImageError::Invalid {
            what: format!("RBD spec '{self}'"),
            why: "names a pool; an image is needed (rbd:POOL/IMAGE)".into(),
        })
    }

    /// Whether `s` looks like an RBD spec (starts with `rbd:`).
    pub fn is_rbd(s: &str) -> bool {
        s.starts_with(PREFIX)
    }
}

impl fmt::Display for RbdSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.pool)?;
        if let Some(i) = &self.image {
            write!(f, "/{i}")?;
        }
        if let Some(s) = &self.snap {
            write!(f, "@{s}")?;
        }
        Ok(())
    }
}

/// Ceph's limits on pool, image and snapshot names as the rbd CLI enforces
/// them: non-empty, no `/`, `@` or NUL, at most 4096 bytes.
pub(crate) fn check_name(kind: &str, name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        Err(format!("the {kind} name is empty"))
    } else if name.contains(['/', '@', '\0']) {
        Err(format!("the {kind} name '{name}' contains '/', '@' or NUL"))
    } else if name.len() > 4096 {
        Err(format!("the {kind} name is longer than 4096 bytes"))
    } else {
        Ok(())
    }
}

/// [`check_name`] as an image-model error about `what`.
pub(crate) fn require_name(kind: &str, name: &str, what: impl Fn() -> String) -> Result<()> {
    check_name(kind, name).map_err(|why| ImageError::Invalid { what: what(), why })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> RbdSpec {
        RbdSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_the_three_forms_and_round_trips() {
        let p = ok("rbd:volumes");
        assert_eq!((p.pool.as_str(), p.image, p.snap), ("volumes", None, None));
        let i = ok("rbd:volumes/vm-1");
        assert_eq!(i.image.as_deref(), Some("vm-1"));
        assert_eq!(i.snap, None);
        let s = ok("rbd:volumes/vm-1@daily.2024-01-01");
        assert_eq!(s.snap.as_deref(), Some("daily.2024-01-01"));
        for spec in ["rbd:volumes", "rbd:volumes/vm-1", "rbd:volumes/vm-1@s"] {
            assert_eq!(ok(spec).to_string(), spec);
        }
    }

    #[test]
    fn malformed_specs_are_refused_with_the_spec_in_the_message() {
        for bad in [
            "volumes/vm",
            "rbd:",
            "rbd:/vm",
            "rbd:volumes/",
            "rbd:volumes/vm@",
            "rbd:volumes@snap",
            "rbd:volumes/ns/vm",
            "rbd:volumes/vm@a@b",
            "rbd:vol\0umes",
        ] {
            let err = RbdSpec::parse(bad).unwrap_err();
            assert!(matches!(err, ImageError::Invalid { .. }), "{bad}");
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn require_image_refuses_pool_specs() {
        assert!(ok("rbd:volumes").require_image().is_err());
        assert_eq!(ok("rbd:volumes/a").require_image().unwrap(), "a");
    }
}
