//! Matrix-compatible room state, declared as typed tables with Matrix's own field names
//! (client-server API v1.x): rooms, state events, members, device keys, one-time keys,
//! invitations, presence, account data, read receipts, typing notifications, transactions and
//! room aliases.
//!
//! Event contents are stored as JSON text (`content`), exactly as received, so nothing of an
//! event is lost; the fields a client queries by are also stored as columns and indexed.
//! Compound primary keys are length-prefixed parts ([`compound_key`]), so they are
//! unambiguous.

use serde::{Deserialize, Serialize};

use crate::typed::{IndexDef, KeyPart, TableDef};

/// A primary key made of `parts`: each part as `u32 LE length ‖ bytes`.
pub fn compound_key(parts: &[&str]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| 4 + p.len()).sum());
    for p in parts {
        // Invariant: identifiers are far below 4 GiB; a longer one is cut in the length only,
        // which still keeps keys of different parts apart by their bytes.
        k.extend_from_slice(&(p.len() as u32).to_le_bytes());
        k.extend_from_slice(p.as_bytes());
    }
    k
}

/// A room as the local user sees it (a row per room the user knows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// The room id (`!opaque:server`), primary key.
    pub room_id: String,
    /// The local user's membership: `join`, `invite`, `leave`, `ban` or `knock`.
    pub membership: String,
    /// `m.room.name` content `name`, if set.
    pub name: Option<String>,
    /// `m.room.topic` content `topic`, if set.
    pub topic: Option<String>,
    /// `m.room.canonical_alias` content `alias`, if set.
    pub canonical_alias: Option<String>,
    /// `m.room.canonical_alias` content `alt_aliases`.
    pub alt_aliases: Vec<String>,
    /// `m.room.create` content `creator` (or its sender), if known.
    pub creator: Option<String>,
    /// `m.room.create` content `room_version`, if known.
    pub room_version: Option<String>,
    /// The id of the newest event seen in the room.
    pub last_event_id: Option<String>,
    /// `origin_server_ts` of the newest event seen, ms since the Unix epoch.
    pub last_event_ts: i64,
}

impl Room {
    /// A room known only by its id, with membership `membership`.
    pub fn new(room_id: impl Into<String>, membership: impl Into<String>) -> Self {
        Self {
            room_id: room_id.into(),
            membership: membership.into(),
            name: None,
            topic: None,
            canonical_alias: None,
            alt_aliases: Vec::new(),
            creator: None,
            room_version: None,
            last_event_id: None,
            last_event_ts: 0,
        }
    }
}

/// Index of [`ROOMS`] by membership (`[Id(membership), I64(last_event_ts)]`).
pub const ROOMS_BY_MEMBERSHIP: &str = "by_membership";
/// Index of [`ROOMS`] by last event (`[I64(last_event_ts)]`).
pub const ROOMS_BY_LAST_EVENT: &str = "by_last_event";
/// Unique multi-entry index of [`ROOMS`] by alias (`[Id(alias)]` for the canonical alias and
/// each alt alias).
pub const ROOMS_BY_ALIAS: &str = "by_alias";

/// The rooms table (typed table `mx_room`).
pub static ROOMS: TableDef<Room> = TableDef {
    name: "mx_room",
    primary_key: |r| r.room_id.as_bytes().to_vec(),
    indexes: &[
        IndexDef {
            name: ROOMS_BY_MEMBERSHIP,
            unique: false,
            keys: |r| {
                vec![vec![
                    KeyPart::id(&r.membership),
                    KeyPart::I64(r.last_event_ts),
                ]]
            },
        },
        IndexDef {
            name: ROOMS_BY_LAST_EVENT,
            unique: false,
            keys: |r| vec![vec![KeyPart::I64(r.last_event_ts)]],
        },
        IndexDef {
            name: ROOMS_BY_ALIAS,
            unique: true,
            keys: |r| {
                r.canonical_alias
                    .iter()
                    .chain(&r.alt_aliases)
                    .map(|a| vec![KeyPart::id(a)])
                    .collect()
            },
        },
    ],
};

/// The current state event of a room for one `(type, state_key)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEvent {
    /// The room id.
    pub room_id: String,
    /// The event type, e.g. `m.room.member` (Matrix's `type`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The state key (`""` for most room-wide state).
    pub state_key: String,
    /// The event id.
    pub event_id: String,
    /// Who sent it.
    pub sender: String,
    /// When its origin server received it, ms since the Unix epoch.
    pub origin_server_ts: i64,
    /// The event content, as JSON text.
    pub content: String,
    /// The id of the redaction event that redacted it, if one did (`unsigned.redacted_because`).
    pub redacted_because: Option<String>,
}

