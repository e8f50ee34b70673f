//! Finds zero runs inside data at [`ZERO_BLOCK`] granularity, so that zeros
//! travel as `z` records (cheap to send, written as write_zeroes).

use std::ops::Range;

use super::format::ZERO_BLOCK;
use crate::zero::is_zero;

/// A maximal run of pieces of one kind; `range` indexes the data slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub zero: bool,
    pub range: Range<usize>,
}

/// Splits `data`, which sits at image `offset`, into alternating data and
/// zero runs. Pieces are cut at absolute block boundaries so that runs line
/// up with the image's blocks.
pub fn runs(offset: u64, data: &[u8]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut start = 0usize;
    while start < data.len() {
        let abs = offset + start as u64;
        let to_boundary = (ZERO_BLOCK - abs % ZERO_BLOCK) as usize;
        let end = data.len().min(start + to_boundary);
        let zero = is_zero(&data[start..end]);
        match out.last_mut() {
            Some(last) if last.zero == zero => last.range.end = end,
            _ => out.push(Run {
                zero,
                range: start..end,
            }),
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_blocks_split_into_runs() {
        let mut d = vec![0u8; 4 * 4096];
        d[4096] = 1;
        d[3 * 4096 + 5] = 7;
        let r = runs(0, &d);
        let expect = vec![
            Run {
                zero: true,
                range: 0..4096,
            },
            Run {
                zero: false,
                range: 4096..8192,
            },
            Run {
                zero: true,
                range: 8192..12288,
            },
            Run {
                zero: false,
                range: 12288..16384,
            },
        ];
        assert_eq!(r, expect);
    }

    #[test]
    fn unaligned_start_cuts_at_absolute_boundaries() {
        let mut d = vec![0u8; 5000];
        d[0] = 1; // first piece is 100..4096 (3996 bytes)
        let r = runs(100, &d);
        assert_eq!(
            r[0],
            Run {
                zero: false,
                range: 0..3996
            }
        );
        assert_eq!(
            r[1],
            Run {
                zero: true,
                range: 3996..5000
            }
        );
    }

    #[test]
    fn empty_data_has_no_runs() {
        assert!(runs(7, &[]).is_empty());
    }
}
