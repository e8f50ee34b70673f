//! `import_diff`: applies an "rbd diff" stream to an image, like
//! `rbd import-diff` but refusing to apply on top of the wrong state.

use std::io::{BufReader, Read};

use super::error::{Result, StreamError};
use super::format::{IO_BUFFER, MAX_RECORD};
use super::reader::{DiffReader, Record};
use super::verify::{head_equals_snapshot, snapshot_exists};
use super::writepool::{with_pool, Job, WritePool};
use crate::image::Image;
use crate::progress::Progress;

/// Options of [`import_diff`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Apply even when the from-snapshot is missing or cannot be checked,
    /// the target's HEAD changed since it, or the to-snapshot exists (then
    /// it is not created). Like `rbd import-diff`, minus its EEXIST.
    pub force: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub from_snap: Option<String>,
    pub to_snap: Option<String>,
    /// The `s` record, if the stream had one.
    pub size: Option<u64>,
    /// The `p` record (v2 streams), if any.
    pub protected: Option<bool>,
    /// Bytes of `w` payload applied.
    pub data_bytes: u64,
    /// Bytes of `z` extents applied.
    pub zero_bytes: u64,
    pub snapshot_created: bool,
    /// Stream offset just after `e` (later bytes were not read).
    pub end_offset: u64,
}

/// Reads one diff stream (v1, or v2) from `reader` and applies it to
/// `target`, HEAD opened read-write.
///
/// Refuses, unless `opts.force`: a from-snapshot the target lacks (or a
/// target without snapshots), a to-snapshot that exists, and a HEAD that
/// differs from the from-snapshot. If the stream fails after writing began
/// on a HEAD verified equal to the from-snapshot, HEAD is rolled back to it,
/// so the complete stream can be applied again.
pub fn import_diff(
    reader: impl Read,
    target: &dyn Image,
    opts: ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let mut r = match DiffReader::new(BufReader::with_capacity(IO_BUFFER, reader)) {
        Err(StreamError::Truncated { offset, .. }) => {
            let consequence = "nothing was written; no end snapshot was created".into();
            return Err(StreamError::ImportTruncated {
                offset,
                consequence,
            });
        }
        other => other?,
    };
    let rules = ApplyRules {
        force: opts.force,
        verify_head: true,
        trust_from: false,
        expect_from: None,
    };
    apply_diff(&mut r, target, rules, progress)
}

/// How [`apply_diff`] checks the target.
#[derive(Debug, Clone)]
pub(crate) struct ApplyRules {
    pub force: bool,
    /// Compare HEAD with the from-snapshot before writing.
    pub verify_head: bool,
    /// The from-snapshot was just written by us (image v2 import): a target
    /// without snapshots is fine.
    pub trust_from: bool,
    /// The from-snapshot the stream must name (`Some(None)`: none), checked
    /// before anything is written (image v2 diffs form a chain).
    pub expect_from: Option<Option<String>>,
}

/// Applies the rest of the stream behind `r` to `target`.
pub(crate) fn apply_diff<R: Read>(
    r: &mut DiffReader<R>,
    target: &dyn Image,
    rules: ApplyRules,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let mut ap = Applier {
        target,
        rules,
        progress,
        report: ImportReport::default(),
        checked: false,
        mutated: false,
        verified_from: false,
        create_to: false,
    };
    progress.begin("import", 0);
    let result = with_pool(target, |pool| ap.run(r, pool));
    progress.end();
    match result {
        Ok(()) => {
            ap.report.end_offset = r.position();
            ap.finish()
        }
        Err(e) => Err(ap.fail(e)),
    }
}

struct Applier<'a> {
    target: &'a dyn Image,
    rules: ApplyRules,
    progress: &'a dyn Progress,
    report: ImportReport,
    /// The from/to checks ran (they run before the first change).
    checked: bool,
    mutated: bool,
    /// HEAD was verified equal to the from-snapshot: rollback restores it.
    verified_from: bool,
    create_to: bool,
}

