//! Progress reporting: the core reports, front ends display.

/// Receives progress of a long operation. The CLI shows a bar or log lines;
/// a service updates its job row.
pub trait Progress: Send + Sync {
    /// A new phase begins; `total` bytes are expected (0 when unknown).
    fn begin(&self, phase: &str, total: u64);
    /// `bytes` more bytes of the current phase are done.
    fn advance(&self, bytes: u64);
    /// The current phase has ended.
    fn end(&self);
    /// A notable event the user should see (e.g. why a backup is full).
    fn note(&self, message: &str);
    /// A timed step of an operation took `seconds` (for reports and
    /// benchmarks: snapshot creations, transfer, pruning).
    fn phase_done(&self, phase: &str, seconds: f64) {
        let _ = (phase, seconds);
    }
    /// Whether the user asked to stop: transfers then end with
    /// [`cancelled`], and the operation cleans up as after any failure.
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// The error a transfer ends with when [`Progress::is_cancelled`].
pub fn cancelled(what: &str) -> crate::image::ImageError {
    crate::image::ImageError::Io {
        what: what.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled by the user"),
    }
}

/// Runs `step`, reporting its duration as `phase`.
pub fn timed<T>(progress: &dyn Progress, phase: &str, step: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let result = step();
    progress.phase_done(phase, start.elapsed().as_secs_f64());
    result
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _phase: &str, _total: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn end(&self) {}
    fn note(&self, _message: &str) {}
}
