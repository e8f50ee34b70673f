//! "rbd image v2" (`rbd export --export-format 2`): an image header, then
//! one diff v2 per snapshot (oldest first) and one for HEAD.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};

use super::error::{Result, StreamError};
use super::export::{changed_extents, write_extents, write_header};
use super::format::{DiffFormat, IO_BUFFER};
use super::imagev2_reader::ImageV2Reader;
use super::import::{apply_diff, ApplyRules, ImportReport};
use super::reader::DiffReader;
use super::v2header;
use super::writer::DiffWriter;
use crate::image::Image;
use crate::progress::Progress;

/// The image properties an "rbd image v2" header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageV2Header {
    /// log2 of the object size.
    pub order: u64,
    pub features: u64,
    pub stripe_unit: u64,
    pub stripe_count: u64,
    /// Image metadata (`rbd image-meta`).
    pub meta: BTreeMap<String, String>,
}

impl Default for ImageV2Header {
    /// rbd's defaults: 4 MiB objects, features 61, no striping.
    fn default() -> Self {
        ImageV2Header {
            order: 22,
            features: 61,
            stripe_unit: 4 << 20,
            stripe_count: 1,
            meta: BTreeMap::new(),
        }
    }
}

/// One snapshot recreated by [`import_image_v2`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedSnapshot {
    pub name: String,
    /// The stream's `p` record, if it had one (not enforced on the target).
    pub protected: Option<bool>,
    /// False when the target has no snapshots.
    pub created: bool,
}

/// What [`import_image_v2`] read and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageV2Report {
    pub header: ImageV2Header,
    pub snapshots: Vec<ImportedSnapshot>,
    /// Size of HEAD after the import.
    pub size: u64,
}

/// Writes `image` (HEAD) and all its snapshots as "rbd image v2".
pub fn export_image_v2(
    image: &dyn Image,
    header: &ImageV2Header,
    out: impl Write,
    progress: &dyn Progress,
) -> Result<()> {
    let snaps: Vec<String> = match image.snapshots() {
        Some(s) => s.list()?.into_iter().map(|i| i.name).collect(),
        None => Vec::new(),
    };
    let mut out = BufWriter::with_capacity(IO_BUFFER, out);
    v2header::write(&mut out, header, snaps.len() as u64 + 1)?;
    let mut prev: Option<&str> = None;
    for name in &snaps {
        let snap = open_snapshot(image, name)?;
        export_one(&*snap, prev, Some(name), &mut out, progress)?;
        prev = Some(name);
    }
    export_one(image, prev, None, &mut out, progress)?;
    out.flush().map_err(StreamError::Write)
}

fn open_snapshot(image: &dyn Image, name: &str) -> Result<Box<dyn Image>> {
    match image.snapshots() {
        Some(s) => Ok(s.open_snapshot(name)?),
        None => Err(StreamError::Inconsistent {
            what: image.describe(),
            why: "snapshots disappeared during the export".into(),
        }),
    }
}

fn export_one<W: Write>(
    image: &dyn Image,
    from: Option<&str>,
    to: Option<&str>,
    out: &mut W,
    progress: &dyn Progress,
) -> Result<()> {
    let size = image.size()?;
    let extents = changed_extents(image, from, size)?;
    let mut w = DiffWriter::new(out, DiffFormat::V2)?;
    write_header(&mut w, from, to, size)?;
    write_extents(image, &extents, &mut w, progress)?;
    w.finish()?;
    Ok(())
}

/// Reads an "rbd image v2" stream into `target` (a new, empty image),
/// recreating every snapshot in order. Image properties and metadata are
/// returned for the caller to apply; the `p` flags are reported only.
pub fn import_image_v2(
    reader: impl Read,
    target: &dyn Image,
    progress: &dyn Progress,
) -> Result<ImageV2Report> {
    let mut src = ImageV2Reader::new(BufReader::with_capacity(IO_BUFFER, reader))?;
    let mut snapshots: Vec<ImportedSnapshot> = Vec::new();
    loop {
        let expected_from = snapshots.last().map(|s| s.name.clone());
        let (report, pos) = {
            let Some(mut r) = src.next_diff()? else { break };
            (
                apply_one(&mut r, target, expected_from, progress)?,
                r.position(),
            )
        };
        check_end(&report, src.diffs_left() == 0, pos)?;
        if let Some(name) = report.to_snap {
            snapshots.push(ImportedSnapshot {
                name,
                protected: report.protected,
                created: report.snapshot_created,
            });
        }
    }
    Ok(ImageV2Report {
        header: src.header().clone(),
        snapshots,
        size: target.size()?,
    })
}

fn apply_one<R: Read>(
    r: &mut DiffReader<R>,
    target: &dyn Image,
    expect_from: Option<String>,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let rules = ApplyRules {
        force: false,
        verify_head: false,
        trust_from: true,
        expect_from: Some(expect_from),
    };
    apply_diff(r, target, rules, progress)
}

/// Only the last diff (HEAD) may lack an end snapshot.
fn check_end(report: &ImportReport, last: bool, pos: u64) -> Result<()> {
    if !last && report.to_snap.is_none() {
        return Err(StreamError::Malformed {
            offset: pos,
            why: "a diff before the last has no end snapshot".into(),
        });
    }
    Ok(())
}