impl Applier<'_> {
    fn run<R: Read>(&mut self, r: &mut DiffReader<R>, pool: &mut WritePool<'_>) -> Result<()> {
        loop {
            let at = r.position();
            match r.next_record()? {
                Record::FromSnap(name) => self.on_from_snap(name, at)?,
                Record::ToSnap(name) => self.on_to_snap(name)?,
                Record::Protected(p) => self.report.protected = Some(p),
                Record::Size(size) => {
                    self.before_change()?;
                    pool.barrier()?;
                    self.resize(size)?;
                }
                Record::Data { offset, len } => {
                    self.before_change()?;
                    self.data(r, pool, offset, len)?;
                }
                Record::Zero { offset, len } => {
                    self.before_change()?;
                    pool.submit(Job::Zero { offset, len })?;
                    self.report.zero_bytes += len;
                    self.progress.advance(len);
                }
                Record::End => return self.check_once(),
            }
        }
    }

    fn on_from_snap(&mut self, name: String, at: u64) -> Result<()> {
        if self.checked && !self.rules.force {
            return Err(self.refused(format!(
                "the from-snapshot record at byte {at} comes after data, so the target cannot be checked first"
            )));
        }
        self.report.from_snap = Some(name);
        Ok(())
    }

    fn on_to_snap(&mut self, name: String) -> Result<()> {
        self.report.to_snap = Some(name);
        if self.checked {
            self.check_to()?;
        }
        Ok(())
    }

    fn before_change(&mut self) -> Result<()> {
        self.check_once()?;
        self.mutated = true;
        Ok(())
    }

    fn check_once(&mut self) -> Result<()> {
        if !self.checked {
            self.checked = true;
            self.check_chain()?;
            self.check_from()?;
            self.check_to()?;
        }
        Ok(())
    }

    fn check_chain(&self) -> Result<()> {
        match &self.rules.expect_from {
            Some(want) if *want != self.report.from_snap => Err(StreamError::Inconsistent {
                what: "image v2 stream".into(),
                why: format!(
                    "a diff starts from snapshot {:?}, expected {:?}",
                    self.report.from_snap, want
                ),
            }),
            _ => Ok(()),
        }
    }

    fn check_from(&mut self) -> Result<()> {
        let Some(from) = self.report.from_snap.clone() else {
            return Ok(());
        };
        let lenient = self.rules.force || self.rules.trust_from;
        let Some(snaps) = self.target.snapshots() else {
            if lenient {
                return self.noted(format!("not checking from-snapshot {from}: no snapshots"));
            }
            return Err(self.refused(format!(
                "it has no snapshots, so the stream's from-snapshot {from} cannot be checked (force applies anyway)"
            )));
        };
        if !snapshot_exists(snaps, &from)? {
            if self.rules.force {
                return self.noted(format!("from-snapshot {from} is missing; applying anyway"));
            }
            return Err(self.refused(format!(
                "its snapshot {from} (the stream's from-snapshot) does not exist"
            )));
        }
        if self.rules.force || !self.rules.verify_head {
            return Ok(());
        }
        if !head_equals_snapshot(self.target, snaps, &from)? {
            return Err(self.refused(format!(
                "its HEAD changed since snapshot {from}; roll it back to {from} or use force"
            )));
        }
        self.verified_from = true;
        Ok(())
    }

    fn check_to(&mut self) -> Result<()> {
        let Some(to) = self.report.to_snap.clone() else {
            return Ok(());
        };
        self.create_to = false;
        let Some(snaps) = self.target.snapshots() else {
            return self.noted(format!(
                "{} has no snapshots; end snapshot {to} is not created",
                self.target.describe()
            ));
        };
        if snapshot_exists(snaps, &to)? {
            if self.rules.force {
                return self.noted(format!(
                    "snapshot {to} exists already; it is not created again"
                ));
            }
            return Err(self.refused(format!(
                "its snapshot {to} (the stream's end snapshot) already exists"
            )));
        }
        self.create_to = true;
        Ok(())
    }

    fn resize(&mut self, size: u64) -> Result<()> {
        self.report.size = Some(size);
        if self.target.size()? != size {
            self.target.resize(size)?;
        }
        Ok(())
    }

    /// Reads the payload in pieces of at most one record size into pool
    /// buffers, so memory stays bounded whatever `len` says.
    fn data<R: Read>(
        &mut self,
        r: &mut DiffReader<R>,
        pool: &mut WritePool<'_>,
        offset: u64,
        len: u64,
    ) -> Result<()> {
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(MAX_RECORD) as usize;
            let mut buf = pool.take_buffer()?;
            buf.set_len(n);
            r.read_data(&mut buf)?;
            pool.submit(Job::Write {
                offset: offset + done,
                buf,
            })?;
            done += n as u64;
            self.report.data_bytes += n as u64;
            self.progress.advance(n as u64);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ImportReport> {
        self.target.flush()?;
        if let (true, Some(to), Some(snaps)) = (
            self.create_to,
            &self.report.to_snap,
            self.target.snapshots(),
        ) {
            snaps.create(to)?;
            self.report.snapshot_created = true;
        }
        Ok(self.report)
    }

    /// Undoes a partial import where that is known to be safe, and says
    /// what state the target was left in.
    fn fail(&self, e: StreamError) -> StreamError {
        let consequence = self.undo();
        match e {
            StreamError::Truncated { offset, .. } => StreamError::ImportTruncated {
                offset,
                consequence,
            },
            other => {
                self.progress.note(&consequence);
                other
            }
        }
    }

    fn undo(&self) -> String {
        if !self.mutated {
            return "nothing was written; no end snapshot was created".into();
        }
        let target = self.target;
        match (&self.report.from_snap, self.verified_from, target.snapshots()) {
            (Some(from), true, Some(snaps)) => match snaps.rollback(from) {
                Ok(()) => format!("{} was rolled back to snapshot {from}; no end snapshot was created", target.describe()),
                Err(e) => format!("partial writes remain on {} (rollback to {from} failed: {e}); no end snapshot was created", target.describe()),
            },
            _ => format!("partial writes remain on {}; no end snapshot was created", target.describe()),
        }
    }

    fn refused(&self, why: String) -> StreamError {
        StreamError::Refused {
            target: self.target.describe(),
            why,
        }
    }

    /// Tells the user about a check that was skipped.
    fn noted(&self, msg: String) -> Result<()> {
        self.progress.note(&msg);
        Ok(())
    }
}
