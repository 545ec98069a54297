//! [`RedbSnapshot`]: a redb read transaction kept open as a [`Snapshot`].

use std::sync::Arc;

use async_trait::async_trait;
use redb::ReadTransaction;
use tresor_backend::{
    BackendError, Direction, Entry, KeyRange, ReadView, Snapshot, validate_table_name,
};

use crate::error::map_join;
use crate::read;

/// A consistent view of a redb store: one redb read transaction, shared with the blocking
/// calls that read it. It pins the pages it sees until dropped (space freed by later commits
/// is reused only after), and makes compaction report `Busy`. It serves both as an async
/// [`Snapshot`] (each read on tokio's blocking pool) and as a synchronous [`ReadView`] (each
/// read on the calling thread).
pub(crate) struct RedbSnapshot {
    txn: Arc<ReadTransaction>,
}

impl RedbSnapshot {
    pub(crate) fn new(txn: ReadTransaction) -> Self {
        Self { txn: Arc::new(txn) }
    }

    /// Runs `f` with the transaction on tokio's blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, BackendError> + Send + 'static,
    {
        let txn = Arc::clone(&self.txn);
        tokio::task::spawn_blocking(move || f(&txn))
            .await
            .map_err(map_join)?
    }
}

impl ReadView for RedbSnapshot {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        validate_table_name(table)?;
        read::get(&self.txn, table, key)
    }

    fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        validate_table_name(table)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        read::get_many(&self.txn, table, keys)
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        validate_table_name(table)?;
        if limit == 0 || range.is_empty() {
            return Ok(Vec::new());
        }
        read::scan(&self.txn, table, &range, direction, limit)
    }

    fn len(&self, table: &str) -> Result<u64, BackendError> {
        validate_table_name(table)?;
        read::len(&self.txn, table)
    }
}

#[async_trait]
impl Snapshot for RedbSnapshot {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        validate_table_name(table)?;
        let (table, key) = (table.to_owned(), key.to_vec());
        self.blocking(move |txn| read::get(txn, &table, &key)).await
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        validate_table_name(table)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (table, keys) = (table.to_owned(), keys.to_vec());
        self.blocking(move |txn| read::get_many(txn, &table, &keys))
            .await
    }

    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        validate_table_name(table)?;
        if limit == 0 || range.is_empty() {
            return Ok(Vec::new());
        }
        let table = table.to_owned();
        self.blocking(move |txn| read::scan(txn, &table, &range, direction, limit))
            .await
    }

    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        validate_table_name(table)?;
        let table = table.to_owned();
        self.blocking(move |txn| read::len(txn, &table)).await
    }

    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.blocking(read::tables).await
    }
}
