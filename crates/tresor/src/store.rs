//! The store: create, open, unlock, stats.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;
use tresor_backend::{Backend, Durability, WriteBatch};
use tresor_crypto::{KeyHeader, Passphrase, StoreKeys};
use tresor_redb::RedbBackend;
use tresor_schema::catalog::{self, META, meta_keys};
use tresor_schema::{SchemaError, version};

use crate::{Error, Messages, Options};

/// Mutable state owned by the single writer.
#[derive(Debug)]
pub(crate) struct WriterState {
    /// Next message sequence number to assign.
    pub(crate) next_seq: u64,
    /// Set when a commit failed: the batch may or may not be on disk (a failed fsync is
    /// ambiguous), so `next_seq` must be read back from the store before the next write.
    pub(crate) stale: bool,
}

impl WriterState {
    /// Re-reads `next_seq` from the store if a failed commit left it in doubt.
    pub(crate) async fn refresh(&mut self, backend: &dyn Backend) -> Result<(), Error> {
        if self.stale {
            self.next_seq = read_u64(backend, meta_keys::NEXT_SEQ).await?;
            self.stale = false;
        }
        Ok(())
    }
}

pub(crate) struct Inner {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) keys: Arc<StoreKeys>,
    pub(crate) header: Vec<u8>,
    pub(crate) options: Options,
    pub(crate) writer: Mutex<WriterState>,
    pub(crate) path: Option<PathBuf>,
    /// Messages written or deleted since the store was opened (for write-triggered backups).
    pub(crate) writes: std::sync::atomic::AtomicU64,
    /// Signalled after every committed write.
    pub(crate) wrote: tokio::sync::Notify,
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
}

impl Tresor {
    /// Creates a new store at `path` (a redb file) protected by `passphrase`, with default
    /// [`Options`].
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if `path` exists; [`Error::Backend`] if the file cannot be
    /// created; [`Error::Crypto`] if key generation fails.
    pub async fn create(path: impl AsRef<Path>, passphrase: Passphrase) -> Result<Self, Error> {
        Self::create_with(path, passphrase, Options::default()).await
    }

