//! Printing results: JSON on request, short human text otherwise, nothing
//! but errors with --quiet.

use anyhow::Result;
use blockback_core::store::{GcStats, StoreStats};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// --quiet without --json: result lines are not printed. Set once by main,
/// before any command runs, so every command's output obeys it.
static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Prints `value` as JSON when `json` (even when quiet: it was asked for),
/// else the human text `human()` unless quiet.
pub fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> Result<()> {
    if json {
        print_line(&serde_json::to_string_pretty(value)?)?;
    } else if !QUIET.load(Ordering::Relaxed) {
        let text = human();
        if !text.is_empty() {
            print_line(&text)?;
        }
    }
    Ok(())
}

/// Prints `text` and a newline. A reader that went away (`| head -1`) is
/// no error, as for other tools; `println!` would panic on it.
fn print_line(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        done => Ok(done?),
    }
}

/// Formats a byte count for people.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// A catalog time (Unix seconds) as local ISO 8601 with its UTC offset,
/// e.g. `2025-03-01T14:05:09+01:00` (the system's time zone: TZ or
/// /etc/localtime).
pub fn local_time(unix: f64) -> String {
    match Timestamp::from_second(unix.floor() as i64) {
        Ok(ts) => ts
            .to_zoned(TimeZone::system())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        Err(_) => format!("{unix} (Unix seconds)"),
    }
}

/// `key: value` lines, keys right-aligned.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:>width$}: {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn gc_text(s: &GcStats) -> String {
    let mut text = format!(
        "gc freed {} of {}: {} of {} packs deleted, {} repacked; {} live chunks and pages",
        bytes(s.bytes_freed),
        bytes(s.bytes_before),
        s.packs_deleted,
        s.packs_before,
        s.packs_repacked,
        s.live_blobs
    );
    if s.leftovers_removed > 0 {
        let n = s.leftovers_removed;
        text.push_str(&format!("; {n} leftovers of interrupted runs removed"));
    }
    for kept in &s.kept {
        text.push_str(&format!("\nkept {kept}"));
    }
    for pack in &s.unreadable_packs {
        text.push_str(&format!("\nkept unreadable pack {pack}; run `verify`"));
    }
    text
}

pub fn stats_text(s: &StoreStats) -> String {
    fields(&[
        ("images", s.images.to_string()),
        ("snapshots", s.snapshots.to_string()),
        (
            "on disk",
            format!("{} in {} packs", bytes(s.pack_bytes), s.packs),
        ),
        (
            "chunks",
            format!(
                "{} ({} raw, {} stored)",
                s.chunks,
                bytes(s.raw_bytes),
                bytes(s.stored_bytes)
            ),
        ),
        ("index pages", s.pages.to_string()),
        ("logical data", bytes(s.logical_bytes)),
        ("deduplication", format!("{:.2}x", s.dedup_ratio)),
        ("compression", format!("{:.2}x", s.compression_ratio)),
    ])
}
