//! The commit log: a durable commit is one sequential append and one `fdatasync`, not a redb
//! commit of every page the batch dirtied.
//!
//! redb's durable commit (`redb::Durability::Immediate`) writes every B-tree page the
//! transaction copied, then the header, then syncs: with tresor's keys (blinded tokens, random
//! by design) a batch of single messages dirties a leaf per key in several tables, and the
//! sync waits for all of it. SQLite answers the same commit with a WAL append. With the commit
//! log on ([`crate::RedbConfig::commit_log`], the default) the writer thread:
//!
//! 1. applies the group's batches in one redb write transaction (conditions checked as
//!    always), committed with `redb::Durability::None`: visible at once, not synced;
//! 2. **before** that commit, appends one record per applied batch to `<path>-log` and, if any
//!    batch of the group is `Immediate`, syncs the log (`File::sync_data`): the commit point;
//! 3. answers the callers;
//! 4. every [`crate::RedbConfig::checkpoint_bytes`] of log (and at compaction and clean close)
//!    commits an empty redb transaction with `Immediate`, which makes every earlier
//!    non-durable commit durable, and then empties the log (a *checkpoint*).
//!
//! At open, records left in the log are applied again in order and the log is emptied
//! (*replay*, `replay.rs`: the log is read record by record, never whole, and applied in
//! chunks; the last chunk's commit is `Immediate`).
//!
//! # Why replay is correct
//! After a crash redb holds the state of its last durable commit, `S`, plus possibly some of
//! the non-durable commits after it (in order). Every record in the log was appended after the
//! checkpoint that produced `S` (the log is emptied only once that checkpoint is durable). The
//! records are puts and deletes (conditions were checked before logging, only applied batches
//! are logged), so applying all of them in order over any state that already reflects a
//! prefix of them leaves every key they touch with the value of the last operation on it, and
//! every other key as in `S`: the same state as if the crash had not happened. A crash between
//! a checkpoint's commit and the truncation replays records already in `S`, harmlessly, for
//! the same reason.
//!
//! # Crash analysis
//! - Crash before the log sync of a group: its records may be missing or torn; its callers
//!   were not answered. Replay stops at the first record whose length or checksum does not
//!   hold and cuts the log there; what remains is a prefix of the committed batches (a torn
//!   record is the group's own; an `Eventual` record written but never synced may be lost along
//!   with every record after it, as the durability level allows).
//! - Crash after the sync: the records are replayed; the batches are present after reopen,
//!   also if the redb commit never happened.
//! - A redb commit that fails after the append (a full disk when redb grows its file): the log
//!   is cut back to its length before the append and synced, so the failed batches are not
//!   replayed later. If even that fails the writer refuses every later commit (its error says
//!   to reopen): the records may then reappear at the next open.
//! - The log names its database: its header carries the 16-byte id stored in the database's
//!   internal table `tresor-redb.log` (a name no backend table can have), and every record's
//!   checksum covers it. A log beside another database is refused at open
//!   ([`BackendError::Corrupted`]) rather than replayed into it.
//!
//! # Format (all integers little-endian; docs/FORMAT.md "Commit log")
//! ```text
//! header  := magic "tresorlg" (8) ‖ version u32 = 1 ‖ reserved u32 = 0 ‖ database id (16)
//! record  := len u32 ‖ body (len bytes) ‖ check (16)
//! body    := seq u64 ‖ ops u32 ‖ op*            seq: 1, 2, 3, … since the last emptying
//! op      := 1 u8 ‖ table ‖ key ‖ value          a put
//!          | 2 u8 ‖ table ‖ key                  a delete
//! table   := len u8 ‖ name bytes
//! key, value := len u32 ‖ bytes
//! check   := BLAKE3(database id ‖ len ‖ body), first 16 bytes
//! ```
//!
//! After the last record the file may hold zeros: space reserved ahead of the appends
//! (`CommitLog::reserve`, [`RESERVE_BYTES`] at a time), so that a durable append overwrites
//! allocated space and its `fdatasync` need not commit a new file size. Zeros read as a record
//! of length 0 whose check is 16 zero bytes, which a BLAKE3 output is not (but with
//! probability 2⁻¹²⁸): replay stops there, as at any torn tail. Emptying the log truncates the
//! file to its header, reserved space included, so no record of an earlier round can follow
//! the new ones.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, TableDefinition, TableError};
use tresor_backend::{BackendError, Op, WriteBatch};

