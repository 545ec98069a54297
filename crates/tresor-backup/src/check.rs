//! Entry validation and counting, shared by create, verify and restore.
//!
//! The writer runs the same checks as the readers, so `create` never writes a backup that
//! `verify` would reject.

use tresor_crypto::TOKEN_LEN;
use tresor_schema::catalog::{
    CONVERSATIONS, MESSAGE_IDS, MESSAGES, PEERS, TABLES, TYPED_RECORDS, TableKind, TableSpec,
    meta_keys,
};
use tresor_schema::index::order_key;
use tresor_schema::messages::{RECORD_KEY_LEN, position};
use tresor_schema::typed::Envelope;
use tresor_schema::{ConversationSummary, PeerSummary, codec, version};

use crate::BackupError;
use crate::format::Trailer;

/// Why an entry is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// The `meta` `key_header` differs from the expected key header.
    KeyHeaderMismatch,
    /// Any other problem, with a fixed reason.
    Entry(&'static str),
}

/// What the entries must agree with: the header's key header and schema version.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect<'a> {
    pub key_header: &'a [u8],
    pub schema_version: u32,
}

/// First schema version whose message records are keyed by record key (conversation token ‖
/// order key), with `message_ids` mapping message tokens to record keys.
pub(crate) const RECORD_KEYS_SINCE: u32 = 4;

/// The number of catalog tables at schema version `schema_version` (the first that many of
/// [`TABLES`]): 7 for version 1, 9 for versions 2 and 3 (the typed tables), 10 for versions 4
/// (`message_ids`) and 5 (no new table: compact message records). `None` for a version this code does not know. A format-1 trailer holds one
/// count per table of its schema version.
pub(crate) fn catalog_len(schema_version: u32) -> Option<usize> {
    match schema_version {
        1 => Some(7),
        2 | 3 => Some(9),
        4 | 5 => Some(10),
        _ => None,
    }
}

/// Counts entries per table and checks their order and contents.
#[derive(Debug)]
pub(crate) struct Tally {
    per_table: Vec<u64>,
    entries: u64,
    last_table: Option<u8>,
    last_key: Vec<u8>,
    saw_key_header: bool,
}

impl Tally {
    pub fn new() -> Self {
        Self {
            per_table: vec![0; TABLES.len()],
            entries: 0,
            last_table: None,
            last_key: Vec::new(),
            saw_key_header: false,
        }
    }

