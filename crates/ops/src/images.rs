//! Any image, anywhere, for the stream commands (`export-diff`,
//! `import-diff`, `export`, `import`): opened by [`Address`].

use crate::address::Address;
use crate::error::OpsResult;
use crate::store::open_local;
use crate::Ops;
use blockback_core::image::file::FileImage;
use blockback_core::image::{Image, Pool};

/// An open image, and the snapshot it is at (`backup:` resolves to the backup's).
pub struct Opened {
    pub image: Box<dyn Image>,
    pub snap: Option<String>,
}

impl Ops<'_> {
    /// Opens `address` read-only at its snapshot, or HEAD.
    pub fn open_read(&self, address: &Address) -> OpsResult<Opened> {
        let snap = address.snap().map(str::to_string);
        let image = match address.clone().absolute()? {
            Address::File(p) => Box::new(FileImage::open(p, false)?) as Box<dyn Image>,
            Address::Backup(id) => {
                let record = self.backup_record(&id)?;
                let store = self.store_of(&record)?;
                let image = store
                    .pool()
                    .open_read_only(&record.image, record.restore_point())?;
                let snap = record.restore_point().map(str::to_string);
                return Ok(Opened { image, snap });
            }
            _ => self.with_pool(address, |pool, name| {
                Ok(pool.open_read_only(name, snap.as_deref())?)
            })?,
        };
        Ok(Opened { image, snap })
    }

    /// Opens an existing image read-write at HEAD.
    pub fn open_write(&self, address: &Address) -> OpsResult<Box<dyn Image>> {
        address.require_writable()?;
        match address.clone().absolute()? {
            Address::File(p) => Ok(Box::new(FileImage::open(p, true)?)),
            _ => self.with_pool(address, |pool, name| Ok(pool.open(name)?)),
        }
    }

    /// Creates a new image of `size` bytes and opens it read-write.
    pub fn create_image(&self, address: &Address, size: u64) -> OpsResult<Box<dyn Image>> {
        address.require_writable()?;
        match address.clone().absolute()? {
            Address::File(p) => Ok(Box::new(FileImage::create(p, size)?)),
            _ => self.with_pool(address, |pool, name| {
                pool.create(name, size)?;
                Ok(pool.open(name)?)
            }),
        }
    }

    /// Removes an image this process created.
    pub fn remove_image(&self, address: &Address) -> OpsResult<()> {
        match address.clone().absolute()? {
            Address::File(p) => std::fs::remove_file(&p).map_err(|e| {
                blockback_core::image::ImageError::from_io(p.display().to_string(), e).into()
            }),
            _ => self.with_pool(address, |pool, name| Ok(pool.remove(name)?)),
        }
    }

    /// Runs `op` on the pool of a `local:` or `rbd:` address and the image name.
    fn with_pool<T>(
        &self,
        address: &Address,
        op: impl FnOnce(&dyn Pool, &str) -> OpsResult<T>,
    ) -> OpsResult<T> {
        match address {
            Address::Local { image, .. } => {
                let dir = self.local_volume_store(address)?;
                let store = open_local(&dir, &self.settings.volume_keys(), true)?;
                op(&store, image)
            }
            Address::Rbd(spec) => {
                let pool = self
                    .connections
                    .open_pool(&self.settings.volume_ceph, &spec.pool)?;
                op(&pool, spec.require_image()?)
            }
            Address::File(_) | Address::Backup(_) => {
                unreachable!("files and backups are opened directly")
            }
        }
    }

    fn local_volume_store(&self, address: &Address) -> OpsResult<std::path::PathBuf> {
        match self.volume(&address.to_string())? {
            crate::volume::Volume::Local { store, .. } => Ok(store),
            _ => unreachable!("a local: address is a local volume"),
        }
    }
}
