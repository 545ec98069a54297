//! tresor's own record families, declared on the public typed-table API ([`crate::typed`]).

use serde::{Deserialize, Serialize};

use crate::typed::{IndexDef, KeyPart, TableDef};

/// Whether a conversation has two participants or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConversationKind {
    /// A one-to-one conversation (at most two participants).
    Direct,
    /// A group conversation.
    Group,
}

/// A conversation: who is in it and when it was last active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The conversation id (primary key), as in [`crate::Message::conversation_id`].
    pub id: String,
    /// Direct or group.
    pub kind: ConversationKind,
    /// The participants' peer ids, sorted, without duplicates.
    pub participants: Vec<String>,
    /// The title, if the application set one.
    pub title: Option<String>,
    /// When it was created (or its first message was sent), ms since the Unix epoch.
    pub created_ms: i64,
    /// When its newest message was sent, ms since the Unix epoch.
    pub last_activity_ms: i64,
}

impl Conversation {
    /// A conversation derived from one message: its sender and recipient, created and last
    /// active at its timestamp; `Direct`.
    pub fn from_message(m: &crate::Message) -> Self {
        let mut c = Self {
            id: m.conversation_id.clone(),
            kind: ConversationKind::Direct,
            participants: Vec::new(),
            title: None,
            created_ms: m.timestamp_ms,
            last_activity_ms: m.timestamp_ms,
        };
        c.absorb(m);
        c
    }

    /// Takes message `m` into account: adds its peers to the participants (a third one makes
    /// the conversation a group), widens the created/last-activity span. Returns whether
    /// anything changed.
    pub fn absorb(&mut self, m: &crate::Message) -> bool {
        let before = self.clone();
        for p in crate::messages::peer_ids(m) {
            if let Err(at) = self.participants.binary_search_by(|x| x.as_str().cmp(p)) {
                self.participants.insert(at, p.to_owned());
            }
        }
        if self.participants.len() > 2 {
            self.kind = ConversationKind::Group;
        }
        self.created_ms = self.created_ms.min(m.timestamp_ms);
        self.last_activity_ms = self.last_activity_ms.max(m.timestamp_ms);
        *self != before
    }
}

/// Index of [`CONVERSATIONS`] by last activity (`[I64(last_activity_ms)]`, non-unique).
pub const BY_ACTIVITY: &str = "by_activity";

/// The conversations table (typed table `conversation`).
pub static CONVERSATIONS: TableDef<Conversation> = TableDef {
    name: "conversation",
    primary_key: |c| c.id.as_bytes().to_vec(),
    indexes: &[IndexDef {
        name: BY_ACTIVITY,
        unique: false,
        keys: |c| vec![vec![KeyPart::I64(c.last_activity_ms)]],
    }],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    #[test]
    fn absorbing_messages_tracks_participants_and_span() {
        let mut c = Conversation::from_message(&Message::new(
            "1",
            "c",
            "bob",
            Some("alice".into()),
            10,
            "",
        ));
        assert_eq!(c.participants, vec!["alice", "bob"]);
        assert_eq!(c.kind, ConversationKind::Direct);
        assert!(
            !c.absorb(&Message::new("2", "c", "alice", Some("bob".into()), 5, ""))
                || c.created_ms == 5
        );
        assert_eq!((c.created_ms, c.last_activity_ms), (5, 10));
        assert!(c.absorb(&Message::new("3", "c", "carol", None, 20, "")));
        assert_eq!(c.kind, ConversationKind::Group);
        assert_eq!(c.last_activity_ms, 20);
        assert!(!c.absorb(&Message::new("4", "c", "carol", None, 15, "")));
    }
}
