//! The one typed table under both stores: namespaced, multi-part keys with prefix indexes,
//! and a write transaction that reads its own writes and commits in one atomic batch.
//!
//! A record is an [`Entry`]: a namespace (`"room_state"`, `"olm_session"`, ...), the parts of
//! its key (room id, event type, state key, ...) and a serialized value. Its primary key is
//! the length-prefixed concatenation of namespace and parts; tresor stores it only blinded,
//! and seals the whole entry (parts included) under AAD bound to that key. Three non-unique
//! indexes give the prefix queries the stores need: by namespace, by namespace and first
//! part, by namespace and first two parts. Their keys are blinded tokens too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tresor::typed::{IndexDef, KeyPart, TableDef};
use tresor::{Order, Tresor};

use crate::Error;

/// Index of every entry of a namespace.
const BY_NS: &str = "ns";
/// Index by namespace and first key part.
const BY_P1: &str = "p1";
/// Index by namespace and first two key parts.
const BY_P2: &str = "p2";
/// Entries read per index page.
const PAGE: usize = 512;

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The namespace (one per kind of data).
    pub ns: String,
    /// The parts of the key within the namespace.
    pub parts: Vec<Vec<u8>>,
    /// The value, JSON.
    pub value: Vec<u8>,
}

impl Entry {
    /// Deserializes the value.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.value)?)
    }

    /// Key part `i` as UTF-8.
    pub fn part_str(&self, i: usize) -> Result<&str, Error> {
        let part = self
            .parts
            .get(i)
            .ok_or(Error::Malformed("missing key part"))?;
        std::str::from_utf8(part).map_err(|_| Error::Malformed("key part is not UTF-8"))
    }
}

/// The primary key of `parts` in `ns`: each piece as a 4-byte big-endian length and its bytes.
pub(crate) fn primary_key(ns: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(ns.len() + parts.iter().map(|p| p.len() + 4).sum::<usize>() + 4);
    for piece in std::iter::once(ns.as_bytes()).chain(parts.iter().copied()) {
        // Pieces are ids and small keys, far below 4 GiB.
        out.extend_from_slice(&(piece.len() as u32).to_be_bytes());
        out.extend_from_slice(piece);
    }
    out
}

fn entry_pk(e: &Entry) -> Vec<u8> {
    let parts: Vec<&[u8]> = e.parts.iter().map(Vec::as_slice).collect();
    primary_key(&e.ns, &parts)
}

fn prefix_parts(ns: &str, parts: &[&[u8]]) -> Vec<KeyPart> {
    std::iter::once(KeyPart::id(ns))
        .chain(parts.iter().map(KeyPart::id))
        .collect()
}

/// The matrix table (typed table `matrix`).
pub(crate) static MATRIX: TableDef<Entry> = TableDef {
    name: "matrix",
    primary_key: entry_pk,
    indexes: &[
        IndexDef {
            name: BY_NS,
            unique: false,
            keys: |e| vec![vec![KeyPart::id(&e.ns)]],
        },
        IndexDef {
            name: BY_P1,
            unique: false,
            keys: |e| {
                if e.parts.len() >= 2 {
                    vec![vec![KeyPart::id(&e.ns), KeyPart::id(&e.parts[0])]]
                } else {
                    vec![]
                }
            },
        },
        IndexDef {
            name: BY_P2,
            unique: false,
            keys: |e| {
                if e.parts.len() >= 3 {
                    vec![vec![
                        KeyPart::id(&e.ns),
                        KeyPart::id(&e.parts[0]),
                        KeyPart::id(&e.parts[1]),
                    ]]
                } else {
                    vec![]
                }
            },
        },
    ],
};

/// Reads of the matrix table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kv<'a> {
    store: &'a Tresor,
}

impl<'a> Kv<'a> {
    pub fn new(store: &'a Tresor) -> Self {
        Self { store }
    }

    /// The entry `parts` of `ns`.
    pub async fn get(&self, ns: &str, parts: &[&[u8]]) -> Result<Option<Entry>, Error> {
        Ok(self
            .store
            .table(&MATRIX)
            .get(primary_key(ns, parts))
            .await?)
    }

