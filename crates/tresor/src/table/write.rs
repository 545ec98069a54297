//! Mixed writes to one typed table in a single atomic batch ([`Table::write`]).

use serde::{Serialize, de::DeserializeOwned};
use tresor_backend::WriteBatch;

use super::{Table, TypedBatch};
use crate::Error;

impl<V: Serialize + DeserializeOwned + Send + Sync + 'static> Table<'_, V> {
    /// Deletes the records with primary keys `deletes`, then inserts or replaces every value of
    /// `puts`, all in one atomic batch (all or nothing). A put wins over a delete of the same
    /// primary key; a later put wins over an earlier one. Returns how many deleted records
    /// existed.
    ///
    /// # Errors
    /// As [`Table::put_many`] and [`Table::delete_many`].
    pub async fn write(&self, puts: &[V], deletes: &[Vec<u8>]) -> Result<u64, Error> {
        let inner = &self.store.inner;
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        let mut ops = WriteBatch::new();
        let mut batch = TypedBatch::default();
        self.preload(&mut batch, &ring.current, puts, deletes)
            .await?;
        let mut existed = 0;
        for pk in deletes {
            if batch
                .delete(inner, &ring.current, self.def.name, pk, &mut ops)
                .await?
            {
                existed += 1;
            }
        }
        for v in puts {
            batch
                .put(inner, &ring.current, self.def, v, &mut ops)
                .await?;
        }
        if !ops.ops().is_empty() {
            inner.commit_locked(&mut w, ops).await?;
        }
        Ok(existed)
    }
}
