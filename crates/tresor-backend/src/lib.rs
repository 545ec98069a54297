//! The storage-backend contract of tresor.
//!
//! A backend is an ordered key-value store made of named *tables* (a keyspace each), holding
//! byte-string keys and values. It offers point reads, ordered range scans in both directions with
//! a limit, and atomic *write batches* of puts and deletes across several tables, committed with a
//! chosen [`Durability`].
//!
//! # Architecture invariants
//! - A backend knows nothing of encryption, records or indexes: it stores the bytes it is given.
//!   Everything it sees has already been sealed or blinded by the layers above.
//! - Keys are compared as unsigned byte strings (lexicographic, shorter prefix first), exactly as
//!   `[u8]`'s `Ord`. Upper layers encode order-carrying fields big-endian to rely on this.
//! - A committed batch is applied entirely or not at all; a reader never observes half a batch.
//!   Its [`Condition`]s are checked in the same write transaction, before its operations.
//! - A [`Snapshot`] sees every batch committed before it and none after, across all tables.
//! - Every backend passes the conformance suite in [`testing`] (feature `testing`), run from the
//!   backend crate's own tests with [`backend_conformance_tests!`].
//!
//! # Code map
//! - [`Backend`]: the async trait.
//! - [`WriteBatch`], [`Op`], [`Condition`], [`Expect`], [`KeyRange`], [`Direction`],
//!   [`Durability`]: its vocabulary (`batch.rs`, `range.rs`).
//! - [`Snapshot`] (`snapshot.rs`): consistent read views, read asynchronously.
//! - [`ReadView`] (`view.rs`): the same, read synchronously (for blocking contexts: one thread
//!   hop per query instead of one per call).
//! - [`BlockingReads`], [`BlockingSnapshot`], [`LendView`], [`run_blocking`] (`blocking.rs`):
//!   async reads (a backend's, a [`Snapshot`]'s) served by [`ReadView`]s on tokio's blocking
//!   pool, so that a backend writes its reads and their checks once.
//! - [`BackendStats`], [`CompactReport`] (`stats.rs`): statistics and maintenance.
//! - [`MemoryBackend`]: an in-memory implementation, the model the others are checked against.
//! - [`testing`]: the conformance suite; `FaultBackend` (feature `testing`): fault injection;
//!   `QueuedCommits` (feature `testing`): commits that complete after their callers stop waiting.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod batch;
mod blocking;
mod error;
#[cfg(feature = "testing")]
mod fault;
mod memory;
#[cfg(feature = "testing")]
mod queued;
mod range;
mod snapshot;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;
mod view;

pub use batch::{Condition, Durability, Expect, Op, WriteBatch};
pub use blocking::{BlockingReads, BlockingSnapshot, LendView, run_blocking};
pub use error::BackendError;
#[cfg(feature = "testing")]
pub use fault::{Fault, FaultBackend, FaultKind, FaultPoint};
pub use memory::MemoryBackend;
#[cfg(feature = "testing")]
pub use queued::QueuedCommits;
pub use range::{Direction, KeyRange};
pub use snapshot::Snapshot;
pub use stats::{BackendStats, CompactReport};
pub use view::ReadView;

use async_trait::async_trait;

