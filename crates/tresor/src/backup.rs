//! Backups of a store to a file, verification, and restore into a new store.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use tresor_backend::{Backend, Snapshot};
use tresor_backup::{
    BackupOptions, BackupReport, BackupSummary, BackupTarget, Progress, Repository,
};
use tresor_crypto::Secret;

use crate::backup_status::{BackupKind, LastBackup};
use crate::error::io;
use crate::{Error, Options, Tresor};

/// A backup written by [`Tresor::backup_to_dir`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupFile {
    /// Where the backup file was written.
    pub path: PathBuf,
    /// What it holds.
    pub summary: BackupSummary,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Tresor {
    /// Streams a backup of the whole store to `out` (format: `docs/FORMAT.md`, "Backup file").
    /// The backup reads a snapshot taken at the start (under the writer lock, after finishing
    /// a key rotation in progress: a backup holds one key generation); writes go on while it
    /// runs and do not appear in it. The outcome is recorded ([`Tresor::last_backup`],
    /// [`crate::Stats::last_backup`]) and sent to [`Tresor::backup_events`] receivers.
    ///
    /// # Errors
    /// [`Error::Backup`] if writing or reading fails; as [`Tresor::rotate_key`] if finishing a
    /// rotation fails.
    pub async fn backup_to<W: Write + Send>(&self, out: W) -> Result<BackupSummary, Error> {
        self.recorded(
            BackupKind::File,
            async {
                let (snapshot, ring, header) = self.backup_snapshot().await?;
                Ok(tresor_backup::create_from_snapshot(
                    &*snapshot,
                    &ring.current,
                    &header,
                    now_ms(),
                    out,
                )
                .await?)
            },
            |s| (hex(&s.backup_id), s.bytes, s.entries),
        )
        .await
    }

    /// Runs the backup `run`, reporting its start and outcome ([`Tresor::backup_events`],
    /// [`Tresor::last_backup`]); `describe` gives a success's id, bytes written and entries.
    pub(crate) async fn recorded<T>(
        &self,
        kind: BackupKind,
        run: impl std::future::Future<Output = Result<T, Error>>,
        describe: impl FnOnce(&T) -> (String, u64, u64),
    ) -> Result<T, Error> {
        let started_ms = now_ms();
        let status = &self.inner.backups;
        status.started(kind, started_ms);
        let result = run.await;
        let (id, bytes, entries, error) = match &result {
            Ok(done) => {
                let (id, bytes, entries) = describe(done);
                (Some(id), bytes, entries, None)
            }
            Err(e) => (None, 0, 0, Some(e.to_string())),
        };
        status.finished(LastBackup {
            kind,
            started_ms,
            finished_ms: now_ms(),
            id,
            bytes,
            entries,
            error,
        });
        result
    }

    /// Takes a snapshot of the store for a backup, under the writer lock (held only for
    /// that), after finishing a key rotation in progress; with the keys and key header it was
    /// taken under.
    async fn backup_snapshot(
        &self,
    ) -> Result<(Box<dyn Snapshot>, Arc<crate::keys::Keyring>, Vec<u8>), Error> {
        let inner = &self.inner;
        let mut writer = inner.writer.lock().await;
        inner.finish_rotation_locked(&mut writer).await?;
        let snapshot = inner.backend.snapshot().await?;
        Ok((snapshot, inner.keyring(), writer.keys.header.clone()))
    }

    /// Writes a backup file into directory `dir` (created if missing), named
    /// `tresor-<created ms>-<random>.tbk`. The file appears under its final name only once
    /// complete and synced to disk.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory or file cannot be written; [`Error::Backup`].
    pub async fn backup_to_dir(&self, dir: impl AsRef<Path>) -> Result<BackupFile, Error> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let mut tag = [0u8; 4];
        tresor_crypto::random_bytes(&mut tag)?;
        let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("tresor-{}-{tag}.tbk", now_ms());
        let path = dir.join(&name);
        let partial = dir.join(format!(".{name}.partial"));
        let result = async {
            let file =
                File::create(&partial).map_err(io(format!("create {}", partial.display())))?;
            let mut out = BufWriter::new(file);
            let summary = self.backup_to(&mut out).await?;
            let file = out.into_inner().map_err(|e| Error::Io {
                context: "flush backup".into(),
                source: e.into_error(),
            })?;
            file.sync_all().map_err(io("sync backup"))?;
            std::fs::rename(&partial, &path)
                .map_err(io(format!("rename to {}", path.display())))?;
            crate::place::sync_dir(dir);
            Ok::<_, Error>(summary)
        }
        .await;
        match result {
            Ok(summary) => Ok(BackupFile { path, summary }),
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }
}

