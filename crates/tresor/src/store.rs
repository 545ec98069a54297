//! The store: create, open, unlock, stats.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use tokio::sync::Mutex;
use tresor_backend::{Backend, CompactReport, Durability};
use tresor_crypto::{Kek, Secret};
use tresor_schema::catalog::{self, META, meta_keys};
use tresor_schema::{SchemaError, version};

use crate::keys::{Credential, KeyState, Keyring};
use crate::{Error, Messages, Options};

/// Mutable state owned by the single writer.
#[derive(Debug)]
pub(crate) struct WriterState {
    /// Next message sequence number to assign.
    pub(crate) next_seq: u64,
    /// The key header, KEK, DEK, seal count and rotation progress (`keys.rs`).
    pub(crate) keys: KeyState,
    /// Set while a commit is in flight and when one failed: the batch may or may not be on
    /// disk (a failed fsync is ambiguous; a caller that stopped waiting — a timeout, a
    /// `select!` — left its commit running), so `next_seq` and the seal count must be read
    /// back from the store before the next write. Cleared when a commit's bookkeeping is done.
    pub(crate) stale: bool,
}

/// A meta key never written: deleting it is a commit that changes nothing, which the
/// backend's writer applies after every commit submitted before it.
const BARRIER_KEY: &str = "writer_barrier";

impl WriterState {
    /// Re-reads `next_seq` and the seal count from the store if a commit left them in doubt,
    /// after waiting for any commit still in flight (an empty commit queued behind it: a
    /// backend's writer applies commits in order).
    pub(crate) async fn refresh(&mut self, backend: &dyn Backend) -> Result<(), Error> {
        if self.stale {
            let mut barrier = tresor_backend::WriteBatch::new();
            barrier.delete(META, BARRIER_KEY.as_bytes().to_vec());
            backend.commit(barrier, Durability::Eventual).await?;
            self.next_seq = read_u64(backend, meta_keys::NEXT_SEQ).await?;
            if let Some(b) = backend.get(META, meta_keys::SEAL_COUNT.as_bytes()).await?
                && let Ok(b) = <[u8; 8]>::try_from(b.as_slice())
            {
                self.keys.seals = u64::from_le_bytes(b);
            }
            self.stale = false;
        }
        Ok(())
    }
}

pub(crate) struct Inner {
    pub(crate) backend: Arc<dyn Backend>,
    /// The keys readers use: swapped (under the writer lock) when a rotation starts or ends.
    pub(crate) keyring: std::sync::RwLock<Arc<Keyring>>,
    pub(crate) options: Options,
    /// Whether records are padded (persisted in `meta/padding` when the store was created).
    pub(crate) padded: bool,
    pub(crate) writer: Mutex<WriterState>,
    /// Message saves waiting for the writer lock, saved together (`group.rs`).
    pub(crate) save_queue: crate::group::SaveQueue,
    pub(crate) path: Option<PathBuf>,
    /// This store itself, for the background rotation task (which must not keep it open).
    pub(crate) me: Weak<Inner>,
    /// Opened typed records (`cache.rs`), invalidated by `commit_locked`.
    pub(crate) cache: crate::cache::RecordCache,
    /// Messages written or deleted since the store was opened (for write-triggered backups).
    pub(crate) writes: std::sync::atomic::AtomicU64,
    /// Signalled after every committed write.
    pub(crate) wrote: tokio::sync::Notify,
    /// The interval sweeper task (`message_ext.rs`), aborted when the store is dropped.
    pub(crate) sweeper: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    /// The result of the most recent automatic sweep.
    pub(crate) last_sweep:
        std::sync::Mutex<Option<Result<crate::message_ext::SweepReport, String>>>,
    /// The last backup's outcome and the backup event channel (`backup_status.rs`).
    pub(crate) backups: crate::backup_status::BackupStatus,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(slot) = self.sweeper.get_mut()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
    }
}

impl Inner {
    /// Counts `n` written or deleted messages and wakes write-triggered backups.
    pub(crate) fn note_writes(&self, n: u64) {
        if n > 0 {
            self.writes
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            self.wrote.notify_waiters();
        }
    }
}