use crate::error::{map_err, map_io};

/// The internal redb table holding the database id (key [`ID_KEY`]). Its name has a `-` and
/// a `.`, which no backend table name can have, so it never collides with one and reads never
/// reach it (`read.rs` leaves it out of table lists).
pub(crate) const ID_TABLE: &str = "tresor-redb.log";
/// The key of the database id in [`ID_TABLE`].
const ID_KEY: &[u8] = b"id";
/// The first 8 bytes of every log file.
const MAGIC: &[u8; 8] = b"tresorlg";
/// The log format version this code writes and reads.
const VERSION: u32 = 1;
/// Bytes of the header.
pub(crate) const HEADER_BYTES: u64 = 32;
/// The step in which the log reserves space ahead of its appends ([`CommitLog::reserve`]):
/// 4 MiB, about four durable batches of 1,000 messages, or thousands of single messages.
pub(crate) const RESERVE_BYTES: u64 = 4 << 20;
/// Bytes of a record's check.
pub(crate) const CHECK_BYTES: usize = 16;
/// Op tags.
const PUT: u8 = 1;
const DELETE: u8 = 2;

/// The redb type of [`ID_TABLE`].
const ID_DEF: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new(ID_TABLE);

/// The path of the commit log of the database at `path`: `<path>-log`.
pub(crate) fn log_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-log");
    PathBuf::from(name)
}

/// What an open found in the commit log and replayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Records (committed batches) applied again from the log.
    pub replayed_batches: u64,
    /// Bytes cut from the end of the log: a torn or never-synced tail (0 after a clean close),
    /// up to its last non-zero byte (the zeros after it are space the log reserved ahead of
    /// its appends, and cannot be told from a torn record's own trailing zeros).
    pub discarded_bytes: u64,
}

/// Where the log ended before an append: what [`CommitLog::cut`] goes back to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    len: u64,
    next_seq: u64,
}

/// The open commit log of one database. Owned by the writer thread.
pub(crate) struct CommitLog {
    file: File,
    path: PathBuf,
    id: [u8; 16],
    /// Bytes of the log: header and whole records (the next append's offset).
    len: u64,
    /// Bytes of the file: [`CommitLog::len`] plus space reserved ahead of it (zeros), so
    /// that an append overwrites reserved space instead of growing the file
    /// ([`RESERVE_BYTES`]).
    reserved: u64,
    /// Set when reserving failed (a full disk, a file system without `fallocate`): appends
    /// grow the file until the next emptying of the log tries again.
    reserve_failed: bool,
    /// Tests: make the next reservation fail, as on a file system without `fallocate`.
    #[cfg(test)]
    fail_next_reserve: bool,
    /// The sequence number of the next record.
    next_seq: u64,
    /// Set when the log could not be cut back after a failed commit: the log may hold records
    /// of batches that were reported failed, so no further commit is accepted.
    broken: bool,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// The thread that syncs the log while the writer applies a group (started on first use).
    syncer: Option<Syncer>,
}

