//! Puts the block digests of a transfer back in volume order as segments
//! finish, so a whole volume's digests never sit in memory at once.
//!
//! Workers claim segments in order, so at most about one segment per worker
//! waits here for an earlier one.

use super::copy::DigestSink;
use crate::checksum::VolumeChecksum;
use crate::image::Result;
use std::collections::BTreeMap;

pub(super) type Digests = Vec<(u64, [u8; 32])>;

pub(super) struct Collector<'s> {
    next: usize,
    waiting: BTreeMap<usize, Digests>,
    /// The volume checksum, for a plan that covers the volume.
    checksum: Option<VolumeChecksum>,
    /// Everything, for a plan that does not (incremental: the changes only).
    kept: Option<Digests>,
    sink: Option<&'s mut DigestSink<'s>>,
}

impl<'s> Collector<'s> {
    pub fn new(covers: Option<u64>, sink: Option<&'s mut DigestSink<'s>>) -> Self {
        Collector {
            next: 0,
            waiting: BTreeMap::new(),
            checksum: covers.map(VolumeChecksum::new),
            kept: covers.is_none().then(Vec::new),
            sink,
        }
    }

    /// Takes the digests of segment number `index` (in plan order).
    pub fn add(&mut self, index: usize, digests: Digests) -> Result<()> {
        self.waiting.insert(index, digests);
        while let Some(ready) = self.waiting.remove(&self.next) {
            self.emit(ready)?;
            self.next += 1;
        }
        Ok(())
    }

    fn emit(&mut self, digests: Digests) -> Result<()> {
        if let Some(sum) = &mut self.checksum {
            digests.iter().for_each(|(_, d)| sum.push(d));
        }
        if let Some(sink) = &mut self.sink {
            sink(&digests)?;
        }
        if let Some(kept) = &mut self.kept {
            kept.extend(digests);
        }
        Ok(())
    }

    /// The checksum (plans covering the volume) and the kept digests.
    pub fn finish(self) -> (Option<String>, Digests) {
        (
            self.checksum.and_then(VolumeChecksum::finish),
            self.kept.unwrap_or_default(),
        )
    }
}
