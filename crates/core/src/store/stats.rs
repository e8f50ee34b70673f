//! Store statistics.

use super::core::Store;
use super::error::Result;
use super::id::ChunkId;
use super::meta;
use super::pack::BlobKind;
use super::tree::PageStore;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    pub images: u64,
    pub snapshots: u64,
    pub packs: u64,
    /// Distinct data chunks stored.
    pub chunks: u64,
    /// Distinct index pages stored.
    pub pages: u64,
    /// Bytes of the pack files on disk.
    pub pack_bytes: u64,
    /// Stored (compressed) bytes of the chunks.
    pub stored_bytes: u64,
    /// Uncompressed bytes of the chunks.
    pub raw_bytes: u64,
    /// Allocated (non-hole) bytes summed over every HEAD and snapshot.
    pub logical_bytes: u64,
    /// logical_bytes / raw_bytes.
    pub dedup_ratio: f64,
    /// raw_bytes / stored_bytes.
    pub compression_ratio: f64,
}

pub fn collect(store: &Store) -> Result<StoreStats> {
    store.blobs.refresh()?;
    let mut s = StoreStats::default();
    {
        let index = store.blobs.read_index();
        for slot in index.packs.iter().flatten() {
            s.packs += 1;
            s.pack_bytes += slot.bytes;
        }
        for loc in index.map.values() {
            if loc.kind == BlobKind::Page {
                s.pages += 1;
                continue;
            }
            s.chunks += 1;
            s.stored_bytes += u64::from(loc.len);
            s.raw_bytes += u64::from(loc.raw_len);
        }
    }
    let versions = store.all_versions()?;
    s.images = meta::list_images(&store.root)?.len() as u64;
    s.snapshots = versions.iter().filter(|v| v.snap.is_some()).count() as u64;
    let mut memo = HashMap::new();
    for v in &versions {
        let n = allocated(store, &mut memo, v.root, v.levels(store.chunk_size) - 1)?;
        s.logical_bytes += n * store.chunk_size;
    }
    s.dedup_ratio = ratio(s.logical_bytes, s.raw_bytes);
    s.compression_ratio = ratio(s.raw_bytes, s.stored_bytes);
    Ok(s)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        return 1.0;
    }
    a as f64 / b as f64
}

/// Non-hole chunks under page `node`, memoised per page.
fn allocated(
    store: &Store,
    memo: &mut HashMap<ChunkId, u64>,
    node: ChunkId,
    level: u32,
) -> Result<u64> {
    if node.is_null() {
        return Ok(0);
    }
    if let Some(n) = memo.get(&node) {
        return Ok(*n);
    }
    let page = store.load(&node)?;
    let mut n = 0;
    for child in page.iter().copied() {
        n += if level == 0 {
            u64::from(!child.is_null())
        } else {
            allocated(store, memo, child, level - 1)?
        };
    }
    memo.insert(node, n);
    Ok(n)
}
