//! A fault-injecting backend wrapper (feature `testing`): fails the n-th read, write or sync.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::{
    Backend, BackendError, BackendStats, CompactReport, Direction, Durability, Entry, KeyRange,
    ReadView, Snapshot, WriteBatch,
};

/// Which operations a [`Fault`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultPoint {
    /// Every read call (`get`, `get_many`, `scan`, `snapshot`, `len`, `tables`, `stats`, and
    /// each read of a [`ReadView`]; taking a view is not counted).
    Read,
    /// Every commit (and compaction), failing before anything is applied (a write error).
    Write,
    /// Every `Immediate` commit, failing *after* the batch was applied: the data is there but
    /// the caller is told the sync failed (the ambiguous outcome of a failed fsync).
    Sync,
}

/// The error a [`Fault`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// `BackendError::Io` with `ErrorKind::Other`.
    Io,
    /// `BackendError::DiskFull`.
    DiskFull,
}

/// Fail the `nth` (counting from 0) operation of `point` with `kind`, and every later one too
/// if `sticky` (a device that stays broken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// What to count.
    pub point: FaultPoint,
    /// Which one fails (0 = the first).
    pub nth: u64,
    /// The injected error.
    pub kind: FaultKind,
    /// Whether every operation after the n-th fails too.
    pub sticky: bool,
}

/// Wraps a backend and injects one [`Fault`]. Cloning shares the counters.
#[derive(Debug, Clone)]
pub struct FaultBackend<B> {
    inner: B,
    trip: Tripper,
}

/// The fault and its counters, shared by the backend, its clones and its read views.
#[derive(Debug, Clone)]
struct Tripper {
    fault: Fault,
    counter: Arc<AtomicU64>,
    injected: Arc<AtomicU64>,
    /// How long every read of a view sleeps first ([`FaultBackend::with_view_read_delay`]).
    view_read_delay: Option<std::time::Duration>,
}

impl Tripper {
    /// [`Tripper::check`] of a view's read, after the view read delay.
    fn check_view_read(&self) -> Result<(), BackendError> {
        if let Some(delay) = self.view_read_delay {
            std::thread::sleep(delay);
        }
        self.check(FaultPoint::Read)
    }

    fn check(&self, point: FaultPoint) -> Result<(), BackendError> {
        if point != self.fault.point {
            return Ok(());
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        if n == self.fault.nth || (self.fault.sticky && n > self.fault.nth) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(match self.fault.kind {
                FaultKind::Io => BackendError::Io(std::io::Error::other("injected I/O fault")),
                FaultKind::DiskFull => BackendError::DiskFull("injected: no space left".into()),
            });
        }
        Ok(())
    }
}

/// A read view of the wrapped backend whose every read counts as a [`FaultPoint::Read`].
struct FaultView {
    inner: Box<dyn ReadView>,
    trip: Tripper,
}

impl ReadView for FaultView {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.trip.check_view_read()?;
        self.inner.get(table, key)
    }

    fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        self.trip.check_view_read()?;
        self.inner.get_many(table, keys)
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        self.trip.check_view_read()?;
        self.inner.scan(table, range, direction, limit)
    }

    fn len(&self, table: &str) -> Result<u64, BackendError> {
        self.trip.check_view_read()?;
        self.inner.len(table)
    }

    fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.trip.check_view_read()?;
        self.inner.tables()
    }
}

impl<B: Backend + Clone> FaultBackend<B> {
    /// Wraps `inner` with `fault`.
    pub fn new(inner: B, fault: Fault) -> Self {
        Self {
            inner,
            trip: Tripper {
                fault,
                counter: Arc::new(AtomicU64::new(0)),
                injected: Arc::new(AtomicU64::new(0)),
                view_read_delay: None,
            },
        }
    }

    /// Makes every read of this backend's read views sleep `delay` first, on the reading
    /// thread: a slow disk under a blocking read (to show what a blocked thread holds up).
    /// The async reads are not delayed. Applies to views taken afterwards.
    #[must_use]
    pub fn with_view_read_delay(mut self, delay: std::time::Duration) -> Self {
        self.trip.view_read_delay = Some(delay);
        self
    }

    /// How many operations of the fault's point were counted so far.
    pub fn counted(&self) -> u64 {
        self.trip.counter.load(Ordering::SeqCst)
    }

    /// How many errors were injected so far.
    pub fn injected(&self) -> u64 {
        self.trip.injected.load(Ordering::SeqCst)
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn trip(&self, point: FaultPoint) -> Result<(), BackendError> {
        self.trip.check(point)
    }
}

#[async_trait]
impl<B: Backend + Clone> Backend for FaultBackend<B> {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.trip(FaultPoint::Read)?;
        self.inner.get(table, key).await
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        self.trip(FaultPoint::Read)?;
        self.inner.get_many(table, keys).await
    }

    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        self.trip(FaultPoint::Read)?;
        self.inner.scan(table, range, direction, limit).await
    }

    async fn commit(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        self.trip(FaultPoint::Write)?;
        self.inner.commit(batch, durability).await?;
        if durability == Durability::Immediate {
            self.trip(FaultPoint::Sync)?;
        }
        Ok(())
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, BackendError> {
        // Taking the view counts as a read; reads through it are not faulted.
        self.trip(FaultPoint::Read)?;
        self.inner.snapshot().await
    }

    fn read_view(&self) -> Result<Box<dyn ReadView>, BackendError> {
        Ok(Box::new(FaultView {
            inner: self.inner.read_view()?,
            trip: self.trip.clone(),
        }))
    }

    fn reads_block(&self) -> bool {
        self.inner.reads_block()
    }

    async fn compact(&self) -> Result<CompactReport, BackendError> {
        self.trip(FaultPoint::Write)?;
        self.inner.compact().await
    }

    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        self.trip(FaultPoint::Read)?;
        self.inner.len(table).await
    }

    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.trip(FaultPoint::Read)?;
        self.inner.tables().await
    }

    async fn stats(&self) -> Result<BackendStats, BackendError> {
        self.trip(FaultPoint::Read)?;
        self.inner.stats().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    #[tokio::test]
    async fn fails_exactly_the_nth_operation() {
        let f = FaultBackend::new(
            MemoryBackend::new(),
            Fault {
                point: FaultPoint::Read,
                nth: 1,
                kind: FaultKind::DiskFull,
                sticky: false,
            },
        );
        assert!(f.get("t", b"k").await.is_ok());
        assert!(matches!(
            f.get("t", b"k").await,
            Err(BackendError::DiskFull(_))
        ));
        assert!(f.get("t", b"k").await.is_ok());
        assert_eq!((f.counted(), f.injected()), (3, 1));
    }

    #[tokio::test]
    async fn a_sync_fault_applies_the_batch_then_fails() {
        let f = FaultBackend::new(
            MemoryBackend::new(),
            Fault {
                point: FaultPoint::Sync,
                nth: 0,
                kind: FaultKind::Io,
                sticky: false,
            },
        );
        let mut b = WriteBatch::new();
        b.put("t", b"k".to_vec(), b"v".to_vec());
        assert!(f.commit(b, Durability::Immediate).await.is_err());
        assert_eq!(f.get("t", b"k").await.unwrap(), Some(b"v".to_vec()));
    }
}
