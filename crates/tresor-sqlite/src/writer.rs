//! The writer thread: the one write connection, group commit and compaction.
//!
//! As in `tresor-redb`: one thread takes the first queued request and every request already
//! queued behind it (up to [`MAX_GROUP`]) and commits them in **one** SQLite transaction
//! (`BEGIN IMMEDIATE` … `COMMIT`), with `synchronous=FULL` (the WAL is fsynced at commit) if any
//! batch is `Immediate`, else `synchronous=NORMAL` (no fsync at commit). Each batch runs inside
//! its own savepoint: its conditions are checked against the state the batches before it left,
//! and a batch that fails (condition or engine error) is rolled back to its savepoint alone.
//! Callers are answered after the group's `COMMIT` returned. If the `COMMIT` itself fails,
//! every batch of the group is retried alone.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;
use tresor_backend::{BackendError, CompactReport, Condition, Durability, Op, WriteBatch};

use crate::error::map_err;
use crate::schema::{self, sql_table};

/// Most batches merged into one transaction.
pub(crate) const MAX_GROUP: usize = 512;

/// A reply channel.
type Reply<T> = oneshot::Sender<Result<T, BackendError>>;

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

/// What the writer thread owns.
pub(crate) struct Context {
    /// The write connection (WAL mode, registry created).
    pub(crate) conn: Connection,
    /// The database file.
    pub(crate) path: PathBuf,
    /// Number of live snapshots (compaction refuses while any is alive).
    pub(crate) snapshots: Arc<AtomicUsize>,
    /// The `synchronous` setting in force: `true` for FULL.
    pub(crate) full_sync: bool,
}

/// The handle of the writer thread: dropping it closes the channel and waits for the thread to
/// finish the queued requests and close the connection (a clean close: SQLite checkpoints the
/// WAL into the database file and syncs it).
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
            .name("tresor-sqlite-writer".into())
            .spawn(move || run(cx, &receiver))
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
            // A panic of the thread was already reported to the callers as `Closed`.
            let _ = thread.join();
        }
    }
}

/// The thread's loop: one group at a time until every sender is gone.
fn run(mut cx: Context, receiver: &Receiver<Request>) {
    while let Ok(first) = receiver.recv() {
        let mut group = Vec::new();
        let mut compact = None;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
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
            if compact.is_none() && group.len() < MAX_GROUP {
                next = receiver.try_recv().ok();
            }
        }
        if !group.is_empty() {
            commit_group(&mut cx, group);
        }
        if let Some(reply) = compact {
            // The caller may have given up waiting; the compaction happened anyway.
            let _ = reply.send(compact_db(&cx));
        }
    }
}

/// Commits `group`, answering every caller.
fn commit_group(cx: &mut Context, group: Vec<Pending>) {
    let durable = group
        .iter()
        .any(|p| !matches!(p.durability, Durability::Eventual));
    let batches: Vec<&WriteBatch> = group.iter().map(|p| &p.batch).collect();
    match try_group_with_room(cx, &batches, durable) {
        Ok(outcomes) => {
            for (pending, outcome) in group.into_iter().zip(outcomes) {
                // A caller that stopped waiting still had its batch committed.
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
                let outcome = try_group_with_room(cx, &[&pending.batch], durable)
                    .and_then(|mut outcomes| outcomes.pop().unwrap_or(Ok(())));
                let _ = pending.reply.send(outcome);
            }
        }
    }
}

/// [`try_group`], and once more after restarting the write-ahead log when the disk was full.
///
/// SQLite appends to the WAL until a checkpoint lets the next writer start over at its
/// beginning; on a full disk the append fails although the WAL file itself (or space freed
/// inside the database file by deletes) has room. A `RESTART` checkpoint copies the log into
/// the database file and makes the next transaction reuse the log from its start, so a batch
/// that failed with [`BackendError::DiskFull`] (and was rolled back whole) is tried once more;
/// batches of the group that committed are not repeated. Anything else, or a checkpoint that
/// cannot complete (a reader, or no room for it either), returns the first outcome unchanged.
fn try_group_with_room(
    cx: &mut Context,
    batches: &[&WriteBatch],
    durable: bool,
) -> Result<Vec<Result<(), BackendError>>, BackendError> {
    let first = try_group(cx, batches, durable);
    let full = |r: &Result<(), BackendError>| matches!(r, Err(BackendError::DiskFull(_)));
    let disk_full = match &first {
        Err(BackendError::DiskFull(_)) => true,
        Ok(outcomes) => outcomes.iter().any(full),
        Err(_) => false,
    };
    if !disk_full || restart_wal(&cx.conn).is_err() {
        return first;
    }
    match first {
        Err(_) => try_group(cx, batches, durable),
        Ok(mut outcomes) => {
            for (outcome, batch) in outcomes.iter_mut().zip(batches) {
                if full(outcome) {
                    *outcome = try_group(cx, &[batch], durable)
                        .and_then(|mut one| one.pop().unwrap_or(Ok(())));
                }
            }
            Ok(outcomes)
        }
    }
}

/// A `RESTART` checkpoint: the whole log copied into the database file, and the next
/// transaction writes the log from its beginning.
///
/// # Errors
/// [`BackendError::Busy`] when a reader kept it from completing; any error of SQLite.
fn restart_wal(conn: &Connection) -> Result<(), BackendError> {
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| row.get(0))
        .map_err(map_err)?;
    if busy != 0 {
        return Err(BackendError::Busy(
            "a reader kept the checkpoint from completing".into(),
        ));
    }
    Ok(())
}

