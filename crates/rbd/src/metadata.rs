//! RBD image metadata (`rbd_metadata_*`, `rbd image-meta`) as the image
//! model's [`ImageMetadata`].

use blockback_core::image::{ImageError, ImageMetadata, Result};

use crate::cluster::cstr;
use crate::error::from_errno;
use crate::image::{describe, RbdImage};

impl RbdImage {
    /// Metadata belongs to the image, not to the snapshot a handle is at.
    fn key_what(&self, key: &str) -> String {
        format!(
            "metadata key '{key}' of {}",
            describe(&self.pool, &self.name, None)
        )
    }
}

impl ImageMetadata for RbdImage {
    fn get(&self, key: &str) -> Result<Option<String>> {
        let what = self.key_what(key);
        let c = cstr(key, &what)?;
        let value = self
            .handle()?
            .metadata_get(&c)
            .map_err(|e| from_errno(e, what.clone()))?;
        value
            .map(|v| {
                String::from_utf8(v).map_err(|_| ImageError::Invalid {
                    what,
                    why: "its value is not UTF-8".into(),
                })
            })
            .transpose()
    }

    fn set(&self, key: &str, value: &str) -> Result<()> {
        self.check_writable()?;
        let what = self.key_what(key);
        let (k, v) = (cstr(key, &what)?, cstr(value, &what)?);
        self.handle()?
            .metadata_set(&k, &v)
            .map_err(|e| from_errno(e, what))
    }
}
