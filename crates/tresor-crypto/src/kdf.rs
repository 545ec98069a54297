//! Key derivation: passphrase (or raw key) + salt + parameters → 256-bit KEK.

use std::num::NonZeroU32;

use zeroize::Zeroizing;

use crate::{CryptoError, Secret};

/// HKDF info label that turns a raw key into a KEK ([`KdfParams::RawKey`]).
pub const INFO_RAW_KEK: &[u8] = b"tresor/v1/raw-kek";

/// Length of the KDF salt in bytes (128 bits, as NIST SP 800-132 recommends at least).
pub const SALT_LEN: usize = 16;

/// Which KDF turns the passphrase into the key-encryption key, and with what cost.
///
/// Stored in the [`crate::KeyHeader`], so parameters can be raised for new stores without
/// breaking old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KdfParams {
    /// Argon2id, version 0x13 (RFC 9106).
    Argon2id {
        /// Memory cost in KiB.
        memory_kib: u32,
        /// Number of passes (time cost).
        iterations: u32,
        /// Degree of parallelism (lanes).
        parallelism: u32,
    },
    /// PBKDF2 with HMAC-SHA512 (RFC 8018), via `ring`.
    Pbkdf2Sha512 {
        /// Iteration count.
        iterations: u32,
    },
    /// No stretching: the secret is a uniformly random 32-byte [`crate::RawKey`] and
    /// KEK = HKDF-SHA256(salt = header salt, IKM = raw key, info = `tresor/v1/raw-kek`)
    /// (RFC 5869). Used for stores unlocked by an application key (SQLCipher's "raw key").
    RawKey,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::ARGON2ID_OWASP
    }
}

impl KdfParams {
    /// Argon2id at OWASP's Password Storage Cheat Sheet minimum: m = 19 MiB (19,456 KiB),
    /// t = 2, p = 1. The default.
    pub const ARGON2ID_OWASP: Self = Self::Argon2id {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// PBKDF2-HMAC-SHA512 with 220,000 iterations (OWASP's recommendation for SHA-512, rounded
    /// up).
    pub const PBKDF2_OWASP: Self = Self::Pbkdf2Sha512 {
        iterations: 220_000,
    };

    /// Checks that the parameters are at least OWASP's minimum (required for new stores).
    ///
    /// # Errors
    /// [`CryptoError::KdfParams`] when any cost is below the minimum.
    pub fn check_minimum(&self) -> Result<(), CryptoError> {
        match *self {
            Self::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            } => {
                if memory_kib < 19_456 || iterations < 2 || parallelism < 1 {
                    return Err(CryptoError::KdfParams(
                        "Argon2id below OWASP minimum (m=19456 KiB, t=2, p=1)",
                    ));
                }
            }
            Self::Pbkdf2Sha512 { iterations } => {
                if iterations < 220_000 {
                    return Err(CryptoError::KdfParams(
                        "PBKDF2-HMAC-SHA512 below 220,000 iterations",
                    ));
                }
            }
            // A raw key has full entropy: there is nothing to stretch.
            Self::RawKey => {}
        }
        Ok(())
    }

