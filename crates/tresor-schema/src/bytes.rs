//! `#[serde(with = "crate::bytes")]` for `Vec<u8>` fields: serialized as one byte string
//! instead of a sequence of `u8`s. With bincode (standard config) both are the same bytes
//! (`varint len ‖ bytes`, a `u8` being one raw byte), so records keep their format; the byte
//! string is copied in one piece instead of byte by byte, which matters for media chunks.

use serde::de::{Error, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Serializes `v` as a byte string.
///
/// # Errors
/// The serializer's.
pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

/// Deserializes a byte string (or a sequence of `u8`s, for self-describing formats).
///
/// # Errors
/// The deserializer's, or a type error for anything else.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct Bytes;
    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_byte_buf(Bytes)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plain {
        a: u32,
        v: Vec<u8>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Fast {
        a: u32,
        #[serde(with = "super")]
        v: Vec<u8>,
    }

    #[test]
    fn same_bytes_as_a_sequence_of_u8() {
        for n in [0usize, 1, 250, 251, 70_000] {
            let v: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let plain = crate::codec::encode(&Plain { a: 7, v: v.clone() }).unwrap();
            let fast = crate::codec::encode(&Fast { a: 7, v: v.clone() }).unwrap();
            assert_eq!(plain, fast, "n = {n}");
            let back: Fast = crate::codec::decode(&plain).unwrap();
            assert_eq!(back.v, v);
            let back: Plain = crate::codec::decode(&fast).unwrap();
            assert_eq!(back.v, v);
        }
        // Self-describing formats still read sequences.
        let f: Fast = serde_json::from_str(r#"{"a":1,"v":[1,2,3]}"#).unwrap();
        assert_eq!(f.v, [1, 2, 3]);
    }
}
