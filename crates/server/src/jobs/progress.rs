//! A running job's progress: the engine reports into it (from its worker
//! threads), the heartbeat reads it and writes it to the job row, and a
//! cancel request reaches the engine through it.

use blockback_core::progress::Progress;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct JobProgress {
    phase: Mutex<(String, Instant)>,
    done: AtomicU64,
    total: AtomicU64,
    cancelled: AtomicBool,
    /// Bytes the engine read and wrote over the job (for metrics).
    transferred: AtomicU64,
}

/// A snapshot of the progress, for a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressNow {
    pub phase: String,
    pub done: u64,
    pub total: u64,
    /// Bytes per second since the phase began.
    pub rate: f64,
}

impl Default for JobProgress {
    fn default() -> Self {
        JobProgress {
            phase: Mutex::new(("starting".into(), Instant::now())),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            transferred: AtomicU64::new(0),
        }
    }
}

impl JobProgress {
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub fn now(&self) -> ProgressNow {
        let (phase, started) = self.phase.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let done = self.done.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64();
        ProgressNow {
            phase,
            done,
            total: self.total.load(Ordering::Relaxed),
            rate: if secs > 0.0 { done as f64 / secs } else { 0.0 },
        }
    }

    /// Bytes transferred over the whole job.
    pub fn transferred(&self) -> u64 {
        self.transferred.load(Ordering::Relaxed)
    }

    pub fn set_phase(&self, phase: &str) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = (phase.into(), Instant::now());
    }
}

impl Progress for JobProgress {
    fn begin(&self, phase: &str, total: u64) {
        self.set_phase(phase);
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
        self.transferred.fetch_add(bytes, Ordering::Relaxed);
    }

    fn end(&self) {}

    fn note(&self, message: &str) {
        tracing::info!("{message}");
    }

    fn phase_done(&self, phase: &str, seconds: f64) {
        tracing::debug!(phase, seconds, "phase done");
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}
