//! The [redb](https://docs.rs/redb) storage backend of tresor: one redb file holds every table.
//!
//! [`RedbBackend`] implements [`tresor_backend::Backend`]: each backend table is a redb table of
//! `&[u8] -> &[u8]`; reads run in one redb read transaction per call (a consistent view), and a
//! [`tresor_backend::Snapshot`] is a redb read transaction kept open.
//!
//! # Group commit
//! Every write goes through one dedicated writer thread. It takes the commits queued at the
//! moment it is free (up to 512) and applies them in **one** write transaction with **one**
//! fsync (if any of them is `Immediate`), checking each batch's conditions against the state the
//! batches before it left; a batch whose condition fails is skipped and only its caller is told.
//! Callers are answered after the transaction committed, so an `Immediate` commit returns once
//! durable. [`RedbBackend::writer_stats`] counts batches and transactions.
//!
//! # Durability and the commit log
//! With the commit log on ([`RedbConfig::commit_log`], the default), the writer appends each
//! group's batches to `<path>-log` and, if any of them is `Immediate`,
//! syncs the log (`fdatasync`) **before** committing the group's redb transaction without sync
//! (`redb::Durability::None`); the callers are answered after both. A durable commit is
//! thereby one sequential append and one sync instead of redb writing and syncing every page
//! the batch copied (on the chitchat corpus: a durable batch of 1,000 messages 1.9× faster, 64
//! concurrent durable writers 2.4×; docs/BENCHMARKS.md). Every
//! [`RedbConfig::checkpoint_bytes`] of log, at compaction and at a clean close, a checkpoint
//! (an empty `Immediate` redb commit) makes the redb file hold everything and empties the log;
//! a clean close deletes it. Every open replays what the log holds ([`RedbBackend::recovery`]).
//! The format and the crash analysis: `src/log.rs` and docs/FORMAT.md 1.17. A durable group's
//! sync runs on the log's own sync thread while the writer applies the group to its
//! uncommitted transaction; redb commits only after both.
//!
//! `Eventual` groups are appended without sync: a killed process loses none of them, a power
//! loss a suffix. While the file system has less than [`RedbConfig::log_min_free_bytes`]
//! free, the writer checkpoints and then commits directly, as with the log off, so that a
//! disk filling up leaves room for the checkpoint (unless another program takes the last
//! 256 MiB between two commits: then the data is safe in the log, and writes and reopening
//! fail with `DiskFull` until space is freed). With the log off, `Immediate` groups commit
//! with `redb::Durability::Immediate` and `Eventual` ones with `redb::Durability::None`, which a
//! crash loses back to the last durable commit (a suffix). Both tested with killed child
//! processes in `tests/processes.rs`.
//!
//! # Architecture invariants
//! - This crate knows nothing of encryption or records: it stores the bytes it is given.
//! - No redb call runs on an async worker thread: reads and snapshots run on tokio's blocking
//!   pool (`spawn_blocking`), writes and compaction on the writer thread (which spreads a
//!   large group's tables over threads it starts for that group, and syncs the log on a
//!   thread of its own). Only
//!   [`RedbBackend::open`] and [`RedbBackend::open_existing`] block their caller (and dropping
//!   the last handle, which waits for the queued commits and closes the file).
//! - A batch is validated whole (table names) before it is queued, and its conditions are
//!   checked inside the write transaction that applies it: a batch is applied entirely or not
//!   at all.
//! - A read begun after a commit was acknowledged sees it: reads share the view of the latest
//!   commit (no read transaction begun, no table opened again, per read), and every commit of
//!   the writer thread forgets that view before any caller is answered (`writer::commit`).
//!   The shared view is dropped at the next commit, so it pins no page a later commit frees.
//! - Every redb error becomes a [`tresor_backend::BackendError`] in one place, `error.rs`; no
//!   message carries stored keys or values.
//!
//! # Code map
//! - `backend.rs`: [`RedbBackend`], opening, and the [`tresor_backend::Backend`] implementation.
//! - `writer.rs`: the writer thread, group commit, checkpoints, compaction, [`WriterStats`].
//! - `apply.rs`: how a group's operations are applied: per table, in key order, new keys that
//!   share a gap as one cursor run (full leaves), the tables of a large group over several
//!   threads ([`RedbConfig::apply_threads`]).
//! - `log.rs`: the commit log: its format, append, sync thread, cut-back, opening
//!   ([`Recovery`]).
//! - `replay.rs`: replay at open: the log read record by record (never whole), applied in
//!   chunks of 8 MiB, the last commit durable.
//! - `space.rs`: the file system's free space (`statvfs`), for the log's space policy.
//! - `compact.rs`: compaction by rewrite (every table copied in key order into a new file that
//!   replaces the old one), with its crash analysis.
//! - `read.rs`: reads inside one read transaction (shared by calls, views and snapshots).
//! - `db.rs`: the open database, whose close cannot panic out of a destructor, and its latest
//!   view: the read transaction every read shares until the next commit.
//! - `config.rs`: [`RedbConfig`]: the page-cache bound ([`DEFAULT_CACHE_BYTES`]), the commit
//!   log switch and its checkpoint size ([`DEFAULT_CHECKPOINT_BYTES`]).
//! - `view.rs`: `RedbView`, one read transaction as a `ReadView` (each table opened once per
//!   view), where reads check their arguments; it serves read views, snapshots (through
//!   `tresor_backend::BlockingSnapshot`) and each read call.
//! - `error.rs`: the mapping of redb errors to `BackendError` (and the error of a panicked call).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod apply;
mod backend;
mod compact;
mod config;
mod db;
mod error;
mod log;
mod read;
mod replay;
mod space;
mod view;
mod writer;

pub use backend::RedbBackend;
pub use config::{
    DEFAULT_CACHE_BYTES, DEFAULT_CHECKPOINT_BYTES, DEFAULT_LOG_MIN_FREE_BYTES, RedbConfig,
    default_apply_threads,
};
pub use log::Recovery;
pub use writer::WriterStats;
