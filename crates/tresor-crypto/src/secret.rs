//! Secret wrappers: what unlocks a store.

use zeroize::Zeroizing;

use crate::CryptoError;

/// Length of a raw application key in bytes (256 bits).
pub const RAW_KEY_LEN: usize = 32;

/// A passphrase: zeroized on drop, `[REDACTED]` in `Debug`, never `Display`ed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Wraps the passphrase's UTF-8 (or arbitrary) bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }

    /// The passphrase bytes, for the KDF.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether two passphrases are equal, in time independent of where they differ
    /// ([`crate::constant_time_eq`]; only the lengths may leak).
    pub fn ct_eq(&self, other: &Passphrase) -> bool {
        crate::constant_time_eq(&self.0, &other.0)
    }
}

impl From<&str> for Passphrase {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes().to_vec())
    }
}

impl From<String> for Passphrase {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase([REDACTED])")
    }
}

/// A 32-byte key supplied by the application instead of a passphrase (from an OS keychain, a
/// secure enclave or a key file), like SQLCipher's raw key. It must be uniformly random: it
/// is not stretched, only expanded with HKDF-SHA256 (see [`crate::KdfParams::RawKey`]).
///
/// Zeroized on drop; `[REDACTED]` in `Debug`; never `Display`ed.
#[derive(Clone)]
pub struct RawKey(Zeroizing<[u8; RAW_KEY_LEN]>);

impl RawKey {
    /// Wraps 32 key bytes.
    pub fn new(bytes: Zeroizing<[u8; RAW_KEY_LEN]>) -> Self {
        Self(bytes)
    }

    /// A fresh random key from the OS CSPRNG (for applications that keep it in a keychain).
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = Zeroizing::new([0u8; RAW_KEY_LEN]);
        crate::random_bytes(k.as_mut())?;
        Ok(Self(k))
    }

    /// Reads a key file's contents: exactly 32 raw bytes, or 64 hexadecimal digits (either
    /// case) optionally surrounded by ASCII whitespace (a trailing newline).
    ///
    /// # Errors
    /// [`CryptoError::MalformedKey`] for any other length or a non-hex digit.
    pub fn from_key_file(contents: &[u8]) -> Result<Self, CryptoError> {
        let mut out = Zeroizing::new([0u8; RAW_KEY_LEN]);
        if contents.len() == RAW_KEY_LEN {
            out.copy_from_slice(contents);
            return Ok(Self(out));
        }
        let text = contents.trim_ascii();
        if text.len() != 2 * RAW_KEY_LEN {
            return Err(CryptoError::MalformedKey(
                "a key file holds 32 raw bytes or 64 hex digits",
            ));
        }
        for (i, pair) in text.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]);
            let lo = hex_digit(pair[1]);
            match (hi, lo) {
                (Some(h), Some(l)) => out[i] = (h << 4) | l,
                _ => return Err(CryptoError::MalformedKey("key file has a non-hex digit")),
            }
        }
        Ok(Self(out))
    }

    /// The key bytes, for HKDF.
    pub fn expose(&self) -> &[u8; RAW_KEY_LEN] {
        &self.0
    }

    /// Whether two keys are equal, in constant time ([`crate::constant_time_eq`]).
    pub fn ct_eq(&self, other: &RawKey) -> bool {
        crate::constant_time_eq(self.0.as_ref(), other.0.as_ref())
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl std::fmt::Debug for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawKey([REDACTED])")
    }
}

/// What unlocks a store: a passphrase (stretched by the header's KDF) or a raw key.
///
/// `From<&str>`, `From<String>` and `From<Passphrase>` give [`Secret::Passphrase`];
/// `From<RawKey>` gives [`Secret::RawKey`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Secret {
    /// A passphrase, for headers with KDF Argon2id or PBKDF2.
    Passphrase(Passphrase),
    /// A raw 32-byte key, for headers with KDF [`crate::KdfParams::RawKey`].
    RawKey(RawKey),
}

impl Secret {
    /// `"passphrase"` or `"raw key"`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Secret::Passphrase(_) => "passphrase",
            Secret::RawKey(_) => "raw key",
        }
    }
}

impl From<Passphrase> for Secret {
    fn from(p: Passphrase) -> Self {
        Secret::Passphrase(p)
    }
}

impl From<RawKey> for Secret {
    fn from(k: RawKey) -> Self {
        Secret::RawKey(k)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::Passphrase(s.into())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::Passphrase(s.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let p = Passphrase::from("hunter2-correct-horse");
        let shown = format!("{p:?} {:?}", Secret::from(p.clone()));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("REDACTED"));
        let k = RawKey::new(Zeroizing::new([0x5A; 32]));
        let shown = format!("{k:?} {:?}", Secret::from(k.clone()));
        assert!(!shown.contains("5a") && !shown.contains("90"), "{shown}");
    }

    #[test]
    fn key_files_are_raw_or_hex() {
        let raw = [7u8; 32];
        assert_eq!(RawKey::from_key_file(&raw).unwrap().expose(), &raw);
        let hex = "07".repeat(32) + "\n";
        assert_eq!(
            RawKey::from_key_file(hex.as_bytes()).unwrap().expose(),
            &raw
        );
        let upper = "AB".repeat(32);
        assert_eq!(
            RawKey::from_key_file(upper.as_bytes()).unwrap().expose(),
            &[0xAB; 32]
        );
        for bad in [&b"short"[..], &[0u8; 33][..], "zz".repeat(32).as_bytes()] {
            assert!(matches!(
                RawKey::from_key_file(bad),
                Err(CryptoError::MalformedKey(_))
            ));
        }
    }

    #[test]
    fn constant_time_equality() {
        assert!(Passphrase::from("a").ct_eq(&"a".into()));
        assert!(!Passphrase::from("a").ct_eq(&"b".into()));
        assert!(!Passphrase::from("a").ct_eq(&"ab".into()));
        let k = RawKey::new(Zeroizing::new([1; 32]));
        assert!(k.ct_eq(&k.clone()));
        assert!(!k.ct_eq(&RawKey::new(Zeroizing::new([2; 32]))));
    }
}