impl Tresor {
    /// Opens the backup repository on `target` for this store, creating it if the target holds
    /// none. Uses the store's keys (no KDF); a repository of another store is refused.
    ///
    /// # Errors
    /// [`Error::Backup`] (`ConfigAuthentication` for another store's repository, a target
    /// failure).
    pub async fn repository(&self, target: Arc<dyn BackupTarget>) -> Result<Repository, Error> {
        let inner = &self.inner;
        // A repository holds one key generation: finish a rotation in progress first.
        let (keys, header) = {
            let mut writer = inner.writer.lock().await;
            inner.finish_rotation_locked(&mut writer).await?;
            (
                Arc::new(writer.keys.dek.store_keys()),
                writer.keys.header.clone(),
            )
        };
        Ok(Repository::open_or_init(target, keys, &header).await?)
    }

    /// Backs the store up into the repository on `target` (created if missing): only chunks
    /// the repository does not hold yet are written (format: `docs/FORMAT.md`, "Backup
    /// repository format, version 2").
    ///
    /// The backup reads a snapshot taken at the start under the writer lock (held only for
    /// that): writes go on while chunks are read and uploaded, and do not appear in it. The
    /// outcome is recorded ([`Tresor::last_backup`], [`crate::Stats::last_backup`]) and sent
    /// to [`Tresor::backup_events`] receivers.
    ///
    /// # Errors
    /// [`Error::Backup`]: the target fails, a prune holds the repository's lock
    /// (`RepositoryLocked`), the repository belongs to another store, or a record does not
    /// open.
    pub async fn backup_to_target(
        &self,
        target: Arc<dyn BackupTarget>,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<BackupReport, Error> {
        Ok(self.backup_into(target, options, progress).await?.1)
    }

    /// [`Tresor::backup_to_target`], also returning the opened repository (for the
    /// scheduler's retention); opening the repository counts as part of the backup.
    pub(crate) async fn backup_into(
        &self,
        target: Arc<dyn BackupTarget>,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<(Repository, BackupReport), Error> {
        self.recorded(
            BackupKind::Repository,
            async {
                let repository = self.repository(target).await?;
                let report = self
                    .backup_unrecorded(&repository, options, progress)
                    .await?;
                Ok((repository, report))
            },
            |(_, r)| describe_report(r),
        )
        .await
    }

    /// Backs the store up into an open `repository` (see [`Tresor::backup_to_target`]).
    ///
    /// # Errors
    /// As [`Tresor::backup_to_target`]; [`Error::Backup`] (`KeyHeaderMismatch`) if the store's
    /// keys changed since `repository` was opened.
    pub async fn backup_to_repository(
        &self,
        repository: &Repository,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<BackupReport, Error> {
        self.recorded(
            BackupKind::Repository,
            self.backup_unrecorded(repository, options, progress),
            describe_report,
        )
        .await
    }

    async fn backup_unrecorded(
        &self,
        repository: &Repository,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<BackupReport, Error> {
        let (snapshot, _, _) = self.backup_snapshot().await?;
        Ok(repository
            .backup_snapshot(&*snapshot, options, progress)
            .await?)
    }
}

fn describe_report(r: &BackupReport) -> (String, u64, u64) {
    (
        r.info.id.clone(),
        r.info.added_bytes + r.info.manifest_bytes,
        r.info.entries,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads and checks the whole backup file at `path` (every chunk's tag, the trailer, the
/// digest, every record) with `secret` (the passphrase, or the raw key of a raw-key store, that
/// opened the store when the backup was taken), writing nothing.
///
/// # Errors
/// [`Error::WrongPassphrase`]; [`Error::Backup`] for a damaged, truncated or foreign file;
/// [`Error::Io`] if it cannot be opened.
pub async fn verify_backup(path: impl AsRef<Path>, secret: Secret) -> Result<BackupSummary, Error> {
    let path = path.as_ref().to_path_buf();
    let file = File::open(&path).map_err(io(format!("open {}", path.display())))?;
    let summary =
        tokio::task::spawn_blocking(move || tresor_backup::verify(BufReader::new(file), &secret))
            .await??;
    Ok(summary)
}

/// Restores the backup at `backup` into a new store at `new_store` and opens it with `secret`
/// (the backup's passphrase or raw key). The restored store has the backup's data key; its
/// seal count is the backup's plus the records the restore re-sealed.
///
/// The store is built in a temporary file beside `new_store` and renamed into place only once
/// the backup has been read and checked completely; an interrupted or failed restore leaves
/// nothing at `new_store` (and removes the temporary file when it can). The backup is only read.
///
/// # Errors
/// [`Error::AlreadyExists`] if `new_store` exists; [`Error::WrongPassphrase`];
/// [`Error::Backup`] for a damaged backup; [`Error::Backend`] / [`Error::Io`] for storage
/// failures.
pub async fn restore_backup(
    backup: impl AsRef<Path>,
    new_store: impl AsRef<Path>,
    secret: Secret,
) -> Result<(Tresor, BackupSummary), Error> {
    restore_backup_with(backup, new_store, secret, Options::default()).await
}

/// As [`restore_backup`], with `options` for the new store (its storage engine,
/// [`Options::backend`], and durability).
///
/// # Errors
/// As [`restore_backup`].
pub async fn restore_backup_with(
    backup: impl AsRef<Path>,
    new_store: impl AsRef<Path>,
    secret: Secret,
    options: Options,
) -> Result<(Tresor, BackupSummary), Error> {
    let backup = backup.as_ref();
    let file = File::open(backup).map_err(io(format!("open {}", backup.display())))?;
    let unlock = secret.clone();
    restore_into(new_store.as_ref(), secret, options, move |backend| {
        Box::pin(async move {
            Ok(tresor_backup::restore(BufReader::new(file), &unlock, &*backend).await?)
        })
    })
    .await
}

/// Opens the backup repository on `target` with the passphrase (or raw key) alone, as on a
/// new device:
/// reads its config and unlocks its key header (the KDF runs on the blocking pool).
///
/// # Errors
/// [`Error::WrongPassphrase`]; [`Error::Backup`] (`NotARepository`, `ConfigAuthentication`,
/// a target failure).
pub async fn open_repository(
    target: Arc<dyn BackupTarget>,
    secret: &Secret,
) -> Result<Repository, Error> {
    Ok(Repository::open(target, secret).await?)
}

/// Restores backup `which` (`latest`, an id or a unique id prefix) of `repository` into a new
/// store at `new_store` and opens it with `secret` (the passphrase or raw key the store had
/// when the backup was made).
///
/// As [`restore_backup`], the store is built in a temporary file beside `new_store` and linked
/// into place only once every chunk, entry, count and the stream digest have been checked;
/// on any error nothing appears at `new_store`. The repository is only read.
///
/// # Errors
/// [`Error::AlreadyExists`] if `new_store` exists; [`Error::Backup`] for a missing or damaged
/// backup; [`Error::WrongPassphrase`] if the restored store does not open with `secret`;
/// [`Error::Backend`] / [`Error::Io`] for storage failures.
pub async fn restore_from_repository(
    repository: &Repository,
    which: &str,
    new_store: impl AsRef<Path>,
    secret: Secret,
    progress: &dyn Progress,
) -> Result<(Tresor, BackupSummary), Error> {
    restore_from_repository_with(
        repository,
        which,
        new_store,
        secret,
        Options::default(),
        progress,
    )
    .await
}

/// As [`restore_from_repository`], with `options` for the new store (its storage engine,
/// [`Options::backend`], e.g. SQLite, whatever engine the backed-up store used).
///
/// # Errors
/// As [`restore_from_repository`].
pub async fn restore_from_repository_with(
    repository: &Repository,
    which: &str,
    new_store: impl AsRef<Path>,
    secret: Secret,
    options: Options,
    progress: &dyn Progress,
) -> Result<(Tresor, BackupSummary), Error> {
    restore_into(new_store.as_ref(), secret, options, move |backend| {
        Box::pin(async move { Ok(repository.restore(which, &*backend, progress).await?) })
    })
    .await
}

type RestoreFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<BackupSummary, Error>> + Send + 'a>>;

/// Builds a new store at `new_store` with `fill` in a temporary file beside it, links it into
/// place on success, and opens it.
async fn restore_into<'a>(
    new_store: &Path,
    secret: Secret,
    options: Options,
    fill: impl FnOnce(Arc<dyn Backend>) -> RestoreFuture<'a>,
) -> Result<(Tresor, BackupSummary), Error> {
    let target = new_store.to_path_buf();
    if target.exists() {
        return Err(Error::AlreadyExists(target));
    }
    let (dir, temp) = crate::place::temp_beside(&target, "restore")?;

    let result = async {
        let backend = crate::engine::open(
            options.backend,
            temp.clone(),
            true,
            options.redb_config(false),
        )
        .await?;
        let summary = fill(Arc::clone(&backend)).await;
        // Close the database before it becomes visible under its final name (the future
        // that held the other handle has completed and been dropped).
        tokio::task::spawn_blocking(move || drop(backend)).await?;
        let summary = summary?;
        crate::place::link_into_place(&temp, &target)?;
        Ok::<_, Error>(summary)
    }
    .await;
    crate::place::remove_temp(&temp);
    let summary = result?;
    crate::place::sync_dir(&dir);
    let store = Tresor::open_with(&target, secret, options).await?;
    let resealed: u64 = tresor_schema::catalog::TABLES
        .iter()
        .filter(|t| t.kind == tresor_schema::catalog::TableKind::Sealed)
        .map(|t| summary.table_entries(t.name))
        .sum();
    store.add_seals(resealed).await?;
    Ok((store, summary))
}
