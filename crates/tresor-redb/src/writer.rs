//! The writer thread: group commit and compaction.
//!
//! Every write of a [`crate::RedbBackend`] goes through one dedicated thread fed by a channel.
//! The thread takes the first waiting request, then every request already queued behind it (up
//! to [`MAX_GROUP`]), and commits the whole group in **one** redb write transaction with **one**
//! fsync: the group is durable (`redb::Durability::Immediate`) if any of its batches asked for
//! [`Durability::Immediate`], otherwise it is committed without fsync. Each caller is answered
//! only after the group's commit returned, so an `Immediate` caller is answered after its data
//! is durable. Requests arriving during a commit wait for the next group: a commit waits at most
//! for the in-flight fsync plus its own.
//!
//! A group's batches take effect one after the other: each batch's conditions are checked,
//! inside the group transaction, against the state left by the batches before it, and a batch
//! whose condition fails is skipped (its caller gets `ConditionFailed`) without affecting the
//! others. The operations themselves are applied per table, in key order, the tables of a large
//! group spread over threads (`crate::apply`); operations on one key keep their batch order, so
//! the outcome is the same. With the commit log, a durable group's `fdatasync` of the log runs
//! on the log's sync thread while the group is applied, and redb commits only after both.
//!
//! If applying a batch fails for another reason (a value redb refuses, an I/O error), or the
//! group's commit fails, the group transaction is aborted and each of its batches is retried
//! alone, so a failing batch never fails the others.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use redb::{CompactionError, ReadableTable, TableHandle, WriteTransaction};
use tokio::sync::oneshot;
use tresor_backend::{BackendError, CompactReport, Condition, Durability, Expect, Op, WriteBatch};

use crate::apply::{TableOps, WriteTable};
use crate::error::{map_err, map_io, poisoned};
use crate::log::CommitLog;
use crate::read::Def;

/// Fewest operations in a durable group for which the log's sync runs on its own thread while
/// the group is applied: for smaller groups the hand-over between threads costs more than the
/// overlap saves (measured with `cargo xtask bench-backend`'s single durable write, one
/// operation). 8 lets a facade's single-message save (about 10 operations at random
/// positions) overlap: session 9 measured W2 at a median of 2,610 against 2,458 saves/s with
/// the threshold at 1 instead of 32 (six alternating pairs, four won; within this VM's
/// noise, so a small gain at best).
const SYNC_OVERLAP_MIN_OPS: usize = 8;

/// Most batches merged into one write transaction.
pub(crate) const MAX_GROUP: usize = 512;

/// A reply channel.
type Reply<T> = oneshot::Sender<Result<T, BackendError>>;

/// Counts of what the writer thread committed since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Batches committed (each caller's `commit` that succeeded).
    pub batches: u64,
    /// Write transactions committed: one per group (plus one per batch retried alone).
    pub transactions: u64,
    /// Of those, the groups made durable before their callers were answered: by a durable
    /// redb commit, or (commit log on) by a synced log append.
    pub durable_transactions: u64,
    /// Checkpoints: durable redb commits that emptied the commit log (0 without it).
    pub checkpoints: u64,
}

/// The live counters behind [`WriterStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    transactions: AtomicU64,
    durable_transactions: AtomicU64,
    checkpoints: AtomicU64,
}

impl Counters {
    pub(crate) fn get(&self) -> WriterStats {
        WriterStats {
            batches: self.batches.load(Ordering::Relaxed),
            transactions: self.transactions.load(Ordering::Relaxed),
            durable_transactions: self.durable_transactions.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
        }
    }
}

/// What the writer thread works on.
pub(crate) struct Context {
    pub(crate) db: Arc<RwLock<crate::db::Db>>,
    pub(crate) path: PathBuf,
    pub(crate) counters: Arc<Counters>,
    /// The settings the database was opened with (also those of the file a compaction
    /// writes).
    pub(crate) config: crate::RedbConfig,
    /// The commit log, when [`crate::RedbConfig::commit_log`] is on.
    pub(crate) log: Option<CommitLog>,
    /// The log size at which the next checkpoint is tried (moved on when one fails).
    pub(crate) next_checkpoint: u64,
    /// Whether a group was committed directly without sync (`Eventual`, log bypassed) since
    /// the last durable commit: before the log is used again those must be made durable, so
    /// that a replay never applies logged records without the direct commits before them.
    pub(crate) unsynced_direct: bool,
    /// The measured cost of each table's operations, which balances the apply threads. Lent
    /// to each group's `GroupTables`; a group that fails forgets them (harmless: they are
    /// measured again).
    pub(crate) costs: crate::apply::Costs,
}

