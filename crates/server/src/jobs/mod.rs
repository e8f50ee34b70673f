//! Jobs: what they ask for ([`request`]), how a worker runs them
//! ([`worker`]), how their progress is tracked ([`progress`]), and what
//! runs them against the engine ([`runner`]), on threads of their own at
//! a lower CPU priority ([`thread`]).

pub mod progress;
mod reaper;
pub mod request;
pub mod runner;
mod thread;
pub mod worker;
