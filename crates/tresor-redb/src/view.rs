//! [`RedbView`]: one redb read transaction read as a [`ReadView`], the only place where the
//! reads of a redb store check their arguments.

use std::sync::{Arc, RwLock};

use redb::{ReadTransaction, ReadableDatabase};
use tresor_backend::{
    BackendError, Direction, Entry, KeyRange, LendView, ReadView, validate_table_name,
};

use crate::error::{map_err, poisoned};
use crate::read;

/// A consistent view of a redb store: one redb read transaction. It pins the pages it sees
/// until dropped (space freed by later commits is reused only after), and makes compaction
/// report `Busy`.
///
/// It serves every read: a synchronous [`ReadView`] (each read on the calling thread), a
/// snapshot (wrapped in [`tresor_backend::BlockingSnapshot`]: each read on tokio's blocking
/// pool), and each read call of [`crate::RedbBackend`] (a view of its own lent by
/// [`FreshViews`], on the blocking pool).
pub(crate) struct RedbView {
    txn: ReadTransaction,
}

impl RedbView {
    pub(crate) fn new(txn: ReadTransaction) -> Self {
        Self { txn }
    }

    /// The read transaction.
    pub(crate) fn txn(&self) -> &ReadTransaction {
        &self.txn
    }
}

impl ReadView for RedbView {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        validate_table_name(table)?;
        read::get(&self.txn, table, key)
    }

    fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        validate_table_name(table)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        read::get_many(&self.txn, table, keys)
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        validate_table_name(table)?;
        // `read::scan` answers `limit == 0` and empty ranges without touching the tree.
        read::scan(&self.txn, table, &range, direction, limit)
    }

    fn len(&self, table: &str) -> Result<u64, BackendError> {
        validate_table_name(table)?;
        read::len(&self.txn, table)
    }

    fn tables(&self) -> Result<Vec<String>, BackendError> {
        read::tables(&self.txn)
    }
}

/// Lends each read a view of a fresh read transaction of the database, holding the read side
/// of the database lock for the whole read (so that compaction, which takes the write side,
/// waits for the read instead of finding its transaction alive).
#[derive(Clone)]
pub(crate) struct FreshViews(pub(crate) Arc<RwLock<crate::db::Db>>);

impl LendView for FreshViews {
    type View = RedbView;

    fn with_view<T>(
        &self,
        read: impl FnOnce(&RedbView) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let db = self.0.read().map_err(poisoned)?;
        let view = RedbView::new(db.begin_read().map_err(map_err)?);
        read(&view)
    }
}
