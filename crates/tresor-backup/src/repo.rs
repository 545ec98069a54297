//! Backup repositories (format version 2): deduplicated, compressed, encrypted chunks shared
//! between backups, one sealed manifest per backup; backup, list, verify, restore, forget,
//! prune.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tresor_backend::{Backend, Direction, Durability, KeyRange, Snapshot, WriteBatch};
use tresor_crypto::{CryptoError, KeyHeader, Secret, StoreKeys, TOKEN_LEN};
use tresor_schema::catalog::{
    CONVERSATIONS, MESSAGE_IDS, MESSAGES, META, MSG_BY_PEER, MSG_BY_TIME, PEERS, TABLES, TableKind,
};
use tresor_schema::index::order_key;
use tresor_schema::messages::{
    conversation_token, index_entries, indexed_record_key, open_message, peer_ids, peer_token,
    position, record_key, tokens,
};
use tresor_schema::{ConversationSummary, PeerSummary, sealed, version};

use crate::repo_format::{
    self, CHUNK_ID_LEN, ChunkRef, Chunking, Config, DEFAULT_CHUNKING, LOCK_BACKUP, LOCK_PRUNE,
    Manifest, REPO_ID_LEN, RepoKeys, STALE_LOCK_MS, chunk_name, hex, manifest_name, unhex,
};
use crate::retention::{self, Decision, RetentionPolicy};
use crate::stream::{
    Chunker, STREAM_MESSAGES, STREAM_META, StreamCheck, StreamParser, carried, carried_chunking,
    carried_tables,
};
use crate::target::BackupTarget;
use crate::{BackupError, BackupSummary};

/// Entries read per scan page while streaming a store.
const PAGE: usize = 1024;
/// Operations per write batch while rebuilding derived tables.
const REBUILD_BATCH: usize = 4096;
/// Entries of the first page of a rebuild scan, before their size is known.
const REBUILD_FIRST_PAGE: usize = 256;
/// Fewest entries per rebuild scan page.
const REBUILD_MIN_PAGE: usize = 16;
/// Target size of a rebuild scan page in bytes (the `messages` scan reads whole records).
const REBUILD_PAGE_BYTES: usize = 1024 * 1024;

/// Receives progress of long operations, in bytes of the logical stream. All methods default to
/// doing nothing.
pub trait Progress: Send + Sync {
    /// The total, when known in advance (restore, verify).
    fn total(&self, _bytes: u64) {}
    /// `bytes` more were processed.
    fn advance(&self, _bytes: u64) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// Options of [`Repository::backup`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BackupOptions {
    /// Free text stored (encrypted) in the manifest; at most 4,096 bytes are kept.
    pub description: String,
    /// Creation time to record, in milliseconds since the Unix epoch (`None`: now).
    pub created_ms: Option<i64>,
}

impl BackupOptions {
    /// Options with a description.
    pub fn with_description(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            created_ms: None,
        }
    }
}

/// One backup of a repository, as listed by [`Repository::list`] (read from its manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupInfo {
    /// The backup id (32 hex digits).
    pub id: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// The description given at creation.
    pub description: String,
    /// The tresor version that wrote it.
    pub tresor_version: String,
    /// Schema version of the entries.
    pub schema_version: u32,
    /// `(table, entry count)` of every catalog table of the source store.
    pub tables: Vec<(String, u64)>,
    /// Entries in the logical stream (`meta`, `messages` and the other carried tables).
    pub entries: u64,
    /// Length of the logical stream in bytes (uncompressed).
    pub stream_bytes: u64,
    /// Chunks the backup references.
    pub chunks: u64,
    /// Chunk objects this backup wrote (the others already existed).
    pub added_chunks: u64,
    /// Bytes of chunk objects this backup wrote.
    pub added_bytes: u64,
    /// Bytes of the manifest object.
    pub manifest_bytes: u64,
}

/// The result of [`Repository::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Backups whose manifest was opened and checked.
    pub backups: u64,
    /// Backups whose whole stream was read and checked (0 with a subset).
    pub streams_checked: u64,
    /// Distinct chunks the checked manifests reference.
    pub chunks_referenced: u64,
    /// Chunk objects read and checked (tag, decompression, id).
    pub chunks_read: u64,
    /// Bytes of chunk objects read.
    pub bytes_read: u64,
    /// Chunk objects in the repository that no manifest references (prune removes them).
    pub unreferenced_chunks: u64,
}

/// The result of [`Repository::forget`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForgetReport {
    /// One decision per backup, newest first.
    pub decisions: Vec<Decision>,
    /// Whether manifests were actually deleted (false for a dry run).
    pub applied: bool,
}

/// The result of [`Repository::prune`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Manifests read.
    pub backups: u64,
    /// Chunk objects found.
    pub chunks: u64,
    /// Chunk objects deleted (referenced by no manifest).
    pub chunks_deleted: u64,
    /// Bytes of the deleted chunk objects (when the target reports sizes).
    pub bytes_deleted: u64,
}

/// The result of [`Repository::backup`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The new backup.
    pub info: BackupInfo,
    /// Chunk objects in the repository before this backup.
    pub existing_chunks: u64,
}

