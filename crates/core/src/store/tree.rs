//! The per-version index: a hashed radix tree of pages.
//!
//! A page holds [`FANOUT`] ids. Level-0 pages (leaves) hold chunk ids;
//! higher pages hold the ids of child pages. A null id is a hole (leaf) or
//! an all-hole subtree. Pages are blobs too, content-addressed, so a version
//! shares every unchanged page with its predecessor and a change rewrites
//! only the pages on its path to the root. The number of levels follows
//! from the image size: the fewest levels whose span covers every chunk.

use super::error::Result;
use super::id::ChunkId;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const FANOUT: usize = 1024;
pub const PAGE_BYTES: usize = FANOUT * 32;

pub type Page = Arc<[ChunkId]>;

/// Loads and stores pages; implemented by the store (with a cache) and by
/// the diff's overlay of virtual pages.
pub trait PageStore {
    fn load(&self, id: &ChunkId) -> Result<Page>;
    /// Stores a page (unless it is all null) and returns its id (or null).
    fn store(&self, page: &[ChunkId]) -> Result<ChunkId>;
}

/// A page of nulls.
pub fn empty_page() -> Vec<ChunkId> {
    vec![ChunkId::NULL; FANOUT]
}

pub fn page_to_bytes(page: &[ChunkId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PAGE_BYTES);
    page.iter().for_each(|id| out.extend_from_slice(&id.0));
    out
}

pub fn page_from_bytes(bytes: &[u8]) -> Page {
    bytes
        .chunks_exact(32)
        .map(|b| {
            let mut id = [0u8; 32];
            id.copy_from_slice(b);
            ChunkId(id)
        })
        .collect()
}

/// Chunks covered by one entry of a page at `level`.
pub fn entry_span(level: u32) -> u64 {
    (FANOUT as u64).saturating_pow(level)
}

/// Levels of a tree holding `nchunks` chunks (at least one).
pub fn levels_for(nchunks: u64) -> u32 {
    let mut levels = 1;
    while entry_span(levels) < nchunks {
        levels += 1;
    }
    levels
}

/// Loads `id`, or a page of nulls when `id` is null.
fn load_or_empty(ps: &dyn PageStore, id: &ChunkId) -> Result<Page> {
    if id.is_null() {
        return Ok(empty_page().into());
    }
    ps.load(id)
}

/// The leaf page holding chunks `leaf * FANOUT ..` (nulls if absent).
pub fn load_leaf(ps: &dyn PageStore, root: ChunkId, levels: u32, leaf: u64) -> Result<Page> {
    let mut id = root;
    for level in (1..levels).rev() {
        if id.is_null() {
            break;
        }
        let slot = (leaf / entry_span(level - 1)) % FANOUT as u64;
        id = ps.load(&id)?[slot as usize];
    }
    load_or_empty(ps, &id)
}

/// The id of chunk `index` (null for a hole).
pub fn lookup(ps: &dyn PageStore, root: ChunkId, levels: u32, index: u64) -> Result<ChunkId> {
    let leaf = load_leaf(ps, root, levels, index / FANOUT as u64)?;
    Ok(leaf[(index % FANOUT as u64) as usize])
}

/// Replaces the leaves in `leaves` (keyed by leaf number) and rewrites the
/// pages on their paths; returns the new root. Cost: O(changed pages).
pub fn rebuild(
    ps: &dyn PageStore,
    root: ChunkId,
    levels: u32,
    leaves: &BTreeMap<u64, Vec<ChunkId>>,
) -> Result<ChunkId> {
    rebuild_node(ps, root, levels - 1, 0, leaves)
}

fn rebuild_node(
    ps: &dyn PageStore,
    node: ChunkId,
    level: u32,
    first_leaf: u64,
    leaves: &BTreeMap<u64, Vec<ChunkId>>,
) -> Result<ChunkId> {
    if level == 0 {
        return match leaves.get(&first_leaf) {
            Some(page) => ps.store(page),
            None => Ok(node),
        };
    }
    let child_leaves = entry_span(level - 1);
    let mut page = load_or_empty(ps, &node)?.to_vec();
    let end = first_leaf + child_leaves * FANOUT as u64;
    let mut touched: Vec<u64> = leaves
        .range(first_leaf..end)
        .map(|(leaf, _)| (leaf - first_leaf) / child_leaves)
        .collect();
    touched.dedup();
    for slot in touched {
        let child_first = first_leaf + slot * child_leaves;
        page[slot as usize] =
            rebuild_node(ps, page[slot as usize], level - 1, child_first, leaves)?;
    }
    ps.store(&page)
}