    /// Creates a new store at `path` with `options`.
    ///
    /// # Errors
    /// As [`Tresor::create`].
    pub async fn create_with(
        path: impl AsRef<Path>,
        passphrase: Passphrase,
        options: Options,
    ) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        if path.exists() {
            return Err(Error::AlreadyExists(path));
        }
        let p = path.clone();
        let backend = tokio::task::spawn_blocking(move || RedbBackend::open(p)).await??;
        Self::initialize(Arc::new(backend), passphrase, options, Some(path)).await
    }

    /// Opens the existing store at `path` with `passphrase`.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no file; [`Error::WrongPassphrase`];
    /// [`Error::NotAStore`] for a database without a key header;
    /// [`Error::UnsupportedVersion`] for a store written by a newer tresor;
    /// [`Error::Backend`] (`Locked`, `Corrupted`, `Io`) if the file cannot be opened.
    pub async fn open(path: impl AsRef<Path>, passphrase: Passphrase) -> Result<Self, Error> {
        Self::open_with(path, passphrase, Options::default()).await
    }

    /// Opens the existing store at `path` with `options` (its KDF is ignored: the store's
    /// header has its own).
    ///
    /// # Errors
    /// As [`Tresor::open`].
    pub async fn open_with(
        path: impl AsRef<Path>,
        passphrase: Passphrase,
        options: Options,
    ) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            return Err(Error::NotFound(path));
        }
        let p = path.clone();
        let backend = tokio::task::spawn_blocking(move || RedbBackend::open_existing(p)).await??;
        Self::unlock(Arc::new(backend), passphrase, options, Some(path)).await
    }

    /// Opens the store at `path`, creating it if there is no file.
    ///
    /// # Errors
    /// As [`Tresor::open`] and [`Tresor::create`].
    pub async fn open_or_create(
        path: impl AsRef<Path>,
        passphrase: Passphrase,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        if path.exists() {
            Self::open(path, passphrase).await
        } else {
            Self::create(path, passphrase).await
        }
    }

    /// Opens (or, if it holds no store yet, initializes) a store on any [`Backend`], such as
    /// [`crate::MemoryBackend`].
    ///
    /// # Errors
    /// As [`Tresor::open`].
    pub async fn with_backend(
        backend: impl Backend,
        passphrase: Passphrase,
        options: Options,
    ) -> Result<Self, Error> {
        let backend: Arc<dyn Backend> = Arc::new(backend);
        if backend
            .get(META, meta_keys::KEY_HEADER.as_bytes())
            .await?
            .is_some()
        {
            Self::unlock(backend, passphrase, options, None).await
        } else {
            Self::initialize(backend, passphrase, options, None).await
        }
    }

    async fn initialize(
        backend: Arc<dyn Backend>,
        passphrase: Passphrase,
        options: Options,
        path: Option<PathBuf>,
    ) -> Result<Self, Error> {
        let kdf = options.kdf;
        let (header, dek) =
            tokio::task::spawn_blocking(move || KeyHeader::create(&passphrase, kdf)).await??;
        let header = header.encode();
        let mut batch = WriteBatch::new();
        batch.put(META, meta_keys::KEY_HEADER, header.clone());
        batch.put(
            META,
            meta_keys::SCHEMA_VERSION,
            version::encode(version::SCHEMA_VERSION).to_vec(),
        );
        batch.put(META, meta_keys::NEXT_SEQ, 0u64.to_le_bytes().to_vec());
        backend.commit(batch, Durability::Immediate).await?;
        Ok(Self::from_parts(
            backend,
            dek.store_keys(),
            header,
            options,
            0,
            path,
        ))
    }

    async fn unlock(
        backend: Arc<dyn Backend>,
        passphrase: Passphrase,
        options: Options,
        path: Option<PathBuf>,
    ) -> Result<Self, Error> {
        let header_bytes = backend
            .get(META, meta_keys::KEY_HEADER.as_bytes())
            .await?
            .ok_or(Error::NotAStore)?;
        let header = KeyHeader::decode(&header_bytes)?;
        let dek = tokio::task::spawn_blocking(move || header.unlock(&passphrase)).await??;
        let found = backend
            .get(META, meta_keys::SCHEMA_VERSION.as_bytes())
            .await?
            .ok_or(Error::Corrupted("schema version missing".into()))?;
        version::check(version::decode(&found)?)?;
        let next_seq = read_u64(&*backend, meta_keys::NEXT_SEQ).await?;
        Ok(Self::from_parts(
            backend,
            dek.store_keys(),
            header_bytes,
            options,
            next_seq,
            path,
        ))
    }

    fn from_parts(
        backend: Arc<dyn Backend>,
        keys: StoreKeys,
        header: Vec<u8>,
        options: Options,
        next_seq: u64,
        path: Option<PathBuf>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                keys: Arc::new(keys),
                header,
                options,
                writer: Mutex::new(WriterState {
                    next_seq,
                    stale: false,
                }),
                path,
                writes: std::sync::atomic::AtomicU64::new(0),
                wrote: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The message repository.
    pub fn messages(&self) -> Messages<'_> {
        Messages::new(self)
    }

    /// The store file's path (`None` for a store on a non-file backend).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
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
        Ok(Stats {
            messages: b.len(catalog::MESSAGES).await?,
            conversations: b.len(catalog::CONVERSATIONS).await?,
            peers: b.len(catalog::PEERS).await?,
            file_bytes: b.stats().await?.file_bytes,
            schema_version: version::decode(&found)?,
        })
    }
}

async fn read_u64(backend: &dyn Backend, key: &'static str) -> Result<u64, Error> {
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
