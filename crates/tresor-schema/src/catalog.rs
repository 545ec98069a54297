//! The table catalog: every table tresor writes, and what kind of bytes it holds.

/// What a table's values are, which tells backup, restore and integrity checks how to treat
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TableKind {
    /// Plain metadata: non-secret values stored in clear (key header, schema version, counters).
    Meta,
    /// Records sealed with the value key; AAD = [`crate::sealed::record_aad`] of table and key.
    Sealed,
    /// Index entries: the key carries blinded tokens and order fields, the value is the key
    /// of the record it points to (a token, or a message record key).
    Index,
}

/// One table of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableSpec {
    /// The backend table name.
    pub name: &'static str,
    /// What its values are.
    pub kind: TableKind,
}

/// Plain metadata (key header, schema version, next sequence number).
pub const META: &str = "meta";
/// Messages: record key (conversation token ‖ order key, 32 bytes, since schema v4; the
/// message token in v1–v3) → sealed [`crate::Message`] ([`crate::messages::record_key`]).
pub const MESSAGES: &str = "messages";
/// Conversations: conversation token → sealed [`crate::ConversationSummary`].
pub const CONVERSATIONS: &str = "conversations";
/// Peers: peer token → sealed [`crate::PeerSummary`].
pub const PEERS: &str = "peers";
/// Index of schema v1–v3: conversation token ‖ order key → message token. Empty since v4,
/// whose message record keys are these keys (kept in the catalog: positions never change).
pub const MSG_BY_CONVERSATION: &str = "msg_by_conversation";
/// Index: peer token ‖ order key → conversation token (one entry for the sender, one for the
/// recipient when there is one and it differs; v1–v3: → message token). The conversation
/// token ‖ the order key is the message's record key
/// ([`crate::messages::indexed_record_key`]).
pub const MSG_BY_PEER: &str = "msg_by_peer";
/// Index: order key → conversation token (v1–v3: → message token); with the order key, the
/// message's record key.
pub const MSG_BY_TIME: &str = "msg_by_time";
/// Index (schema v4): message token → message record key.
pub const MESSAGE_IDS: &str = "message_ids";

/// Typed tables (schema v2): record key → sealed [`crate::typed::Envelope`] (layout in
/// [`crate::typed`]).
pub const TYPED_RECORDS: &str = "typed_records";
/// Typed tables (schema v2): index key → primary-key token (layout in [`crate::typed`]).
pub const TYPED_INDEX: &str = "typed_index";

/// Catalog position of [`TYPED_RECORDS`].
pub const TYPED_RECORDS_POSITION: u8 = 7;

/// Every table, in a fixed order (backup writes them in this order). Version 1 had the first
/// seven; version 2 appended the two typed tables (positions never change: rotation cursors
/// and backups name tables by position); version 4 appended `message_ids`.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: META,
        kind: TableKind::Meta,
    },
    TableSpec {
        name: MESSAGES,
        kind: TableKind::Sealed,
    },
    TableSpec {
        name: CONVERSATIONS,
        kind: TableKind::Sealed,
    },
    TableSpec {
        name: PEERS,
        kind: TableKind::Sealed,
    },
    TableSpec {
        name: MSG_BY_CONVERSATION,
        kind: TableKind::Index,
    },
    TableSpec {
        name: MSG_BY_PEER,
        kind: TableKind::Index,
    },
    TableSpec {
        name: MSG_BY_TIME,
        kind: TableKind::Index,
    },
    TableSpec {
        name: TYPED_RECORDS,
        kind: TableKind::Sealed,
    },
    TableSpec {
        name: TYPED_INDEX,
        kind: TableKind::Index,
    },
    TableSpec {
        name: MESSAGE_IDS,
        kind: TableKind::Index,
    },
];

/// The spec of the table called `name`, if the catalog has one.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

/// Keys of the [`META`] table.
pub mod meta_keys {
    /// The encoded `tresor_crypto::KeyHeader` (90 bytes).
    pub const KEY_HEADER: &str = "key_header";
    /// The schema version, `u32` little-endian.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// The next message sequence number to assign, `u64` little-endian.
    pub const NEXT_SEQ: &str = "next_seq";
    /// AES-GCM seals made under the current value key, `u64` little-endian (absent = 0).
    pub const SEAL_COUNT: &str = "seal_count";
    /// When the current data key was made, ms since the Unix epoch, `i64` little-endian.
    pub const KEY_CREATED_MS: &str = "key_created_ms";
    /// Record padding: `u8`, 0 = none, 1 = Padmé (format-2 records) (absent = 0).
    pub const PADDING: &str = "padding";
    /// During a key rotation only: the previous data key wrapped under the current one
    /// (60 bytes, `tresor_crypto::DataKey::wrap_previous`).
    pub const ROTATION_PREVIOUS_DEK: &str = "rotation_previous_dek";
    /// During a key rotation only: progress, `u8 table index ‖ last key migrated` (the table
    /// index is the catalog position of the table being migrated).
    pub const ROTATION_CURSOR: &str = "rotation_cursor";
    /// During a schema migration only: progress, `u32 LE target version ‖ last key migrated`.
    pub const MIGRATION_CURSOR: &str = "migration_cursor";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_valid_backend_names() {
        let mut names: Vec<_> = TABLES.iter().map(|t| t.name).collect();
        for n in &names {
            assert!(tresor_backend::validate_table_name(n).is_ok(), "{n}");
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLES.len());
        assert_eq!(table(MESSAGES).map(|t| t.kind), Some(TableKind::Sealed));
        assert!(table("nope").is_none());
        assert_eq!(
            TABLES[usize::from(TYPED_RECORDS_POSITION)].name,
            TYPED_RECORDS
        );
    }
}
