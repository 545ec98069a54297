//! The key header: KDF parameters, salt and the wrapped data key, stored with the store.
//!
//! Encoding (version 1, 90 bytes, integers little-endian):
//!
//! | offset | len | field |
//! |---|---|---|
//! | 0 | 1 | header version = 1 |
//! | 1 | 1 | KDF id: 1 = Argon2id v0x13, 2 = PBKDF2-HMAC-SHA512, 3 = raw key (HKDF-SHA256) |
//! | 2 | 12 | KDF params: Argon2id `m_kib u32, t u32, p u32`; PBKDF2 `iterations u32` + 8 zero bytes; raw key: 12 zero bytes |
//! | 14 | 16 | salt |
//! | 30 | 60 | wrapped DEK: AES-256-GCM `nonce(12) ‖ ct(32) ‖ tag(16)` under the KEK, AAD = `"tresor/v1/dek" ‖ bytes 0..30` |

use zeroize::Zeroizing;

use crate::kdf::SALT_LEN;
use crate::{CryptoError, DataKey, KdfParams, SealingKey, Secret};

/// Current header version.
pub const HEADER_VERSION: u8 = 1;
/// Encoded length of a version-1 header in bytes.
pub const HEADER_LEN: usize = 90;
const PREFIX_LEN: usize = 30;
const WRAP_AAD_LABEL: &[u8] = b"tresor/v1/dek";

/// A key-encryption key: what the KDF makes of the secret and the header's salt. Kept by an
/// open store so that it can wrap a new data key (rotation) without asking for the secret
/// again. Zeroized on drop (clones too); `[REDACTED]` in `Debug`.
#[derive(Clone)]
pub struct Kek(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek([REDACTED])")
    }
}

/// The stored, passphrase-protected form of a store's [`DataKey`].
#[derive(Clone, PartialEq, Eq)]
pub struct KeyHeader {
    kdf: KdfParams,
    salt: [u8; SALT_LEN],
    wrapped_dek: Vec<u8>,
}

impl std::fmt::Debug for KeyHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Salt and wrapped key are not secret, but there is no reason to print them.
        f.debug_struct("KeyHeader")
            .field("kdf", &self.kdf)
            .finish_non_exhaustive()
    }
}

impl KeyHeader {
    /// Creates a header for a new store: draws a random salt and a random DEK, derives the KEK
    /// from `secret` with `kdf` (for a [`Secret::RawKey`] the KDF is always
    /// [`KdfParams::RawKey`] and `kdf` is ignored), and wraps the DEK under it.
    ///
    /// # Errors
    /// [`CryptoError::KdfParams`] if `kdf` is below OWASP's minimum;
    /// [`CryptoError::SecretKind`] for a passphrase with [`KdfParams::RawKey`];
    /// [`CryptoError::Random`] or [`CryptoError::Kdf`] if a primitive fails.
    pub fn create(secret: &Secret, kdf: KdfParams) -> Result<(KeyHeader, DataKey), CryptoError> {
        let dek = DataKey::generate()?;
        let header = Self::wrap(&dek, secret, kdf)?;
        Ok((header, dek))
    }

    /// Wraps an existing `dek` under a fresh salt and `secret` (a passphrase change, or a
    /// switch between passphrase and raw key, re-wraps the same DEK: nothing else in the store
    /// changes). As in [`KeyHeader::create`], a raw key always uses [`KdfParams::RawKey`].
    ///
    /// # Errors
    /// As [`KeyHeader::create`].
    pub fn wrap(dek: &DataKey, secret: &Secret, kdf: KdfParams) -> Result<KeyHeader, CryptoError> {
        Ok(Self::wrap_kek(dek, secret, kdf)?.0)
    }

    /// As [`KeyHeader::wrap`], also returning the KEK (for a later [`KeyHeader::rewrap`]).
    ///
    /// # Errors
    /// As [`KeyHeader::create`].
    pub fn wrap_kek(
        dek: &DataKey,
        secret: &Secret,
        kdf: KdfParams,
    ) -> Result<(KeyHeader, Kek), CryptoError> {
        let kdf = match secret {
            Secret::RawKey(_) => KdfParams::RawKey,
            Secret::Passphrase(_) => kdf,
        };
        kdf.check_minimum()?;
        let mut salt = [0u8; SALT_LEN];
        crate::random_bytes(&mut salt)?;
        let kek = Kek(kdf.derive_kek(secret, &salt)?);
        let header = Self::wrap_with(kdf, salt, &kek, dek)?;
        Ok((header, kek))
    }

    fn wrap_with(
        kdf: KdfParams,
        salt: [u8; SALT_LEN],
        kek: &Kek,
        dek: &DataKey,
    ) -> Result<KeyHeader, CryptoError> {
        let mut header = KeyHeader {
            kdf,
            salt,
            wrapped_dek: Vec::new(),
        };
        header.wrapped_dek = SealingKey::new(&kek.0).seal(&header.wrap_aad(), dek.expose())?;
        Ok(header)
    }