/// Changes the number of levels: growing puts the old root at slot 0 of
/// new pages above it; shrinking keeps slot 0 of the old root.
pub fn reshape(ps: &dyn PageStore, mut root: ChunkId, from: u32, to: u32) -> Result<ChunkId> {
    for _ in to..from {
        root = load_or_empty(ps, &root)?[0];
    }
    for _ in from..to {
        let mut page = empty_page();
        page[0] = root;
        root = ps.store(&page)?;
    }
    Ok(root)
}

/// Nulls every chunk at index `nchunks` and beyond.
pub fn truncate(ps: &dyn PageStore, root: ChunkId, levels: u32, nchunks: u64) -> Result<ChunkId> {
    truncate_node(ps, root, levels - 1, 0, nchunks)
}

fn truncate_node(
    ps: &dyn PageStore,
    node: ChunkId,
    level: u32,
    first: u64,
    keep: u64,
) -> Result<ChunkId> {
    let span = entry_span(level);
    if node.is_null() || first + span * FANOUT as u64 <= keep {
        return Ok(node);
    }
    if first >= keep {
        return Ok(ChunkId::NULL);
    }
    let mut page = ps.load(&node)?.to_vec();
    for (slot, child) in page.iter_mut().enumerate() {
        let child_first = first + slot as u64 * span;
        *child = if level == 0 {
            if child_first >= keep {
                ChunkId::NULL
            } else {
                *child
            }
        } else {
            truncate_node(ps, *child, level - 1, child_first, keep)?
        };
    }
    ps.store(&page)
}

/// Visits every page and chunk reachable from `root`: `enter(page)` is
/// called before a page is loaded and returns false to skip it (already
/// seen), `chunk(id)` is called for every non-null chunk id.
pub fn walk(
    ps: &dyn PageStore,
    root: ChunkId,
    levels: u32,
    enter: &mut dyn FnMut(&ChunkId) -> bool,
    chunk: &mut dyn FnMut(&ChunkId) -> Result<()>,
) -> Result<()> {
    walk_node(ps, root, levels - 1, enter, chunk)
}

fn walk_node(
    ps: &dyn PageStore,
    node: ChunkId,
    level: u32,
    enter: &mut dyn FnMut(&ChunkId) -> bool,
    chunk: &mut dyn FnMut(&ChunkId) -> Result<()>,
) -> Result<()> {
    if node.is_null() || !enter(&node) {
        return Ok(());
    }
    let page = ps.load(&node)?;
    for id in page.iter().filter(|id| !id.is_null()) {
        if level == 0 {
            chunk(id)?;
        } else {
            walk_node(ps, *id, level - 1, enter, chunk)?;
        }
    }
    Ok(())
}

/// The indexes (ascending) of the non-null chunks of the tree at `root`
/// whose ids are `wanted`. Loads every page of the tree: for rare
/// questions only.
pub fn chunks_where(
    ps: &dyn PageStore,
    root: ChunkId,
    levels: u32,
    wanted: &dyn Fn(&ChunkId) -> bool,
) -> Result<Vec<u64>> {
    let mut found = Vec::new();
    chunks_where_node(ps, root, levels - 1, 0, wanted, &mut found)?;
    Ok(found)
}

