//! [`SqliteView`]: a synchronous read view on a pooled reader connection.

use std::sync::Arc;

use rusqlite::Connection;
use tresor_backend::{BackendError, Direction, Entry, KeyRange, ReadView, validate_table_name};

use crate::backend::Shared;
use crate::error::map_err;
use crate::schema;

/// A read transaction (`BEGIN`, then a first read that fixes the WAL snapshot) on a reader
/// connection taken from the store's pool. Dropping it rolls the transaction back and gives
/// the connection back to the pool.
pub(crate) struct SqliteView {
    /// Always `Some` until dropped.
    conn: Option<Connection>,
    shared: Arc<Shared>,
}

impl SqliteView {
    /// Begins a view on a pooled (or new) reader connection of `shared`.
    pub(crate) fn begin(shared: Arc<Shared>) -> Result<Self, BackendError> {
        let conn = shared.take_reader()?;
        conn.execute_batch("BEGIN").map_err(map_err)?;
        // The first read fixes the WAL snapshot the transaction sees.
        if let Err(err) = conn.query_row("SELECT count(*) FROM tresor_tables", [], |_| Ok(())) {
            // The connection is in a transaction: drop it rather than pool it.
            return Err(map_err(err));
        }
        Ok(Self {
            conn: Some(conn),
            shared,
        })
    }

    fn conn(&self) -> Result<&Connection, BackendError> {
        self.conn
            .as_ref()
            .ok_or_else(|| BackendError::Engine("read view used after close".into()))
    }
}

impl Drop for SqliteView {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && conn.execute_batch("ROLLBACK").is_ok()
        {
            self.shared.give_back_reader(conn);
        }
    }
}

impl ReadView for SqliteView {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        validate_table_name(table)?;
        schema::get(self.conn()?, table, key)
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
        schema::get_many(self.conn()?, table, keys)
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        validate_table_name(table)?;
        if limit == 0 || range.is_empty() {
            return Ok(Vec::new());
        }
        schema::scan(self.conn()?, table, &range, direction, limit)
    }

    fn len(&self, table: &str) -> Result<u64, BackendError> {
        validate_table_name(table)?;
        schema::len(self.conn()?, table)
    }
}
