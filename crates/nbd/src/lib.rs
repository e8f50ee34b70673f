//! blockback's NBD server.
//!
//! Serves [`Image`](blockback_core::image::Image)s -- a backup read-only,
//! a copy-on-write view of one, a live restore -- to any NBD client
//! (qemu, nbdcopy, nbdinfo, the kernel's nbd-client) over a Unix socket or
//! loopback TCP. The protocol is the NetworkBlockDevice project's: fixed
//! newstyle negotiation (`NBD_OPT_GO`/`INFO`/`LIST`, the old
//! `EXPORT_NAME`), structured replies, and block status with the
//! `base:allocation` context, so sparse-aware clients skip holes.
//!
//! The interface a front end needs is narrow: [`Server::bind`] a
//! [`Listen`] address, [`Server::add_export`] / [`Server::remove_export`]
//! / [`Server::exports`] while it runs, [`Server::shutdown`] at the end.
//! Everything is synchronous (a thread per connection): images do
//! blocking I/O, and an async front end calls these from a blocking task.
//!
//! Limits ([`Limits`]): connections at once, exports, and the largest
//! request (which bounds each connection's buffer), so memory stays at
//! most `max_connections x max_request`; one image handle per export,
//! shared by all its connections.

mod error;
mod export;
mod handshake;
pub mod proto;
mod server;
mod stream;
mod transmission;

pub use error::{NbdError, NbdResult};
pub use export::{allocation, Export, ExportInfo};
pub use server::{Limits, Listen, Server};
