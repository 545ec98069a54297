//! The backup error type.

use tresor_backend::BackendError;
use tresor_crypto::CryptoError;
use tresor_schema::SchemaError;

/// Why creating, verifying or restoring a backup failed. One variant per failing step.
///
/// Messages never contain key material, passphrases or record contents: at most table names,
/// chunk indexes, counts and a fixed reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Reading the backup or writing it failed.
    #[error("backup I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The input does not start with the backup magic `TRESORBK` (or is empty).
    #[error("not a tresor backup")]
    NotABackup,
    /// The backup was written in a format version this code does not read.
    #[error("unsupported backup format version {0}")]
    UnsupportedFormat(u8),
    /// The passphrase does not unwrap the key header stored in the backup.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The backup header is malformed (key header length out of range, or a key header that
    /// does not decode); in `create`, the key header passed in does not decode.
    #[error("malformed backup header: {reason}")]
    MalformedHeader {
        /// What is wrong.
        reason: &'static str,
    },
    /// The input ends before the final chunk (or inside the header, a length prefix or a
    /// chunk).
    #[error("backup is truncated")]
    Truncated,
    /// Chunk `index` authenticates neither as a data chunk nor as the final chunk at its
    /// position: it was modified, moved, or comes from another backup.
    #[error("backup chunk {index} failed authentication (modified, reordered or spliced)")]
    ChunkAuthentication {
        /// Position of the chunk in the file, from 0.
        index: u64,
    },
    /// Chunk `index` authenticated but its contents break the format (or, for a length out of
    /// range, it could not even be read).
    #[error("malformed backup chunk {index}: {reason}")]
    MalformedChunk {
        /// Position of the chunk in the file, from 0.
        index: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A count recorded in the trailer differs from what the backup actually holds.
    #[error("backup trailer mismatch: {what} recorded {recorded}, counted {counted}")]
    TrailerMismatch {
        /// Which count ("total entries", "data chunks", "table count", or "entries of table
        /// NAME").
        what: String,
        /// The count in the trailer.
        recorded: u64,
        /// The count found while reading.
        counted: u64,
    },
    /// The trailer's stream digest differs from the BLAKE3 of the bytes before the final chunk.
    #[error("backup stream digest mismatch")]
    DigestMismatch,
    /// Bytes follow the final chunk.
    #[error("data follows the final chunk of the backup")]
    TrailingData,
    /// The restore target already holds entries in a catalog table.
    #[error("restore target is not empty: table {table} holds {entries} entries")]
    TargetNotEmpty {
        /// The first non-empty table, in catalog order.
        table: &'static str,
        /// Its entry count.
        entries: u64,
    },
    /// The `meta` table's `key_header` is missing or differs from the key header of the backup
    /// (in `create`: from the key header passed in).
    #[error("the store's key header is missing or differs from the backup's key header")]
    KeyHeaderMismatch,
    /// While creating a backup, an entry of the store does not fit its table (e.g. a sealed
    /// record that does not decode, an index value that is not a token).
    #[error("invalid entry in table {table}: {reason}")]
    InvalidEntry {
        /// The table the entry was read from.
        table: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// While creating a backup, one entry is too large to fit in a chunk (64 MiB).
    #[error("entry of {bytes} bytes in table {table} is too large for a backup chunk")]
    EntryTooLarge {
        /// The table the entry was read from.
        table: &'static str,
        /// The encoded entry size.
        bytes: u64,
    },
    /// The backup's schema version is one this code cannot read.
    #[error("unsupported schema: {0}")]
    UnsupportedSchema(SchemaError),
    /// Opening a stored record (create) or re-sealing a record (restore) failed.
    #[error("record error: {0}")]
    Schema(SchemaError),
    /// The storage backend failed.
    #[error("backend error: {0}")]
    Backend(#[from] BackendError),
    /// A cryptographic primitive failed (random generator, KDF).
    #[error("crypto error: {0}")]
    Crypto(CryptoError),
}
