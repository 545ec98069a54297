//! Typed tables on the facade: [`Table`] (get/put/delete/scan by index) over
//! `tresor_schema::typed`, and the write overlay shared with other repositories.
//!
//! All typed records live under the current keys only: a key rotation migrates the typed
//! tables first (`rotation.rs`), and any typed read or write during a rotation first completes
//! that part under the writer lock. So typed code never merges two key generations.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};
use tresor_backend::{Direction, KeyRange, WriteBatch};
use tresor_crypto::{StoreKeys, Token};
use tresor_schema::catalog::{TYPED_INDEX, TYPED_RECORDS};
use tresor_schema::typed::{
    Envelope, KeyPart, TableDef, index_value, open_envelope, pk_token, prefix_key, record_key,
    seal_envelope, table_token,
};

use crate::keys::Keyring;
use crate::store::{Inner, WriterState};
use crate::{Error, Tresor};

mod write;

/// The order of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Order {
    /// Ascending key order (oldest first for time parts).
    Ascending,
    /// Descending key order (newest first for time parts).
    #[default]
    Descending,
}

/// A typed table of a [`Tresor`], from [`Tresor::table`].
#[derive(Debug)]
pub struct Table<'a, V: 'static> {
    store: &'a Tresor,
    def: &'static TableDef<V>,
}

impl<V> Clone for Table<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for Table<'_, V> {}

impl Tresor {
    /// The typed table `def` (see `tresor_schema::typed` for declaring one).
    pub fn table<V: Serialize + DeserializeOwned + Send + Sync + 'static>(
        &self,
        def: &'static TableDef<V>,
    ) -> Table<'_, V> {
        Table { store: self, def }
    }
}

/// State of typed records and index entries as a batch being built will leave them.
#[derive(Default)]
pub(crate) struct TypedBatch {
    records: HashMap<Vec<u8>, Option<Envelope>>,
    index: HashMap<Vec<u8>, Option<Token>>,
    /// Where reads go when not the store's backend itself: a batch prepared while the one
    /// before it commits reads through that one (`crate::pending`).
    reads: Option<crate::pending::Reads>,
}

impl TypedBatch {
    /// An empty batch whose reads go through `reads`.
    pub(crate) fn reading(reads: crate::pending::Reads) -> Self {
        Self {
            reads: Some(reads),
            ..Self::default()
        }
    }

    /// The value of `key` in `table`, through `self.reads` if set.
    async fn read(&self, inner: &Inner, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match &self.reads {
            Some(reads) => reads.get(table, key).await,
            None => Ok(inner.backend.get(table, key).await?),
        }
    }

    /// The envelope under record key `rk`, as the batch leaves it.
    pub(crate) async fn load(
        &mut self,
        inner: &Inner,
        keys: &StoreKeys,
        rk: &[u8],
    ) -> Result<Option<Envelope>, Error> {
        if let Some(e) = self.records.get(rk) {
            return Ok(e.clone());
        }
        let found = match self.read(inner, TYPED_RECORDS, rk).await? {
            Some(bytes) => Some(open_envelope(keys, rk, &bytes)?),
            None => None,
        };
        self.records.insert(rk.to_vec(), found.clone());
        Ok(found)
    }

    /// Makes the batch treat record key `rk` as absent (a record that does not open, which a
    /// repair replaces).
    pub(crate) fn assume_absent(&mut self, rk: Vec<u8>) {
        self.records.insert(rk, None);
    }

    /// Reads the records under `rks` not known to the batch yet in one `get_many`.
    pub(crate) async fn preload(
        &mut self,
        inner: &Inner,
        keys: &StoreKeys,
        rks: &[Vec<u8>],
    ) -> Result<(), Error> {
        let mut missing: Vec<Vec<u8>> = rks
            .iter()
            .filter(|rk| !self.records.contains_key(*rk))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let found = match &self.reads {
            Some(reads) => reads.get_many(TYPED_RECORDS, &missing).await?,
            None => inner.backend.get_many(TYPED_RECORDS, &missing).await?,
        };
        self.seed(keys, missing, found)
    }

