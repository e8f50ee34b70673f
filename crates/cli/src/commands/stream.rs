//! `export-diff`, `import-diff`, `export`, `import`, `merge-diff`: Ceph's
//! stream formats between pipes, files and any image.

use crate::output::emit;
use crate::session::Session;
use anyhow::{bail, Context, Result};
use blockback_core::image::Image;
use blockback_core::stream::{
    export_diff as export_diff_stream, export_image_v2, import_diff as import_diff_stream,
    import_image_v2, merge_diff as merge_streams, ImageV2Header, ImportOptions,
};
use blockback_ops::Address;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Default object size order of exported images (4 MiB objects, like rbd).
const DEFAULT_ORDER: u64 = 22;

pub fn export_diff(
    session: &Session,
    source: &str,
    from_snap: Option<&str>,
    out: &str,
) -> Result<()> {
    let opened = session.ops().open_read(&Address::parse(source)?)?;
    let report = with_output(out, |w| {
        Ok(export_diff_stream(
            opened.image.as_ref(),
            from_snap,
            opened.snap.as_deref(),
            w,
            &session.progress,
        )?)
    })?;
    let json = serde_json::json!({ "size": report.size, "data_bytes": report.data_bytes, "zero_bytes": report.zero_bytes });
    emit_unless_stdout(session, out, &json)
}

/// Applies a diff; a missing target is created empty first (the stream's
/// `s` record sizes it) and removed again if the import fails.
pub fn import_diff(session: &Session, input: &str, target: &str, force: bool) -> Result<()> {
    let addr = Address::parse(target)?;
    let ops = session.ops();
    let (target, created) = match ops.open_write(&addr) {
        Ok(image) => (image, false),
        Err(e) if e.is_not_found() => (ops.create_image(&addr, 0)?, true),
        Err(e) => return Err(e.into()),
    };
    let report = with_input(input, |r| {
        Ok(import_diff_stream(
            r,
            target.as_ref(),
            ImportOptions { force },
            &session.progress,
        )?)
    });
    if report.is_err() && created {
        drop(target);
        let _ = ops.remove_image(&addr);
        return report.map(|_| ());
    }
    let report = report?;
    let json = serde_json::json!({
        "from_snap": report.from_snap, "to_snap": report.to_snap, "size": report.size,
        "data_bytes": report.data_bytes, "zero_bytes": report.zero_bytes,
        "snapshot_created": report.snapshot_created,
    });
    emit(session.config.json, &json, || {
        format!(
            "applied {} data bytes and {} zero bytes to {}",
            report.data_bytes,
            report.zero_bytes,
            target.describe()
        )
    })
}

pub fn export(session: &Session, source: &str, out: &str, format: u8) -> Result<()> {
    require_format_2(format)?;
    let opened = session.ops().open_read(&Address::parse(source)?)?;
    if opened.snap.is_some() {
        bail!("export --export-format 2 exports an image with all its snapshots; name the image without @SNAP");
    }
    let header = ImageV2Header {
        order: DEFAULT_ORDER,
        features: 0,
        stripe_unit: 1 << DEFAULT_ORDER,
        stripe_count: 1,
        meta: Default::default(),
    };
    with_output(out, |w| {
        Ok(export_image_v2(
            opened.image.as_ref(),
            &header,
            w,
            &session.progress,
        )?)
    })?;
    emit_unless_stdout(session, out, &serde_json::json!({ "exported": source }))
}

pub fn import(session: &Session, input: &str, target: &str, format: u8) -> Result<()> {
    require_format_2(format)?;
    let addr = Address::parse(target)?;
    let image: Box<dyn Image> = session.ops().create_image(&addr, 0)?;
    let report = with_input(input, |r| {
        Ok(import_image_v2(r, image.as_ref(), &session.progress)?)
    })?;
    let snaps: Vec<_> = report.snapshots.iter().map(|s| s.name.clone()).collect();
    let json =
        serde_json::json!({ "size": report.size, "snapshots": snaps, "meta": report.header.meta });
    emit(session.config.json, &json, || {
        format!(
            "imported {target}: {} bytes, {} snapshots",
            report.size,
            snaps.len()
        )
    })
}

pub fn merge_diff(session: &Session, first: &str, second: &str, out: &str) -> Result<()> {
    if second == "-" {
        bail!("merge-diff reads only the first diff from stdin; give the second as a file");
    }
    let second_file = File::open(second).with_context(|| format!("diff {second}"))?;
    with_input(first, |a| {
        with_output(out, |w| {
            Ok(merge_streams(a, BufReader::new(second_file), w)?)
        })
    })
    .with_context(|| format!("merge-diff of {first} and {second}"))?;
    emit_unless_stdout(
        session,
        out,
        &serde_json::json!({ "merged": [first, second] }),
    )
}

fn require_format_2(format: u8) -> Result<()> {
    if format != 2 {
        bail!("--export-format {format}: only format 2 (rbd image v2) is supported; for a raw copy use `backup restore` or cp");
    }
    Ok(())
}

/// Runs `op` on stdout (`-`) or a new file.
fn with_output<T>(out: &str, op: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    if out == "-" {
        let stdout = std::io::stdout();
        let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
        let result = op(&mut w)?;
        w.flush().context("writing to stdout")?;
        return Ok(result);
    }
    let path = Path::new(out);
    // Only a regular file of ours is removed on failure, never a device.
    let regular = std::fs::metadata(path).map_or(true, |m| m.is_file());
    let file = File::create(path).with_context(|| format!("output {out}"))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let result = op(&mut w);
    let result = result.and_then(|r| {
        let file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {out}"))?;
        // Devices and pipes (e.g. /dev/null) have nothing to make durable.
        if regular {
            file.sync_all().with_context(|| format!("syncing {out}"))?;
        }
        Ok(r)
    });
    if result.is_err() && regular {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Runs `op` on stdin (`-`) or a file.
fn with_input<T>(input: &str, op: impl FnOnce(&mut dyn Read) -> Result<T>) -> Result<T> {
    if input == "-" {
        let stdin = std::io::stdin();
        let mut r = BufReader::with_capacity(1 << 20, stdin.lock());
        return op(&mut r);
    }
    let file = File::open(input).with_context(|| format!("input {input}"))?;
    op(&mut BufReader::with_capacity(1 << 20, file))
}

/// Reports on stdout unless the stream itself went there.
fn emit_unless_stdout(session: &Session, out: &str, json: &serde_json::Value) -> Result<()> {
    if out == "-" {
        return Ok(());
    }
    emit(session.config.json, json, String::new)
}
