//! What a transfer must do: which extents of the volume to copy or zero.

pub use crate::image::any_extent;
use crate::image::{Extent, ExtentKind, Image, Result};

/// Work unit of a transfer: reads and writes of at most this many bytes,
/// aligned so that no store chunk or checksum block straddles two units.
pub const SEGMENT: u64 = 4 * 1024 * 1024;

/// The extents of a transfer, ascending and non-overlapping.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferPlan {
    pub size: u64,
    pub extents: Vec<Extent>,
    /// Whether `extents` cover the whole volume (a full transfer), which
    /// is what makes a volume checksum computable on the way.
    pub covers_volume: bool,
}

impl TransferPlan {
    /// A full transfer: the source's allocated extents, gaps as zeros.
    pub fn full(source: &dyn Image) -> Result<Self> {
        let size = source.size()?;
        let mut allocated = Vec::new();
        source.changed_extents(None, 0..size, &mut |e| {
            allocated.push(e);
            Ok(())
        })?;
        Ok(TransferPlan {
            size,
            extents: fill_gaps(&allocated, size),
            covers_volume: true,
        })
    }

    /// Bytes the plan reads from the source.
    pub fn data_bytes(&self) -> u64 {
        self.extents
            .iter()
            .filter(|e| e.kind == ExtentKind::Data)
            .map(|e| e.len)
            .sum()
    }

    /// The plan cut into segments, made as they are asked for (a TiB plan
    /// is 262144 of them): each segment lists the extents (clipped) that
    /// fall into it. Segments with no extents are left out.
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            extents: self.extents.iter(),
            rest: None,
        }
    }
}

/// The segments of a plan, in order; see [`TransferPlan::segments`].
pub struct Segments<'p> {
    extents: std::slice::Iter<'p, Extent>,
    /// What is left of the extent being cut.
    rest: Option<Extent>,
}

impl Iterator for Segments<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        let mut segment: Option<Segment> = None;
        loop {
            let extent = match self.rest.take().or_else(|| self.extents.next().copied()) {
                Some(e) if e.len == 0 => continue,
                Some(e) => e,
                None => return segment,
            };
            let seg_start = extent.offset - extent.offset % SEGMENT;
            let piece_end = extent.end().min(seg_start + SEGMENT);
            let piece = Extent {
                offset: extent.offset,
                len: piece_end - extent.offset,
                kind: extent.kind,
            };
            match &mut segment {
                Some(s) if s.offset == seg_start => s.parts.push(piece),
                Some(_) => {
                    self.rest = Some(extent);
                    return segment;
                }
                None => {
                    segment = Some(Segment {
                        offset: seg_start,
                        parts: vec![piece],
                    })
                }
            }
            if piece_end < extent.end() {
                // The rest starts the next segment: this one is complete.
                self.rest = Some(Extent {
                    offset: piece_end,
                    len: extent.end() - piece_end,
                    kind: extent.kind,
                });
                return segment;
            }
        }
    }
}

/// One aligned unit of work and the extents inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub offset: u64,
    pub parts: Vec<Extent>,
}

impl Segment {
    /// From the segment start to the end of its last part.
    pub fn span(&self) -> u64 {
        self.parts.last().map_or(0, |p| p.end() - self.offset)
    }
}

/// Sorts and merges `data` extents and fills the gaps up to `size` with zeros.
pub fn fill_gaps(data: &[Extent], size: u64) -> Vec<Extent> {
    let mut out = Vec::with_capacity(data.len() * 2 + 1);
    let mut pos = 0;
    for e in data
        .iter()
        .filter(|e| e.kind == ExtentKind::Data && e.len > 0)
    {
        let start = e.offset.max(pos).min(size);
        let end = e.end().min(size);
        if start >= end {
            continue;
        }
        if start > pos {
            out.push(Extent::zero(pos, start - pos));
        }
        match out.last_mut() {
            Some(last) if last.kind == ExtentKind::Data && last.end() == start => {
                last.len += end - start
            }
            _ => out.push(Extent::data(start, end - start)),
        }
        pos = end;
    }
    if pos < size {
        out.push(Extent::zero(pos, size - pos));
    }
    out
}

