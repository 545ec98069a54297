//! Leaving the async thread: [`run_blocking`] and the [`BlockingSnapshot`] adapter.
//!
//! A backend over blocking storage implements its reads once, synchronously, as a
//! [`ReadView`] (where the table-name validation and the trivial answers live), and serves
//! its async [`Snapshot`] with [`BlockingSnapshot`], which runs each read of the view on
//! tokio's blocking pool.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{BackendError, Direction, Entry, KeyRange, ReadView, Snapshot};

/// Runs `f` on tokio's blocking pool (`tokio::task::spawn_blocking`) and waits for its result
/// without blocking the async thread.
///
/// When the task is cancelled (the runtime is shutting down) the result is
/// [`BackendError::Closed`]; when `f` panics it is [`BackendError::Engine`] carrying
/// `panicked` (say, which engine call panicked). The panic payload is dropped, so that no
/// message can carry stored bytes.
///
/// Must be called from within a tokio runtime.
///
/// # Errors
/// The error of `f`, or one of the two above.
pub async fn run_blocking<T, F>(panicked: &'static str, f: F) -> Result<T, BackendError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BackendError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(err) if err.is_cancelled() => Err(BackendError::Closed),
        Err(_) => Err(BackendError::Engine(panicked.into())),
    }
}

/// A [`Snapshot`] served by a synchronous [`ReadView`]: each read runs the view's method on
/// tokio's blocking pool ([`run_blocking`]), so the view may block (disk I/O, a lock) without
/// ever blocking an async worker thread.
///
/// The view is shared (an `Arc`) by the reads in flight, which may run concurrently (hence
/// `V: Sync`; wrap a view that is only `Send` in a lock of its own). It is dropped when the
/// snapshot and every read in flight are done. Reads answer exactly as the view's: its
/// checks (table names, empty key lists, `limit == 0`, empty ranges) are not repeated here, so
/// a read the view answers without touching storage still costs one thread hop.
/// [`Snapshot::tables`] is [`ReadView::tables`], which the view must implement.
pub struct BlockingSnapshot<V> {
    view: Arc<V>,
    panicked: &'static str,
}

impl<V: ReadView + Sync + 'static> BlockingSnapshot<V> {
    /// Serves `view` as a [`Snapshot`]; a read that panics returns
    /// [`BackendError::Engine`] with `panicked` (see [`run_blocking`]).
    pub fn new(view: V, panicked: &'static str) -> Self {
        Self {
            view: Arc::new(view),
            panicked,
        }
    }

    /// Runs `f` with the view on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&V) -> Result<T, BackendError> + Send + 'static,
    {
        let view = Arc::clone(&self.view);
        run_blocking(self.panicked, move || f(&view)).await
    }
}

#[async_trait]
impl<V: ReadView + Sync + 'static> Snapshot for BlockingSnapshot<V> {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let (table, key) = (table.to_owned(), key.to_vec());
        self.run(move |v| v.get(&table, &key)).await
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        let (table, keys) = (table.to_owned(), keys.to_vec());
        self.run(move |v| v.get_many(&table, &keys)).await
    }

    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        let table = table.to_owned();
        self.run(move |v| v.scan(&table, range, direction, limit))
            .await
    }

    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        let table = table.to_owned();
        self.run(move |v| v.len(&table)).await
    }

    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.run(|v| v.tables()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A view that panics on every read.
    struct Panics;

    impl ReadView for Panics {
        fn get(&self, _: &str, _: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
            panic!("a read panicked")
        }

        fn get_many(&self, _: &str, _: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
            panic!("a read panicked")
        }

        fn scan(
            &self,
            _: &str,
            _: KeyRange,
            _: Direction,
            _: usize,
        ) -> Result<Vec<Entry>, BackendError> {
            panic!("a read panicked")
        }

        fn len(&self, _: &str) -> Result<u64, BackendError> {
            panic!("a read panicked")
        }
    }

    #[tokio::test]
    async fn a_panicking_read_is_an_engine_error() {
        // (Reads that answer are checked by the conformance suite of the backends using it.)
        let snap = BlockingSnapshot::new(Panics, "the view panicked");
        assert!(matches!(
            snap.len("t").await,
            Err(BackendError::Engine(m)) if m == "the view panicked"
        ));
        // A view without a table listing says so.
        assert!(matches!(
            snap.tables().await,
            Err(BackendError::Unsupported(_))
        ));
    }
}