fn chunks_where_node(
    ps: &dyn PageStore,
    node: ChunkId,
    level: u32,
    first: u64,
    wanted: &dyn Fn(&ChunkId) -> bool,
    found: &mut Vec<u64>,
) -> Result<()> {
    if node.is_null() {
        return Ok(());
    }
    let span = entry_span(level);
    for (slot, id) in ps.load(&node)?.iter().enumerate() {
        let at = first + slot as u64 * span;
        if level == 0 && !id.is_null() && wanted(id) {
            found.push(at);
        } else if level > 0 {
            chunks_where_node(ps, *id, level - 1, at, wanted, found)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// Pages in memory, counting stores.
    #[derive(Default)]
    struct Mem {
        pages: RefCell<HashMap<ChunkId, Page>>,
        stores: RefCell<usize>,
    }

    impl PageStore for Mem {
        fn load(&self, id: &ChunkId) -> Result<Page> {
            Ok(self.pages.borrow()[id].clone())
        }

        fn store(&self, page: &[ChunkId]) -> Result<ChunkId> {
            if page.iter().all(ChunkId::is_null) {
                return Ok(ChunkId::NULL);
            }
            *self.stores.borrow_mut() += 1;
            let id = ChunkId::of(&[7; 32], &page_to_bytes(page));
            self.pages.borrow_mut().insert(id, page.into());
            Ok(id)
        }
    }

    fn chunk(n: u64) -> ChunkId {
        ChunkId::of(&[1; 32], &n.to_le_bytes())
    }

    fn set(ps: &Mem, root: ChunkId, levels: u32, idx: u64, id: ChunkId) -> ChunkId {
        let leaf_no = idx / FANOUT as u64;
        let mut leaf = load_leaf(ps, root, levels, leaf_no).unwrap().to_vec();
        leaf[(idx % FANOUT as u64) as usize] = id;
        rebuild(ps, root, levels, &[(leaf_no, leaf)].into_iter().collect()).unwrap()
    }

    #[test]
    fn levels_cover_the_chunks() {
        assert_eq!(levels_for(0), 1);
        assert_eq!(levels_for(1024), 1);
        assert_eq!(levels_for(1025), 2);
        assert_eq!(levels_for(1 << 20), 2);
        assert_eq!(levels_for((1 << 20) + 1), 3);
        assert!(levels_for(u64::MAX) <= 7);
    }

    #[test]
    fn a_change_rewrites_only_its_path() {
        let ps = Mem::default();
        let levels = 3;
        let mut root = ChunkId::NULL;
        for idx in [0u64, 5_000, 2_000_000] {
            root = set(&ps, root, levels, idx, chunk(idx));
        }
        let before = *ps.stores.borrow();
        let changed = set(&ps, root, levels, 5_001, chunk(1));
        assert_eq!(*ps.stores.borrow() - before, levels as usize);
        for idx in [0u64, 5_000, 2_000_000] {
            assert_eq!(lookup(&ps, changed, levels, idx).unwrap(), chunk(idx));
        }
        assert_eq!(lookup(&ps, changed, levels, 5_001).unwrap(), chunk(1));
        assert!(lookup(&ps, changed, levels, 7).unwrap().is_null());
        // Setting it back gives the old root: pages are content-addressed.
        assert_eq!(set(&ps, changed, levels, 5_001, ChunkId::NULL), root);
    }

    #[test]
    fn chunks_where_finds_the_positions_of_wanted_ids() {
        let ps = Mem::default();
        let mut root = ChunkId::NULL;
        for idx in [3u64, 1_500, 9_000, 9_001] {
            root = set(&ps, root, 2, idx, chunk(idx % 2));
        }
        let wanted = |id: &ChunkId| *id == chunk(0);
        assert_eq!(chunks_where(&ps, root, 2, &wanted).unwrap(), [1_500, 9_000]);
        assert!(chunks_where(&ps, ChunkId::NULL, 2, &wanted)
            .unwrap()
            .is_empty());
        let all = chunks_where(&ps, root, 2, &|_| true).unwrap();
        assert_eq!(all, [3, 1_500, 9_000, 9_001]);
    }

    #[test]
    fn truncate_and_reshape() {
        let ps = Mem::default();
        let mut root = ChunkId::NULL;
        for idx in [3u64, 1_500, 9_000] {
            root = set(&ps, root, 2, idx, chunk(idx));
        }
        let cut = truncate(&ps, root, 2, 1_501).unwrap();
        assert_eq!(lookup(&ps, cut, 2, 1_500).unwrap(), chunk(1_500));
        assert!(lookup(&ps, cut, 2, 9_000).unwrap().is_null());
        let grown = reshape(&ps, cut, 2, 4).unwrap();
        assert_eq!(lookup(&ps, grown, 4, 3).unwrap(), chunk(3));
        assert_eq!(reshape(&ps, grown, 4, 2).unwrap(), cut);
        assert!(truncate(&ps, root, 2, 0).unwrap().is_null());
    }
}