    /// Checks that the parameters are small enough to run at all (when opening a store whose
    /// header may be hostile): Argon2id m ≤ 4 GiB, t ≤ 64, 1 ≤ p ≤ 64; PBKDF2 ≤ 100,000,000.
    ///
    /// # Errors
    /// [`CryptoError::KdfParams`] when a cost is above the maximum or zero.
    pub fn check_maximum(&self) -> Result<(), CryptoError> {
        let ok = match *self {
            Self::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            } => {
                (8..=4 * 1024 * 1024).contains(&memory_kib)
                    && (1..=64).contains(&iterations)
                    && (1..=64).contains(&parallelism)
            }
            Self::Pbkdf2Sha512 { iterations } => (1..=100_000_000).contains(&iterations),
            Self::RawKey => true,
        };
        if ok {
            Ok(())
        } else {
            Err(CryptoError::KdfParams("KDF cost out of the accepted range"))
        }
    }

    /// What kind of secret this KDF takes: `"passphrase"` or `"raw key"`.
    pub fn secret_kind(&self) -> &'static str {
        match self {
            Self::RawKey => "raw key",
            _ => "passphrase",
        }
    }

    /// Derives the 32-byte key-encryption key from `secret` and `salt`.
    ///
    /// # Errors
    /// [`CryptoError::SecretKind`] if `secret` is a passphrase and this is
    /// [`KdfParams::RawKey`], or the other way round; [`CryptoError::KdfParams`] for
    /// out-of-range parameters, [`CryptoError::Kdf`] if Argon2 fails.
    pub fn derive_kek(
        &self,
        secret: &Secret,
        salt: &[u8; SALT_LEN],
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        self.check_maximum()?;
        let passphrase = match (secret, self) {
            (Secret::RawKey(key), Self::RawKey) => {
                return Ok(crate::keys::hkdf_expand(salt, key.expose(), INFO_RAW_KEK));
            }
            (Secret::Passphrase(p), Self::Argon2id { .. } | Self::Pbkdf2Sha512 { .. }) => p,
            (given, _) => {
                return Err(CryptoError::SecretKind {
                    expected: self.secret_kind(),
                    given: given.kind(),
                });
            }
        };
        let mut out = Zeroizing::new([0u8; 32]);
        match *self {
            Self::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            } => {
                let params = argon2::Params::new(memory_kib, iterations, parallelism, Some(32))
                    .map_err(|e| CryptoError::Kdf(e.to_string()))?;
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                    .hash_password_into(passphrase.expose(), salt, out.as_mut())
                    .map_err(|e| CryptoError::Kdf(e.to_string()))?;
            }
            Self::Pbkdf2Sha512 { iterations } => {
                let iterations = NonZeroU32::new(iterations)
                    .ok_or(CryptoError::KdfParams("zero PBKDF2 iterations"))?;
                ring::pbkdf2::derive(
                    ring::pbkdf2::PBKDF2_HMAC_SHA512,
                    iterations,
                    salt,
                    passphrase.expose(),
                    out.as_mut(),
                );
            }
            // Handled above.
            Self::RawKey => {}
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors computed independently with Python: `hashlib.pbkdf2_hmac` and
    /// `cryptography`'s `Argon2id` (salt `saltsaltsaltsalt`, passphrase `password`, 32 bytes).
    #[test]
    fn known_answer_vectors() {
        let salt = *b"saltsaltsaltsalt";
        let p = Secret::from("password");
        let pbkdf2 = KdfParams::Pbkdf2Sha512 { iterations: 1 }
            .derive_kek(&p, &salt)
            .unwrap();
        assert_eq!(
            hex(&pbkdf2[..]),
            "ccc6bd2cbf575bd344c9cf542877fc6e9372cbf1f1e1df392c6cf5f6038bb574"
        );
        let argon = KdfParams::ARGON2ID_OWASP.derive_kek(&p, &salt).unwrap();
        assert_eq!(
            hex(&argon[..]),
            "4fde6aed2db4e6d7fd588e078583990c842630c01b9ed69c1974c892ed205d3f"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn raw_key_kek_is_hkdf_and_kinds_must_match() {
        use zeroize::Zeroizing;
        let raw = Secret::from(crate::RawKey::new(Zeroizing::new([1; 32])));
        let kek = KdfParams::RawKey.derive_kek(&raw, &[2; 16]).unwrap();
        let again = crate::keys::hkdf_expand(&[2; 16], &[1; 32], INFO_RAW_KEK);
        assert_eq!(kek, again);
        assert!(matches!(
            KdfParams::RawKey.derive_kek(&"pw".into(), &[2; 16]),
            Err(CryptoError::SecretKind { .. })
        ));
        assert!(matches!(
            KdfParams::PBKDF2_OWASP.derive_kek(&raw, &[2; 16]),
            Err(CryptoError::SecretKind { .. })
        ));
    }

    #[test]
    fn minimums_are_enforced() {
        assert!(KdfParams::ARGON2ID_OWASP.check_minimum().is_ok());
        assert!(KdfParams::PBKDF2_OWASP.check_minimum().is_ok());
        let weak = KdfParams::Argon2id {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        assert!(weak.check_minimum().is_err());
        assert!(
            KdfParams::Pbkdf2Sha512 { iterations: 1000 }
                .check_minimum()
                .is_err()
        );
    }

    #[test]
    fn hostile_parameters_are_refused_before_running() {
        let huge = KdfParams::Argon2id {
            memory_kib: u32::MAX,
            iterations: 2,
            parallelism: 1,
        };
        assert!(matches!(
            huge.derive_kek(&Secret::from("x"), &[0; 16]),
            Err(CryptoError::KdfParams(_))
        ));
    }
}