/// An open, unlocked store. Cheap to clone (shared handle); safe to use from many tasks.
///
/// Dropping the last clone closes the store.
#[derive(Clone)]
pub struct Tresor {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Tresor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tresor")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Counts and sizes of a store, from [`Tresor::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Number of messages.
    pub messages: u64,
    /// Number of conversations with at least one message.
    pub conversations: u64,
    /// Number of distinct peers (senders and recipients) of stored messages.
    pub peers: u64,
    /// Size of the store file in bytes (`None` for the in-memory backend).
    pub file_bytes: Option<u64>,
    /// Schema version of the store.
    pub schema_version: u32,
    /// Typed-record cache lookups answered from memory since the store was opened.
    pub cache_hits: u64,
    /// Typed-record cache lookups that went to the backend since the store was opened.
    pub cache_misses: u64,
    /// Bytes the typed-record cache holds now (estimated).
    pub cache_bytes: u64,
    /// The last backup made through this store handle since it was opened (`None` before
    /// the first): when, its id, bytes written, and its error if it failed.
    pub last_backup: Option<crate::LastBackup>,
}

impl Tresor {
    /// Creates a new store at `path` (a redb file) protected by `secret` (a passphrase, or a
    /// [`crate::RawKey`]: `Secret::from(raw_key)`), with default [`Options`].
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if `path` exists; [`Error::Backend`] if the file cannot be
    /// created; [`Error::Crypto`] if key generation fails.
    pub async fn create(path: impl AsRef<Path>, secret: Secret) -> Result<Self, Error> {
        Self::create_with(path, secret, Options::default()).await
    }