    /// Wraps another `dek` under the same KDF, salt and `kek` (the one [`KeyHeader::unlock_kek`]
    /// returned for this header), with a fresh nonce: the new header opens with the same
    /// secret. Used by key rotation, which must not ask for the secret again.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if no nonce could be drawn.
    pub fn rewrap(&self, kek: &Kek, dek: &DataKey) -> Result<KeyHeader, CryptoError> {
        Self::wrap_with(self.kdf, self.salt, kek, dek)
    }

    /// Derives the KEK from `secret` and unwraps the DEK.
    ///
    /// # Errors
    /// [`CryptoError::WrongPassphrase`] if the wrapped key does not open (wrong passphrase or
    /// raw key, or a modified header); [`CryptoError::SecretKind`] for a passphrase given to a
    /// raw-key header or the other way round; [`CryptoError::KdfParams`] if the stored
    /// parameters are out of range.
    pub fn unlock(&self, secret: &Secret) -> Result<DataKey, CryptoError> {
        Ok(self.unlock_kek(secret)?.1)
    }

    /// As [`KeyHeader::unlock`], also returning the KEK (for [`KeyHeader::rewrap`]).
    ///
    /// # Errors
    /// As [`KeyHeader::unlock`].
    pub fn unlock_kek(&self, secret: &Secret) -> Result<(Kek, DataKey), CryptoError> {
        let kek = Kek(self.kdf.derive_kek(secret, &self.salt)?);
        let dek = self.unlock_with(&kek)?;
        Ok((kek, dek))
    }