    /// Takes the stored bytes `found` of the records under `rks` (read by the caller, e.g. in
    /// one read view with other tables) as their state before the batch, unless the batch
    /// already knows a record.
    ///
    /// # Errors
    /// [`Error::Corrupted`] (or a crypto error) when a record does not open.
    pub(crate) fn seed(
        &mut self,
        keys: &StoreKeys,
        rks: Vec<Vec<u8>>,
        found: Vec<Option<Vec<u8>>>,
    ) -> Result<(), Error> {
        for (rk, bytes) in rks.into_iter().zip(found) {
            if self.records.contains_key(&rk) {
                continue;
            }
            let env = match bytes {
                Some(bytes) => Some(open_envelope(keys, &rk, &bytes)?),
                None => None,
            };
            self.records.insert(rk, env);
        }
        Ok(())
    }

    async fn owner(&mut self, inner: &Inner, key: &[u8]) -> Result<Option<Token>, Error> {
        if let Some(o) = self.index.get(key) {
            return Ok(*o);
        }
        Ok(match self.read(inner, TYPED_INDEX, key).await? {
            Some(v) => Some(index_value(&v)?),
            None => None,
        })
    }

    /// Adds the writes that store `value` in `def` to `ops`. Returns false if it was stored
    /// already, unchanged (nothing added).
    pub(crate) async fn put<V: Serialize>(
        &mut self,
        inner: &Inner,
        keys: &StoreKeys,
        def: &'static TableDef<V>,
        value: &V,
        ops: &mut WriteBatch,
    ) -> Result<bool, Error> {
        let env = Envelope::new(def, value)?;
        let rk = env.record_key(keys);
        let pk = pk_token(keys, def.name, &env.pk);
        let old = self.load(inner, keys, &rk).await?;
        if old.as_ref() == Some(&env) {
            return Ok(false);
        }
        let old_keys: Vec<Vec<u8>> = old
            .as_ref()
            .map(|o| o.index_keys(keys).into_iter().map(|(_, k)| k).collect())
            .unwrap_or_default();
        let new_keys = env.index_keys(keys);
        for ((index, key), entry) in new_keys.iter().zip(&env.entries) {
            if entry.unique
                && !old_keys.contains(key)
                && let Some(owner) = self.owner(inner, key).await?
                && owner != pk
            {
                let index = def
                    .indexes
                    .iter()
                    .find(|i| i.name == index)
                    .map_or("", |i| i.name);
                return Err(Error::UniqueViolation {
                    table: def.name,
                    index,
                });
            }
        }
        for k in &old_keys {
            if !new_keys.iter().any(|(_, n)| n == k) {
                ops.delete(TYPED_INDEX, k.clone());
                self.index.insert(k.clone(), None);
            }
        }
        for (_, k) in new_keys {
            if !old_keys.contains(&k) {
                ops.put(TYPED_INDEX, k.clone(), pk.to_vec());
                self.index.insert(k, Some(pk));
            }
        }
        ops.put(
            TYPED_RECORDS,
            rk.clone(),
            seal_envelope(keys, &rk, &env, inner.padded)?,
        );
        self.records.insert(rk, Some(env));
        Ok(true)
    }

    /// Adds the writes that delete primary key `pk` of `table` to `ops`. Returns whether it
    /// existed.
    pub(crate) async fn delete(
        &mut self,
        inner: &Inner,
        keys: &StoreKeys,
        table: &str,
        pk: &[u8],
        ops: &mut WriteBatch,
    ) -> Result<bool, Error> {
        let rk = record_key(keys, table, pk);
        let Some(old) = self.load(inner, keys, &rk).await? else {
            return Ok(false);
        };
        for (_, k) in old.index_keys(keys) {
            ops.delete(TYPED_INDEX, k.clone());
            self.index.insert(k, None);
        }
        ops.delete(TYPED_RECORDS, rk.clone());
        self.records.insert(rk, None);
        Ok(true)
    }
}

