//! The record codec: `format byte ‖ payload`.
//!
//! Format 1: the payload is the record serialized with bincode 2.0.1's serde support and
//! `bincode::config::standard()` (little-endian, varint integers), decoded with a 16 MiB
//! allocation limit and no trailing bytes allowed. See `docs/FORMAT.md`.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{Message, SchemaError};

/// The record format written by this code.
pub const RECORD_FORMAT: u8 = 1;
/// The largest payload a decode will allocate for, in bytes (16 MiB).
pub const DECODE_LIMIT: usize = 16 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes `record` as `RECORD_FORMAT ‖ bincode(record)`.
///
/// # Errors
/// [`SchemaError::Encode`] if serde refuses the value (e.g. a map with non-string keys is fine,
/// but a record over 16 MiB is not).
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, SchemaError> {
    let mut out = vec![RECORD_FORMAT];
    let payload = bincode::serde::encode_to_vec(record, config())
        .map_err(|e| SchemaError::Encode(e.to_string()))?;
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes bytes written by [`encode`]. Never panics, whatever the input.
///
/// # Errors
/// [`SchemaError::EmptyRecord`], [`SchemaError::UnknownFormat`], or [`SchemaError::Decode`]
/// for a payload that does not decode as `T` or has trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SchemaError> {
    let (&format, payload) = bytes.split_first().ok_or(SchemaError::EmptyRecord)?;
    if format != RECORD_FORMAT {
        return Err(SchemaError::UnknownFormat(format));
    }
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

/// Decodes a [`Message`] written by [`encode`]: the same result as `decode::<Message>` (the
/// same value, or an error where it errs), about twice as fast. The hot path of every read.
///
/// # Errors
/// As [`decode`].
pub fn decode_message(bytes: &[u8]) -> Result<Message, SchemaError> {
    let Some((&format, payload)) = bytes.split_first() else {
        return Err(SchemaError::EmptyRecord);
    };
    // The owned decode counts string bytes against DECODE_LIMIT; a payload within the limit
    // cannot hold more string bytes than that, so only larger payloads need the owned path.
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
        (
            ".{0,40}",
            ".{0,40}",
            ".{0,40}",
            proptest::option::of(".{0,40}"),
            any::<i64>(),
            ".{0,200}",
            any::<u64>(),
        )
            .prop_map(|(id, conv, sender, recipient, ts, body, seq)| Message {
                id,
                conversation_id: conv,
                sender,
                recipient,
                timestamp_ms: ts,
                body,
                seq,
            })
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
            let fast = decode_message(&bytes);
            let generic = decode::<Message>(&bytes);
            prop_assert_eq!(fast.is_ok(), generic.is_ok());
            prop_assert_eq!(fast.ok(), generic.ok());
        }

        /// …and on arbitrary bytes.
        #[test]
        fn decode_message_agrees_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
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

    #[test]
    fn unknown_format_and_trailing_bytes_are_rejected() {
        let m = Message::new("i", "c", "s", None, 1, "b");
        let mut bytes = encode(&m).unwrap();
        bytes[0] = 2;
        assert!(matches!(
            decode::<Message>(&bytes),
            Err(SchemaError::UnknownFormat(2))
        ));
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
