//! Extended message state (schema v3): delivery status, reply/thread relation, edits,
//! redaction, media references and expiry of a message, and per-conversation state (unread
//! count, retention policy), declared as typed tables ([`crate::typed`]).
//!
//! The [`crate::Message`] record itself is unchanged (codec formats 1 and 2 read as before):
//! what a message gained in schema v3 lives in its companion record [`MessageState`] (typed
//! table `message_state`, primary key = the message id), written in the same atomic batch as
//! the message. A message without a companion record (written by an older tresor and not yet
//! migrated, or restored from a repository backup, which carries messages only) reads as
//! [`MessageState::default_for`]: outgoing, `Delivered`, nothing else.

use serde::{Deserialize, Serialize};

use crate::Message;
use crate::typed::{IndexDef, KeyPart, TableDef};

/// Where a message is on its way between devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Written locally, not sent yet.
    Pending,
    /// Sent (handed to the network or a relay).
    Sent,
    /// Delivered to the recipient's device (for an incoming message: received, not read).
    Delivered,
    /// Read by the recipient (for an incoming message: by the user).
    Read,
    /// Sending failed for good.
    Failed,
}

impl DeliveryStatus {
    /// Every status, in code order.
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
        DeliveryStatus::Failed,
    ];

    /// The status's code in index keys (`U64` part): 0 pending, 1 sent, 2 delivered, 3 read,
    /// 4 failed.
    pub fn code(self) -> u64 {
        match self {
            DeliveryStatus::Pending => 0,
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered => 2,
            DeliveryStatus::Read => 3,
            DeliveryStatus::Failed => 4,
        }
    }

    /// The lower-case name (`pending`, `sent`, `delivered`, `read`, `failed`).
    pub fn name(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// The status called `name` (as [`DeliveryStatus::name`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A reference to an attachment of a message (the bytes live elsewhere, e.g. in a media
/// store).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MediaRef {
    /// The attachment's id, as the application names it.
    pub id: String,
    /// Its MIME type (`image/jpeg`…).
    pub mime: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A previous version of an edited message's body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Edit {
    /// The body before the edit.
    pub previous_body: String,
    /// When the edit replaced it, ms since the Unix epoch.
    pub edited_ms: i64,
}

/// Why and when a message was redacted (its body wiped).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Redaction {
    /// The reason given, if any.
    pub reason: Option<String>,
    /// When it was redacted, ms since the Unix epoch.
    pub redacted_ms: i64,
}

/// The extended state of one message (typed table `message_state`, primary key = message id).
///
/// `conversation_id`, `timestamp_ms` and `seq` repeat the message's, so that the indexes keep
/// time order; the store keeps them equal to the message's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageState {
    /// The message id (primary key).
    pub message_id: String,
    /// The message's conversation.
    pub conversation_id: String,
    /// The message's timestamp, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// The message's sequence number.
    pub seq: u64,
    /// Whether the message was received (counts as unread until its status is `Read`).
    pub incoming: bool,
    /// Delivery status.
    pub status: DeliveryStatus,
    /// The message this one replies to or belongs to the thread of.
    pub relates_to: Option<String>,
    /// Attachments.
    pub media: Vec<MediaRef>,
    /// When the message disappears (is deleted by the sweeper), ms since the Unix epoch.
    pub expires_ms: Option<i64>,
    /// When the body was last edited, ms since the Unix epoch.
    pub edited_ms: Option<i64>,
    /// Previous bodies, oldest first (wiped by a redaction).
    pub edits: Vec<Edit>,
    /// Set when the message was redacted.
    pub redaction: Option<Redaction>,
}

impl MessageState {
    /// The state of a message saved without any: outgoing, `Delivered`, nothing else.
    pub fn default_for(m: &Message) -> Self {
        Self {
            message_id: m.id.clone(),
            conversation_id: m.conversation_id.clone(),
            timestamp_ms: m.timestamp_ms,
            seq: m.seq,
            incoming: false,
            status: DeliveryStatus::Delivered,
            relates_to: None,
            media: Vec::new(),
            expires_ms: None,
            edited_ms: None,
            edits: Vec::new(),
            redaction: None,
        }
    }

    /// Whether the message counts as unread: incoming and not `Read`.
    pub fn is_unread(&self) -> bool {
        self.incoming && self.status != DeliveryStatus::Read
    }

    /// Copies the message's linkage (conversation, timestamp, sequence number) into the state.
    pub fn follow(&mut self, m: &Message) {
        self.conversation_id.clone_from(&m.conversation_id);
        self.timestamp_ms = m.timestamp_ms;
        self.seq = m.seq;
    }
}

/// Index of [`MESSAGE_STATES`] by conversation and status: `[Id(conversation_id),
/// U64(status code), I64(timestamp_ms), U64(u64::MAX - seq)]` (scanned newest first).
pub const BY_STATUS: &str = "by_status";
/// Index of [`MESSAGE_STATES`] by thread: `[Id(relates_to), I64(timestamp_ms), U64(seq)]`,
/// only for messages that relate to another.
pub const BY_THREAD: &str = "by_thread";
/// Index of [`MESSAGE_STATES`] by expiry: `[I64(expires_ms)]`, only for messages that expire.
pub const BY_EXPIRY: &str = "by_expiry";
/// Index of [`MESSAGE_STATES`] of unread messages: `[Id(conversation_id), I64(timestamp_ms),
/// U64(seq)]`, only for incoming messages not `Read`.
pub const UNREAD: &str = "unread";

