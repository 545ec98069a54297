//! [`SqliteBackend`]: opening an SQLite file and the [`Backend`] implementation over it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;
use tresor_backend::{
    Backend, BackendError, BackendStats, BlockingReads, BlockingSnapshot, CompactReport, Direction,
    Durability, Entry, KeyRange, ReadView, Snapshot, WriteBatch, run_blocking,
};

use crate::error::{PANICKED, map_err, map_io, poisoned};
use crate::schema;
use crate::view::{PooledViews, SqliteView};
use crate::writer::{Context, Request, Writer, file_bytes};

/// How long a connection waits for a lock held by another connection of the store (a
/// checkpoint, say) before failing with `Busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle read connections kept for reuse.
const MAX_IDLE_READERS: usize = 8;

/// A [`Backend`] storing every table in one SQLite database file (WAL mode), through the
/// bundled SQLite of `rusqlite`.
///
/// Cloning is cheap and shares the open store. The store is closed when the last clone is
/// dropped: that drop waits for the writer thread to finish the queued commits and close its
/// connection, which checkpoints the write-ahead log into the database file.
///
/// The file is locked (`flock`, exclusive) while open: opening it again, from this process or
/// another, fails with [`BackendError::Locked`].
pub struct SqliteBackend {
    shared: Arc<Shared>,
}

impl Clone for SqliteBackend {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// What the clones share. Field order is drop order: readers close first, so that the writer's
/// connection is the last one and checkpoints the log; the file lock goes last.
pub(crate) struct Shared {
    readers: Mutex<Vec<Connection>>,
    writer: Writer,
    snapshots: Arc<AtomicUsize>,
    path: PathBuf,
    _lock: File,
}

impl Shared {
    /// An idle reader connection from the pool, or a new one.
    pub(crate) fn take_reader(&self) -> Result<Connection, BackendError> {
        let pooled = self.readers.lock().map_err(poisoned)?.pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => connect_reader(&self.path),
        }
    }

    /// Returns a reader connection (outside any transaction) to the pool, or closes it when
    /// the pool is full.
    pub(crate) fn give_back_reader(&self, conn: Connection) {
        if let Ok(mut idle) = self.readers.lock()
            && idle.len() < MAX_IDLE_READERS
        {
            idle.push(conn);
        }
    }
}

impl fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

/// Takes the exclusive lock of the store at `path` (creating the file when `create`).
fn lock(path: &Path, create: bool) -> Result<File, BackendError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(map_io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BackendError::Locked),
        Err(std::fs::TryLockError::Error(err)) => Err(map_io(err)),
    }
}

/// Opens a connection to the store at `path` (which exists) with the store's settings.
fn connect(path: &Path) -> Result<Connection, BackendError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
    Ok(conn)
}

/// A connection for reads only.
fn connect_reader(path: &Path) -> Result<Connection, BackendError> {
    let conn = connect(path)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(map_err)?;
    Ok(conn)
}

impl SqliteBackend {
    /// Opens the SQLite store at `path`, creating the file if it does not exist (the parent
    /// directory must exist). Switches it to WAL mode and starts the writer thread.
    ///
    /// Blocks the calling thread on file I/O; from async code, call it inside
    /// `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    /// - [`BackendError::Locked`] when the store is already open (this process or another).
    /// - [`BackendError::Corrupted`] when the file is not an SQLite database or is damaged.
    /// - [`BackendError::DiskFull`] when there is no room.
    /// - [`BackendError::Io`] on any other OS error (missing directory, permissions).
    /// - [`BackendError::Engine`] for any other refusal of SQLite.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        Self::open_with(path.as_ref(), true)
    }

    /// Opens the existing SQLite store at `path`; never creates a file.
    ///
    /// # Errors
    /// As [`SqliteBackend::open`], and [`BackendError::Io`] of kind
    /// [`std::io::ErrorKind::NotFound`] when no file exists at `path`.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        Self::open_with(path.as_ref(), false)
    }

    fn open_with(path: &Path, create: bool) -> Result<Self, BackendError> {
        let lock = lock(path, create)?;
        let conn = connect(path)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(map_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(BackendError::Engine(format!(
                "SQLite refused WAL mode (journal mode {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(map_err)?;
        conn.execute_batch(schema::CREATE_REGISTRY)
            .map_err(map_err)?;
        let snapshots = Arc::new(AtomicUsize::new(0));
        let writer = Writer::start(Context {
            conn,
            path: path.to_path_buf(),
            snapshots: Arc::clone(&snapshots),
            full_sync: true,
        })?;
        Ok(Self {
            shared: Arc::new(Shared {
                readers: Mutex::new(Vec::new()),
                writer,
                snapshots,
                path: path.to_path_buf(),
                _lock: lock,
            }),
        })
    }

    /// The path of the database file, as given to the open call.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The reads of this store: each in a read transaction of its own on a pooled reader
    /// connection, on tokio's blocking pool.
    fn reads(&self) -> BlockingReads<PooledViews> {
        BlockingReads::new(PooledViews(Arc::clone(&self.shared)), PANICKED)
    }

    /// Sends a request to the writer thread and waits for its answer without blocking the
    /// async runtime.
    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, BackendError>>) -> Request,
    ) -> Result<T, BackendError> {
        let (reply, answer) = oneshot::channel();
        self.shared.writer.send(request(reply))?;
        answer.await.map_err(|_| BackendError::Closed)?
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.reads().get(table, key).await
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        self.reads().get_many(table, keys).await
    }

    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        self.reads().scan(table, range, direction, limit).await
    }

    async fn commit(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.ask(|reply| Request::Commit {
            batch,
            durability,
            reply,
        })
        .await
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, BackendError> {
        let shared = Arc::clone(&self.shared);
        let view = run_blocking(PANICKED, move || {
            let conn = connect_reader(&shared.path)?;
            SqliteView::snapshot(conn, Arc::clone(&shared.snapshots))
        })
        .await?;
        Ok(Box::new(BlockingSnapshot::new(view, PANICKED)))
    }

    fn read_view(&self) -> Result<Box<dyn ReadView>, BackendError> {
        Ok(Box::new(SqliteView::pooled(
            Arc::clone(&self.shared),
            true,
        )?))
    }

    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        self.reads().len(table).await
    }

    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.reads().tables().await
    }

    async fn stats(&self) -> Result<BackendStats, BackendError> {
        let path = self.shared.path.clone();
        let (table_entries, file_bytes) = self
            .reads()
            .read(move |view| Ok((view.table_entries()?, file_bytes(&path)?)))
            .await?;
        let mut stats = BackendStats::default();
        stats.file_bytes = Some(file_bytes);
        stats.table_entries = table_entries;
        Ok(stats)
    }

    async fn compact(&self) -> Result<CompactReport, BackendError> {
        self.ask(|reply| Request::Compact { reply }).await
    }
}