    /// Unwraps the DEK with an already derived `kek`.
    ///
    /// # Errors
    /// [`CryptoError::WrongPassphrase`] if the wrapped key does not open under `kek`.
    pub fn unlock_with(&self, kek: &Kek) -> Result<DataKey, CryptoError> {
        let raw = SealingKey::new(&kek.0)
            .open(&self.wrap_aad(), &self.wrapped_dek)
            .map_err(|_| CryptoError::WrongPassphrase)?;
        let raw = Zeroizing::new(raw);
        let bytes: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::MalformedHeader("wrapped key is not 32 bytes"))?;
        Ok(DataKey::from_bytes(Zeroizing::new(bytes)))
    }

    /// The header version (1).
    pub fn version(&self) -> u8 {
        HEADER_VERSION
    }

    /// The salt of the KDF (16 random bytes, not secret).
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// The KDF parameters this header was made with.
    pub fn kdf(&self) -> KdfParams {
        self.kdf
    }

    fn prefix(&self) -> [u8; PREFIX_LEN] {
        let mut out = [0u8; PREFIX_LEN];
        out[0] = HEADER_VERSION;
        match self.kdf {
            KdfParams::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            } => {
                out[1] = 1;
                out[2..6].copy_from_slice(&memory_kib.to_le_bytes());
                out[6..10].copy_from_slice(&iterations.to_le_bytes());
                out[10..14].copy_from_slice(&parallelism.to_le_bytes());
            }
            KdfParams::Pbkdf2Sha512 { iterations } => {
                out[1] = 2;
                out[2..6].copy_from_slice(&iterations.to_le_bytes());
            }
            KdfParams::RawKey => out[1] = 3,
        }
        out[14..30].copy_from_slice(&self.salt);
        out
    }

    fn wrap_aad(&self) -> Vec<u8> {
        let mut aad = WRAP_AAD_LABEL.to_vec();
        aad.extend_from_slice(&self.prefix());
        aad
    }

    /// Encodes the header ([`HEADER_LEN`] bytes, layout in the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.prefix().to_vec();
        out.extend_from_slice(&self.wrapped_dek);
        out
    }

    /// Decodes a header written by [`KeyHeader::encode`].
    ///
    /// # Errors
    /// [`CryptoError::MalformedHeader`] for a wrong length, version or KDF id, or non-zero
    /// padding; [`CryptoError::KdfParams`] for parameters out of the accepted range.
    pub fn decode(bytes: &[u8]) -> Result<KeyHeader, CryptoError> {
        if bytes.len() != HEADER_LEN {
            return Err(CryptoError::MalformedHeader("wrong length"));
        }
        if bytes[0] != HEADER_VERSION {
            return Err(CryptoError::MalformedHeader("unknown header version"));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let kdf = match bytes[1] {
            1 => KdfParams::Argon2id {
                memory_kib: u32_at(2),
                iterations: u32_at(6),
                parallelism: u32_at(10),
            },
            2 => {
                if bytes[6..14].iter().any(|&b| b != 0) {
                    return Err(CryptoError::MalformedHeader("non-zero padding"));
                }
                KdfParams::Pbkdf2Sha512 {
                    iterations: u32_at(2),
                }
            }
            3 => {
                if bytes[2..14].iter().any(|&b| b != 0) {
                    return Err(CryptoError::MalformedHeader("non-zero padding"));
                }
                KdfParams::RawKey
            }
            _ => return Err(CryptoError::MalformedHeader("unknown KDF id")),
        };
        kdf.check_maximum()?;
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[14..30]);
        Ok(KeyHeader {
            kdf,
            salt,
            wrapped_dek: bytes[PREFIX_LEN..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_unlock_and_wrong_passphrase() {
        for kdf in [KdfParams::ARGON2ID_OWASP, KdfParams::PBKDF2_OWASP] {
            let (header, dek) = KeyHeader::create(&"correct".into(), kdf).unwrap();
            let encoded = header.encode();
            assert_eq!(encoded.len(), HEADER_LEN);
            let decoded = KeyHeader::decode(&encoded).unwrap();
            assert_eq!(decoded, header);
            let unlocked = decoded.unlock(&"correct".into()).unwrap();
            assert_eq!(unlocked.expose(), dek.expose());
            assert_eq!(
                decoded.unlock(&"wrong".into()).unwrap_err(),
                CryptoError::WrongPassphrase
            );
        }
    }

    #[test]
    fn tampered_header_does_not_unlock() {
        let (header, _) = KeyHeader::create(&"pw".into(), KdfParams::PBKDF2_OWASP).unwrap();
        let mut bytes = header.encode();
        bytes[20] ^= 1; // salt
        let h = KeyHeader::decode(&bytes).unwrap();
        assert_eq!(
            h.unlock(&"pw".into()).unwrap_err(),
            CryptoError::WrongPassphrase
        );
        let mut bytes = header.encode();
        bytes[60] ^= 1; // wrapped key
        let h = KeyHeader::decode(&bytes).unwrap();
        assert_eq!(
            h.unlock(&"pw".into()).unwrap_err(),
            CryptoError::WrongPassphrase
        );
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        assert!(matches!(
            KeyHeader::decode(&[]),
            Err(CryptoError::MalformedHeader(_))
        ));
        let (header, _) = KeyHeader::create(&"pw".into(), KdfParams::PBKDF2_OWASP).unwrap();
        let mut bytes = header.encode();
        bytes[0] = 9;
        assert!(matches!(
            KeyHeader::decode(&bytes),
            Err(CryptoError::MalformedHeader(_))
        ));
        let mut bytes = header.encode();
        bytes[1] = 7;
        assert!(matches!(
            KeyHeader::decode(&bytes),
            Err(CryptoError::MalformedHeader(_))
        ));
    }

    #[test]
    fn rewrap_keeps_the_dek() {
        let (header, dek) = KeyHeader::create(&"old".into(), KdfParams::PBKDF2_OWASP).unwrap();
        let new = KeyHeader::wrap(&dek, &"new".into(), KdfParams::PBKDF2_OWASP).unwrap();
        assert_eq!(new.unlock(&"new".into()).unwrap().expose(), dek.expose());
        assert!(new.unlock(&"old".into()).is_err());
        assert!(header.unlock(&"old".into()).is_ok());
    }

    #[test]
    fn raw_key_headers_round_trip_and_switch_with_passphrases() {
        let key = Secret::from(crate::RawKey::new(Zeroizing::new([9; 32])));
        let (header, dek) = KeyHeader::create(&key, KdfParams::ARGON2ID_OWASP).unwrap();
        assert_eq!(header.kdf(), KdfParams::RawKey);
        let bytes = header.encode();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(bytes[1], 3);
        assert!(bytes[2..14].iter().all(|&b| b == 0));
        let decoded = KeyHeader::decode(&bytes).unwrap();
        assert_eq!(decoded.unlock(&key).unwrap().expose(), dek.expose());
        let other = Secret::from(crate::RawKey::new(Zeroizing::new([8; 32])));
        assert_eq!(
            decoded.unlock(&other).unwrap_err(),
            CryptoError::WrongPassphrase
        );
        assert!(matches!(
            decoded.unlock(&"pw".into()),
            Err(CryptoError::SecretKind { .. })
        ));
        // Switching to a passphrase is a re-wrap of the same DEK.
        let pw = KeyHeader::wrap(&dek, &"pw".into(), KdfParams::PBKDF2_OWASP).unwrap();
        assert_eq!(pw.unlock(&"pw".into()).unwrap().expose(), dek.expose());
        let mut bad = bytes.clone();
        bad[5] = 1;
        assert!(matches!(
            KeyHeader::decode(&bad),
            Err(CryptoError::MalformedHeader(_))
        ));
    }

    #[test]
    fn rewrap_with_the_kek_opens_with_the_same_secret() {
        let (header, _) = KeyHeader::create(&"pw".into(), KdfParams::PBKDF2_OWASP).unwrap();
        let (kek, _) = header.unlock_kek(&"pw".into()).unwrap();
        let next = DataKey::generate().unwrap();
        let rewrapped = header.rewrap(&kek, &next).unwrap();
        assert_ne!(rewrapped.encode(), header.encode());
        assert_eq!(rewrapped.encode()[..30], header.encode()[..30]);
        assert_eq!(
            rewrapped.unlock(&"pw".into()).unwrap().expose(),
            next.expose()
        );
    }

    #[test]
    fn weak_params_are_refused_for_new_stores() {
        let weak = KdfParams::Pbkdf2Sha512 { iterations: 10 };
        assert!(matches!(
            KeyHeader::create(&"pw".into(), weak),
            Err(CryptoError::KdfParams(_))
        ));
    }
}