impl StateEvent {
    /// Primary key: `(room_id, type, state_key)`.
    pub fn key(room_id: &str, event_type: &str, state_key: &str) -> Vec<u8> {
        compound_key(&[room_id, event_type, state_key])
    }
}

/// Index of [`STATE_EVENTS`] by room and type (`[Id(room_id), Id(type)]`).
pub const STATE_BY_ROOM_TYPE: &str = "by_room_type";
/// Unique index of [`STATE_EVENTS`] by event id (`[Id(event_id)]`).
pub const STATE_BY_EVENT_ID: &str = "by_event_id";

/// The room state table (typed table `mx_state`, primary key [`StateEvent::key`]).
pub static STATE_EVENTS: TableDef<StateEvent> = TableDef {
    name: "mx_state",
    primary_key: |e| StateEvent::key(&e.room_id, &e.event_type, &e.state_key),
    indexes: &[
        IndexDef {
            name: STATE_BY_ROOM_TYPE,
            unique: false,
            keys: |e| vec![vec![KeyPart::id(&e.room_id), KeyPart::id(&e.event_type)]],
        },
        IndexDef {
            name: STATE_BY_EVENT_ID,
            unique: true,
            keys: |e| vec![vec![KeyPart::id(&e.event_id)]],
        },
    ],
};

/// A room member (from the room's `m.room.member` state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMember {
    /// The room id.
    pub room_id: String,
    /// The member's user id (`@user:server`, the event's `state_key`).
    pub user_id: String,
    /// `join`, `invite`, `leave`, `ban` or `knock`.
    pub membership: String,
    /// Content `displayname`, if set.
    pub displayname: Option<String>,
    /// Content `avatar_url`, if set.
    pub avatar_url: Option<String>,
    /// The id of the membership event.
    pub event_id: String,
    /// Its `origin_server_ts`.
    pub origin_server_ts: i64,
}

/// Index of [`MEMBERS`] by room (`[Id(room_id)]`).
pub const MEMBERS_BY_ROOM: &str = "by_room";
/// Index of [`MEMBERS`] by user (`[Id(user_id)]`).
pub const MEMBERS_BY_USER: &str = "by_user";
/// Index of [`MEMBERS`] by room and membership (`[Id(room_id), Id(membership)]`).
pub const MEMBERS_BY_MEMBERSHIP: &str = "by_membership";

/// The room members table (typed table `mx_member`, primary key `(room_id, user_id)`).
pub static MEMBERS: TableDef<RoomMember> = TableDef {
    name: "mx_member",
    primary_key: |m| compound_key(&[&m.room_id, &m.user_id]),
    indexes: &[
        IndexDef {
            name: MEMBERS_BY_ROOM,
            unique: false,
            keys: |m| vec![vec![KeyPart::id(&m.room_id)]],
        },
        IndexDef {
            name: MEMBERS_BY_USER,
            unique: false,
            keys: |m| vec![vec![KeyPart::id(&m.user_id)]],
        },
        IndexDef {
            name: MEMBERS_BY_MEMBERSHIP,
            unique: false,
            keys: |m| vec![vec![KeyPart::id(&m.room_id), KeyPart::id(&m.membership)]],
        },
    ],
};

/// A device's identity keys (`/keys/query` `device_keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeys {
    /// The user id.
    pub user_id: String,
    /// The device id.
    pub device_id: String,
    /// Supported algorithms, e.g. `m.olm.v1.curve25519-aes-sha2`.
    pub algorithms: Vec<String>,
    /// Public keys: `algorithm:device_id` → unpadded base64 key.
    pub keys: Vec<(String, String)>,
    /// `signatures`, as JSON text.
    pub signatures: String,
    /// `unsigned.device_display_name`, if known.
    pub device_display_name: Option<String>,
}

/// Index of [`DEVICE_KEYS`] by user (`[Id(user_id)]`).
pub const DEVICE_KEYS_BY_USER: &str = "by_user";

/// The device keys table (typed table `mx_device_keys`, primary key `(user_id, device_id)`).
pub static DEVICE_KEYS: TableDef<DeviceKeys> = TableDef {
    name: "mx_device_keys",
    primary_key: |d| compound_key(&[&d.user_id, &d.device_id]),
    indexes: &[IndexDef {
        name: DEVICE_KEYS_BY_USER,
        unique: false,
        keys: |d| vec![vec![KeyPart::id(&d.user_id)]],
    }],
};