impl Inner {
    /// Runs the rotation in progress until the typed tables are migrated (writer lock held).
    pub(crate) async fn finish_typed_rotation_locked(
        &self,
        w: &mut WriterState,
    ) -> Result<(), Error> {
        while crate::rotation::typed_pending(w) {
            self.rotation_step_locked(w, crate::ROTATION_BATCH).await?;
        }
        Ok(())
    }

    /// A keyring whose current keys hold every typed record.
    pub(crate) async fn typed_ring(&self) -> Result<Arc<Keyring>, Error> {
        let ring = self.keyring();
        if ring.previous.is_none() {
            return Ok(ring);
        }
        let mut w = self.writer.lock().await;
        self.finish_typed_rotation_locked(&mut w).await?;
        Ok(self.keyring())
    }
}

fn decode_checked<V: DeserializeOwned>(
    env: &Envelope,
    table: &str,
    pk: Option<&[u8]>,
) -> Result<V, Error> {
    if env.table != table || pk.is_some_and(|pk| pk != env.pk.as_slice()) {
        return Err(Error::Corrupted(format!(
            "typed record of {table} holds another record"
        )));
    }
    Ok(env.decode()?)
}

impl<V: Serialize + DeserializeOwned + Send + Sync + 'static> Table<'_, V> {
    fn inner(&self) -> &Inner {
        &self.store.inner
    }

    /// The store this table belongs to.
    pub(crate) fn store(&self) -> &Tresor {
        self.store
    }

