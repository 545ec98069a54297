//! The SQLite storage backend of tresor, through `rusqlite` with its bundled SQLite.
//!
//! [`SqliteBackend`] implements [`tresor_backend::Backend`] over one SQLite database file in
//! WAL mode. It exists to prove the trait is not shaped around redb: it passes the same
//! conformance suite unchanged.
//!
//! # Layout
//! - One SQL table per tresor table, `"t_<name>"(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID`.
//!   SQLite compares BLOBs with `memcmp`, a shorter key first on a common prefix: the order of
//!   `[u8]`, so scans need no translation.
//! - `tresor_tables(name, entries)`: every table ever written, with its entry count, updated
//!   in the same transaction as every write (so `len` and `stats` never scan).
//!
//! # Writes, durability, isolation
//! One writer thread owns the only write connection and commits queued batches as a group
//! (one transaction, one WAL fsync), each batch in its own savepoint so that a failing batch is
//! rolled back alone (see `writer.rs`). `Immediate` groups commit with `synchronous=FULL`
//! (the WAL is fsynced before the answer); `Eventual` groups with `synchronous=NORMAL`: visible
//! at once, written to the WAL but not fsynced, so a power loss (not a process crash: the
//! data is in the OS cache) may lose them until the next `Immediate` commit (whose WAL sync
//! covers every earlier frame), checkpoint or clean close. Conditions run inside the write
//! transaction: serializable, as in redb.
//!
//! Reads use pooled read connections, each call inside one read transaction; a snapshot is a
//! read transaction held open on a connection of its own. Every SQLite call runs on tokio's
//! blocking pool or the writer thread, never on an async worker thread.
//!
//! # Locking
//! The database file is locked with `flock` while open (an SQLite database may normally be
//! shared by processes; a tresor store may not): a second open gets `Locked`.
//!
//! # Code map
//! - `backend.rs`: [`SqliteBackend`], opening, reads, the trait implementation.
//! - `writer.rs`: the writer thread, group commit, compaction (`VACUUM`).
//! - `schema.rs`: SQL layout and the reads shared by calls, views and snapshots.
//! - `view.rs`: `SqliteView`, a read transaction as a `ReadView`, where reads check their
//!   arguments; it serves read views, each read call, and snapshots (through
//!   `tresor_backend::BlockingSnapshot`).
//! - `error.rs`: the mapping of SQLite errors to `BackendError`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod error;
mod schema;
mod view;
mod writer;

pub use backend::SqliteBackend;
