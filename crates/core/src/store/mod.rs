//! The embedded local store: a directory that behaves like an RBD pool.
//!
//! Images have a mutable HEAD and immutable snapshots. Data is cut into
//! fixed-size chunks identified by keyed BLAKE3, deduplicated across all
//! images and versions, zstd-compressed when that pays, and appended to
//! pack files. Each version is a hashed radix tree of index pages (see
//! [`tree`]), so snapshots are O(1) after a flush and diffs cost what
//! changed. The on-disk format, crash safety and locking are described in
//! docs/store.md.
//!
//! ```text
//! <store>/config.json      format version, chunk size, hash key
//! <store>/lock             store lock (writers shared, gc exclusive)
//! <store>/packs/*.pack     sealed packs; *.part = being written (or garbage)
//! <store>/images/<image>/  head.json, snaps/<snap>.json, lock
//! <store>/objects/<name>    named write-once objects (backup metadata)
//! <store>/keys.json        key slots of an encrypted store (keys.rs)
//! ```
//!
//! An encrypted store (`init` with a cipher) seals every blob, pack index,
//! image record and object (crypto.rs); docs/design.md, "Encryption at
//! rest", has the formats and the threat model.

mod blobs;
mod codec;
mod config;
mod core;
mod crypto;
mod diff;
mod error;
mod gc;
mod id;
mod image;
mod keys;
mod lock;
mod meta;
mod objects;
mod pack;
mod quarantine;
mod reclaim;
mod sealcheck;
mod stats;
mod tree;
mod verify;

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod crypto_tests;
#[cfg(test)]
mod damage_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

pub use self::config::{DEFAULT_CHUNK_SIZE, FORMAT_VERSION};
pub use self::error::StoreError;
pub use self::gc::GcStats;
pub use self::id::ChunkId;
pub use self::sealcheck::{DamagedFile, StoredCheck};
pub use self::stats::StoreStats;
pub use self::verify::{BadBlob, ChunkUser, UnreadablePack, VerifyReport, VerifyScope};

