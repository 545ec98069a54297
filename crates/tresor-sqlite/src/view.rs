//! [`SqliteView`]: a read transaction read as a [`ReadView`], the only place where the reads of
//! an SQLite store check their arguments.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tresor_backend::{
    BackendError, Direction, Entry, KeyRange, LendView, ReadView, validate_table_name,
};

use crate::backend::Shared;
use crate::error::{map_err, poisoned};
use crate::schema;

/// Where the connection of a [`SqliteView`] goes when the view is dropped.
enum Home {
    /// A pooled reader connection of the store: rolled back and given back to the pool.
    Pool(Arc<Shared>),
    /// A snapshot's own connection, counted in the store's live snapshots (compaction refuses
    /// while any is alive): closed, which ends the transaction. It does not hold the store
    /// open.
    Snapshot(Arc<AtomicUsize>),
}

/// A read transaction (`BEGIN`, then, for a view taken ahead of its reads, a first read that
/// fixes the WAL snapshot) on a reader connection.
///
/// It serves every read: a synchronous [`ReadView`] and each read call of
/// [`crate::SqliteBackend`] (on a pooled connection, lent by [`PooledViews`]), and a snapshot (on a connection of its
/// own, wrapped in [`tresor_backend::BlockingSnapshot`]: each read on tokio's blocking pool).
/// The connection sits behind a lock so that a snapshot's reads may be in flight on several
/// threads (they take turns); the lock is never contended otherwise.
pub(crate) struct SqliteView {
    /// Always `Some` until dropped.
    conn: Mutex<Option<Connection>>,
    home: Home,
}

impl SqliteView {
    /// Begins a view on a pooled (or new) reader connection of `shared`; with `pin`, fixes the
    /// WAL snapshot it sees now rather than at its first read.
    pub(crate) fn pooled(shared: Arc<Shared>, pin: bool) -> Result<Self, BackendError> {
        let conn = shared.take_reader()?;
        Self::begin(conn, Home::Pool(shared), pin)
    }

    /// Begins a snapshot on `conn`, a reader connection of its own, counted in `live` until
    /// dropped.
    pub(crate) fn snapshot(conn: Connection, live: Arc<AtomicUsize>) -> Result<Self, BackendError> {
        live.fetch_add(1, Ordering::SeqCst);
        Self::begin(conn, Home::Snapshot(live), true)
    }

    /// Opens the read transaction on `conn`; on failure the drop of the half-built view
    /// cleans up (a connection whose rollback fails is closed, not pooled).
    fn begin(conn: Connection, home: Home, pin: bool) -> Result<Self, BackendError> {
        let view = Self {
            conn: Mutex::new(Some(conn)),
            home,
        };
        view.with_conn(|conn| {
            conn.execute_batch("BEGIN").map_err(map_err)?;
            if pin {
                // The first read fixes the WAL snapshot the transaction sees.
                conn.query_row("SELECT count(*) FROM tresor_tables", [], |_| Ok(()))
                    .map_err(map_err)?;
            }
            Ok(())
        })?;
        Ok(view)
    }

    /// Runs `f` with the connection.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let guard = self.conn.lock().map_err(poisoned)?;
        let conn = guard
            .as_ref()
            .ok_or_else(|| BackendError::Engine("read view used after close".into()))?;
        f(conn)
    }

    /// Every table with its entry count, ascending.
    pub(crate) fn table_entries(&self) -> Result<Vec<(String, u64)>, BackendError> {
        self.with_conn(schema::table_entries)
    }
}

impl Drop for SqliteView {
    fn drop(&mut self) {
        let conn = match self.conn.get_mut() {
            Ok(conn) => conn.take(),
            // A read panicked with the lock held: close the connection.
            Err(_) => None,
        };
        match &self.home {
            Home::Pool(shared) => {
                if let Some(conn) = conn
                    && conn.execute_batch("ROLLBACK").is_ok()
                {
                    shared.give_back_reader(conn);
                }
            }
            Home::Snapshot(live) => {
                drop(conn);
                live.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

impl ReadView for SqliteView {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        validate_table_name(table)?;
        self.with_conn(|conn| schema::get(conn, table, key))
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
        self.with_conn(|conn| schema::get_many(conn, table, keys))
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        validate_table_name(table)?;
        // `schema::scan` answers `limit == 0` and empty ranges without a query.
        self.with_conn(|conn| schema::scan(conn, table, &range, direction, limit))
    }

    fn len(&self, table: &str) -> Result<u64, BackendError> {
        validate_table_name(table)?;
        self.with_conn(|conn| schema::len(conn, table))
    }

    fn tables(&self) -> Result<Vec<String>, BackendError> {
        Ok(self
            .table_entries()?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }
}

/// Lends each read a view of a read transaction of its own on a pooled reader connection (not
/// pinned: its first statement fixes what it sees), rolled back and pooled again after it.
#[derive(Clone)]
pub(crate) struct PooledViews(pub(crate) Arc<Shared>);

impl LendView for PooledViews {
    type View = SqliteView;

    fn with_view<T>(
        &self,
        read: impl FnOnce(&SqliteView) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        read(&SqliteView::pooled(Arc::clone(&self.0), false)?)
    }
}
