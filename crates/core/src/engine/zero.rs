//! Finding zero runs in data, so that zeros are never shipped or stored as data.

use crate::zero::is_zero;

/// A run of units of one class inside a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Offset within the buffer.
    pub start: usize,
    pub len: usize,
    pub zero: bool,
}

/// Splits `buf`, which starts at volume offset `base`, into alternating
/// zero and data runs, classifying whole units of `unit` bytes aligned to
/// volume offsets (the first and last unit may be partial).
pub fn runs(buf: &[u8], base: u64, unit: u64) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let abs = base + pos as u64;
        let unit_end = ((abs / unit + 1) * unit - base) as usize;
        let end = unit_end.min(buf.len());
        let zero = is_zero(&buf[pos..end]);
        match out.last_mut() {
            Some(last) if last.zero == zero => last.len += end - pos,
            _ => out.push(Run {
                start: pos,
                len: end - pos,
                zero,
            }),
        }
        pos = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_classify_aligned_units() {
        let mut buf = vec![0u8; 10_000];
        buf[5000] = 9;
        // base 100: units are [100,4096) [4096,8192) [8192,12288) -> buffer 0..3996, 3996..8092, 8092..
        let r = runs(&buf, 100, 4096);
        assert_eq!(
            r,
            vec![
                Run {
                    start: 0,
                    len: 3996,
                    zero: true
                },
                Run {
                    start: 3996,
                    len: 4096,
                    zero: false
                },
                Run {
                    start: 8092,
                    len: 1908,
                    zero: true
                },
            ]
        );
    }
}