/// An open backup repository on a [`BackupTarget`]: its config checked, its keys derived.
pub struct Repository {
    target: Arc<dyn BackupTarget>,
    config: Config,
    keys: RepoKeys,
    store_keys: Arc<StoreKeys>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("target", &self.target.describe())
            .field("id", &hex(&self.config.repo_id))
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Repository {
    /// Opens the repository on `target` with the passphrase alone (a new device): reads the
    /// `config`, unlocks its key header with `passphrase` (runs the KDF on tokio's blocking
    /// pool), and checks the config's MAC.
    ///
    /// # Errors
    /// [`BackupError::NotARepository`] if there is no config; [`BackupError::UnsupportedFormat`],
    /// [`BackupError::MalformedConfig`]; [`BackupError::WrongPassphrase`];
    /// [`BackupError::ConfigAuthentication`] if the config was modified;
    /// [`BackupError::Target`].
    pub async fn open(target: Arc<dyn BackupTarget>, secret: &Secret) -> Result<Self, BackupError> {
        let bytes = target
            .get("config")
            .await?
            .ok_or(BackupError::NotARepository)?;
        let (config, mac) = Config::decode(&bytes)?;
        let header =
            KeyHeader::decode(&config.key_header).map_err(|_| BackupError::MalformedConfig {
                reason: "key header does not decode",
            })?;
        let secret = secret.clone();
        let dek = tokio::task::spawn_blocking(move || header.unlock(&secret))
            .await
            .map_err(|_| BackupError::Crypto(CryptoError::Random))?
            .map_err(|e| match e {
                CryptoError::WrongPassphrase => BackupError::WrongPassphrase,
                other => BackupError::Crypto(other),
            })?;
        let store_keys = Arc::new(dek.store_keys());
        let keys = RepoKeys::derive(&store_keys, &config.repo_id);
        config.check_mac(&keys, &mac)?;
        Ok(Self {
            target,
            config,
            keys,
            store_keys,
        })
    }

    /// Opens the repository on `target` for the store whose keys are `store_keys` and whose
    /// encoded key header is `key_header`, creating it (with [`DEFAULT_CHUNKING`]) if the target
    /// has no `config`. No KDF runs. If the config authenticates under the store's keys but holds
    /// another key header (the passphrase was changed), the config is rewritten with the
    /// current one, so the repository opens with the current passphrase.
    ///
    /// # Errors
    /// [`BackupError::ConfigAuthentication`] if the repository belongs to another store (or
    /// was modified); the errors of [`Repository::open`] except the passphrase;
    /// [`BackupError::Crypto`] if the random generator fails.
    pub async fn open_or_init(
        target: Arc<dyn BackupTarget>,
        store_keys: Arc<StoreKeys>,
        key_header: &[u8],
    ) -> Result<Self, BackupError> {
        Self::open_or_init_with(target, store_keys, key_header, DEFAULT_CHUNKING).await
    }

    /// [`Repository::open_or_init`] with chosen chunking parameters for a new repository
    /// (ignored if the repository exists). Not part of the stable API.
    ///
    /// # Errors
    /// As [`Repository::open_or_init`]; [`BackupError::MalformedConfig`] for invalid
    /// parameters.
    #[doc(hidden)]
    pub async fn open_or_init_with(
        target: Arc<dyn BackupTarget>,
        store_keys: Arc<StoreKeys>,
        key_header: &[u8],
        chunking: Chunking,
    ) -> Result<Self, BackupError> {
        KeyHeader::decode(key_header).map_err(|_| BackupError::MalformedHeader {
            reason: "key header does not decode",
        })?;
        if let Some(bytes) = target.get("config").await? {
            let (mut config, mac) = Config::decode(&bytes)?;
            let keys = RepoKeys::derive(&store_keys, &config.repo_id);
            config.check_mac(&keys, &mac)?;
            if config.key_header != key_header {
                config.key_header = key_header.to_vec();
                target.put("config", config.encode(&keys)?).await?;
            }
            return Ok(Self {
                target,
                config,
                keys,
                store_keys,
            });
        }
        if !chunking.is_valid() {
            return Err(BackupError::MalformedConfig {
                reason: "invalid chunking parameters",
            });
        }
        let mut repo_id = [0u8; REPO_ID_LEN];
        tresor_crypto::random_bytes(&mut repo_id).map_err(BackupError::Crypto)?;
        let config = Config {
            repo_id,
            chunking,
            key_header: key_header.to_vec(),
        };
        let keys = RepoKeys::derive(&store_keys, &repo_id);
        target.put("config", config.encode(&keys)?).await?;
        Ok(Self {
            target,
            config,
            keys,
            store_keys,
        })
    }

    /// The target the repository lives on.
    pub fn target(&self) -> &Arc<dyn BackupTarget> {
        &self.target
    }

    /// The repository id (32 hex digits).
    pub fn id(&self) -> String {
        hex(&self.config.repo_id)
    }

    /// The store keys the repository was opened with (those of the backed-up store).
    pub fn store_keys(&self) -> &Arc<StoreKeys> {
        &self.store_keys
    }

    /// The encoded key header in the repository's config.
    pub fn key_header(&self) -> &[u8] {
        &self.config.key_header
    }

    async fn lock(&self, kind: &str) -> Result<String, BackupError> {
        let mut tag = [0u8; 8];
        tresor_crypto::random_bytes(&mut tag).map_err(BackupError::Crypto)?;
        let name = format!("locks/{kind}-{}", hex(&tag));
        let now = now_ms();
        self.target.put(&name, now.to_le_bytes().to_vec()).await?;
        let conflict = async {
            for other in self.target.list("locks/").await? {
                if other.name == name {
                    continue;
                }
                let other_kind = other
                    .name
                    .strip_prefix("locks/")
                    .and_then(|n| n.split_once('-'))
                    .map_or("", |(k, _)| k);
                let excludes = kind == LOCK_PRUNE || other_kind == LOCK_PRUNE;
                if !excludes {
                    continue;
                }
                let created = self
                    .target
                    .get(&other.name)
                    .await?
                    .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                    .map(i64::from_le_bytes);
                // A lock without a readable time counts as fresh: better refuse than race.
                let fresh = created.is_none_or(|t| now.saturating_sub(t) < STALE_LOCK_MS);
                if fresh {
                    return Ok::<_, BackupError>(Some(other.name));
                }
            }
            Ok(None)
        }
        .await;
        match conflict {
            Ok(None) => Ok(name),
            Ok(Some(lock)) => {
                let _ = self.target.delete(&name).await;
                Err(BackupError::RepositoryLocked { lock })
            }
            Err(e) => {
                let _ = self.target.delete(&name).await;
                Err(e)
            }
        }
    }

    /// Backs up every table of `backend` into the repository and returns the new backup.
    ///
    /// The logical stream is `meta` in key order, every `messages` record (opened) in time
    /// order, read page by page through `msg_by_time` (whose value, the conversation token,
    /// and key, the order key, make the record's key) and carried under its message token (the stream
    /// layout predates schema v4's record keys and has not changed), then every other catalog
    /// table that is not derived from the messages (the typed tables, and any table the
    /// catalog adds) in catalog order and key order, sealed values opened; it is cut into
    /// content-defined chunks (FastCDC, the repository's parameters), and only chunks whose
    /// id is not yet in the repository are compressed (zstd), sealed and written. The
    /// manifest is written last, so a backup that fails midway leaves only unreferenced
    /// chunks (removed by [`Repository::prune`]). A `locks/backup-…` object is held meanwhile
    /// (see [`Repository::prune`]). Memory: a scan page, about two chunks, and the set of
    /// chunk ids in the repository (32 bytes each).
    ///
    /// Everything is read from one snapshot of `backend` ([`Backend::snapshot`]) taken first,
    /// so writers go on while the backup runs and the backup is that snapshot's state.
    ///
    /// # Errors
    /// [`BackupError::RepositoryLocked`] while a prune runs; [`BackupError::KeyHeaderMismatch`]
    /// if the store's `meta` key header differs from the repository's;
    /// [`BackupError::Schema`] / [`BackupError::InvalidEntry`] for records that do not open,
    /// decode or agree with `msg_by_time` (including a store still in the v1–v3 layout, whose
    /// `msg_by_time` values are message tokens); [`BackupError::Backend`],
    /// [`BackupError::Target`], [`BackupError::Crypto`], [`BackupError::Io`] (compression).
    pub async fn backup(
        &self,
        backend: &dyn Backend,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<BackupReport, BackupError> {
        let snapshot = backend.snapshot().await?;
        self.backup_snapshot(&*snapshot, options, progress).await
    }

    /// [`Repository::backup`] of a snapshot taken by the caller: the backup holds exactly the
    /// snapshot's state, whatever is committed to the backend meanwhile (the facade takes the
    /// snapshot under its writer lock, with no key rotation in progress, then releases the
    /// lock, so writers never wait for a backup).
    ///
    /// # Errors
    /// As [`Repository::backup`].
    pub async fn backup_snapshot(
        &self,
        snapshot: &dyn Snapshot,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<BackupReport, BackupError> {
        let lock = self.lock(LOCK_BACKUP).await?;
        let result = self.backup_locked(snapshot, options, progress).await;
        let released = self.target.delete(&lock).await;
        let report = result?;
        released?;
        Ok(report)
    }

    async fn backup_locked(
        &self,
        backend: &dyn Snapshot,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<BackupReport, BackupError> {
        let mut existing: HashSet<[u8; CHUNK_ID_LEN]> = HashSet::new();
        for object in self.target.list("chunks/").await? {
            if let Some(id) = object
                .name
                .strip_prefix("chunks/")
                .and_then(unhex::<CHUNK_ID_LEN>)
            {
                existing.insert(id);
            }
        }
        let existing_chunks = existing.len() as u64;
        let mut source_tables = Vec::with_capacity(TABLES.len());
        for spec in TABLES {
            source_tables.push(backend.len(spec.name).await?);
        }
        let key_header = self.config.key_header.clone();
        let mut check = StreamCheck::new(&self.store_keys, &key_header, version::SCHEMA_VERSION);
        let mut sink = ChunkSink {
            repo: self,
            chunker: Chunker::new(self.config.chunking),
            existing,
            chunks: Vec::new(),
            hasher: blake3::Hasher::new(),
            stream_bytes: 0,
            added_bytes: 0,
            added_chunks: 0,
            progress,
        };
        let mut entry = Vec::new();

        // meta, in key order.
        let mut start = Bound::Unbounded;
        loop {
            let page = backend
                .scan(
                    META,
                    KeyRange {
                        start,
                        end: Bound::Unbounded,
                    },
                    Direction::Forward,
                    PAGE,
                )
                .await?;
            for (key, value) in &page {
                check.entry(STREAM_META, key, value).map_err(|e| match e {
                    BackupError::MalformedStream { reason } => BackupError::InvalidEntry {
                        table: META,
                        reason,
                    },
                    other => other,
                })?;
                entry.clear();
                crate::stream::push_entry(&mut entry, STREAM_META, key, value);
                sink.push(&entry).await?;
            }
            match page.last() {
                Some((last, _)) if page.len() == PAGE => start = Bound::Excluded(last.clone()),
                _ => break,
            }
        }
        check.finish()?;

        // messages, in time order through msg_by_time.
        let mut start = Bound::Unbounded;
        loop {
            let page = backend
                .scan(
                    MSG_BY_TIME,
                    KeyRange {
                        start,
                        end: Bound::Unbounded,
                    },
                    Direction::Forward,
                    PAGE,
                )
                .await?;
            let mut record_keys: Vec<Vec<u8>> = Vec::with_capacity(page.len());
            for (order, conversation) in &page {
                // The entry's value is the conversation token; with its order key, the record
                // key.
                let record_key = indexed_record_key(MSG_BY_TIME, order, conversation).ok_or(
                    BackupError::InvalidEntry {
                        table: MSG_BY_TIME,
                        reason: "index entry is not an order key and a conversation token \
                                 (run tresor repair)",
                    },
                )?;
                record_keys.push(record_key);
            }
            let records = backend.get_many(MESSAGES, &record_keys).await?;
            for (record_key, record) in record_keys.iter().zip(records) {
                let record = record.ok_or(BackupError::InvalidEntry {
                    table: MSG_BY_TIME,
                    reason: "index entry points at no record (run tresor repair)",
                })?;
                // The record's AAD binds it to its record key: it opens only under that key.
                let opened = zeroize::Zeroizing::new(
                    sealed::open_bytes(&self.store_keys, MESSAGES, record_key, &record)
                        .map_err(BackupError::Schema)?,
                );
                let as_invalid = |e| match e {
                    BackupError::MalformedStream { reason } => BackupError::InvalidEntry {
                        table: MESSAGES,
                        reason,
                    },
                    other => other,
                };
                // The stream carries a message under its message token, as before v4.
                let (token, m) = check.decode_message(&opened).map_err(as_invalid)?;
                if order_key(position(&m))[..] != record_key[TOKEN_LEN..] {
                    return Err(BackupError::InvalidEntry {
                        table: MESSAGES,
                        reason: "message record is not at its record key's position",
                    });
                }
                check.accept_message(&m).map_err(as_invalid)?;
                entry.clear();
                crate::stream::push_entry(&mut entry, STREAM_MESSAGES, &token, &opened);
                sink.push(&entry).await?;
            }
            match page.last() {
                Some((last, _)) if page.len() == PAGE => start = Bound::Excluded(last.clone()),
                _ => break,
            }
        }
        let records = backend.len(MESSAGES).await?;
        if records != check.messages {
            return Err(BackupError::InvalidEntry {
                table: MSG_BY_TIME,
                reason: "msg_by_time and messages disagree (run tresor repair)",
            });
        }

        // Every other carried table (typed records and their index, and any table the
        // catalog adds), in catalog order, each in key order: cut after the messages, in
        // smaller chunks (see `carried_chunking`).
        sink.restart(carried_chunking(self.config.chunking)).await?;
        for (index, spec) in carried_tables() {
            let mut start = Bound::Unbounded;
            loop {
                let page = backend
                    .scan(
                        spec.name,
                        KeyRange {
                            start,
                            end: Bound::Unbounded,
                        },
                        Direction::Forward,
                        PAGE,
                    )
                    .await?;
                for (key, stored) in &page {
                    let opened;
                    let value: &[u8] = if spec.kind == TableKind::Sealed {
                        opened = zeroize::Zeroizing::new(
                            sealed::open_bytes(&self.store_keys, spec.name, key, stored)
                                .map_err(BackupError::Schema)?,
                        );
                        &opened
                    } else {
                        stored
                    };
                    check.entry(index, key, value).map_err(|e| match e {
                        BackupError::MalformedStream { reason } => BackupError::InvalidEntry {
                            table: spec.name,
                            reason,
                        },
                        other => other,
                    })?;
                    entry.clear();
                    crate::stream::push_entry(&mut entry, index, key, value);
                    sink.push(&entry).await?;
                }
                match page.last() {
                    Some((last, _)) if page.len() == PAGE => start = Bound::Excluded(last.clone()),
                    _ => break,
                }
            }
        }
        sink.finish().await?;

        let mut backup_id = [0u8; 16];
        tresor_crypto::random_bytes(&mut backup_id).map_err(BackupError::Crypto)?;
        let manifest = Manifest {
            backup_id,
            created_ms: options.created_ms.unwrap_or_else(now_ms),
            schema_version: version::SCHEMA_VERSION,
            tresor_version: env!("CARGO_PKG_VERSION").to_owned(),
            description: options.description.clone(),
            key_header: key_header.clone(),
            source_tables,
            stream_entries: check.entries(),
            stream_bytes: sink.stream_bytes,
            added_bytes: sink.added_bytes,
            added_chunks: sink.added_chunks,
            digest: *sink.hasher.finalize().as_bytes(),
            chunks: sink.chunks,
        };
        let bytes = manifest.seal(&self.keys, &self.config.repo_id)?;
        let manifest_bytes = bytes.len() as u64;
        self.target.put(&manifest_name(&backup_id), bytes).await?;
        Ok(BackupReport {
            info: info(&manifest, manifest_bytes),
            existing_chunks,
        })
    }

    /// Every backup in the repository, oldest first (each manifest is opened and checked).
    ///
    /// # Errors
    /// [`BackupError::ManifestAuthentication`] / [`BackupError::MalformedManifest`] for a
    /// damaged manifest; [`BackupError::Target`].
    pub async fn list(&self) -> Result<Vec<BackupInfo>, BackupError> {
        let mut out = Vec::new();
        for (_, manifest, size) in self.manifests().await? {
            out.push(info(&manifest, size));
        }
        out.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn manifests(&self) -> Result<Vec<(String, Manifest, u64)>, BackupError> {
        let mut out = Vec::new();
        for object in self.target.list("manifests/").await? {
            let Some(id) = object.name.strip_prefix("manifests/").and_then(unhex::<16>) else {
                continue;
            };
            out.push(self.manifest(&id).await?);
        }
        Ok(out)
    }

    async fn manifest(&self, id: &[u8; 16]) -> Result<(String, Manifest, u64), BackupError> {
        let name = manifest_name(id);
        let bytes = self
            .target
            .get(&name)
            .await?
            .ok_or_else(|| BackupError::BackupNotFound(hex(id)))?;
        let manifest = Manifest::open(&self.keys, &self.config.repo_id, id, &bytes)?;
        Ok((name, manifest, bytes.len() as u64))
    }

    /// Finds the backup named by `which`: `latest`, a full id, or a unique id prefix.
    ///
    /// # Errors
    /// [`BackupError::BackupNotFound`], [`BackupError::AmbiguousBackup`]; as
    /// [`Repository::list`].
    pub async fn find(&self, which: &str) -> Result<BackupInfo, BackupError> {
        let list = self.list().await?;
        if which == "latest" {
            return list
                .into_iter()
                .last()
                .ok_or_else(|| BackupError::BackupNotFound(which.to_owned()));
        }
        let which_lower = which.to_ascii_lowercase();
        let mut matches = list.into_iter().filter(|b| b.id.starts_with(&which_lower));
        let first = matches
            .next()
            .ok_or_else(|| BackupError::BackupNotFound(which.to_owned()))?;
        if which.is_empty() || matches.next().is_some() {
            return Err(BackupError::AmbiguousBackup(which.to_owned()));
        }
        Ok(first)
    }

    async fn chunk(&self, c: &ChunkRef) -> Result<(zeroize::Zeroizing<Vec<u8>>, u64), BackupError> {
        let object = self
            .target
            .get(&chunk_name(&c.id))
            .await?
            .ok_or_else(|| BackupError::MissingChunk { chunk: hex(&c.id) })?;
        let plain = repo_format::open_chunk(
            &self.keys,
            &self.config.repo_id,
            &c.id,
            &object,
            c.len as usize,
        )?;
        if plain.len() != c.len as usize {
            return Err(BackupError::CorruptChunk {
                chunk: hex(&c.id),
                reason: "length differs from the manifest",
            });
        }
        Ok((plain, object.len() as u64))
    }

    /// Reads a backup's whole stream, checking every chunk and entry, calling `each` with every
    /// checked entry (and its message, for `messages`); then checks the counts and digest.
    async fn read_stream(
        &self,
        manifest: &Manifest,
        progress: &dyn Progress,
        mut each: impl FnMut(
            u8,
            &[u8],
            &[u8],
            Option<tresor_schema::Message>,
        ) -> Result<(), BackupError>
        + Send,
        mut after_chunk: impl AsyncBatch,
    ) -> Result<(u64, u64), BackupError> {
        version::check(manifest.schema_version).map_err(BackupError::UnsupportedSchema)?;
        let mut check = StreamCheck::new(
            &self.store_keys,
            &manifest.key_header,
            manifest.schema_version,
        );
        let mut parser = StreamParser::new();
        let mut hasher = blake3::Hasher::new();
        let mut bytes_read = 0;
        progress.total(manifest.stream_bytes);
        for c in &manifest.chunks {
            let (plain, object_len) = self.chunk(c).await?;
            bytes_read += object_len;
            hasher.update(&plain);
            parser.feed(&plain, |table, key, value| {
                let m = check.entry(table, key, value)?;
                each(table, key, value, m)
            })?;
            drop(plain);
            after_chunk.flush(false).await?;
            progress.advance(u64::from(c.len));
        }
        parser.finish()?;
        check.finish()?;
        let mismatch = |what: &str, recorded: u64, counted: u64| {
            if recorded == counted {
                Ok(())
            } else {
                Err(BackupError::ManifestMismatch {
                    what: what.to_owned(),
                    recorded,
                    counted,
                })
            }
        };
        mismatch("stream entries", manifest.stream_entries, check.entries())?;
        let recorded = |table: usize| manifest.source_tables.get(table).copied().unwrap_or(0);
        for (index, spec) in TABLES.iter().enumerate() {
            if index <= usize::from(STREAM_MESSAGES) || carried(index) {
                mismatch(
                    &format!("entries of table {}", spec.name),
                    recorded(index),
                    check.table_entries(index),
                )?;
            }
        }
        if hasher.finalize().as_bytes() != &manifest.digest {
            return Err(BackupError::DigestMismatch);
        }
        Ok((bytes_read, check.messages))
    }

    /// Checks backups without writing anything (restic's `check --read-data`).
    ///
    /// `which` selects one backup (`latest`, an id or a unique prefix); `None` checks them all.
    /// Every selected manifest is opened and checked, and every chunk it lists must exist.
    /// Without `subset`, each selected backup's whole stream is read: every chunk's tag,
    /// decompression and id, every entry, the counts and the stream digest (a chunk shared by
    /// several backups is read once per backup). With `subset = Some(f)` (`0 < f <= 1`), a
    /// random fraction `f` of the distinct referenced chunks is read and checked instead of the
    /// streams.
    ///
    /// # Errors
    /// The first problem found, typed: [`BackupError::MissingChunk`],
    /// [`BackupError::CorruptChunk`], [`BackupError::ManifestAuthentication`],
    /// [`BackupError::MalformedManifest`], [`BackupError::MalformedStream`],
    /// [`BackupError::ManifestMismatch`], [`BackupError::DigestMismatch`],
    /// [`BackupError::KeyHeaderMismatch`], [`BackupError::UnsupportedSchema`],
    /// [`BackupError::BackupNotFound`], [`BackupError::InvalidPolicy`] for a fraction out of
    /// range, [`BackupError::Target`].
    pub async fn verify(
        &self,
        which: Option<&str>,
        subset: Option<f64>,
        progress: &dyn Progress,
    ) -> Result<VerifyReport, BackupError> {
        if let Some(f) = subset
            && !(f > 0.0 && f <= 1.0)
        {
            return Err(BackupError::InvalidPolicy(format!(
                "subset fraction {f} is not in (0, 1]"
            )));
        }
        let manifests: Vec<Manifest> = match which {
            Some(w) => {
                let found = self.find(w).await?;
                let id = unhex::<16>(&found.id).ok_or(BackupError::BackupNotFound(found.id))?;
                vec![self.manifest(&id).await?.1]
            }
            None => self.manifests().await?.into_iter().map(|m| m.1).collect(),
        };
        let present: HashSet<String> = self
            .target
            .list("chunks/")
            .await?
            .into_iter()
            .map(|o| o.name)
            .collect();
        let mut report = VerifyReport {
            backups: manifests.len() as u64,
            ..VerifyReport::default()
        };
        let mut referenced: HashMap<[u8; CHUNK_ID_LEN], ChunkRef> = HashMap::new();
        for m in &manifests {
            for c in &m.chunks {
                if !present.contains(&chunk_name(&c.id)) {
                    return Err(BackupError::MissingChunk { chunk: hex(&c.id) });
                }
                referenced.insert(c.id, *c);
            }
        }
        report.chunks_referenced = referenced.len() as u64;
        if which.is_none() {
            report.unreferenced_chunks = present
                .iter()
                .filter(|name| {
                    name.strip_prefix("chunks/")
                        .and_then(unhex::<CHUNK_ID_LEN>)
                        .is_none_or(|id| !referenced.contains_key(&id))
                })
                .count() as u64;
        }
        match subset {
            None => {
                for m in &manifests {
                    let (bytes, _) = self
                        .read_stream(m, progress, |_, _, _, _| Ok(()), NoBatch)
                        .await?;
                    report.chunks_read += m.chunks.len() as u64;
                    report.bytes_read += bytes;
                    report.streams_checked += 1;
                }
            }
            Some(fraction) => {
                let mut chosen: Vec<ChunkRef> = Vec::new();
                for c in referenced.values() {
                    let mut r = [0u8; 8];
                    tresor_crypto::random_bytes(&mut r).map_err(BackupError::Crypto)?;
                    let draw = u64::from_le_bytes(r) as f64 / u64::MAX as f64;
                    if draw < fraction {
                        chosen.push(*c);
                    }
                }
                progress.total(chosen.iter().map(|c| u64::from(c.len)).sum());
                for c in &chosen {
                    let (_, object_len) = self.chunk(c).await?;
                    report.chunks_read += 1;
                    report.bytes_read += object_len;
                    progress.advance(u64::from(c.len));
                }
            }
        }
        Ok(report)
    }

    /// Restores backup `which` (`latest`, an id or a unique prefix) into `target`, which must
    /// be empty, and returns what the restored store holds.
    ///
    /// Runs every check of [`Repository::verify`] on the stream while writing: each chunk's
    /// entries become one write batch in which `meta` entries are written as they are, every
    /// message record (carried under its message token) is re-sealed under a fresh nonce and
    /// stored in the schema-v4 layout, under its record key (conversation token ‖ order key,
    /// [`tresor_schema::messages::record_key`]) with its index entries (`message_ids`,
    /// `msg_by_peer`, `msg_by_time`, [`tresor_schema::messages::index_entries`]), and the
    /// entries of the other carried tables are written as they are (sealed ones re-sealed);
    /// `msg_by_conversation` stays empty. Then `conversations` is rebuilt from the `messages`
    /// keys and `peers` from `msg_by_peer`, in bounded batches (one grouped scan each).
    /// Batches are committed with [`Durability::Eventual`], the last one with
    /// [`Durability::Immediate`] after the counts and digest have been checked. Memory: about
    /// two chunks, a batch and a scan page.
    ///
    /// **Schema versions:** `meta` is copied from the stream, `schema_version` included, so a
    /// backup made by schema-v3 code (whose stream is the same) restores to a store in the v4
    /// layout whose `meta` still says 3. The facade's v3 → v4 migration then runs when the
    /// store is opened and finds nothing to move (it skips records already under 32-byte
    /// record keys) before it records version 4.
    ///
    /// **Atomicity contract:** as [`crate::restore`]; the facade restores into a temporary file
    /// and links it into place on success.
    ///
    /// # Errors
    /// [`BackupError::TargetNotEmpty`]; every error of [`Repository::verify`];
    /// [`BackupError::ManifestMismatch`] if the restored tables disagree with the stream
    /// (duplicate records); [`BackupError::Schema`] if re-sealing fails;
    /// [`BackupError::Backend`].
    pub async fn restore(
        &self,
        which: &str,
        target: &dyn Backend,
        progress: &dyn Progress,
    ) -> Result<BackupSummary, BackupError> {
        for spec in TABLES {
            let entries = target.len(spec.name).await?;
            if entries > 0 {
                return Err(BackupError::TargetNotEmpty {
                    table: spec.name,
                    entries,
                });
            }
        }
        let found = self.find(which).await?;
        let id = unhex::<16>(&found.id).ok_or(BackupError::BackupNotFound(found.id))?;
        let (_, manifest, _) = self.manifest(&id).await?;
        let keys = Arc::clone(&self.store_keys);
        let batch = Arc::new(std::sync::Mutex::new(WriteBatch::new()));
        let sink = BackendBatch {
            target,
            batch: Arc::clone(&batch),
        };
        let fill = Arc::clone(&batch);
        let (_, messages) = self
            .read_stream(
                &manifest,
                progress,
                move |table, key, value, message| {
                    let mut b = fill.lock().map_err(|_| BackupError::MalformedStream {
                        reason: "internal lock poisoned",
                    })?;
                    match (table, message) {
                        (STREAM_MESSAGES, Some(m)) => {
                            // The stream key is the message token (checked); the store keys
                            // the record by its record key, which its AAD binds it to.
                            let t = tokens(&keys, &m);
                            let record_key = record_key(&m, &t);
                            let sealed = sealed::seal_bytes(&keys, MESSAGES, &record_key, value)
                                .map_err(BackupError::Schema)?;
                            b.put(MESSAGES, record_key, sealed);
                            for (table, k, v) in index_entries(&m, &t) {
                                b.put(table, k, v);
                            }
                        }
                        (STREAM_META, _) => b.put(META, key, value.to_vec()),
                        (t, _) => {
                            // Invariant: the stream check accepted `t`, so it is a carried
                            // catalog table.
                            let spec =
                                TABLES
                                    .get(usize::from(t))
                                    .ok_or(BackupError::MalformedStream {
                                        reason: "table not carried by the stream",
                                    })?;
                            let stored = if spec.kind == TableKind::Sealed {
                                sealed::seal_bytes(&keys, spec.name, key, value)
                                    .map_err(BackupError::Schema)?
                            } else {
                                value.to_vec()
                            };
                            b.put(spec.name, key, stored);
                        }
                    }
                    Ok(())
                },
                sink,
            )
            .await?;
        let rest =
            std::mem::take(
                &mut *batch.lock().map_err(|_| BackupError::MalformedStream {
                    reason: "internal lock poisoned",
                })?,
            );
        target.commit(rest, Durability::Eventual).await?;
        rebuild_counters(target, &self.store_keys).await?;
        let mut tables = Vec::with_capacity(TABLES.len());
        for spec in TABLES {
            tables.push((spec.name.to_owned(), target.len(spec.name).await?));
        }
        for table in [MESSAGES, MSG_BY_TIME, MESSAGE_IDS] {
            let restored = target.len(table).await?;
            if restored != messages {
                return Err(BackupError::ManifestMismatch {
                    what: format!("restored entries of table {table}"),
                    recorded: messages,
                    counted: restored,
                });
            }
        }
        for (index, spec) in carried_tables() {
            let recorded = manifest
                .source_tables
                .get(usize::from(index))
                .copied()
                .unwrap_or(0);
            let restored = target.len(spec.name).await?;
            if restored != recorded {
                return Err(BackupError::ManifestMismatch {
                    what: format!("restored entries of table {}", spec.name),
                    recorded,
                    counted: restored,
                });
            }
        }
        target
            .commit(WriteBatch::new(), Durability::Immediate)
            .await?;
        Ok(BackupSummary {
            backup_id: manifest.backup_id,
            created_ms: manifest.created_ms,
            schema_version: manifest.schema_version,
            entries: tables.iter().map(|(_, n)| n).sum(),
            tables,
            bytes: manifest.stream_bytes,
        })
    }

    /// Applies `policy` to the repository's backups (see [`retention::apply`], with the
    /// current time) and, unless `dry_run`, deletes the manifests of the backups it does not
    /// keep. Chunks are not deleted: run [`Repository::prune`] afterwards.
    ///
    /// # Errors
    /// [`BackupError::InvalidPolicy`] for an empty policy; as [`Repository::list`].
    pub async fn forget(
        &self,
        policy: &RetentionPolicy,
        dry_run: bool,
    ) -> Result<ForgetReport, BackupError> {
        let list = self.list().await?;
        let items: Vec<(String, i64)> = list.iter().map(|b| (b.id.clone(), b.created_ms)).collect();
        let decisions = retention::apply(policy, &items, now_ms())?;
        if !dry_run {
            for d in decisions.iter().filter(|d| !d.keep) {
                if let Some(id) = unhex::<16>(&d.id) {
                    self.target.delete(&manifest_name(&id)).await?;
                }
            }
        }
        Ok(ForgetReport {
            decisions,
            applied: !dry_run,
        })
    }

    /// Deletes every chunk object that no manifest references.
    ///
    /// **Rule against concurrent backups:** a backup writes its chunks and then its manifest
    /// while holding a `locks/backup-<random>` object; prune first writes `locks/prune-<random>`,
    /// then refuses to run ([`BackupError::RepositoryLocked`]) if any other lock younger than
    /// [`STALE_LOCK_MS`] (24 h) exists, and a backup refuses to start while a fresh prune lock
    /// exists. Both write their lock before listing the other's, so on a strongly consistent
    /// target at least one of them sees the other. A lock left by a crashed process blocks for
    /// 24 hours, or until it is deleted by hand.
    ///
    /// # Errors
    /// [`BackupError::RepositoryLocked`]; a manifest that does not open (prune never guesses
    /// what a damaged manifest references); [`BackupError::Target`].
    pub async fn prune(&self) -> Result<PruneReport, BackupError> {
        let lock = self.lock(LOCK_PRUNE).await?;
        let result = async {
            let manifests = self.manifests().await?;
            let referenced: HashSet<[u8; CHUNK_ID_LEN]> = manifests
                .iter()
                .flat_map(|(_, m, _)| m.chunks.iter().map(|c| c.id))
                .collect();
            let mut report = PruneReport {
                backups: manifests.len() as u64,
                ..PruneReport::default()
            };
            for object in self.target.list("chunks/").await? {
                report.chunks += 1;
                let keep = object
                    .name
                    .strip_prefix("chunks/")
                    .and_then(unhex::<CHUNK_ID_LEN>)
                    .is_some_and(|id| referenced.contains(&id));
                if !keep {
                    self.target.delete(&object.name).await?;
                    report.chunks_deleted += 1;
                    report.bytes_deleted += object.size.unwrap_or(0);
                }
            }
            Ok::<_, BackupError>(report)
        }
        .await;
        let released = self.target.delete(&lock).await;
        let report = result?;
        released?;
        Ok(report)
    }
}

fn info(m: &Manifest, manifest_bytes: u64) -> BackupInfo {
    BackupInfo {
        id: hex(&m.backup_id),
        created_ms: m.created_ms,
        description: m.description.clone(),
        tresor_version: m.tresor_version.clone(),
        schema_version: m.schema_version,
        tables: TABLES
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    s.name.to_owned(),
                    m.source_tables.get(i).copied().unwrap_or(0),
                )
            })
            .collect(),
        entries: m.stream_entries,
        stream_bytes: m.stream_bytes,
        chunks: m.chunks.len() as u64,
        added_chunks: m.added_chunks,
        added_bytes: m.added_bytes,
        manifest_bytes,
    }
}

/// Chunks the stream, writes new chunks, remembers the chunk list.
struct ChunkSink<'a> {
    repo: &'a Repository,
    chunker: Chunker,
    existing: HashSet<[u8; CHUNK_ID_LEN]>,
    chunks: Vec<ChunkRef>,
    hasher: blake3::Hasher,
    stream_bytes: u64,
    added_bytes: u64,
    added_chunks: u64,
    progress: &'a dyn Progress,
}

impl ChunkSink<'_> {
    async fn push(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.hasher.update(bytes);
        self.stream_bytes += bytes.len() as u64;
        self.chunker.push(bytes);
        while let Some(chunk) = self.chunker.take(false) {
            self.emit(&chunk).await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), BackupError> {
        while let Some(chunk) = self.chunker.take(true) {
            self.emit(&chunk).await?;
        }
        Ok(())
    }

    /// Cuts here and chunks what follows with `chunking`.
    async fn restart(&mut self, chunking: Chunking) -> Result<(), BackupError> {
        self.finish().await?;
        self.chunker = Chunker::new(chunking);
        Ok(())
    }

    async fn emit(&mut self, chunk: &[u8]) -> Result<(), BackupError> {
        let repo = self.repo;
        let id = repo.keys.chunk_id(chunk);
        if self.existing.insert(id) {
            let object = repo_format::seal_chunk(&repo.keys, &repo.config.repo_id, &id, chunk)?;
            self.added_bytes += object.len() as u64;
            self.added_chunks += 1;
            repo.target.put(&chunk_name(&id), object).await?;
        }
        // Invariant: chunks are at most Chunking::max (<= 16 MiB) long, so the length fits.
        self.chunks.push(ChunkRef {
            id,
            len: chunk.len() as u32,
        });
        self.progress.advance(chunk.len() as u64);
        Ok(())
    }
}

/// What `read_stream` does after each chunk: commit the batch it filled (restore) or nothing.
#[async_trait::async_trait]
trait AsyncBatch: Send {
    async fn flush(&mut self, last: bool) -> Result<(), BackupError>;
}

struct NoBatch;

#[async_trait::async_trait]
impl AsyncBatch for NoBatch {
    async fn flush(&mut self, _last: bool) -> Result<(), BackupError> {
        Ok(())
    }
}

struct BackendBatch<'a> {
    target: &'a dyn Backend,
    batch: Arc<std::sync::Mutex<WriteBatch>>,
}

