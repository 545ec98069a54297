//! tresor: an encrypted, indexed, crash-safe storage engine for end-to-end-encrypted and
//! peer-to-peer messengers.
//!
//! A [`Tresor`] is one store: a redb or SQLite file (or any [`Backend`]) in which every value is sealed
//! with AES-256-GCM and every identifier in a key is a blinded token, unlocked by a passphrase.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tresor::Error> {
//! use tresor::{Message, Tresor};
//! let store = Tresor::open_or_create("chat.redb", "correct horse battery staple".into()).await?;
//! let messages = store.messages();
//! messages
//!     .save(&Message::new("m1", "room-1", "alice", Some("bob".into()), 1_700_000_000_000, "hi"))
//!     .await?;
//! let newest = messages.by_conversation("room-1", 50, None).await?;
//! assert_eq!(newest[0].body, "hi");
//! # Ok(()) }
//! ```
//!
//! A store runs inside a tokio runtime built with its time driver (`enable_all()` or
//! `enable_time()`, as `#[tokio::main]` does): the message sweeper and scheduled backups are
//! timer tasks.
//!
//! # Code map
//! - [`Tresor`] (`store.rs`): create, open, unlock, stats.
//! - [`BackendKind`] (`engine.rs`): the storage engine of a store file (redb or SQLite).
//! - [`Messages`] (`messages.rs`): the message repository: save, query, delete, scan;
//!   `save_batches` imports a stream of batches, building each while the one before commits
//!   (`pending.rs`: reads through that submitted, not yet committed batch).
//! - `group.rs`: group commit of concurrent message saves (one batch, one fsync; each
//!   caller its own outcome).
//! - [`BlockingView`] (`view.rs`): the synchronous core of every message query, run in one
//!   backend read view (one thread hop per async query); [`Tresor::blocking_view`] hands it to
//!   callers on their own threads (no hop: for bulk and latency-critical reads).
//! - `message_ext.rs`: messages, extended ([`MessageExtras`], [`MessageState`]): delivery
//!   status, threads, edits, redaction, media, `delete_before`, retention, disappearing
//!   messages and the sweeper ([`Messages::sweep`], [`Options::sweep_interval`]), unread
//!   counts ([`Conversations::unread`]).
//! - [`Table`] (`table.rs`): typed tables declared with [`typed::TableDef`]: get/put/delete,
//!   scans by secondary index.
//! - [`Conversations`] (`conversations.rs`): conversations, a typed table kept up to date by
//!   message writes.
//! - [`Contacts`], [`Sessions`], [`Proofs`], [`RelayQueue`], [`KeyValues`] (`families.rs`): record families on typed tables.
//! - [`Peers`] (`peers.rs`): peers for reconnection: quality, attempts and blacklisting,
//!   reconnection candidates, cleanup, quotas, encrypted export/import.
//! - [`Media`] (`media.rs`): encrypted media blobs in sealed fixed-size chunks, streamed
//!   in ([`MediaUpload`]) and out ([`MediaDownload`]), indexed by room, MIME type and time.
//! - [`Matrix`] (`room.rs`): Matrix-compatible room state: applying room events, rooms,
//!   state, members, keys (one-time key claims exactly once), receipts, typing, transactions,
//!   aliases. `locked.rs`: atomic read-modify-write of typed records under the writer lock.
//! - `cache.rs`: an LRU of opened typed records bounded in bytes ([`Options::cache_bytes`]).
//! - `migrate.rs`: schema migrations at open ([`Tresor::pending_migrations`]).
//! - `backup.rs`: backups to a repository (or a v1 file), verify, restore into a new store.
//! - `schedule.rs`: [`Tresor::schedule_backups`]: automatic backups with retention.
//! - `salvage.rs`: [`salvage`]: every readable message of a damaged store into a new one.
//! - `check.rs`: [`Tresor::check`] and [`Tresor::repair`]: integrity of records, indexes, counters;
//!   `check_typed.rs`: the same for typed tables (envelopes, `typed_index`, message states,
//!   unread counts).
//! - `keys.rs`: the keys of an open store: unlock ([`Secret`]: passphrase or [`RawKey`]),
//!   seal counting, [`Tresor::change_passphrase`], [`Tresor::key_info`].
//! - `rotation.rs`: [`Tresor::rotate_key`], online key rotation in atomic batches.
//! - [`Error`] (`error.rs`): every failure, typed.
//!
//! # Architecture invariants
//! - The facade is the only crate that knows every layer; it holds no format of its own: record
//!   layout and index keys come from `tresor-schema`, keys and sealing from `tresor-crypto`,
//!   storage from a `tresor-backend` implementation.
//! - All writes go through one writer lock per store, so read-modify-write steps (sequence
//!   numbers, per-conversation counts) are never interleaved; a write is one atomic batch.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backup;
mod backup_status;
mod cache;
mod check;
mod check_typed;
mod conversations;
mod engine;
mod error;
mod families;
mod group;
mod keys;
mod locked;
mod media;
mod message_ext;
mod messages;
mod migrate;
mod options;
mod peers;
mod pending;
mod place;
mod room;
mod rotation;
mod salvage;
mod schedule;
mod store;
mod table;
mod view;

