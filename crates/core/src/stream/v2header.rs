//! The header of an "rbd image v2" stream: banner, `O T U C M` records
//! (u8 tag, le64 length, payload) up to `E`, then the diffs banner and the
//! number of diffs.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use super::bytes::ByteReader;
use super::error::{Result, StreamError};
use super::format::{image_tag, IMAGE_DIFFS_V2_BANNER, IMAGE_V2_BANNER};
use super::imagev2::ImageV2Header;

/// Longest image-meta key or value accepted (bounds memory on bad input).
const MAX_META: u64 = 1 << 20;

/// Writes everything before the first diff.
pub fn write<W: Write>(out: &mut W, h: &ImageV2Header, ndiffs: u64) -> Result<()> {
    put(out, IMAGE_V2_BANNER)?;
    record(out, image_tag::ORDER, &[&h.order.to_le_bytes()])?;
    record(out, image_tag::FEATURES, &[&h.features.to_le_bytes()])?;
    record(out, image_tag::STRIPE_UNIT, &[&h.stripe_unit.to_le_bytes()])?;
    record(
        out,
        image_tag::STRIPE_COUNT,
        &[&h.stripe_count.to_le_bytes()],
    )?;
    for (k, v) in &h.meta {
        let kl = (k.len() as u32).to_le_bytes();
        let vl = (v.len() as u32).to_le_bytes();
        record(
            out,
            image_tag::META,
            &[&kl, k.as_bytes(), &vl, v.as_bytes()],
        )?;
    }
    put(out, &[image_tag::END])?;
    put(out, IMAGE_DIFFS_V2_BANNER)?;
    put(out, &ndiffs.to_le_bytes())
}

fn record<W: Write>(out: &mut W, tag: u8, parts: &[&[u8]]) -> Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    put(out, &[tag])?;
    put(out, &(len as u64).to_le_bytes())?;
    parts.iter().try_for_each(|p| put(out, p))
}

fn put<W: Write>(out: &mut W, bytes: &[u8]) -> Result<()> {
    out.write_all(bytes).map_err(StreamError::Write)
}

/// Reads everything before the first diff; returns the header and the
/// number of diffs that follow.
pub fn read<R: Read>(src: &mut ByteReader<R>) -> Result<(ImageV2Header, u64)> {
    banner(src, IMAGE_V2_BANNER, "rbd image v2")?;
    let mut h = ImageV2Header::default();
    loop {
        let start = src.position();
        let tag = src.u8("an image header tag")?;
        if tag == image_tag::END {
            break;
        }
        let len = src.u64("an image header record length")?;
        // Known records are parsed by content, as rbd does; unknown skipped.
        match tag {
            image_tag::ORDER => h.order = src.u64("an O record")?,
            image_tag::FEATURES => h.features = src.u64("a T record")?,
            image_tag::STRIPE_UNIT => h.stripe_unit = src.u64("a U record")?,
            image_tag::STRIPE_COUNT => h.stripe_count = src.u64("a C record")?,
            image_tag::META => meta(src, start, &mut h.meta)?,
            _ => src.skip(len, "an unknown image header record")?,
        }
    }
    banner(src, IMAGE_DIFFS_V2_BANNER, "rbd image diffs v2")?;
    let ndiffs = src.u64("the number of diffs")?;
    Ok((h, ndiffs))
}

fn meta<R: Read>(
    src: &mut ByteReader<R>,
    start: u64,
    map: &mut BTreeMap<String, String>,
) -> Result<()> {
    let key = meta_string(src, start, "an image-meta key")?;
    let value = meta_string(src, start, "an image-meta value")?;
    map.insert(key, value);
    Ok(())
}

fn meta_string<R: Read>(src: &mut ByteReader<R>, start: u64, what: &'static str) -> Result<String> {
    let len = u64::from(src.u32(what)?);
    if len > MAX_META {
        return Err(StreamError::Malformed {
            offset: start,
            why: format!("{what} of {len} bytes is longer than {MAX_META}"),
        });
    }
    let bytes = src.vec(len, what)?;
    String::from_utf8(bytes).map_err(|_| StreamError::Malformed {
        offset: start,
        why: format!("{what} is not UTF-8"),
    })
}

fn banner<R: Read>(src: &mut ByteReader<R>, expected: &[u8], name: &'static str) -> Result<()> {
    let start = src.position();
    let mut b = vec![0u8; expected.len()];
    let got = src.read_up_to(&mut b)?;
    if b[..got] == *expected {
        return Ok(());
    }
    if expected.starts_with(&b[..got]) {
        return Err(StreamError::Truncated {
            offset: src.position(),
            what: name,
        });
    }
    Err(StreamError::BadBanner {
        offset: start,
        expected: name,
        found: String::from_utf8_lossy(&b[..got]).into_owned(),
    })
}
