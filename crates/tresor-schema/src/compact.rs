//! Record format 3: the compact encoding of a [`Message`] (`docs/FORMAT.md` 1.8).
//!
//! ```text
//! record    = 3 ‖ text(id) ‖ text(conversation_id) ‖ text(sender) ‖ recipient
//!               ‖ varint(zigzag(timestamp_ms)) ‖ text(body) ‖ varint(seq)
//! text      = 0 ‖ varint(n) ‖ n bytes of UTF-8                  (any string)
//!           | 1 ‖ uuid (16 bytes) ‖ varint(n) ‖ n bytes of UTF-8 (a string that starts with a
//!                                                                 canonical UUID)
//! recipient = text | 2                                          (2: no recipient)
//! varint    = unsigned LEB128: 7 bits a byte, low group first, high bit set on every byte
//!             but the last; at most 10 bytes, and no needless trailing 0 group
//! zigzag(t) = (t << 1) ^ (t >> 63)                              (arithmetic shift)
//! ```
//!
//! A *canonical UUID* is the 36-character lowercase hyphenated text of RFC 9562 §4
//! (`8-4-4-4-12` hex digits `0-9a-f`): messengers name conversations, peers and often
//! messages by such ids, and their 16 bytes take 19 bytes less than their text. The string
//! is the UUID's text followed by the suffix (`"<uuid>:17"` is kind 1 with suffix `":17"`).
//!
//! Every message has exactly one encoding: the writer uses kind 1 exactly when the string
//! starts with a canonical UUID, and the reader refuses kind 0 for such a string, a varint
//! with a needless trailing group, and any trailing byte. So decoding then encoding gives the
//! same bytes back (the fuzz target `decode_record` checks it).
//!
//! Format 1 (bincode) spends a length byte per string, 9 bytes on a timestamp in ms since the
//! epoch and 36 bytes per UUID; on the chitchat corpus (UUID conversations and peers, ids
//! `<conversation>:<n>`) format 3 takes about 80 bytes less a message.

use crate::{Message, SchemaError};

/// The record format of a compact message.
pub const COMPACT_FORMAT: u8 = 3;

/// `text` kind: a plain string.
const TEXT: u8 = 0;
/// `text` kind: a canonical UUID (16 bytes) and a suffix.
const UUID_TEXT: u8 = 1;
/// `recipient` kind: no recipient.
const ABSENT: u8 = 2;
/// Length of a canonical UUID's text.
const UUID_CHARS: usize = 36;
/// Positions of the hyphens in a canonical UUID's text.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];
/// Where the two hex digits of each of a UUID's 16 bytes go in its text.
const DIGIT_AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
/// The two lowercase hex digits of every byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        pairs[b] = [HEX[b >> 4], HEX[b & 0xf]];
        b += 1;
    }
    pairs
};

/// Appends the format-3 record of `m` to `out`. On error `out` may hold part of it.
///
/// # Errors
/// [`SchemaError::Encode`] if the payload would exceed [`crate::codec::DECODE_LIMIT`]
/// (readers refuse it).
pub fn encode_message_into(m: &Message, out: &mut Vec<u8>) -> Result<(), SchemaError> {
    let start = out.len();
    out.push(COMPACT_FORMAT);
    text(out, &m.id);
    text(out, &m.conversation_id);
    text(out, &m.sender);
    match &m.recipient {
        Some(r) => text(out, r),
        None => out.push(ABSENT),
    }
    varint(out, zigzag(m.timestamp_ms));
    text(out, &m.body);
    varint(out, m.seq);
    if out.len() - start - 1 > crate::codec::DECODE_LIMIT {
        return Err(SchemaError::Encode("message record over 16 MiB".into()));
    }
    Ok(())
}

/// The format-3 record of `m` ([`encode_message_into`]).
///
/// # Errors
/// As [`encode_message_into`].
pub fn encode_message(m: &Message) -> Result<Vec<u8>, SchemaError> {
    let mut out = Vec::with_capacity(crate::codec::ENCODE_CAPACITY);
    encode_message_into(m, &mut out)?;
    Ok(out)
}

/// Decodes the payload of a format-3 record (the bytes after the format byte). Never panics,
/// whatever the input.
///
/// # Errors
/// [`SchemaError::Decode`] for a payload over 16 MiB, a truncated field, invalid UTF-8, an
/// unknown text kind, a non-canonical encoding or trailing bytes.
pub(crate) fn decode_payload(payload: &[u8]) -> Result<Message, SchemaError> {
    if payload.len() > crate::codec::DECODE_LIMIT {
        return Err(bad("payload over 16 MiB"));
    }
    let mut r = Reader(payload);
    let id = r.text()?;
    let conversation_id = r.text()?;
    let sender = r.text()?;
    let recipient = if r.0.first() == Some(&ABSENT) {
        r.0 = &r.0[1..];
        None
    } else {
        Some(r.text()?)
    };
    let timestamp_ms = unzigzag(r.varint()?);
    let body = r.text()?;
    let seq = r.varint()?;
    if !r.0.is_empty() {
        return Err(bad(&format!("{} trailing bytes", r.0.len())));
    }
    Ok(Message {
        id,
        conversation_id,
        sender,
        recipient,
        timestamp_ms,
        body,
        seq,
    })
}

