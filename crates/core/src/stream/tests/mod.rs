//! Tests of the stream formats and operations. Streams used as expected
//! values are built by hand from the reference byte layout ([`Enc`]), not by
//! the writer under test.

mod concurrency;
mod corruption;
mod golden;
mod imagev2;
mod import;
mod merge;
mod reader_errors;
mod roundtrip;

use std::io::Read;

use super::{DiffReader, Record, Result};

pub fn le32(n: u32) -> [u8; 4] {
    n.to_le_bytes()
}

pub fn le64(n: u64) -> [u8; 8] {
    n.to_le_bytes()
}

/// A hand encoder following docs/streams.md byte for byte.
pub struct Enc {
    pub buf: Vec<u8>,
    v2: bool,
}

impl Enc {
    pub fn v1() -> Self {
        Enc {
            buf: b"rbd diff v1\n".to_vec(),
            v2: false,
        }
    }

    pub fn v2() -> Self {
        Enc {
            buf: b"rbd diff v2\n".to_vec(),
            v2: true,
        }
    }

    fn rec(&mut self, tag: u8, payload: &[u8]) -> &mut Self {
        self.buf.push(tag);
        if self.v2 {
            self.buf.extend_from_slice(&le64(payload.len() as u64));
        }
        self.buf.extend_from_slice(payload);
        self
    }

    pub fn name(&mut self, tag: u8, name: &str) -> &mut Self {
        let mut p = le32(name.len() as u32).to_vec();
        p.extend_from_slice(name.as_bytes());
        self.rec(tag, &p)
    }

    pub fn size(&mut self, s: u64) -> &mut Self {
        self.rec(b's', &le64(s))
    }

    pub fn w(&mut self, off: u64, data: &[u8]) -> &mut Self {
        let mut p = le64(off).to_vec();
        p.extend_from_slice(&le64(data.len() as u64));
        p.extend_from_slice(data);
        self.rec(b'w', &p)
    }

    pub fn z(&mut self, off: u64, len: u64) -> &mut Self {
        let mut p = le64(off).to_vec();
        p.extend_from_slice(&le64(len));
        self.rec(b'z', &p)
    }

    pub fn p(&mut self, protected: bool) -> &mut Self {
        self.rec(b'p', &[u8::from(protected)])
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    pub fn end(&mut self) -> Vec<u8> {
        self.buf.push(b'e');
        self.buf.clone()
    }
}

/// Every record up to `e`, each `w` with its payload (read in small pieces).
/// Decoded records, each with its `w` payload (empty for others).
pub type Decoded = Vec<(Record, Vec<u8>)>;

pub fn decode_all(bytes: impl Read) -> Result<(Decoded, u64)> {
    let mut r = DiffReader::new(bytes)?;
    let mut out = Vec::new();
    loop {
        let rec = r.next_record()?;
        let mut data = Vec::new();
        let mut piece = [0u8; 1000];
        loop {
            let n = r.read_data(&mut piece)?;
            if n == 0 {
                break;
            }
            data.extend_from_slice(&piece[..n]);
        }
        if rec == Record::End {
            return Ok((out, r.position()));
        }
        out.push((rec, data));
    }
}

/// Applies decoded records to a copy of `base` (reference semantics).
pub fn apply(base: &[u8], recs: &[(Record, Vec<u8>)]) -> Vec<u8> {
    let mut img = base.to_vec();
    for (rec, data) in recs {
        match rec {
            Record::Size(s) => img.resize(*s as usize, 0),
            Record::Data { offset, .. } => {
                let o = *offset as usize;
                img[o..o + data.len()].copy_from_slice(data);
            }
            Record::Zero { offset, len } => {
                img[*offset as usize..(*offset + *len) as usize].fill(0)
            }
            _ => {}
        }
    }
    img
}

/// Re-encodes decoded records as v1, verbatim.
pub fn encode_v1(recs: &[(Record, Vec<u8>)]) -> Vec<u8> {
    let mut e = Enc::v1();
    for (rec, data) in recs {
        match rec {
            Record::FromSnap(n) => e.name(b'f', n),
            Record::ToSnap(n) => e.name(b't', n),
            Record::Size(s) => e.size(*s),
            Record::Data { offset, .. } => e.w(*offset, data),
            Record::Zero { offset, len } => e.z(*offset, *len),
            Record::Protected(p) => e.p(*p),
            Record::End => &mut e,
        };
    }
    e.end()
}

/// Deterministic pseudo-random bytes with some all-zero 4 KiB blocks.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut v = Vec::with_capacity(len);
    for i in 0..len {
        if (i / 4096 + seed as usize).is_multiple_of(3) {
            v.push(0);
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push((x >> 24) as u8);
    }
    v
}
