//! Writes "rbd diff v1" and "rbd diff v2" streams with the rbd CLI's
//! conventions: banner, header records (`f`, `t`, `s`, `p`), then `w`/`z`
//! in ascending order, each at most [`MAX_RECORD`] and never crossing a
//! [`MAX_RECORD`] boundary, then `e`.

use std::io::Write;

use super::error::{Result, StreamError};
use super::format::{tag, DiffFormat, MAX_RECORD, MAX_SNAP_NAME};
use super::zeros;

/// A diff stream being written; call [`DiffWriter::finish`] to end it.
pub struct DiffWriter<W: Write> {
    out: W,
    format: DiffFormat,
    /// Lowest offset the next `w`/`z` may start at (records ascend).
    next_min: u64,
    data_started: bool,
}

impl<W: Write> DiffWriter<W> {
    /// Writes the banner.
    pub fn new(mut out: W, format: DiffFormat) -> Result<Self> {
        out.write_all(format.banner()).map_err(StreamError::Write)?;
        Ok(DiffWriter {
            out,
            format,
            next_min: 0,
            data_started: false,
        })
    }

    pub fn format(&self) -> DiffFormat {
        self.format
    }

    /// `f`: the stream applies on top of snapshot `name`.
    pub fn from_snap(&mut self, name: &str) -> Result<()> {
        self.name_record(tag::FROM_SNAP, name)
    }

    /// `t`: the importer creates snapshot `name` after the data.
    pub fn to_snap(&mut self, name: &str) -> Result<()> {
        self.name_record(tag::TO_SNAP, name)
    }

    /// `s`: the image size at the end point.
    pub fn size(&mut self, size: u64) -> Result<()> {
        self.header_check("s")?;
        self.record(tag::SIZE, &[&size.to_le_bytes()])
    }

    /// `p` (v2 only): whether the to-snapshot is protected.
    pub fn protected(&mut self, protected: bool) -> Result<()> {
        self.header_check("p")?;
        if self.format != DiffFormat::V2 {
            return Err(StreamError::Usage("`p` exists only in diff v2".into()));
        }
        self.record(tag::PROTECTED, &[&[u8::from(protected)]])
    }

    /// Data at `offset`; zero runs inside it become `z` records.
    pub fn data(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.order_check(offset, data.len() as u64)?;
        for run in zeros::runs(offset, data) {
            let at = offset + run.range.start as u64;
            if run.zero {
                self.zero_records(at, run.range.len() as u64)?;
            } else {
                self.data_records(at, &data[run.range])?;
            }
        }
        Ok(())
    }

    /// `offset..offset+len` reads as zeros at the end point.
    pub fn zero(&mut self, offset: u64, len: u64) -> Result<()> {
        self.order_check(offset, len)?;
        self.zero_records(offset, len)
    }

    /// Writes `e`, flushes and returns the output.
    pub fn finish(mut self) -> Result<W> {
        self.out
            .write_all(&[tag::END])
            .map_err(StreamError::Write)?;
        self.out.flush().map_err(StreamError::Write)?;
        Ok(self.out)
    }

    fn name_record(&mut self, t: u8, name: &str) -> Result<()> {
        self.header_check("f/t")?;
        let len = name.len() as u64;
        if len > MAX_SNAP_NAME {
            return Err(StreamError::Usage(format!(
                "snapshot name of {len} bytes is longer than {MAX_SNAP_NAME}"
            )));
        }
        let n = (name.len() as u32).to_le_bytes();
        self.record(t, &[&n, name.as_bytes()])
    }

    fn header_check(&self, what: &str) -> Result<()> {
        if self.data_started {
            return Err(StreamError::Usage(format!(
                "header record {what} after data records"
            )));
        }
        Ok(())
    }

    fn order_check(&mut self, offset: u64, len: u64) -> Result<()> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| StreamError::Usage(format!("extent {offset}+{len} overflows")))?;
        if offset < self.next_min {
            return Err(StreamError::Usage(format!(
                "extent at {offset} is below the previous end {}; records must ascend",
                self.next_min
            )));
        }
        self.next_min = end;
        self.data_started = true;
        Ok(())
    }

    fn data_records(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u64;
            let n = piece_len(at, (data.len() - done) as u64) as usize;
            let piece = &data[done..done + n];
            let head = extent_bytes(at, n as u64);
            self.record(tag::WRITE, &[&head, piece])?;
            done += n;
        }
        Ok(())
    }

    fn zero_records(&mut self, offset: u64, len: u64) -> Result<()> {
        let mut done = 0u64;
        while done < len {
            let n = piece_len(offset + done, len - done);
            self.record(tag::ZERO, &[&extent_bytes(offset + done, n)])?;
            done += n;
        }
        Ok(())
    }

    /// One record: tag, the v2 length, then the payload parts unchanged.
    fn record(&mut self, t: u8, parts: &[&[u8]]) -> Result<()> {
        self.out.write_all(&[t]).map_err(StreamError::Write)?;
        if self.format == DiffFormat::V2 {
            let len: usize = parts.iter().map(|p| p.len()).sum();
            let len = (len as u64).to_le_bytes();
            self.out.write_all(&len).map_err(StreamError::Write)?;
        }
        for p in parts {
            self.out.write_all(p).map_err(StreamError::Write)?;
        }
        Ok(())
    }
}

/// Length of the next record at `at`: up to the next [`MAX_RECORD`] boundary.
fn piece_len(at: u64, left: u64) -> u64 {
    left.min(MAX_RECORD - at % MAX_RECORD)
}

fn extent_bytes(offset: u64, len: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&offset.to_le_bytes());
    b[8..].copy_from_slice(&len.to_le_bytes());
    b
}
