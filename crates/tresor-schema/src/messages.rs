//! Where one message lives: its record and its index entries.

use serde::{Deserialize, Serialize};
use tresor_crypto::{StoreKeys, Token};

use crate::catalog::{MESSAGES, MSG_BY_CONVERSATION, MSG_BY_PEER, MSG_BY_TIME};
use crate::index::{Position, order_key, prefixed_key};
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
pub fn peer_ids(m: &Message) -> Vec<&str> {
    let mut ids = vec![m.sender.as_str()];
    if let Some(r) = &m.recipient
        && r != &m.sender
    {
        ids.push(r.as_str());
    }
    ids
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

/// The index entries of `m`, as `(table, key, value)`; every value is the message token.
pub fn index_entries(m: &Message, t: &MessageTokens) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let pos = position(m);
    let mut out = Vec::with_capacity(2 + t.peers.len());
    out.push((
        MSG_BY_CONVERSATION,
        prefixed_key(&t.conversation, pos),
        t.id.to_vec(),
    ));
    for p in &t.peers {
        out.push((MSG_BY_PEER, prefixed_key(p, pos), t.id.to_vec()));
    }
    out.push((MSG_BY_TIME, order_key(pos).to_vec(), t.id.to_vec()));
    out
}

/// Seals `m` (with its `seq` set) as the value of its record in the `messages` table.
///
/// # Errors
/// As [`crate::sealed::seal`].
pub fn seal_message(
    keys: &StoreKeys,
    t: &MessageTokens,
    m: &Message,
) -> Result<Vec<u8>, SchemaError> {
    crate::sealed::seal(keys, MESSAGES, &t.id, m)
}

/// As [`seal_message`], padded to a Padmé length when `padded` ([`crate::sealed::seal_with`]).
///
/// # Errors
/// As [`crate::sealed::seal`].
pub fn seal_message_with(
    keys: &StoreKeys,
    t: &MessageTokens,
    m: &Message,
    padded: bool,
) -> Result<Vec<u8>, SchemaError> {
    crate::sealed::seal_with(keys, MESSAGES, &t.id, m, padded)
}

/// Opens a sealed message record stored under `token`.
///
/// # Errors
/// As [`crate::sealed::open`].
pub fn open_message(keys: &StoreKeys, token: &[u8], sealed: &[u8]) -> Result<Message, SchemaError> {
    crate::codec::decode_message(&crate::sealed::open_bytes(keys, MESSAGES, token, sealed)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_crypto::DataKey;

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
            vec![MSG_BY_CONVERSATION, MSG_BY_PEER, MSG_BY_PEER, MSG_BY_TIME]
        );
        assert!(e.iter().all(|(_, _, v)| v == &t.id.to_vec()));
        // A message to oneself has one peer entry.
        let selfie = Message::new("m2", "c1", "alice", Some("alice".into()), 1, "me");
        assert_eq!(tokens(&keys, &selfie).peers.len(), 1);
        // No clear identifier appears in any key.
        for (_, k, _) in &e {
            for id in ["m1", "c1", "alice", "bob"] {
                assert!(!k.windows(id.len()).any(|w| w == id.as_bytes()));
            }
        }
    }
}
