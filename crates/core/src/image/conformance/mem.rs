//! Tests of the suite itself: an in-memory image with snapshots passes it,
//! and the same image with one deliberate flaw fails the check for it.

use super::{run_selected, ImageFactory};
use crate::image::{
    check_range, Extent, ExtentVisitor, Image, ImageError, ImageMetadata, Result, SnapshotInfo,
    Snapshots,
};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Granularity of the in-memory extent map.
const BLOCK: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Flaw {
    None,
    /// write_zeroes leaves the last byte of the range alone.
    ZeroesSkipLastByte,
    /// changed_extents drops the last extent.
    ExtentsDropLast,
    /// Snapshot handles read HEAD.
    SnapshotReadsHead,
    /// Setting a metadata key keeps the first value.
    MetadataKeepsFirst,
}

#[derive(Default)]
struct State {
    head: Vec<u8>,
    snaps: Vec<(SnapshotInfo, Vec<u8>)>,
    meta: BTreeMap<String, String>,
}

struct MemImage {
    name: String,
    state: Arc<Mutex<State>>,
    at: Option<String>,
    flaw: Flaw,
}

impl MemImage {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn not_found(&self, snap: &str) -> ImageError {
        ImageError::NotFound {
            what: format!("{}@{snap}", self.name),
        }
    }

    /// The contents at snapshot `snap` (HEAD for None).
    fn data_at<'s>(&self, st: &'s State, snap: Option<&str>) -> Result<&'s Vec<u8>> {
        let Some(name) = snap else {
            return Ok(&st.head);
        };
        let found = st.snaps.iter().find(|(i, _)| i.name == name);
        found.map(|(_, d)| d).ok_or_else(|| self.not_found(name))
    }

    /// The contents this handle reads.
    fn mine<'s>(&self, st: &'s State) -> Result<&'s Vec<u8>> {
        match self.flaw {
            Flaw::SnapshotReadsHead => Ok(&st.head),
            _ => self.data_at(st, self.at.as_deref()),
        }
    }

    fn writable(&self) -> Result<()> {
        match self.at {
            None => Ok(()),
            Some(_) => Err(ImageError::ReadOnly {
                what: self.describe(),
            }),
        }
    }
}

/// Block-granular differences of `new` against `old` within `range`.
fn diff(old: &[u8], new: &[u8], range: Range<u64>) -> Vec<Extent> {
    let mut out: Vec<Extent> = Vec::new();
    let mut pos = range.start;
    while pos < range.end {
        let end = ((pos / BLOCK + 1) * BLOCK).min(range.end);
        let (a, b) = (pos as usize, end as usize);
        let old_part = |i: usize| old.get(i).copied().unwrap_or(0);
        let changed = match old.get(a..b) {
            Some(o) => o != &new[a..b],
            None => (a..b).any(|i| old_part(i) != new[i]),
        };
        if changed {
            let zero = new[a..b].iter().all(|x| *x == 0);
            let e = if zero {
                Extent::zero(pos, end - pos)
            } else {
                Extent::data(pos, end - pos)
            };
            match out.last_mut() {
                Some(l) if l.end() == pos && l.kind == e.kind => l.len += e.len,
                _ => out.push(e),
            }
        }
        pos = end;
    }
    out
}

impl Image for MemImage {
    fn describe(&self) -> String {
        match &self.at {
            None => self.name.clone(),
            Some(s) => format!("{}@{s}", self.name),
        }
    }

