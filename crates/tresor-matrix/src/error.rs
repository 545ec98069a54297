//! The crate's error type and its mapping onto matrix-sdk's store errors.

use matrix_sdk_base::store::StoreError;
use matrix_sdk_crypto::store::CryptoStoreError;

/// Why a tresor-matrix store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// tresor failed (I/O, wrong passphrase, a record that does not authenticate, ...).
    #[error(transparent)]
    Tresor(#[from] tresor::Error),
    /// A value did not serialize or deserialize as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A Matrix identifier stored in a key did not parse.
    #[error(transparent)]
    Identifier(#[from] ruma::IdParseError),
    /// Redacting a stored state event failed.
    #[error("redaction failed: {0}")]
    Redaction(#[source] ruma::canonical_json::CanonicalJsonFieldError),
    /// A stored entry does not have the shape its namespace requires.
    #[error("malformed entry: {0}")]
    Malformed(&'static str),
    /// A value given to the store does not fit the key it is stored under.
    #[error("value does not match its key: {0}")]
    WrongValue(&'static str),
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Json(e) => StoreError::Json(e),
            Error::Identifier(e) => StoreError::Identifier(e),
            Error::Redaction(e) => StoreError::Redaction(e),
            other => StoreError::backend(other),
        }
    }
}

impl From<Error> for CryptoStoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Json(e) => CryptoStoreError::Serialization(e),
            Error::Identifier(e) => CryptoStoreError::IdentifierValidation(e),
            other => CryptoStoreError::backend(other),
        }
    }
}
