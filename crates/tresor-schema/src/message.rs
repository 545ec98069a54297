//! The `Message` record.

use serde::{Deserialize, Serialize};

/// A chat message as tresor stores it.
///
/// Identifiers are opaque UTF-8 strings chosen by the application (tresor never interprets
/// them); in the store they appear only sealed (inside the value) or blinded (in index keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// The message's unique id (the primary key).
    pub id: String,
    /// The conversation (room, chat) the message belongs to.
    pub conversation_id: String,
    /// The peer who sent it.
    pub sender: String,
    /// The peer it was sent to, if it had a single recipient.
    pub recipient: Option<String>,
    /// When it was sent, in milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: i64,
    /// The message text.
    pub body: String,
    /// Store-assigned insertion sequence number, unique and increasing within a store.
    /// Ignored on save (the store assigns it; a re-saved message keeps its number) and set on
    /// every message read back. Orders messages with equal timestamps.
    pub seq: u64,
}

impl Message {
    /// A message with `seq = 0`, ready to save.
    pub fn new(
        id: impl Into<String>,
        conversation_id: impl Into<String>,
        sender: impl Into<String>,
        recipient: Option<String>,
        timestamp_ms: i64,
        body: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            conversation_id: conversation_id.into(),
            sender: sender.into(),
            recipient,
            timestamp_ms,
            body: body.into(),
            seq: 0,
        }
    }

    /// Whether `self` and `other` are the same message content, ignoring `seq`.
    pub fn same_content(&self, other: &Message) -> bool {
        self.id == other.id
            && self.conversation_id == other.conversation_id
            && self.sender == other.sender
            && self.recipient == other.recipient
            && self.timestamp_ms == other.timestamp_ms
            && self.body == other.body
    }
}

/// Messages with ids (id, conversation, sender, recipient) drawn from `ids`, any timestamp and
/// sequence number, and bodies of up to 200 characters: the proptest input of the codecs.
#[cfg(test)]
pub(crate) fn arb_message_with(
    ids: impl proptest::strategy::Strategy<Value = String> + Clone,
) -> impl proptest::strategy::Strategy<Value = Message> {
    use proptest::prelude::*;
    (
        ids.clone(),
        ids.clone(),
        ids.clone(),
        proptest::option::of(ids),
        any::<i64>(),
        ".{0,200}",
        any::<u64>(),
    )
        .prop_map(
            |(id, conversation_id, sender, recipient, timestamp_ms, body, seq)| Message {
                id,
                conversation_id,
                sender,
                recipient,
                timestamp_ms,
                body,
                seq,
            },
        )
}
