//! A connection's circuit breaker: once one operation ran into the
//! cluster's timeout, every further operation on that connection fails at
//! once instead of waiting its own.
//!
//! librados times each operation out on its own (`rados_osd_op_timeout`,
//! `rados_mon_op_timeout`). A failing backup runs many operations in turn
//! after the one that timed out -- the cleanup's removals, the lock's
//! release, closing the image (which releases its exclusive lock and its
//! watch) -- and with the cluster down each waited its full timeout: 724 s
//! with the 120 s default for one backup. A timeout means the cluster is
//! unreachable from here, and the next operation would wait just as long,
//! so nothing more is sent. Requests already in flight (other workers'
//! aio) cannot be cancelled through librbd's API and end within their own
//! timeout, so a job fails within one to two timeouts of the outage.
//!
//! A tripped connection stays tripped: its images are left open and it is
//! not shut down (both would wait on the dead cluster), and a caller that
//! wants to try again connects anew ([`crate::Cluster::is_tripped`]).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::ffi::Errno;

/// Trips on ETIMEDOUT; once tripped, refuses every call with ETIMEDOUT.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    tripped: AtomicBool,
}

impl Breaker {
    /// Runs `call` unless tripped; trips when it times out.
    pub(crate) fn run<T>(&self, call: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
        if self.is_tripped() {
            return Err(Errno(libc::ETIMEDOUT));
        }
        let result = call();
        if let Err(Errno(libc::ETIMEDOUT)) = result {
            self.trip();
        }
        result
    }

    pub(crate) fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    fn trip(&self) {
        if !self.tripped.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "the Ceph cluster did not answer in time: every further operation \
                 on this connection fails at once"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_trips_it_and_later_calls_are_not_made() {
        let b = Breaker::default();
        assert_eq!(
            b.run(|| Err::<(), _>(Errno(libc::ENOENT))),
            Err(Errno(libc::ENOENT))
        );
        assert!(!b.is_tripped(), "other errors leave it alone");
        assert_eq!(b.run(|| Ok(5)), Ok(5));
        assert_eq!(
            b.run(|| Err::<(), _>(Errno(libc::ETIMEDOUT))),
            Err(Errno(libc::ETIMEDOUT))
        );
        assert!(b.is_tripped());
        let mut called = false;
        let r = b.run(|| {
            called = true;
            Ok(())
        });
        assert_eq!(r, Err(Errno(libc::ETIMEDOUT)));
        assert!(!called, "a tripped connection makes no call");
    }
}
