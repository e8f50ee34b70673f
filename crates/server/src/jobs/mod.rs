//! Jobs: what they ask for ([`request`]), how a worker runs them
//! ([`worker`]), how their progress is tracked ([`progress`]), and what
//! runs them against the engine ([`runner`]).

pub mod progress;
mod reaper;
pub mod request;
pub mod runner;
pub mod worker;