/// Sets `synchronous` for the next commit (outside any transaction).
fn set_sync(cx: &mut Context, full: bool) -> Result<(), BackendError> {
    if cx.full_sync != full {
        let level = if full { "FULL" } else { "NORMAL" };
        cx.conn
            .pragma_update(None, "synchronous", level)
            .map_err(map_err)?;
        cx.full_sync = full;
    }
    Ok(())
}

/// Applies `batches` in one transaction, each in its own savepoint, and commits.
///
/// Returns one outcome per batch.
///
/// # Errors
/// A failure to begin or commit the transaction: nothing of the group is applied.
fn try_group(
    cx: &mut Context,
    batches: &[&WriteBatch],
    durable: bool,
) -> Result<Vec<Result<(), BackendError>>, BackendError> {
    set_sync(cx, durable)?;
    let mut txn = cx
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let mut outcomes = Vec::with_capacity(batches.len());
    for batch in batches {
        let savepoint = txn.savepoint().map_err(map_err)?;
        let outcome =
            check(&savepoint, batch.conditions()).and_then(|()| apply(&savepoint, batch.ops()));
        match outcome {
            Ok(()) => {
                savepoint.commit().map_err(map_err)?;
                outcomes.push(Ok(()));
            }
            Err(err) => {
                // Dropping the savepoint rolls the batch back (and releases the savepoint).
                drop(savepoint);
                outcomes.push(Err(err));
            }
        }
    }
    txn.commit().map_err(map_err)?;
    Ok(outcomes)
}

/// Checks `conditions` against the connection's current state.
fn check(conn: &Connection, conditions: &[Condition]) -> Result<(), BackendError> {
    for (index, c) in conditions.iter().enumerate() {
        let current = schema::get(conn, &c.table, &c.key)?;
        if !c.expect.holds(current.as_deref()) {
            return Err(BackendError::ConditionFailed {
                table: c.table.clone(),
                index,
            });
        }
    }
    Ok(())
}

/// Applies `ops` in order, keeping the registry's entry counts exact. A delete in a table that
/// does not exist creates nothing.
fn apply(conn: &Connection, ops: &[Op]) -> Result<(), BackendError> {
    let mut deltas: HashMap<&str, i64> = HashMap::new();
    for op in ops {
        match op {
            Op::Put { table, key, value } => {
                if !deltas.contains_key(&**table) {
                    ensure_table(conn, table)?;
                    deltas.insert(table, 0);
                }
                let update = format!("UPDATE {} SET v = ?2 WHERE k = ?1", sql_table(table));
                let changed = conn
                    .prepare_cached(&update)
                    .map_err(map_err)?
                    .execute((key.as_slice(), value.as_slice()))
                    .map_err(map_err)?;
                if changed == 0 {
                    let insert = format!("INSERT INTO {} (k, v) VALUES (?1, ?2)", sql_table(table));
                    conn.prepare_cached(&insert)
                        .map_err(map_err)?
                        .execute((key.as_slice(), value.as_slice()))
                        .map_err(map_err)?;
                    *deltas.entry(table).or_default() += 1;
                }
            }
            Op::Delete { table, key } => {
                if !deltas.contains_key(&**table) {
                    if !schema::exists(conn, table)? {
                        continue;
                    }
                    deltas.insert(table, 0);
                }
                let delete = format!("DELETE FROM {} WHERE k = ?1", sql_table(table));
                let removed = conn
                    .prepare_cached(&delete)
                    .map_err(map_err)?
                    .execute([key.as_slice()])
                    .map_err(map_err)?;
                *deltas.entry(table).or_default() -= removed as i64;
            }
        }
    }
    let mut stmt = conn
        .prepare_cached("UPDATE tresor_tables SET entries = entries + ?2 WHERE name = ?1")
        .map_err(map_err)?;
    for (table, delta) in deltas {
        if delta != 0 {
            stmt.execute((table, delta)).map_err(map_err)?;
        }
    }
    Ok(())
}

/// Creates the SQL table of `table` and its registry row if missing.
fn ensure_table(conn: &Connection, table: &str) -> Result<(), BackendError> {
    if schema::exists(conn, table)? {
        return Ok(());
    }
    conn.execute(&schema::create_table(table), [])
        .map_err(map_err)?;
    conn.execute(
        "INSERT INTO tresor_tables (name, entries) VALUES (?1, 0)",
        [table],
    )
    .map_err(map_err)?;
    Ok(())
}

/// Bytes of the database file plus its write-ahead log.
pub(crate) fn file_bytes(path: &std::path::Path) -> Result<u64, BackendError> {
    let db = std::fs::metadata(path).map_err(crate::error::map_io)?.len();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len());
    Ok(db + wal)
}

/// Compacts: `VACUUM` rewrites the database without free pages, then a truncating checkpoint
/// moves everything into the database file and empties the log. Refused while a snapshot is
/// alive (its read transaction would keep the log from being emptied).
fn compact_db(cx: &Context) -> Result<CompactReport, BackendError> {
    if cx.snapshots.load(Ordering::SeqCst) > 0 {
        return Err(BackendError::Busy(
            "a snapshot is alive; compaction needs none".into(),
        ));
    }
    let before = file_bytes(&cx.path)?;
    cx.conn.execute_batch("VACUUM").map_err(map_err)?;
    checkpoint(&cx.conn)?;
    Ok(CompactReport::new(
        Some(before),
        Some(file_bytes(&cx.path)?),
    ))
}

/// A truncating checkpoint: the log is copied into the database file, synced, and emptied.
///
/// # Errors
/// [`BackendError::Busy`] when a reader kept it from completing.
pub(crate) fn checkpoint(conn: &Connection) -> Result<(), BackendError> {
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
        .map_err(map_err)?;
    if busy != 0 {
        return Err(BackendError::Busy(
            "a reader kept the checkpoint from completing".into(),
        ));
    }
    Ok(())
}
