//! The record codec: `format byte ‖ payload`.
//!
//! Format 1: the payload is the record serialized with bincode 2.0.1's serde support and
//! `bincode::config::standard()` (little-endian, varint integers), decoded with a 16 MiB
//! allocation limit and no trailing bytes allowed.
//!
//! Format 2 (padded, for length hiding): `2 ‖ u32 LE n ‖ payload (n bytes, as format 1) ‖
//! zero bytes`, padded so that the whole record is [`padded_len`] of its unpadded length
//! `5 + n`: Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
//! Communication with PURBs", PETS 2019) with a floor of [`PAD_MIN`] bytes. See
//! `docs/FORMAT.md`.
//!
//! Format 3: a [`Message`] in its compact encoding ([`crate::compact`]); only
//! [`decode_message`] reads it ([`decode`] refuses it as an unknown format).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{Message, SchemaError};

/// The record format written by this code.
pub const RECORD_FORMAT: u8 = 1;
/// The record format of padded records ([`encode_padded`]).
pub const PADDED_FORMAT: u8 = 2;
/// The largest payload a decode will allocate for, in bytes (16 MiB).
pub const DECODE_LIMIT: usize = 16 * 1024 * 1024;
/// The smallest padded record, in bytes: shorter records are padded up to it.
pub const PAD_MIN: usize = 64;

/// Padmé length of a record of `len` bytes (at least [`PAD_MIN`]): with `E = ⌊log2 L⌋` and
/// `S = ⌊log2 E⌋ + 1`, the low `E − S` bits of `L` are rounded up, so at most `S` significant
/// bits remain (overhead ≤ 12 %, leaking O(log log L) bits of the length).
pub fn padded_len(len: usize) -> usize {
    let l = len.max(PAD_MIN) as u64;
    let e = 63 - u64::from(l.leading_zeros()); // ⌊log2 L⌋, L ≥ 64 so e ≥ 6
    let s = 64 - u64::from(e.leading_zeros()); // ⌊log2 E⌋ + 1
    let mask = (1u64 << (e - s)) - 1;
    ((l + mask) & !mask) as usize
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes `record` as `RECORD_FORMAT ‖ bincode(record)`.
///
/// # Errors
/// [`SchemaError::Encode`] if serde refuses the value (e.g. a map with non-string keys is fine,
/// but a record over 16 MiB is not).
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, SchemaError> {
    let mut out = Vec::with_capacity(ENCODE_CAPACITY);
    encode_into(record, &mut out)?;
    Ok(out)
}

/// Room a new encoding buffer starts with, bytes: most records (a chat message, a summary)
/// fit, so encoding allocates once.
pub const ENCODE_CAPACITY: usize = 384;

/// [`encode`], appended to `out` (which may already hold bytes, e.g. a nonce's room: see
/// [`crate::sealed`]). On error `out` may hold part of an encoding.
///
/// # Errors
/// As [`encode`].
pub fn encode_into<T: Serialize>(record: &T, out: &mut Vec<u8>) -> Result<(), SchemaError> {
    out.push(RECORD_FORMAT);
    bincode::serde::encode_into_writer(record, VecWriter(out), config())
        .map_err(|e| SchemaError::Encode(e.to_string()))
}

/// [`encode_padded`], appended to `out`; the padding is of the record's own bytes (from its
/// format byte), whatever `out` held before. On error `out` may hold part of an encoding.
///
/// # Errors
/// As [`encode`].
pub fn encode_padded_into<T: Serialize>(record: &T, out: &mut Vec<u8>) -> Result<(), SchemaError> {
    let start = out.len();
    out.push(PADDED_FORMAT);
    out.extend_from_slice(&[0u8; 4]);
    bincode::serde::encode_into_writer(record, VecWriter(out), config())
        .map_err(|e| SchemaError::Encode(e.to_string()))?;
    let payload = out.len() - start - 5;
    let n = u32::try_from(payload).map_err(|_| SchemaError::Encode("record over 4 GiB".into()))?;
    out[start + 1..start + 5].copy_from_slice(&n.to_le_bytes());
    out.resize(start + padded_len(5 + payload), 0);
    Ok(())
}

/// A bincode writer appending to a `Vec` (no `std::io` adapter in between).
struct VecWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Encodes `record` as a padded format-2 record (layout in the module docs), whose length is
/// [`padded_len`] of the unpadded length.
///
/// # Errors
/// As [`encode`].
pub fn encode_padded<T: Serialize>(record: &T) -> Result<Vec<u8>, SchemaError> {
    let mut out = Vec::with_capacity(ENCODE_CAPACITY);
    encode_padded_into(record, &mut out)?;
    Ok(out)
}

/// Decodes bytes written by [`encode`] or [`encode_padded`]. Never panics, whatever the input.
///
/// # Errors
/// [`SchemaError::EmptyRecord`], [`SchemaError::UnknownFormat`], or [`SchemaError::Decode`]
/// for a payload that does not decode as `T` or has trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SchemaError> {
    let (&format, rest) = bytes.split_first().ok_or(SchemaError::EmptyRecord)?;
    let payload = match format {
        RECORD_FORMAT => rest,
        PADDED_FORMAT => {
            let (len, rest) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| SchemaError::Decode("padded record without length".into()))?;
            let n = u32::from_le_bytes(*len) as usize;
            if n > rest.len() {
                return Err(SchemaError::Decode("padded length past the record".into()));
            }
            let (payload, padding) = rest.split_at(n);
            if padding.iter().any(|&b| b != 0) {
                return Err(SchemaError::Decode("non-zero padding".into()));
            }
            payload
        }
        other => return Err(SchemaError::UnknownFormat(other)),
    };
    let (value, used) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| SchemaError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(SchemaError::Decode(format!(
            "{} trailing bytes",
            payload.len() - used
        )));
    }
    Ok(value)
}

