//! [`QueuedCommits`] (feature `testing`): a backend whose commits complete after their callers
//! stop waiting, as behind the writer thread of a persistent backend.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Backend, BackendError, BackendStats, CompactReport, Direction, Durability, Entry, KeyRange,
    ReadView, Snapshot, WriteBatch,
};

/// Wraps a backend so that each commit is applied by a task of its own, in submission order
/// (the tasks take turns), `each` after its turn comes; the caller is answered when it is
/// applied. A caller that stops waiting does not stop its commit, and whatever runs beside a
/// commit in the caller's task runs before it is applied. Reads go straight to the inner
/// backend. Cloning shares the queue.
///
/// Commits are spawned on the current tokio runtime: call [`Backend::commit`] from within
/// one (it panics otherwise, as `tokio::spawn` does). Submission order holds on a
/// current-thread runtime, which starts tasks in spawn order.
#[derive(Debug, Clone)]
pub struct QueuedCommits<B> {
    inner: B,
    turns: Arc<tokio::sync::Mutex<()>>,
    each: Duration,
}

impl<B> QueuedCommits<B> {
    /// Wraps `inner`; each commit takes `each` (zero: only the hand-over to another task).
    pub fn new(inner: B, each: Duration) -> Self {
        Self {
            inner,
            turns: Arc::default(),
            each,
        }
    }
}

#[async_trait]
impl<B: Backend + Clone + 'static> Backend for QueuedCommits<B> {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.get(table, key).await
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        self.inner.get_many(table, keys).await
    }

    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        self.inner.scan(table, range, direction, limit).await
    }

    async fn commit(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        let (inner, turns, each) = (self.inner.clone(), Arc::clone(&self.turns), self.each);
        let (done, answer) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            // tokio's mutex is fair: turns come in the order the tasks first ask.
            let _turn = turns.lock_owned().await;
            if !each.is_zero() {
                tokio::time::sleep(each).await;
            }
            let _ = done.send(inner.commit(batch, durability).await);
        });
        answer.await.map_err(|_| BackendError::Closed)?
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, BackendError> {
        self.inner.snapshot().await
    }

    fn read_view(&self) -> Result<Box<dyn ReadView>, BackendError> {
        self.inner.read_view()
    }

    fn reads_block(&self) -> bool {
        self.inner.reads_block()
    }

    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        self.inner.len(table).await
    }

    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.inner.tables().await
    }

    async fn stats(&self) -> Result<BackendStats, BackendError> {
        self.inner.stats().await
    }

    async fn compact(&self) -> Result<CompactReport, BackendError> {
        self.inner.compact().await
    }
}
