//! An in-memory [`Image`] with snapshots, for tests of the stream operations.

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::image::{
    check_range, Extent, ExtentVisitor, Image, ImageError, Result, SnapshotInfo, Snapshots,
};

const BLOCK: u64 = 4096;
/// Larger sizes (from corrupted streams) fail instead of exhausting memory.
const MAX_SIZE: u64 = 256 << 20;

#[derive(Default)]
struct State {
    head: Vec<u8>,
    snaps: Vec<(String, Vec<u8>)>,
    writes: u64,
}

/// HEAD (`at == None`, writable) or a snapshot of a shared in-memory image.
#[derive(Clone)]
pub struct MemImage {
    state: Arc<Mutex<State>>,
    at: Option<String>,
    snapshots: bool,
    /// Report every block of the range as changed (the trait allows it).
    pub over_report: bool,
}

impl MemImage {
    pub fn new(size: usize) -> Self {
        let state = State {
            head: vec![0; size],
            ..State::default()
        };
        MemImage {
            state: Arc::new(Mutex::new(state)),
            at: None,
            snapshots: true,
            over_report: false,
        }
    }

    pub fn with_data(data: Vec<u8>) -> Self {
        let img = Self::new(0);
        img.lock().head = data;
        img
    }

    /// An image like a raw file: no snapshot support.
    pub fn without_snapshots(mut self) -> Self {
        self.snapshots = false;
        self
    }

    pub fn contents(&self) -> Vec<u8> {
        self.bytes(&self.lock()).clone()
    }

    pub fn snapshot_contents(&self, name: &str) -> Option<Vec<u8>> {
        let st = self.lock();
        st.snaps.iter().find(|s| s.0 == name).map(|s| s.1.clone())
    }

    pub fn snapshot_names(&self) -> Vec<String> {
        self.lock().snaps.iter().map(|s| s.0.clone()).collect()
    }

    /// Number of write/zero/resize calls so far (to see that nothing was written).
    pub fn write_count(&self) -> u64 {
        self.lock().writes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a test thread panicked; the test fails anyway.
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn bytes<'a>(&self, st: &'a State) -> &'a Vec<u8> {
        match &self.at {
            None => &st.head,
            Some(n) => {
                &st.snaps
                    .iter()
                    .find(|s| &s.0 == n)
                    .expect("open snapshot")
                    .1
            }
        }
    }

    fn writable(&self) -> Result<()> {
        match &self.at {
            None => Ok(()),
            Some(_) => Err(ImageError::ReadOnly {
                what: self.describe(),
            }),
        }
    }

    fn snap_bytes(&self, st: &State, name: &str) -> Result<Vec<u8>> {
        st.snaps
            .iter()
            .find(|s| s.0 == name)
            .map(|s| s.1.clone())
            .ok_or_else(|| ImageError::NotFound {
                what: format!("snapshot {name}"),
            })
    }
}

fn block_extents(from: &[u8], to: &[u8], range: Range<u64>, all: bool) -> Vec<Extent> {
    let mut out: Vec<Extent> = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let end = range.end.min((at / BLOCK + 1) * BLOCK);
        let cur = &to[at as usize..end as usize];
        let old = from.get(at as usize..end as usize);
        if all || old != Some(cur) {
            let e = if cur.iter().all(|b| *b == 0) {
                Extent::zero(at, end - at)
            } else {
                Extent::data(at, end - at)
            };
            match out.last_mut() {
                Some(l) if l.kind == e.kind && l.end() == e.offset => l.len += e.len,
                _ => out.push(e),
            }
        }
        at = end;
    }
    out
}

impl Image for MemImage {
    fn describe(&self) -> String {
        match &self.at {
            None => "mem".into(),
            Some(s) => format!("mem@{s}"),
        }
    }

    fn size(&self) -> Result<u64> {
        Ok(self.bytes(&self.lock()).len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let st = self.lock();
        let b = self.bytes(&st);
        check_range(
            &|| self.describe(),
            offset,
            buf.len() as u64,
            b.len() as u64,
        )?;
        buf.copy_from_slice(&b[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }

    fn changed_extents(
        &self,
        from_snap: Option<&str>,
        range: Range<u64>,
        visit: &mut ExtentVisitor<'_>,
    ) -> Result<()> {
        let extents = {
            let st = self.lock();
            let to = self.bytes(&st);
            check_range(
                &|| self.describe(),
                range.start,
                range.end - range.start,
                to.len() as u64,
            )?;
            let from = match from_snap {
                Some(n) => self.snap_bytes(&st, n)?,
                None => vec![0; to.len()],
            };
            block_extents(&from, to, range, self.over_report)
        };
        extents.into_iter().try_for_each(visit)
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
        st.writes += 1;
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.writable()?;
        let mut st = self.lock();
        check_range(&|| self.describe(), offset, len, st.head.len() as u64)?;
        st.head[offset as usize..(offset + len) as usize].fill(0);
        st.writes += 1;
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn resize(&self, size: u64) -> Result<()> {
        self.writable()?;
        if size > MAX_SIZE {
            return Err(ImageError::Invalid {
                what: self.describe(),
                why: format!("test images stay below {MAX_SIZE} bytes"),
            });
        }
        let mut st = self.lock();
        st.head.resize(size as usize, 0);
        st.writes += 1;
        Ok(())
    }

    fn snapshots(&self) -> Option<&dyn Snapshots> {
        match self.snapshots && self.at.is_none() {
            true => Some(self),
            false => None,
        }
    }
}

impl Snapshots for MemImage {
    fn list(&self) -> Result<Vec<SnapshotInfo>> {
        let st = self.lock();
        let info = |s: &(String, Vec<u8>)| SnapshotInfo {
            name: s.0.clone(),
            size: s.1.len() as u64,
            timestamp: SystemTime::UNIX_EPOCH,
        };
        Ok(st.snaps.iter().map(info).collect())
    }

    fn create(&self, name: &str) -> Result<()> {
        let mut st = self.lock();
        if st.snaps.iter().any(|s| s.0 == name) {
            return Err(ImageError::Exists {
                what: format!("snapshot {name}"),
            });
        }
        let head = st.head.clone();
        st.snaps.push((name.to_string(), head));
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<()> {
        let mut st = self.lock();
        self.snap_bytes(&st, name)?;
        st.snaps.retain(|s| s.0 != name);
        Ok(())
    }

    fn open_snapshot(&self, name: &str) -> Result<Box<dyn Image>> {
        self.snap_bytes(&self.lock(), name)?;
        let mut img = self.clone();
        img.at = Some(name.to_string());
        Ok(Box::new(img))
    }

    fn rollback(&self, name: &str) -> Result<()> {
        let mut st = self.lock();
        st.head = self.snap_bytes(&st, name)?;
        st.writes += 1;
        Ok(())
    }
}