    /// The table's definition.
    pub fn def(&self) -> &'static TableDef<V> {
        self.def
    }

    /// The record with primary key `pk`.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if its record does not open or decode; [`Error::Backend`].
    pub async fn get(&self, pk: impl AsRef<[u8]>) -> Result<Option<V>, Error> {
        let pk = pk.as_ref();
        loop {
            let ring = self.inner().typed_ring().await?;
            let rk = record_key(&ring.current, self.def.name, pk);
            let cache = &self.inner().cache;
            if let Some(env) = cache.get(&rk) {
                return Ok(Some(decode_checked(&env, self.def.name, Some(pk))?));
            }
            let generation = cache.generation();
            let found = self.inner().backend.get(TYPED_RECORDS, &rk).await?;
            if self.inner().keyring().epoch != ring.epoch {
                continue; // a rotation began or ended meanwhile: look again
            }
            return match found {
                Some(bytes) => {
                    let env = open_envelope(&ring.current, &rk, &bytes)?;
                    let value = decode_checked(&env, self.def.name, Some(pk))?;
                    cache.insert(generation, &rk, &env);
                    Ok(Some(value))
                }
                None => Ok(None),
            };
        }
    }

    /// Inserts or replaces `value` (by its primary key), with its index entries, in one atomic
    /// batch. Storing a value equal to the stored one writes nothing.
    ///
    /// # Errors
    /// [`Error::UniqueViolation`] if a unique index entry of `value` belongs to another record
    /// (nothing is written); [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn put(&self, value: &V) -> Result<(), Error> {
        self.put_many(std::slice::from_ref(value)).await
    }

    /// Reads the stored records of `puts` and `deletes` into `batch` in one `get_many` (one
    /// backend call instead of one per record).
    pub(crate) async fn preload(
        &self,
        batch: &mut TypedBatch,
        keys: &StoreKeys,
        puts: &[V],
        deletes: &[Vec<u8>],
    ) -> Result<(), Error> {
        let rks: Vec<Vec<u8>> = puts
            .iter()
            .map(|v| (self.def.primary_key)(v))
            .chain(deletes.iter().cloned())
            .map(|pk| tresor_schema::typed::record_key(keys, self.def.name, &pk))
            .collect();
        batch.preload(self.inner(), keys, &rks).await
    }

    /// Inserts or replaces every value of `values` in one atomic batch: all or nothing. A later
    /// value with the same primary key wins.
    ///
    /// # Errors
    /// As [`Table::put`]; a unique violation between two values of the batch is one too.
    pub async fn put_many(&self, values: &[V]) -> Result<(), Error> {
        let inner = self.inner();
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        let mut ops = WriteBatch::new();
        let mut batch = TypedBatch::default();
        self.preload(&mut batch, &ring.current, values, &[]).await?;
        for v in values {
            batch
                .put(inner, &ring.current, self.def, v, &mut ops)
                .await?;
        }
        if !ops.ops().is_empty() {
            inner.commit_locked(&mut w, ops).await?;
        }
        Ok(())
    }

    /// Deletes the record with primary key `pk` and its index entries. Returns whether it
    /// existed.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`] if the stored record does not open.
    pub async fn delete(&self, pk: impl AsRef<[u8]>) -> Result<bool, Error> {
        let inner = self.inner();
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        let mut ops = WriteBatch::new();
        let existed = TypedBatch::default()
            .delete(inner, &ring.current, self.def.name, pk.as_ref(), &mut ops)
            .await?;
        if existed {
            inner.commit_locked(&mut w, ops).await?;
        }
        Ok(existed)
    }

    /// Reads the record with primary key `pk`, changes it with `change` and stores it, all
    /// under the writer lock (no write interleaves), in one atomic batch. Returns the new
    /// value, or `None` (nothing written) if there is no such record. `change` must keep the
    /// primary key.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if `change` altered the primary key or the record does not open;
    /// as [`Table::put`].
    pub async fn update(
        &self,
        pk: impl AsRef<[u8]>,
        change: impl FnOnce(&mut V) + Send,
    ) -> Result<Option<V>, Error> {
        let pk = pk.as_ref();
        let inner = self.inner();
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        let mut batch = TypedBatch::default();
        let rk = record_key(&ring.current, self.def.name, pk);
        let Some(env) = batch.load(inner, &ring.current, &rk).await? else {
            return Ok(None);
        };
        let mut value: V = decode_checked(&env, self.def.name, Some(pk))?;
        change(&mut value);
        if (self.def.primary_key)(&value) != pk {
            return Err(Error::Corrupted(format!(
                "an update of {} changed the primary key",
                self.def.name
            )));
        }
        let mut ops = WriteBatch::new();
        if batch
            .put(inner, &ring.current, self.def, &value, &mut ops)
            .await?
        {
            inner.commit_locked(&mut w, ops).await?;
        }
        Ok(Some(value))
    }

    /// Deletes the records with primary keys `pks` and their index entries, in one atomic
    /// batch. Returns how many existed.
    ///
    /// # Errors
    /// As [`Table::delete`].
    pub async fn delete_many(&self, pks: &[Vec<u8>]) -> Result<u64, Error> {
        let inner = self.inner();
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        let mut ops = WriteBatch::new();
        let mut batch = TypedBatch::default();
        let mut existed = 0;
        for pk in pks {
            if batch
                .delete(inner, &ring.current, self.def.name, pk, &mut ops)
                .await?
            {
                existed += 1;
            }
        }
        if existed > 0 {
            inner.commit_locked(&mut w, ops).await?;
        }
        Ok(existed)
    }

    /// Up to `limit` records whose entry in index `index` starts with the parts `prefix`, in
    /// `order` of the index key (the rest of the parts, then, for a non-unique index, the
    /// blinded primary key). With `after` (a primary key), the page starts after that
    /// record's entry (its first entry in scan order under `prefix`): walking pages with the
    /// last record's primary key returns every entry once. A record with several entries under
    /// `prefix` (multi-entry index) appears once per entry.
    ///
    /// # Errors
    /// [`Error::UnknownIndex`] if the table has no index `index`; [`Error::CursorNotFound`] if
    /// `after` names no record with an entry under `prefix`; [`Error::Corrupted`];
    /// [`Error::Backend`].
    pub async fn scan(
        &self,
        index: &str,
        prefix: &[KeyPart],
        order: Order,
        limit: usize,
        after: Option<&[u8]>,
    ) -> Result<Vec<V>, Error> {
        let def = self
            .def
            .index(index)
            .ok_or_else(|| Error::UnknownIndex(index.to_owned()))?;
        loop {
            let ring = self.inner().typed_ring().await?;
            let keys = &ring.current;
            let p = prefix_key(keys, self.def.name, def.name, prefix);
            let mut range = KeyRange::prefix(&p);
            let direction = match order {
                Order::Ascending => Direction::Forward,
                Order::Descending => Direction::Reverse,
            };
            if let Some(after) = after {
                let rk = record_key(keys, self.def.name, after);
                let bytes = self
                    .inner()
                    .backend
                    .get(TYPED_RECORDS, &rk)
                    .await?
                    .ok_or(Error::CursorNotFound)?;
                let env = open_envelope(keys, &rk, &bytes)?;
                let mut mine: Vec<Vec<u8>> = env
                    .index_keys(keys)
                    .into_iter()
                    .filter(|(i, k)| i == def.name && k.starts_with(&p))
                    .map(|(_, k)| k)
                    .collect();
                mine.sort();
                let at = match order {
                    Order::Ascending => mine.first(),
                    Order::Descending => mine.last(),
                }
                .ok_or(Error::CursorNotFound)?
                .clone();
                match order {
                    Order::Ascending => range.start = std::ops::Bound::Excluded(at),
                    Order::Descending => range.end = std::ops::Bound::Excluded(at),
                }
            }
            let page = self
                .inner()
                .backend
                .scan(TYPED_INDEX, range, direction, limit)
                .await?;
            let table = table_token(keys, self.def.name);
            let rks: Vec<Vec<u8>> = page
                .iter()
                .map(|(_, v)| Ok([table.as_slice(), &index_value(v)?].concat()))
                .collect::<Result<_, Error>>()?;
            let cache = &self.inner().cache;
            let generation = cache.generation();
            let cached: Vec<Option<Envelope>> = rks.iter().map(|rk| cache.get(rk)).collect();
            let missing: Vec<Vec<u8>> = rks
                .iter()
                .zip(&cached)
                .filter(|(_, c)| c.is_none())
                .map(|(rk, _)| rk.clone())
                .collect();
            let mut fetched = self
                .inner()
                .backend
                .get_many(TYPED_RECORDS, &missing)
                .await?
                .into_iter();
            if self.inner().keyring().epoch != ring.epoch {
                continue;
            }
            let mut out = Vec::with_capacity(rks.len());
            for (rk, cached) in rks.iter().zip(cached) {
                let env = match cached {
                    Some(env) => env,
                    // A record deleted between the index scan and the lookup is skipped.
                    None => match fetched.next().flatten() {
                        Some(bytes) => {
                            let env = open_envelope(keys, rk, &bytes)?;
                            cache.insert(generation, rk, &env);
                            env
                        }
                        None => continue,
                    },
                };
                out.push(decode_checked(&env, self.def.name, None)?);
            }
            return Ok(out);
        }
    }

    /// Up to `limit` records of the table in primary-key *token* order (an order that reveals
    /// nothing, stable while the data key is), after the record with primary key `after`.
    ///
    /// # Errors
    /// [`Error::Corrupted`]; [`Error::Backend`].
    pub async fn list(&self, limit: usize, after: Option<&[u8]>) -> Result<Vec<V>, Error> {
        loop {
            let ring = self.inner().typed_ring().await?;
            let keys = &ring.current;
            let table = table_token(keys, self.def.name);
            let mut range = KeyRange::prefix(&table);
            if let Some(after) = after {
                range.start = std::ops::Bound::Excluded(record_key(keys, self.def.name, after));
            }
            let page = self
                .inner()
                .backend
                .scan(TYPED_RECORDS, range, Direction::Forward, limit)
                .await?;
            if self.inner().keyring().epoch != ring.epoch {
                continue;
            }
            return page
                .iter()
                .map(|(k, v)| decode_checked(&open_envelope(keys, k, v)?, self.def.name, None))
                .collect();
        }
    }
}
