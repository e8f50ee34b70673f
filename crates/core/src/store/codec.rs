//! Compression of stored blobs, with per-thread zstd contexts and buffers so
//! that the hot path allocates nothing per chunk.

use std::cell::RefCell;
use std::io;

/// Data that compresses to more than this fraction (in 1/100) is stored raw.
const MAX_COMPRESSED_PERCENT: usize = 95;

struct Codec {
    level: i32,
    compressor: zstd::bulk::Compressor<'static>,
    decompressor: zstd::bulk::Decompressor<'static>,
    out: Vec<u8>,
}

thread_local! {
    static CODEC: RefCell<Option<Codec>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's codec; `level: None` accepts any level.
fn with_codec<R>(level: Option<i32>, f: impl FnOnce(&mut Codec) -> io::Result<R>) -> io::Result<R> {
    CODEC.with(|cell| {
        let mut slot = cell.borrow_mut();
        let stale = match (slot.as_ref(), level) {
            (None, _) => true,
            (Some(c), Some(l)) => c.level != l,
            (Some(_), None) => false,
        };
        if stale {
            let level = level.unwrap_or(super::config::DEFAULT_ZSTD_LEVEL);
            *slot = Some(Codec {
                level,
                compressor: zstd::bulk::Compressor::new(level)?,
                decompressor: zstd::bulk::Decompressor::new()?,
                out: Vec::new(),
            });
        }
        match slot.as_mut() {
            Some(codec) => f(codec),
            None => Err(io::Error::other("zstd context missing")),
        }
    })
}

/// Calls `f(stored_bytes, compressed)` with the zstd form of `raw`, or `raw`
/// itself when compression saves less than ~5%.
pub fn encode<R>(raw: &[u8], level: i32, f: impl FnOnce(&[u8], bool) -> R) -> io::Result<R> {
    let limit = raw.len() * MAX_COMPRESSED_PERCENT / 100;
    with_codec(Some(level), |c| {
        c.out.resize(limit, 0);
        // A destination smaller than the limit makes zstd fail early with
        // "destination too small": that is the incompressible case.
        match c.compressor.compress_to_buffer(raw, &mut c.out[..limit]) {
            Ok(n) => Ok(f(&c.out[..n], true)),
            Err(_) => Ok(f(raw, false)),
        }
    })
}

/// Decompresses `stored` into exactly `out`; fails if the size differs.
pub fn decode(stored: &[u8], out: &mut [u8]) -> io::Result<()> {
    with_codec(None, |c| {
        let n = c.decompressor.decompress_to_buffer(stored, out)?;
        if n != out.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("decompressed to {n} bytes, expected {}", out.len()),
            ));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_data_round_trips_compressed() {
        let raw = vec![7u8; 32768];
        let stored = encode(&raw, 1, |b, c| (b.to_vec(), c)).unwrap();
        assert!(stored.1);
        assert!(stored.0.len() < 1000);
        let mut out = vec![0u8; raw.len()];
        decode(&stored.0, &mut out).unwrap();
        assert_eq!(out, raw);
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let raw: Vec<u8> = (0..32768u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let raw = blake3::Hasher::new().update(&raw).finalize_xof();
        let mut bytes = vec![0u8; 32768];
        let mut reader = raw;
        reader.fill(&mut bytes);
        let (stored, compressed) = encode(&bytes, 1, |b, c| (b.to_vec(), c)).unwrap();
        assert!(!compressed);
        assert_eq!(stored, bytes);
    }

    #[test]
    fn decode_rejects_wrong_size() {
        let raw = vec![1u8; 4096];
        let stored = encode(&raw, 1, |b, _| b.to_vec()).unwrap();
        let mut out = vec![0u8; 8192];
        assert!(decode(&stored, &mut out).is_err());
    }
}
