//! Where one message lives: its record and its index entries.
//!
//! Since schema v4 a message's record lives under its *record key*, conversation token ‖ order
//! key (32 bytes, [`record_key`]), so that a conversation's messages are neighbours in time
//! order: a page of a conversation is one range read, an import of a conversation writes
//! neighbouring leaves. Its index entries lead to that key: `message_ids` (message token →
//! record key) answers lookups by id, `msg_by_peer` and `msg_by_time` (→ conversation token,
//! completed by the order key that ends their key) walks by peer and time.

use serde::{Deserialize, Serialize};
use tresor_crypto::{StoreKeys, TOKEN_LEN, Token};

use crate::catalog::{MESSAGE_IDS, MESSAGES, MSG_BY_CONVERSATION, MSG_BY_PEER, MSG_BY_TIME};
use crate::index::{ORDER_KEY_LEN, Position, order_key, prefixed_key};
use crate::{Message, SchemaError};

/// Token domain of message ids.
pub const DOMAIN_MESSAGE: &[u8] = b"message";
/// Token domain of conversation ids.
pub const DOMAIN_CONVERSATION: &[u8] = b"conversation";
/// Token domain of peer ids.
pub const DOMAIN_PEER: &[u8] = b"peer";

/// A conversation's entry in the `conversations` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    /// The conversation id.
    pub id: String,
    /// Number of stored messages in it.
    pub message_count: u64,
}

/// A peer's entry in the `peers` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSummary {
    /// The peer id.
    pub id: String,
    /// Number of stored messages it sent or received.
    pub message_count: u64,
}

/// The blinded tokens of one message: its id, conversation and peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTokens {
    /// Token of the message id (the primary key).
    pub id: Token,
    /// Token of the conversation id.
    pub conversation: Token,
    /// Tokens of the peers: the sender, then the recipient if there is one and it differs.
    pub peers: Vec<Token>,
}

/// The token of a message id.
pub fn message_token(keys: &StoreKeys, id: &str) -> Token {
    keys.index().token(DOMAIN_MESSAGE, id.as_bytes())
}

/// The token of a conversation id.
pub fn conversation_token(keys: &StoreKeys, id: &str) -> Token {
    keys.index().token(DOMAIN_CONVERSATION, id.as_bytes())
}

/// The token of a peer id.
pub fn peer_token(keys: &StoreKeys, id: &str) -> Token {
    keys.index().token(DOMAIN_PEER, id.as_bytes())
}

/// The ids of the peers of `m`: the sender, then the recipient if there is one and it differs.
pub fn peer_ids(m: &Message) -> PeerIds<'_> {
    let mut ids = PeerIds {
        ids: [m.sender.as_str(), ""],
        len: 1,
    };
    if let Some(r) = &m.recipient
        && r != &m.sender
    {
        ids.ids[1] = r.as_str();
        ids.len = 2;
    }
    ids
}

/// The one or two peer ids of a message ([`peer_ids`]), without an allocation: a slice
/// (`Deref`) and an iterator (`IntoIterator`) of `&str`.
#[derive(Debug, Clone, Copy)]
pub struct PeerIds<'a> {
    ids: [&'a str; 2],
    len: usize,
}

impl<'a> std::ops::Deref for PeerIds<'a> {
    type Target = [&'a str];
    fn deref(&self) -> &[&'a str] {
        &self.ids[..self.len]
    }
}

impl<'a> IntoIterator for PeerIds<'a> {
    type Item = &'a str;
    type IntoIter = std::iter::Take<std::array::IntoIter<&'a str, 2>>;
    fn into_iter(self) -> Self::IntoIter {
        self.ids.into_iter().take(self.len)
    }
}

/// Computes the tokens of `m`.
pub fn tokens(keys: &StoreKeys, m: &Message) -> MessageTokens {
    MessageTokens {
        id: message_token(keys, &m.id),
        conversation: conversation_token(keys, &m.conversation_id),
        peers: peer_ids(m)
            .into_iter()
            .map(|p| peer_token(keys, p))
            .collect(),
    }
}

/// The position of `m` in time order.
pub fn position(m: &Message) -> Position {
    Position {
        timestamp_ms: m.timestamp_ms,
        seq: m.seq,
    }
}

/// Length of a message record key (schema v4): conversation token ‖ order key.
pub const RECORD_KEY_LEN: usize = TOKEN_LEN + ORDER_KEY_LEN;

/// The key of `m`'s record in the `messages` table (schema v4): its conversation token ‖
/// [`order_key`] of its position (32 bytes, [`RECORD_KEY_LEN`]).
pub fn record_key(m: &Message, t: &MessageTokens) -> Vec<u8> {
    prefixed_key(&t.conversation, position(m))
}

/// The index entries of `m` (schema v4), as `(table, key, value)`: `message_ids` (message
/// token → `m`'s [`record_key`]), `msg_by_peer` (each peer token ‖ order key → conversation
/// token) and `msg_by_time` (order key → conversation token). The peer and time entries hold
/// only the conversation token: their key already ends with the order key, and
/// [`indexed_record_key`] joins the two into the record key (16 bytes an entry saved).
pub fn index_entries(m: &Message, t: &MessageTokens) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let pos = position(m);
    let mut out = Vec::with_capacity(2 + t.peers.len());
    out.push((MESSAGE_IDS, t.id.to_vec(), record_key(m, t)));
    for p in &t.peers {
        out.push((MSG_BY_PEER, prefixed_key(p, pos), t.conversation.to_vec()));
    }
    out.push((
        MSG_BY_TIME,
        order_key(pos).to_vec(),
        t.conversation.to_vec(),
    ));
    out
}

