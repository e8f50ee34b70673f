//! The transmission phase of one connection: requests in, replies out,
//! one at a time. A bad request gets an error reply naming what is wrong
//! and the connection goes on; only a broken stream (wrong magic, a
//! client gone) ends it.

use crate::export::{allocation, Export};
use crate::handshake::Negotiated;
use crate::proto::*;
use blockback_core::image::ImageError;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum End {
    /// `NBD_CMD_DISC`, or the client closed between requests.
    Disconnected,
    /// The export was stopped.
    Closed,
}

/// An error reply: the errno and a message for the client's log.
struct Refusal {
    errno: u32,
    message: String,
}

fn refuse<T>(errno: u32, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        errno,
        message: message.into(),
    })
}

impl From<ImageError> for Refusal {
    fn from(e: ImageError) -> Self {
        let errno = match &e {
            ImageError::ReadOnly { .. } | ImageError::PermissionDenied { .. } => EPERM,
            ImageError::Invalid { .. } => EINVAL,
            ImageError::Unsupported { .. } => ENOTSUP,
            _ => EIO,
        };
        Refusal {
            errno,
            message: e.to_string(),
        }
    }
}

pub(crate) struct Connection<'a, S> {
    pub stream: S,
    pub session: Negotiated,
    pub max_request: u32,
    pub peer: &'a str,
    buf: Vec<u8>,
}

impl<'a, S: Read + Write> Connection<'a, S> {
    pub fn new(stream: S, session: Negotiated, max_request: u32, peer: &'a str) -> Self {
        Connection {
            stream,
            session,
            max_request,
            peer,
            buf: Vec::new(),
        }
    }

    fn export(&self) -> &Export {
        &self.session.export
    }

