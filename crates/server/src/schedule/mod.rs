//! Schedules: backups the service queues by itself, per volume or group
//! of volumes, on a calendar (docs/design.md, "Schedules").

pub mod calendar;
pub mod plan;
pub mod scheduler;

pub use calendar::Calendar;
pub use plan::Schedule;
pub use scheduler::{Clock, Scheduler, SystemClock};
