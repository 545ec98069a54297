//! The [redb](https://docs.rs/redb) storage backend of tresor: one redb file holds every table.
//!
//! [`RedbBackend`] implements [`tresor_backend::Backend`]: each backend table is a redb table of
//! `&[u8] -> &[u8]`, a write batch is one redb write transaction, and reads run in one redb read
//! transaction per call (a consistent snapshot).
//!
//! # Architecture invariants
//! - This crate knows nothing of encryption or records: it stores the bytes it is given.
//! - Every redb call runs on tokio's blocking pool (`spawn_blocking`), never on an async worker
//!   thread. Only [`RedbBackend::open`] and [`RedbBackend::open_existing`] block their caller.
//! - A batch is validated whole (table names) before its write transaction begins, and is
//!   committed in exactly one transaction: on any error the transaction aborts and nothing of the
//!   batch is visible.
//! - Every redb error becomes a [`tresor_backend::BackendError`] in one place, `error.rs`; no
//!   message carries stored keys or values.
//!
//! # Code map
//! - `backend.rs`: [`RedbBackend`], opening, and the [`tresor_backend::Backend`] implementation.
//! - `error.rs`: the mapping of redb errors (and task-join errors) to `BackendError`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod error;
mod read;
mod snapshot;
mod writer;

pub use backend::RedbBackend;
