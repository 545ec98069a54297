//! The data key (DEK) and its HKDF subkeys.

use ring::hkdf;
use zeroize::Zeroizing;

use crate::{BlindKey, CryptoError, SealingKey};

/// HKDF info label of the value-sealing subkey.
pub const INFO_VALUES: &[u8] = b"tresor/v1/values";
/// HKDF info label of the index-token subkey.
pub const INFO_INDEX: &[u8] = b"tresor/v1/index";
/// HKDF info label of the backup root subkey.
pub const INFO_BACKUP: &[u8] = b"tresor/v1/backup";
/// HKDF info label (and AAD) of the key that wraps the previous DEK during a key rotation.
pub const INFO_PREVIOUS: &[u8] = b"tresor/v1/previous-dek";

/// The store's random 256-bit data-encryption key. Everything else is derived from it.
/// Zeroized on drop; `[REDACTED]` in `Debug`.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

impl DataKey {
    /// A fresh random key from the OS CSPRNG.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = Zeroizing::new([0u8; 32]);
        crate::random_bytes(k.as_mut())?;
        Ok(Self(k))
    }

    /// Wraps 32 raw key bytes (as unwrapped from a [`crate::KeyHeader`]).
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for wrapping under a KEK.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Wraps `previous` (the DEK being retired by a key rotation) under a key derived from this
    /// (the new) DEK: AES-256-GCM with key HKDF-SHA256(IKM = this DEK, salt = empty,
    /// info = `tresor/v1/previous-dek`) and AAD `tresor/v1/previous-dek`. Returns
    /// `nonce ‖ ct ‖ tag` (60 bytes). Whoever unlocks the new DEK can thus read both keys with
    /// one KDF run.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if no nonce could be drawn.
    pub fn wrap_previous(&self, previous: &DataKey) -> Result<Vec<u8>, CryptoError> {
        SealingKey::new(&hkdf_sha256(&[], self.0.as_ref(), INFO_PREVIOUS))
            .seal(INFO_PREVIOUS, previous.expose())
    }

    /// Opens what [`DataKey::wrap_previous`] wrapped.
    ///
    /// # Errors
    /// [`CryptoError::AuthenticationFailed`] if `wrapped` was not made under this DEK or was
    /// modified; [`CryptoError::Truncated`].
    pub fn unwrap_previous(&self, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let raw = Zeroizing::new(
            SealingKey::new(&hkdf_sha256(&[], self.0.as_ref(), INFO_PREVIOUS))
                .open(INFO_PREVIOUS, wrapped)?,
        );
        let bytes: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::AuthenticationFailed)?;
        Ok(DataKey::from_bytes(Zeroizing::new(bytes)))
    }

    /// Derives the store's subkeys with HKDF-SHA256 (RFC 5869; empty salt, as the DEK is
    /// uniformly random), one info label per purpose.
    pub fn store_keys(&self) -> StoreKeys {
        StoreKeys {
            values: SealingKey::new(&hkdf_expand(&[], self.0.as_ref(), INFO_VALUES)),
            index: BlindKey::new(hkdf_expand(&[], self.0.as_ref(), INFO_INDEX)),
            backup_root: hkdf_expand(&[], self.0.as_ref(), INFO_BACKUP),
        }
    }
}

/// HKDF-SHA256 (RFC 5869) extract-then-expand to 32 bytes: the one derivation behind every
/// subkey, the raw-key KEK and the per-backup keys (exposed for known-answer tests).
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    hkdf_expand(salt, ikm, info)
}

/// HKDF-SHA256 extract-then-expand to 32 bytes.
pub(crate) fn hkdf_expand(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    let mut out = Zeroizing::new([0u8; 32]);
    // Invariant: 32 bytes is HKDF_SHA256's output length, far below the 255 * 32 byte limit,
    // so neither expand nor fill can fail.
    #[allow(clippy::expect_used)]
    prk.expand(&info, hkdf::HKDF_SHA256)
        .expect("HKDF output length within limit")
        .fill(out.as_mut())
        .expect("HKDF fill of 32 bytes");
    out
}

/// The subkeys derived from a [`DataKey`]: one per purpose, never reused across purposes.
pub struct StoreKeys {
    values: SealingKey,
    index: BlindKey,
    backup_root: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKeys([REDACTED])")
    }
}

impl StoreKeys {
    /// The key that seals stored values.
    pub fn values(&self) -> &SealingKey {
        &self.values
    }

    /// The key that blinds identifiers in index keys.
    pub fn index(&self) -> &BlindKey {
        &self.index
    }

    /// The sealing key of one backup: HKDF-SHA256 with `backup_id` as salt over the backup root
    /// key, info `tresor/v1/backup-chunks`. Each backup thus has its own key.
    pub fn backup_key(&self, backup_id: &[u8]) -> SealingKey {
        SealingKey::new(&hkdf_expand(
            backup_id,
            self.backup_root.as_ref(),
            b"tresor/v1/backup-chunks",
        ))
    }

    /// A 32-byte subkey of the backup root key: HKDF-SHA256 with `salt` over the backup root
    /// key and the caller's `info` label (backup repositories derive their chunk, chunk-id,
    /// manifest and config keys this way, salted with the repository id). Callers use one
    /// distinct `info` label per purpose.
    pub fn backup_subkey(&self, salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
        hkdf_expand(salt, self.backup_root.as_ref(), info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_differ_per_purpose_and_per_backup() {
        let dek = DataKey::from_bytes(Zeroizing::new([5; 32]));
        let keys = dek.store_keys();
        let sealed = keys.values().seal(b"a", b"x").unwrap();
        // A value sealed under the values key does not open under a backup key.
        assert!(keys.backup_key(b"id-1").open(b"a", &sealed).is_err());
        let b1 = keys.backup_key(b"id-1").seal(b"a", b"x").unwrap();
        assert!(keys.backup_key(b"id-2").open(b"a", &b1).is_err());
        assert_eq!(keys.backup_key(b"id-1").open(b"a", &b1).unwrap(), b"x");
        // Same DEK → same subkeys (tokens stable across opens).
        let again = DataKey::from_bytes(Zeroizing::new([5; 32])).store_keys();
        assert_eq!(
            keys.index().token(b"d", b"i"),
            again.index().token(b"d", b"i")
        );
    }

    #[test]
    fn hkdf_matches_rfc5869_test_case_1_prefix() {
        // RFC 5869 A.1: IKM = 0x0b * 22, salt = 0x00..0x0c, info = 0xf0..0xf9; OKM (42 bytes)
        // starts 3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf...
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let okm = hkdf_expand(&salt, &ikm, &info);
        let hex: String = okm.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    #[test]
    fn previous_dek_round_trips_only_under_its_successor() {
        let old = DataKey::from_bytes(Zeroizing::new([1; 32]));
        let new = DataKey::from_bytes(Zeroizing::new([2; 32]));
        let wrapped = new.wrap_previous(&old).unwrap();
        assert_eq!(wrapped.len(), 60);
        assert_eq!(new.unwrap_previous(&wrapped).unwrap().expose(), &[1; 32]);
        assert!(old.unwrap_previous(&wrapped).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let dek = DataKey::from_bytes(Zeroizing::new([0xAB; 32]));
        let shown = format!("{dek:?} {:?}", dek.store_keys());
        assert!(!shown.to_lowercase().contains("ab, ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains("REDACTED"));
    }
}
