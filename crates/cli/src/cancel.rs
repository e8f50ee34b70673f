//! Ctrl-C: the first one asks the running operation to stop and clean up
//! (a backup then ends as error with nothing partial published); a second
//! one exits at once, leaving the cleanup to the next command's recovery.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler; failure to install only loses graceful Ctrl-C.
pub fn install() {
    let result = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("blockback: cancelling, cleaning up (Ctrl-C again to stop at once)");
    });
    if let Err(e) = result {
        tracing::warn!("Ctrl-C handler not installed: {e}");
    }
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
