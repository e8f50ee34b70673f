//! Verification: re-read and re-hash every page and chunk reachable from a
//! version or from the whole store, collecting every bad blob with the
//! versions that use it instead of stopping at the first.

use super::core::{Store, VersionRef};
use super::error::{Result, StoreError};
use super::id::ChunkId;
use super::tree::{PageStore, FANOUT};
use crate::progress::Progress;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// What [`super::LocalStore::verify`] checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyScope {
    /// Every HEAD and snapshot of the store.
    Store,
    /// One version: HEAD (`snap == None`) or a snapshot of `image`.
    Version { image: String, snap: Option<String> },
}

/// A version that uses a blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ChunkUser {
    pub image: String,
    /// `None` for the image HEAD.
    pub snapshot: Option<String>,
}

/// A chunk or page that failed verification.
#[derive(Debug, Clone, Serialize)]
pub struct BadBlob {
    /// The id (hex).
    pub id: String,
    /// "chunk" or "page".
    pub kind: &'static str,
    /// Why it failed, naming the pack.
    pub error: String,
    pub users: Vec<ChunkUser>,
}

/// A `.pack` file whose index cannot be read: what it holds is unknown,
/// the blobs it held are reported missing where versions use them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadablePack {
    pub pack: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub versions: u64,
    pub pages: u64,
    pub chunks: u64,
    pub bytes: u64,
    pub bad: Vec<BadBlob>,
    /// Only for [`VerifyScope::Store`].
    pub unreadable_packs: Vec<UnreadablePack>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.bad.is_empty() && self.unreadable_packs.is_empty()
    }
}

struct Checker<'a> {
    store: &'a Store,
    progress: &'a dyn Progress,
    seen: HashSet<ChunkId>,
    buf: Vec<u8>,
    report: VerifyReport,
    bad: Vec<(ChunkId, &'static str, String)>,
}

impl Checker<'_> {
    fn node(&mut self, id: ChunkId, level: u32) {
        if id.is_null() || !self.seen.insert(id) {
            return;
        }
        self.report.pages += 1;
        let page = match self.store.load_page_uncached(&id) {
            Ok(page) => page,
            Err(e) => return self.bad.push((id, "page", e.to_string())),
        };
        for child in page.iter().copied() {
            if level > 0 {
                self.node(child, level - 1);
            } else {
                self.chunk(child);
            }
        }
    }

    fn chunk(&mut self, id: ChunkId) {
        if id.is_null() || !self.seen.insert(id) {
            return;
        }
        self.report.chunks += 1;
        self.report.bytes += self.buf.len() as u64;
        if let Err(e) = self.store.blobs.get(&id, &mut self.buf) {
            self.bad.push((id, "chunk", e.to_string()));
        }
        self.progress.advance(self.buf.len() as u64);
    }
}

pub fn run(store: &Store, scope: &VerifyScope, progress: &dyn Progress) -> Result<VerifyReport> {
    let versions = match scope {
        VerifyScope::Store => store.all_versions()?,
        VerifyScope::Version { image, snap } => vec![store.version(image, snap.as_deref())?],
    };
    let mut c = Checker {
        store,
        progress,
        seen: HashSet::new(),
        buf: vec![0u8; store.chunk_size as usize],
        report: VerifyReport::default(),
        bad: Vec::new(),
    };
    progress.begin("verify", 0);
    for v in &versions {
        c.node(v.root, v.levels(store.chunk_size) - 1);
        c.report.versions += 1;
    }
    progress.end();
    let mut report = c.report;
    if *scope == VerifyScope::Store {
        let index = store.blobs.read_index();
        report.unreadable_packs = (index.unreadable.iter())
            .map(|(pack, error)| UnreadablePack {
                pack: format!("{pack}.{}", super::pack::PACK_EXT),
                error: error.clone(),
            })
            .collect();
    }
    let ids: HashSet<ChunkId> = c.bad.iter().map(|b| b.0).collect();
    let mut users = users_of(store, &ids)?;
    report.bad = c
        .bad
        .into_iter()
        .map(|(id, kind, error)| BadBlob {
            id: id.to_hex(),
            kind,
            error,
            users: users.remove(&id).unwrap_or_default(),
        })
        .collect();
    Ok(report)
}

/// For each id of `wanted`, the versions of the store that reach it.
/// Memoised per page, so the cost is the number of distinct pages.
pub fn users_of(
    store: &Store,
    wanted: &HashSet<ChunkId>,
) -> Result<HashMap<ChunkId, Vec<ChunkUser>>> {
    let mut out: HashMap<ChunkId, Vec<ChunkUser>> = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let mut finder = Finder {
        store,
        wanted,
        memo: HashMap::new(),
    };
    for v in store.all_versions()? {
        for id in finder.under(v.root, v.levels(store.chunk_size) - 1)? {
            out.entry(id).or_default().push(user(&v));
        }
    }
    Ok(out)
}

fn user(v: &VersionRef) -> ChunkUser {
    ChunkUser {
        image: v.image.clone(),
        snapshot: v.snap.clone(),
    }
}

struct Finder<'a> {
    store: &'a Store,
    wanted: &'a HashSet<ChunkId>,
    memo: HashMap<ChunkId, Vec<ChunkId>>,
}

impl Finder<'_> {
    /// The wanted ids in the subtree of page `node` (including itself).
    fn under(&mut self, node: ChunkId, level: u32) -> Result<Vec<ChunkId>> {
        if node.is_null() {
            return Ok(Vec::new());
        }
        if let Some(found) = self.memo.get(&node) {
            return Ok(found.clone());
        }
        let mut found = Vec::new();
        if self.wanted.contains(&node) {
            found.push(node);
        }
        match self.store.load(&node) {
            Ok(page) => {
                debug_assert_eq!(page.len(), FANOUT);
                for child in page.iter().copied() {
                    if level > 0 {
                        found.extend(self.under(child, level - 1)?);
                    } else if self.wanted.contains(&child) {
                        found.push(child);
                    }
                }
            }
            // An unreadable page: its subtree cannot be searched.
            Err(StoreError::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
        found.sort();
        found.dedup();
        self.memo.insert(node, found.clone());
        Ok(found)
    }
}
