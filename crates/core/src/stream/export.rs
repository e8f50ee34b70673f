//! `export_diff`: an image's changes since a snapshot (or all its data) as
//! an "rbd diff" stream, like `rbd export-diff`.

use std::io::{BufWriter, Write};

use super::error::{Result, StreamError};
use super::format::{DiffFormat, IO_BUFFER, MAX_RECORD};
use super::readahead::{for_each_piece, Piece};
use super::writer::DiffWriter;
use crate::image::{Extent, ExtentKind, Image};
use crate::progress::Progress;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// The image size written in the `s` record.
    pub size: u64,
    /// Bytes read from the image (data extents, before zero detection).
    pub data_bytes: u64,
    /// Bytes of extents the image reported as zero.
    pub zero_bytes: u64,
}

/// Writes an "rbd diff v1" stream of `image` (HEAD or a snapshot handle)
/// since `from_snap` (`None`: everything allocated). `to_snap` is the name
/// the importer gives the end point (`None` when exporting HEAD).
///
/// Unlike rbd, the from-snapshot is validated before any byte is written.
pub fn export_diff(
    image: &dyn Image,
    from_snap: Option<&str>,
    to_snap: Option<&str>,
    out: impl Write,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    let size = image.size()?;
    let extents = changed_extents(image, from_snap, size)?;
    let out = BufWriter::with_capacity(IO_BUFFER, out);
    let mut w = DiffWriter::new(out, DiffFormat::V1)?;
    write_header(&mut w, from_snap, to_snap, size)?;
    let report = write_extents(image, &extents, &mut w, progress)?;
    w.finish()?;
    Ok(report)
}

/// `f`, `t`, `s`, in rbd's order.
pub(crate) fn write_header<W: Write>(
    w: &mut DiffWriter<W>,
    from_snap: Option<&str>,
    to_snap: Option<&str>,
    size: u64,
) -> Result<()> {
    if let Some(f) = from_snap {
        w.from_snap(f)?;
    }
    if let Some(t) = to_snap {
        w.to_snap(t)?;
    }
    w.size(size)
}

/// The changed extents, checked against the trait's contract.
pub(crate) fn changed_extents(
    image: &dyn Image,
    from_snap: Option<&str>,
    size: u64,
) -> Result<Vec<Extent>> {
    let mut out: Vec<Extent> = Vec::new();
    image.changed_extents(from_snap, 0..size, &mut |e| {
        out.push(e);
        Ok(())
    })?;
    check_extents(image, &out, size)?;
    Ok(out)
}

fn check_extents(image: &dyn Image, extents: &[Extent], size: u64) -> Result<()> {
    let mut prev_end = 0u64;
    for e in extents {
        let end = e.offset.checked_add(e.len);
        if e.offset < prev_end || end.is_none_or(|end| end > size) {
            return Err(StreamError::Inconsistent {
                what: image.describe(),
                why: format!(
                    "changed extent {}+{} overlaps, is out of order or beyond {size}",
                    e.offset, e.len
                ),
            });
        }
        prev_end = e.end();
    }
    Ok(())
}

/// Writes the `w`/`z` records of `extents`, reading data ahead.
pub(crate) fn write_extents<W: Write>(
    image: &dyn Image,
    extents: &[Extent],
    w: &mut DiffWriter<W>,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    let pieces = split(extents);
    let total = extents.iter().map(|e| e.len).sum();
    let mut report = ExportReport {
        size: image.size()?,
        ..ExportReport::default()
    };
    progress.begin("export", total);
    for_each_piece(image, &pieces, &mut |p, data| {
        match p {
            Piece::Data { offset, len } => {
                w.data(offset, data)?;
                report.data_bytes += len;
            }
            Piece::Zero { offset, len } => {
                w.zero(offset, len)?;
                report.zero_bytes += len;
            }
        }
        progress.advance(piece_len(p));
        Ok(())
    })?;
    progress.end();
    Ok(report)
}

fn piece_len(p: Piece) -> u64 {
    match p {
        Piece::Data { len, .. } | Piece::Zero { len, .. } => len,
    }
}

/// Cuts data extents at [`MAX_RECORD`] boundaries; zero extents stay whole
/// (the writer splits their records).
fn split(extents: &[Extent]) -> Vec<Piece> {
    let mut out = Vec::with_capacity(extents.len());
    for e in extents {
        if e.kind == ExtentKind::Zero {
            out.push(Piece::Zero {
                offset: e.offset,
                len: e.len,
            });
            continue;
        }
        let mut at = e.offset;
        while at < e.end() {
            let len = (e.end() - at).min(MAX_RECORD - at % MAX_RECORD);
            out.push(Piece::Data { offset: at, len });
            at += len;
        }
    }
    out
}
