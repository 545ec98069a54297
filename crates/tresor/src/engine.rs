//! Which storage engine a store file uses, and opening it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tresor_backend::Backend;
use tresor_redb::{RedbBackend, RedbConfig};
#[cfg(feature = "sqlite")]
use tresor_sqlite::SqliteBackend;

use crate::Error;

/// The persistent storage engine of a store file.
///
/// Chosen when a store is created ([`crate::Options::backend`]); when an existing file is
/// opened, its engine is recognized from its first bytes and the option is only used for a
/// file that neither engine recognizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum BackendKind {
    /// One redb file (`tresor-redb`): the default.
    #[default]
    Redb,
    /// One SQLite file in WAL mode, with `-wal` and `-shm` files beside it while open
    /// (`tresor-sqlite`). Needs the `sqlite` feature (default): without it, opening or
    /// creating such a store fails with [`Error::UnsupportedBackend`].
    Sqlite,
}

impl BackendKind {
    /// The engine whose file header `path` starts with: redb's magic number or SQLite's
    /// `"SQLite format 3\0"`. `None` for a missing, short or unrecognized file.
    pub fn detect(path: impl AsRef<Path>) -> Option<BackendKind> {
        let mut head = [0u8; 16];
        let mut file = std::fs::File::open(path).ok()?;
        file.read_exact(&mut head).ok()?;
        if head.starts_with(&[b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A]) {
            Some(BackendKind::Redb)
        } else if &head == b"SQLite format 3\0" {
            Some(BackendKind::Sqlite)
        } else {
            None
        }
    }
}

/// Opens (with `create`: creates if missing) the store file at `path` with engine `kind`, or,
/// for an existing file, the engine its header names, with `config` (redb: page-cache bound,
/// commit log). Runs on the blocking pool.
pub(crate) async fn open(
    kind: BackendKind,
    path: PathBuf,
    create: bool,
    config: RedbConfig,
) -> Result<Arc<dyn Backend>, Error> {
    tokio::task::spawn_blocking(move || {
        let kind = BackendKind::detect(&path).unwrap_or(kind);
        let backend: Arc<dyn Backend> = match (kind, create) {
            (BackendKind::Redb, true) => Arc::new(RedbBackend::open_with_config(&path, config)?),
            (BackendKind::Redb, false) => {
                Arc::new(RedbBackend::open_existing_with_config(&path, config)?)
            }
            #[cfg(feature = "sqlite")]
            (BackendKind::Sqlite, true) => Arc::new(SqliteBackend::open(&path)?),
            #[cfg(feature = "sqlite")]
            (BackendKind::Sqlite, false) => Arc::new(SqliteBackend::open_existing(&path)?),
            #[cfg(not(feature = "sqlite"))]
            (BackendKind::Sqlite, _) => return Err(Error::UnsupportedBackend(BackendKind::Sqlite)),
        };
        Ok(backend)
    })
    .await?
}
