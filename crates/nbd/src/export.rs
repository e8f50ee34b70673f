//! An export: a named image served to clients, with its counters, and its
//! allocation map as `base:allocation` describes it.

use crate::proto::{STATE_HOLE, STATE_ZERO};
use blockback_core::image::{ExtentKind, Image, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Most descriptors one block-status reply carries; clients ask again
/// from where it stops.
const MAX_DESCRIPTORS: usize = 8192;

/// A named image and how it is served.
pub struct Export {
    name: String,
    description: String,
    image: Arc<dyn Image>,
    size: u64,
    writable: bool,
    closed: AtomicBool,
    pub(crate) stats: Stats,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub connections: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub errors: AtomicU64,
}

/// What [`crate::Server::exports`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    pub name: String,
    pub description: String,
    pub size: u64,
    pub writable: bool,
    /// Clients connected now.
    pub connections: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Requests answered with an error.
    pub errors: u64,
}

impl Export {
    /// An export of `image` under `name`; writes are refused unless
    /// `writable` (the image itself decides where they go).
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        image: Arc<dyn Image>,
        writable: bool,
    ) -> Result<Export> {
        let size = image.size()?;
        Ok(Export {
            name: name.into(),
            description: description.into(),
            image,
            size,
            writable,
            closed: AtomicBool::new(false),
            stats: Stats::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn writable(&self) -> bool {
        self.writable
    }

    pub fn image(&self) -> &Arc<dyn Image> {
        &self.image
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn info(&self) -> ExportInfo {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ExportInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            size: self.size,
            writable: self.writable,
            connections: get(&self.stats.connections),
            bytes_read: get(&self.stats.bytes_read),
            bytes_written: get(&self.stats.bytes_written),
            errors: get(&self.stats.errors),
        }
    }
}

/// The `base:allocation` descriptors `(length, state)` of
/// `offset..offset+len` of `image`: what it reports allocated is data
/// (state 0), extents it reports as zeros are `ZERO`, the rest are holes
/// (`HOLE|ZERO`). Adjacent descriptors of one state are merged; `one`
/// returns only the first. Never empty for a non-empty range.
pub fn allocation(image: &dyn Image, offset: u64, len: u32, one: bool) -> Result<Vec<(u32, u32)>> {
    let end = offset + u64::from(len);
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut at = offset;
    let push = |out: &mut Vec<(u32, u32)>, length: u64, state: u32| {
        if length == 0 {
            return;
        }
        // Lengths fit: the whole range is at most u32::MAX.
        let length = length as u32;
        match out.last_mut() {
            Some((l, s)) if *s == state => *l += length,
            _ => out.push((length, state)),
        }
    };
    let full = |out: &Vec<(u32, u32)>| out.len() >= MAX_DESCRIPTORS || (one && out.len() > 1);
    let stop = || blockback_core::image::ImageError::Invalid {
        what: "allocation map".into(),
        why: "enough descriptors".into(),
    };
    let walked = image.changed_extents(None, offset..end, &mut |e| {
        let start = e.offset.max(at);
        let stop_at = e.end().min(end);
        if stop_at <= start {
            return Ok(());
        }
        push(&mut out, start - at, STATE_HOLE | STATE_ZERO);
        let state = match e.kind {
            ExtentKind::Data => 0,
            ExtentKind::Zero => STATE_ZERO,
        };
        push(&mut out, stop_at - start, state);
        at = stop_at;
        if full(&out) {
            return Err(stop());
        }
        Ok(())
    });
    let truncated = match walked {
        Ok(()) => false,
        Err(_) if full(&out) => true,
        Err(e) => return Err(e),
    };
    if !truncated {
        push(&mut out, end - at, STATE_HOLE | STATE_ZERO);
    }
    if one {
        out.truncate(1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use blockback_core::image::{Extent, ExtentVisitor, Snapshots};
    use proptest::prelude::*;
    use std::ops::Range;

    /// An image that reports the given extents (sorted, disjoint).
    #[derive(Debug)]
    struct Mapped {
        size: u64,
        extents: Vec<Extent>,
    }

    impl Image for Mapped {
        fn describe(&self) -> String {
            "mapped".into()
        }
        fn size(&self) -> Result<u64> {
            Ok(self.size)
        }
        fn read_at(&self, _: u64, buf: &mut [u8]) -> Result<()> {
            buf.fill(0);
            Ok(())
        }
        fn changed_extents(
            &self,
            _: Option<&str>,
            range: Range<u64>,
            visit: &mut ExtentVisitor<'_>,
        ) -> Result<()> {
            for e in &self.extents {
                if e.end() > range.start && e.offset < range.end {
                    visit(*e)?;
                }
            }
            Ok(())
        }
        fn write_at(&self, _: u64, _: &[u8]) -> Result<()> {
            unreachable!()
        }
        fn write_zeroes(&self, _: u64, _: u64) -> Result<()> {
            unreachable!()
        }
        fn flush(&self) -> Result<()> {
            Ok(())
        }
        fn resize(&self, _: u64) -> Result<()> {
            unreachable!()
        }
        fn snapshots(&self) -> Option<&dyn Snapshots> {
            None
        }
    }

    fn mapped() -> impl Strategy<Value = Mapped> {
        proptest::collection::vec((1u64..5000, 1u64..5000, any::<bool>()), 0..20).prop_map(|gaps| {
            let mut at = 0;
            let mut extents = Vec::new();
            for (gap, len, zero) in gaps {
                at += gap;
                let kind = if zero {
                    ExtentKind::Zero
                } else {
                    ExtentKind::Data
                };
                extents.push(Extent {
                    offset: at,
                    len,
                    kind,
                });
                at += len;
            }
            Mapped {
                size: at + 1000,
                extents,
            }
        })
    }

    fn state_at(m: &Mapped, pos: u64) -> u32 {
        match m.extents.iter().find(|e| e.offset <= pos && pos < e.end()) {
            Some(e) if e.kind == ExtentKind::Data => 0,
            Some(_) => STATE_ZERO,
            None => STATE_HOLE | STATE_ZERO,
        }
    }

    proptest! {
        /// The descriptors cover the range exactly, say at every byte what
        /// the image's extents say, and never repeat a state.
        #[test]
        fn descriptors_cover_the_range_as_the_image_says(m in mapped(), a in 0.0f64..1.0, b in 0.0f64..1.0) {
            let start = (a * m.size as f64) as u64;
            let len = ((b * (m.size - start) as f64) as u64).max(1) as u32;
            let d = allocation(&m, start, len, false).unwrap();
            prop_assert_eq!(d.iter().map(|(l, _)| u64::from(*l)).sum::<u64>(), u64::from(len));
            prop_assert!(d.windows(2).all(|w| w[0].1 != w[1].1));
            let mut at = start;
            for (l, s) in &d {
                prop_assert!(*l > 0);
                for probe in [at, at + u64::from(*l) - 1, at + u64::from(*l) / 2] {
                    prop_assert_eq!(state_at(&m, probe), *s, "at {}", probe);
                }
                at += u64::from(*l);
            }
            let one = allocation(&m, start, len, true).unwrap();
            prop_assert_eq!(one.len(), 1);
            prop_assert_eq!(one[0], d[0]);
        }
    }
}
