//! The crypto error type.

/// Why a cryptographic operation failed. Messages never contain key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The passphrase (or raw key) does not unwrap the data key: the wrapped key's tag failed.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// A sealed value failed authentication: it was modified, truncated, or moved to another
    /// place (its AAD differs).
    #[error("authentication failed: sealed data was modified or moved")]
    AuthenticationFailed,
    /// A sealed value is shorter than a nonce and a tag.
    #[error("sealed value too short: {0} bytes")]
    Truncated(usize),
    /// The key header is malformed (wrong length, unknown version or algorithm id).
    #[error("malformed key header: {0}")]
    MalformedHeader(&'static str),
    /// KDF parameters are below the minimum tresor accepts for new stores, or above the maximum
    /// it accepts when opening one.
    #[error("KDF parameters out of range: {0}")]
    KdfParams(&'static str),
    /// The KDF itself failed (e.g. the Argon2 implementation rejected its inputs).
    #[error("KDF failed: {0}")]
    Kdf(String),
    /// A raw key (or key file) is not 32 bytes / 64 hex digits.
    #[error("malformed raw key: {0}")]
    MalformedKey(&'static str),
    /// The secret is of the wrong kind for the header: a passphrase for a store unlocked by a
    /// raw key, or the other way round.
    #[error("this store is unlocked with a {expected}, not a {given}")]
    SecretKind {
        /// What the header's KDF needs: `"passphrase"` or `"raw key"`.
        expected: &'static str,
        /// What was given.
        given: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Random,
}
