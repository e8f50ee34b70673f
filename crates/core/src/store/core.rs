//! The shared state behind a [`super::LocalStore`] and its image handles:
//! configuration, blob store and the page cache.

use super::blobs::Blobs;
use super::config::Config;
use super::crypto::StoreCrypto;
use super::error::{Result, StoreError};
use super::id::ChunkId;
use super::meta;
use super::pack::BlobKind;
use super::tree::{self, Page, PageStore, PAGE_BYTES};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Pages kept in memory (32 KiB each: 64 MiB).
const PAGE_CACHE_PAGES: usize = 2048;
pub const PACKS_DIR: &str = "packs";

pub struct Store {
    pub root: PathBuf,
    /// False for a store on read-only media (or not writable by us).
    pub writable: bool,
    pub chunk_size: u64,
    pub blobs: Blobs,
    /// Image records (HEADs, snapshots, image metadata), sealed when the
    /// store is encrypted.
    pub records: meta::Records,
    /// The encryption layer of an encrypted store.
    pub crypto: Option<Arc<StoreCrypto>>,
    cache: Mutex<HashMap<ChunkId, Page>>,
    /// Page loads (cache hits included): lets tests check that a diff
    /// touches few pages.
    pub page_loads: AtomicU64,
}

/// One published version: an image HEAD (`snap == None`) or a snapshot.
#[derive(Debug, Clone)]
pub struct VersionRef {
    pub image: String,
    pub snap: Option<String>,
    pub size: u64,
    pub root: ChunkId,
}

impl VersionRef {
    pub fn levels(&self, chunk_size: u64) -> u32 {
        tree::levels_for(self.size.div_ceil(chunk_size))
    }
}

impl Store {
    /// `crypto`: the layer and chunk-id key of an encrypted store.
    pub fn new(
        root: PathBuf,
        config: &Config,
        writable: bool,
        crypto: Option<(StoreCrypto, [u8; 32])>,
    ) -> Result<Self> {
        raise_open_file_limit();
        let (crypto, key) = match crypto {
            Some((c, key)) => (Some(Arc::new(c)), key),
            None => (None, config.key_bytes()?),
        };
        let packs = root.join(PACKS_DIR);
        let blobs = Blobs::open(packs, key, config.zstd_level, crypto.clone())?;
        Ok(Store {
            records: meta::Records::new(root.clone(), crypto.clone()),
            crypto,
            root,
            writable,
            chunk_size: u64::from(config.chunk_size),
            blobs,
            cache: Mutex::new(HashMap::new()),
            page_loads: AtomicU64::new(0),
        })
    }

    pub fn describe(&self) -> String {
        format!("store:{}", self.root.display())
    }

    /// Fails for a store opened read-only.
    pub fn require_writable(&self) -> Result<()> {
        if self.writable {
            return Ok(());
        }
        Err(StoreError::NotWritable {
            path: self.root.clone(),
        })
    }

    pub fn levels_for_size(&self, size: u64) -> u32 {
        tree::levels_for(size.div_ceil(self.chunk_size))
    }

    /// Reads a page from its pack, bypassing the cache (verify).
    pub fn load_page_uncached(&self, id: &ChunkId) -> Result<Page> {
        let mut buf = vec![0u8; PAGE_BYTES];
        self.blobs.get(id, &mut buf)?;
        Ok(tree::page_from_bytes(&buf))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<ChunkId, Page>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cache_insert(&self, id: ChunkId, page: Page) {
        let mut cache = self.cache();
        // Crude but bounded: drop everything when full. Tree walks are
        // sequential, so the working set is refilled cheaply.
        if cache.len() >= PAGE_CACHE_PAGES {
            cache.clear();
        }
        cache.insert(id, page);
    }

    /// Every published version (all HEADs and snapshots).
    pub fn all_versions(&self) -> Result<Vec<VersionRef>> {
        let mut out = Vec::new();
        for image in meta::list_images(&self.root)? {
            out.extend(self.image_versions(&image)?);
        }
        Ok(out)
    }

    /// HEAD and snapshots of one image (an image removed meanwhile has none).
    pub fn image_versions(&self, image: &str) -> Result<Vec<VersionRef>> {
        let head = match self.records.read_head(image) {
            Ok(head) => head,
            Err(StoreError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = vec![VersionRef {
            image: image.to_string(),
            snap: None,
            size: head.size,
            root: head.root,
        }];
        for s in self.records.list_snaps(image)? {
            out.push(VersionRef {
                image: image.to_string(),
                snap: Some(s.name),
                size: s.size,
                root: s.root,
            });
        }
        Ok(out)
    }

    /// One version: HEAD or snapshot `snap` of `image`.
    pub fn version(&self, image: &str, snap: Option<&str>) -> Result<VersionRef> {
        meta::check_image_name(image)?;
        let (size, root) = match snap {
            None => {
                let v = self.records.read_head(image)?;
                (v.size, v.root)
            }
            Some(s) => {
                let r = self.records.read_snap(image, s)?;
                (r.size, r.root)
            }
        };
        Ok(VersionRef {
            image: image.to_string(),
            snap: snap.map(str::to_string),
            size,
            root,
        })
    }
}

impl PageStore for Store {
    fn load(&self, id: &ChunkId) -> Result<Page> {
        self.page_loads.fetch_add(1, Ordering::Relaxed);
        if let Some(page) = self.cache().get(id) {
            return Ok(page.clone());
        }
        let page = self.load_page_uncached(id)?;
        self.cache_insert(*id, page.clone());
        Ok(page)
    }

    fn store(&self, page: &[ChunkId]) -> Result<ChunkId> {
        if page.iter().all(ChunkId::is_null) {
            return Ok(ChunkId::NULL);
        }
        let bytes = tree::page_to_bytes(page);
        let id = ChunkId::of(self.blobs.key(), &bytes);
        self.blobs.put(id, BlobKind::Page, &bytes)?;
        self.cache_insert(id, page.into());
        Ok(id)
    }
}

/// Checks that `path` is writable by this process.
pub fn check_writable(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| StoreError::Invalid {
            what: "store path".into(),
            why: "contains a NUL byte".into(),
        })?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let rc = unsafe { libc::access(c.as_ptr(), libc::W_OK) };
    if rc != 0 {
        return Err(StoreError::NotWritable {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Every pack stays open (so reads survive a concurrent gc unlinking it):
/// lift the soft limit on open files to the hard limit, as a large store
/// has more packs than the usual soft limit of 1024.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            // Best effort: on failure we keep the old limit.
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
