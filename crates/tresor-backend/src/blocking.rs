//! Leaving the async thread: [`run_blocking`], and the [`BlockingReads`] and
//! [`BlockingSnapshot`] adapters.
//!
//! A backend over blocking storage implements its reads once, synchronously, as a
//! [`ReadView`] (where the table-name validation and the trivial answers live). It serves its
//! own async reads with [`BlockingReads`] over a [`LendView`] that lends each read a view of
//! the latest commit, and its async [`Snapshot`] with [`BlockingSnapshot`] over one view;
//! both run each read of the view on tokio's blocking pool.

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

/// Lends a [`ReadView`] to one read, on the calling thread (which may block): where the reads
/// of a [`BlockingReads`] get their view.
///
/// A lender is cloned into each read (so a clone should be cheap: an `Arc`). It may lend the
/// same view every time (a snapshot: see [`BlockingSnapshot`]) or lend each read a view of the
/// latest commit (a backend's own read calls: a read transaction of the read's own, or one
/// shared by the reads since that commit).
pub trait LendView: Clone + Send + Sync + 'static {
    /// The view lent.
    type View: ReadView + ?Sized;

    /// Runs `read` with a view.
    ///
    /// # Errors
    /// The error of taking the view, or that of `read`.
    fn with_view<T>(
        &self,
        read: impl FnOnce(&Self::View) -> Result<T, BackendError>,
    ) -> Result<T, BackendError>;
}

/// The reads of a [`crate::Backend`] or a [`Snapshot`] served by the synchronous reads of the
/// [`ReadView`]s a [`LendView`] lends: each read runs the view's method on tokio's blocking
/// pool ([`run_blocking`]), so that the view may block (disk I/O, a lock) without ever
/// blocking an async worker thread.
///
/// Reads answer exactly as the view's: its checks (table names, empty key lists,
/// `limit == 0`, empty ranges) are not repeated here, so a read the view answers without
/// touching storage still costs one thread hop. [`BlockingReads::tables`] is
/// [`ReadView::tables`], which the view must implement.
#[derive(Debug, Clone)]
pub struct BlockingReads<L> {
    lender: L,
    panicked: &'static str,
}

impl<L: LendView> BlockingReads<L> {
    /// Serves the views `lender` lends; a read that panics returns [`BackendError::Engine`]
    /// with `panicked` (see [`run_blocking`]).
    pub fn new(lender: L, panicked: &'static str) -> Self {
        Self { lender, panicked }
    }

    /// Runs `read` with a lent view on the blocking pool.
    ///
    /// # Errors
    /// As [`LendView::with_view`] and [`run_blocking`].
    pub async fn read<T, F>(&self, read: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&L::View) -> Result<T, BackendError> + Send + 'static,
    {
        let lender = self.lender.clone();
        run_blocking(self.panicked, move || lender.with_view(read)).await
    }

    /// [`ReadView::get`] on the blocking pool.
    ///
    /// # Errors
    /// As [`BlockingReads::read`].
    pub async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let (table, key) = (table.to_owned(), key.to_vec());
        self.read(move |v| v.get(&table, &key)).await
    }

    /// [`ReadView::get_many`] on the blocking pool.
    ///
    /// # Errors
    /// As [`BlockingReads::read`].
    pub async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        let (table, keys) = (table.to_owned(), keys.to_vec());
        self.read(move |v| v.get_many(&table, &keys)).await
    }

    /// [`ReadView::scan`] on the blocking pool.
    ///
    /// # Errors
    /// As [`BlockingReads::read`].
    pub async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        let table = table.to_owned();
        self.read(move |v| v.scan(&table, range, direction, limit))
            .await
    }

    /// [`ReadView::len`] on the blocking pool.
    ///
    /// # Errors
    /// As [`BlockingReads::read`].
    pub async fn len(&self, table: &str) -> Result<u64, BackendError> {
        let table = table.to_owned();
        self.read(move |v| v.len(&table)).await
    }

    /// [`ReadView::tables`] on the blocking pool.
    ///
    /// # Errors
    /// As [`BlockingReads::read`].
    pub async fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.read(|v| v.tables()).await
    }
}

/// Lends the same view to every read: the lender of a [`BlockingSnapshot`].
#[derive(Debug)]
struct Pinned<V>(Arc<V>);

impl<V> Clone for Pinned<V> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<V: ReadView + Sync + 'static> LendView for Pinned<V> {
    type View = V;

    fn with_view<T>(
        &self,
        read: impl FnOnce(&V) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        read(&self.0)
    }
}

/// A [`Snapshot`] served by one synchronous [`ReadView`] through [`BlockingReads`]: each read
/// runs on tokio's blocking pool.
///
/// The view is shared (an `Arc`) by the reads in flight, which may run concurrently (hence
/// `V: Sync`; wrap a view that is only `Send` in a lock of its own). It is dropped when the
/// snapshot and every read in flight are done.
#[derive(Debug)]
pub struct BlockingSnapshot<V>(BlockingReads<Pinned<V>>);

impl<V: ReadView + Sync + 'static> BlockingSnapshot<V> {
    /// Serves `view` as a [`Snapshot`]; a read that panics returns [`BackendError::Engine`]
    /// with `panicked` (see [`run_blocking`]).
    pub fn new(view: V, panicked: &'static str) -> Self {
        Self(BlockingReads::new(Pinned(Arc::new(view)), panicked))
    }
}

#[async_trait]
impl<V: ReadView + Sync + 'static> Snapshot for BlockingSnapshot<V> {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.0.get(table, key).await
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        self.0.get_many(table, keys).await
    }

    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        self.0.scan(table, range, direction, limit).await
    }

    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        self.0.len(table).await
    }

    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.0.tables().await
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
