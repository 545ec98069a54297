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
    let table = aad_table(table);
    let mut aad = vec![0u8; aad_len(table, key)];
    write_aad(table, key, &mut aad);
    aad
}

/// The table name's bytes as the AAD carries them: at most 255 (catalog names are at most 64).
fn aad_table(table: &str) -> &[u8] {
    &table.as_bytes()[..table.len().min(255)]
}

fn aad_len(table: &[u8], key: &[u8]) -> usize {
    AAD_LABEL.len() + 1 + table.len() + key.len()
}

/// Writes the AAD of `table` (already cut by [`aad_table`]) and `key` into `out`, which is
/// exactly [`aad_len`] bytes long.
fn write_aad(table: &[u8], key: &[u8], out: &mut [u8]) {
    let (label, rest) = out.split_at_mut(AAD_LABEL.len());
    label.copy_from_slice(AAD_LABEL);
    let (len, rest) = rest.split_at_mut(1);
    // Invariant: table.len() <= 255 after the cut.
    len[0] = table.len() as u8;
    let (name, rest) = rest.split_at_mut(table.len());
    name.copy_from_slice(table);
    rest.copy_from_slice(key);
}

/// Runs `f` with the AAD of `table`/`key` ([`record_aad`]), built on the stack when it fits
/// (it does for every catalog table and every key tresor writes), so that sealing and opening
/// a record allocate nothing for it.
fn with_record_aad<R>(table: &str, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    const ROOM: usize = 160;
    let table = aad_table(table);
    let len = aad_len(table, key);
    if len > ROOM {
        let mut aad = vec![0u8; len];
        write_aad(table, key, &mut aad);
        return f(&aad);
    }
    let mut aad = [0u8; ROOM];
    write_aad(table, key, &mut aad[..len]);
    f(&aad[..len])
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
    // One buffer: the nonce's room, the encoding after it, sealed in place (one allocation
    // for most records instead of one per step).
    let mut buf = Vec::with_capacity(SEAL_OVERHEAD + codec::ENCODE_CAPACITY);
    buf.extend_from_slice(&[0u8; NONCE_BYTES]);
    if padded {
        codec::encode_padded_into(record, &mut buf)?;
    } else {
        codec::encode_into(record, &mut buf)?;
    }
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
    fn the_aad_on_the_stack_is_the_aad() {
        let long_name = "é".repeat(200);
        for (table, key) in [
            ("messages", &[7u8; 32][..]),
            ("", &[][..]),
            ("t", &[1u8; 143][..]),
            ("t", &[1u8; 200][..]),
            (long_name.as_str(), &[2u8; 16][..]),
        ] {
            let on_stack = with_record_aad(table, key, <[u8]>::to_vec);
            assert_eq!(
                on_stack,
                record_aad(table, key),
                "{} {}",
                table.len(),
                key.len()
            );
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