/// A one-time key of a device (`/keys/upload` `one_time_keys`), claimed at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimeKey {
    /// The user id.
    pub user_id: String,
    /// The device id.
    pub device_id: String,
    /// The key id, `algorithm:id` (e.g. `signed_curve25519:AAAAHg`).
    pub key_id: String,
    /// The key object, as JSON text (a string key or `{"key": …, "signatures": …}`).
    pub key: String,
}

impl OneTimeKey {
    /// The algorithm: the part of the key id before `:`.
    pub fn algorithm(&self) -> &str {
        self.key_id.split(':').next().unwrap_or_default()
    }
}

/// Index of [`ONE_TIME_KEYS`] by device and algorithm (`[Id(user_id), Id(device_id),
/// Id(algorithm)]`).
pub const OTK_BY_DEVICE_ALGORITHM: &str = "by_device_algorithm";

/// The one-time keys table (typed table `mx_otk`, primary key `(user_id, device_id,
/// key_id)`).
pub static ONE_TIME_KEYS: TableDef<OneTimeKey> = TableDef {
    name: "mx_otk",
    primary_key: |k| compound_key(&[&k.user_id, &k.device_id, &k.key_id]),
    indexes: &[IndexDef {
        name: OTK_BY_DEVICE_ALGORITHM,
        unique: false,
        keys: |k| {
            vec![vec![
                KeyPart::id(&k.user_id),
                KeyPart::id(&k.device_id),
                KeyPart::id(k.algorithm()),
            ]]
        },
    }],
};

/// An invitation of a user to a room (an `m.room.member` event with membership `invite`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The room id.
    pub room_id: String,
    /// The invited user (the event's `state_key`).
    pub user_id: String,
    /// Who invited.
    pub sender: String,
    /// The invite event id.
    pub event_id: String,
    /// Its `origin_server_ts`.
    pub origin_server_ts: i64,
}

/// Index of [`INVITES`] by invited user (`[Id(user_id), I64(origin_server_ts)]`).
pub const INVITES_BY_USER: &str = "by_user";

/// The invitations table (typed table `mx_invite`, primary key `(room_id, user_id)`).
pub static INVITES: TableDef<Invite> = TableDef {
    name: "mx_invite",
    primary_key: |i| compound_key(&[&i.room_id, &i.user_id]),
    indexes: &[IndexDef {
        name: INVITES_BY_USER,
        unique: false,
        keys: |i| {
            vec![vec![
                KeyPart::id(&i.user_id),
                KeyPart::I64(i.origin_server_ts),
            ]]
        },
    }],
};

/// A user's presence (`m.presence` content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The user id (primary key).
    pub user_id: String,
    /// `online`, `offline` or `unavailable`.
    pub presence: String,
    /// `status_msg`, if set.
    pub status_msg: Option<String>,
    /// `currently_active`.
    pub currently_active: bool,
    /// When the user was last active, ms since the Unix epoch (`last_active_ago` is derived
    /// from it at read time).
    pub last_active_ts: i64,
}

/// The presence table (typed table `mx_presence`, primary key the user id).
pub static PRESENCE: TableDef<Presence> = TableDef {
    name: "mx_presence",
    primary_key: |p| p.user_id.as_bytes().to_vec(),
    indexes: &[],
};

/// An account data event of a user (global, `/user/{userId}/account_data/{type}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountData {
    /// The user id.
    pub user_id: String,
    /// The event type, e.g. `m.direct` (Matrix's `type`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The content, as JSON text.
    pub content: String,
}

/// Index of [`ACCOUNT_DATA`] by user (`[Id(user_id)]`).
pub const ACCOUNT_DATA_BY_USER: &str = "by_user";

/// The account data table (typed table `mx_account_data`, primary key `(user_id, type)`).
pub static ACCOUNT_DATA: TableDef<AccountData> = TableDef {
    name: "mx_account_data",
    primary_key: |a| compound_key(&[&a.user_id, &a.event_type]),
    indexes: &[IndexDef {
        name: ACCOUNT_DATA_BY_USER,
        unique: false,
        keys: |a| vec![vec![KeyPart::id(&a.user_id)]],
    }],
};

/// A read receipt: the newest event a user read in a room (per receipt type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The room id.
    pub room_id: String,
    /// The user id.
    pub user_id: String,
    /// The receipt type: `m.read` or `m.read.private`.
    pub receipt_type: String,
    /// The event read.
    pub event_id: String,
    /// When, ms since the Unix epoch (`ts`).
    pub ts: i64,
}