/// A thread that runs the log's `fdatasync` on its own handle of the file, so that the writer
/// can apply a group to redb meanwhile ([`CommitLog::begin_sync`]). Dropping it stops and
/// joins the thread.
struct Syncer {
    request: Option<Sender<()>>,
    done: Receiver<std::io::Result<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread on a second handle of `file`.
    fn start(file: &File) -> std::io::Result<Self> {
        let file = file.try_clone()?;
        let (request, requests) = channel::<()>();
        let (reply, done) = channel();
        let thread = std::thread::Builder::new()
            .name("tresor-redb-sync".into())
            .spawn(move || {
                while requests.recv().is_ok() {
                    if reply.send(file.sync_data()).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            request: Some(request),
            done,
            thread: Some(thread),
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.request.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl CommitLog {
    /// Opens the commit log of `db` (at `path`), creating it if missing, and replays what it
    /// holds into `db` (one `Immediate` transaction); the log is then empty.
    ///
    /// # Errors
    /// [`BackendError::Corrupted`] when the log is not a tresor commit log (bad magic or
    /// version) or belongs to another database; [`BackendError::DiskFull`] / [`BackendError::Io`]
    /// when it cannot be read, written or synced, or replay cannot commit (the log is then left
    /// as it was, to be replayed by a later open).
    pub(crate) fn open(db: &Database, path: &Path) -> Result<(Self, Recovery), BackendError> {
        let log_path = log_path(path);
        let id = database_id(db)?;
        let mut recovery = Recovery::default();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .map_err(map_io)?;
        let replayed = crate::replay::replay(db, &file, &id, crate::replay::REPLAY_CHUNK_BYTES)?;
        let mut log = Self {
            file,
            path: log_path.clone(),
            id,
            len: 0,
            reserved: 0,
            reserve_failed: false,
            #[cfg(test)]
            fail_next_reserve: false,
            next_seq: 1,
            broken: false,
            buf: Vec::new(),
            syncer: None,
        };
        match replayed {
            Some(replayed) => {
                recovery.discarded_bytes = replayed.content_end - replayed.good;
                recovery.replayed_batches = replayed.batches;
                log.reset()?;
            }
            // Missing, or shorter than a header (a crash while creating it): a new log.
            None => {
                recovery.discarded_bytes = log.file.metadata().map_err(map_io)?.len();
                log.reset()?;
                sync_parent(&log_path)?;
            }
        }
        Ok((log, recovery))
    }

    /// Bytes of the log: header and whole records (the space reserved after them not
    /// counted).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends one record per batch (only their operations: conditions were checked before)
    /// at the end of the log, without syncing. Returns where the log ended before, for
    /// [`CommitLog::cut`].
    ///
    /// # Errors
    /// [`BackendError::ValueTooLarge`] for a batch whose record would exceed 4 GiB;
    /// [`BackendError::DiskFull`] / [`BackendError::Io`] when the write fails (the log is then
    /// cut back, or marked broken if even that fails).
    pub(crate) fn append(&mut self, batches: &[&WriteBatch]) -> Result<Mark, BackendError> {
        self.usable()?;
        let mark = Mark {
            len: self.len,
            next_seq: self.next_seq,
        };
        self.buf.clear();
        let mut seq = self.next_seq;
        for batch in batches {
            encode_record(&mut self.buf, &self.id, seq, batch.ops())?;
            seq += 1;
        }
        let end = mark.len + self.buf.len() as u64;
        if end > self.reserved && !self.reserve_failed {
            self.reserve(end);
        }
        if let Err(e) = write_at(&mut self.file, mark.len, &self.buf) {
            self.cut(mark)?;
            return Err(map_io(e));
        }
        self.len = mark.len + self.buf.len() as u64;
        self.next_seq = seq;
        // Keep big buffers from staying allocated after one large batch.
        if self.buf.capacity() > 4 << 20 {
            self.buf = Vec::new();
        }
        Ok(mark)
    }

    /// Reserves zeroed space up to at least `end` (rounded up to [`RESERVE_BYTES`]), so that
    /// the appends up to there overwrite the file instead of growing it: an `fdatasync` after
    /// an append that grows a file must also commit the file system's metadata (its size, its
    /// new blocks), one after an overwrite of allocated space only the data (measured on this
    /// project's VM, ext4: 1,200-byte appends each followed by `fdatasync` ran 1.35–1.7×
    /// faster into `fallocate`d space). Replay reads the zeros as the log's end: a zero
    /// length with a zero check never holds. Best effort: when the space cannot be reserved
    /// (a full disk, a file system without `fallocate`), the appends grow the file as before
    /// (and fail there if they must), without trying again until the log is next emptied.
    fn reserve(&mut self, end: u64) {
        let want = end.div_ceil(RESERVE_BYTES).saturating_mul(RESERVE_BYTES);
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_reserve) {
            self.reserve_failed = true;
            return;
        }
        if reserve_space(&self.file, self.reserved, want).is_ok() {
            self.reserved = want;
        } else {
            self.reserve_failed = true;
        }
    }

    /// Makes every appended record durable (`fdatasync`).
    ///
    /// # Errors
    /// [`BackendError::Io`] / [`BackendError::DiskFull`]; a failed sync leaves the log's state
    /// on disk unknown, so the caller cuts the records back ([`CommitLog::cut`]).
    pub(crate) fn sync(&self) -> Result<(), BackendError> {
        self.file.sync_data().map_err(map_io)
    }

    /// Starts [`CommitLog::sync`] on the log's sync thread and returns at once; the caller
    /// must call [`CommitLog::finish_sync`] with the returned flag before it relies on the
    /// records being durable. Returns `false` when the thread cannot be used (the OS refused
    /// it): `finish_sync` then syncs on the calling thread.
    pub(crate) fn begin_sync(&mut self) -> bool {
        if self.syncer.is_none() {
            self.syncer = Syncer::start(&self.file).ok();
        }
        self.syncer
            .as_ref()
            .and_then(|s| s.request.as_ref())
            .is_some_and(|request| request.send(()).is_ok())
    }

    /// Waits for the sync [`CommitLog::begin_sync`] started (or syncs here if it started none).
    ///
    /// # Errors
    /// As [`CommitLog::sync`].
    pub(crate) fn finish_sync(&mut self, begun: bool) -> Result<(), BackendError> {
        if begun && let Some(syncer) = &self.syncer {
            match syncer.done.recv() {
                Ok(synced) => return synced.map_err(map_io),
                // The thread is gone (it panicked): sync here, without it from now on.
                Err(_) => self.syncer = None,
            }
        }
        self.sync()
    }

    /// Cuts the log back to `mark` (the records of a group whose commit failed) and syncs.
    ///
    /// # Errors
    /// When the file cannot be cut or synced: the log is then marked broken and every later
    /// append fails.
    pub(crate) fn cut(&mut self, mark: Mark) -> Result<(), BackendError> {
        let result = self
            .file
            .set_len(mark.len)
            .and_then(|()| self.file.sync_data())
            .map_err(map_io);
        match result {
            Ok(()) => {
                self.len = mark.len;
                self.reserved = mark.len;
                self.next_seq = mark.next_seq;
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    /// Empties the log (after a durable checkpoint, or at open): a fresh header, synced.
    ///
    /// # Errors
    /// [`BackendError::Io`] / [`BackendError::DiskFull`]; the log then keeps its records (they
    /// are already in the database, and replaying them is harmless).
    pub(crate) fn reset(&mut self) -> Result<(), BackendError> {
        self.file.set_len(0).map_err(map_io)?;
        write_at(&mut self.file, 0, &header(&self.id)).map_err(map_io)?;
        self.file.sync_all().map_err(map_io)?;
        self.len = HEADER_BYTES;
        self.reserved = HEADER_BYTES;
        self.reserve_failed = false;
        self.next_seq = 1;
        self.broken = false;
        Ok(())
    }

    /// Deletes the log file: at a clean close, after a checkpoint emptied it, so that a closed
    /// store is one file. (Should the deletion be lost in a crash, an empty log remains:
    /// harmless.)
    ///
    /// # Errors
    /// [`BackendError::Io`] when the file cannot be deleted.
    pub(crate) fn remove(mut self) -> Result<(), BackendError> {
        drop(self.syncer.take());
        drop(self.file);
        std::fs::remove_file(&self.path).map_err(map_io)
    }

    /// Fails when the log is broken.
    fn usable(&self) -> Result<(), BackendError> {
        if self.broken {
            return Err(BackendError::Engine(
                "the commit log could not be cut back after a failed commit; reopen the store"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Extends `file` from `from` to `to` bytes with zeroed, allocated space: `fallocate` on Linux
/// (allocated blocks, read back as zeros, without writing them), elsewhere a plain size
/// change (a hole, also read back as zeros).
///
/// # Errors
/// The OS's (a full disk, a file system without `fallocate`).
fn reserve_space(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    if to <= from {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), from, to - from)
            .map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        file.set_len(to)
    }
}

/// Writes `bytes` at `offset`.
fn write_at(file: &mut File, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// Syncs the directory holding `path`, so that a newly created file's entry is durable.
fn sync_parent(path: &Path) -> Result<(), BackendError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => Ok(()),
        // Some platforms cannot open or sync a directory; the file itself is synced.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(map_io(e)),
    }
}

/// The id of `db`, read from [`ID_TABLE`], or made and stored (durably) on first use.
fn database_id(db: &Database) -> Result<[u8; 16], BackendError> {
    let read = db.begin_read().map_err(map_err)?;
    match read.open_table(ID_DEF) {
        Ok(table) => {
            if let Some(value) = table.get(ID_KEY).map_err(map_err)? {
                return <[u8; 16]>::try_from(value.value()).map_err(|_| {
                    BackendError::Corrupted("the commit log's database id is not 16 bytes".into())
                });
            }
        }
        Err(TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(map_err(e)),
    }
    drop(read);
    let id = new_id();
    let txn = db.begin_write().map_err(map_err)?;
    {
        let mut table = txn.open_table(ID_DEF).map_err(map_err)?;
        table.insert(ID_KEY, id.as_slice()).map_err(map_err)?;
    }
    txn.commit().map_err(map_err)?;
    Ok(id)
}

/// 16 bytes unique to this database: not a secret, only an identity, so std's randomly keyed
/// SipHash over the time and process id is enough (no cryptographic generator needed).
fn new_id() -> [u8; 16] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut id = [0u8; 16];
    for (i, half) in id.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_usize(i);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    id
}

/// The header of the log of database `id`: magic ‖ version ‖ reserved 0 ‖ id.
pub(crate) fn header(id: &[u8; 16]) -> [u8; HEADER_BYTES as usize] {
    let mut header = [0u8; HEADER_BYTES as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[16..].copy_from_slice(id);
    header
}

/// Checks a log's header (its first [`HEADER_BYTES`] bytes, or more).
pub(crate) fn check_header(bytes: &[u8], id: &[u8; 16]) -> Result<(), BackendError> {
    let bad = |what: &str| BackendError::Corrupted(format!("commit log: {what}"));
    if &bytes[..8] != MAGIC {
        return Err(bad("not a tresor commit log (bad magic)"));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION {
        return Err(bad(&format!("unknown version {version}")));
    }
    if &bytes[16..32] != id {
        return Err(bad("it belongs to another database"));
    }
    Ok(())
}

/// The check of a record.
pub(crate) fn check(id: &[u8; 16], len: &[u8], body: &[u8]) -> [u8; CHECK_BYTES] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(id);
    hasher.update(len);
    hasher.update(body);
    let mut out = [0u8; CHECK_BYTES];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECK_BYTES]);
    out
}

/// Appends the record of `ops` (sequence number `seq`) to `buf`.
pub(crate) fn encode_record(
    buf: &mut Vec<u8>,
    id: &[u8; 16],
    seq: u64,
    ops: &[Op],
) -> Result<(), BackendError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&u32_len(ops.len())?.to_le_bytes());
    for op in ops {
        match op {
            Op::Put { table, key, value } => {
                buf.push(PUT);
                put_table(buf, table)?;
                put_bytes(buf, key)?;
                put_bytes(buf, value)?;
            }
            Op::Delete { table, key } => {
                buf.push(DELETE);
                put_table(buf, table)?;
                put_bytes(buf, key)?;
            }
        }
    }
    let body_len = u32_len(buf.len() - start - 4)?;
    buf[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    let sum = check(id, &buf[start..start + 4], &buf[start + 4..]);
    buf.extend_from_slice(&sum);
    Ok(())
}

/// `n` as a `u32` length.
fn u32_len(n: usize) -> Result<u32, BackendError> {
    u32::try_from(n).map_err(|_| BackendError::ValueTooLarge(n))
}

fn put_table(buf: &mut Vec<u8>, table: &str) -> Result<(), BackendError> {
    // Table names are validated (1 to 64 bytes) before a batch is queued.
    let len =
        u8::try_from(table.len()).map_err(|_| BackendError::InvalidTableName(table.into()))?;
    buf.push(len);
    buf.extend_from_slice(table.as_bytes());
    Ok(())
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) -> Result<(), BackendError> {
    buf.extend_from_slice(&u32_len(bytes.len())?.to_le_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

/// A reader over one record's body.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n).map(<[u8]>::to_vec)
    }
}

/// Decodes a record's body into its sequence number and operations; `None` if malformed.
pub(crate) fn decode_body(body: &[u8]) -> Option<(u64, Vec<Op>)> {
    let mut c = Cursor(body);
    let seq = c.u64()?;
    let count = c.u32()?;
    let mut ops = Vec::new();
    for _ in 0..count {
        let tag = c.u8()?;
        let name_len = usize::from(c.u8()?);
        let table = std::str::from_utf8(c.take(name_len)?).ok()?.to_owned();
        let key = c.bytes()?;
        ops.push(match tag {
            PUT => Op::Put {
                table: table.into(),
                key,
                value: c.bytes()?,
            },
            DELETE => Op::Delete {
                table: table.into(),
                key,
            },
            _ => return None,
        });
    }
    if !c.0.is_empty() {
        return None;
    }
    Some((seq, ops))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::replay::parse_records;

    fn batch(i: u8) -> WriteBatch {
        let mut b = WriteBatch::new();
        b.put("t", vec![i], vec![i; usize::from(i) + 1]);
        if i.is_multiple_of(3) {
            b.delete("u", vec![i]);
        }
        b
    }

    fn db(dir: &Path) -> (Database, PathBuf) {
        let path = dir.join("s.redb");
        (Database::create(&path).unwrap(), path)
    }

    fn count(db: &Database, table: &str) -> usize {
        use redb::ReadableTableMetadata;
        let r = db.begin_read().unwrap();
        match r.open_table(crate::read::Def::new(table)) {
            Ok(t) => usize::try_from(t.len().unwrap()).unwrap(),
            Err(_) => 0,
        }
    }

    #[test]
    fn records_round_trip() {
        let id = [7u8; 16];
        let mut buf = vec![0u8; HEADER_BYTES as usize];
        let batches: Vec<WriteBatch> = (0..5).map(batch).collect();
        for (i, b) in batches.iter().enumerate() {
            encode_record(&mut buf, &id, i as u64 + 1, b.ops()).unwrap();
        }
        let (ops, good) = parse_records(&buf, &id);
        assert_eq!(good, buf.len() as u64);
        let want: Vec<Vec<Op>> = batches.iter().map(|b| b.ops().to_vec()).collect();
        assert_eq!(ops, want);
        // Another database's id fails every check.
        let (ops, good) = parse_records(&buf, &[8u8; 16]);
        assert!(ops.is_empty());
        assert_eq!(good, HEADER_BYTES);
    }

    /// Every cut of the log, and every flipped byte, gives a prefix of the records, never
    /// garbage and never a panic.
    #[test]
    fn a_torn_or_damaged_tail_gives_a_prefix() {
        let id = [1u8; 16];
        let mut buf = vec![0u8; HEADER_BYTES as usize];
        let mut ends = Vec::new();
        let batches: Vec<WriteBatch> = (0..4).map(batch).collect();
        for (i, b) in batches.iter().enumerate() {
            encode_record(&mut buf, &id, i as u64 + 1, b.ops()).unwrap();
            ends.push(buf.len());
        }
        for cut in HEADER_BYTES as usize..=buf.len() {
            let (ops, good) = parse_records(&buf[..cut], &id);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(ops.len(), whole, "cut at {cut}");
            assert_eq!(
                good,
                if whole == 0 {
                    HEADER_BYTES
                } else {
                    ends[whole - 1] as u64
                }
            );
        }
        for at in HEADER_BYTES as usize..buf.len() {
            let mut damaged = buf.clone();
            damaged[at] ^= 0x40;
            let (ops, _) = parse_records(&damaged, &id);
            let before = ends.iter().filter(|&&e| e <= at).count();
            assert_eq!(ops.len(), before, "flip at {at}");
        }
        // Records out of sequence (a stale record after a fresh one) stop the replay too.
        let mut stale = vec![0u8; HEADER_BYTES as usize];
        encode_record(&mut stale, &id, 1, batches[0].ops()).unwrap();
        encode_record(&mut stale, &id, 5, batches[1].ops()).unwrap();
        assert_eq!(parse_records(&stale, &id).0.len(), 1);
    }

    #[test]
    fn open_replays_and_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (db, path) = db(dir.path());
        let (mut log, recovery) = CommitLog::open(&db, &path).unwrap();
        assert_eq!(recovery, Recovery::default());
        let batches: Vec<WriteBatch> = (1..=6).map(batch).collect();
        let refs: Vec<&WriteBatch> = batches.iter().collect();
        log.append(&refs[..4]).unwrap();
        log.append(&refs[4..]).unwrap();
        log.sync().unwrap();
        // Never applied to the database: only the log has them (as after a crash).
        assert_eq!(count(&db, "t"), 0);
        let mut logged = std::fs::read(log_path(&path)).unwrap();
        // The file has space reserved after the records: zeros, a multiple of the step.
        assert_eq!(logged.len() as u64, RESERVE_BYTES);
        assert!(log.len() < RESERVE_BYTES);
        assert!(logged[log.len() as usize..].iter().all(|&b| b == 0));
        // Reopened as it is (as after a kill): every record, and the zeros are no damage.
        drop(log);
        let (log, recovery) = CommitLog::open(&db, &path).unwrap();
        assert_eq!(recovery.replayed_batches, 6);
        assert_eq!(recovery.discarded_bytes, 0);
        drop(log);
        // A torn record after them (its length and the first byte of its sequence number,
        // 1), then reserved zeros again. (A torn tail's own trailing zeros cannot be told
        // from reserved space, so they are not counted as discarded.)
        logged.truncate(logged.iter().rposition(|&b| b != 0).unwrap() + 1);
        let mut torn = logged.clone();
        torn.extend_from_slice(&logged[HEADER_BYTES as usize..HEADER_BYTES as usize + 5]);
        torn.extend_from_slice(&[0u8; 1000]);
        std::fs::write(log_path(&path), &torn).unwrap();
        let (log, recovery) = CommitLog::open(&db, &path).unwrap();
        assert_eq!(recovery.replayed_batches, 6);
        assert_eq!(recovery.discarded_bytes, 5);
        assert_eq!(count(&db, "t"), 6);
        assert_eq!(log.len(), HEADER_BYTES);
        assert_eq!(
            std::fs::read(log_path(&path)).unwrap().len() as u64,
            HEADER_BYTES
        );
        // Replaying the same records again over the state that has them changes nothing.
        drop(log);
        std::fs::write(log_path(&path), &logged).unwrap();
        let (_log, recovery) = CommitLog::open(&db, &path).unwrap();
        assert_eq!(recovery.replayed_batches, 6);
        assert_eq!(count(&db, "t"), 6);
    }

    /// When space cannot be reserved, appends grow the file as before (and replay reads
    /// them); the next emptying of the log tries again.
    #[test]
    fn appends_work_without_reserved_space_and_emptying_tries_again() {
        let dir = tempfile::tempdir().unwrap();
        let (db, path) = db(dir.path());
        let (mut log, _) = CommitLog::open(&db, &path).unwrap();
        let file_len = || std::fs::metadata(log_path(&path)).unwrap().len();
        log.fail_next_reserve = true;
        log.append(&[&batch(1)]).unwrap();
        log.append(&[&batch(2)]).unwrap();
        assert!(log.reserve_failed);
        assert_eq!(file_len(), log.len(), "no space reserved after a failure");
        log.sync().unwrap();
        drop(log);
        let (mut log, recovery) = CommitLog::open(&db, &path).unwrap();
        assert_eq!(recovery.replayed_batches, 2);
        assert_eq!(recovery.discarded_bytes, 0);
        // Opening emptied the log: reserving works again.
        assert!(!log.reserve_failed);
        log.append(&[&batch(3)]).unwrap();
        assert_eq!(file_len(), RESERVE_BYTES);
    }

    #[test]
    fn a_failed_commit_is_cut_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (db, path) = db(dir.path());
        let (mut log, _) = CommitLog::open(&db, &path).unwrap();
        let kept = batch(1);
        let failed = batch(2);
        log.append(&[&kept]).unwrap();
        let mark = log.append(&[&failed]).unwrap();
        log.sync().unwrap();
        log.cut(mark).unwrap();
        drop(log);
        let (_log, recovery) = CommitLog::open(&db, &path).unwrap();
        assert_eq!(recovery.replayed_batches, 1);
        assert_eq!(count(&db, "t"), 1);
    }

    #[test]
    fn a_log_of_another_database_or_not_a_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, a_path) = db(dir.path());
        let (_log, _) = CommitLog::open(&a, &a_path).unwrap();
        let b_path = dir.path().join("b.redb");
        let b = Database::create(&b_path).unwrap();
        std::fs::copy(log_path(&a_path), log_path(&b_path)).unwrap();
        assert!(matches!(
            CommitLog::open(&b, &b_path),
            Err(BackendError::Corrupted(m)) if m.contains("another database")
        ));
        std::fs::write(log_path(&b_path), vec![0x55u8; 64]).unwrap();
        assert!(matches!(
            CommitLog::open(&b, &b_path),
            Err(BackendError::Corrupted(m)) if m.contains("magic")
        ));
        // A file shorter than a header (a crash while creating it) is a new log.
        std::fs::write(log_path(&b_path), b"tres").unwrap();
        let (log, recovery) = CommitLog::open(&b, &b_path).unwrap();
        assert_eq!(recovery.discarded_bytes, 4);
        assert_eq!(log.len(), HEADER_BYTES);
    }
}
