//! Whether bytes are all zero: transfers, streams and the local store skip
//! zeros instead of shipping or storing them, and hashing skips zero blocks.

/// Whether every byte of `buf` is zero.
pub fn is_zero(buf: &[u8]) -> bool {
    // OR-folding fixed-size blocks vectorises well, unlike a byte loop with
    // an early exit; checking block by block still stops at the first data.
    let mut blocks = buf.chunks_exact(256);
    let blocks_zero = blocks.all(|b| b.iter().fold(0u8, |acc, &x| acc | x) == 0);
    blocks_zero && blocks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_zero_finds_a_single_byte_anywhere() {
        let mut buf = vec![0u8; 1000];
        assert!(is_zero(&buf));
        assert!(is_zero(&[]));
        for i in [0, 255, 256, 999] {
            buf[i] = 1;
            assert!(!is_zero(&buf), "byte {i}");
            buf[i] = 0;
        }
    }
}
