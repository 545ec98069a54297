//! Typed tables: application-declared record types with a primary key and secondary indexes.
//!
//! Every typed table shares two catalog tables, so that backup, restore and key rotation
//! handle any typed table without knowing its Rust type:
//!
//! ```text
//! typed_records: table_token(table) ‖ pk_token(table, pk)            → sealed Envelope
//! typed_index:   index_token(table, index) ‖ parts ‖ [pk_token]      → pk_token
//! ```
//!
//! - `table_token = blind("typed/table", table name)`, `pk_token = blind("typed/pk/" ‖ table,
//!   pk)`, `index_token = blind("typed/index", table ‖ 0x00 ‖ index)`: 16 bytes each.
//! - `parts` are the index entry's [`KeyPart`]s, each fixed-width so compound keys are
//!   unambiguous and prefix scans work: [`KeyPart::Id`] → `blind("typed/part/" ‖ table ‖ "/" ‖
//!   index, bytes)` (16 bytes), [`KeyPart::I64`] → `be_u64(v as u64 ^ 1<<63)` (8 bytes, sign
//!   flipped so negatives sort first), [`KeyPart::U64`] → `be_u64(v)` (8 bytes).
//! - A non-unique index key ends with the record's `pk_token` (ties ordered by it); a unique
//!   index key does not, so two records with the same parts collide on one key.
//! - The sealed [`Envelope`] carries the table name, the primary key, every index entry's parts
//!   and the encoded value: rotation and integrity checks recompute every key from it alone.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tresor_crypto::{StoreKeys, TOKEN_LEN, Token};

use crate::catalog::TYPED_RECORDS;
use crate::{SchemaError, codec, sealed};

/// Token domain of typed table names.
pub const DOMAIN_TABLE: &[u8] = b"typed/table";
/// Token domain of typed index names.
pub const DOMAIN_INDEX: &[u8] = b"typed/index";

/// One part of a (possibly compound) index key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyPart {
    /// An identifier: stored as a blinded token (16 bytes). Supports equality only.
    Id(Vec<u8>),
    /// A signed integer that keeps its order (e.g. ms since the Unix epoch): 8 bytes.
    I64(i64),
    /// An unsigned integer that keeps its order (e.g. a sequence number): 8 bytes.
    U64(u64),
}

impl KeyPart {
    /// An identifier part from a string or bytes.
    pub fn id(id: impl AsRef<[u8]>) -> Self {
        KeyPart::Id(id.as_ref().to_vec())
    }
}

/// A secondary index of a [`TableDef`].
#[derive(Debug)]
pub struct IndexDef<V> {
    /// The index name, unique within its table.
    pub name: &'static str,
    /// Whether two records may not share an index key ([`crate::SchemaError`] is not used:
    /// the facade reports `Error::UniqueViolation`).
    pub unique: bool,
    /// The index entries of a value: one `Vec<KeyPart>` per entry. Several entries make a
    /// multi-entry index (e.g. one per alias); none leaves the value out of the index.
    pub keys: fn(&V) -> Vec<Vec<KeyPart>>,
}

/// A typed table: its name, primary key and secondary indexes. Declare one as a `static`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use tresor_schema::typed::{IndexDef, KeyPart, TableDef};
///
/// #[derive(Serialize, Deserialize)]
/// struct Contact { peer_id: String, name: String, aliases: Vec<String>, added_ms: i64 }
///
/// static CONTACTS: TableDef<Contact> = TableDef {
///     name: "contacts",
///     primary_key: |c| c.peer_id.as_bytes().to_vec(),
///     indexes: &[
///         IndexDef { name: "by_alias", unique: true,
///                    keys: |c| c.aliases.iter().map(|a| vec![KeyPart::id(a)]).collect() },
///         IndexDef { name: "by_added", unique: false, keys: |c| vec![vec![KeyPart::I64(c.added_ms)]] },
///     ],
/// };
/// ```
#[derive(Debug)]
pub struct TableDef<V: 'static> {
    /// The table name, unique within a store (at most 200 bytes).
    pub name: &'static str,
    /// The primary key of a value (any bytes; stored only blinded and sealed).
    pub primary_key: fn(&V) -> Vec<u8>,
    /// The secondary indexes.
    pub indexes: &'static [IndexDef<V>],
}

impl<V> TableDef<V> {
    /// The index called `name`, if the table has one.
    pub fn index(&self, name: &str) -> Option<&IndexDef<V>> {
        self.indexes.iter().find(|i| i.name == name)
    }
}

