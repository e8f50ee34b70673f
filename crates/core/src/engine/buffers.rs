//! A bound on the memory transfers hold, shared by every transfer that
//! uses it (the service's jobs).
//!
//! Each copy worker needs a segment-sized buffer while its segment is in
//! flight. Alone, a transfer gives each worker its own (the CLI: one
//! transfer, memory = workers x segment). A service running several jobs
//! would multiply that by the number of jobs; with a [`TransferBuffers`]
//! pool its workers instead borrow a buffer per segment and wait when the
//! pool is lent out, so the service's transfer memory stays under one
//! limit however many jobs run, and buffers are reused, not reallocated.

use super::plan::SEGMENT;
use crate::iobuf::IoBuf;
use std::sync::{Condvar, Mutex, MutexGuard};

/// What one segment in flight holds: the data read, and the target's
/// bytes when a transfer compares the target (restores onto a volume).
#[derive(Default)]
pub(crate) struct Buffers {
    pub(crate) data: IoBuf,
    pub(crate) target: IoBuf,
}

/// A pool of at most `limit` segment buffers, lent one per segment in flight.
pub struct TransferBuffers {
    limit: usize,
    pool: Mutex<Pool>,
    returned: Condvar,
}

#[derive(Default)]
struct Pool {
    free: Vec<Buffers>,
    /// Buffers made so far (free or lent); never above the limit.
    made: usize,
    lent: usize,
    /// The most lent at once, for tests and reports.
    peak_lent: usize,
}

impl TransferBuffers {
    /// A pool holding at most `bytes` of segment buffers (at least one
    /// segment's worth, so a transfer always makes progress).
    pub fn with_bytes(bytes: u64) -> Self {
        TransferBuffers {
            limit: (bytes / SEGMENT).max(1) as usize,
            pool: Mutex::default(),
            returned: Condvar::new(),
        }
    }

    /// Segments that may be in flight at once, over all transfers.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The most segments that were in flight at once so far.
    pub fn peak_lent(&self) -> usize {
        self.lock().peak_lent
    }

    /// Borrows a buffer, waiting while all `limit` are lent.
    pub(crate) fn take(&self) -> Lent<'_> {
        let mut pool = self.lock();
        loop {
            if let Some(buffers) = pool.free.pop() {
                return self.lend(pool, buffers);
            }
            if pool.made < self.limit {
                pool.made += 1;
                return self.lend(pool, Buffers::default());
            }
            pool = self.returned.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn lend(&self, mut pool: MutexGuard<'_, Pool>, buffers: Buffers) -> Lent<'_> {
        pool.lent += 1;
        pool.peak_lent = pool.peak_lent.max(pool.lent);
        Lent {
            owner: self,
            buffers: Some(buffers),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A borrowed buffer; back to the pool on drop.
pub(crate) struct Lent<'p> {
    owner: &'p TransferBuffers,
    buffers: Option<Buffers>,
}

impl std::ops::Deref for Lent<'_> {
    type Target = Buffers;
    fn deref(&self) -> &Buffers {
        self.buffers.as_ref().expect("lent until dropped")
    }
}

impl std::ops::DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut Buffers {
        self.buffers.as_mut().expect("lent until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut pool = self.owner.lock();
        pool.lent -= 1;
        if let Some(buffers) = self.buffers.take() {
            pool.free.push(buffers);
        }
        drop(pool);
        self.owner.returned.notify_one();
    }
}

impl std::fmt::Debug for TransferBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferBuffers")
            .field("limit", &self.limit)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn limit_is_bytes_over_segment_at_least_one() {
        assert_eq!(TransferBuffers::with_bytes(128 << 20).limit(), 32);
        assert_eq!(TransferBuffers::with_bytes(0).limit(), 1);
    }

    #[test]
    fn threads_never_hold_more_than_the_limit() {
        let pool = TransferBuffers::with_bytes(3 * SEGMENT);
        let holding = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    for _ in 0..5 {
                        let mut lent = pool.take();
                        lent.data.set_len(16);
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        holding.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(pool.peak_lent(), 3);
        let pool_state = pool.lock();
        assert_eq!((pool_state.made, pool_state.lent), (3, 0));
        assert!(pool_state.free.iter().all(|b| b.data.len() == 16), "reused");
    }
}
