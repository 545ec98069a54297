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
    /// The store was closed, or its worker thread ended.
    #[error("store is closed")]
    Closed,
    /// Any other failure of the underlying engine, with its message.
    #[error("storage engine error: {0}")]
    Engine(String),
}
