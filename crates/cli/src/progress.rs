//! Progress display: a bar with rate and ETA on a terminal, periodic log
//! lines otherwise, nothing with --quiet.

use blockback_core::progress::Progress;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(5);

/// The display, plus the durations of the engine's timed phases (for
/// `--json` output).
pub struct CliProgress {
    display: Display,
    phases: Mutex<Vec<(String, f64)>>,
}

enum Display {
    Quiet,
    Bar(Mutex<Option<ProgressBar>>),
    Log(LogLines),
}

pub struct LogLines {
    state: Mutex<(String, u64, Instant, Instant)>,
    done: AtomicU64,
}

impl CliProgress {
    pub fn new(quiet: bool) -> Self {
        let display = if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            Display::Bar(Mutex::new(None))
        } else {
            let now = Instant::now();
            Display::Log(LogLines {
                state: Mutex::new((String::new(), 0, now, now)),
                done: AtomicU64::new(0),
            })
        };
        CliProgress {
            display,
            phases: Mutex::new(Vec::new()),
        }
    }

    /// Seconds spent in each timed phase so far, in order.
    pub fn phases(&self) -> Vec<(String, f64)> {
        self.phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg:8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

impl Progress for CliProgress {
    fn begin(&self, phase: &str, total: u64) {
        match &self.display {
            Display::Quiet => {}
            Display::Bar(bar) => {
                let b = ProgressBar::new(total)
                    .with_style(bar_style())
                    .with_message(phase.to_string());
                *bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(b);
            }
            Display::Log(log) => {
                let now = Instant::now();
                *log.state.lock().unwrap_or_else(|p| p.into_inner()) =
                    (phase.to_string(), total, now, now);
                log.done.store(0, Ordering::Relaxed);
            }
        }
    }

    fn advance(&self, bytes: u64) {
        match &self.display {
            Display::Quiet => {}
            Display::Bar(bar) => {
                if let Some(b) = bar.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    b.inc(bytes);
                }
            }
            Display::Log(log) => log.advance(bytes),
        }
    }

    fn end(&self) {
        if let Display::Bar(bar) = &self.display {
            if let Some(b) = bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
                b.finish_and_clear();
            }
        }
    }

    fn note(&self, message: &str) {
        if !matches!(self.display, Display::Quiet) {
            eprintln!("note: {message}");
        }
    }

    fn phase_done(&self, phase: &str, seconds: f64) {
        tracing::debug!("{phase}: {seconds:.3} s");
        let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
        phases.push((phase.to_string(), seconds));
    }
}

impl LogLines {
    fn advance(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (phase, total, started, last) = &mut *state;
        if last.elapsed() < LOG_EVERY {
            return;
        }
        *last = Instant::now();
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            (*total).saturating_sub(done) as f64 / rate
        } else {
            0.0
        };
        eprintln!(
            "{phase}: {} of {} ({}/s, ETA {eta:.0} s)",
            HumanBytes(done),
            HumanBytes(*total),
            HumanBytes(rate as u64)
        );
    }
}
