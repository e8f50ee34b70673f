//! Writes a change as an `rbd diff v1` stream (what `rbd export-diff` writes
//! and `rbd import-diff` reads), so the RBD benchmark can apply exactly the
//! same change to an RBD image that `bench-gen change` applies to a file.
//!
//! Format (little-endian): banner `rbd diff v1\n`, `s` + le64 image size,
//! `w` + le64 offset + le64 length + data per write, `e` at the end.

use std::io::{self, Write};

const BANNER: &[u8] = b"rbd diff v1\n";

pub struct DiffWriter<W: Write> {
    out: W,
}

impl<W: Write> DiffWriter<W> {
    /// Writes the header for an image of `size` bytes (no snapshot tags: the
    /// stream applies to HEAD and creates no snapshot).
    pub fn new(mut out: W, size: u64) -> io::Result<Self> {
        out.write_all(BANNER)?;
        out.write_all(b"s")?;
        out.write_all(&size.to_le_bytes())?;
        Ok(DiffWriter { out })
    }

    /// One `w` record: `data` is written at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.out.write_all(b"w")?;
        self.out.write_all(&offset.to_le_bytes())?;
        self.out.write_all(&(data.len() as u64).to_le_bytes())?;
        self.out.write_all(data)
    }

    /// Writes the end record and flushes.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(b"e")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Applies a stream made by [`DiffWriter`] to `image` (test-only reader:
    /// it knows only the records the writer emits).
    pub fn apply(stream: &[u8], image: &mut Vec<u8>) {
        let le64 = |at: usize| u64::from_le_bytes(stream[at..at + 8].try_into().unwrap());
        assert_eq!(&stream[..BANNER.len()], BANNER);
        let mut at = BANNER.len();
        loop {
            let tag = stream[at];
            at += 1;
            match tag {
                b's' => {
                    image.resize(le64(at) as usize, 0);
                    at += 8;
                }
                b'w' => {
                    let (off, len) = (le64(at) as usize, le64(at + 8) as usize);
                    at += 16;
                    image[off..off + len].copy_from_slice(&stream[at..at + len]);
                    at += len;
                }
                b'e' => break,
                other => panic!("unexpected tag {other}"),
            }
        }
        assert_eq!(at, stream.len(), "bytes after the end record");
    }

    #[test]
    fn stream_has_the_documented_layout() {
        let mut writer = DiffWriter::new(Vec::new(), 0x1000).unwrap();
        writer.write(0x10, b"ab").unwrap();
        let stream = writer.finish().unwrap();
        let mut expect = b"rbd diff v1\ns".to_vec();
        expect.extend_from_slice(&0x1000u64.to_le_bytes());
        expect.push(b'w');
        expect.extend_from_slice(&0x10u64.to_le_bytes());
        expect.extend_from_slice(&2u64.to_le_bytes());
        expect.extend_from_slice(b"abe");
        assert_eq!(stream, expect);
    }

    #[test]
    fn later_records_win_like_later_writes() {
        let mut writer = DiffWriter::new(Vec::new(), 8).unwrap();
        writer.write(0, b"aaaa").unwrap();
        writer.write(2, b"bbbb").unwrap();
        let mut image = vec![0u8; 4];
        apply(&writer.finish().unwrap(), &mut image);
        assert_eq!(image, b"aabbbb\0\0");
    }
}
