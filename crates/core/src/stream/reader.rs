//! A pull reader for "rbd diff v1" and "rbd diff v2" streams.
//!
//! Memory is constant: `w` payloads are never buffered here; after
//! [`Record::Data`] the caller pulls the payload with
//! [`DiffReader::read_data`] in pieces of its choosing (whatever it leaves
//! unread is skipped by the next [`DiffReader::next_record`]). The reader
//! reads exactly the bytes of the stream and nothing after `e`, so diffs
//! concatenated inside an "rbd image v2" stream can be read one by one.

use std::io::Read;

use super::bytes::ByteReader;
use super::error::{Result, StreamError};
use super::format::{tag, DiffFormat, MAX_SNAP_NAME};

/// One record of a diff stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    FromSnap(String),
    ToSnap(String),
    Size(u64),
    /// v2 only: the to-snapshot's protection flag.
    Protected(bool),
    /// `len` payload bytes follow; read them with [`DiffReader::read_data`].
    Data {
        offset: u64,
        len: u64,
    },
    Zero {
        offset: u64,
        len: u64,
    },
    /// `e`; returned again on every later call.
    End,
}

/// Reads records from a diff stream (see the module docs).
pub struct DiffReader<R: Read> {
    src: ByteReader<R>,
    format: DiffFormat,
    size: Option<u64>,
    data_left: u64,
    ended: bool,
}

impl<R: Read> DiffReader<R> {
    /// Reads and checks the banner (v1 or v2). Reads in small pieces: wrap
    /// plain files and pipes in a `BufReader`.
    pub fn new(inner: R) -> Result<Self> {
        Self::at_offset(inner, 0, None)
    }

    /// Like [`DiffReader::new`] for a diff that starts at byte `base` of a
    /// larger stream (error offsets count from there), optionally requiring
    /// one format.
    pub fn at_offset(inner: R, base: u64, require: Option<DiffFormat>) -> Result<Self> {
        let mut r = DiffReader {
            src: ByteReader::new(inner, base),
            format: DiffFormat::V1,
            size: None,
            data_left: 0,
            ended: false,
        };
        r.format = r.read_banner(require)?;
        Ok(r)
    }

    pub fn format(&self) -> DiffFormat {
        self.format
    }

    /// The stream offset of the next unread byte.
    pub fn position(&self) -> u64 {
        self.src.position()
    }

    /// The size from the last `s` record, if any.
    pub fn image_size(&self) -> Option<u64> {
        self.size
    }

    /// Unread payload bytes of the current `w` record.
    pub fn data_remaining(&self) -> u64 {
        self.data_left
    }

    pub fn into_inner(self) -> R {
        self.src.into_inner()
    }

    /// The next record, skipping any unread payload of the previous one.
    pub fn next_record(&mut self) -> Result<Record> {
        self.src.skip(self.data_left, "a w record's data")?;
        self.data_left = 0;
        if self.ended {
            return Ok(Record::End);
        }
        loop {
            if let Some(rec) = self.read_record()? {
                return Ok(rec);
            }
        }
    }

    /// Reads up to `buf.len()` bytes of the current `w` payload; 0 when it
    /// is exhausted.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = (buf.len() as u64).min(self.data_left) as usize;
        self.src.fill(&mut buf[..n], "a w record's data")?;
        self.data_left -= n as u64;
        Ok(n)
    }

    fn read_banner(&mut self, require: Option<DiffFormat>) -> Result<DiffFormat> {
        let start = self.position();
        let mut b = [0u8; 12];
        let got = self.src.read_up_to(&mut b)?;
        let candidates: &[DiffFormat] = match require {
            Some(f) => &[f][..],
            None => &[DiffFormat::V1, DiffFormat::V2][..],
        };
        if let Some(f) = candidates.iter().find(|f| f.banner()[..] == b[..got]) {
            return Ok(*f);
        }
        let prefix_ok = candidates.iter().any(|f| f.banner().starts_with(&b[..got]));
        if got < b.len() && prefix_ok {
            return Err(StreamError::Truncated {
                offset: self.position(),
                what: "the banner",
            });
        }
        Err(StreamError::BadBanner {
            offset: start,
            expected: expected_name(require),
            found: String::from_utf8_lossy(&b[..got]).into_owned(),
        })
    }

    /// One record, or `None` for a skipped unknown v2 record.
    fn read_record(&mut self) -> Result<Option<Record>> {
        let start = self.position();
        let t = self.src.u8("a record tag")?;
        if t == tag::END {
            self.ended = true;
            return Ok(Some(Record::End));
        }
        // v2 lengths are ignored for known tags, as rbd does (Ceph 16
        // writes `p` with length 8 but one payload byte).
        let v2_len = match self.format {
            DiffFormat::V2 => Some(self.src.u64("a record length")?),
            DiffFormat::V1 => None,
        };
        let rec = match t {
            tag::FROM_SNAP => Record::FromSnap(self.name(start)?),
            tag::TO_SNAP => Record::ToSnap(self.name(start)?),
            tag::SIZE => self.size_record()?,
            tag::WRITE => self.extent(start, true)?,
            tag::ZERO => self.extent(start, false)?,
            tag::PROTECTED if self.format == DiffFormat::V2 => {
                Record::Protected(self.src.u8("a p record")? != 0)
            }
            _ => return self.unknown(start, t, v2_len),
        };
        Ok(Some(rec))
    }

    fn unknown(&mut self, start: u64, t: u8, v2_len: Option<u64>) -> Result<Option<Record>> {
        match v2_len {
            Some(len) => {
                self.src.skip(len, "an unknown record")?;
                Ok(None)
            }
            None => Err(StreamError::UnknownTag {
                offset: start,
                tag: t,
            }),
        }
    }

    fn size_record(&mut self) -> Result<Record> {
        let s = self.src.u64("an s record")?;
        self.size = Some(s);
        Ok(Record::Size(s))
    }

    fn extent(&mut self, start: u64, data: bool) -> Result<Record> {
        let what = if data { "a w record" } else { "a z record" };
        let offset = self.src.u64(what)?;
        let len = self.src.u64(what)?;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| StreamError::Malformed {
                offset: start,
                why: format!("extent {offset}+{len} overflows"),
            })?;
        if let Some(size) = self.size.filter(|s| end > *s) {
            return Err(StreamError::BeyondSize {
                offset: start,
                what: if data { "write" } else { "zero extent" },
                start: offset,
                len,
                size,
            });
        }
        if data {
            self.data_left = len;
            return Ok(Record::Data { offset, len });
        }
        Ok(Record::Zero { offset, len })
    }

    fn name(&mut self, start: u64) -> Result<String> {
        let len = u64::from(self.src.u32("a snapshot name")?);
        if len > MAX_SNAP_NAME {
            return Err(StreamError::NameTooLong { offset: start, len });
        }
        let name = self.src.vec(len, "a snapshot name")?;
        String::from_utf8(name).map_err(|_| StreamError::Malformed {
            offset: start,
            why: "snapshot name is not UTF-8".into(),
        })
    }
}

fn expected_name(require: Option<DiffFormat>) -> &'static str {
    match require {
        Some(DiffFormat::V1) => "rbd diff v1",
        Some(DiffFormat::V2) => "rbd diff v2",
        None => "rbd diff v1 or v2",
    }
}
