//! The key header: KDF parameters, salt and the wrapped data key, stored with the store.
//!
//! Encoding (version 1, 90 bytes, integers little-endian):
//!
//! | offset | len | field |
//! |---|---|---|
//! | 0 | 1 | header version = 1 |
//! | 1 | 1 | KDF id: 1 = Argon2id v0x13, 2 = PBKDF2-HMAC-SHA512 |
//! | 2 | 12 | KDF params: Argon2id `m_kib u32, t u32, p u32`; PBKDF2 `iterations u32` + 8 zero bytes |
//! | 14 | 16 | salt |
//! | 30 | 60 | wrapped DEK: AES-256-GCM `nonce(12) ‖ ct(32) ‖ tag(16)` under the KEK, AAD = `"tresor/v1/dek" ‖ bytes 0..30` |

use zeroize::Zeroizing;

use crate::kdf::SALT_LEN;
use crate::{CryptoError, DataKey, KdfParams, Passphrase, SealingKey};

/// Current header version.
pub const HEADER_VERSION: u8 = 1;
/// Encoded length of a version-1 header in bytes.
pub const HEADER_LEN: usize = 90;
const PREFIX_LEN: usize = 30;
const WRAP_AAD_LABEL: &[u8] = b"tresor/v1/dek";

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
    /// from `passphrase` with `kdf`, and wraps the DEK under it.
    ///
    /// # Errors
    /// [`CryptoError::KdfParams`] if `kdf` is below OWASP's minimum; [`CryptoError::Random`] or
    /// [`CryptoError::Kdf`] if a primitive fails.
    pub fn create(
        passphrase: &Passphrase,
        kdf: KdfParams,
    ) -> Result<(KeyHeader, DataKey), CryptoError> {
        let dek = DataKey::generate()?;
        let header = Self::wrap(&dek, passphrase, kdf)?;
        Ok((header, dek))
    }

    /// Wraps an existing `dek` under a fresh salt and `passphrase` (a passphrase change
    /// re-wraps the same DEK: nothing else in the store changes).
    ///
    /// # Errors
    /// As [`KeyHeader::create`].
    pub fn wrap(
        dek: &DataKey,
        passphrase: &Passphrase,
        kdf: KdfParams,
    ) -> Result<KeyHeader, CryptoError> {
        kdf.check_minimum()?;
        let mut salt = [0u8; SALT_LEN];
        crate::random_bytes(&mut salt)?;
        let mut header = KeyHeader {
            kdf,
            salt,
            wrapped_dek: Vec::new(),
        };
        let kek = SealingKey::new(&kdf.derive_kek(passphrase, &salt)?);
        header.wrapped_dek = kek.seal(&header.wrap_aad(), dek.expose())?;
        Ok(header)
    }

    /// Derives the KEK from `passphrase` and unwraps the DEK.
    ///
    /// # Errors
    /// [`CryptoError::WrongPassphrase`] if the wrapped key does not open (wrong passphrase or a
    /// modified header); [`CryptoError::KdfParams`] if the stored parameters are out of range.
    pub fn unlock(&self, passphrase: &Passphrase) -> Result<DataKey, CryptoError> {
        let kek = SealingKey::new(&self.kdf.derive_kek(passphrase, &self.salt)?);
        let raw = kek
            .open(&self.wrap_aad(), &self.wrapped_dek)
            .map_err(|_| CryptoError::WrongPassphrase)?;
        let raw = Zeroizing::new(raw);
        let bytes: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::MalformedHeader("wrapped key is not 32 bytes"))?;
        Ok(DataKey::from_bytes(Zeroizing::new(bytes)))
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
    fn weak_params_are_refused_for_new_stores() {
        let weak = KdfParams::Pbkdf2Sha512 { iterations: 10 };
        assert!(matches!(
            KeyHeader::create(&"pw".into(), weak),
            Err(CryptoError::KdfParams(_))
        ));
    }
}
