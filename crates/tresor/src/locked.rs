//! One atomic read-modify-write of typed records under the writer lock ([`Locked`]): reads see
//! the batch's own writes, and nothing else writes until it commits or is dropped. Used by
//! operations that must be exactly-once under concurrency (claiming a one-time key, starting a
//! transaction, applying a room event).

use std::ops::Bound;
use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::MutexGuard;
use tresor_backend::{Direction, KeyRange, WriteBatch};
use tresor_schema::catalog::TYPED_INDEX;
use tresor_schema::typed::{KeyPart, TableDef, index_value, prefix_key, record_key, table_token};

use crate::Error;
use crate::keys::Keyring;
use crate::store::{Inner, WriterState};
use crate::table::TypedBatch;

/// A write in progress with the writer lock held. Dropping it writes nothing.
pub(crate) struct Locked<'a> {
    inner: &'a Inner,
    w: MutexGuard<'a, WriterState>,
    ring: Arc<Keyring>,
    batch: TypedBatch,
    ops: WriteBatch,
}

impl<'a> Locked<'a> {
    /// Takes the writer lock (finishing the typed part of a key rotation in progress first).
    pub(crate) async fn begin(inner: &'a Inner) -> Result<Self, Error> {
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        Ok(Self {
            inner,
            w,
            ring,
            batch: TypedBatch::default(),
            ops: WriteBatch::new(),
        })
    }

    /// The record of `def` with primary key `pk`, as this batch leaves it.
    pub(crate) async fn get<V: DeserializeOwned>(
        &mut self,
        def: &'static TableDef<V>,
        pk: &[u8],
    ) -> Result<Option<V>, Error> {
        let keys = &self.ring.current;
        let rk = record_key(keys, def.name, pk);
        match self.batch.load(self.inner, keys, &rk).await? {
            Some(env) if env.table == def.name && env.pk == pk => Ok(Some(env.decode()?)),
            Some(_) => Err(Error::Corrupted(format!(
                "typed record of {} holds another record",
                def.name
            ))),
            None => Ok(None),
        }
    }

    /// Stores `value` in `def` (with its index entries).
    ///
    /// # Errors
    /// [`Error::UniqueViolation`] if a unique entry belongs to another record.
    pub(crate) async fn put<V: Serialize>(
        &mut self,
        def: &'static TableDef<V>,
        value: &V,
    ) -> Result<(), Error> {
        self.batch
            .put(self.inner, &self.ring.current, def, value, &mut self.ops)
            .await?;
        Ok(())
    }

    /// Deletes primary key `pk` of `def`. Returns whether it existed.
    pub(crate) async fn delete<V>(
        &mut self,
        def: &'static TableDef<V>,
        pk: &[u8],
    ) -> Result<bool, Error> {
        self.batch
            .delete(self.inner, &self.ring.current, def.name, pk, &mut self.ops)
            .await
    }

    /// The first record (ascending index order) with an entry under `prefix` in `index` of
    /// `def` that `accept` takes, as this batch leaves the table (records it deleted are
    /// skipped; records it added are not seen). Reads the backend directly: the typed-table
    /// scan may take the writer lock, which is held.
    pub(crate) async fn first<V: DeserializeOwned>(
        &mut self,
        def: &'static TableDef<V>,
        index: &str,
        prefix: &[KeyPart],
        accept: impl Fn(&V) -> bool,
    ) -> Result<Option<V>, Error> {
        let keys = &self.ring.current;
        let p = prefix_key(keys, def.name, index, prefix);
        let table = table_token(keys, def.name);
        let mut range = KeyRange::prefix(&p);
        loop {
            let page = self
                .inner
                .backend
                .scan(TYPED_INDEX, range.clone(), Direction::Forward, 32)
                .await?;
            let Some((last, _)) = page.last() else {
                return Ok(None);
            };
            range.start = Bound::Excluded(last.clone());
            for (_, v) in &page {
                let rk = [table.as_slice(), &index_value(v)?].concat();
                if let Some(env) = self.batch.load(self.inner, keys, &rk).await? {
                    if env.table != def.name {
                        return Err(Error::Corrupted(format!(
                            "index of {} points at another record",
                            def.name
                        )));
                    }
                    let value: V = env.decode()?;
                    if accept(&value) {
                        return Ok(Some(value));
                    }
                }
            }
        }
    }

    /// Commits the batch (nothing if it is empty) and releases the lock.
    pub(crate) async fn commit(mut self) -> Result<(), Error> {
        if !self.ops.ops().is_empty() {
            self.inner.commit_locked(&mut self.w, self.ops).await?;
        }
        Ok(())
    }
}
