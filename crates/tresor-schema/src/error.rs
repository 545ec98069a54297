//! The schema error type.

use tresor_crypto::CryptoError;

/// Why encoding, decoding or checking stored data failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A stored record is empty (no format byte).
    #[error("empty record")]
    EmptyRecord,
    /// A stored record has a format byte this code does not know.
    #[error("unknown record format {0}")]
    UnknownFormat(u8),
    /// The record's bytes do not decode as the expected type (corrupted or wrong table).
    #[error("record does not decode: {0}")]
    Decode(String),
    /// A record could not be encoded.
    #[error("record does not encode: {0}")]
    Encode(String),
    /// A sealed record failed to open (modified, moved, or sealed under another key).
    #[error("sealed record in table {table} failed to open: {source}")]
    Open {
        /// Table the record was read from.
        table: &'static str,
        /// The crypto failure.
        source: CryptoError,
    },
    /// Sealing failed (the random generator failed).
    #[error("sealing failed: {0}")]
    Seal(CryptoError),
    /// An index key has the wrong length or layout.
    #[error("malformed index key in table {table}")]
    MalformedIndexKey {
        /// Table the key was read from.
        table: &'static str,
    },
    /// The store's schema version is not one this code can read.
    #[error("unsupported schema version {found} (this code supports up to {supported})")]
    UnsupportedVersion {
        /// Version found in the store.
        found: u32,
        /// Newest version this code knows.
        supported: u32,
    },
    /// A plain metadata value has the wrong length.
    #[error("malformed metadata value {key:?}")]
    MalformedMeta {
        /// The metadata key.
        key: &'static str,
    },
}