/// A [`Message`] borrowing its strings from the encoded bytes: the same serde data model (and
/// so the same bincode bytes) with `&str` in place of `String`, which bincode decodes without
/// the zero-filled intermediate buffer it uses for an owned `String`.
#[derive(Deserialize)]
struct MessageRef<'a> {
    id: &'a str,
    conversation_id: &'a str,
    sender: &'a str,
    #[serde(borrow)]
    recipient: Option<&'a str>,
    timestamp_ms: i64,
    body: &'a str,
    seq: u64,
}

/// Decodes a [`Message`] record of any format: format 3 ([`crate::compact`], what tresor
/// writes since schema version 5), or formats 1 and 2 with the same result as
/// `decode::<Message>` (the same value, or an error where it errs), about twice as fast. The
/// hot path of every read. Never panics, whatever the input.
///
/// # Errors
/// As [`decode`].
pub fn decode_message(bytes: &[u8]) -> Result<Message, SchemaError> {
    let Some((&format, payload)) = bytes.split_first() else {
        return Err(SchemaError::EmptyRecord);
    };
    // The owned decode counts string bytes against DECODE_LIMIT; a payload within the limit
    // cannot hold more string bytes than that, so only larger payloads need the owned path.
    if format == crate::compact::COMPACT_FORMAT {
        return crate::compact::decode_payload(payload);
    }
    if format != RECORD_FORMAT || payload.len() > DECODE_LIMIT {
        return decode(bytes);
    }
    let (m, used): (MessageRef<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(payload, config())
            .map_err(|e| SchemaError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(SchemaError::Decode(format!(
            "{} trailing bytes",
            payload.len() - used
        )));
    }
    Ok(Message {
        id: m.id.to_owned(),
        conversation_id: m.conversation_id.to_owned(),
        sender: m.sender.to_owned(),
        recipient: m.recipient.map(str::to_owned),
        timestamp_ms: m.timestamp_ms,
        body: m.body.to_owned(),
        seq: m.seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use proptest::prelude::*;

    fn arb_message() -> impl Strategy<Value = Message> {
        crate::message::arb_message_with(".{0,40}")
    }

    proptest! {
        #[test]
        fn message_round_trips(m in arb_message()) {
            let bytes = encode(&m).unwrap();
            prop_assert_eq!(bytes[0], RECORD_FORMAT);
            prop_assert_eq!(decode::<Message>(&bytes).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Message>(&bytes);
            let _ = decode_message(&bytes);
        }

        /// The fast message decoder agrees with the generic one on valid records…
        #[test]
        fn decode_message_agrees_on_records(m in arb_message(), extra in any::<bool>()) {
            let mut bytes = encode(&m).unwrap();
            if extra {
                bytes.push(0);
            }
            let fast = decode_message(&bytes);
            let generic = decode::<Message>(&bytes);
            prop_assert_eq!(fast.is_ok(), generic.is_ok());
            prop_assert_eq!(fast.ok(), generic.ok());
        }

        /// …on damaged ones (truncated, bytes flipped: bad lengths, invalid UTF-8)…
        #[test]
        fn decode_message_agrees_on_damage(
            m in arb_message(), cut in 0usize..1000, flip in 0usize..1000, mask in 1u8..=255,
        ) {
            let mut bytes = encode(&m).unwrap();
            let i = flip % bytes.len();
            bytes[i] ^= mask;
            bytes.truncate(1 + cut % bytes.len());
            // A format byte turned into 3 is a compact record: `compact`'s tests cover it.
            prop_assume!(bytes[0] != crate::compact::COMPACT_FORMAT);
            let fast = decode_message(&bytes);
            let generic = decode::<Message>(&bytes);
            prop_assert_eq!(fast.is_ok(), generic.is_ok());
            prop_assert_eq!(fast.ok(), generic.ok());
        }

        /// …and on arbitrary bytes.
        #[test]
        fn decode_message_agrees_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            prop_assume!(bytes.first() != Some(&crate::compact::COMPACT_FORMAT));
            let fast = decode_message(&bytes);
            let generic = decode::<Message>(&bytes);
            prop_assert_eq!(fast.is_ok(), generic.is_ok());
            prop_assert_eq!(fast.ok(), generic.ok());
        }

        #[test]
        fn truncation_is_an_error(m in arb_message(), cut in 0usize..1000) {
            let bytes = encode(&m).unwrap();
            let cut = cut % bytes.len();
            prop_assert!(decode::<Message>(&bytes[..cut]).is_err());
        }
    }

    proptest! {
        #[test]
        fn padded_messages_round_trip_at_padme_lengths(m in arb_message()) {
            let plain = encode(&m).unwrap();
            let padded = encode_padded(&m).unwrap();
            prop_assert_eq!(padded[0], PADDED_FORMAT);
            prop_assert_eq!(padded.len(), padded_len(plain.len() + 4));
            prop_assert!(padded.len() >= plain.len() + 4);
            prop_assert_eq!(decode::<Message>(&padded).unwrap(), m);
        }
    }

    #[test]
    fn padme_lengths() {
        // Values from the PURBs paper's definition; at most 12 % overhead above 64.
        assert_eq!(padded_len(0), 64);
        assert_eq!(padded_len(64), 64);
        assert_eq!(padded_len(65), 72);
        assert_eq!(padded_len(100), 104);
        assert_eq!(padded_len(1000), 1024);
        assert_eq!(padded_len(1025), 1088);
        for l in 64..100_000 {
            let p = padded_len(l);
            assert!(p >= l && (p - l) * 100 <= l * 12, "{l} -> {p}");
        }
    }

    #[test]
    fn padded_records_with_bad_padding_are_rejected() {
        let m = Message::new("i", "c", "s", None, 1, "b");
        let mut padded = encode_padded(&m).unwrap();
        let last = padded.len() - 1;
        padded[last] = 1;
        assert!(decode::<Message>(&padded).is_err());
        let mut padded = encode_padded(&m).unwrap();
        padded[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode::<Message>(&padded).is_err());
        assert!(decode::<Message>(&[PADDED_FORMAT, 1]).is_err());
    }

    #[test]
    fn unknown_format_and_trailing_bytes_are_rejected() {
        let m = Message::new("i", "c", "s", None, 1, "b");
        let mut bytes = encode(&m).unwrap();
        bytes[0] = 4;
        assert!(matches!(
            decode::<Message>(&bytes),
            Err(SchemaError::UnknownFormat(4))
        ));
        assert!(matches!(
            decode_message(&bytes),
            Err(SchemaError::UnknownFormat(4))
        ));
        // Format 3 is a message's compact encoding: only `decode_message` reads it.
        let compact = crate::compact::encode_message(&m).unwrap();
        assert!(matches!(
            decode::<Message>(&compact),
            Err(SchemaError::UnknownFormat(3))
        ));
        assert_eq!(decode_message(&compact).unwrap(), m);
        let mut bytes = encode(&m).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<Message>(&bytes),
            Err(SchemaError::Decode(_))
        ));
        assert!(matches!(
            decode::<Message>(&[]),
            Err(SchemaError::EmptyRecord)
        ));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // format 1, then a string length varint of u64::MAX.
        let bytes = [1u8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(decode::<Message>(&bytes).is_err());
    }
}
