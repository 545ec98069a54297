//! Reads inside one redb read transaction, shared by [`crate::RedbBackend`] and its snapshots.

use std::ops::Bound;

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTableMetadata, TableDefinition, TableError, TableHandle,
};
use tresor_backend::{BackendError, Direction, KeyRange};

use crate::error::map_err;

/// The redb type of every backend table: byte-string keys to byte-string values, so that keys
/// sort as unsigned byte strings.
pub(crate) type Def<'a> = TableDefinition<'a, &'static [u8], &'static [u8]>;

/// A read-only view of one backend table.
pub(crate) type ReadTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Opens `table` for reading in `txn`; `None` when it was never written.
pub(crate) fn open_read(
    txn: &ReadTransaction,
    table: &str,
) -> Result<Option<ReadTable>, BackendError> {
    match txn.open_table(Def::new(table)) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(err) => Err(map_err(err)),
    }
}

/// Borrows the bound's bytes as a slice.
fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    bound.as_ref().map(Vec::as_slice)
}

/// The value of `key` in the table `t` (`None`: a table never written).
pub(crate) fn get_in(t: Option<&ReadTable>, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
    let Some(t) = t else {
        return Ok(None);
    };
    let value = t.get(key).map_err(map_err)?;
    Ok(value.map(|v| v.value().to_vec()))
}

/// The values of `keys` in the table `t` (`None`: a table never written), in request order.
pub(crate) fn get_many_in(
    t: Option<&ReadTable>,
    keys: &[Vec<u8>],
) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
    let Some(t) = t else {
        return Ok(vec![None; keys.len()]);
    };
    keys.iter()
        .map(|key| {
            let value = t.get(key.as_slice()).map_err(map_err)?;
            Ok(value.map(|v| v.value().to_vec()))
        })
        .collect()
}

/// Lends up to `limit` entries of the table `t` (`None`: a table never written) in `range`, in
/// `direction`, to `visit` from redb's page (no copy); stops when `visit` returns false.
/// Returns the entries visited. The caller has answered `limit == 0` and empty ranges
/// (`RedbView::scan_each`).
pub(crate) fn scan_each_in(
    t: Option<&ReadTable>,
    range: &KeyRange,
    direction: Direction,
    limit: usize,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<usize, BackendError> {
    let Some(t) = t else {
        return Ok(0);
    };
    let bounds = (as_slice(&range.start), as_slice(&range.end));
    let iter = t.range::<&[u8]>(bounds).map_err(map_err)?;
    match direction {
        Direction::Forward => visit_entries(iter, limit, visit),
        Direction::Reverse => visit_entries(iter.rev(), limit, visit),
    }
}

/// Lends up to `limit` entries of `iter` to `visit`, until it returns false.
fn visit_entries<'a, I>(
    iter: I,
    limit: usize,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<usize, BackendError>
where
    I: Iterator<
        Item = Result<
            (
                redb::AccessGuard<'a, &'static [u8]>,
                redb::AccessGuard<'a, &'static [u8]>,
            ),
            redb::StorageError,
        >,
    >,
{
    let mut visited = 0;
    for item in iter.take(limit) {
        let (k, v) = item.map_err(map_err)?;
        visited += 1;
        if !visit(k.value(), v.value()) {
            break;
        }
    }
    Ok(visited)
}

/// Entry count of `table`: O(1), redb keeps it in the B-tree's root header (redb 4.6,
/// `BtreeHeader::length`).
pub(crate) fn len(txn: &ReadTransaction, table: &str) -> Result<u64, BackendError> {
    len_in(open_read(txn, table)?.as_ref())
}

/// Entry count of the table `t` (`None`: a table never written), O(1).
pub(crate) fn len_in(t: Option<&ReadTable>) -> Result<u64, BackendError> {
    match t {
        Some(t) => t.len().map_err(map_err),
        None => Ok(0),
    }
}

/// Names of every table, ascending.
pub(crate) fn tables(txn: &ReadTransaction) -> Result<Vec<String>, BackendError> {
    let mut names: Vec<String> = txn
        .list_tables()
        .map_err(map_err)?
        .map(|handle| handle.name().to_owned())
        // The commit log's internal table is not a backend table.
        .filter(|name| name != crate::log::ID_TABLE)
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// Every table with its entry count, ascending: O(tables).
pub(crate) fn table_entries(txn: &ReadTransaction) -> Result<Vec<(String, u64)>, BackendError> {
    tables(txn)?
        .into_iter()
        .map(|name| {
            let n = len(txn, &name)?;
            Ok((name, n))
        })
        .collect()
}