/// The record key an index entry of `table` points at (schema v4): the value itself for
/// `message_ids`; for `msg_by_peer` and `msg_by_time`, the value (a conversation token) ‖ the
/// order key that ends the entry's key. `None` if the entry is malformed (wrong lengths) or
/// `table` is not a message index.
pub fn indexed_record_key(table: &str, key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    match table {
        MESSAGE_IDS if key.len() == TOKEN_LEN && value.len() == RECORD_KEY_LEN => {
            Some(value.to_vec())
        }
        MSG_BY_PEER | MSG_BY_TIME if value.len() == TOKEN_LEN => {
            let want = if table == MSG_BY_PEER {
                TOKEN_LEN + ORDER_KEY_LEN
            } else {
                ORDER_KEY_LEN
            };
            if key.len() != want {
                return None;
            }
            let mut rk = Vec::with_capacity(RECORD_KEY_LEN);
            rk.extend_from_slice(value);
            rk.extend_from_slice(&key[key.len() - ORDER_KEY_LEN..]);
            Some(rk)
        }
        _ => None,
    }
}

/// Where schema v1–v3 kept `m`, as `(table, key)`: its record under the message token, and
/// its entries in `msg_by_conversation`, `msg_by_peer` and `msg_by_time` (whose values were
/// the message token). Only the v3 → v4 migration needs this.
pub fn v3_entries(m: &Message, t: &MessageTokens) -> Vec<(&'static str, Vec<u8>)> {
    let pos = position(m);
    let mut out = Vec::with_capacity(3 + t.peers.len());
    out.push((MESSAGES, t.id.to_vec()));
    out.push((MSG_BY_CONVERSATION, prefixed_key(&t.conversation, pos)));
    for p in &t.peers {
        out.push((MSG_BY_PEER, prefixed_key(p, pos)));
    }
    out.push((MSG_BY_TIME, order_key(pos).to_vec()));
    out
}

/// Seals `m` (with its `seq` set) as the value of its record in the `messages` table, stored
/// under `key` (its [`record_key`]; the AAD binds the record to it), in record format 3
/// ([`crate::compact`]).
///
/// # Errors
/// As [`crate::sealed::seal`].
pub fn seal_message(keys: &StoreKeys, key: &[u8], m: &Message) -> Result<Vec<u8>, SchemaError> {
    seal_message_with(keys, key, m, false)
}

/// As [`seal_message`]; when `padded`, in format 2 instead, padded to a Padmé length
/// ([`crate::codec::encode_padded`]): a padded store hides lengths, and keeps the format
/// whose payload it pads.
///
/// # Errors
/// As [`crate::sealed::seal`].
pub fn seal_message_with(
    keys: &StoreKeys,
    key: &[u8],
    m: &Message,
    padded: bool,
) -> Result<Vec<u8>, SchemaError> {
    if padded {
        crate::sealed::seal_with(keys, MESSAGES, key, m, true)
    } else {
        crate::sealed::seal_encoded_with(keys, MESSAGES, key, |buf| {
            crate::compact::encode_message_into(m, buf)
        })
    }
}

/// Opens a sealed message record stored under `key` (its record key; a v1–v3 record: its
/// message token).
///
/// # Errors
/// As [`crate::sealed::open`].
pub fn open_message(keys: &StoreKeys, key: &[u8], sealed: &[u8]) -> Result<Message, SchemaError> {
    crate::codec::decode_message(&crate::sealed::open_bytes(keys, MESSAGES, key, sealed)?)
}

