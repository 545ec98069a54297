//! tresor's own record families, declared on the public typed-table API ([`crate::typed`]):
//! conversations, contacts, sessions, proofs, the relay queue, keys and metadata.

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
        let mut changed = false;
        for p in crate::messages::peer_ids(m) {
            if let Err(at) = self.participants.binary_search_by(|x| x.as_str().cmp(p)) {
                self.participants.insert(at, p.to_owned());
                changed = true;
            }
        }
        if self.participants.len() > 2 && self.kind != ConversationKind::Group {
            self.kind = ConversationKind::Group;
            changed = true;
        }
        let created_ms = self.created_ms.min(m.timestamp_ms);
        let last_activity_ms = self.last_activity_ms.max(m.timestamp_ms);
        changed |= created_ms != self.created_ms || last_activity_ms != self.last_activity_ms;
        self.created_ms = created_ms;
        self.last_activity_ms = last_activity_ms;
        changed
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

/// A contact: a peer the user knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The peer id (primary key).
    pub peer_id: String,
    /// The name to show.
    pub display_name: String,
    /// The peer's public identity key, as the application encodes it.
    pub public_key: Vec<u8>,
    /// Whether the user verified the key (safety number, QR code…).
    pub verified: bool,
    /// Whether the user blocked the peer.
    pub blocked: bool,
}

/// The contacts table (typed table `contact`, no secondary index).
pub static CONTACTS: TableDef<Contact> = TableDef {
    name: "contact",
    primary_key: |c| c.peer_id.as_bytes().to_vec(),
    indexes: &[],
};

/// A ratchet session with one device of a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The peer id.
    pub peer_id: String,
    /// The peer's device id.
    pub device_id: String,
    /// The id of the key the session was established with.
    pub key_id: String,
    /// The ratchet state, opaque to tresor.
    pub state: Vec<u8>,
    /// When the session was last used, ms since the Unix epoch.
    pub last_activity_ms: i64,
}

impl Session {
    /// The primary key of the session of `peer_id`'s device `device_id`.
    pub fn key(peer_id: &str, device_id: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(8 + peer_id.len() + device_id.len());
        k.extend_from_slice(&(peer_id.len() as u64).to_le_bytes());
        k.extend_from_slice(peer_id.as_bytes());
        k.extend_from_slice(device_id.as_bytes());
        k
    }
}

/// Index of [`SESSIONS`] by peer (`[Id(peer_id), I64(last_activity_ms)]`, non-unique).
pub const SESSIONS_BY_PEER: &str = "by_peer";
/// Index of [`SESSIONS`] by key id (`[Id(key_id)]`, non-unique).
pub const SESSIONS_BY_KEY: &str = "by_key";
/// Index of [`SESSIONS`] by last activity (`[I64(last_activity_ms)]`, non-unique).
pub const SESSIONS_BY_ACTIVITY: &str = "by_activity";

/// The sessions table (typed table `session`; primary key [`Session::key`]).
pub static SESSIONS: TableDef<Session> = TableDef {
    name: "session",
    primary_key: |s| Session::key(&s.peer_id, &s.device_id),
    indexes: &[
        IndexDef {
            name: SESSIONS_BY_PEER,
            unique: false,
            keys: |s| {
                vec![vec![
                    KeyPart::id(&s.peer_id),
                    KeyPart::I64(s.last_activity_ms),
                ]]
            },
        },
        IndexDef {
            name: SESSIONS_BY_KEY,
            unique: false,
            keys: |s| vec![vec![KeyPart::id(&s.key_id)]],
        },
        IndexDef {
            name: SESSIONS_BY_ACTIVITY,
            unique: false,
            keys: |s| vec![vec![KeyPart::I64(s.last_activity_ms)]],
        },
    ],
};

/// A zero-knowledge proof attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The proof id (primary key).
    pub id: String,
    /// The message it proves something about: at most one proof per message.
    pub message_id: String,
    /// The circuit it was generated for.
    pub circuit_id: String,
    /// The proof bytes.
    pub proof: Vec<u8>,
    /// The public signals, as the application encodes them.
    pub public_signals: Vec<Vec<u8>>,
    /// When it was generated, ms since the Unix epoch.
    pub generated_ms: i64,
    /// Who generated it (a peer id).
    pub prover: String,
}

