//! The SQL layout: one SQL table per tresor table, a registry with entry counts, and the reads
//! shared by plain calls and snapshots (each inside one SQLite read transaction).

use std::ops::Bound;

use rusqlite::{Connection, OptionalExtension, params};
use tresor_backend::{BackendError, Direction, Entry, KeyRange};

use crate::error::map_err;

/// Creates the registry: every tresor table that was ever written, with its entry count (kept
/// up to date by every write, in the same transaction).
pub(crate) const CREATE_REGISTRY: &str = "CREATE TABLE IF NOT EXISTS tresor_tables (
    name TEXT PRIMARY KEY NOT NULL,
    entries INTEGER NOT NULL
) WITHOUT ROWID";

/// The quoted SQL name of tresor table `table` (already validated: `[a-z0-9_]{1,64}`, so the
/// quoting is only against keywords).
pub(crate) fn sql_table(table: &str) -> String {
    format!("\"t_{table}\"")
}

/// The statement creating the SQL table of `table`. Keys and values are BLOBs; SQLite compares
/// BLOBs with `memcmp`, shorter first on a common prefix: exactly `[u8]`'s `Ord`.
pub(crate) fn create_table(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL) WITHOUT ROWID",
        sql_table(table)
    )
}

/// Whether tresor table `table` exists.
pub(crate) fn exists(conn: &Connection, table: &str) -> Result<bool, BackendError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM tresor_tables WHERE name = ?1")
        .map_err(map_err)?
        .query_row([table], |_| Ok(()))
        .optional()
        .map_err(map_err)?
        .is_some())
}

/// The value of `key` in `table`.
pub(crate) fn get(
    conn: &Connection,
    table: &str,
    key: &[u8],
) -> Result<Option<Vec<u8>>, BackendError> {
    if !exists(conn, table)? {
        return Ok(None);
    }
    get_in(conn, table, key)
}

/// The value of `key` in the existing `table`.
pub(crate) fn get_in(
    conn: &Connection,
    table: &str,
    key: &[u8],
) -> Result<Option<Vec<u8>>, BackendError> {
    let sql = format!("SELECT v FROM {} WHERE k = ?1", sql_table(table));
    conn.prepare_cached(&sql)
        .map_err(map_err)?
        .query_row([key], |row| row.get(0))
        .optional()
        .map_err(map_err)
}

/// The values of `keys` in `table`, in request order.
pub(crate) fn get_many(
    conn: &Connection,
    table: &str,
    keys: &[Vec<u8>],
) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
    if !exists(conn, table)? {
        return Ok(vec![None; keys.len()]);
    }
    keys.iter().map(|k| get_in(conn, table, k)).collect()
}

/// Up to `limit` entries of `table` in `range`, in `direction`.
pub(crate) fn scan(
    conn: &Connection,
    table: &str,
    range: &KeyRange,
    direction: Direction,
    limit: usize,
) -> Result<Vec<Entry>, BackendError> {
    if limit == 0 || range.is_empty() || !exists(conn, table)? {
        return Ok(Vec::new());
    }
    let mut clauses = Vec::new();
    let mut args: Vec<&[u8]> = Vec::new();
    match &range.start {
        Bound::Included(s) => {
            args.push(s);
            clauses.push(format!("k >= ?{}", args.len()));
        }
        Bound::Excluded(s) => {
            args.push(s);
            clauses.push(format!("k > ?{}", args.len()));
        }
        Bound::Unbounded => {}
    }
    match &range.end {
        Bound::Included(e) => {
            args.push(e);
            clauses.push(format!("k <= ?{}", args.len()));
        }
        Bound::Excluded(e) => {
            args.push(e);
            clauses.push(format!("k < ?{}", args.len()));
        }
        Bound::Unbounded => {}
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let order = match direction {
        Direction::Forward => "ASC",
        Direction::Reverse => "DESC",
    };
    // A negative LIMIT is "no limit" in SQLite.
    let limit = i64::try_from(limit).unwrap_or(-1);
    let sql = format!(
        "SELECT k, v FROM {} {filter} ORDER BY k {order} LIMIT {limit}",
        sql_table(table)
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .map_err(map_err)?;
    rows.map(|r| r.map_err(map_err)).collect()
}

/// Entry count of `table`, from the registry: O(log tables), no scan.
pub(crate) fn len(conn: &Connection, table: &str) -> Result<u64, BackendError> {
    let n: Option<i64> = conn
        .prepare_cached("SELECT entries FROM tresor_tables WHERE name = ?1")
        .map_err(map_err)?
        .query_row([table], |row| row.get(0))
        .optional()
        .map_err(map_err)?;
    Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// Every table with its entry count, ascending by name (ASCII names: SQLite's BINARY
/// collation orders them as Rust does).
pub(crate) fn table_entries(conn: &Connection) -> Result<Vec<(String, u64)>, BackendError> {
    let mut stmt = conn
        .prepare_cached("SELECT name, entries FROM tresor_tables ORDER BY name")
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![], |row| {
            let n: i64 = row.get(1)?;
            Ok((row.get(0)?, u64::try_from(n).unwrap_or(0)))
        })
        .map_err(map_err)?;
    rows.map(|r| r.map_err(map_err)).collect()
}