/// A request to the writer thread.
pub(crate) enum Request {
    /// Commit a batch (already validated) and answer once done.
    Commit {
        batch: WriteBatch,
        durability: Durability,
        reply: Reply<()>,
    },
    /// Compact the database.
    Compact { reply: Reply<CompactReport> },
}

/// One batch of a group, waiting for its outcome.
struct Pending {
    batch: WriteBatch,
    durability: Durability,
    reply: Reply<()>,
}

/// The handle of the writer thread: dropping it closes the channel and waits for the thread to
/// finish the requests already queued.
pub(crate) struct Writer {
    sender: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread.
    ///
    /// # Errors
    /// [`BackendError::Io`] when the OS refuses a new thread.
    pub(crate) fn start(cx: Context) -> Result<Self, BackendError> {
        let (sender, receiver) = channel();
        let thread = std::thread::Builder::new()
            .name("tresor-redb-writer".into())
            .spawn(move || {
                let mut cx = cx;
                run(&mut cx, &receiver);
                // Clean close: make everything durable in the database and delete the emptied
                // log. If the checkpoint fails the log keeps the records and the next open
                // replays them.
                if checkpoint(&mut cx).is_ok()
                    && let Some(log) = cx.log.take()
                {
                    let _ = log.remove();
                }
            })
            .map_err(BackendError::Io)?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Queues `request`.
    ///
    /// # Errors
    /// [`BackendError::Closed`] when the thread has ended.
    pub(crate) fn send(&self, request: Request) -> Result<(), BackendError> {
        self.sender
            .as_ref()
            .ok_or(BackendError::Closed)?
            .send(request)
            .map_err(|_| BackendError::Closed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            // The thread ends once the queue is drained; a panic of it was already reported to
            // the callers as `Closed`.
            let _ = thread.join();
        }
    }
}

/// The thread's loop: one group at a time until every sender is gone.
fn run(cx: &mut Context, receiver: &Receiver<Request>) {
    while let Ok(first) = receiver.recv() {
        let mut group = Vec::new();
        let mut compact = None;
        match first {
            Request::Commit {
                batch,
                durability,
                reply,
            } => group.push(Pending {
                batch,
                durability,
                reply,
            }),
            Request::Compact { reply } => compact = Some(reply),
        }
        while compact.is_none() && group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(Request::Commit {
                    batch,
                    durability,
                    reply,
                }) => group.push(Pending {
                    batch,
                    durability,
                    reply,
                }),
                Ok(Request::Compact { reply }) => compact = Some(reply),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if !group.is_empty() {
            commit_group(cx, group);
            maybe_checkpoint(cx);
        }
        if let Some(reply) = compact {
            // The caller may have given up waiting; the compaction happened anyway.
            let outcome = checkpoint(cx).and_then(|()| compact_db(&cx.db, &cx.path, &cx.config));
            let _ = reply.send(outcome);
        }
    }
}

/// Commits `group`, answering every caller.
fn commit_group(cx: &mut Context, group: Vec<Pending>) {
    let durable = group
        .iter()
        .any(|p| !matches!(p.durability, Durability::Eventual));
    let batches: Vec<&WriteBatch> = group.iter().map(|p| &p.batch).collect();
    match try_group(cx, &batches, durable) {
        Ok(outcomes) => {
            for (pending, outcome) in group.into_iter().zip(outcomes) {
                // A caller that stopped waiting (its future was dropped) still had its batch
                // committed; there is nobody to tell.
                let _ = pending.reply.send(outcome);
            }
        }
        Err(err) if group.len() == 1 => {
            if let Some(pending) = group.into_iter().next() {
                let _ = pending.reply.send(Err(err));
            }
        }
        Err(_) => {
            for pending in group {
                let durable = !matches!(pending.durability, Durability::Eventual);
                let outcome = try_group(cx, &[&pending.batch], durable)
                    .and_then(|mut outcomes| outcomes.pop().unwrap_or(Ok(())));
                let _ = pending.reply.send(outcome);
            }
        }
    }
}

/// Applies `batches` in one write transaction and commits it (with fsync when `durable`).
///
/// Returns one outcome per batch: `Ok` or `ConditionFailed` (that batch was skipped).
///
/// # Errors
/// Any other failure aborts the transaction: nothing of the group is applied.
fn try_group(
    cx: &mut Context,
    batches: &[&WriteBatch],
    durable: bool,
) -> Result<Vec<Result<(), BackendError>>, BackendError> {
    let logging = use_log(cx)?;
    // With the commit log, the log append is the durable step and redb commits without sync.
    let txn = begin_write(
        &cx.db,
        if durable && !logging {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        },
    )?;
    let mut outcomes = Vec::with_capacity(batches.len());
    let mut tables =
        GroupTables::new(&txn, cx.config.apply_threads).with_costs(std::mem::take(&mut cx.costs));
    // A batch with conditions is checked against the state the batches before it leave, so
    // what is pending is applied first; the rest is applied together at the end, per table.
    let mut pending: Vec<&[Op]> = Vec::new();
    for batch in batches {
        if !batch.conditions().is_empty() {
            tables.apply_all(&pending)?;
            pending.clear();
            match tables.check(batch.conditions()) {
                Ok(()) => {}
                Err(err @ BackendError::ConditionFailed { .. }) => {
                    outcomes.push(Err(err));
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
        pending.push(batch.ops());
        outcomes.push(Ok(()));
    }
    // On error the transaction is dropped, which aborts it.
    match &mut cx.log {
        Some(log) if logging => {
            let applied: Vec<&WriteBatch> = batches
                .iter()
                .zip(&outcomes)
                .filter(|(_, outcome)| outcome.is_ok())
                .map(|(batch, _)| *batch)
                .collect();
            if applied.is_empty() {
                cx.costs = tables.into_costs();
                commit(&cx.db, txn)?;
            } else {
                // The commit point: the records are in the log (synced when durable) before
                // redb commits; a failure after the append cuts them out again. The sync runs
                // on its own thread while the pending operations are applied (redb's
                // transaction stays invisible to readers until it commits, after both).
                let mark = log.append(&applied)?;
                let ops: usize = pending.iter().map(|ops| ops.len()).sum();
                let done = if durable && ops >= SYNC_OVERLAP_MIN_OPS {
                    sync_while(log, || tables.apply_all(&pending))
                } else if durable {
                    tables.apply_all(&pending).and_then(|()| log.sync())
                } else {
                    tables.apply_all(&pending)
                };
                cx.costs = tables.into_costs();
                if let Err(e) = done.and_then(|()| commit(&cx.db, txn)) {
                    // If the cut fails the log is marked broken and refuses later commits.
                    let _ = log.cut(mark);
                    return Err(e);
                }
            }
        }
        _ => {
            tables.apply_all(&pending)?;
            cx.costs = tables.into_costs();
            commit(&cx.db, txn)?;
            cx.unsynced_direct = !durable;
        }
    }
    let counters = &cx.counters;
    let applied = outcomes.iter().filter(|o| o.is_ok()).count() as u64;
    counters.batches.fetch_add(applied, Ordering::Relaxed);
    counters.transactions.fetch_add(1, Ordering::Relaxed);
    if durable {
        counters
            .durable_transactions
            .fetch_add(1, Ordering::Relaxed);
    }
    Ok(outcomes)
}

/// Syncs `log` on its sync thread while `work` runs on this one; both must succeed.
///
/// # Errors
/// `work`'s error first, else the sync's.
fn sync_while(
    log: &mut CommitLog,
    work: impl FnOnce() -> Result<(), BackendError>,
) -> Result<(), BackendError> {
    let begun = log.begin_sync();
    let done = work();
    let synced = log.finish_sync(begun);
    done.and(synced)
}

/// Whether this group goes through the commit log: there is one and the file system has
/// [`crate::RedbConfig::log_min_free_bytes`] free. Switching makes the order safe: before a
/// direct commit the log's records are made durable in the database (a checkpoint), so that a
/// replay never puts them over newer data; before the log is used again, non-durable direct
/// commits are made durable, so that a replay never applies records without them.
///
/// # Errors
/// When that checkpoint fails (a full disk): the group is not committed.
fn use_log(cx: &mut Context) -> Result<bool, BackendError> {
    if cx.log.is_none() {
        return Ok(false);
    }
    let enough =
        crate::space::free_bytes(&cx.path).is_none_or(|free| free >= cx.config.log_min_free_bytes);
    if enough {
        if cx.unsynced_direct {
            make_durable(&cx.db)?;
            cx.unsynced_direct = false;
        }
    } else {
        checkpoint(cx)?;
    }
    Ok(enough)
}

/// Begins a write transaction on `db` with `durability`.
fn begin_write(
    db: &RwLock<crate::db::Db>,
    durability: redb::Durability,
) -> Result<WriteTransaction, BackendError> {
    let mut txn = db
        .read()
        .map_err(poisoned)?
        .begin_write()
        .map_err(map_err)?;
    txn.set_durability(durability).map_err(map_err)?;
    Ok(txn)
}

/// Makes every earlier non-durable redb commit durable: an empty `Immediate` transaction.
///
/// # Errors
/// When redb cannot begin or commit it (an I/O error, a full disk).
fn make_durable(db: &RwLock<crate::db::Db>) -> Result<(), BackendError> {
    // The data is unchanged, but the commit may free pages that the shared view pins.
    commit(db, begin_write(db, redb::Durability::Immediate)?)
}

/// Commits `txn`, then forgets the shared read view of `db` (`Db::forget_view`) — also when
/// the commit fails, whatever it left. Every commit of the writer goes through here, before
/// its callers are answered, so that a read begun after an acknowledgement sees the commit.
///
/// # Errors
/// The commit's, mapped.
fn commit(db: &RwLock<crate::db::Db>, txn: WriteTransaction) -> Result<(), BackendError> {
    let committed = txn.commit().map_err(map_err);
    // `Db` is left consistent by any panic (only this thread mutates it, and only while it
    // holds the write side): a poisoned lock is used as is.
    db.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .forget_view();
    committed
}

/// Checkpoints when the log has grown past the configured size.
fn maybe_checkpoint(cx: &mut Context) {
    let Some(len) = cx.log.as_ref().map(CommitLog::len) else {
        return;
    };
    if len < cx.next_checkpoint {
        return;
    }
    if checkpoint(cx).is_err() {
        // A full disk, say: the log keeps every record, so nothing is lost; try again once
        // the log has grown by another step rather than after every group.
        cx.next_checkpoint = len.saturating_add(cx.config.checkpoint_bytes.max(1));
    }
}

/// Makes every non-durable redb commit durable (an empty `Immediate` transaction), then empties
/// the log. A no-op without a log.
///
/// # Errors
/// When the durable commit fails (the log is left whole) or the log cannot be emptied (its
/// records are in the database already; replaying them later is harmless).
fn checkpoint(cx: &mut Context) -> Result<(), BackendError> {
    let Some(log) = &mut cx.log else {
        return Ok(());
    };
    if log.len() <= crate::log::HEADER_BYTES {
        return Ok(());
    }
    make_durable(&cx.db)?;
    log.reset()?;
    cx.next_checkpoint = first_checkpoint(&cx.config);
    cx.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The log size at which the first checkpoint after an empty log is due (saturating:
/// `checkpoint_bytes` may be `u64::MAX`, never by size).
pub(crate) fn first_checkpoint(config: &crate::RedbConfig) -> u64 {
    crate::log::HEADER_BYTES.saturating_add(config.checkpoint_bytes)
}

/// The tables of one write transaction, each opened once.
pub(crate) struct GroupTables<'txn> {
    txn: &'txn WriteTransaction,
    /// Most threads a group's tables are applied on ([`crate::RedbConfig::apply_threads`]).
    threads: usize,
    open: HashMap<String, WriteTable<'txn>>,
    /// What each table's operations cost in earlier groups (`crate::apply::Costs`).
    costs: crate::apply::Costs,
    /// Names of the tables that existed before the transaction, listed on first need.
    existing: Option<HashSet<String>>,
}

impl<'txn> GroupTables<'txn> {
    pub(crate) fn new(txn: &'txn WriteTransaction, threads: usize) -> Self {
        Self {
            txn,
            threads,
            open: HashMap::new(),
            costs: crate::apply::Costs::default(),
            existing: None,
        }
    }

    /// These tables, balancing their threads by `costs` (measured before, and updated).
    pub(crate) fn with_costs(mut self, costs: crate::apply::Costs) -> Self {
        self.costs = costs;
        self
    }

    /// The costs, updated by what this transaction's groups took.
    pub(crate) fn into_costs(self) -> crate::apply::Costs {
        self.costs
    }

    /// Whether `table` exists: opened in this transaction or present before it.
    fn exists(&mut self, table: &str) -> Result<bool, BackendError> {
        if self.open.contains_key(table) {
            return Ok(true);
        }
        let existing = match &mut self.existing {
            Some(names) => names,
            none => none.insert(
                self.txn
                    .list_tables()
                    .map_err(map_err)?
                    .map(|handle| handle.name().to_owned())
                    .collect(),
            ),
        };
        Ok(existing.contains(table))
    }

    /// The open table `name`, opening (or creating) it on first use.
    fn writable(&mut self, name: &str) -> Result<&mut WriteTable<'txn>, BackendError> {
        if !self.open.contains_key(name) {
            let table = self.txn.open_table(Def::new(name)).map_err(map_err)?;
            self.open.insert(name.to_owned(), table);
        }
        self.open
            .get_mut(name)
            .ok_or_else(|| BackendError::Engine("table vanished from the open set".into()))
    }

    /// Checks `conditions` against the transaction's current state, without creating tables.
    fn check(&mut self, conditions: &[Condition]) -> Result<(), BackendError> {
        for (index, c) in conditions.iter().enumerate() {
            let holds = if self.exists(&c.table)? {
                let table = self.writable(&c.table)?;
                let value = table.get(c.key.as_slice()).map_err(map_err)?;
                c.expect.holds(value.as_ref().map(|v| v.value()))
            } else {
                matches!(c.expect, Expect::Absent)
            };
            if !holds {
                return Err(BackendError::ConditionFailed {
                    table: c.table.clone(),
                    index,
                });
            }
        }
        Ok(())
    }

    /// Applies the operations of `batches`, as if one after the other in order: per table,
    /// sorted by key, the tables spread over up to `threads` threads (`crate::apply`). A
    /// delete in a table that does not exist (and that no put of `batches` creates) is skipped
    /// rather than creating an empty table, so that `tables()` lists only tables that hold or
    /// have held entries.
    pub(crate) fn apply_all(&mut self, batches: &[&[Op]]) -> Result<(), BackendError> {
        let mut wanted: HashMap<&str, TableOps<'_>> = HashMap::new();
        for t in crate::apply::partition(batches) {
            if t.has_put || self.exists(t.name)? {
                self.writable(t.name)?;
                wanted.insert(t.name, t);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let work: Vec<_> = self
            .open
            .iter_mut()
            .filter_map(|(name, table)| wanted.remove(name.as_str()).map(|t| (table, t)))
            .collect();
        crate::apply::run(work, self.threads, &mut self.costs)
    }
}

/// Size of the store at `path` on disk, bytes: the redb file plus its commit log, if any.
pub(crate) fn file_bytes(path: &Path) -> Result<u64, BackendError> {
    let log = match std::fs::metadata(crate::log::log_path(path)) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(map_io(e)),
    };
    Ok(std::fs::metadata(path).map_err(map_io)?.len() + log)
}

/// Compacts the database: waits for in-flight reads (they hold the lock's read side), runs
/// redb's compaction, which refuses while a snapshot (a live read transaction) exists, then
/// rewrites the file with full pages (`compact.rs`).
fn compact_db(
    db: &RwLock<crate::db::Db>,
    path: &Path,
    config: &crate::RedbConfig,
) -> Result<CompactReport, BackendError> {
    let before = file_bytes(path)?;
    {
        let mut db = db.write().map_err(poisoned)?;
        // The shared view is a live read transaction: compaction needs none.
        db.forget_view();
        match db.compact() {
            Ok(_) => {}
            Err(CompactionError::Storage(err)) => return Err(map_err(err)),
            // A live read transaction (a snapshot) or savepoint: nothing was changed.
            Err(_) => {
                return Err(BackendError::Busy(
                    "a snapshot is alive; compaction needs none".into(),
                ));
            }
        }
        crate::compact::rewrite(&mut db, path, config)?;
    }
    Ok(CompactReport::new(Some(before), Some(file_bytes(path)?)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use redb::ReadableDatabase;
    use tresor_backend::ReadView;

    fn context() -> (tempfile::TempDir, Context) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let db = redb::Database::create(&path).unwrap();
        let cx = Context {
            db: Arc::new(RwLock::new(crate::db::Db::new(db))),
            path,
            counters: Arc::default(),
            config: crate::RedbConfig::default().with_cache_bytes(1 << 20),
            log: None,
            next_checkpoint: 0,
            unsynced_direct: false,
            costs: crate::apply::Costs::default(),
        };
        (dir, cx)
    }

    /// A context whose database has a commit log (never checkpointed by size).
    fn logged_context() -> (tempfile::TempDir, Context) {
        let (dir, mut cx) = context();
        let (log, _) = {
            let db = cx.db.read().unwrap();
            CommitLog::open(&db, &cx.path).unwrap()
        };
        cx.log = Some(log);
        cx.next_checkpoint = u64::MAX;
        (dir, cx)
    }

    fn log_len(cx: &Context) -> u64 {
        cx.log.as_ref().unwrap().len()
    }

    /// Below the free-space threshold the writer checkpoints and commits directly; above it
    /// it logs again, after making non-durable direct commits durable.
    #[test]
    fn the_log_is_bypassed_when_space_is_short() {
        let (_dir, mut cx) = logged_context();
        let header = crate::log::HEADER_BYTES;
        cx.config.log_min_free_bytes = 0;
        try_group(&mut cx, &[&put(1, None)], true).unwrap();
        assert!(log_len(&cx) > header, "logged");
        assert_eq!(cx.counters.get().checkpoints, 0);

        // No file system has this much free: checkpoint, then a direct durable commit.
        cx.config.log_min_free_bytes = u64::MAX;
        try_group(&mut cx, &[&put(2, None)], true).unwrap();
        assert_eq!(log_len(&cx), header, "the log was checkpointed and emptied");
        assert_eq!(cx.counters.get().checkpoints, 1);
        try_group(&mut cx, &[&put(3, None)], false).unwrap();
        assert!(cx.unsynced_direct);
        assert_eq!(log_len(&cx), header);

        // Space is back: the Eventual direct commit is made durable before logging resumes.
        cx.config.log_min_free_bytes = 0;
        try_group(&mut cx, &[&put(4, None)], true).unwrap();
        assert!(!cx.unsynced_direct);
        assert!(log_len(&cx) > header);
        let db = cx.db.read().unwrap();
        let read = db.begin_read().unwrap();
        let t = read.open_table(Def::new("t")).unwrap();
        for k in 1u8..=4 {
            assert!(t.get([k].as_slice()).unwrap().is_some(), "key {k}");
        }
    }

    fn put(key: u8, expect: Option<Expect>) -> WriteBatch {
        let mut batch = WriteBatch::new();
        if let Some(expect) = expect {
            batch.expect("t", vec![key], expect);
        }
        batch.put("t", vec![key], vec![key]);
        batch
    }

    /// Requests queued before the thread looks are committed as one group: one transaction,
    /// one fsync; a batch whose condition fails is skipped, the others all apply.
    #[test]
    fn queued_commits_form_one_group_and_failures_stay_alone() {
        let (_dir, mut cx) = context();
        let counters = Arc::clone(&cx.counters);
        let db = Arc::clone(&cx.db);
        let (sender, receiver) = channel();
        let mut answers = Vec::new();
        for key in 0u8..64 {
            let (reply, answer) = oneshot::channel();
            // Every 8th batch expects its key present, which it is not: it fails alone.
            let expect = (key % 8 == 7).then_some(Expect::Present);
            let durability = if key % 2 == 0 {
                Durability::Immediate
            } else {
                Durability::Eventual
            };
            sender
                .send(Request::Commit {
                    batch: put(key, expect),
                    durability,
                    reply,
                })
                .unwrap();
            answers.push((key, answer));
        }
        drop(sender);
        run(&mut cx, &receiver);
        for (key, mut answer) in answers {
            let outcome = answer.try_recv().unwrap();
            if key % 8 == 7 {
                assert!(
                    matches!(outcome, Err(BackendError::ConditionFailed { index: 0, .. })),
                    "{key}: {outcome:?}"
                );
            } else {
                outcome.unwrap();
            }
        }
        let stats = counters.get();
        assert_eq!(stats.transactions, 1, "{stats:?}");
        assert_eq!(stats.durable_transactions, 1);
        assert_eq!(stats.batches, 56);
        let view = db.read().unwrap().latest_view().unwrap();
        assert_eq!(view.len("t").unwrap(), 56);
        assert_eq!(view.get("t", &[7]).unwrap(), None);
    }

    /// A batch that redb refuses while applying (here: a put into a table of another key type,
    /// as a foreign program could leave in the file) aborts the group, then every batch is
    /// retried alone: the others still commit.
    #[test]
    fn a_batch_failing_mid_group_does_not_fail_the_others() {
        let (_dir, mut cx) = context();
        {
            let db = cx.db.read().unwrap();
            let txn = db.begin_write().unwrap();
            let foreign: redb::TableDefinition<'_, u64, u64> =
                redb::TableDefinition::new("foreign");
            txn.open_table(foreign).unwrap().insert(1, 1).unwrap();
            txn.commit().unwrap();
        }
        let (sender, receiver) = channel();
        let mut answers = Vec::new();
        for key in 0u8..4 {
            let (reply, answer) = oneshot::channel();
            let mut batch = put(key, None);
            if key == 2 {
                batch.put("foreign", vec![key], vec![key]);
            }
            sender
                .send(Request::Commit {
                    batch,
                    durability: Durability::Eventual,
                    reply,
                })
                .unwrap();
            answers.push((key, answer));
        }
        drop(sender);
        run(&mut cx, &receiver);
        for (key, mut answer) in answers {
            let outcome = answer.try_recv().unwrap();
            assert_eq!(outcome.is_ok(), key != 2, "{key}: {outcome:?}");
        }
        let stats = cx.counters.get();
        assert_eq!((stats.batches, stats.transactions), (3, 3), "{stats:?}");
        assert_eq!(stats.durable_transactions, 0);
    }

    /// Groups applied per table, sorted and on several threads (and with the log's sync
    /// overlapped) leave exactly what applying their batches one after the other leaves: a
    /// `BTreeMap` model, over random groups with repeated keys, deletes, conditions, tables
    /// that only ever see deletes, and sizes on both sides of the parallel threshold.
    #[test]
    fn groups_applied_in_parallel_match_a_sequential_model() {
        use std::collections::BTreeMap;
        use tresor_backend::{Direction, KeyRange};
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let tables = ["a", "b", "c", "d", "e", "only-deletes"];
        for logged in [false, true] {
            let (_dir, mut cx) = if logged { logged_context() } else { context() };
            cx.config.apply_threads = 4;
            let mut model: BTreeMap<(String, Vec<u8>), Vec<u8>> = BTreeMap::new();
            for round in 0..12u64 {
                let batches: Vec<WriteBatch> = (0..1 + next(40))
                    .map(|_| {
                        let mut b = WriteBatch::new();
                        if next(6) == 0 {
                            let key = vec![next(4) as u8; 2];
                            let expect = if next(2) == 0 {
                                Expect::Absent
                            } else {
                                Expect::Present
                            };
                            b.expect(tables[next(3) as usize], key, expect);
                        }
                        for _ in 0..next(if round % 2 == 0 { 40 } else { 4 }) {
                            let table = tables[next(6) as usize];
                            let key = vec![next(16) as u8, next(4) as u8];
                            if table == "only-deletes" || next(4) == 0 {
                                b.delete(table, key);
                            } else {
                                b.put(table, key, vec![next(255) as u8; 1 + next(300) as usize]);
                            }
                        }
                        b
                    })
                    .collect();
                let refs: Vec<&WriteBatch> = batches.iter().collect();
                let outcomes = try_group(&mut cx, &refs, round % 3 != 0).unwrap();
                for (batch, outcome) in batches.iter().zip(&outcomes) {
                    let holds = batch.conditions().iter().all(|c| {
                        c.expect.holds(
                            model
                                .get(&(c.table.clone(), c.key.clone()))
                                .map(Vec::as_slice),
                        )
                    });
                    assert_eq!(holds, outcome.is_ok(), "round {round}: {outcome:?}");
                    if !holds {
                        continue;
                    }
                    for op in batch.ops() {
                        match op {
                            Op::Put { table, key, value } => {
                                model.insert((table.to_string(), key.clone()), value.clone());
                            }
                            Op::Delete { table, key } => {
                                model.remove(&(table.to_string(), key.clone()));
                            }
                        }
                    }
                }
                let view = cx.db.read().unwrap().latest_view().unwrap();
                let mut stored = BTreeMap::new();
                for table in view.tables().unwrap() {
                    assert_ne!(table, "only-deletes", "a delete created a table");
                    for (key, value) in view
                        .scan(&table, KeyRange::all(), Direction::Forward, 1 << 20)
                        .unwrap()
                    {
                        stored.insert((table.clone(), key), value);
                    }
                }
                assert_eq!(stored, model, "round {round}, logged {logged}");
            }
        }
    }
}