/// Unique index of [`PROOFS`] by message (`[Id(message_id)]`).
pub const PROOFS_BY_MESSAGE: &str = "by_message";
/// Index of [`PROOFS`] by circuit (`[Id(circuit_id), I64(generated_ms)]`, non-unique).
pub const PROOFS_BY_CIRCUIT: &str = "by_circuit";
/// Index of [`PROOFS`] by time (`[I64(generated_ms)]`, non-unique).
pub const PROOFS_BY_TIME: &str = "by_time";

/// The proofs table (typed table `proof`).
pub static PROOFS: TableDef<Proof> = TableDef {
    name: "proof",
    primary_key: |p| p.id.as_bytes().to_vec(),
    indexes: &[
        IndexDef {
            name: PROOFS_BY_MESSAGE,
            unique: true,
            keys: |p| vec![vec![KeyPart::id(&p.message_id)]],
        },
        IndexDef {
            name: PROOFS_BY_CIRCUIT,
            unique: false,
            keys: |p| {
                vec![vec![
                    KeyPart::id(&p.circuit_id),
                    KeyPart::I64(p.generated_ms),
                ]]
            },
        },
        IndexDef {
            name: PROOFS_BY_TIME,
            unique: false,
            keys: |p| vec![vec![KeyPart::I64(p.generated_ms)]],
        },
    ],
};

/// An outbound message waiting for delivery to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayItem {
    /// The item id (primary key).
    pub id: String,
    /// The peer it goes to.
    pub peer_id: String,
    /// The (encrypted) payload to send, opaque to tresor.
    pub payload: Vec<u8>,
    /// When it was enqueued, ms since the Unix epoch.
    pub enqueued_ms: i64,
    /// When the next delivery attempt is due, ms since the Unix epoch.
    pub next_attempt_ms: i64,
    /// Delivery attempts made so far.
    pub attempts: u32,
}

/// Index of [`RELAY_QUEUE`] by due time (`[I64(next_attempt_ms), I64(enqueued_ms)]`,
/// non-unique): due order, and among items due together, enqueue order.
pub const RELAY_BY_DUE: &str = "by_due";

/// The relay queue (typed table `relay`).
pub static RELAY_QUEUE: TableDef<RelayItem> = TableDef {
    name: "relay",
    primary_key: |r| r.id.as_bytes().to_vec(),
    indexes: &[IndexDef {
        name: RELAY_BY_DUE,
        unique: false,
        keys: |r| {
            vec![vec![
                KeyPart::I64(r.next_attempt_ms),
                KeyPart::I64(r.enqueued_ms),
            ]]
        },
    }],
};

/// One entry of the keys-and-metadata table: application key material or a setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaEntry {
    /// The entry's name (primary key).
    pub name: String,
    /// Its value, opaque to tresor (sealed like every record).
    pub value: Vec<u8>,
}

/// The keys-and-metadata table (typed table `kv`, no secondary index).
pub static KEY_VALUES: TableDef<MetaEntry> = TableDef {
    name: "kv",
    primary_key: |e| e.name.as_bytes().to_vec(),
    indexes: &[],
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

    /// `absorb` reports a change exactly when the record changed, over every order of a few
    /// messages (senders, recipients, earlier/later/equal times).
    #[test]
    fn absorb_reports_exactly_the_changes() {
        let peers = ["alice", "bob", "carol", "dave"];
        let mut n = 0u64;
        for first in 0..peers.len() {
            let mut c =
                Conversation::from_message(&Message::new("0", "c", peers[first], None, 50, ""));
            for i in 0..40u64 {
                let sender = peers[(i as usize * 7 + first) % peers.len()];
                let recipient =
                    (i % 3 != 0).then(|| peers[(i as usize * 3) % peers.len()].to_string());
                let ts = [10, 50, 90, 50][(i % 4) as usize] + (i % 5) as i64;
                let m = Message::new(i.to_string(), "c", sender, recipient, ts, "");
                let before = c.clone();
                assert_eq!(c.absorb(&m), c != before, "{first} {i}");
                n += 1;
            }
        }
        assert_eq!(n, 160);
    }
}
