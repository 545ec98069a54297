//! [`RedbBackend`]: opening a redb file and the [`Backend`] implementation over it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTableMetadata,
    TableDefinition, TableError, TableHandle, WriteTransaction,
};
use tresor_backend::{
    Backend, BackendError, BackendStats, Direction, Durability, Entry, KeyRange, Op, WriteBatch,
    validate_table_name,
};

use crate::error::{map_err, map_io, map_join, map_open_err, open_panicked};

/// The redb type of every backend table: byte-string keys to byte-string values, so that keys
/// sort as unsigned byte strings.
type Def<'a> = TableDefinition<'a, &'static [u8], &'static [u8]>;

/// A read-only view of one backend table.
type ReadTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// A writable view of one backend table inside a write transaction.
type WriteTable<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;

/// A [`Backend`] storing every table in one redb database file.
///
/// Cloning is cheap and shares the open database. The file is closed (and any pending
/// [`Durability::Eventual`] commit made durable) when the last clone is dropped.
///
/// While a `RedbBackend` is alive the file is locked: opening the same path again, from this
/// process or another, fails with [`BackendError::Locked`]. The lock is released when the last
/// clone is dropped *and* no call of it is still running on the blocking pool.
///
/// A damaged file may make redb panic on a read; the panic stays on the blocking pool and the
/// call returns [`BackendError::Engine`].
#[derive(Clone)]
pub struct RedbBackend {
    db: Arc<Database>,
    path: Arc<PathBuf>,
}

impl fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbBackend {
    /// Opens the redb database at `path`, creating the file (and an empty database in it) if it
    /// does not exist. The parent directory must exist.
    ///
    /// Blocks the calling thread on file I/O (and on recovery, after a crash); from async code,
    /// call it inside `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    /// - [`BackendError::Locked`] when the store is already open, by another `RedbBackend` of this
    ///   process or by another process.
    /// - [`BackendError::Corrupted`] when the file exists but is not a redb database, or is
    ///   damaged so that redb fails (or panics) while opening it. Damage in pages the open does
    ///   not read is only found by the reads that reach them.
    /// - [`BackendError::DiskFull`] when there is no room to create or recover the database.
    /// - [`BackendError::Io`] on any other OS error (a missing parent directory, permissions).
    /// - [`BackendError::Engine`] for any other refusal of redb (an old file format, say).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        Self::open_with(path.as_ref(), |path| Database::create(path))
    }

    /// Opens the existing redb database at `path`; never creates a file.
    ///
    /// Blocks the calling thread, as [`RedbBackend::open`].
    ///
    /// # Errors
    /// As [`RedbBackend::open`], and [`BackendError::Io`] of kind
    /// [`std::io::ErrorKind::NotFound`] when no file exists at `path`. An existing but empty file
    /// is [`BackendError::Corrupted`] (it holds no database).
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        Self::open_with(path.as_ref(), |path| Database::open(path))
    }

    /// Opens with `open`, turning a panic of redb into [`BackendError::Corrupted`]: redb trusts a
    /// file that was shut down cleanly and panics on some damaged pages it reads while opening
    /// (it only promises typed errors with its whole-file integrity check, too slow to run on
    /// every open).
    fn open_with(
        path: &Path,
        open: fn(&Path) -> Result<Database, redb::DatabaseError>,
    ) -> Result<Self, BackendError> {
        let db = std::panic::catch_unwind(|| open(path))
            .map_err(|_| open_panicked())?
            .map_err(map_open_err)?;
        Ok(Self {
            db: Arc::new(db),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// The path of the database file, as given to the open call.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the database on tokio's blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, BackendError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(map_join)?
    }
}

/// Opens `table` for reading in `txn`; `None` when it was never written.
fn open_read(txn: &ReadTransaction, table: &str) -> Result<Option<ReadTable>, BackendError> {
    match txn.open_table(Def::new(table)) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(err) => Err(map_err(err)),
    }
}

/// Begins a read transaction and opens `table` in it; `None` when the table was never written.
fn read_table(db: &Database, table: &str) -> Result<Option<ReadTable>, BackendError> {
    let txn = db.begin_read().map_err(map_err)?;
    // The table keeps its transaction alive until it is dropped.
    open_read(&txn, table)
}

/// Borrows the bound's bytes as a slice.
fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    bound.as_ref().map(Vec::as_slice)
}

/// Copies up to `limit` entries of a redb range iterator.
fn collect_entries<'a, I>(iter: I, limit: usize) -> Result<Vec<Entry>, BackendError>
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
    iter.take(limit)
        .map(|item| {
            let (k, v) = item.map_err(map_err)?;
            Ok((k.value().to_vec(), v.value().to_vec()))
        })
        .collect()
}