    /// Checks one entry (`value` is the plaintext: opened for sealed tables) and counts it.
    /// Returns the entry's table.
    pub fn entry(
        &mut self,
        expect: &Expect<'_>,
        table_index: u8,
        key: &[u8],
        value: &[u8],
    ) -> Result<&'static TableSpec, Invalid> {
        let known = catalog_len(expect.schema_version).unwrap_or(TABLES.len());
        let spec = TABLES
            .get(usize::from(table_index))
            .filter(|_| usize::from(table_index) < known)
            .ok_or(Invalid::Entry("unknown table index"))?;
        let in_order = match self.last_table {
            None => true,
            Some(t) if t < table_index => true,
            Some(t) if t == table_index => key > self.last_key.as_slice(),
            Some(_) => false,
        };
        if !in_order {
            return Err(Invalid::Entry("entries out of order or duplicated"));
        }
        check_value(spec, key, value, expect)?;
        if spec.kind == TableKind::Meta && key == meta_keys::KEY_HEADER.as_bytes() {
            self.saw_key_header = true;
        }
        self.last_table = Some(table_index);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.entries += 1;
        if let Some(count) = self.per_table.get_mut(usize::from(table_index)) {
            *count += 1;
        }
        Ok(spec)
    }

    /// Total entries counted.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Entries counted per catalog table, in catalog order.
    pub fn per_table(&self) -> &[u64] {
        &self.per_table
    }

    /// `(table name, count)` pairs in catalog order.
    pub fn table_counts(&self) -> Vec<(String, u64)> {
        TABLES
            .iter()
            .zip(&self.per_table)
            .map(|(spec, count)| (spec.name.to_owned(), *count))
            .collect()
    }

    /// Checks that the `meta` table held the key header.
    ///
    /// # Errors
    /// [`BackupError::KeyHeaderMismatch`] when it did not.
    pub fn check_complete(&self) -> Result<(), BackupError> {
        if self.saw_key_header {
            Ok(())
        } else {
            Err(BackupError::KeyHeaderMismatch)
        }
    }

    /// Checks the counts recorded in `trailer` against what was counted. The trailer holds
    /// one count per catalog table of `schema_version` ([`catalog_len`]): a backup written
    /// before tables were added to the catalog has fewer counts, and no entries in the tables
    /// it does not count (refused by [`Tally::entry`]).
    ///
    /// # Errors
    /// [`BackupError::TrailerMismatch`] for the first count that differs.
    pub fn check_trailer(
        &self,
        trailer: &Trailer,
        data_chunks: u64,
        schema_version: u32,
    ) -> Result<(), BackupError> {
        let mismatch = |what: String, recorded: u64, counted: u64| {
            if recorded == counted {
                Ok(())
            } else {
                Err(BackupError::TrailerMismatch {
                    what,
                    recorded,
                    counted,
                })
            }
        };
        mismatch("data chunks".into(), trailer.data_chunks, data_chunks)?;
        mismatch("total entries".into(), trailer.entries, self.entries)?;
        let tables = catalog_len(schema_version).unwrap_or(self.per_table.len());
        mismatch(
            "table count".into(),
            trailer.tables.len() as u64,
            tables as u64,
        )?;
        for (i, (spec, counted)) in TABLES.iter().zip(&self.per_table).enumerate() {
            let recorded = trailer.tables.get(i).copied().unwrap_or(0);
            mismatch(
                format!("entries of table {}", spec.name),
                recorded,
                *counted,
            )?;
        }
        Ok(())
    }
}

/// Checks that `value` (plaintext) fits its table and key.
fn check_value(
    spec: &TableSpec,
    key: &[u8],
    value: &[u8],
    expect: &Expect<'_>,
) -> Result<(), Invalid> {
    match spec.kind {
        TableKind::Meta => check_meta(key, value, expect),
        TableKind::Sealed if spec.name == MESSAGES => check_message(key, value, expect),
        TableKind::Sealed => {
            let decodes = match spec.name {
                CONVERSATIONS => codec::decode::<ConversationSummary>(value).is_ok(),
                PEERS => codec::decode::<PeerSummary>(value).is_ok(),
                TYPED_RECORDS => codec::decode::<Envelope>(value).is_ok(),
                // A sealed table this code has no record type for: nothing more to check.
                _ => true,
            };
            if decodes {
                Ok(())
            } else {
                Err(Invalid::Entry("sealed record does not decode as its type"))
            }
        }
        TableKind::Index => {
            let record_keys = expect.schema_version >= RECORD_KEYS_SINCE;
            match spec.name {
                // Since v4 `message_ids` points at message record keys; `msg_by_peer` and
                // `msg_by_time` hold the conversation token (16 bytes, as the message token
                // they held before).
                MESSAGE_IDS if record_keys => {
                    if value.len() == RECORD_KEY_LEN {
                        Ok(())
                    } else {
                        Err(Invalid::Entry("index value is not a 32-byte record key"))
                    }
                }
                _ if value.len() == TOKEN_LEN => Ok(()),
                _ => Err(Invalid::Entry("index value is not a 16-byte token")),
            }
        }
        _ => Ok(()),
    }
}

