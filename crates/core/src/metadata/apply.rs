//! Bringing a backup's volume metadata back onto the restored volume, as
//! Cinder's restore does: the user key/values are set on the target image
//! (`rbd image-meta`, a local-store image's `meta.json`); keys the target
//! already has are overwritten, others are left alone.

use super::BackupMetadata;
use crate::image::{Image, ImageError};

/// librbd reads image metadata keys starting with this as settings of the
/// image (`conf_rbd_cache`...): a user key must not silently reconfigure
/// the restored volume, so such keys are never set, on any backend.
const LIBRBD_CONF_PREFIX: &str = "conf_";

/// What became of each user key of the backup.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AppliedMetadata {
    /// Keys set on the target.
    pub applied: Vec<String>,
    /// Keys not set, each with the reason.
    pub skipped: Vec<(String, String)>,
}

impl AppliedMetadata {
    /// Every user key of `meta` skipped: `target` keeps no metadata.
    pub fn none_kept(meta: &BackupMetadata, target: &str) -> Self {
        let why = format!("{target} keeps no metadata");
        AppliedMetadata {
            applied: Vec::new(),
            skipped: meta
                .volume
                .keys()
                .map(|k| (k.clone(), why.clone()))
                .collect(),
        }
    }
}

/// Sets the user key/values of `meta` on `target`. A target without
/// metadata (a file, a block device) gets none: every key is skipped,
/// saying so.
pub fn apply_volume_metadata(
    target: &dyn Image,
    meta: &BackupMetadata,
) -> Result<AppliedMetadata, ImageError> {
    let Some(store) = target.metadata() else {
        return Ok(AppliedMetadata::none_kept(meta, &target.describe()));
    };
    let mut out = AppliedMetadata::default();
    for (key, value) in &meta.volume {
        if key.starts_with(LIBRBD_CONF_PREFIX) {
            let why = format!("librbd reads {LIBRBD_CONF_PREFIX}* keys as image settings");
            out.skipped.push((key.clone(), why));
            continue;
        }
        store.set(key, value)?;
        out.applied.push(key.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::file::FileImage;
    use crate::image::Pool;
    use crate::store::LocalStore;

    fn backup_meta(pairs: &[(&str, &str)]) -> BackupMetadata {
        BackupMetadata {
            volume: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..BackupMetadata::default()
        }
    }

    #[test]
    fn user_keys_are_set_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::init(&dir.path().join("s"), Default::default()).unwrap();
        store.create("vol", 1 << 20).unwrap();
        let img = store.open("vol").unwrap();
        let m = img.metadata().unwrap();
        m.set("owner", "old").unwrap();
        m.set("mine", "kept").unwrap();
        let meta = backup_meta(&[("owner", "ops"), ("tier", "gold")]);
        let done = apply_volume_metadata(img.as_ref(), &meta).unwrap();
        assert_eq!(done.applied, ["owner", "tier"]);
        assert!(done.skipped.is_empty());
        drop(img);
        let img = store.open_read_only("vol", None).unwrap();
        let m = img.metadata().unwrap();
        assert_eq!(m.get("owner").unwrap().as_deref(), Some("ops"));
        assert_eq!(m.get("tier").unwrap().as_deref(), Some("gold"));
        assert_eq!(m.get("mine").unwrap().as_deref(), Some("kept"));
    }

    #[test]
    fn librbd_setting_keys_are_never_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::init(&dir.path().join("s"), Default::default()).unwrap();
        store.create("vol", 1 << 20).unwrap();
        let img = store.open("vol").unwrap();
        let meta = backup_meta(&[("conf_rbd_cache", "false"), ("a", "b")]);
        let done = apply_volume_metadata(img.as_ref(), &meta).unwrap();
        assert_eq!(done.applied, ["a"]);
        assert_eq!(done.skipped.len(), 1);
        assert!(done.skipped[0].1.contains("image settings"), "{done:?}");
        let m = img.metadata().unwrap();
        assert_eq!(m.get("conf_rbd_cache").unwrap(), None);
    }

    #[test]
    fn a_file_target_skips_every_key_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let img = FileImage::create(&path, 1 << 20).unwrap();
        let done = apply_volume_metadata(&img, &backup_meta(&[("a", "b")])).unwrap();
        assert!(done.applied.is_empty());
        assert!(done.skipped[0].1.contains("keeps no metadata"), "{done:?}");
    }
}
