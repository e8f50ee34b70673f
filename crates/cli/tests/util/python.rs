//! The Python test venv `scripts/python-env.sh` makes (Cinder 29, the
//! OpenStack clients, blockback's Cinder driver package).

use std::path::PathBuf;

/// The test venv's python; `None` (skip, loudly) unless required.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("BLOCKBACK_TEST_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var("BLOCKBACK_REQUIRE_PYTHON").as_deref() == Ok("1") => {
            panic!("BLOCKBACK_REQUIRE_PYTHON=1 but BLOCKBACK_TEST_PYTHON is not set: run scripts/python-env.sh DIR")
        }
        None => {
            eprintln!(
                "SKIPPED: no Python test venv (set BLOCKBACK_TEST_PYTHON; scripts/python-env.sh)"
            );
            None
        }
    }
}
