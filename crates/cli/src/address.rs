//! Image addresses of the stream commands: any image, anywhere.
//!
//! - `rbd:POOL/IMAGE[@SNAP]`: an RBD image (the volume-side cluster settings);
//! - `local:IMAGE[@SNAP]`: an image of the local store given with --store;
//! - `backup:ID`: a backup (its base image at its snapshot), read-only;
//! - anything else: a file or block device path.

use crate::config::{absolute, StoreLocation};
use crate::endpoint::{open_store, StoreHandle};
use crate::session::Session;
use anyhow::{bail, Result};
use blockback_core::catalog::resolve_backup;
use blockback_core::image::file::FileImage;
use blockback_core::image::{Image, Pool};
use blockback_rbd::RbdSpec;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub enum ImageAddress {
    File(PathBuf),
    Local { image: String, snap: Option<String> },
    Backup(String),
    Rbd(RbdSpec),
}

impl ImageAddress {
    pub fn parse(text: &str) -> Result<Self> {
        if RbdSpec::is_rbd(text) {
            let spec = RbdSpec::parse(text)?;
            spec.require_image()?;
            return Ok(ImageAddress::Rbd(spec));
        }
        if let Some(rest) = text.strip_prefix("local:") {
            let (image, snap) = match rest.split_once('@') {
                Some((i, s)) => (i, Some(s.to_string())),
                None => (rest, None),
            };
            if image.is_empty() {
                bail!("{text}: give local:IMAGE[@SNAP]");
            }
            return Ok(ImageAddress::Local {
                image: image.to_string(),
                snap,
            });
        }
        if let Some(id) = text.strip_prefix("backup:") {
            return Ok(ImageAddress::Backup(id.to_string()));
        }
        Ok(ImageAddress::File(absolute(Path::new(text))?))
    }

    /// The snapshot the address names, if any.
    pub fn snap(&self) -> Option<&str> {
        match self {
            ImageAddress::Local { snap, .. } => snap.as_deref(),
            ImageAddress::Rbd(spec) => spec.snap.as_deref(),
            _ => None,
        }
    }
}

/// An open image and the pool it came from (kept open with it).
pub struct Opened {
    pub image: Box<dyn Image>,
    /// The snapshot the handle is at (`backup:` resolves to the backup's).
    pub snap: Option<String>,
}

/// Opens `addr` read-only at its snapshot, or HEAD.
pub fn open_read(session: &Session, addr: &ImageAddress) -> Result<Opened> {
    let snap = addr.snap().map(str::to_string);
    let image = match addr {
        ImageAddress::File(p) => Box::new(FileImage::open(p, false)?) as Box<dyn Image>,
        ImageAddress::Backup(id) => {
            let record = resolve_backup(&session.catalog, id)?;
            let store = session.store_of(&record)?;
            let image = store
                .pool()
                .open_read_only(&record.image, record.restore_point())?;
            return Ok(Opened {
                image,
                snap: record.restore_point().map(str::to_string),
            });
        }
        _ => with_pool(session, addr, |pool, name| {
            Ok(pool.open_read_only(name, snap.as_deref())?)
        })?,
    };
    Ok(Opened { image, snap })
}

/// Opens an existing image read-write at HEAD.
pub fn open_write(session: &Session, addr: &ImageAddress) -> Result<Box<dyn Image>> {
    refuse_snapshot(addr)?;
    match addr {
        ImageAddress::File(p) => Ok(Box::new(FileImage::open(p, true)?)),
        _ => with_pool(session, addr, |pool, name| Ok(pool.open(name)?)),
    }
}

/// Creates a new image of `size` bytes and opens it read-write.
pub fn create(session: &Session, addr: &ImageAddress, size: u64) -> Result<Box<dyn Image>> {
    refuse_snapshot(addr)?;
    match addr {
        ImageAddress::File(p) => Ok(Box::new(FileImage::create(p, size)?)),
        _ => with_pool(session, addr, |pool, name| {
            pool.create(name, size)?;
            Ok(pool.open(name)?)
        }),
    }
}

/// Removes an image this process created.
pub fn remove(session: &Session, addr: &ImageAddress) -> Result<()> {
    match addr {
        ImageAddress::File(p) => Ok(std::fs::remove_file(p)?),
        _ => with_pool(session, addr, |pool, name| Ok(pool.remove(name)?)),
    }
}

fn refuse_snapshot(addr: &ImageAddress) -> Result<()> {
    match addr {
        ImageAddress::Backup(id) => {
            bail!("backup:{id} is read-only; write to a file, local:IMAGE or rbd:POOL/IMAGE")
        }
        _ if addr.snap().is_some() => {
            bail!("snapshots are read-only; name the image without @SNAP")
        }
        _ => Ok(()),
    }
}

fn with_pool<T>(
    session: &Session,
    addr: &ImageAddress,
    op: impl FnOnce(&dyn Pool, &str) -> Result<T>,
) -> Result<T> {
    match addr {
        ImageAddress::Local { image, .. } => {
            let StoreLocation::Local(_) = &session.config.store else {
                bail!("local:{image} needs a local --store");
            };
            let store = open_store(
                &session.config.store,
                &session.config.store_ceph,
                &session.connections,
                true,
            )?;
            let StoreHandle::Local(local) = &store else {
                unreachable!("a local location opens a local store")
            };
            op(local, image)
        }
        ImageAddress::Rbd(spec) => {
            let pool = session
                .connections
                .get(&session.config.volume_ceph)?
                .open_pool(&spec.pool)?;
            op(&pool, spec.require_image()?)
        }
        _ => unreachable!("files and backups are opened directly"),
    }
}