/// One index entry of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryParts {
    /// The index name.
    pub index: String,
    /// Whether the index is unique.
    pub unique: bool,
    /// The entry's key parts.
    pub parts: Vec<KeyPart>,
}

/// The sealed value of a `typed_records` entry: everything needed to recompute its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The typed table's name.
    pub table: String,
    /// The primary key.
    pub pk: Vec<u8>,
    /// Every index entry of the record.
    pub entries: Vec<EntryParts>,
    /// The value, as [`codec::encode`] bytes (a byte string: same encoding as a `u8`
    /// sequence, copied in one piece).
    #[serde(with = "crate::bytes")]
    pub value: Vec<u8>,
}

impl Envelope {
    /// Builds the envelope of `value` in table `def`.
    ///
    /// # Errors
    /// [`SchemaError::Encode`] if the value does not serialize.
    pub fn new<V: Serialize>(def: &TableDef<V>, value: &V) -> Result<Self, SchemaError> {
        let mut entries = Vec::new();
        for index in def.indexes {
            for parts in (index.keys)(value) {
                let e = EntryParts {
                    index: index.name.to_owned(),
                    unique: index.unique,
                    parts,
                };
                if !entries.contains(&e) {
                    entries.push(e);
                }
            }
        }
        Ok(Self {
            table: def.name.to_owned(),
            pk: (def.primary_key)(value),
            entries,
            value: codec::encode(value)?,
        })
    }

    /// Decodes the value.
    ///
    /// # Errors
    /// A decode error if the value is not a `V`.
    pub fn decode<V: DeserializeOwned>(&self) -> Result<V, SchemaError> {
        codec::decode(&self.value)
    }

    /// The record key of this envelope under `keys`.
    pub fn record_key(&self, keys: &StoreKeys) -> Vec<u8> {
        record_key(keys, &self.table, &self.pk)
    }

    /// Every index key of this envelope under `keys`, with its index name, in entry order.
    pub fn index_keys(&self, keys: &StoreKeys) -> Vec<(String, Vec<u8>)> {
        let pk = pk_token(keys, &self.table, &self.pk);
        self.entries
            .iter()
            .map(|e| {
                let mut key = prefix_key(keys, &self.table, &e.index, &e.parts);
                if !e.unique {
                    key.extend_from_slice(&pk);
                }
                (e.index.clone(), key)
            })
            .collect()
    }
}

/// The token of a typed table name.
pub fn table_token(keys: &StoreKeys, table: &str) -> Token {
    keys.index().token(DOMAIN_TABLE, table.as_bytes())
}

/// The token of a primary key of `table`.
pub fn pk_token(keys: &StoreKeys, table: &str, pk: &[u8]) -> Token {
    // The domain `typed/pk/ ‖ table`, joined on the stack for every catalog name.
    crate::joined::with_joined(&[b"typed/pk/", table.as_bytes()], |domain| {
        keys.index().token(domain, pk)
    })
}

/// The record key of primary key `pk` in `table`: `table_token ‖ pk_token` (32 bytes).
pub fn record_key(keys: &StoreKeys, table: &str, pk: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 * TOKEN_LEN);
    key.extend_from_slice(&table_token(keys, table));
    key.extend_from_slice(&pk_token(keys, table, pk));
    key
}

/// The index key prefix of `parts` (leading parts of an entry) in index `index` of `table`:
/// `index_token ‖ encoded parts`.
pub fn prefix_key(keys: &StoreKeys, table: &str, index: &str, parts: &[KeyPart]) -> Vec<u8> {
    let index_id = [table.as_bytes(), &[0], index.as_bytes()].concat();
    let mut key = keys.index().token(DOMAIN_INDEX, &index_id).to_vec();
    let part_domain = [
        b"typed/part/".as_slice(),
        table.as_bytes(),
        b"/",
        index.as_bytes(),
    ]
    .concat();
    for part in parts {
        match part {
            KeyPart::Id(id) => key.extend_from_slice(&keys.index().token(&part_domain, id)),
            KeyPart::I64(v) => key.extend_from_slice(&((*v as u64) ^ (1 << 63)).to_be_bytes()),
            KeyPart::U64(v) => key.extend_from_slice(&v.to_be_bytes()),
        }
    }
    key
}

/// Seals `envelope` as the value of its record key (padded to a Padmé length when `padded`).
///
/// # Errors
/// [`SchemaError::Encode`] or [`SchemaError::Seal`].
pub fn seal_envelope(
    keys: &StoreKeys,
    key: &[u8],
    envelope: &Envelope,
    padded: bool,
) -> Result<Vec<u8>, SchemaError> {
    sealed::seal_with(keys, TYPED_RECORDS, key, envelope, padded)
}

