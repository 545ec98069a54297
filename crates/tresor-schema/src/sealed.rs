//! Sealing records: AAD bound to table and key.
//!
//! ```text
//! AAD = "tresor/v1/record" ‖ u8 len(table) ‖ table ‖ key
//! value = AES-256-GCM(value key, AAD, codec::encode(record)) = nonce ‖ ct ‖ tag
//! ```

use serde::{Serialize, de::DeserializeOwned};
use tresor_crypto::StoreKeys;
use tresor_crypto::aead::{NONCE_BYTES, SEAL_OVERHEAD, TAG_LEN};

use crate::{SchemaError, codec};

const AAD_LABEL: &[u8] = b"tresor/v1/record";

/// The AAD that binds a sealed value to `table` and `key` (layout in the module docs).
pub fn record_aad(table: &str, key: &[u8]) -> Vec<u8> {
    with_record_aad(table, key, <[u8]>::to_vec)
}

/// Runs `f` with the AAD of `table`/`key` ([`record_aad`]), built on the stack when it fits
/// (it does for every catalog table and every key tresor writes), so that sealing and opening
/// a record allocate nothing for it.
fn with_record_aad<R>(table: &str, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    // At most 255 bytes of the name (catalog names are at most 64).
    let table = &table.as_bytes()[..table.len().min(255)];
    // Invariant: table.len() <= 255 after the cut.
    let len = [table.len() as u8];
    crate::joined::with_joined(&[AAD_LABEL, &len, table, key], f)
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
    with_record_aad(table, key, |aad| keys.values().seal(aad, plaintext)).map_err(SchemaError::Seal)
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
    seal_encoded_with(keys, table, key, |buf| {
        if padded {
            codec::encode_padded_into(record, buf)
        } else {
            codec::encode_into(record, buf)
        }
    })
}

/// Seals the record bytes `encode` appends to the buffer it is given, for `table`/`key`:
/// [`seal_with`] for an encoding of the caller's choice (e.g. [`crate::compact`]).
///
/// # Errors
/// What `encode` returns, or [`SchemaError::Seal`].
pub fn seal_encoded_with(
    keys: &StoreKeys,
    table: &str,
    key: &[u8],
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), SchemaError>,
) -> Result<Vec<u8>, SchemaError> {
    // One buffer: the nonce's room, the encoding after it, sealed in place (one allocation
    // for most records instead of one per step).
    let mut buf = Vec::with_capacity(SEAL_OVERHEAD + codec::ENCODE_CAPACITY);
    buf.extend_from_slice(&[0u8; NONCE_BYTES]);
    encode(&mut buf)?;
    buf.reserve_exact(TAG_LEN);
    with_record_aad(table, key, |aad| keys.values().seal_in_place(aad, &mut buf))
        .map_err(SchemaError::Seal)?;
    Ok(buf)
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
    with_record_aad(table, key, |aad| keys.values().open(aad, sealed))
        .map_err(|source| SchemaError::Open { table, source })
}

/// [`open_bytes`] in place: decrypts `sealed` where it lies and returns the encoded record
/// bytes, a part of it (no copy; [`tresor_crypto::SealingKey::open_in_place`]).
///
/// # Errors
/// [`SchemaError::Open`] if it does not authenticate; `sealed` is then unusable.
pub fn open_bytes_in_place<'a>(
    keys: &StoreKeys,
    table: &'static str,
    key: &[u8],
    sealed: &'a mut [u8],
) -> Result<&'a [u8], SchemaError> {
    with_record_aad(table, key, |aad| keys.values().open_in_place(aad, sealed))
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
    seal_with(keys, table, key, record, false)
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
    fn the_aad_is_label_length_table_key() {
        let long_name = "é".repeat(200);
        for (table, key) in [
            ("messages", &[7u8; 32][..]),
            ("", &[][..]),
            ("t", &[1u8; 143][..]),
            ("t", &[1u8; 200][..]),
            (long_name.as_str(), &[2u8; 16][..]),
        ] {
            let name = &table.as_bytes()[..table.len().min(255)];
            let mut expected = AAD_LABEL.to_vec();
            expected.push(name.len() as u8);
            expected.extend_from_slice(name);
            expected.extend_from_slice(key);
            let on_stack = with_record_aad(table, key, <[u8]>::to_vec);
            assert_eq!(on_stack, expected, "{} {}", table.len(), key.len());
            assert_eq!(record_aad(table, key), expected);
            assert_eq!(
                on_stack.len(),
                AAD_LABEL.len() + 1 + table.len().min(255) + key.len()
            );
        }
    }

    #[test]
    fn sealing_in_one_buffer_opens_as_before() {
        let keys = DataKey::generate().unwrap().store_keys();
        let m = Message::new("i", "c", "s", None, 5, "x".repeat(1000));
        for padded in [false, true] {
            let sealed = seal_with(&keys, "messages", b"k", &m, padded).unwrap();
            let plain = open_bytes(&keys, "messages", b"k", &sealed).unwrap();
            let expected = if padded {
                codec::encode_padded(&m).unwrap()
            } else {
                codec::encode(&m).unwrap()
            };
            assert_eq!(plain, expected);
            assert_eq!(sealed.len(), expected.len() + SEAL_OVERHEAD);
            assert_eq!(
                open::<Message>(&keys, "messages", b"k", &sealed).unwrap(),
                m
            );
        }
    }

    #[test]
    fn aad_is_unambiguous() {
        // ("ab", "c…") and ("a", "bc…") must differ thanks to the length byte.
        assert_ne!(record_aad("ab", b"c"), record_aad("a", b"bc"));
    }
}