/// Checks a `messages` record (plaintext) and its key: the record decodes as a
/// [`tresor_schema::Message`], and its key is a message token (16 bytes, schema v1–v3) or,
/// since v4, a record key (32 bytes) that ends with the order key of the message's position.
/// (The conversation token in front and the token of a v1–v3 key would need the store keys:
/// a restore re-seals the record under the key it comes with, and the record then opens only
/// under that key.)
fn check_message(key: &[u8], value: &[u8], expect: &Expect<'_>) -> Result<(), Invalid> {
    let m = codec::decode_message(value)
        .map_err(|_| Invalid::Entry("sealed record does not decode as its type"))?;
    if expect.schema_version >= RECORD_KEYS_SINCE {
        if key.len() != RECORD_KEY_LEN || key[TOKEN_LEN..] != order_key(position(&m)) {
            return Err(Invalid::Entry(
                "message record key is not 32 bytes ending with the record's order key",
            ));
        }
    } else if key.len() != TOKEN_LEN {
        return Err(Invalid::Entry("message record key is not a 16-byte token"));
    }
    Ok(())
}

fn check_meta(key: &[u8], value: &[u8], expect: &Expect<'_>) -> Result<(), Invalid> {
    if key == meta_keys::KEY_HEADER.as_bytes() {
        if value == expect.key_header {
            return Ok(());
        }
        return Err(Invalid::KeyHeaderMismatch);
    }
    if key == meta_keys::SCHEMA_VERSION.as_bytes() {
        return match version::decode(value) {
            Ok(v) if v == expect.schema_version => Ok(()),
            Ok(_) => Err(Invalid::Entry(
                "meta schema_version differs from the backup's schema version",
            )),
            Err(_) => Err(Invalid::Entry("meta schema_version is not 4 bytes")),
        };
    }
    if key == meta_keys::NEXT_SEQ.as_bytes() && value.len() != 8 {
        return Err(Invalid::Entry("meta next_seq is not 8 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tresor_schema::Message;
    use tresor_schema::catalog::{MSG_BY_CONVERSATION, MSG_BY_PEER, MSG_BY_TIME, TYPED_INDEX};

    const EXPECT: Expect<'static> = Expect {
        key_header: b"kh",
        schema_version: 1,
    };

    const V4: Expect<'static> = Expect {
        key_header: b"kh",
        schema_version: 4,
    };

    fn index_of(name: &str) -> u8 {
        TABLES.iter().position(|t| t.name == name).unwrap() as u8
    }

    #[test]
    fn order_and_contents_are_checked() {
        let mut t = Tally::new();
        assert_eq!(
            t.entry(&EXPECT, 0, b"key_header", b"other"),
            Err(Invalid::KeyHeaderMismatch)
        );
        t.entry(&EXPECT, 0, b"key_header", b"kh").unwrap();
        assert!(t.entry(&EXPECT, 0, b"key_header", b"kh").is_err()); // duplicate
        assert!(t.entry(&EXPECT, 0, b"next_seq", &[0; 7]).is_err());
        t.entry(&EXPECT, 0, b"next_seq", &[0; 8]).unwrap();
        assert!(
            t.entry(&EXPECT, 0, b"schema_version", &2u32.to_le_bytes())
                .is_err()
        );
        t.entry(&EXPECT, 0, b"schema_version", &1u32.to_le_bytes())
            .unwrap();
        assert!(t.entry(&EXPECT, 1, &[1; 16], b"\x01garbage").is_err());
        let msg = codec::encode(&Message::new("i", "c", "s", None, 1, "b")).unwrap();
        // Before v4 a message record is under a 16-byte token.
        assert!(t.entry(&EXPECT, 1, b"m", &msg).is_err());
        t.entry(&EXPECT, 1, &[1; 16], &msg).unwrap();
        assert!(t.entry(&EXPECT, 6, b"t", &[0; 15]).is_err());
        assert!(t.entry(&EXPECT, 6, b"t", &[0; 32]).is_err()); // a v4 value in a v1 backup
        t.entry(&EXPECT, 6, b"t", &[0; 16]).unwrap();
        assert!(t.entry(&EXPECT, 5, b"z", &[0; 16]).is_err()); // table order
        // Schema 1 had seven tables: the typed tables and message_ids are unknown to it.
        assert!(t.entry(&EXPECT, 7, b"z", &[0; 16]).is_err());
        assert!(t.entry(&EXPECT, 9, b"z", &[0; 32]).is_err());
        assert!(t.entry(&EXPECT, 10, b"z", &[0; 16]).is_err()); // unknown table
        assert_eq!(t.entries(), 5);
        assert_eq!(t.per_table(), &[3, 1, 0, 0, 0, 0, 1, 0, 0, 0]);
        t.check_complete().unwrap();
        assert!(Tally::new().check_complete().is_err());
    }

    #[test]
    fn schema_4_records_and_indexes_use_record_keys() {
        let mut m = Message::new("i", "c", "s", None, 1_000, "b");
        m.seq = 7;
        let msg = codec::encode(&m).unwrap();
        let order = order_key(position(&m));
        let mut rk = vec![9u8; TOKEN_LEN];
        rk.extend_from_slice(&order);
        let mut t = Tally::new();
        // A v4 record is under conversation token ‖ its own order key.
        assert!(t.entry(&V4, 1, &[1; 16], &msg).is_err());
        let mut elsewhere = rk.clone();
        elsewhere[31] ^= 1;
        assert!(t.entry(&V4, 1, &elsewhere, &msg).is_err());
        t.entry(&V4, 1, &rk, &msg).unwrap();
        // msg_by_conversation keeps its v1–v3 token values; it is empty in a v4 store.
        t.entry(&V4, index_of(MSG_BY_CONVERSATION), &rk, &[0; 16])
            .unwrap();
        for table in [MSG_BY_PEER, MSG_BY_TIME] {
            let i = index_of(table);
            assert!(t.entry(&V4, i, &rk, &rk).is_err());
            t.entry(&V4, i, &rk, &[9; 16]).unwrap();
        }
        let typed_index = index_of(TYPED_INDEX);
        assert!(t.entry(&V4, typed_index, b"a", &rk).is_err());
        t.entry(&V4, typed_index, b"a", &[0; 16]).unwrap();
        let ids = index_of(MESSAGE_IDS);
        assert_eq!(usize::from(ids), 9);
        assert!(t.entry(&V4, ids, &[2; 16], &[2; 16]).is_err());
        t.entry(&V4, ids, &[2; 16], &rk).unwrap();
        assert_eq!(t.per_table(), &[0, 1, 0, 0, 1, 1, 1, 0, 1, 1]);
    }

    #[test]
    fn trailers_count_the_tables_of_their_schema_version() {
        use tresor_schema::version::SCHEMA_VERSION;
        // Update `catalog_len` whenever the catalog grows.
        assert_eq!(catalog_len(SCHEMA_VERSION), Some(TABLES.len()));
        assert_eq!(catalog_len(SCHEMA_VERSION + 1), None);
        assert_eq!(catalog_len(0), None);
        let mut t = Tally::new();
        t.entry(&EXPECT, 0, b"key_header", b"kh").unwrap();
        t.entry(&EXPECT, 6, b"t", &[0; 16]).unwrap();
        let trailer = |tables: Vec<u64>| Trailer {
            entries: 2,
            data_chunks: 1,
            tables,
            digest: [0; 32],
        };
        let seven = trailer(vec![1, 0, 0, 0, 0, 0, 1]);
        t.check_trailer(&seven, 1, 1).unwrap();
        assert!(t.check_trailer(&seven, 1, 4).is_err());
        assert!(t.check_trailer(&seven, 2, 1).is_err());
        let mut ten = vec![1, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        t.check_trailer(&trailer(ten.clone()), 1, 4).unwrap();
        assert!(t.check_trailer(&trailer(ten.clone()), 1, 3).is_err());
        t.check_trailer(&trailer(ten[..9].to_vec()), 1, 3).unwrap();
        ten[9] = 1;
        assert!(t.check_trailer(&trailer(ten), 1, 4).is_err());
    }
}
