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
    /// The backup target failed (I/O, object storage, too few intact erasure-coded shards).
    #[error("backup target: {0}")]
    Target(#[from] TargetError),
    /// The target holds no repository `config`, or one with another magic.
    #[error("not a tresor backup repository (no valid config)")]
    NotARepository,
    /// The repository `config` fails its MAC: it was modified, or the repository belongs to
    /// a store with another data key.
    #[error("repository config fails authentication (modified, or another store's repository)")]
    ConfigAuthentication,
    /// The repository config is malformed (lengths, chunker parameters).
    #[error("malformed repository config: {reason}")]
    MalformedConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// A manifest fails authentication: modified, renamed, or from another repository.
    #[error("manifest of backup {backup} fails authentication")]
    ManifestAuthentication {
        /// The backup id (hex).
        backup: String,
    },
    /// A manifest authenticated but breaks the format.
    #[error("malformed manifest of backup {backup}: {reason}")]
    MalformedManifest {
        /// The backup id (hex).
        backup: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A chunk that a manifest lists is not in the repository.
    #[error("chunk {chunk} is missing from the repository")]
    MissingChunk {
        /// The chunk id (hex).
        chunk: String,
    },
    /// A chunk object fails authentication, decompression, or its id check.
    #[error("chunk {chunk} is corrupt: {reason}")]
    CorruptChunk {
        /// The chunk id (hex).
        chunk: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The logical entry stream of a repository backup breaks the format.
    #[error("malformed backup stream: {reason}")]
    MalformedStream {
        /// What is wrong.
        reason: &'static str,
    },
    /// A count or size recorded in a manifest differs from what the stream holds.
    #[error("manifest mismatch: {what} recorded {recorded}, counted {counted}")]
    ManifestMismatch {
        /// Which count.
        what: String,
        /// The value in the manifest.
        recorded: u64,
        /// The value found while reading.
        counted: u64,
    },
    /// Another process holds a lock that excludes this operation (a prune while a backup
    /// runs, or the reverse).
    #[error("repository is locked by {lock} (delete it if no backup or prune is running)")]
    RepositoryLocked {
        /// The lock object's name.
        lock: String,
    },
    /// No backup in the repository matches the id or prefix.
    #[error("no backup {0} in the repository")]
    BackupNotFound(String),
    /// More than one backup matches the id prefix.
    #[error("backup id prefix {0} is ambiguous")]
    AmbiguousBackup(String),
    /// A retention policy is empty or malformed.
    #[error("invalid retention policy: {0}")]
    InvalidPolicy(String),
}

/// Why a [`crate::target::BackupTarget`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// A file-system operation of a directory target failed.
    #[error("{op} {name}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The object name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An object name breaks the naming rule (see [`crate::target::check_name`]).
    #[error("invalid object name {0:?}")]
    InvalidName(String),
    /// A target string could not be parsed.
    #[error("invalid target {url:?}: {reason}")]
    InvalidUrl {
        /// The string.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The object-storage client failed (network, credentials, service error).
    #[error("object storage: {0}")]
    ObjectStore(String),
    /// Fewer than `needed` intact, consistent shards of an erasure-coded object were found.
    #[error("object {name}: only {found} of the {needed} needed shards are intact")]
    NotEnoughShards {
        /// The object name.
        name: String,
        /// Intact shards found.
        found: usize,
        /// Shards needed (`k`).
        needed: usize,
    },
    /// Erasure coding failed, or a shape is invalid.
    #[error("erasure coding {name}: {reason}")]
    Erasure {
        /// The object name (empty for a shape error).
        name: String,
        /// What is wrong.
        reason: String,
    },
}
