//! Snapshots: consistent read views of a whole store.

use async_trait::async_trait;

use crate::{BackendError, Direction, Entry, KeyRange};

/// A consistent, read-only view of every table of a backend, taken at one commit.
///
/// A snapshot sees every batch committed before it was taken and nothing committed after, in
/// every table, whatever writers do meanwhile (writers are never blocked by it). It is meant
/// for long scans, exports and backups. It stays valid until dropped; while alive it pins the
/// storage of the state it sees (a redb read transaction, an SQLite read transaction), so
/// space freed by later commits is reused only after it is dropped, and compaction reports
/// [`BackendError::Busy`].
///
/// Reads behave exactly as the same reads of [`crate::Backend`] (missing tables read as
/// empty; table names are validated).
#[async_trait]
pub trait Snapshot: Send + Sync + 'static {
    /// Reads the value stored under `key` in `table`, as of the snapshot.
    ///
    /// # Errors
    /// [`BackendError`] on an invalid table name, an I/O failure or a corrupted file.
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;

    /// Reads several keys of one table; one element per key, in request order.
    ///
    /// # Errors
    /// As [`Snapshot::get`].
    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError>;

    /// Scans `table` over `range` in `direction`, at most `limit` entries, as of the snapshot.
    ///
    /// # Errors
    /// As [`Snapshot::get`].
    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError>;

    /// Number of entries of `table` as of the snapshot.
    ///
    /// # Errors
    /// As [`Snapshot::get`].
    async fn len(&self, table: &str) -> Result<u64, BackendError>;

    /// Names of the tables as of the snapshot, ascending.
    ///
    /// # Errors
    /// As [`Snapshot::get`].
    async fn tables(&self) -> Result<Vec<String>, BackendError>;
}
