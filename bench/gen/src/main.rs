//! `bench-gen`: deterministic test images for the blockback benchmarks.
//!
//! - `bench-gen base OUT --size 4G --seed 1`: a sparse image, ~40% random
//!   data, ~20% text, the rest holes, in scattered 1-4 MiB extents.
//! - `bench-gen change FILE --percent 2 --seed 2`: scattered random writes in
//!   place; prints `changed_bytes=N` (the union of the written ranges);
//!   `--rbd-diff PATH` also writes the change as an `rbd diff v1` stream.
//! - `bench-gen extents FILE`: the data extents, one `OFFSET LENGTH` a line.
//! - `bench-gen compare-layout SOURCE COPY`: whether COPY's data/hole map
//!   matches SOURCE's within a tolerance (exit status 1 when not).

mod base;
mod change;
mod content;
mod extents;
mod layout;
mod rbd_diff;
mod size;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bench-gen",
    about = "Deterministic images for blockback benchmarks"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a sparse base image (truncates OUT if it exists).
    Base {
        out: PathBuf,
        #[arg(long, default_value = "4G", value_parser = size::parse_size)]
        size: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Overwrite PERCENT of FILE in place with scattered random writes.
    Change {
        file: PathBuf,
        #[arg(long, default_value_t = 2.0)]
        percent: f64,
        #[arg(long, default_value_t = 2)]
        seed: u64,
        /// Also write the change as an `rbd diff v1` stream (for `rbd import-diff`).
        #[arg(long)]
        rbd_diff: Option<PathBuf>,
    },
    /// Print FILE's data extents (SEEK_DATA/SEEK_HOLE) as `OFFSET LENGTH`.
    Extents { file: PathBuf },
    /// Check that COPY's data/hole map matches SOURCE's: every region
    /// allocated in only one of them must be at most TOLERANCE long.
    CompareLayout {
        source: PathBuf,
        copy: PathBuf,
        #[arg(long, default_value = "64K", value_parser = size::parse_size)]
        tolerance: u64,
    },
}

fn main() -> ExitCode {
    match run(Args::parse().command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("bench-gen: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Base { out, size, seed } => cmd_base(&out, size, seed),
        Command::Change {
            file,
            percent,
            seed,
            rbd_diff,
        } => cmd_change(&file, percent, seed, rbd_diff.as_deref()),
        Command::Extents { file } => cmd_extents(&file),
        Command::CompareLayout {
            source,
            copy,
            tolerance,
        } => cmd_compare(&source, &copy, tolerance),
    }
}

fn cmd_base(out: &Path, size: u64, seed: u64) -> Result<ExitCode> {
    let summary =
        base::write_base(out, size, seed).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "size={} random_bytes={} text_bytes={}",
        summary.size, summary.random_bytes, summary.text_bytes
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_change(file: &Path, percent: f64, seed: u64, rbd_diff: Option<&Path>) -> Result<ExitCode> {
    let mut diff = match rbd_diff {
        Some(path) => Some(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let summary = change::apply(
        file,
        percent,
        seed,
        diff.as_mut().map(|w| w as &mut dyn Write),
    )
    .with_context(|| format!("changing {}", file.display()))?;
    eprintln!(
        "writes={} written_bytes={}",
        summary.writes, summary.written_bytes
    );
    println!("changed_bytes={}", summary.changed_bytes);
    Ok(ExitCode::SUCCESS)
}

fn cmd_extents(path: &Path) -> Result<ExitCode> {
    let extents = read_extents(path)?;
    let mut out = BufWriter::new(io::stdout().lock());
    for extent in extents {
        writeln!(out, "{} {}", extent.start, extent.end - extent.start)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_compare(source: &Path, copy: &Path, tolerance: u64) -> Result<ExitCode> {
    let (a, b) = (read_extents(source)?, read_extents(copy)?);
    let diff = extents::compare(&a, &b);
    let ok = diff.max_run <= tolerance;
    println!(
        "source_extents={} copy_extents={} diff_bytes={} diff_runs={} max_diff_run={} layout={}",
        a.len(),
        b.len(),
        diff.diff_bytes,
        diff.diff_runs,
        diff.max_run,
        if ok { "same" } else { "different" }
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn read_extents(path: &Path) -> Result<Vec<std::ops::Range<u64>>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    extents::data_extents(&file).with_context(|| format!("mapping {}", path.display()))
}