/// Opens a sealed envelope stored under `key`.
///
/// # Errors
/// As [`sealed::open`].
pub fn open_envelope(keys: &StoreKeys, key: &[u8], bytes: &[u8]) -> Result<Envelope, SchemaError> {
    sealed::open(keys, TYPED_RECORDS, key, bytes)
}

/// Parses an index value as the pk token it points to.
///
/// # Errors
/// [`SchemaError::MalformedIndexKey`] if it is not a token.
pub fn index_value(bytes: &[u8]) -> Result<Token, SchemaError> {
    crate::index::token_value(bytes, crate::catalog::TYPED_INDEX)
}

/// Length of a record key (table token ‖ pk token).
pub const RECORD_KEY_LEN: usize = 2 * TOKEN_LEN;

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_crypto::DataKey;

    #[test]
    fn the_pk_domain_is_the_prefix_and_the_table_name() {
        let keys = DataKey::generate().unwrap().store_keys();
        for table in [
            "conversation",
            "t".repeat(71).as_str(),
            "long".repeat(40).as_str(),
        ] {
            let domain = [b"typed/pk/".as_slice(), table.as_bytes()].concat();
            assert_eq!(
                pk_token(&keys, table, b"pk"),
                keys.index().token(&domain, b"pk"),
                "{}",
                table.len()
            );
            let rk = record_key(&keys, table, b"pk");
            assert_eq!(rk.len(), RECORD_KEY_LEN);
            assert_eq!(&rk[TOKEN_LEN..], &pk_token(&keys, table, b"pk")[..]);
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Contact {
        peer: String,
        aliases: Vec<String>,
        at: i64,
    }

    static CONTACTS: TableDef<Contact> = TableDef {
        name: "contacts",
        primary_key: |c| c.peer.as_bytes().to_vec(),
        indexes: &[
            IndexDef {
                name: "alias",
                unique: true,
                keys: |c| c.aliases.iter().map(|a| vec![KeyPart::id(a)]).collect(),
            },
            IndexDef {
                name: "at",
                unique: false,
                keys: |c| vec![vec![KeyPart::I64(c.at)]],
            },
        ],
    };

    #[test]
    fn envelopes_carry_every_entry_and_keys_hide_identifiers() {
        let keys = DataKey::generate().unwrap().store_keys();
        let c = Contact {
            peer: "alice".into(),
            aliases: vec!["al".into(), "ally".into(), "al".into()],
            at: -5,
        };
        let env = Envelope::new(&CONTACTS, &c).unwrap();
        assert_eq!(env.entries.len(), 3, "duplicate alias entries collapse");
        assert_eq!(env.decode::<Contact>().unwrap(), c);
        let ik = env.index_keys(&keys);
        assert_eq!(ik[0].1.len(), 32, "unique: index token ‖ id token");
        assert_eq!(ik[2].1.len(), 16 + 8 + 16, "non-unique: ‖ i64 ‖ pk token");
        for (_, k) in &ik {
            for id in ["alice", "al"] {
                assert!(!k.windows(id.len()).any(|w| w == id.as_bytes()));
            }
        }
        let rk = env.record_key(&keys);
        assert_eq!(rk.len(), RECORD_KEY_LEN);
        let sealed = seal_envelope(&keys, &rk, &env, false).unwrap();
        assert_eq!(open_envelope(&keys, &rk, &sealed).unwrap(), env);
        assert!(open_envelope(&keys, &ik[0].1, &sealed).is_err());
    }

    #[test]
    fn i64_parts_keep_their_order() {
        let keys = DataKey::generate().unwrap().store_keys();
        let vals = [i64::MIN, -2, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        let ks: Vec<_> = vals
            .iter()
            .map(|v| prefix_key(&keys, "t", "i", &[KeyPart::id("x"), KeyPart::I64(*v)]))
            .collect();
        assert!(ks.windows(2).all(|w| w[0] < w[1]));
        let a = prefix_key(&keys, "t", "i", &[KeyPart::U64(1)]);
        let b = prefix_key(&keys, "t", "i", &[KeyPart::U64(256)]);
        assert!(a < b);
        // Other tables and indexes get other prefixes.
        assert_ne!(
            prefix_key(&keys, "t", "i", &[])[..16],
            prefix_key(&keys, "t", "j", &[])[..16]
        );
        assert_ne!(table_token(&keys, "t"), table_token(&keys, "u"));
    }
}