    /// The value of entry `parts` of `ns`, deserialized.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        ns: &str,
        parts: &[&[u8]],
    ) -> Result<Option<T>, Error> {
        self.get(ns, parts).await?.map(|e| e.decode()).transpose()
    }

    /// Every entry of `ns` whose key starts with `prefix` (0, 1 or 2 parts; entries with more
    /// parts than the prefix), in no particular order.
    pub async fn scan(&self, ns: &str, prefix: &[&[u8]]) -> Result<Vec<Entry>, Error> {
        let index = match prefix.len() {
            0 => BY_NS,
            1 => BY_P1,
            2 => BY_P2,
            _ => return Err(Error::Malformed("prefix of more than two parts")),
        };
        let key = prefix_parts(ns, prefix);
        let table = self.store.table(&MATRIX);
        let mut out: Vec<Entry> = Vec::new();
        loop {
            let after = out.last().map(entry_pk);
            let page = table
                .scan(index, &key, Order::Ascending, PAGE, after.as_deref())
                .await?;
            let full = page.len() == PAGE;
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// Starts a write transaction.
    pub fn txn(&self) -> Txn<'a> {
        Txn {
            kv: *self,
            overlay: BTreeMap::new(),
        }
    }
}

/// A write transaction: reads see its own writes; [`Txn::commit`] writes everything in one
/// atomic batch.
#[derive(Debug)]
pub(crate) struct Txn<'a> {
    kv: Kv<'a>,
    overlay: BTreeMap<Vec<u8>, Option<Entry>>,
}

impl Txn<'_> {
    /// The entry `parts` of `ns`, as this transaction leaves it.
    pub async fn get(&self, ns: &str, parts: &[&[u8]]) -> Result<Option<Entry>, Error> {
        match self.overlay.get(&primary_key(ns, parts)) {
            Some(e) => Ok(e.clone()),
            None => self.kv.get(ns, parts).await,
        }
    }

    /// The value of entry `parts` of `ns`, deserialized, as this transaction leaves it.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        ns: &str,
        parts: &[&[u8]],
    ) -> Result<Option<T>, Error> {
        self.get(ns, parts).await?.map(|e| e.decode()).transpose()
    }

    /// As [`Kv::scan`], as this transaction leaves the table.
    pub async fn scan(&self, ns: &str, prefix: &[&[u8]]) -> Result<Vec<Entry>, Error> {
        let mut found: BTreeMap<Vec<u8>, Entry> = self
            .kv
            .scan(ns, prefix)
            .await?
            .into_iter()
            .map(|e| (entry_pk(&e), e))
            .collect();
        for pk in self.overlay.keys() {
            found.remove(pk);
        }
        for e in self.overlay.values().flatten() {
            if e.ns == ns
                && e.parts.len() > prefix.len()
                && e.parts.iter().zip(prefix).all(|(a, b)| a.as_slice() == *b)
            {
                found.insert(entry_pk(e), e.clone());
            }
        }
        Ok(found.into_values().collect())
    }

    /// Stores `value` (raw bytes) as entry `parts` of `ns`.
    pub fn put_raw(&mut self, ns: &str, parts: &[&[u8]], value: Vec<u8>) {
        let e = Entry {
            ns: ns.to_owned(),
            parts: parts.iter().map(|p| p.to_vec()).collect(),
            value,
        };
        self.overlay.insert(entry_pk(&e), Some(e));
    }

    /// Stores `value` as JSON as entry `parts` of `ns`.
    pub fn put<T: Serialize + ?Sized>(
        &mut self,
        ns: &str,
        parts: &[&[u8]],
        value: &T,
    ) -> Result<(), Error> {
        self.put_raw(ns, parts, serde_json::to_vec(value)?);
        Ok(())
    }

    /// Deletes entry `parts` of `ns`.
    pub fn delete(&mut self, ns: &str, parts: &[&[u8]]) {
        self.overlay.insert(primary_key(ns, parts), None);
    }

    /// Deletes every entry of `ns` under `prefix` (as [`Txn::scan`]).
    pub async fn delete_prefix(&mut self, ns: &str, prefix: &[&[u8]]) -> Result<(), Error> {
        for e in self.scan(ns, prefix).await? {
            self.overlay.insert(entry_pk(&e), None);
        }
        Ok(())
    }

    /// Writes the transaction in one atomic batch.
    pub async fn commit(self) -> Result<(), Error> {
        if self.overlay.is_empty() {
            return Ok(());
        }
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for (pk, e) in self.overlay {
            match e {
                Some(e) => puts.push(e),
                None => deletes.push(pk),
            }
        }
        self.kv.store.table(&MATRIX).write(&puts, &deletes).await?;
        Ok(())
    }
}
