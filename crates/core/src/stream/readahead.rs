//! Bounded, ordered read-ahead: a few threads read the next pieces of an
//! image while the caller consumes earlier ones, so a stream export runs at
//! the source's read speed instead of one read latency per piece.

use std::collections::VecDeque;
use std::thread;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::error::{Result, StreamError};
use crate::image::Image;
use crate::iobuf::IoBuf;

/// Reader threads.
const READERS: usize = 3;
/// Pieces read ahead of the consumer (each up to one record, 4 MiB).
const IN_FLIGHT: usize = 4;

/// One part of the export, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Data { offset: u64, len: u64 },
    Zero { offset: u64, len: u64 },
}

type Reply = Result<IoBuf>;

struct Job {
    offset: u64,
    len: usize,
    reply: Sender<Reply>,
}

enum Pending {
    Zero(u64, u64),
    Data(u64, Receiver<Reply>),
}

/// Calls `sink` for every piece in order; data pieces come with their bytes.
/// Memory: at most `IN_FLIGHT + 1` buffers of the largest piece.
pub fn for_each_piece(
    image: &dyn Image,
    pieces: &[Piece],
    sink: &mut dyn FnMut(Piece, &[u8]) -> Result<()>,
) -> Result<()> {
    let (job_tx, job_rx) = bounded::<Job>(IN_FLIGHT);
    let (buf_tx, buf_rx) = bounded::<IoBuf>(IN_FLIGHT + 1);
    for _ in 0..=IN_FLIGHT {
        // Cannot fail: the channel has room for every buffer.
        let _ = buf_tx.send(IoBuf::default());
    }
    thread::scope(|s| {
        for _ in 0..READERS {
            let (jobs, bufs) = (job_rx.clone(), buf_rx.clone());
            s.spawn(move || read_jobs(image, jobs, bufs));
        }
        drop(job_rx);
        let result = drive(pieces, &job_tx, &buf_tx, sink);
        drop(job_tx); // readers exit once the queue is drained
        result
    })
}

fn read_jobs(image: &dyn Image, jobs: Receiver<Job>, bufs: Receiver<IoBuf>) {
    for job in jobs {
        let Ok(mut buf) = bufs.recv() else { return };
        buf.set_len(job.len);
        let reply = image.read_at(job.offset, &mut buf).map(|()| buf);
        // The consumer may have stopped on an error; nobody to tell then.
        let _ = job.reply.send(reply.map_err(StreamError::from));
    }
}

fn drive(
    pieces: &[Piece],
    jobs: &Sender<Job>,
    bufs: &Sender<IoBuf>,
    sink: &mut dyn FnMut(Piece, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut next = pieces.iter();
    loop {
        while pending.len() < IN_FLIGHT {
            let Some(p) = next.next() else { break };
            pending.push_back(submit(*p, jobs)?);
        }
        let Some(front) = pending.pop_front() else {
            return Ok(());
        };
        consume(front, bufs, sink)?;
    }
}

fn submit(p: Piece, jobs: &Sender<Job>) -> Result<Pending> {
    match p {
        Piece::Zero { offset, len } => Ok(Pending::Zero(offset, len)),
        Piece::Data { offset, len } => {
            let (reply, rx) = bounded(1);
            let len = usize::try_from(len).map_err(|_| overflow(offset))?;
            jobs.send(Job { offset, len, reply })
                .map_err(|_| stopped())?;
            Ok(Pending::Data(offset, rx))
        }
    }
}

fn consume(
    p: Pending,
    bufs: &Sender<IoBuf>,
    sink: &mut dyn FnMut(Piece, &[u8]) -> Result<()>,
) -> Result<()> {
    match p {
        Pending::Zero(offset, len) => sink(Piece::Zero { offset, len }, &[]),
        Pending::Data(offset, rx) => {
            let buf = rx.recv().map_err(|_| stopped())??;
            let len = buf.len() as u64;
            let r = sink(Piece::Data { offset, len }, &buf);
            let _ = bufs.send(buf);
            r
        }
    }
}

fn overflow(offset: u64) -> StreamError {
    StreamError::Inconsistent {
        what: "export".into(),
        why: format!("piece at {offset} does not fit in memory"),
    }
}

fn stopped() -> StreamError {
    StreamError::Inconsistent {
        what: "export".into(),
        why: "reader threads stopped unexpectedly".into(),
    }
}
