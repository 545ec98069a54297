//! Entry validation and counting, shared by create, verify and restore.
//!
//! The writer runs the same checks as the readers, so `create` never writes a backup that
//! `verify` would reject.

use tresor_crypto::TOKEN_LEN;
use tresor_schema::catalog::{
    CONVERSATIONS, MESSAGES, PEERS, TABLES, TYPED_RECORDS, TableKind, TableSpec, meta_keys,
};
use tresor_schema::typed::Envelope;
use tresor_schema::{ConversationSummary, Message, PeerSummary, codec, version};

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
        let spec = TABLES
            .get(usize::from(table_index))
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

    /// Checks the counts recorded in `trailer` against what was counted.
    ///
    /// # Errors
    /// [`BackupError::TrailerMismatch`] for the first count that differs.
    pub fn check_trailer(&self, trailer: &Trailer, data_chunks: u64) -> Result<(), BackupError> {
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
        mismatch(
            "table count".into(),
            trailer.tables.len() as u64,
            self.per_table.len() as u64,
        )?;
        for ((spec, recorded), counted) in TABLES.iter().zip(&trailer.tables).zip(&self.per_table) {
            mismatch(
                format!("entries of table {}", spec.name),
                *recorded,
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
        TableKind::Sealed => {
            let decodes = match spec.name {
                MESSAGES => codec::decode::<Message>(value).is_ok(),
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
            if value.len() == TOKEN_LEN {
                Ok(())
            } else {
                Err(Invalid::Entry("index value is not a 16-byte token"))
            }
        }
        _ => Ok(()),
    }
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

    const EXPECT: Expect<'static> = Expect {
        key_header: b"kh",
        schema_version: 1,
    };

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
        assert!(t.entry(&EXPECT, 1, b"m", b"\x01garbage").is_err());
        let msg = codec::encode(&Message::new("i", "c", "s", None, 1, "b")).unwrap();
        t.entry(&EXPECT, 1, b"m", &msg).unwrap();
        assert!(t.entry(&EXPECT, 6, b"t", &[0; 15]).is_err());
        t.entry(&EXPECT, 6, b"t", &[0; 16]).unwrap();
        assert!(t.entry(&EXPECT, 5, b"z", &[0; 16]).is_err()); // table order
        assert!(t.entry(&EXPECT, 9, b"z", &[0; 16]).is_err()); // unknown table
        assert_eq!(t.entries(), 5);
        assert_eq!(t.per_table(), &[3, 1, 0, 0, 0, 0, 1, 0, 0]);
        t.check_complete().unwrap();
        assert!(Tally::new().check_complete().is_err());
    }
}