/// A key-value pair as returned by a scan: `(key, value)`, both owned byte strings.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An ordered, transactional key-value store of named tables.
///
/// Tables come into existence on their first write; reading a table that was never written
/// behaves as reading an empty table (no error). Table names are ASCII identifiers
/// (`[a-z0-9_]`, 1 to 64 bytes); a backend may reject other names with
/// [`BackendError::InvalidTableName`].
///
/// All methods are `async`; implementations over blocking storage must not block the async
/// runtime's worker threads (use `tokio::task::spawn_blocking` or equivalent).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Reads the value stored under `key` in `table`.
    ///
    /// Returns `Ok(None)` when the key (or the table) does not exist.
    ///
    /// # Errors
    /// [`BackendError`] on an I/O failure, a corrupted file or a closed store.
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;

    /// Reads several keys of one table in one call (one read transaction, one thread hop).
    ///
    /// The result has one element per requested key, in the same order.
    ///
    /// # Errors
    /// As [`Backend::get`].
    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError>;

    /// Scans `table` over `range` in key order (`Direction::Forward`) or reverse key order
    /// (`Direction::Reverse`), returning at most `limit` entries. `limit == 0` returns nothing.
    ///
    /// # Errors
    /// As [`Backend::get`].
    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError>;

    /// Checks the conditions of `batch`, then applies every operation of it atomically, in
    /// order (a later operation on the same key wins), then makes it as durable as `durability`
    /// asks before returning.
    ///
    /// An empty batch is a no-op that succeeds. Concurrent commits may be grouped into one
    /// engine transaction (and one fsync); each caller still gets its own outcome, and a batch
    /// that fails never makes another fail.
    ///
    /// # Errors
    /// - [`BackendError::InvalidTableName`] for a bad table name in an operation or condition.
    /// - [`BackendError::ConditionFailed`] when a condition does not hold.
    /// - Any other [`BackendError`] when the batch could not be committed.
    ///
    /// On any error none of the batch is visible, now or after a restart.
    async fn commit(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError>;

    /// Takes a consistent read view of every table: see [`Snapshot`].
    ///
    /// # Errors
    /// [`BackendError`] when the store cannot be read (I/O, closed store).
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, BackendError>;

    /// Takes a consistent read view to be read **synchronously**: see [`ReadView`].
    ///
    /// This call itself is synchronous and may block the calling thread briefly (it begins
    /// an engine read transaction): call it where the view's reads will run, from a thread of
    /// your own or inside `tokio::task::spawn_blocking`, unless [`Backend::reads_block`] is
    /// `false`.
    ///
    /// # Errors
    /// [`BackendError`] when the store cannot be read (I/O, closed store).
    fn read_view(&self) -> Result<Box<dyn ReadView>, BackendError>;

    /// Whether [`Backend::read_view`] and the reads of its views may block the calling thread
    /// (disk I/O, waiting for a lock held across I/O). `true` unless the backend keeps
    /// everything in memory behind locks held only for the duration of a map lookup; upper
    /// layers then run view reads directly on the async thread instead of moving them to a
    /// blocking thread.
    fn reads_block(&self) -> bool {
        true
    }

    /// Number of entries in `table` (0 for a table that was never written), without scanning
    /// the table.
    ///
    /// # Errors
    /// As [`Backend::get`].
    async fn len(&self, table: &str) -> Result<u64, BackendError>;

    /// Names of all tables that hold or have held entries, in ascending order.
    ///
    /// # Errors
    /// As [`Backend::get`].
    async fn tables(&self) -> Result<Vec<String>, BackendError>;

    /// Storage-wide statistics: file size and per-table entry counts.
    ///
    /// # Errors
    /// As [`Backend::get`].
    async fn stats(&self) -> Result<BackendStats, BackendError>;

    /// Rewrites the storage to give free space back to the file system, and makes every
    /// earlier commit durable. Writes wait while it runs.
    ///
    /// # Errors
    /// [`BackendError::Busy`] while a [`Snapshot`] (or another read) is alive, with nothing
    /// changed; any other [`BackendError`] on an I/O failure.
    async fn compact(&self) -> Result<CompactReport, BackendError>;
}

/// Checks a table name against the rule of [`Backend`]: 1 to 64 bytes of `[a-z0-9_]`.
///
/// # Errors
/// [`BackendError::InvalidTableName`] when the name breaks the rule.
pub fn validate_table_name(name: &str) -> Result<(), BackendError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BackendError::InvalidTableName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_follow_the_rule() {
        assert!(validate_table_name("messages").is_ok());
        assert!(validate_table_name("idx_conv_2").is_ok());
        assert!(validate_table_name("").is_err());
        assert!(validate_table_name("Messages").is_err());
        assert!(validate_table_name("a/b").is_err());
        assert!(validate_table_name(&"a".repeat(65)).is_err());
    }
}