#[async_trait::async_trait]
impl AsyncBatch for BackendBatch<'_> {
    async fn flush(&mut self, _last: bool) -> Result<(), BackupError> {
        let batch = {
            let mut b = self
                .batch
                .lock()
                .map_err(|_| BackupError::MalformedStream {
                    reason: "internal lock poisoned",
                })?;
            std::mem::take(&mut *b)
        };
        if !batch.is_empty() {
            self.target.commit(batch, Durability::Eventual).await?;
        }
        Ok(())
    }
}

/// Rebuilds `conversations` and `peers` from the restored messages: `conversations` from the
/// keys of `messages` (a record key starts with its conversation token), `peers` from
/// `msg_by_peer` (keys start with a peer token, and with their value, the conversation token,
/// lead to the record key). One forward scan
/// each, grouped by the 16-byte token prefix; one record opened per group to learn the
/// identifier (for `messages`, the first record of the group itself; for `msg_by_peer`, the
/// record its first entry points at). The `messages` scan reads whole records, so its pages
/// are sized by bytes ([`REBUILD_PAGE_BYTES`]) as well as by entries.
async fn rebuild_counters(target: &dyn Backend, keys: &StoreKeys) -> Result<(), BackupError> {
    for (source, counters) in [(MESSAGES, CONVERSATIONS), (MSG_BY_PEER, PEERS)] {
        let mut batch = WriteBatch::new();
        let mut current: Option<Group> = None;
        let mut start = Bound::Unbounded;
        let mut limit = REBUILD_FIRST_PAGE;
        loop {
            let page = target
                .scan(
                    source,
                    KeyRange {
                        start,
                        end: Bound::Unbounded,
                    },
                    Direction::Forward,
                    limit,
                )
                .await?;
            let full = page.len() == limit;
            let page_bytes: usize = page.iter().map(|(k, v)| k.len() + v.len()).sum();
            let average = (page_bytes / page.len().max(1)).max(1);
            limit = (REBUILD_PAGE_BYTES / average).clamp(REBUILD_MIN_PAGE, PAGE);
            for (key, value) in &page {
                let Some(prefix) = key
                    .get(..TOKEN_LEN)
                    .and_then(|p| <[u8; TOKEN_LEN]>::try_from(p).ok())
                else {
                    return Err(BackupError::MalformedStream {
                        reason: "restored key shorter than a token",
                    });
                };
                match &mut current {
                    Some(group) if group.prefix == prefix => group.count += 1,
                    _ => {
                        if let Some(done) = current.take() {
                            put_counter(target, keys, counters, done, &mut batch).await?;
                        }
                        // `messages` holds the group's first record itself; a peer entry
                        // leads to it.
                        let (record_key, record) = if source == MESSAGES {
                            (key.clone(), Some(value.clone()))
                        } else {
                            let record_key = indexed_record_key(MSG_BY_PEER, key, value).ok_or(
                                BackupError::MalformedStream {
                                    reason: "rebuilt peer index entry is malformed",
                                },
                            )?;
                            (record_key, None)
                        };
                        current = Some(Group {
                            prefix,
                            count: 1,
                            record_key,
                            record,
                        });
                    }
                }
            }
            if batch.len() >= REBUILD_BATCH {
                target
                    .commit(std::mem::take(&mut batch), Durability::Eventual)
                    .await?;
            }
            match page.last() {
                Some((last, _)) if full => start = Bound::Excluded(last.clone()),
                _ => break,
            }
        }
        if let Some(done) = current.take() {
            put_counter(target, keys, counters, done, &mut batch).await?;
        }
        target.commit(batch, Durability::Eventual).await?;
    }
    Ok(())
}

