//! Puts the block digests of a transfer back in volume order as segments
//! finish, so a whole volume's digests never sit in memory at once.
//!
//! Workers claim segments in order, but a segment finished after a slow
//! earlier one waits here until that one is in. Holes cost nothing to
//! copy, so in a thin volume thousands of them can finish behind one slow
//! read: a segment of whole zero blocks waits as its first offset and
//! block count (16 bytes instead of 40 per block; a TiB of holes once
//! held 270 MiB here) and gets its digests back when emitted.

use super::copy::DigestSink;
use crate::checksum::{zero_block_digest, VolumeChecksum, CHECKSUM_BLOCK};
use crate::image::Result;
use std::collections::BTreeMap;

pub(super) type Digests = Vec<(u64, [u8; 32])>;

/// A finished segment's digests while they wait for an earlier segment.
enum Waiting {
    Listed(Digests),
    /// `count` whole zero blocks from `first`.
    Zeros {
        first: u64,
        count: u64,
    },
}

impl Waiting {
    fn of(digests: Digests) -> Self {
        let zero = zero_block_digest(CHECKSUM_BLOCK);
        let first = digests.first().map_or(0, |d| d.0);
        let zeros = digests
            .iter()
            .enumerate()
            .all(|(i, d)| d.1 == zero && d.0 == first + i as u64 * CHECKSUM_BLOCK);
        match zeros && !digests.is_empty() {
            true => Waiting::Zeros {
                first,
                count: digests.len() as u64,
            },
            false => Waiting::Listed(digests),
        }
    }

    fn into_digests(self) -> Digests {
        match self {
            Waiting::Listed(d) => d,
            Waiting::Zeros { first, count } => {
                let zero = zero_block_digest(CHECKSUM_BLOCK);
                (0..count)
                    .map(|i| (first + i * CHECKSUM_BLOCK, zero))
                    .collect()
            }
        }
    }
}

pub(super) struct Collector<'s> {
    next: usize,
    waiting: BTreeMap<usize, Waiting>,
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
        if index != self.next {
            self.waiting.insert(index, Waiting::of(digests));
            return Ok(());
        }
        self.emit(digests)?;
        self.next += 1;
        while let Some(ready) = self.waiting.remove(&self.next) {
            self.emit(ready.into_digests())?;
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

    /// Blocks whose digests wait as a list (not as a run of zeros).
    #[cfg(test)]
    fn listed(&self) -> usize {
        self.waiting
            .values()
            .map(|w| match w {
                Waiting::Listed(d) => d.len(),
                Waiting::Zeros { .. } => 0,
            })
            .sum()
    }

    /// The checksum (plans covering the volume) and the kept digests.
    pub fn finish(self) -> (Option<String>, Digests) {
        (
            self.checksum.and_then(VolumeChecksum::finish),
            self.kept.unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::block_digest;

    const B: u64 = CHECKSUM_BLOCK;

    fn segment(first: u64, blocks: u64, data_at: Option<u64>) -> Digests {
        (0..blocks)
            .map(|i| {
                let offset = first + i * B;
                match data_at == Some(offset) {
                    true => (offset, block_digest(b"data")),
                    false => (offset, zero_block_digest(B)),
                }
            })
            .collect()
    }

    #[test]
    fn holes_waiting_behind_a_slow_segment_keep_no_digest_lists() {
        let per = 128;
        let count = 1000;
        let size = count * per * B;
        let mut c = Collector::new(Some(size), None);
        for index in (1..count).rev() {
            let data = (index == 500).then_some(index * per * B + 7 * B);
            c.add(index as usize, segment(index * per * B, per, data))
                .unwrap();
        }
        assert_eq!(c.listed(), per as usize, "only the segment with data");
        c.add(0, segment(0, per, Some(3 * B))).unwrap();
        assert_eq!(c.waiting.len(), 0);
        let mut expected = VolumeChecksum::new(size);
        for index in 0..count {
            let data = match index {
                0 => Some(3 * B),
                500 => Some(index * per * B + 7 * B),
                _ => None,
            };
            segment(index * per * B, per, data)
                .iter()
                .for_each(|(_, d)| expected.push(d));
        }
        assert_eq!(c.finish().0, expected.finish());
    }

    #[test]
    fn a_partial_last_block_waits_as_a_list() {
        let mut digests = segment(0, 2, None);
        digests.push((2 * B, zero_block_digest(100)));
        assert!(matches!(Waiting::of(digests.clone()), Waiting::Listed(_)));
        assert_eq!(Waiting::of(digests.clone()).into_digests(), digests);
        let zeros = segment(4 * B, 3, None);
        assert!(matches!(Waiting::of(zeros.clone()), Waiting::Zeros { .. }));
        assert_eq!(Waiting::of(zeros.clone()).into_digests(), zeros);
        assert!(matches!(Waiting::of(Vec::new()), Waiting::Listed(_)));
    }
}