    pub fn serve(&mut self) -> io::Result<End> {
        loop {
            let mut header = [0u8; REQUEST_LEN];
            match self.stream.read_exact(&mut header) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(End::Disconnected),
                Err(e) if self.export().is_closed() => {
                    tracing::debug!("nbd: {}: {e} after the export closed", self.peer);
                    return Ok(End::Closed);
                }
                Err(e) => return Err(e),
            }
            let request = Request::decode(&header)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if request.kind == CMD_DISC {
                return Ok(End::Disconnected);
            }
            if self.export().is_closed() {
                return Ok(End::Closed);
            }
            self.handle(&request)?;
        }
    }

    fn handle(&mut self, r: &Request) -> io::Result<()> {
        // A write's payload follows its header whatever the answer is.
        let payload = if r.kind == CMD_WRITE {
            self.read_payload(r)?
        } else {
            true
        };
        let result = if !payload {
            refuse(
                EOVERFLOW,
                format!(
                    "write of {} bytes is larger than the limit of {} bytes per request",
                    r.length, self.max_request
                ),
            )
        } else {
            self.dispatch(r)
        };
        match result {
            Ok(()) => Ok(()),
            Err(refusal) => {
                self.export().stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "nbd: {} on export {}: {}",
                    self.peer,
                    self.export().name(),
                    refusal.message
                );
                self.send_error(r, &refusal)
            }
        }
    }

    /// Reads a write's payload into the buffer, or discards it when it is
    /// over the limit (false).
    fn read_payload(&mut self, r: &Request) -> io::Result<bool> {
        if r.length > self.max_request {
            io::copy(
                &mut Read::by_ref(&mut self.stream).take(u64::from(r.length)),
                &mut io::sink(),
            )?;
            return Ok(false);
        }
        self.buf.resize(r.length as usize, 0);
        self.stream.read_exact(&mut self.buf)?;
        Ok(true)
    }

    fn dispatch(&mut self, r: &Request) -> Result<(), Refusal> {
        match r.kind {
            CMD_READ => self.read(r),
            CMD_WRITE => self.write(r),
            CMD_FLUSH => {
                self.check_flags(r, 0)?;
                self.export().image().flush()?;
                self.send_ok(r)
            }
            CMD_WRITE_ZEROES => self.write_zeroes(r),
            CMD_BLOCK_STATUS => self.block_status(r),
            CMD_TRIM => refuse(EINVAL, "trim is not offered by this server"),
            other => refuse(EINVAL, format!("unknown command {other}")),
        }
    }

    fn check_flags(&self, r: &Request, allowed: u16) -> Result<(), Refusal> {
        if r.flags & !allowed != 0 {
            return refuse(
                EINVAL,
                format!("flags {:#x} are not valid for command {}", r.flags, r.kind),
            );
        }
        Ok(())
    }

    /// Checks that `offset..offset+length` is inside the export.
    fn check_range(&self, r: &Request, errno: u32, what: &str) -> Result<(), Refusal> {
        let size = self.export().size();
        let inside = r
            .offset
            .checked_add(u64::from(r.length))
            .is_some_and(|end| end <= size);
        if !inside {
            return refuse(
                errno,
                format!(
                    "{what} of {} bytes at offset {} goes beyond the end of the export ({size} bytes)",
                    r.length, r.offset
                ),
            );
        }
        Ok(())
    }

    fn check_length(&self, r: &Request, what: &str) -> Result<(), Refusal> {
        if r.length > self.max_request {
            return refuse(
                if self.session.structured {
                    EOVERFLOW
                } else {
                    EINVAL
                },
                format!(
                    "{what} of {} bytes is larger than the limit of {} bytes per request",
                    r.length, self.max_request
                ),
            );
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<(), Refusal> {
        if !self.export().writable() {
            return refuse(
                EPERM,
                format!(
                    "export {} is read-only (serve it with --writable for a copy-on-write overlay)",
                    self.export().name()
                ),
            );
        }
        Ok(())
    }

    fn read(&mut self, r: &Request) -> Result<(), Refusal> {
        let allowed = if self.session.structured {
            CMD_FLAG_DF | CMD_FLAG_FUA
        } else {
            CMD_FLAG_FUA
        };
        self.check_flags(r, allowed)?;
        self.check_length(r, "read")?;
        self.check_range(r, EINVAL, "read")?;
        self.buf.resize(r.length as usize, 0);
        let image = self.export().image().clone();
        image.read_at(r.offset, &mut self.buf)?;
        self.export()
            .stats
            .bytes_read
            .fetch_add(u64::from(r.length), Ordering::Relaxed);
        self.send_data(r).map_err(io_refusal)
    }

    fn write(&mut self, r: &Request) -> Result<(), Refusal> {
        self.check_writable()?;
        self.check_flags(r, CMD_FLAG_FUA)?;
        self.check_range(r, ENOSPC, "write")?;
        let image = self.export().image().clone();
        image.write_at(r.offset, &self.buf)?;
        if r.flags & CMD_FLAG_FUA != 0 {
            image.flush()?;
        }
        self.export()
            .stats
            .bytes_written
            .fetch_add(u64::from(r.length), Ordering::Relaxed);
        self.send_ok(r)
    }

    fn write_zeroes(&mut self, r: &Request) -> Result<(), Refusal> {
        self.check_writable()?;
        self.check_flags(r, CMD_FLAG_FUA | CMD_FLAG_NO_HOLE)?;
        self.check_range(r, ENOSPC, "write of zeroes")?;
        let image = self.export().image().clone();
        image.write_zeroes(r.offset, u64::from(r.length))?;
        if r.flags & CMD_FLAG_FUA != 0 {
            image.flush()?;
        }
        self.send_ok(r)
    }

    fn block_status(&mut self, r: &Request) -> Result<(), Refusal> {
        if !self.session.base_allocation {
            return refuse(
                EINVAL,
                "block status needs the base:allocation context negotiated",
            );
        }
        self.check_flags(r, CMD_FLAG_REQ_ONE)?;
        if r.length == 0 {
            return refuse(EINVAL, "block status of 0 bytes");
        }
        self.check_range(r, EINVAL, "block status")?;
        let one = r.flags & CMD_FLAG_REQ_ONE != 0;
        let extents = allocation(self.export().image().as_ref(), r.offset, r.length, one)?;
        let chunk = block_status_chunk(r.cookie, REPLY_FLAG_DONE, BASE_ALLOCATION_ID, &extents);
        self.send(&[&chunk]).map_err(io_refusal)
    }

    fn send_ok(&mut self, r: &Request) -> Result<(), Refusal> {
        let header = if self.session.structured {
            chunk_header(r.cookie, REPLY_FLAG_DONE, REPLY_TYPE_NONE, 0).to_vec()
        } else {
            simple_reply(r.cookie, 0).to_vec()
        };
        self.send(&[&header]).map_err(io_refusal)
    }

    fn send_data(&mut self, r: &Request) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let result = if self.session.structured {
            let header = chunk_header(
                r.cookie,
                REPLY_FLAG_DONE,
                REPLY_TYPE_OFFSET_DATA,
                8 + r.length,
            );
            self.send(&[&header, &r.offset.to_be_bytes(), &buf])
        } else {
            self.send(&[&simple_reply(r.cookie, 0), &buf])
        };
        self.buf = buf;
        result
    }

    fn send_error(&mut self, r: &Request, refusal: &Refusal) -> io::Result<()> {
        if self.session.structured {
            self.send(&[&error_chunk(r.cookie, refusal.errno, &refusal.message)])
        } else {
            self.send(&[&simple_reply(r.cookie, refusal.errno)])
        }
    }

    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        for part in parts {
            self.stream.write_all(part)?;
        }
        self.stream.flush()
    }
}

/// A reply that could not be sent: the connection is gone; the caller's
/// next read ends it.
fn io_refusal(e: io::Error) -> Refusal {
    Refusal {
        errno: EIO,
        message: format!("sending the reply failed: {e}"),
    }
}
