//! Rules shared by every backend's named objects ([`Pool::put_object`] and
//! friends): small write-once blobs stored beside the images of a backup
//! store, such as the backup metadata object `backup.<id>.meta`.
//!
//! The rules are the intersection of what RADOS and a local directory
//! accept, so an object name valid on one backend is valid on all.
//!
//! [`Pool::put_object`]: crate::image::Pool::put_object

use crate::image::{ImageError, Result};

/// The largest object any backend stores or reads back. Objects hold
/// metadata (a few KiB); the cap keeps a corrupt or hostile store from
/// making us allocate wildly.
pub const MAX_OBJECT_SIZE: u64 = 16 * 1024 * 1024;

/// The longest object name, in bytes (a file name on most file systems).
pub const MAX_OBJECT_NAME: usize = 255;

/// How messages name object `name` of pool `pool` (`Pool::describe`).
pub fn object_what(pool: &str, name: &str) -> String {
    format!("object {name:?} in {pool}")
}

/// Name prefixes of librbd's own RADOS objects (`rbd_directory`,
/// `rbd_header.<id>`, `rbd_data.<id>.*`, journals): in an RBD pool, putting
/// or removing one of these would corrupt the images.
pub const RESERVED_PREFIXES: [&str; 3] = ["rbd_", "journal.", "journal_data."];

/// Checks an object name: 1..=255 bytes, no '/', no NUL, not starting with
/// '.' (which also rules out "." and "..": the local store keeps its temp
/// files under dot names), no [`RESERVED_PREFIXES`]. The rules are the same
/// on every backend.
pub fn check_object_name(pool: &str, name: &str) -> Result<()> {
    let why = if name.is_empty() || name.len() > MAX_OBJECT_NAME {
        format!("an object name must be 1 to {MAX_OBJECT_NAME} bytes")
    } else if name.contains('/') || name.contains('\0') {
        "an object name must not contain '/' or NUL".to_string()
    } else if name.starts_with('.') {
        "an object name must not start with '.'".to_string()
    } else if let Some(p) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        format!("object names starting with {p:?} are reserved for librbd's own objects")
    } else {
        return Ok(());
    };
    Err(ImageError::Invalid {
        what: object_what(pool, name),
        why,
    })
}

/// Checks the size of an object about to be written or read back.
pub fn check_object_size(what: impl FnOnce() -> String, len: u64) -> Result<()> {
    if len <= MAX_OBJECT_SIZE {
        return Ok(());
    }
    Err(ImageError::Invalid {
        what: what(),
        why: format!("{len} bytes is more than the object size limit of {MAX_OBJECT_SIZE}"),
    })
}

/// The error of a backend that does not store named objects.
pub fn unsupported(pool: &str, name: &str, op: &'static str) -> ImageError {
    ImageError::Unsupported {
        what: object_what(pool, name),
        op,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(name: &str) -> String {
        match check_object_name("store:/x", name) {
            Err(ImageError::Invalid { what, why }) => {
                assert!(what.contains("store:/x"), "{what}");
                why
            }
            other => panic!("{name:?}: expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn names_follow_the_shared_rules() {
        check_object_name("p", "backup.0f1e-2d.meta").unwrap();
        check_object_name("p", &"a".repeat(MAX_OBJECT_NAME)).unwrap();
        assert!(why("").contains("1 to 255"));
        assert!(why(&"a".repeat(MAX_OBJECT_NAME + 1)).contains("1 to 255"));
        assert!(why("a/b").contains("'/'"));
        assert!(why("a\0b").contains("NUL"));
        assert!(why(".").contains("'.'"));
        assert!(why("..").contains("'.'"));
        assert!(why(".tmp-x").contains("'.'"));
        assert!(why("rbd_directory").contains("reserved"));
        assert!(why("journal.abc").contains("reserved"));
        check_object_name("p", "rbd-ok.journal").unwrap();
    }

    #[test]
    fn size_cap_is_inclusive() {
        check_object_size(|| "o".into(), MAX_OBJECT_SIZE).unwrap();
        let err = check_object_size(|| "obj".into(), MAX_OBJECT_SIZE + 1).unwrap_err();
        assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("obj"), "{err}");
    }
}
