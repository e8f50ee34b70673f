//! Exact little-endian reads that know their stream offset, so every
//! error can say where it happened.

use std::io::{ErrorKind, Read};

use super::error::{Result, StreamError};

/// Reads exactly what is asked, never ahead.
pub struct ByteReader<R: Read> {
    inner: R,
    pos: u64,
}

impl<R: Read> ByteReader<R> {
    /// `pos` is the offset of the next byte in the whole stream.
    pub fn new(inner: R, pos: u64) -> Self {
        ByteReader { inner, pos }
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        let mut b = [0u8; 1];
        self.fill(&mut b, what)?;
        Ok(b[0])
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        let mut b = [0u8; 4];
        self.fill(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        let mut b = [0u8; 8];
        self.fill(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads and drops `len` bytes, in small pieces.
    pub fn skip(&mut self, mut len: u64, what: &'static str) -> Result<()> {
        let mut scratch = [0u8; 8192];
        while len > 0 {
            let n = len.min(scratch.len() as u64) as usize;
            self.fill(&mut scratch[..n], what)?;
            len -= n as u64;
        }
        Ok(())
    }

    /// `len` bytes into a new vector; callers bound `len` first.
    pub fn vec(&mut self, len: u64, what: &'static str) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len as usize];
        self.fill(&mut v, what)?;
        Ok(v)
    }

    /// Fills `buf` completely or fails with `Truncated` at the end offset.
    pub fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<()> {
        let got = self.read_up_to(buf)?;
        if got < buf.len() {
            return Err(StreamError::Truncated {
                offset: self.pos,
                what,
            });
        }
        Ok(())
    }

    /// Reads until `buf` is full or the input ends; returns the count.
    pub fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(StreamError::Read {
                        offset: self.pos,
                        source,
                    })
                }
            }
        }
        Ok(got)
    }
}

/// Plain reads through a `ByteReader` still count toward its position, so
/// a nested reader (one diff inside an image v2 stream) keeps it right.
impl<R: Read> Read for ByteReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}