    /// Creates a new store at `path` with `options` (among them the storage engine,
    /// [`Options::backend`]).
    ///
    /// # Errors
    /// As [`Tresor::create`].
    ///
    /// The store is created atomically (a temporary file linked into place once initialized),
    /// then opened with the KEK the creation derived: the KDF runs once.
    pub async fn create_with(
        path: impl AsRef<Path>,
        secret: Secret,
        options: Options,
    ) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        if path.exists() {
            return Err(Error::AlreadyExists(path));
        }
        // Created atomically: initialized (key header, schema version) in a temporary file
        // beside `path`, closed, then linked into place. A crash meanwhile leaves no file at
        // `path` (a half-created store would open as `NotAStore` forever; found by the crash
        // test).
        let (dir, temp) = crate::place::temp_beside(&path, "creating")?;
        let created = async {
            let backend = crate::engine::open(
                options.backend,
                temp.clone(),
                true,
                options.redb_config(false),
            )
            .await?;
            let (store, kek) =
                Self::initialize(backend, secret, options, Some(temp.clone())).await?;
            // Close the database (on the blocking pool: closing syncs) before linking it.
            tokio::task::spawn_blocking(move || drop(store)).await?;
            crate::place::link_into_place(&temp, &path)?;
            crate::place::sync_dir(&dir);
            Ok::<_, Error>(kek)
        }
        .await;
        crate::place::remove_temp(&temp);
        // A second KDF would cost as much time as the first, and its memory (Argon2id's
        // 19 MiB) would stay in the process: unmapping the first block raises glibc's mmap
        // threshold, so the second came from a malloc arena, which kept it after it was freed
        // (docs/BENCHMARKS.md, session 12).
        Self::open_at(&path, Credential::Kek(created?), options).await
    }

    /// Opens the existing store at `path` with `secret` (its passphrase or raw key).
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no file; [`Error::WrongPassphrase`] (also for a wrong
    /// raw key); [`Error::Crypto`] with `SecretKind` for a passphrase given to a raw-key store
    /// or the other way round;
    /// [`Error::NotAStore`] for a database without a key header;
    /// [`Error::UnsupportedVersion`] for a store written by a newer tresor (an older store is
    /// migrated first, in resumable batches: `crates/tresor-schema/migrations/NOTES.md`);
    /// [`Error::Backend`] (`Locked`, `Corrupted`, `Io`) if the file cannot be opened.
    pub async fn open(path: impl AsRef<Path>, secret: Secret) -> Result<Self, Error> {
        Self::open_with(path, secret, Options::default()).await
    }

    /// Opens the existing store at `path` with `options` (its KDF is ignored: the store's
    /// header has its own; its backend is used only if the file's engine is not recognized).
    ///
    /// # Errors
    /// As [`Tresor::open`].
    pub async fn open_with(
        path: impl AsRef<Path>,
        secret: Secret,
        options: Options,
    ) -> Result<Self, Error> {
        Self::open_at(path.as_ref(), Credential::Secret(secret), options).await
    }

    async fn open_at(path: &Path, credential: Credential, options: Options) -> Result<Self, Error> {
        let path = path.to_path_buf();
        if !path.exists() {
            return Err(Error::NotFound(path));
        }
        let backend = crate::engine::open(
            options.backend,
            path.clone(),
            false,
            options.redb_config(true),
        )
        .await?;
        Self::unlock(backend, credential, options, Some(path)).await
    }

    /// Opens the store at `path`, creating it if there is no file.
    ///
    /// # Errors
    /// As [`Tresor::open`] and [`Tresor::create`].
    pub async fn open_or_create(path: impl AsRef<Path>, secret: Secret) -> Result<Self, Error> {
        Self::open_or_create_with(path, secret, Options::default()).await
    }

    /// [`Tresor::open_or_create`] with `options` ([`Tresor::open_with`], [`Tresor::create_with`]).
    ///
    /// # Errors
    /// As [`Tresor::open`] and [`Tresor::create`].
    pub async fn open_or_create_with(
        path: impl AsRef<Path>,
        secret: Secret,
        options: Options,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        if path.exists() {
            Self::open_with(path, secret, options).await
        } else {
            Self::create_with(path, secret, options).await
        }
    }

    /// Opens (or, if it holds no store yet, initializes) a store on any [`Backend`], such as
    /// [`crate::MemoryBackend`].
    ///
    /// # Errors
    /// As [`Tresor::open`].
    pub async fn with_backend(
        backend: impl Backend,
        secret: Secret,
        options: Options,
    ) -> Result<Self, Error> {
        let backend: Arc<dyn Backend> = Arc::new(backend);
        if backend
            .get(META, meta_keys::KEY_HEADER.as_bytes())
            .await?
            .is_some()
        {
            Self::unlock(backend, Credential::Secret(secret), options, None).await
        } else {
            let (store, _) = Self::initialize(backend, secret, options, None).await?;
            store.inner.start_sweeper().await?;
            Ok(store)
        }
    }

    async fn initialize(
        backend: Arc<dyn Backend>,
        secret: Secret,
        options: Options,
        path: Option<PathBuf>,
    ) -> Result<(Self, Kek), Error> {
        let (batch, state, ring) = crate::keys::initialize(secret, &options).await?;
        batch_put_schema(&backend, batch).await?;
        let kek = state.kek.clone();
        let store = Self::from_parts(backend, ring, state, options, options.pad_records, 0, path);
        Ok((store, kek))
    }

    async fn unlock(
        backend: Arc<dyn Backend>,
        credential: Credential,
        options: Options,
        path: Option<PathBuf>,
    ) -> Result<Self, Error> {
        let (state, ring) = crate::keys::unlock(&*backend, credential).await?;
        let found = backend
            .get(META, meta_keys::SCHEMA_VERSION.as_bytes())
            .await?
            .ok_or(Error::Corrupted("schema version missing".into()))?;
        let found = version::decode(&found)?;
        version::check(found)?;
        let next_seq = read_u64(&*backend, meta_keys::NEXT_SEQ).await?;
        let padded = crate::keys::read_padding(&*backend).await?;
        let store = Self::from_parts(backend, ring, state, options, padded, next_seq, path);
        if found < version::SCHEMA_VERSION {
            // Older store: migrate before anyone else can read or write (`migrate.rs`).
            let inner = &store.inner;
            let mut w = inner.writer.lock().await;
            inner
                .migrate_locked(&mut w, found, options.migration_batch)
                .await?;
        }
        store.resume_rotation().await?;
        store.inner.start_sweeper().await?;
        Ok(store)
    }

    fn from_parts(
        backend: Arc<dyn Backend>,
        ring: Keyring,
        keys: KeyState,
        options: Options,
        padded: bool,
        next_seq: u64,
        path: Option<PathBuf>,
    ) -> Self {
        Self {
            inner: Arc::new_cyclic(|me| Inner {
                backend,
                keyring: std::sync::RwLock::new(Arc::new(ring)),
                options,
                padded,
                writer: Mutex::new(WriterState {
                    next_seq,
                    keys,
                    stale: false,
                }),
                save_queue: crate::group::SaveQueue::default(),
                path,
                me: me.clone(),
                writes: std::sync::atomic::AtomicU64::new(0),
                wrote: tokio::sync::Notify::new(),
                backups: crate::backup_status::BackupStatus::new(),
                cache: crate::cache::RecordCache::new(options.cache_bytes),
                sweeper: std::sync::Mutex::new(None),
                last_sweep: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Takes a consistent read-only view of the messages, read **synchronously** with no thread
    /// hop per read: for latency-critical or bulk reads from a thread of your own or inside
    /// `tokio::task::spawn_blocking` (a whole export, thousands of lookups). The async queries
    /// of [`Tresor::messages`] cost one thread hop each instead.
    ///
    /// Blocks the calling thread (it begins an engine read transaction); never call it, or the
    /// view's reads, directly in an async task. See [`crate::BlockingView`].
    ///
    /// # Errors
    /// [`Error::Backend`] if the store cannot be read (or a key rotation kept swapping the keys
    /// while the view was taken: `BackendError::Busy`).
    ///
    /// # Example
    /// ```no_run
    /// # async fn f(store: tresor::Tresor) -> Result<(), tresor::Error> {
    /// let store2 = store.clone();
    /// let newest = tokio::task::spawn_blocking(move || {
    ///     let view = store2.blocking_view()?;
    ///     view.by_conversation("conv-1", 50, None)
    /// })
    /// .await
    /// .expect("the read task does not panic")?;
    /// # Ok(()) }
    /// ```
    pub fn blocking_view(&self) -> Result<crate::BlockingView, Error> {
        crate::BlockingView::new(&self.inner)
    }

    /// The message repository.
    pub fn messages(&self) -> Messages<'_> {
        Messages::new(self)
    }

    /// The store file's path (`None` for a store on a non-file backend).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Compacts the store's file and reports its size before and after, bytes
    /// ([`CompactReport::bytes_reclaimed`]).
    ///
    /// On redb the file is rewritten with every table in key order (full B-tree pages) and
    /// replaces the old one atomically (the crash analysis is in `tresor-redb`'s `compact.rs`);
    /// on SQLite it is `VACUUM`. Writes issued meanwhile wait for it; it takes about as long as
    /// copying the file (2.5 s for the 258,145-message corpus on the benchmark machine).
    ///
    /// # Errors
    /// [`Error::Backend`] with [`crate::BackendError::Busy`] while a snapshot of the store is alive (a
    /// backup in progress, a [`crate::BlockingView`] held): nothing changed, try again later;
    /// [`crate::BackendError::DiskFull`] when the rewritten copy does not fit next to the store (the
    /// store is unchanged); other backend errors as they come.
    pub async fn compact(&self) -> Result<CompactReport, Error> {
        Ok(self.inner.backend.compact().await?)
    }

    /// Counts of messages, conversations and peers, and the file size. Counts are kept as table
    /// sizes, not computed by scanning records.
    ///
    /// # Errors
    /// [`Error::Backend`] if the store cannot be read.
    pub async fn stats(&self) -> Result<Stats, Error> {
        let b = &self.inner.backend;
        let found = b
            .get(META, meta_keys::SCHEMA_VERSION.as_bytes())
            .await?
            .ok_or(Error::Corrupted("schema version missing".into()))?;
        let (cache_hits, cache_misses, cache_bytes) = self.inner.cache.counters();
        Ok(Stats {
            cache_hits,
            cache_misses,
            cache_bytes,
            last_backup: self.inner.backups.last(),
            messages: b.len(catalog::MESSAGES).await?,
            conversations: b.len(catalog::CONVERSATIONS).await?,
            peers: b.len(catalog::PEERS).await?,
            file_bytes: b.stats().await?.file_bytes,
            schema_version: version::decode(&found)?,
        })
    }
}

/// Commits the first batch of a new store: its key metadata plus schema version and sequence.
async fn batch_put_schema(
    backend: &Arc<dyn Backend>,
    mut batch: tresor_backend::WriteBatch,
) -> Result<(), Error> {
    batch.put(
        META,
        meta_keys::SCHEMA_VERSION,
        version::encode(version::SCHEMA_VERSION).to_vec(),
    );
    batch.put(META, meta_keys::NEXT_SEQ, 0u64.to_le_bytes().to_vec());
    backend.commit(batch, Durability::Immediate).await?;
    Ok(())
}

pub(crate) async fn read_u64(backend: &dyn Backend, key: &'static str) -> Result<u64, Error> {
    let bytes = backend
        .get(META, key.as_bytes())
        .await?
        .ok_or_else(|| Error::Corrupted(format!("metadata {key} missing")))?;
    let arr: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::from(SchemaError::MalformedMeta { key }))?;
    Ok(u64::from_le_bytes(arr))
}
