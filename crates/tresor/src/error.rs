//! The facade's error type.

use std::path::PathBuf;

use tresor_backend::BackendError;
use tresor_backup::BackupError;
use tresor_crypto::CryptoError;
use tresor_schema::SchemaError;

/// Why a tresor operation failed. Never contains key material, passphrases or record contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The passphrase does not unlock the store (or the backup).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// `open` was asked for a store that does not exist.
    #[error("no store at {0}")]
    NotFound(PathBuf),
    /// `create` (or a restore) was asked for a path that already exists.
    #[error("a file already exists at {0}")]
    AlreadyExists(PathBuf),
    /// The file is a database but not a tresor store (no key header).
    #[error("not a tresor store (no key header)")]
    NotAStore,
    /// The store was written by a newer tresor (or is damaged).
    #[error("unsupported schema version {found} (this tresor supports up to {supported})")]
    UnsupportedVersion {
        /// Version found in the store.
        found: u32,
        /// Newest version this code reads.
        supported: u32,
    },
    /// A write would give a unique index entry of a typed table to a second record; nothing
    /// was written.
    #[error("unique index {index} of table {table} already holds this key")]
    UniqueViolation {
        /// The typed table.
        table: &'static str,
        /// The unique index.
        index: &'static str,
    },
    /// A write would take a table past a configured quota (peers: count or bytes) and the
    /// eviction policy rejects it; nothing was written.
    #[error("quota exceeded: at most {limit} {what}")]
    QuotaExceeded {
        /// What is limited (`"peers"`, `"peer bytes"`).
        what: &'static str,
        /// The configured limit.
        limit: u64,
    },
    /// Input given to tresor (an export file, a media stream) is not what it claims to be.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A typed-table scan names an index the table does not declare.
    #[error("no index {0} in this table")]
    UnknownIndex(String),
    /// A `before` cursor names a message that is not in the store.
    #[error("cursor message not found")]
    CursorNotFound,
    /// Stored data failed its integrity check: a sealed record did not authenticate or decode,
    /// or an index entry points at nothing.
    #[error("store is corrupted: {0}")]
    Corrupted(String),
    /// The storage backend failed (I/O, disk full, locked by another process, damaged file).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A cryptographic step failed.
    #[error(transparent)]
    Crypto(CryptoError),
    /// Encoding a record failed.
    #[error(transparent)]
    Schema(SchemaError),
    /// Creating, verifying or restoring a backup failed.
    #[error(transparent)]
    Backup(BackupError),
    /// A file-system operation of the facade itself failed (backup file, restore rename).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store uses (or `Options::backend` asks for) an engine this build of tresor was
    /// compiled without (`BackendKind::Sqlite` without the `sqlite` feature).
    #[error("storage engine {0:?} not compiled in (enable tresor's feature for it)")]
    UnsupportedBackend(crate::BackendKind),
    /// A blocking task (KDF, file I/O) was cancelled or panicked.
    #[error("background task failed")]
    Task,
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::WrongPassphrase => Error::WrongPassphrase,
            other => Error::Crypto(other),
        }
    }
}

impl From<SchemaError> for Error {
    fn from(e: SchemaError) -> Self {
        match e {
            SchemaError::UnsupportedVersion { found, supported } => {
                Error::UnsupportedVersion { found, supported }
            }
            e @ (SchemaError::Open { .. }
            | SchemaError::Decode(_)
            | SchemaError::EmptyRecord
            | SchemaError::UnknownFormat(_)
            | SchemaError::MalformedIndexKey { .. }
            | SchemaError::MalformedMeta { .. }) => Error::Corrupted(e.to_string()),
            other => Error::Schema(other),
        }
    }
}

impl From<BackupError> for Error {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::WrongPassphrase => Error::WrongPassphrase,
            other => Error::Backup(other),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(_: tokio::task::JoinError) -> Self {
        Error::Task
    }
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
