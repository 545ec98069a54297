//! [`RedbBackend`]: opening a redb file and the [`Backend`] implementation over it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tokio::sync::oneshot;
use tresor_backend::{
    Backend, BackendError, BackendStats, BlockingReads, BlockingSnapshot, CompactReport, Direction,
    Durability, Entry, KeyRange, ReadView, Snapshot, WriteBatch, run_blocking,
};

use crate::RedbConfig;
use crate::error::{PANICKED, map_io, map_open_err, open_panicked, poisoned};
use crate::log::{CommitLog, Recovery, log_path};
use crate::read;
use crate::view::LatestViews;
use crate::writer::{Context, Counters, Request, Writer, WriterStats, file_bytes};

/// A [`Backend`] storing every table in one redb database file.
///
/// Cloning is cheap and shares the open database. The file is closed (after a checkpoint that
/// makes every commit durable in the redb file, and the commit log `<path>-log` deleted) when
/// the last clone is dropped; that drop waits for the writer thread to finish the commits
/// already queued.
///
/// Writes go through one writer thread that merges concurrent commits into one redb write
/// transaction and one fsync (*group commit*, see the crate documentation). Reads run on
/// tokio's blocking pool, each in its own read transaction.
///
/// While a `RedbBackend` is alive the file is locked: opening the same path again, from this
/// process or another, fails with [`BackendError::Locked`]. The lock is released when the last
/// clone is dropped *and* no call of it is still running on the blocking pool.
///
/// A damaged file may make redb panic on a read; the panic stays on the blocking pool and the
/// call returns [`BackendError::Engine`].
#[derive(Clone)]
pub struct RedbBackend {
    shared: Arc<Shared>,
}

/// What the clones share. Field order matters: the writer (which joins its thread) drops before
/// the database handle.
struct Shared {
    writer: Writer,
    /// The database. Readers hold the read side for the whole of a call (so compaction, which
    /// takes the write side, waits for them); the writer thread holds it to begin a transaction.
    db: Arc<RwLock<crate::db::Db>>,
    path: PathBuf,
    counters: Arc<Counters>,
    recovery: Recovery,
}

