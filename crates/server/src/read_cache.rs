//! Answers of read-only API requests, kept while the catalog's change mark
//! stays the same (`Catalog::change_mark`): a burst of the same requests
//! (dashboards, Horizon polling a list) reads and serializes the catalog
//! once per change instead of once per request. Backends without a mark
//! (PostgreSQL) answer every request afresh.

use crate::state::{blocking, AppState, ServiceError, ServiceResult};
use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the cache may hold; past that it starts over.
const MAX_BYTES: usize = 16 << 20;

/// The answers read at one change mark, by request.
#[derive(Default)]
pub struct ReadCache {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    mark: u64,
    answers: HashMap<String, Bytes>,
    bytes: usize,
}

impl ReadCache {
    /// The answer kept for `key` at `mark`.
    fn get(&self, key: &str, mark: u64) -> Option<Bytes> {
        let kept = self.lock();
        (kept.mark == mark)
            .then(|| kept.answers.get(key).cloned())
            .flatten()
    }

    /// Keeps `answer`, read after `mark` was taken. Answers of any other
    /// mark are dropped: marks never come back, so they can never be
    /// served again.
    fn put(&self, key: String, mark: u64, answer: Bytes) {
        let mut kept = self.lock();
        if kept.mark != mark || kept.bytes + answer.len() > MAX_BYTES {
            *kept = Kept {
                mark,
                ..Kept::default()
            };
        }
        kept.bytes += answer.len();
        kept.answers.insert(key, answer);
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `read`'s answer as a JSON response: the one kept for `key` while the
/// catalog has not changed, else read now (on a blocking thread) and kept.
/// `key` must name everything the answer depends on.
pub async fn cached_json<T: Serialize>(
    state: Arc<AppState>,
    key: String,
    read: impl FnOnce(&AppState) -> ServiceResult<T> + Send + 'static,
) -> ServiceResult<Response> {
    let body = blocking(move || {
        // Taken before reading: a change committed meanwhile moves the
        // mark, so what is kept under this one is never older than it.
        let mark = state.catalog.change_mark()?;
        if let Some(hit) = mark.and_then(|m| state.read_cache.get(&key, m)) {
            return Ok(hit);
        }
        let value = read(&state)?;
        let body = Bytes::from(
            serde_json::to_vec(&value).map_err(|e| ServiceError::Internal(e.to_string()))?,
        );
        if let Some(m) = mark {
            state.read_cache.put(key, m, body.clone());
        }
        Ok(body)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_per_mark_only() {
        let cache = ReadCache::default();
        cache.put("a".into(), 7, Bytes::from_static(b"one"));
        assert_eq!(cache.get("a", 7).as_deref(), Some(&b"one"[..]));
        assert_eq!(cache.get("b", 7), None);
        assert_eq!(cache.get("a", 8), None);
        cache.put("b".into(), 8, Bytes::from_static(b"two"));
        assert_eq!(cache.get("a", 7), None, "a new mark drops the old answers");
        assert_eq!(cache.get("b", 8).as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = ReadCache::default();
        let big = Bytes::from(vec![0u8; MAX_BYTES / 2 + 1]);
        cache.put("a".into(), 1, big.clone());
        cache.put("b".into(), 1, big);
        assert_eq!(cache.get("a", 1), None);
        assert!(cache.get("b", 1).is_some());
    }
}