/// The entries of one token prefix seen so far by [`rebuild_counters`].
struct Group {
    /// The conversation or peer token.
    prefix: [u8; TOKEN_LEN],
    /// Messages counted.
    count: u64,
    /// The record key of the group's first message.
    record_key: Vec<u8>,
    /// Its sealed record, when the scan already read it (the `messages` scan).
    record: Option<Vec<u8>>,
}

async fn put_counter(
    target: &dyn Backend,
    keys: &StoreKeys,
    counters: &'static str,
    group: Group,
    batch: &mut WriteBatch,
) -> Result<(), BackupError> {
    let Group {
        prefix,
        count,
        record_key,
        record,
    } = group;
    let record = match record {
        Some(record) => record,
        None => target
            .get(MESSAGES, &record_key)
            .await?
            .ok_or(BackupError::MalformedStream {
                reason: "rebuilt index points at no record",
            })?,
    };
    let m = open_message(keys, &record_key, &record).map_err(BackupError::Schema)?;
    let value = if counters == CONVERSATIONS {
        if conversation_token(keys, &m.conversation_id) != prefix {
            return Err(BackupError::MalformedStream {
                reason: "restored record key disagrees with its record's conversation",
            });
        }
        sealed::seal(
            keys,
            CONVERSATIONS,
            &prefix,
            &ConversationSummary {
                id: m.conversation_id.clone(),
                message_count: count,
            },
        )
    } else {
        let id = peer_ids(&m)
            .into_iter()
            .find(|p| peer_token(keys, p) == prefix)
            .ok_or(BackupError::MalformedStream {
                reason: "rebuilt peer index disagrees with its record",
            })?
            .to_owned();
        sealed::seal(
            keys,
            PEERS,
            &prefix,
            &PeerSummary {
                id,
                message_count: count,
            },
        )
    }
    .map_err(BackupError::Schema)?;
    batch.put(counters, prefix.to_vec(), value);
    Ok(())
}
