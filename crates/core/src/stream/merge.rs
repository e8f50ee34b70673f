//! `merge_diff`: two consecutive v1 diffs (S1→S2 and S2→S3) into one
//! (S1→S3), like `rbd merge-diff`.
//!
//! Both inputs are walked in step, so memory is constant: this needs each
//! input's `w`/`z` records in ascending order (what rbd writes) and its
//! header records before its data; other inputs are rejected.

use std::io::{BufReader, BufWriter, Read, Write};

use super::error::{Result, StreamError};
use super::format::{DiffFormat, IO_BUFFER, MAX_RECORD};
use super::reader::{DiffReader, Record};
use super::writer::DiffWriter;

/// Header of one merge input.
#[derive(Debug, Default)]
struct Header {
    from: Option<String>,
    to: Option<String>,
    size: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    Zero,
}

/// The unconsumed part of the current record of one input.
#[derive(Debug, Clone, Copy)]
struct Piece {
    kind: Kind,
    offset: u64,
    len: u64,
}

impl Piece {
    fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// One input, consumed front to back.
struct Cursor<R: Read> {
    reader: DiffReader<R>,
    cur: Option<Piece>,
    prev_end: u64,
    /// A zero extent to yield after the last record (growth beyond the
    /// first diff's size must read as zeros after the merge).
    tail: Option<Piece>,
    done: bool,
}

/// Writes to `out` the v1 diff equal to applying `first` then `second`.
fn snap_or_nothing(snap: Option<&str>, nothing: &str) -> String {
    snap.map_or_else(|| nothing.to_string(), |s| format!("snapshot {s}"))
}

pub fn merge_diff(first: impl Read, second: impl Read, out: impl Write) -> Result<()> {
    let first = BufReader::with_capacity(IO_BUFFER, first);
    let second = BufReader::with_capacity(IO_BUFFER, second);
    let mut a = DiffReader::at_offset(first, 0, Some(DiffFormat::V1))?;
    let mut b = DiffReader::at_offset(second, 0, Some(DiffFormat::V1))?;
    let (ha, first_rec_a) = read_header(&mut a)?;
    let (hb, first_rec_b) = read_header(&mut b)?;
    if ha.to != hb.from {
        return Err(StreamError::Inconsistent {
            what: "merge-diff".into(),
            why: format!(
                "the first diff ends at {} but the second starts from {}; give two consecutive diffs",
                snap_or_nothing(ha.to.as_deref(), "HEAD (no end snapshot)"),
                snap_or_nothing(hb.from.as_deref(), "nothing (a full diff)")
            ),
        });
    }
    let (size_a, size_b) = (require_size(&ha, "first")?, require_size(&hb, "second")?);
    let mut w = DiffWriter::new(BufWriter::with_capacity(IO_BUFFER, out), DiffFormat::V1)?;
    super::export::write_header(&mut w, ha.from.as_deref(), hb.to.as_deref(), size_b)?;
    let tail = (size_a < size_b).then(|| Piece {
        kind: Kind::Zero,
        offset: size_a,
        len: size_b - size_a,
    });
    let mut ca = Cursor::new(a, first_rec_a, tail)?;
    let mut cb = Cursor::new(b, first_rec_b, None)?;
    merge_records(&mut ca, &mut cb, size_b, &mut w)?;
    w.finish()?;
    Ok(())
}

fn require_size(h: &Header, which: &str) -> Result<u64> {
    h.size.ok_or_else(|| StreamError::Inconsistent {
        what: "merge-diff".into(),
        why: format!("the {which} diff has no size record"),
    })
}

/// Reads header records up to the first data record (returned).
fn read_header<R: Read>(r: &mut DiffReader<R>) -> Result<(Header, Record)> {
    let mut h = Header::default();
    loop {
        match r.next_record()? {
            Record::FromSnap(n) => h.from = Some(n),
            Record::ToSnap(n) => h.to = Some(n),
            Record::Size(s) => h.size = Some(s),
            Record::Protected(_) => {}
            rec => return Ok((h, rec)),
        }
    }
}

/// Copies B whole and A where B does not cover it, clipped to B's size.
fn merge_records<RA: Read, RB: Read, W: Write>(
    a: &mut Cursor<RA>,
    b: &mut Cursor<RB>,
    size: u64,
    w: &mut DiffWriter<W>,
) -> Result<()> {
    let mut buf = Vec::new();
    loop {
        match (a.peek()?, b.peek()?) {
            (None, None) => return Ok(()),
            (Some(pa), Some(pb)) if pa.offset < pb.offset => {
                copy_a(a, pa, pb.offset.min(pa.end()), size, w, &mut buf)?
            }
            (Some(pa), None) => copy_a(a, pa, pa.end(), size, w, &mut buf)?,
            (_, Some(pb)) => {
                b.copy(pb.len, w, &mut buf)?;
                a.skip_to(pb.end())?;
            }
        }
    }
}

/// Copies A's piece `pa` up to `stop` (clipped to `size`), dropping the rest.
fn copy_a<R: Read, W: Write>(
    a: &mut Cursor<R>,
    pa: Piece,
    stop: u64,
    size: u64,
    w: &mut DiffWriter<W>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let keep = stop.min(size).saturating_sub(pa.offset);
    a.copy(keep, w, buf)?;
    a.skip_to(stop)
}

impl<R: Read> Cursor<R> {
    fn new(reader: DiffReader<R>, first: Record, tail: Option<Piece>) -> Result<Self> {
        let mut c = Cursor {
            reader,
            cur: None,
            prev_end: 0,
            tail,
            done: false,
        };
        c.accept(first)?;
        Ok(c)
    }

