//! Where the engine takes the time a backup records (its `created_at`, the
//! time in its snapshot name), so retention can be tested over simulated
//! months without sleeping.

use std::sync::Mutex;

pub trait Clock: Send + Sync {
    /// Unix seconds (UTC), as the catalog stores times.
    fn now(&self) -> f64;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        super::unix_now()
    }
}

/// A clock moved by hand; the system's time until first set.
#[derive(Debug, Default)]
pub struct ManualClock(Mutex<Option<f64>>);

impl ManualClock {
    pub fn set(&self, unix: f64) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(unix);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        let set = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.unwrap_or_else(super::unix_now)
    }
}
