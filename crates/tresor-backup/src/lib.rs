//! Encrypted backups of a tresor store, in two formats:
//!
//! - **Repositories (format 2)** — [`Repository`]: a directory or any [`BackupTarget`] (S3,
//!   an erasure-coded set) holding content-addressed, zstd-compressed, AES-256-GCM chunks
//!   shared between backups, and one sealed manifest per backup. Incremental by construction
//!   (content-defined chunking), with [`Repository::verify`], [`Repository::restore`],
//!   [`Repository::forget`] (restic's retention rules, [`retention`]) and
//!   [`Repository::prune`].
//! - **Single files (format 1)** — [`create`], [`verify`], [`restore`]: still written by
//!   [`create`] and always readable.
//!
//! The rest of this page describes format 1; format 2 follows the format-1 specification
//! below.
//!
//! A backup is a single file that holds every entry of every table of the catalog
//! ([`tresor_schema::catalog::TABLES`]), in encrypted chunks of about 1 MiB, behind a plaintext
//! header that carries the store's key header. It can therefore be verified and restored on a
//! new device with the passphrase alone. Sealed records are stored opened (their plaintext
//! record bytes) inside the encrypted chunks and are re-sealed under fresh nonces by a restore.
//!
//! ```text
//! create:  Backend ──paged scans, catalog order──▶ entries ──1 MiB chunks, AES-256-GCM──▶ file
//! verify:  file ──header, unlock, every tag, every entry, trailer, digest──▶ BackupSummary
//! restore: file ──as verify──▶ one WriteBatch per chunk (records re-sealed) ──▶ empty Backend
//! ```
//!
//! # Contracts
//! - **Backups read a snapshot:** [`create`] and [`Repository::backup`] read everything from
//!   one backend snapshot ([`tresor_backend::Snapshot`]), so writers go on meanwhile and the
//!   backup holds exactly the snapshot's state ([`create_from_snapshot`],
//!   [`Repository::backup_snapshot`] take a snapshot from the caller).
//! - **Restore into a fresh target, publish on success:** [`restore`] refuses a target whose
//!   catalog tables are not all empty, and returns `Ok` only after the whole backup (trailer
//!   and stream digest included) has been checked and the last batch committed durably. On
//!   error the target may hold part of the backup: the caller makes a store visible only once
//!   the restore has succeeded (the facade restores into a temporary file and renames it).
//! - **Bounded memory:** every function holds at most about two chunks (a few MiB) whatever
//!   the store size; no allocation follows an untrusted length above a fixed cap (64 MiB per
//!   chunk, 1 KiB of key header).
//! - **Hostile input:** any byte string given to [`verify`] or [`restore`] yields a typed
//!   [`BackupError`], never a panic. Reordered, dropped, duplicated or modified chunks, chunks
//!   spliced from another backup, truncation and trailing bytes are all detected.
//! - **No secret in messages:** errors name tables, chunk indexes, counts and fixed reasons,
//!   never key material or record contents.
//!
//! # Code map
//! - [`format`](mod@format): the byte layout (public constants; header, AAD, entry and
//!   trailer codecs).
//! - `writer.rs`: [`create`].
//! - `reader.rs`: the chunk reader shared by [`verify`] and [`restore`]; [`verify`].
//! - `restore.rs`: [`restore`].
//! - `check.rs`: entry validation and counting, shared by all three.
//! - [`repo`](mod@repo), [`repo_format`](mod@repo_format), `stream.rs`: format 2.
//! - [`target`](mod@target): where repositories live; [`retention`](mod@retention): `forget`.
//! - [`BackupError`] (`error.rs`), [`BackupSummary`].
//!
#![doc = include_str!("../FORMAT.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod check;
mod error;
pub mod format;
mod reader;
pub mod repo;
pub mod repo_format;
mod restore;
pub mod retention;
mod stream;
pub mod target;
mod writer;

pub use error::{BackupError, TargetError};
pub use reader::verify;
pub use repo::{
    BackupInfo, BackupOptions, BackupReport, ForgetReport, NoProgress, Progress, PruneReport,
    Repository, VerifyReport,
};
pub use restore::restore;
pub use retention::{Decision, RetentionPolicy, Span};
pub use target::{BackupTarget, open_url};
#[doc(hidden)]
pub use writer::create_with_chunk_target;
pub use writer::{create, create_from_snapshot};

/// What a backup holds, as returned by [`create`], [`verify`] and [`restore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupSummary {
    /// The backup's random id (also the salt of its chunk key).
    pub backup_id: [u8; 16],
    /// Creation time recorded in the header, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Schema version of the backed-up entries.
    pub schema_version: u32,
    /// Total number of entries.
    pub entries: u64,
    /// `(table name, entry count)` for every catalog table, in catalog order.
    pub tables: Vec<(String, u64)>,
    /// Size of the backup file in bytes.
    pub bytes: u64,
}

impl BackupSummary {
    /// The entry count of `table` (0 for a table the catalog does not have).
    pub fn table_entries(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|(name, _)| name == table)
            .map_or(0, |(_, count)| *count)
    }
}