    fn peek(&mut self) -> Result<Option<Piece>> {
        while self.cur.is_none() && !self.done {
            let at = self.reader.position();
            let rec = self.reader.next_record()?;
            self.accept_at(rec, at)?;
        }
        Ok(self.cur)
    }

    fn accept(&mut self, rec: Record) -> Result<()> {
        let at = self.reader.position();
        self.accept_at(rec, at)
    }

    fn accept_at(&mut self, rec: Record, at: u64) -> Result<()> {
        let (kind, offset, len) = match rec {
            Record::Data { offset, len } => (Kind::Data, offset, len),
            Record::Zero { offset, len } => (Kind::Zero, offset, len),
            Record::End => {
                self.done = true;
                self.cur = self.tail.take().filter(|t| t.offset >= self.prev_end);
                return Ok(());
            }
            _ => return Err(malformed(at, "header records before data records")),
        };
        if offset < self.prev_end {
            return Err(malformed(at, "records in ascending order"));
        }
        self.prev_end = offset + len;
        self.cur = (len > 0).then_some(Piece { kind, offset, len });
        Ok(())
    }

    /// Writes the first `n` bytes of the current piece to `w`, consuming them.
    fn copy<W: Write>(&mut self, n: u64, w: &mut DiffWriter<W>, buf: &mut Vec<u8>) -> Result<()> {
        let Some(p) = self.cur else { return Ok(()) };
        let mut done = 0;
        while done < n {
            let at = p.offset + done;
            let k = (n - done).min(MAX_RECORD - at % MAX_RECORD);
            match p.kind {
                Kind::Zero => w.zero(at, k)?,
                Kind::Data => {
                    buf.resize(k as usize, 0);
                    self.reader.read_data(buf)?;
                    w.data(at, buf)?;
                }
            }
            done += k;
        }
        self.advance(n)
    }

    /// Drops everything of the current input below `offset`.
    fn skip_to(&mut self, offset: u64) -> Result<()> {
        while let Some(p) = self.peek()? {
            if p.offset >= offset {
                break;
            }
            let n = (offset.min(p.end())) - p.offset;
            self.discard(n)?;
        }
        Ok(())
    }

    fn discard(&mut self, n: u64) -> Result<()> {
        if let Some(Piece {
            kind: Kind::Data, ..
        }) = self.cur
        {
            let mut scratch = [0u8; 8192];
            let mut left = n;
            while left > 0 {
                let k = left.min(scratch.len() as u64) as usize;
                self.reader.read_data(&mut scratch[..k])?;
                left -= k as u64;
            }
        }
        self.advance(n)
    }

    fn advance(&mut self, n: u64) -> Result<()> {
        if let Some(p) = &mut self.cur {
            p.offset += n;
            p.len -= n;
            if p.len == 0 {
                self.cur = None;
            }
        }
        Ok(())
    }
}

fn malformed(offset: u64, why: &str) -> StreamError {
    StreamError::Malformed {
        offset,
        why: format!("merge-diff needs {why}"),
    }
}