    fn size(&self) -> Result<u64> {
        Ok(self.mine(&self.lock())?.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let st = self.lock();
        let data = self.mine(&st)?;
        check_range(
            &|| self.describe(),
            offset,
            buf.len() as u64,
            data.len() as u64,
        )?;
        buf.copy_from_slice(&data[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }

    fn changed_extents(
        &self,
        from: Option<&str>,
        range: Range<u64>,
        visit: &mut ExtentVisitor<'_>,
    ) -> Result<()> {
        let st = self.lock();
        let old = from.map(|f| self.data_at(&st, Some(f))).transpose()?;
        let (old, new) = (old.map_or(&[][..], |o| &o[..]), self.mine(&st)?);
        let end = range.end.min(new.len() as u64);
        let mut list = diff(old, new, range.start..end.max(range.start));
        drop(st);
        if self.flaw == Flaw::ExtentsDropLast {
            list.pop();
        }
        list.into_iter().try_for_each(visit)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.writable()?;
        let mut st = self.lock();
        check_range(
            &|| self.describe(),
            offset,
            data.len() as u64,
            st.head.len() as u64,
        )?;
        st.head[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.writable()?;
        let mut st = self.lock();
        check_range(&|| self.describe(), offset, len, st.head.len() as u64)?;
        let skip = u64::from(self.flaw == Flaw::ZeroesSkipLastByte).min(len);
        st.head[offset as usize..(offset + len - skip) as usize].fill(0);
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn resize(&self, size: u64) -> Result<()> {
        self.writable()?;
        self.lock().head.resize(size as usize, 0);
        Ok(())
    }

    fn snapshots(&self) -> Option<&dyn Snapshots> {
        Some(self)
    }

    fn metadata(&self) -> Option<&dyn ImageMetadata> {
        Some(self)
    }
}

impl Snapshots for MemImage {
    fn list(&self) -> Result<Vec<SnapshotInfo>> {
        Ok(self.lock().snaps.iter().map(|(i, _)| i.clone()).collect())
    }

    fn create(&self, name: &str) -> Result<()> {
        let mut st = self.lock();
        if st.snaps.iter().any(|(i, _)| i.name == name) {
            return Err(ImageError::Exists { what: name.into() });
        }
        let info = SnapshotInfo {
            name: name.into(),
            size: st.head.len() as u64,
            timestamp: SystemTime::now(),
        };
        let data = st.head.clone();
        st.snaps.push((info, data));
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<()> {
        let mut st = self.lock();
        let before = st.snaps.len();
        st.snaps.retain(|(i, _)| i.name != name);
        match st.snaps.len() < before {
            true => Ok(()),
            false => Err(self.not_found(name)),
        }
    }

    fn open_snapshot(&self, name: &str) -> Result<Box<dyn Image>> {
        self.data_at(&self.lock(), Some(name))?;
        Ok(Box::new(MemImage {
            name: self.name.clone(),
            state: self.state.clone(),
            at: Some(name.into()),
            flaw: self.flaw,
        }))
    }

    fn rollback(&self, name: &str) -> Result<()> {
        let mut st = self.lock();
        st.head = self.data_at(&st, Some(name))?.clone();
        Ok(())
    }
}

impl ImageMetadata for MemImage {
    fn get(&self, key: &str) -> Result<Option<String>> {
        Ok(self.lock().meta.get(key).cloned())
    }

    fn set(&self, key: &str, value: &str) -> Result<()> {
        self.writable()?;
        let mut st = self.lock();
        if self.flaw == Flaw::MetadataKeepsFirst && st.meta.contains_key(key) {
            return Ok(());
        }
        st.meta.insert(key.into(), value.into());
        Ok(())
    }
}

struct MemFactory(Flaw);

impl ImageFactory for MemFactory {
    fn create(&self, size: u64) -> Box<dyn Image> {
        let state = State {
            head: vec![0; size as usize],
            ..State::default()
        };
        Box::new(MemImage {
            name: "mem".into(),
            state: Arc::new(Mutex::new(state)),
            at: None,
            flaw: self.0,
        })
    }

    fn has_snapshots(&self) -> bool {
        true
    }

    fn has_metadata(&self) -> bool {
        true
    }
}

/// The failures of the checks named `names`, run against a flawed image.
fn failed_checks(flaw: Flaw, names: &[&str]) -> Vec<String> {
    run_selected(&MemFactory(flaw), &|n| names.contains(&n))
}

#[test]
fn correct_backend_passes() {
    super::run_image_suite(&MemFactory(Flaw::None));
}

#[test]
fn unzeroed_byte_is_caught() {
    let failed = failed_checks(Flaw::ZeroesSkipLastByte, &["write_zeroes_exact"]);
    assert!(
        failed.iter().any(|f| f.contains("write_zeroes_exact")),
        "{failed:?}"
    );
}

#[test]
fn missed_extent_is_caught() {
    let failed = failed_checks(
        Flaw::ExtentsDropLast,
        &["extents_cover_all_data", "extents_since_snapshot"],
    );
    assert!(
        failed.iter().any(|f| f.contains("extents_cover_all_data")),
        "{failed:?}"
    );
    assert!(
        failed.iter().any(|f| f.contains("extents_since_snapshot")),
        "{failed:?}"
    );
}

#[test]
fn snapshot_following_head_is_caught() {
    let failed = failed_checks(Flaw::SnapshotReadsHead, &["snapshot_read_only_frozen"]);
    assert!(
        failed
            .iter()
            .any(|f| f.contains("snapshot_read_only_frozen")),
        "{failed:?}"
    );
}

#[test]
fn lost_metadata_update_is_caught() {
    let failed = failed_checks(Flaw::MetadataKeepsFirst, &["metadata_set_get"]);
    assert!(
        failed.iter().any(|f| f.contains("metadata_set_get")),
        "{failed:?}"
    );
}

#[test]
fn failure_message_names_check_and_image() {
    let res =
        std::panic::catch_unwind(|| super::run_image_suite(&MemFactory(Flaw::ZeroesSkipLastByte)));
    let payload = res.expect_err("a flawed backend passed the suite");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(msg.contains("write_zeroes_exact: mem"), "{msg}");
}
