//! Index key encoding.
//!
//! An *order key* is 16 bytes that sort, as unsigned byte strings, by timestamp ascending and,
//! among equal timestamps, by sequence number **descending**:
//!
//! ```text
//! order_key(ts, seq) = be_u64(ts as u64 ^ 1<<63) ‖ be_u64(u64::MAX - seq)
//! ```
//!
//! Flipping the sign bit makes negative timestamps sort before positive ones. Inverting the
//! sequence number means a *reverse* scan (newest first) returns messages with equal timestamps
//! in insertion order, which is the order tresor's queries promise.
//!
//! Index keys are a blinded [`Token`] prefix (16 bytes) followed by the order key, 32 bytes in
//! all; the time index has no prefix.

use tresor_crypto::{TOKEN_LEN, Token};

use crate::SchemaError;

/// Length of an order key in bytes.
pub const ORDER_KEY_LEN: usize = 16;

/// The position of a record in time order: `(timestamp in ms since the Unix epoch, sequence)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Store-assigned sequence number.
    pub seq: u64,
}

/// Encodes `pos` as an order key (layout in the module docs).
pub fn order_key(pos: Position) -> [u8; ORDER_KEY_LEN] {
    let mut out = [0u8; ORDER_KEY_LEN];
    let ts = (pos.timestamp_ms as u64) ^ (1 << 63);
    out[..8].copy_from_slice(&ts.to_be_bytes());
    out[8..].copy_from_slice(&(u64::MAX - pos.seq).to_be_bytes());
    out
}

/// Decodes an order key.
///
/// # Errors
/// [`SchemaError::MalformedIndexKey`] if `bytes` is not 16 bytes long.
pub fn decode_order_key(bytes: &[u8], table: &'static str) -> Result<Position, SchemaError> {
    let bytes: [u8; ORDER_KEY_LEN] = bytes
        .try_into()
        .map_err(|_| SchemaError::MalformedIndexKey { table })?;
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&bytes[..8]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[8..]);
    Ok(Position {
        timestamp_ms: (u64::from_be_bytes(ts) ^ (1 << 63)) as i64,
        seq: u64::MAX - u64::from_be_bytes(seq),
    })
}

/// `prefix ‖ order_key(pos)`: the key of an index entry under a blinded prefix.
pub fn prefixed_key(prefix: &Token, pos: Position) -> Vec<u8> {
    let mut key = Vec::with_capacity(TOKEN_LEN + ORDER_KEY_LEN);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&order_key(pos));
    key
}

/// Parses an index value as the primary-key token it points to.
///
/// # Errors
/// [`SchemaError::MalformedIndexKey`] if `bytes` is not a token.
pub fn token_value(bytes: &[u8], table: &'static str) -> Result<Token, SchemaError> {
    bytes
        .try_into()
        .map_err(|_| SchemaError::MalformedIndexKey { table })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Byte order of order keys equals (timestamp ascending, seq descending) order, i.e. a
        /// reverse scan yields (timestamp descending, seq ascending).
        #[test]
        fn order_key_order_matches_timestamp_then_sequence(
            a_ts in any::<i64>(), a_seq in any::<u64>(),
            b_ts in any::<i64>(), b_seq in any::<u64>(),
        ) {
            let a = Position { timestamp_ms: a_ts, seq: a_seq };
            let b = Position { timestamp_ms: b_ts, seq: b_seq };
            let by_bytes = order_key(a).cmp(&order_key(b));
            let by_fields = a_ts.cmp(&b_ts).then(b_seq.cmp(&a_seq));
            prop_assert_eq!(by_bytes, by_fields);
        }

        #[test]
        fn order_key_round_trips(ts in any::<i64>(), seq in any::<u64>()) {
            let p = Position { timestamp_ms: ts, seq };
            prop_assert_eq!(decode_order_key(&order_key(p), "t").unwrap(), p);
        }

        #[test]
        fn prefix_keeps_order_within_a_prefix(
            prefix in any::<[u8; 16]>(),
            a_ts in any::<i64>(), a_seq in any::<u64>(), b_ts in any::<i64>(), b_seq in any::<u64>(),
        ) {
            let a = Position { timestamp_ms: a_ts, seq: a_seq };
            let b = Position { timestamp_ms: b_ts, seq: b_seq };
            prop_assert_eq!(
                prefixed_key(&prefix, a).cmp(&prefixed_key(&prefix, b)),
                order_key(a).cmp(&order_key(b))
            );
        }
    }

    #[test]
    fn negative_timestamps_sort_first() {
        let neg = order_key(Position {
            timestamp_ms: -1,
            seq: 0,
        });
        let zero = order_key(Position {
            timestamp_ms: 0,
            seq: 0,
        });
        assert!(neg < zero);
        assert!(decode_order_key(&[0; 3], "t").is_err());
    }
}
