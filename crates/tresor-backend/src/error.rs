//! The backend error type.

/// Why a backend operation failed. One variant per failing step; the message never contains
/// stored values (they may be secret even when sealed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// An operating-system I/O error (read, write, sync, rename).
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The disk (or quota) is full; nothing of the failed batch was committed.
    #[error("storage is full: {0}")]
    DiskFull(String),
    /// The storage file is damaged or not a store of this backend.
    #[error("storage is corrupted: {0}")]
    Corrupted(String),
    /// Another process (or another handle in this one) holds the store open.
    #[error("store is locked: already open elsewhere")]
    Locked,
    /// A table name breaks the naming rule (`[a-z0-9_]`, 1 to 64 bytes).
    #[error("invalid table name {0:?}")]
    InvalidTableName(String),
    /// A key or value is larger than the backend accepts.
    #[error("value too large: {0} bytes")]
    ValueTooLarge(usize),
    /// A condition of the batch did not hold ([`crate::WriteBatch::expect`]); nothing of the
    /// batch was written. Re-read and retry.
    #[error("condition {index} of the batch failed (table {table})")]
    ConditionFailed {
        /// Table of the failing condition.
        table: String,
        /// Position of the failing condition among the batch's conditions, from 0.
        index: usize,
    },
    /// The operation cannot run now because of other activity (compaction while a snapshot or
    /// read is alive); nothing was changed. Retry later.
    #[error("store is busy: {0}")]
    Busy(String),
    /// The operation is not offered by this backend.
    #[error("not supported by this backend: {0}")]
    Unsupported(&'static str),
    /// The store was closed, or its worker thread ended.
    #[error("store is closed")]
    Closed,
    /// Any other failure of the underlying engine, with its message.
    #[error("storage engine error: {0}")]
    Engine(String),
}
