//! Sealing records: AAD bound to table and key.
//!
//! ```text
//! AAD = "tresor/v1/record" ‖ u8 len(table) ‖ table ‖ key
//! value = AES-256-GCM(value key, AAD, codec::encode(record)) = nonce ‖ ct ‖ tag
//! ```

use serde::{Serialize, de::DeserializeOwned};
use tresor_crypto::StoreKeys;

use crate::{SchemaError, codec};

const AAD_LABEL: &[u8] = b"tresor/v1/record";

/// The AAD that binds a sealed value to `table` and `key` (layout in the module docs).
pub fn record_aad(table: &str, key: &[u8]) -> Vec<u8> {
    let table = &table.as_bytes()[..table.len().min(255)];
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 1 + table.len() + key.len());
    aad.extend_from_slice(AAD_LABEL);
    // Invariant: table.len() <= 255 after the cut (catalog names are at most 64 bytes).
    aad.push(table.len() as u8);
    aad.extend_from_slice(table);
    aad.extend_from_slice(key);
    aad
}

/// Seals already-encoded record bytes for `table`/`key`.
///
/// # Errors
/// [`SchemaError::Seal`] if no nonce could be drawn.
pub fn seal_bytes(
    keys: &StoreKeys,
    table: &str,
    key: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SchemaError> {
    keys.values()
        .seal(&record_aad(table, key), plaintext)
        .map_err(SchemaError::Seal)
}

/// Encodes `record` (padded to a Padmé length when `padded`: [`codec::encode_padded`]) and
/// seals it for `table`/`key`.
///
/// # Errors
/// [`SchemaError::Encode`] or [`SchemaError::Seal`].
pub fn seal_with<T: Serialize>(
    keys: &StoreKeys,
    table: &str,
    key: &[u8],
    record: &T,
    padded: bool,
) -> Result<Vec<u8>, SchemaError> {
    if padded {
        seal_bytes(keys, table, key, &codec::encode_padded(record)?)
    } else {
        seal(keys, table, key, record)
    }
}

/// Opens a sealed value of `table`/`key` to its encoded record bytes.
///
/// # Errors
/// [`SchemaError::Open`] if it does not authenticate (modified, moved, or another key).
pub fn open_bytes(
    keys: &StoreKeys,
    table: &'static str,
    key: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, SchemaError> {
    keys.values()
        .open(&record_aad(table, key), sealed)
        .map_err(|source| SchemaError::Open { table, source })
}

/// Encodes and seals `record` for `table`/`key`.
///
/// # Errors
/// [`SchemaError::Encode`] or [`SchemaError::Seal`].
pub fn seal<T: Serialize>(
    keys: &StoreKeys,
    table: &str,
    key: &[u8],
    record: &T,
) -> Result<Vec<u8>, SchemaError> {
    seal_bytes(keys, table, key, &codec::encode(record)?)
}

/// Opens and decodes a sealed record of `table`/`key`.
///
/// # Errors
/// [`SchemaError::Open`] or a decode error.
pub fn open<T: DeserializeOwned>(
    keys: &StoreKeys,
    table: &'static str,
    key: &[u8],
    sealed: &[u8],
) -> Result<T, SchemaError> {
    codec::decode(&open_bytes(keys, table, key, sealed)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use tresor_crypto::DataKey;

    #[test]
    fn a_record_moved_to_another_key_or_table_fails_to_open() {
        let keys = DataKey::generate().unwrap().store_keys();
        let m = Message::new("i", "c", "s", None, 5, "hello");
        let sealed = seal(&keys, "messages", b"key-1", &m).unwrap();
        assert_eq!(
            open::<Message>(&keys, "messages", b"key-1", &sealed).unwrap(),
            m
        );
        assert!(matches!(
            open::<Message>(&keys, "messages", b"key-2", &sealed),
            Err(SchemaError::Open { .. })
        ));
        assert!(matches!(
            open::<Message>(&keys, "peers", b"key-1", &sealed),
            Err(SchemaError::Open { .. })
        ));
    }

    #[test]
    fn aad_is_unambiguous() {
        // ("ab", "c…") and ("a", "bc…") must differ thanks to the length byte.
        assert_ne!(record_aad("ab", b"c"), record_aad("a", b"bc"));
    }
}