/// Index of [`RECEIPTS`] by room and event (`[Id(room_id), Id(event_id)]`).
pub const RECEIPTS_BY_EVENT: &str = "by_room_event";

/// The receipts table (typed table `mx_receipt`, primary key `(room_id, user_id,
/// receipt_type)`).
pub static RECEIPTS: TableDef<Receipt> = TableDef {
    name: "mx_receipt",
    primary_key: |r| compound_key(&[&r.room_id, &r.user_id, &r.receipt_type]),
    indexes: &[IndexDef {
        name: RECEIPTS_BY_EVENT,
        unique: false,
        keys: |r| vec![vec![KeyPart::id(&r.room_id), KeyPart::id(&r.event_id)]],
    }],
};

/// A typing notification (`m.typing`): ephemeral, valid until `expires_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    /// The room id.
    pub room_id: String,
    /// The typing user.
    pub user_id: String,
    /// When it stops counting, ms since the Unix epoch.
    pub expires_ms: i64,
}

/// Index of [`TYPING`] by room (`[Id(room_id), I64(expires_ms)]`).
pub const TYPING_BY_ROOM: &str = "by_room";
/// Index of [`TYPING`] by expiry (`[I64(expires_ms)]`).
pub const TYPING_BY_EXPIRY: &str = "by_expiry";

/// The typing table (typed table `mx_typing`, primary key `(room_id, user_id)`).
pub static TYPING: TableDef<Typing> = TableDef {
    name: "mx_typing",
    primary_key: |t| compound_key(&[&t.room_id, &t.user_id]),
    indexes: &[
        IndexDef {
            name: TYPING_BY_ROOM,
            unique: false,
            keys: |t| vec![vec![KeyPart::id(&t.room_id), KeyPart::I64(t.expires_ms)]],
        },
        IndexDef {
            name: TYPING_BY_EXPIRY,
            unique: false,
            keys: |t| vec![vec![KeyPart::I64(t.expires_ms)]],
        },
    ],
};

/// The state of a client transaction (idempotent send: `PUT /send/{type}/{txnId}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TxnStatus {
    /// Started, not yet acknowledged by the server.
    Pending,
    /// The server accepted it as this event.
    Sent {
        /// The event id the server assigned.
        event_id: String,
    },
    /// It failed for good.
    Failed {
        /// Why (the server's `errcode`, or a local reason).
        error: String,
    },
}

/// A client transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// The transaction id (primary key).
    pub txn_id: String,
    /// The room it sends to.
    pub room_id: String,
    /// Its state.
    pub status: TxnStatus,
    /// When it was started, ms since the Unix epoch.
    pub created_ms: i64,
}

/// The transactions table (typed table `mx_txn`, primary key the transaction id).
pub static TRANSACTIONS: TableDef<Transaction> = TableDef {
    name: "mx_txn",
    primary_key: |t| t.txn_id.as_bytes().to_vec(),
    indexes: &[],
};

/// A room alias (`#alias:server`) and the room it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomAlias {
    /// The alias (primary key, so unique).
    pub alias: String,
    /// The room id.
    pub room_id: String,
    /// Servers that know the room (`servers` of the directory answer).
    pub servers: Vec<String>,
}

/// Index of [`ROOM_ALIASES`] by room (`[Id(room_id)]`).
pub const ALIASES_BY_ROOM: &str = "by_room";

/// The room aliases table (typed table `mx_alias`, primary key the alias).
pub static ROOM_ALIASES: TableDef<RoomAlias> = TableDef {
    name: "mx_alias",
    primary_key: |a| a.alias.as_bytes().to_vec(),
    indexes: &[IndexDef {
        name: ALIASES_BY_ROOM,
        unique: false,
        keys: |a| vec![vec![KeyPart::id(&a.room_id)]],
    }],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_keys_are_unambiguous() {
        assert_ne!(compound_key(&["ab", "c"]), compound_key(&["a", "bc"]));
        assert_ne!(
            StateEvent::key("!r", "m.room.member", ""),
            StateEvent::key("!r", "m.room.member", "@a")
        );
        let k = OneTimeKey {
            user_id: "@a:x".into(),
            device_id: "D".into(),
            key_id: "signed_curve25519:AAAAHg".into(),
            key: "{}".into(),
        };
        assert_eq!(k.algorithm(), "signed_curve25519");
    }
}
