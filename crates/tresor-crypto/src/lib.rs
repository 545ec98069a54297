//! Key hierarchy and AEAD sealing for tresor.
//!
//! ```text
//! passphrase ──KDF (Argon2id | PBKDF2-HMAC-SHA512, salt + params in the KeyHeader)──▶ KEK
//! raw key ──HKDF-SHA256 (salt from the KeyHeader, info "tresor/v1/raw-kek")──────────▶ KEK
//! KEK ──AES-256-GCM unwrap (AAD = header fields)──▶ DEK (random 256-bit data key)
//! DEK ──HKDF-SHA256 (RFC 5869), one info label each──▶ value key │ index key │ backup key
//! ```
//!
//! - Values are sealed with AES-256-GCM (NIST SP 800-38D) under a fresh random 96-bit nonce, with
//!   caller-supplied AAD that binds the ciphertext to where it lives ([`SealingKey`]).
//! - Identifiers are replaced by keyed BLAKE3 tokens ([`BlindKey`]), so stored keys reveal no
//!   identifier and equal identifiers still meet in an index.
//! - Secrets live in [`zeroize::Zeroizing`] buffers and print as `[REDACTED]` in `Debug`.
//!
//! # Architecture invariants
//! - This crate knows nothing of storage, tables or records: it turns bytes into sealed bytes and
//!   identifiers into tokens. The AAD layout is the caller's (see `tresor-schema`).
//! - Only `ring`, `argon2` and `blake3` primitives; randomness only from `ring::rand::SystemRandom`.
//! - No secret is ever formatted: no key material in `Debug`, `Display` or error messages.
//!
//! # Code map
//! - [`kdf`]: [`KdfParams`] and passphrase → KEK.
//! - [`header`]: [`KeyHeader`], the stored, wrapped form of the DEK, and unlocking it.
//! - [`keys`]: [`DataKey`] and its HKDF subkeys [`StoreKeys`].
//! - [`aead`]: [`SealingKey`], AES-256-GCM seal/open.
//! - [`blind`]: [`BlindKey`], blinded index tokens.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aead;
pub mod blind;
mod error;
pub mod header;
pub mod kdf;
pub mod keys;
mod secret;

pub use aead::SealingKey;
pub use blind::{BlindKey, TOKEN_LEN, Token};
pub use error::CryptoError;
pub use header::{Kek, KeyHeader};
pub use kdf::KdfParams;
pub use keys::{DataKey, StoreKeys};
pub use secret::{Passphrase, RAW_KEY_LEN, RawKey, Secret};

/// Whether `a` and `b` are equal, in time independent of their contents (only their lengths
/// may leak). Use it wherever secret bytes are compared.
///
/// Both inputs are hashed with BLAKE3 (whose running time depends on the length only) and
/// the digests compared with `blake3::Hash`'s constant-time equality; equal digests mean
/// equal inputs (collision resistance). `ring`'s own slice comparison is deprecated without
/// side-channel promises, so it is not used.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    blake3::hash(a) == blake3::hash(b)
}

/// Fills `buf` with bytes from the operating system's CSPRNG (`ring::rand::SystemRandom`).
///
/// # Errors
/// [`CryptoError::Random`] if the operating system's generator fails.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}
