//! [`SqliteSnapshot`]: a read transaction held open on a connection of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::Connection;
use tresor_backend::{BackendError, Direction, Entry, KeyRange, Snapshot, validate_table_name};

use crate::error::{map_join, poisoned};
use crate::schema;

/// A consistent view of an SQLite store: a connection inside `BEGIN` whose first read fixed the
/// WAL snapshot it sees. Dropping it closes the connection (ending the transaction).
pub(crate) struct SqliteSnapshot {
    conn: Arc<Mutex<Connection>>,
    /// The store's count of live snapshots, decremented on drop.
    live: Arc<AtomicUsize>,
}

impl SqliteSnapshot {
    /// Wraps `conn`, already inside its read transaction; counts itself in `live`.
    pub(crate) fn new(conn: Connection, live: Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Self {
            conn: Arc::new(Mutex::new(conn)),
            live,
        }
    }

    /// Runs `f` with the connection on tokio's blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, BackendError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().map_err(poisoned)?;
            f(&conn)
        })
        .await
        .map_err(map_join)?
    }
}

impl Drop for SqliteSnapshot {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Snapshot for SqliteSnapshot {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        validate_table_name(table)?;
        let (table, key) = (table.to_owned(), key.to_vec());
        self.blocking(move |c| schema::get(c, &table, &key)).await
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        validate_table_name(table)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (table, keys) = (table.to_owned(), keys.to_vec());
        self.blocking(move |c| schema::get_many(c, &table, &keys))
            .await
    }

    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        validate_table_name(table)?;
        let table = table.to_owned();
        self.blocking(move |c| schema::scan(c, &table, &range, direction, limit))
            .await
    }

    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        validate_table_name(table)?;
        let table = table.to_owned();
        self.blocking(move |c| schema::len(c, &table)).await
    }

    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.blocking(|c| {
            Ok(schema::table_entries(c)?
                .into_iter()
                .map(|(name, _)| name)
                .collect())
        })
        .await
    }
}
