//! [`RedbView`]: one redb read transaction read as a [`ReadView`], the only place where the
//! reads of a redb store check their arguments.

use std::sync::{Arc, PoisonError, RwLock};

use redb::ReadTransaction;
use tresor_backend::{
    BackendError, Direction, Entry, KeyRange, LendView, ReadView, validate_table_name,
};

use crate::error::poisoned;
use crate::read::{self, ReadTable};

/// A consistent view of a redb store: one redb read transaction. It pins the pages it sees
/// until its last clone is dropped (space freed by later commits is reused only after), and
/// makes compaction report `Busy`.
///
/// A clone is a handle to the same transaction (an `Arc`): the database lends the same view to
/// every read that begins before the next commit (`Db::latest_view`), so a read pays neither
/// for beginning a transaction nor, after the first read of a table, for opening it. Each
/// table is opened once per view, on its first read, and kept open with its root page.
///
/// It serves every read: a synchronous [`ReadView`] (each read on the calling thread), a
/// snapshot (wrapped in [`tresor_backend::BlockingSnapshot`]: each read on tokio's blocking
/// pool), and each read call of [`crate::RedbBackend`] (lent by [`LatestViews`], on the
/// blocking pool).
#[derive(Clone)]
pub(crate) struct RedbView(Arc<Inner>);

struct Inner {
    txn: ReadTransaction,
    /// The tables opened so far, with their (valid) names; `None` for a table this snapshot
    /// does not have. A list, searched in order: a store has a few dozen tables at most, and
    /// comparing short names costs less than hashing one (callgrind, session 9).
    open: RwLock<OpenTables>,
}

/// The tables a view has opened: each valid name with its table, `None` for a table the
/// snapshot does not have.
type OpenTables = Vec<(Box<str>, Option<Arc<ReadTable>>)>;

impl RedbView {
    pub(crate) fn new(txn: ReadTransaction) -> Self {
        Self(Arc::new(Inner {
            txn,
            open: RwLock::new(Vec::new()),
        }))
    }

    /// The read transaction.
    pub(crate) fn txn(&self) -> &ReadTransaction {
        &self.0.txn
    }

    /// `table`, opened on its first read in this view; `None` when the snapshot has no such
    /// table. The name is checked ([`validate_table_name`]) when the table is first opened:
    /// a name already in the list was valid then.
    ///
    /// # Errors
    /// [`BackendError::InvalidTableName`] for a name outside the rule; when redb cannot open
    /// the table (an I/O error, a damaged table tree).
    fn table(&self, table: &str) -> Result<Option<Arc<ReadTable>>, BackendError> {
        // The list only ever gains entries, each complete when inserted: a poisoned lock (a
        // panic elsewhere while holding it) leaves it consistent, so it is used as is.
        if let Some(t) = find(
            &self.0.open.read().unwrap_or_else(PoisonError::into_inner),
            table,
        ) {
            return Ok(t);
        }
        validate_table_name(table)?;
        let opened = read::open_read(&self.0.txn, table)?.map(Arc::new);
        let mut open = self.0.open.write().unwrap_or_else(PoisonError::into_inner);
        // Another read may have opened it meanwhile: either copy serves, keep the first.
        if let Some(t) = find(&open, table) {
            return Ok(t);
        }
        open.push((table.into(), opened.clone()));
        Ok(opened)
    }
}

/// The entry for `table` in `open`, if any.
fn find(open: &OpenTables, table: &str) -> Option<Option<Arc<ReadTable>>> {
    open.iter()
        .find(|(name, _)| &**name == table)
        .map(|(_, t)| t.clone())
}

impl ReadView for RedbView {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        read::get_in(self.table(table)?.as_deref(), key)
    }

    fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        if keys.is_empty() {
            // Still an error for a name outside the rule, as with keys.
            validate_table_name(table)?;
            return Ok(Vec::new());
        }
        read::get_many_in(self.table(table)?.as_deref(), keys)
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        let mut entries = Vec::new();
        self.scan_each(table, range, direction, limit, &mut |k, v| {
            entries.push((k.to_vec(), v.to_vec()));
            true
        })?;
        Ok(entries)
    }

    fn scan_each(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<usize, BackendError> {
        // Answered without opening the table or touching the tree. (redb 4.6 itself returns no
        // entry for an inverted range rather than panicking, but that is not documented, so it
        // is not relied on.)
        if limit == 0 || range.is_empty() {
            validate_table_name(table)?;
            return Ok(0);
        }
        read::scan_each_in(
            self.table(table)?.as_deref(),
            &range,
            direction,
            limit,
            visit,
        )
    }

    fn len(&self, table: &str) -> Result<u64, BackendError> {
        read::len_in(self.table(table)?.as_deref())
    }

    fn tables(&self) -> Result<Vec<String>, BackendError> {
        read::tables(&self.0.txn)
    }
}

/// Lends each read the database's latest view (`Db::latest_view`: the view of the latest
/// commit, shared by every read until the next commit), holding the read side of the database
/// lock for the whole read (so that compaction, which takes the write side, waits for the read
/// instead of finding its transaction alive).
#[derive(Clone)]
pub(crate) struct LatestViews(pub(crate) Arc<RwLock<crate::db::Db>>);

impl LendView for LatestViews {
    type View = RedbView;

    fn with_view<T>(
        &self,
        read: impl FnOnce(&RedbView) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let db = self.0.read().map_err(poisoned)?;
        let view = db.latest_view()?;
        read(&view)
    }
}