/// `extents` (ascending, non-overlapping) with `data` laid over them:
/// whatever `data` covers becomes one data extent.
pub fn overlay_data(extents: Vec<Extent>, data: Extent) -> Vec<Extent> {
    let mut out = Vec::with_capacity(extents.len() + 2);
    for e in extents {
        if e.end() <= data.offset || e.offset >= data.end() {
            out.push(e);
            continue;
        }
        if e.offset < data.offset {
            out.push(Extent {
                len: data.offset - e.offset,
                ..e
            });
        }
        if e.end() > data.end() {
            out.push(Extent {
                offset: data.end(),
                len: e.end() - data.end(),
                kind: e.kind,
            });
        }
    }
    out.push(data);
    out.sort_by_key(|e| e.offset);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn overlaid_data_replaces_what_it_covers() {
        let extents = vec![
            Extent::zero(0, 10),
            Extent::data(20, 10),
            Extent::zero(40, 5),
        ];
        assert_eq!(
            overlay_data(extents, Extent::data(5, 20)),
            vec![
                Extent::zero(0, 5),
                Extent::data(5, 20),
                Extent::data(25, 5),
                Extent::zero(40, 5)
            ]
        );
    }

    use super::*;

    #[test]
    fn gaps_become_zero_extents_covering_the_volume() {
        let data = [
            Extent::data(10, 5),
            Extent::data(15, 5),
            Extent::data(30, 100),
        ];
        let plan = fill_gaps(&data, 50);
        assert_eq!(
            plan,
            vec![
                Extent::zero(0, 10),
                Extent::data(10, 10),
                Extent::zero(20, 10),
                Extent::data(30, 20)
            ]
        );
    }

    #[test]
    fn segments_split_at_segment_boundaries() {
        let plan = TransferPlan {
            size: 3 * SEGMENT,
            extents: vec![
                Extent::data(SEGMENT - 10, 20),
                Extent::zero(SEGMENT + 10, 2 * SEGMENT - 10),
            ],
            covers_volume: false,
        };
        let segs: Vec<Segment> = plan.segments().collect();
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[0].parts, vec![Extent::data(SEGMENT - 10, 10)]);
        assert_eq!(
            segs[1].parts,
            vec![
                Extent::data(SEGMENT, 10),
                Extent::zero(SEGMENT + 10, SEGMENT - 10)
            ]
        );
        assert_eq!(segs[2].span(), SEGMENT);
    }

    /// Cut all at once, as segments were before they were made lazily.
    fn eager_segments(extents: &[Extent]) -> Vec<Segment> {
        let mut segments: Vec<Segment> = Vec::new();
        for extent in extents {
            let mut offset = extent.offset;
            while offset < extent.end() {
                let seg_start = offset - offset % SEGMENT;
                let piece_end = extent.end().min(seg_start + SEGMENT);
                let piece = Extent {
                    offset,
                    len: piece_end - offset,
                    kind: extent.kind,
                };
                match segments.last_mut() {
                    Some(s) if s.offset == seg_start => s.parts.push(piece),
                    _ => segments.push(Segment {
                        offset: seg_start,
                        parts: vec![piece],
                    }),
                }
                offset = piece_end;
            }
        }
        segments
    }

    proptest::proptest! {
        #[test]
        fn lazy_segments_equal_the_eager_cut(
            pieces in proptest::collection::vec((0u64..3 * SEGMENT, 0u64..3 * SEGMENT, proptest::bool::ANY), 0..12)
        ) {
            let mut extents = Vec::new();
            let mut at = 0;
            for (gap, len, data) in pieces {
                at += gap;
                extents.push(match data {
                    true => Extent::data(at, len),
                    false => Extent::zero(at, len),
                });
                at += len;
            }
            let plan = TransferPlan { size: at, extents: extents.clone(), covers_volume: false };
            let lazy: Vec<Segment> = plan.segments().collect();
            proptest::prop_assert_eq!(lazy, eager_segments(&extents));
        }
    }
}