/// [`open_message`] decrypting `sealed` in place (no copy of the record: for bytes the caller
/// owns and will not read again).
///
/// # Errors
/// As [`open_message`]; after a failure `sealed` is unusable.
pub fn open_message_in_place(
    keys: &StoreKeys,
    key: &[u8],
    sealed: &mut [u8],
) -> Result<Message, SchemaError> {
    crate::codec::decode_message(crate::sealed::open_bytes_in_place(
        keys, MESSAGES, key, sealed,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_crypto::DataKey;

    #[test]
    fn opening_in_place_reads_what_opening_reads() {
        let keys = DataKey::generate().unwrap().store_keys();
        let m = Message::new("m1", "c1", "alice", Some("bob".into()), 1_000, "hi");
        let t = tokens(&keys, &m);
        let key = record_key(&m, &t);
        let sealed = seal_message(&keys, &key, &m).unwrap();
        let mut owned = sealed.clone();
        assert_eq!(open_message_in_place(&keys, &key, &mut owned).unwrap(), m);
        assert_eq!(open_message(&keys, &key, &sealed).unwrap(), m);
        let other = DataKey::generate().unwrap().store_keys();
        let mut owned = sealed.clone();
        assert!(matches!(
            open_message_in_place(&other, &key, &mut owned),
            Err(SchemaError::Open { .. })
        ));
        let mut owned = sealed;
        assert!(open_message_in_place(&keys, b"another key", &mut owned).is_err());
    }

    #[test]
    fn peer_ids_are_the_sender_then_another_recipient() {
        let ids = |recipient: Option<&str>| {
            let m = Message::new("m", "c", "alice", recipient.map(Into::into), 1, "hi");
            let by_slice = peer_ids(&m).to_vec().join(",");
            let by_iter: Vec<String> = peer_ids(&m).into_iter().map(str::to_owned).collect();
            assert_eq!(by_slice, by_iter.join(","));
            by_slice
        };
        assert_eq!(ids(None), "alice");
        assert_eq!(ids(Some("bob")), "alice,bob");
        assert_eq!(ids(Some("alice")), "alice");
        assert_eq!(ids(Some("")), "alice,");
    }

    #[test]
    fn entries_cover_conversation_each_peer_and_time() {
        let keys = DataKey::generate().unwrap().store_keys();
        let mut m = Message::new("m1", "c1", "alice", Some("bob".into()), 1_000, "hi");
        m.seq = 3;
        let t = tokens(&keys, &m);
        let e = index_entries(&m, &t);
        let tables: Vec<_> = e.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(
            tables,
            vec![MESSAGE_IDS, MSG_BY_PEER, MSG_BY_PEER, MSG_BY_TIME]
        );
        let rk = record_key(&m, &t);
        assert_eq!(rk.len(), RECORD_KEY_LEN);
        assert_eq!(&rk[..TOKEN_LEN], t.conversation.as_slice());
        assert_eq!(rk[TOKEN_LEN..], order_key(position(&m)));
        // Every entry leads to the record key: whole, or as conversation token ‖ its order key.
        assert!(
            e.iter()
                .all(|(table, k, v)| indexed_record_key(table, k, v) == Some(rk.clone()))
        );
        assert_eq!(e[0].1, t.id.to_vec());
        assert!(e[1..].iter().all(|(_, _, v)| v == &t.conversation.to_vec()));
        // Malformed entries point nowhere.
        assert_eq!(indexed_record_key(MSG_BY_TIME, &e[3].1, &rk), None);
        assert_eq!(indexed_record_key(MSG_BY_PEER, &e[3].1, &e[3].2), None);
        assert_eq!(indexed_record_key(MESSAGES, &e[0].1, &rk), None);
        // The v3 layout: the record under the message token, and a conversation entry.
        let old = v3_entries(&m, &t);
        assert_eq!(old[0], (MESSAGES, t.id.to_vec()));
        assert_eq!(old[1], (MSG_BY_CONVERSATION, rk.clone()));
        assert_eq!(old.len(), 5);
        // A message to oneself has one peer entry.
        let selfie = Message::new("m2", "c1", "alice", Some("alice".into()), 1, "me");
        assert_eq!(tokens(&keys, &selfie).peers.len(), 1);
        // No clear identifier appears in any key.
        // A conversation's records sort by time: an older message's key is smaller.
        let mut older = m.clone();
        older.timestamp_ms -= 1;
        assert!(record_key(&older, &t) < rk);
        for (_, k, _) in &e {
            for id in ["m1", "c1", "alice", "bob"] {
                assert!(!k.windows(id.len()).any(|w| w == id.as_bytes()));
            }
        }
    }
}