/// Applies every operation of `ops` inside `txn`, opening each table once.
///
/// A delete in a table that does not exist (and that no earlier put of the batch created) is
/// skipped rather than creating an empty table, so that [`Backend::tables`] lists only tables
/// that hold or have held entries.
fn apply_ops(txn: &WriteTransaction, ops: Vec<Op>) -> Result<(), BackendError> {
    let mut open: HashMap<String, WriteTable<'_>> = HashMap::new();
    // Names of the tables that existed before the batch, listed on the first delete that needs it.
    let mut existing: Option<HashSet<String>> = None;
    for op in ops {
        match op {
            Op::Put { table, key, value } => {
                writable(txn, &mut open, table)?
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(map_err)?;
            }
            Op::Delete { table, key } => {
                if !open.contains_key(&table) {
                    let existing = match &mut existing {
                        Some(names) => names,
                        none => none.insert(
                            txn.list_tables()
                                .map_err(map_err)?
                                .map(|handle| handle.name().to_owned())
                                .collect(),
                        ),
                    };
                    if !existing.contains(&table) {
                        continue;
                    }
                }
                writable(txn, &mut open, table)?
                    .remove(key.as_slice())
                    .map_err(map_err)?;
            }
        }
    }
    Ok(())
}

/// The open table `name` of `open`, opening (or creating) it in `txn` on first use.
fn writable<'o, 'txn>(
    txn: &'txn WriteTransaction,
    open: &'o mut HashMap<String, WriteTable<'txn>>,
    name: String,
) -> Result<&'o mut WriteTable<'txn>, BackendError> {
    use std::collections::hash_map::Entry as Slot;
    match open.entry(name) {
        Slot::Occupied(slot) => Ok(slot.into_mut()),
        Slot::Vacant(slot) => {
            let table = txn.open_table(Def::new(slot.key())).map_err(map_err)?;
            Ok(slot.insert(table))
        }
    }
}

#[async_trait]
impl Backend for RedbBackend {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        validate_table_name(table)?;
        let table = table.to_owned();
        let key = key.to_vec();
        self.blocking(move |db| {
            let Some(t) = read_table(db, &table)? else {
                return Ok(None);
            };
            let value = t.get(key.as_slice()).map_err(map_err)?;
            Ok(value.map(|v| v.value().to_vec()))
        })
        .await
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
        let table = table.to_owned();
        let keys = keys.to_vec();
        self.blocking(move |db| {
            let Some(t) = read_table(db, &table)? else {
                return Ok(vec![None; keys.len()]);
            };
            keys.iter()
                .map(|key| {
                    let value = t.get(key.as_slice()).map_err(map_err)?;
                    Ok(value.map(|v| v.value().to_vec()))
                })
                .collect()
        })
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
        // Answered without a transaction. (redb 4.6 itself returns no entry for an inverted
        // range rather than panicking, but that is not documented, so it is not relied on.)
        if limit == 0 || range.is_empty() {
            return Ok(Vec::new());
        }
        let table = table.to_owned();
        self.blocking(move |db| {
            let Some(t) = read_table(db, &table)? else {
                return Ok(Vec::new());
            };
            let bounds = (as_slice(&range.start), as_slice(&range.end));
            let iter = t.range::<&[u8]>(bounds).map_err(map_err)?;
            match direction {
                Direction::Forward => collect_entries(iter, limit),
                Direction::Reverse => collect_entries(iter.rev(), limit),
            }
        })
        .await
    }

    async fn commit(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        for op in batch.ops() {
            validate_table_name(op.table())?;
        }
        if batch.is_empty() {
            return Ok(());
        }
        let durability = match durability {
            Durability::Eventual => redb::Durability::None,
            // `Immediate`, and any level added later: the strongest is never wrong.
            _ => redb::Durability::Immediate,
        };
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(map_err)?;
            txn.set_durability(durability).map_err(map_err)?;
            // On error the transaction is dropped, which aborts it: nothing is applied.
            apply_ops(&txn, batch.into_ops())?;
            txn.commit().map_err(map_err)
        })
        .await
    }

    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        validate_table_name(table)?;
        let table = table.to_owned();
        self.blocking(move |db| match read_table(db, &table)? {
            Some(t) => t.len().map_err(map_err),
            None => Ok(0),
        })
        .await
    }

    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(map_err)?;
            let mut names: Vec<String> = txn
                .list_tables()
                .map_err(map_err)?
                .map(|handle| handle.name().to_owned())
                .collect();
            names.sort_unstable();
            Ok(names)
        })
        .await
    }

    async fn stats(&self) -> Result<BackendStats, BackendError> {
        let path = Arc::clone(&self.path);
        let file_bytes = tokio::task::spawn_blocking(move || std::fs::metadata(path.as_path()))
            .await
            .map_err(map_join)?
            .map_err(map_io)?
            .len();
        let mut stats = BackendStats::default();
        stats.file_bytes = Some(file_bytes);
        Ok(stats)
    }
}