impl fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl RedbBackend {
    /// Opens the redb database at `path`, creating the file (and an empty database in it) if it
    /// does not exist. The parent directory must exist. Replays the commit log `<path>-log`
    /// left by a process that ended without a clean close ([`RedbBackend::recovery`] tells
    /// what it held), then starts the writer thread.
    ///
    /// Blocks the calling thread on file I/O (and on recovery, after a crash); from async code,
    /// call it inside `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    /// - [`BackendError::Locked`] when the store is already open, by another `RedbBackend` of this
    ///   process or by another process.
    /// - [`BackendError::Corrupted`] when the file exists but is not a redb database, or is
    ///   damaged so that redb fails (or panics) while opening it, or when the commit log beside
    ///   it is not a commit log or belongs to another database. Damage in pages the open does
    ///   not read is only found by the reads that reach them.
    /// - [`BackendError::DiskFull`] when there is no room to create or recover the database.
    /// - [`BackendError::Io`] on any other OS error (a missing parent directory, permissions,
    ///   no thread available).
    /// - [`BackendError::Engine`] for any other refusal of redb (an old file format, say).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        Self::open_with_config(path, RedbConfig::default())
    }

    /// [`RedbBackend::open`] with explicit settings (the page-cache bound).
    ///
    /// # Errors
    /// As [`RedbBackend::open`].
    pub fn open_with_config(
        path: impl AsRef<Path>,
        config: RedbConfig,
    ) -> Result<Self, BackendError> {
        Self::open_with(path.as_ref(), config, true)
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
        Self::open_existing_with_config(path, RedbConfig::default())
    }

    /// [`RedbBackend::open_existing`] with explicit settings (the page-cache bound).
    ///
    /// # Errors
    /// As [`RedbBackend::open_existing`].
    pub fn open_existing_with_config(
        path: impl AsRef<Path>,
        config: RedbConfig,
    ) -> Result<Self, BackendError> {
        Self::open_with(path.as_ref(), config, false)
    }

    /// Opens with `open`, turning a panic of redb into [`BackendError::Corrupted`]: redb trusts a
    /// file that was shut down cleanly and panics on some damaged pages it reads while opening
    /// (it only promises typed errors with its whole-file integrity check, too slow to run on
    /// every open).
    fn open_with(path: &Path, config: RedbConfig, create: bool) -> Result<Self, BackendError> {
        let open = || {
            let builder = config.builder();
            if create {
                builder.create(path)
            } else {
                builder.open(path)
            }
        };
        let db = std::panic::catch_unwind(open)
            .map_err(|_| open_panicked())?
            .map_err(map_open_err)?;
        // The file is locked now: the log beside it is this process's alone.
        let (log, recovery) = open_log(&db, path, &config)?;
        let db = Arc::new(RwLock::new(crate::db::Db::new(db)));
        let counters = Arc::new(Counters::default());
        let writer = Writer::start(Context {
            db: Arc::clone(&db),
            path: path.to_path_buf(),
            counters: Arc::clone(&counters),
            config,
            log,
            next_checkpoint: crate::writer::first_checkpoint(&config),
            unsynced_direct: false,
            costs: crate::apply::Costs::default(),
        })?;
        // A compaction interrupted by a crash leaves its scratch file; the store is locked now.
        crate::compact::remove_scratch(path)?;
        Ok(Self {
            shared: Arc::new(Shared {
                writer,
                db,
                path: path.to_path_buf(),
                counters,
                recovery,
            }),
        })
    }

    /// What the open found in the commit log and applied again: the batches committed
    /// (durably, or `Eventual` and already written) before the process that wrote them ended
    /// without a clean close. All zero after a clean close.
    pub fn recovery(&self) -> Recovery {
        self.shared.recovery
    }

    /// The path of the database file, as given to the open call.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// What the writer thread committed since the store was opened: batches, transactions
    /// (groups), durable transactions. `batches / transactions` is the mean group size.
    pub fn writer_stats(&self) -> WriterStats {
        self.shared.counters.get()
    }

    /// The reads of this store: each in the view of the latest commit (`Db::latest_view`), on
    /// tokio's blocking pool.
    fn reads(&self) -> BlockingReads<LatestViews> {
        BlockingReads::new(LatestViews(Arc::clone(&self.shared.db)), PANICKED)
    }

    /// Sends `request` (built around a reply channel) to the writer thread and waits for the
    /// answer without blocking the async runtime.
    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, BackendError>>) -> Request,
    ) -> Result<T, BackendError> {
        let (reply, answer) = oneshot::channel();
        self.shared.writer.send(request(reply))?;
        // The writer always answers unless it died (a panic inside redb).
        answer.await.map_err(|_| BackendError::Closed)?
    }
}

/// Opens the commit log of `db` and replays it (see `log.rs`). Without
/// [`RedbConfig::commit_log`], a log left by an earlier open is still replayed, then deleted.
///
/// # Errors
/// As `CommitLog::open`; a panic of redb during replay (a damaged file) is
/// [`BackendError::Corrupted`].
fn open_log(
    db: &redb::Database,
    path: &Path,
    config: &RedbConfig,
) -> Result<(Option<CommitLog>, Recovery), BackendError> {
    let log_file = log_path(path);
    if !config.commit_log && !log_file.exists() {
        return Ok((None, Recovery::default()));
    }
    let (log, recovery) =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| CommitLog::open(db, path)))
            .map_err(|_| open_panicked())??;
    if config.commit_log {
        return Ok((Some(log), recovery));
    }
    drop(log);
    std::fs::remove_file(&log_file).map_err(map_io)?;
    Ok((None, recovery))
}

#[async_trait]
impl Backend for RedbBackend {
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
        let db = Arc::clone(&self.shared.db);
        let view =
            run_blocking(PANICKED, move || db.read().map_err(poisoned)?.latest_view()).await?;
        Ok(Box::new(BlockingSnapshot::new(view, PANICKED)))
    }

    fn read_view(&self) -> Result<Box<dyn ReadView>, BackendError> {
        let view = self.shared.db.read().map_err(poisoned)?.latest_view()?;
        Ok(Box::new(view))
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
            .read(move |view| Ok((read::table_entries(view.txn())?, file_bytes(&path)?)))
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
