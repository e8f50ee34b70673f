//! Transfer buffers that start on a page boundary.
//!
//! The kernel copies between the page cache and a process's buffer with a
//! string instruction that is several times slower when the buffer does
//! not start on a cache line: `pread` of 1 GiB from the page cache into a
//! buffer 16 bytes past a page boundary took 415 ms on the project's
//! machine, 85 ms from a page boundary. glibc puts a large allocation (a
//! mapping of its own) exactly 16 bytes past one, so every file read and
//! write of a transfer through a plain `Vec<u8>` paid that.

use std::ops::{Deref, DerefMut};

/// Where a buffer starts: a page boundary (a cache line would do; a page
/// also suits direct I/O).
const ALIGN: usize = 4096;

/// A byte buffer of a fixed capacity whose first byte is page-aligned.
#[derive(Default)]
pub struct IoBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl IoBuf {
    /// `len` zero bytes (calloc: fresh pages, resident once written).
    pub fn zeroed(len: usize) -> Self {
        let raw = vec![0u8; len + ALIGN];
        let address = raw.as_ptr() as usize;
        let start = (ALIGN - address % ALIGN) % ALIGN;
        IoBuf { raw, start, len }
    }

    /// Makes the buffer `len` bytes long. Within its capacity the memory
    /// stays and so do the bytes (for callers that overwrite them all);
    /// beyond, it is a new zeroed buffer.
    pub fn set_len(&mut self, len: usize) {
        if len <= self.capacity() {
            self.len = len;
        } else {
            *self = IoBuf::zeroed(len);
        }
    }

    /// The most bytes the buffer holds without a new allocation.
    pub fn capacity(&self) -> usize {
        self.raw.len() - self.start
    }
}

impl Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl DerefMut for IoBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_page_and_keeps_its_memory_within_capacity() {
        let mut buf = IoBuf::zeroed(5 << 20);
        assert_eq!(buf.as_ptr() as usize % ALIGN, 0);
        assert_eq!(buf.len(), 5 << 20);
        assert!(buf.iter().all(|&b| b == 0));
        buf[0] = 7;
        let at = buf.as_ptr();
        buf.set_len(100);
        assert_eq!((buf.len(), buf.as_ptr(), buf[0]), (100, at, 7));
        buf.set_len(5 << 20);
        assert_eq!(buf.as_ptr(), at);
        buf.set_len(buf.capacity() + 1);
        assert_eq!(buf.as_ptr() as usize % ALIGN, 0);
        assert!(buf.iter().all(|&b| b == 0));
        let empty = IoBuf::default();
        assert_eq!((empty.len(), empty.capacity()), (0, 0));
    }
}
