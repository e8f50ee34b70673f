//! A small pool of writer threads with a bounded set of buffers, so an
//! import keeps several writes in flight even when its input is a pipe.
//!
//! Ordering: jobs that do not overlap run in any order (the final image is
//! the same). A job that overlaps one still in flight (rbd does not enforce
//! record order) first waits for it: overlapping writes land in stream order,
//! while an unordered but disjoint stream keeps every writer busy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use super::error::{Result, StreamError};
use super::zeros;
use crate::image::{Image, ImageError};
use crate::iobuf::IoBuf;

/// Writer threads at least; a target that wants more requests in flight
/// ([`Image::queue_depth`], a network backend) gets that many.
const MIN_WRITERS: usize = 4;
/// Data buffers (each up to one 4 MiB record piece) beyond one per writer,
/// so the reader fills the next while every writer is busy.
const SPARE_BUFFERS: usize = 4;

/// One unit of work for a writer thread.
pub enum Job {
    /// Zero runs inside `buf` are written as write_zeroes.
    Write {
        offset: u64,
        buf: IoBuf,
    },
    Zero {
        offset: u64,
        len: u64,
    },
}

impl Job {
    fn range(&self) -> (u64, u64) {
        match self {
            Job::Write { offset, buf } => (*offset, offset.saturating_add(buf.len() as u64)),
            Job::Zero { offset, len } => (*offset, offset.saturating_add(*len)),
        }
    }
}

struct Shared {
    failed: AtomicBool,
    error: Mutex<Option<ImageError>>,
}

/// The caller's side of the pool (see [`with_pool`]).
pub struct WritePool<'s> {
    jobs: Option<Sender<Job>>,
    done: Receiver<(u64, u64)>,
    bufs: Receiver<IoBuf>,
    shared: &'s Shared,
    /// Ranges of the jobs queued or running (a few: the queue is bounded).
    in_flight: Vec<(u64, u64)>,
}

/// Runs `f` with a pool of writers on `target`; every job has finished when
/// this returns, and a failed write is reported even if `f` succeeded.
pub fn with_pool<T>(
    target: &dyn Image,
    f: impl FnOnce(&mut WritePool<'_>) -> Result<T>,
) -> Result<T> {
    let shared = Shared {
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
    };
    let writers = target.queue_depth().max(MIN_WRITERS);
    let buffers = writers + SPARE_BUFFERS;
    let (job_tx, job_rx) = bounded::<Job>(writers * 2);
    let (done_tx, done_rx) = unbounded::<(u64, u64)>();
    let (buf_tx, buf_rx) = bounded::<IoBuf>(buffers);
    for _ in 0..buffers {
        let _ = buf_tx.send(IoBuf::default()); // cannot fail: there is room
    }
    thread::scope(|s| {
        for _ in 0..writers {
            let (jobs, done, bufs, sh) = (job_rx.clone(), done_tx.clone(), buf_tx.clone(), &shared);
            s.spawn(move || work(target, jobs, done, bufs, sh));
        }
        // Only the writers hold these now: if they all die, our receives
        // fail instead of blocking forever.
        drop((job_rx, done_tx, buf_tx));
        let mut pool = WritePool {
            jobs: Some(job_tx),
            done: done_rx,
            bufs: buf_rx,
            shared: &shared,
            in_flight: Vec::new(),
        };
        let result = f(&mut pool);
        let finished = pool.finish();
        let value = result?;
        finished.map(|()| value)
    })
}

fn work(
    target: &dyn Image,
    jobs: Receiver<Job>,
    done: Sender<(u64, u64)>,
    bufs: Sender<IoBuf>,
    sh: &Shared,
) {
    for job in jobs {
        let range = job.range();
        if !sh.failed.load(Ordering::Acquire) {
            if let Err(e) = run_job(target, &job) {
                let mut slot = sh.error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(e);
                sh.failed.store(true, Ordering::Release);
            }
        }
        if let Job::Write { buf, .. } = job {
            let _ = bufs.send(buf);
        }
        let _ = done.send(range);
    }
}

fn run_job(target: &dyn Image, job: &Job) -> Result<(), ImageError> {
    match job {
        Job::Zero { offset, len } => target.write_zeroes(*offset, *len),
        Job::Write { offset, buf } => {
            for run in zeros::runs(*offset, buf) {
                let at = offset + run.range.start as u64;
                if run.zero {
                    target.write_zeroes(at, run.range.len() as u64)?;
                } else {
                    target.write_at(at, &buf[run.range])?;
                }
            }
            Ok(())
        }
    }
}

impl WritePool<'_> {
    /// An empty buffer to fill for a [`Job::Write`]; blocks while all are busy.
    pub fn take_buffer(&mut self) -> Result<IoBuf> {
        self.check()?;
        self.bufs.recv().map_err(|_| stopped())
    }

    /// Queues `job`; fails early if an earlier job failed.
    pub fn submit(&mut self, job: Job) -> Result<()> {
        self.check()?;
        while let Ok(range) = self.done.try_recv() {
            self.retire(range);
        }
        let (start, end) = job.range();
        while self.in_flight.iter().any(|&(s, e)| s < end && start < e) {
            let range = self.done.recv().map_err(|_| stopped())?;
            self.retire(range);
        }
        self.check()?;
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(job).map_err(|_| stopped())?;
        self.in_flight.push((start, end));
        Ok(())
    }

    /// Forgets one finished job with this range.
    fn retire(&mut self, range: (u64, u64)) {
        if let Some(i) = self.in_flight.iter().position(|&r| r == range) {
            self.in_flight.swap_remove(i);
        }
    }

    /// Waits until every queued job has run; reports the first failure.
    pub fn barrier(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            let range = self.done.recv().map_err(|_| stopped())?;
            self.retire(range);
        }
        self.check()
    }

    fn finish(&mut self) -> Result<()> {
        self.jobs = None; // writers exit after the queue drains
        self.barrier()
    }

    fn check(&self) -> Result<()> {
        if !self.shared.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut slot = self.shared.error.lock().unwrap_or_else(|p| p.into_inner());
        Err(match slot.take() {
            Some(e) => StreamError::Image(e),
            None => StreamError::Inconsistent {
                what: "import".into(),
                why: "an earlier write failed".into(),
            },
        })
    }
}

fn stopped() -> StreamError {
    StreamError::Inconsistent {
        what: "import".into(),
        why: "writer threads stopped unexpectedly".into(),
    }
}
