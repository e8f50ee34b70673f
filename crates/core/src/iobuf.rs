//! Transfer buffers that start on a page boundary.
//!
//! The kernel copies between the page cache and a process's buffer with a
//! string instruction that is several times slower when the buffer does
//! not start on a cache line: `pread` of 1 GiB from the page cache into a
//! buffer 16 bytes past a page boundary took 415 ms on the project's
//! machine, 85 ms from a page boundary. glibc puts a large allocation (a
//! mapping of its own) exactly 16 bytes past one, so every file read and
//! write of a transfer through a plain `Vec<u8>` paid that.
//!
//! Each buffer is an anonymous mapping of its own rather than a heap
//! allocation: a mapping starts on a page, and its memory goes back to the
//! system when the buffer is dropped. From malloc (which serves 4 MiB from
//! its arenas once a block that size has been freed), a full backup of a
//! thin TiB volume peaked at 285-305 MiB resident for a heap peak of 144
//! MiB; with mappings (and librbd writing from them, not from copies) at
//! 191-241 MiB.

use memmap2::MmapMut;
use std::ops::{Deref, DerefMut};

/// A byte buffer of a fixed capacity whose first byte is page-aligned.
#[derive(Default)]
pub struct IoBuf {
    map: Option<MmapMut>,
    len: usize,
}

impl IoBuf {
    /// `len` zero bytes (fresh pages, resident once written).
    pub fn zeroed(len: usize) -> Self {
        if len == 0 {
            return IoBuf::default();
        }
        let map = MmapMut::map_anon(len).unwrap_or_else(|e| {
            // What a failed heap allocation does too, with the reason.
            panic!("out of memory for a {len}-byte transfer buffer: {e}")
        });
        IoBuf {
            map: Some(map),
            len,
        }
    }

    /// Makes the buffer `len` bytes long. Within its capacity the memory
    /// stays and so do the bytes (for callers that overwrite them all);
    /// beyond, it is a new zeroed buffer of at least twice the capacity
    /// (a stream of growing records maps a few times, not once each).
    pub fn set_len(&mut self, len: usize) {
        if len > self.capacity() {
            *self = IoBuf::zeroed(len.max(self.capacity().saturating_mul(2)));
        }
        self.len = len;
    }

    /// The most bytes the buffer holds without a new allocation.
    pub fn capacity(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }
}

impl Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.map {
            Some(map) => &map[..self.len],
            None => &[],
        }
    }
}

impl DerefMut for IoBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.map {
            Some(map) => &mut map[..self.len],
            None => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_page_and_keeps_its_memory_within_capacity() {
        let mut buf = IoBuf::zeroed(5 << 20);
        assert_eq!(buf.as_ptr() as usize % 4096, 0);
        assert_eq!(buf.len(), 5 << 20);
        assert!(buf.iter().all(|&b| b == 0));
        buf[0] = 7;
        let at = buf.as_ptr();
        buf.set_len(100);
        assert_eq!((buf.len(), buf.as_ptr(), buf[0]), (100, at, 7));
        buf.set_len(5 << 20);
        assert_eq!(buf.as_ptr(), at);
        buf.set_len(buf.capacity() + 1);
        assert_eq!(buf.as_ptr() as usize % 4096, 0);
        assert!(buf.iter().all(|&b| b == 0));
        let empty = IoBuf::default();
        assert_eq!((empty.len(), empty.capacity()), (0, 0));
    }
}