/// The extended message state (typed table `message_state`).
pub static MESSAGE_STATES: TableDef<MessageState> = TableDef {
    name: "message_state",
    primary_key: |s| s.message_id.as_bytes().to_vec(),
    indexes: &[
        IndexDef {
            name: BY_STATUS,
            unique: false,
            keys: |s| {
                vec![vec![
                    KeyPart::id(&s.conversation_id),
                    KeyPart::U64(s.status.code()),
                    KeyPart::I64(s.timestamp_ms),
                    // Inverted, as in order keys: a descending scan (newest first) returns
                    // equal timestamps in insertion order.
                    KeyPart::U64(u64::MAX - s.seq),
                ]]
            },
        },
        IndexDef {
            name: BY_THREAD,
            unique: false,
            keys: |s| match &s.relates_to {
                Some(root) => vec![vec![
                    KeyPart::id(root),
                    KeyPart::I64(s.timestamp_ms),
                    KeyPart::U64(s.seq),
                ]],
                None => Vec::new(),
            },
        },
        IndexDef {
            name: BY_EXPIRY,
            unique: false,
            keys: |s| match s.expires_ms {
                Some(at) => vec![vec![KeyPart::I64(at)]],
                None => Vec::new(),
            },
        },
        IndexDef {
            name: UNREAD,
            unique: false,
            keys: |s| {
                if s.is_unread() {
                    vec![vec![
                        KeyPart::id(&s.conversation_id),
                        KeyPart::I64(s.timestamp_ms),
                        KeyPart::U64(s.seq),
                    ]]
                } else {
                    Vec::new()
                }
            },
        },
    ],
};

/// How long a conversation keeps its messages: the sweeper deletes messages older than
/// `max_age_ms` and, beyond `max_count`, the oldest ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Retention {
    /// Messages older than this (by timestamp, against the sweep's clock), in ms, are deleted.
    pub max_age_ms: Option<i64>,
    /// At most this many messages are kept (the newest).
    pub max_count: Option<u64>,
}

/// Per-conversation state (typed table `conversation_state`, primary key = conversation id):
/// the unread count, kept by message writes in the same batch, and the retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationState {
    /// The conversation id (primary key).
    pub conversation_id: String,
    /// Incoming messages not read yet.
    pub unread: u64,
    /// The retention policy, if one is set.
    pub retention: Option<Retention>,
}

impl ConversationState {
    /// The state of a conversation without one: nothing unread, no retention.
    pub fn empty(conversation_id: &str) -> Self {
        Self {
            conversation_id: conversation_id.to_owned(),
            unread: 0,
            retention: None,
        }
    }

    /// Whether it says nothing (nothing unread, no retention): such a record is deleted.
    pub fn is_empty(&self) -> bool {
        self.unread == 0 && self.retention.is_none()
    }
}

/// Index of [`CONVERSATION_STATES`] listing the conversations with a retention policy
/// (`[]`, one entry each).
pub const WITH_RETENTION: &str = "with_retention";

/// Per-conversation state (typed table `conversation_state`).
pub static CONVERSATION_STATES: TableDef<ConversationState> = TableDef {
    name: "conversation_state",
    primary_key: |c| c.conversation_id.as_bytes().to_vec(),
    indexes: &[IndexDef {
        name: WITH_RETENTION,
        unique: false,
        keys: |c| {
            if c.retention.is_some() {
                vec![Vec::new()]
            } else {
                Vec::new()
            }
        },
    }],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::Envelope;

    /// The save path relies on it: a message with no state record and no change of state has
    /// nothing to write and does not count as unread.
    #[test]
    fn default_state_is_read() {
        for recipient in [None, Some("bob".to_string())] {
            let m = crate::Message::new("m", "c", "alice", recipient, 7, "hi");
            let mut s = MessageState::default_for(&m);
            assert!(!s.is_unread());
            s.follow(&m);
            assert_eq!(s, MessageState::default_for(&m));
        }
    }

    #[test]
    fn indexes_follow_the_state() {
        let mut m = Message::new("m1", "c1", "alice", None, 10, "hi");
        m.seq = 4;
        let mut s = MessageState::default_for(&m);
        let env = Envelope::new(&MESSAGE_STATES, &s).unwrap();
        let names: Vec<_> = env.entries.iter().map(|e| e.index.as_str()).collect();
        assert_eq!(names, vec![BY_STATUS]);
        s.incoming = true;
        s.relates_to = Some("root".into());
        s.expires_ms = Some(99);
        let env = Envelope::new(&MESSAGE_STATES, &s).unwrap();
        let names: Vec<_> = env.entries.iter().map(|e| e.index.as_str()).collect();
        assert_eq!(names, vec![BY_STATUS, BY_THREAD, BY_EXPIRY, UNREAD]);
        s.status = DeliveryStatus::Read;
        assert!(!s.is_unread());
        assert_eq!(env.decode::<MessageState>().unwrap().status.code(), 2);
    }

    #[test]
    fn status_names_and_codes_round_trip() {
        for (i, s) in DeliveryStatus::ALL.into_iter().enumerate() {
            assert_eq!(s.code(), i as u64);
            assert_eq!(DeliveryStatus::from_name(s.name()), Some(s));
        }
        assert_eq!(DeliveryStatus::from_name("lost"), None);
    }

    #[test]
    fn retention_index_lists_only_conversations_with_a_policy() {
        let mut c = ConversationState::empty("c");
        assert!(c.is_empty());
        assert!(
            Envelope::new(&CONVERSATION_STATES, &c)
                .unwrap()
                .entries
                .is_empty()
        );
        c.retention = Some(Retention {
            max_age_ms: Some(1),
            max_count: None,
        });
        assert!(!c.is_empty());
        assert_eq!(
            Envelope::new(&CONVERSATION_STATES, &c)
                .unwrap()
                .entries
                .len(),
            1
        );
    }
}