pub use backup::{
    BackupFile, open_repository, restore_backup, restore_backup_with, restore_from_repository,
    restore_from_repository_with, verify_backup,
};
pub use backup_status::{BackupEvent, BackupKind, LastBackup};
pub use check::{CheckReport, CheckSchedule, Issue, IssueKind, RepairReport, Severity};
pub use conversations::Conversations;
pub use engine::BackendKind;
pub use error::Error;
pub use families::{
    Contacts, KeyValues, Proofs, RELAY_FIRST_BACKOFF_MS, RELAY_MAX_BACKOFF_MS, RelayQueue, Sessions,
};
pub use keys::KeyInfo;
pub use media::{FLUSH_CHUNKS, MAX_CHUNK_SIZE, Media, MediaDownload, MediaUpload, NewMedia};
pub use message_ext::{MessageExtras, SWEEP_BATCH, SweepReport};
pub use messages::{Messages, SaveSummary};
pub use migrate::{MIGRATION_BATCH, MigrationStep};
pub use options::{DEFAULT_SEAL_LIMIT, Options};
pub use peers::{
    AttemptOutcome, Candidate, EXPORT_MAGIC, EvictionPolicy, PeerConfig, PeerQuery, PeerRetention,
    PeerSort, PeerStats, Peers,
};
pub use room::{Matrix, MatrixEvent, redact_content};
pub use rotation::{ROTATION_BATCH, RotationStatus, RotationStep, RotationSummary};
pub use salvage::{SalvageReport, salvage};
pub use schedule::{BackupPolicy, BackupRun, BackupSchedule, LatestBackup};
pub use store::{Stats, Tresor};
pub use table::{Order, Table};
pub use view::BlockingView;

pub use tresor_backend::{Backend, BackendError, CompactReport, Durability, MemoryBackend};
pub use tresor_backup::retention::{Span, UNLIMITED};
pub use tresor_backup::target::{
    DirTarget, ErasureRepair, ErasureTarget, ObjectInfo, open_erasure_url,
};
pub use tresor_backup::{
    BackupError, BackupInfo, BackupOptions, BackupReport, BackupSummary, BackupTarget, Decision,
    ForgetReport, NoProgress, Progress, PruneReport, Repository, RetentionPolicy, TargetError,
    VerifyReport, open_url,
};
pub use tresor_crypto::{KdfParams, Passphrase, RawKey, Secret};
pub use tresor_redb::RedbBackend;
pub use tresor_schema::Message;
pub use tresor_schema::matrix::{
    AccountData, DeviceKeys, Invite, OneTimeKey, Presence, Receipt, Room, RoomAlias, RoomMember,
    StateEvent, Transaction, TxnStatus, Typing,
};
pub use tresor_schema::media::{DEFAULT_CHUNK_SIZE, INCOMPLETE_GRACE_MS, MediaInfo};
pub use tresor_schema::message_state::{
    ConversationState, DeliveryStatus, Edit, MediaRef, MessageState, Redaction, Retention,
};
pub use tresor_schema::peers::{ConnectionQuality, ConnectionType, IceServer, Peer};
pub use tresor_schema::records::{
    Contact, Conversation, ConversationKind, MetaEntry, Proof, RelayItem, Session,
};
/// Declaring typed tables: [`typed::TableDef`], [`typed::IndexDef`], [`typed::KeyPart`]
/// (open one with [`Tresor::table`]).
pub use tresor_schema::typed;
#[cfg(feature = "sqlite")]
pub use tresor_sqlite::SqliteBackend;

/// The tresor version this library is (Cargo package version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The schema version this tresor writes (and the newest it reads; older stores are migrated
/// at open).
pub const SCHEMA_VERSION: u32 = tresor_schema::version::SCHEMA_VERSION;