use self::config::{Config, CONFIG_FILE};
use self::core::{check_writable, Store, PACKS_DIR};
use self::crypto::StoreCrypto;
use self::image::StoreImage;
use self::keys::LocalSlots;
use self::meta::Version;
use crate::crypto::{Argon2Params, Cipher, Credential, KeySlots, KeySource, NoKeys, SlotStore};
use crate::image::{Image, ImageError, Pool, Result as ImageResult};
use crate::progress::Progress;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options of [`LocalStore::init`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitOptions {
    /// Chunk size in bytes: a power of two from 4 KiB to 4 MiB.
    pub chunk_size: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// An open local store. Cheap to clone; clones share caches and the open
/// pack.
#[derive(Clone)]
pub struct LocalStore {
    inner: Arc<Store>,
}

impl LocalStore {
    /// Creates a store in `path` (created if missing; must be empty).
    pub fn init(path: &Path, opts: InitOptions) -> Result<Self, StoreError> {
        let config = Config::new(opts.chunk_size, config::random_key()?)?;
        Self::create(path, &config, None)?;
        Self::open(path)
    }

    /// Creates an encrypted store in `path`: a new master key, wrapped by
    /// `cred` in the first key slot (`params`: argon2id cost when `cred`
    /// is a passphrase).
    pub fn init_encrypted(
        path: &Path,
        opts: InitOptions,
        cipher: Cipher,
        cred: Credential,
        params: Argon2Params,
    ) -> Result<Self, StoreError> {
        let config = Config::new_encrypted(opts.chunk_size, cipher)?;
        let (slots, master) = KeySlots::create(cipher, &cred, params)?;
        Self::create(path, &config, Some(&slots))?;
        let (crypto, id_key) = StoreCrypto::new(&master, cipher);
        Self::open_with_crypto(path, &config, Some((crypto, id_key)))
    }

    fn create(path: &Path, config: &Config, slots: Option<&KeySlots>) -> Result<(), StoreError> {
        std::fs::create_dir_all(path).map_err(|e| StoreError::io_path(path, e))?;
        check_empty(path)?;
        for dir in [PACKS_DIR, meta::IMAGES_DIR] {
            let p = path.join(dir);
            std::fs::create_dir(&p).map_err(|e| StoreError::io_path(&p, e))?;
        }
        let lock = path.join(meta::LOCK_FILE);
        std::fs::File::create(&lock).map_err(|e| StoreError::io_path(&lock, e))?;
        if let Some(slots) = slots {
            LocalSlots::new(path).save_slots(slots)?;
        }
        let bytes = serde_json::to_vec_pretty(config).map_err(|e| StoreError::Invalid {
            what: "config".into(),
            why: e.to_string(),
        })?;
        // config.json last: its presence marks a complete store.
        meta::write_atomic(path, CONFIG_FILE, &bytes)
    }

    /// Opens an existing unencrypted store (an encrypted one fails with
    /// a "give a key" error): [`LocalStore::open_with`] with no keys.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, &NoKeys)
    }

    /// Opens an existing store: checks its format, unlocks an encrypted
    /// store's master key with the credentials of `keys`, then loads the
    /// pack indexes (only their trailers are read). A store that is not
    /// writable (read-only media, permissions) opens read-only: images,
    /// snapshots and objects can be read and verified; anything that
    /// would write fails with [`StoreError::NotWritable`].
    pub fn open_with(path: &Path, keys: &dyn KeySource) -> Result<Self, StoreError> {
        if !path.join(CONFIG_FILE).exists() {
            return Err(StoreError::NotAStore {
                path: path.to_path_buf(),
            });
        }
        let config = Config::load(path)?;
        let crypto = match config.encryption {
            None if keys.given() => {
                return Err(StoreError::Invalid {
                    what: format!("store {}", path.display()),
                    why: "it is not encrypted, but a key was given (drop the key options, or name the encrypted store)".into(),
                })
            }
            None => None,
            Some(cipher) => {
                let (_, unlocked) = crate::crypto::unlock(&LocalSlots::new(path), keys)?;
                Some(StoreCrypto::new(&unlocked.master, cipher))
            }
        };
        Self::open_with_crypto(path, &config, crypto)
    }

    fn open_with_crypto(
        path: &Path,
        config: &Config,
        crypto: Option<(StoreCrypto, [u8; 32])>,
    ) -> Result<Self, StoreError> {
        let writable = [
            PathBuf::from(path),
            path.join(PACKS_DIR),
            path.join(meta::IMAGES_DIR),
        ]
        .iter()
        .all(|dir| check_writable(dir).is_ok());
        let store = Store::new(path.to_path_buf(), config, writable, crypto)?;
        Ok(LocalStore {
            inner: Arc::new(store),
        })
    }

    /// Checks an encrypted store's stored bytes without the key (pack
    /// footers, record checksums): finds damage, not forgeries (the full
    /// [`LocalStore::verify`] authenticates every blob).
    pub fn check_stored(path: &Path) -> Result<StoredCheck, StoreError> {
        sealcheck::run(path)
    }

    /// The key slots of an encrypted store (no key needed: nothing secret).
    pub fn key_list(path: &Path) -> Result<Vec<crate::crypto::Slot>, StoreError> {
        keys::manage::list(path)
    }

    /// Adds a key slot for `new`, proving a working key from `keys` first;
    /// returns the slot id. Data is not rewritten.
    pub fn key_add(
        path: &Path,
        keys: &dyn KeySource,
        new: &Credential,
        params: Argon2Params,
    ) -> Result<String, StoreError> {
        keys::manage::add(path, keys, new, params)
    }

    /// Removes key slot `id` (never the last one).
    pub fn key_remove(path: &Path, keys: &dyn KeySource, id: &str) -> Result<(), StoreError> {
        keys::manage::remove(path, keys, id)
    }

    /// Rewraps the slot the given passphrase opens with `new`: the old
    /// passphrase stops working. Returns the slot id.
    pub fn change_passphrase(
        path: &Path,
        keys: &dyn KeySource,
        new: zeroize::Zeroizing<String>,
        params: Argon2Params,
    ) -> Result<String, StoreError> {
        keys::manage::change_passphrase(path, keys, new, params)
    }

    /// The cipher of an encrypted store; `None` when it is not encrypted.
    pub fn encryption(&self) -> Option<Cipher> {
        self.inner.crypto.as_ref().map(|c| c.cipher)
    }

    /// False when the store was opened read-only (see [`LocalStore::open`]).
    pub fn is_writable(&self) -> bool {
        self.inner.writable
    }

    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    pub fn chunk_size(&self) -> u64 {
        self.inner.chunk_size
    }

    /// The versions (image, snapshot; `None` = HEAD) whose data uses chunk
    /// (or page) `id`, so a corruption can be traced to backups.
    pub fn chunk_users(&self, id: &ChunkId) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let users = verify::users_of(&self.inner, &[*id].into_iter().collect())?;
        Ok(users
            .get(id)
            .map(|us| {
                us.iter()
                    .map(|u| (u.image.clone(), u.snapshot.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Deletes packs with no live data and repacks mostly-dead or small
    /// ones. Waits up to 10 s for writers, then fails with `Busy`.
    pub fn gc(&self, progress: &dyn Progress) -> Result<GcStats, StoreError> {
        self.inner.require_writable()?;
        gc::run(&self.inner, progress, lock::GC_WAIT)
    }

    /// Re-reads and re-hashes every page and chunk reachable from `scope`.
    pub fn verify(
        &self,
        scope: &VerifyScope,
        progress: &dyn Progress,
    ) -> Result<VerifyReport, StoreError> {
        verify::run(&self.inner, scope, progress)
    }

    /// A repair target of `size` bytes (see `verify --repair`): content
    /// written into it and flushed stores the chunks and pages the store
    /// lacks or holds only damaged copies of, healing every version that
    /// uses them; nothing is published (unused data is gc's).
    pub fn repair_target(&self, size: u64) -> Result<Box<dyn Image>, StoreError> {
        self.inner.require_writable()?;
        let lock = lock::store_shared(&self.inner.root)?;
        self.inner.blobs.refresh()?;
        Ok(Box::new(StoreImage::scratch(
            self.inner.clone(),
            size,
            lock,
        )))
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        stats::collect(&self.inner)
    }

    fn what(&self, image: &str) -> String {
        format!("{} {}", self.inner.describe(), image)
    }

    fn err(&self, image: &str, e: StoreError) -> ImageError {
        e.into_image(self.what(image))
    }

    fn object_err(&self, name: &str, e: StoreError) -> ImageError {
        e.into_image(crate::objects::object_what(&self.describe(), name))
    }

    #[cfg(test)]
    fn page_loads(&self) -> u64 {
        self.inner
            .page_loads
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The associated data of a sealed object: its name.
fn object_name(name: &str) -> String {
    format!("object\0{name}")
}

fn check_empty(path: &Path) -> Result<(), StoreError> {
    if path.join(CONFIG_FILE).exists() {
        return Err(StoreError::Exists {
            what: format!("store {}", path.display()),
        });
    }
    let mut rd = std::fs::read_dir(path).map_err(|e| StoreError::io_path(path, e))?;
    if rd.next().is_some() {
        return Err(StoreError::NotAStore {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

impl Pool for LocalStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn list(&self) -> ImageResult<Vec<String>> {
        meta::list_images(&self.inner.root).map_err(|e| e.into_image(self.describe()))
    }

    fn create(&self, name: &str, size: u64) -> ImageResult<()> {
        let root = &self.inner.root;
        let create = || -> Result<(), StoreError> {
            meta::check_image_name(name)?;
            self.inner.require_writable()?;
            // gc removes dot-named leftovers: keep it out meanwhile.
            let _gc = lock::store_shared(root)?;
            self.inner.records.create_image(name, size)
        };
        create().map_err(|e| self.err(name, e))
    }

    fn open(&self, name: &str) -> ImageResult<Box<dyn Image>> {
        let root = &self.inner.root;
        let open = || -> Result<_, StoreError> {
            meta::check_image_name(name)?;
            self.inner.require_writable()?;
            let store_lock = lock::store_shared(root)?;
            let image_lock = lock::image_exclusive(root, name)?;
            // A gc (maybe in another process) may have run since we last
            // looked: the map must not claim blobs that are gone, or new
            // writes would dedup against them.
            self.inner.blobs.refresh()?;
            let head = self.inner.records.read_head(name)?;
            Ok((head, vec![store_lock, image_lock]))
        };
        let (head, locks) = open().map_err(|e| self.err(name, e))?;
        let img = StoreImage::new(self.inner.clone(), name, None, head, locks);
        Ok(Box::new(img))
    }

    fn open_read_only(&self, name: &str, snap: Option<&str>) -> ImageResult<Box<dyn Image>> {
        let v = self
            .inner
            .version(name, snap)
            .map_err(|e| self.err(name, e))?;
        let version = Version {
            size: v.size,
            root: v.root,
        };
        let img = StoreImage::new(self.inner.clone(), name, snap, version, Vec::new());
        Ok(Box::new(img))
    }

    fn remove(&self, name: &str) -> ImageResult<()> {
        let root = &self.inner.root;
        let remove = || -> Result<(), StoreError> {
            meta::check_image_name(name)?;
            self.inner.require_writable()?;
            let _lock = lock::image_exclusive(root, name)?;
            if !self.inner.records.list_snaps(name)?.is_empty() {
                return Err(StoreError::HasSnapshots {
                    what: format!("image {name}"),
                });
            }
            meta::remove_image_dir(root, name)
        };
        remove().map_err(|e| self.err(name, e))
    }

    /// The bytes of the pack files: what the store occupies on disk
    /// (metadata files are a few KiB).
    fn usage(&self) -> ImageResult<Option<u64>> {
        let dir = self.inner.root.join(PACKS_DIR);
        let what = || format!("{} packs", self.inner.describe());
        let mut total = 0;
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).map_err(|e| ImageError::from_io(what(), e))? {
                let entry = entry.map_err(|e| ImageError::from_io(what(), e))?;
                let meta = entry
                    .metadata()
                    .map_err(|e| ImageError::from_io(what(), e))?;
                if meta.is_dir() {
                    stack.push(entry.path());
                } else {
                    total += meta.len();
                }
            }
        }
        Ok(Some(total))
    }

    fn reclaim_unpublished(&self) -> ImageResult<()> {
        if !self.inner.writable {
            return Ok(());
        }
        reclaim::run(&self.inner).map_err(|e| e.into_image(self.describe()))
    }

    fn put_object(&self, name: &str, data: &[u8]) -> ImageResult<()> {
        let what = || crate::objects::object_what(&self.describe(), name);
        crate::objects::check_object_name(&self.describe(), name)?;
        crate::objects::check_object_size(what, data.len() as u64)?;
        (self.inner.require_writable()).map_err(|e| self.object_err(name, e))?;
        let put = || match &self.inner.crypto {
            Some(c) => objects::put(
                &self.inner.root,
                name,
                &c.seal_record(&object_name(name), data)?,
            ),
            None => objects::put(&self.inner.root, name, data),
        };
        put().map_err(|e| self.object_err(name, e))
    }

    fn get_object(&self, name: &str) -> ImageResult<Option<Vec<u8>>> {
        crate::objects::check_object_name(&self.describe(), name)?;
        let get = || -> Result<_, StoreError> {
            let found = objects::get(&self.inner.root, name)?;
            match (&self.inner.crypto, found) {
                (Some(c), Some(bytes)) => {
                    let what = crate::objects::object_what(&self.describe(), name);
                    Ok(Some(c.open_record(&object_name(name), &bytes, &what)?))
                }
                (_, found) => Ok(found),
            }
        };
        get().map_err(|e| self.object_err(name, e))
    }

    fn remove_object(&self, name: &str) -> ImageResult<()> {
        crate::objects::check_object_name(&self.describe(), name)?;
        (self.inner.require_writable()).map_err(|e| self.object_err(name, e))?;
        objects::remove(&self.inner.root, name).map_err(|e| self.object_err(name, e))
    }
}