fn bad(what: &str) -> SchemaError {
    SchemaError::Decode(format!("compact message: {what}"))
}

fn zigzag(t: i64) -> u64 {
    ((t << 1) ^ (t >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The 16 bytes of the canonical UUID `s` starts with, if it does: hyphens at [`HYPHENS`],
/// each byte's two lowercase hex digits at [`DIGIT_AT`] (the layout the decoder writes).
fn uuid_prefix(s: &str) -> Option<[u8; 16]> {
    let text = s.as_bytes().get(..UUID_CHARS)?;
    if HYPHENS.iter().any(|&h| text[h] != b'-') {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; 16];
    for (byte, &at) in bytes.iter_mut().zip(&DIGIT_AT) {
        *byte = digit(text[at])? << 4 | digit(text[at + 1])?;
    }
    Some(bytes)
}

fn text(out: &mut Vec<u8>, s: &str) {
    match uuid_prefix(s) {
        Some(uuid) => {
            out.push(UUID_TEXT);
            out.extend_from_slice(&uuid);
            let suffix = &s.as_bytes()[UUID_CHARS..];
            varint(out, suffix.len() as u64);
            out.extend_from_slice(suffix);
        }
        None => {
            out.push(TEXT);
            varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// The unread rest of a payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], SchemaError> {
        if n > self.0.len() {
            return Err(bad(&format!("{what} past the end")));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, SchemaError> {
        let mut v = 0u64;
        for i in 0..10 {
            let &b = self.0.get(i).ok_or_else(|| bad("varint past the end"))?;
            let group = u64::from(b & 0x7f);
            // The tenth byte holds bit 63 only.
            if i == 9 && b > 1 {
                return Err(bad("varint over 64 bits"));
            }
            v |= group << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(bad("varint with a needless trailing group"));
                }
                self.0 = &self.0[i + 1..];
                return Ok(v);
            }
        }
        Err(bad("varint over 10 bytes"))
    }

    fn utf8(&mut self, what: &str) -> Result<&'a str, SchemaError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| bad("length over the address space"))?;
        std::str::from_utf8(self.take(n, what)?).map_err(|_| bad("invalid UTF-8"))
    }

    fn text(&mut self) -> Result<String, SchemaError> {
        let (&kind, rest) = self
            .0
            .split_first()
            .ok_or_else(|| bad("field past the end"))?;
        self.0 = rest;
        match kind {
            TEXT => {
                let s = self.utf8("text")?;
                if uuid_prefix(s).is_some() {
                    return Err(bad("a UUID-prefixed text as plain text"));
                }
                Ok(s.to_owned())
            }
            UUID_TEXT => {
                let uuid = self.take(16, "uuid")?;
                let suffix = self.utf8("suffix")?;
                // The text in a stack buffer, then one copy (pushing char by char cost a
                // tenth of a full scan's time).
                let mut text = [b'-'; UUID_CHARS];
                for (&b, &at) in uuid.iter().zip(&DIGIT_AT) {
                    text[at..at + 2].copy_from_slice(&HEX_PAIRS[usize::from(b)]);
                }
                // Hex digits and hyphens are ASCII: this never fails.
                let text = std::str::from_utf8(&text).map_err(|_| bad("uuid text"))?;
                let mut s = String::with_capacity(UUID_CHARS + suffix.len());
                s.push_str(text);
                s.push_str(suffix);
                Ok(s)
            }
            other => Err(bad(&format!("unknown text kind {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{self, decode_message};
    use proptest::prelude::*;

    const UUID: &str = "a07edb12-6b91-4138-b11e-02421888d699";

    /// Strings that start with a canonical UUID about half the time, and near misses
    /// (uppercase, a hyphen moved, too short) otherwise.
    fn arb_id() -> impl Strategy<Value = String> + Clone {
        prop_oneof![
            ".{0,40}",
            (any::<[u8; 16]>(), ".{0,8}").prop_map(|(b, suffix)| format!("{}{suffix}", hex(&b))),
            (any::<[u8; 16]>(), 0usize..36).prop_map(|(b, cut)| hex(&b)[..cut].to_owned()),
            any::<[u8; 16]>().prop_map(|b| hex(&b).to_uppercase()),
            any::<[u8; 16]>().prop_map(|b| hex(&b).replacen('-', "0", 1) + "-"),
        ]
    }

    fn hex(b: &[u8; 16]) -> String {
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        crate::message::arb_message_with(arb_id())
    }

    proptest! {
        #[test]
        fn compact_messages_round_trip(m in arb_message()) {
            let bytes = encode_message(&m).unwrap();
            prop_assert_eq!(bytes[0], COMPACT_FORMAT);
            prop_assert_eq!(decode_message(&bytes).unwrap(), m.clone());
            // Never longer than format 1 by more than the kind bytes and LEB128's longer
            // lengths, and shorter as soon as a UUID is in it.
            let plain = codec::encode(&m).unwrap();
            let uuids = [&m.id, &m.conversation_id, &m.sender]
                .into_iter()
                .chain(m.recipient.as_ref())
                .filter(|s| uuid_prefix(s).is_some())
                .count();
            if uuids > 0 {
                prop_assert!(bytes.len() < plain.len(), "{} vs {}", bytes.len(), plain.len());
            }
        }

        /// Truncations, flipped bits and noise give an error or a message whose encoding is
        /// those very bytes (one encoding per message), never a panic.
        #[test]
        fn damaged_records_are_refused_or_canonical(
            m in arb_message(), cut in 0usize..1000, flip in 0usize..1000, mask in 1u8..=255,
        ) {
            let mut bytes = encode_message(&m).unwrap();
            let i = 1 + flip % (bytes.len() - 1);
            bytes[i] ^= mask;
            bytes.truncate(1 + cut % bytes.len());
            if let Ok(again) = decode_message(&bytes) {
                prop_assert_eq!(encode_message(&again).unwrap(), bytes);
            }
        }

        #[test]
        fn noise_is_refused_or_canonical(mut bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            bytes.insert(0, COMPACT_FORMAT);
            if let Ok(m) = decode_message(&bytes) {
                prop_assert_eq!(encode_message(&m).unwrap(), bytes);
            }
        }

        #[test]
        fn varints_and_zigzag_round_trip(v in any::<u64>(), t in any::<i64>()) {
            let mut out = Vec::new();
            varint(&mut out, v);
            prop_assert!(out.len() <= 10);
            let mut r = Reader(&out);
            prop_assert_eq!(r.varint().unwrap(), v);
            prop_assert!(r.0.is_empty());
            prop_assert_eq!(unzigzag(zigzag(t)), t);
        }
    }

    #[test]
    fn a_chitchat_message_in_bytes() {
        let m = Message {
            id: format!("{UUID}:7"),
            conversation_id: UUID.into(),
            sender: "720840be-e522-47ba-9e9f-143f66372673".into(),
            recipient: None,
            timestamp_ms: 1_525_289_895_000,
            body: "Hello".into(),
            seq: 300,
        };
        let bytes = encode_message(&m).unwrap();
        let mut want = vec![3, 1];
        want.extend_from_slice(&[
            0xa0, 0x7e, 0xdb, 0x12, 0x6b, 0x91, 0x41, 0x38, 0xb1, 0x1e, 0x02, 0x42, 0x18, 0x88,
            0xd6, 0x99,
        ]);
        want.extend_from_slice(&[2, b':', b'7', 1]);
        want.extend_from_slice(&bytes[22..38]); // the conversation's 16 bytes, as above
        want.extend_from_slice(&[0, 1]);
        want.extend_from_slice(&[
            0x72, 0x08, 0x40, 0xbe, 0xe5, 0x22, 0x47, 0xba, 0x9e, 0x9f, 0x14, 0x3f, 0x66, 0x37,
            0x26, 0x73,
        ]);
        want.extend_from_slice(&[0, ABSENT]);
        let mut ts = Vec::new();
        varint(&mut ts, 2 * 1_525_289_895_000);
        want.extend_from_slice(&ts);
        want.extend_from_slice(&[0, 5, b'H', b'e', b'l', b'l', b'o', 0xac, 0x02]);
        assert_eq!(&bytes[22..38], &want[2..18]);
        assert_eq!(bytes, want);
        assert_eq!(ts.len(), 6);
        // 133 bytes in format 1: 60 more.
        assert_eq!(codec::encode(&m).unwrap().len(), 133);
        assert_eq!(bytes.len(), 73);
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        let m = Message::new(UUID, "c", "s", None, 1, "b");
        let good = encode_message(&m).unwrap();
        assert_eq!(decode_message(&good).unwrap(), m);
        // The UUID as plain text.
        let mut plain = vec![COMPACT_FORMAT, TEXT, 36];
        plain.extend_from_slice(UUID.as_bytes());
        plain.extend_from_slice(&good[19..]);
        assert!(matches!(
            decode_message(&plain),
            Err(SchemaError::Decode(_))
        ));
        // A length with a needless trailing group (0 as 0x80 0x00).
        let mut long = good.clone();
        long.splice(18..19, [0x80, 0x00]);
        assert!(decode_message(&long).is_err());
        // An unknown kind, a recipient-absent marker where a text must be, a trailing byte.
        for (at, kind) in [(1, 4u8), (1, ABSENT)] {
            let mut b = good.clone();
            b[at] = kind;
            assert!(decode_message(&b).is_err(), "kind {kind}");
        }
        let mut b = good.clone();
        b.push(0);
        assert!(decode_message(&b).is_err());
        // Ten-byte varints: bit 63 alone is fine, more is not.
        let mut max = Vec::new();
        varint(&mut max, u64::MAX);
        assert_eq!(max.len(), 10);
        assert_eq!(Reader(&max).varint().unwrap(), u64::MAX);
        *max.last_mut().unwrap() = 2;
        assert!(Reader(&max).varint().is_err());
        // A huge length does not allocate: it is past the end.
        let huge = [
            COMPACT_FORMAT,
            TEXT,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x7f,
        ];
        assert!(decode_message(&huge).is_err());
    }
}
