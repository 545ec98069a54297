//! Compaction by rewrite: every table copied, in key order, into a new file that then replaces
//! the old one (what SQLite's `VACUUM` does).
//!
//! redb's own `Database::compact` moves pages towards the start of the file and truncates it,
//! but it does not refill pages: a B-tree grown by inserts in random key order (tresor's keys
//! are blinded tokens, random by design) keeps its leaves about two-thirds full, and a third of
//! the file stays empty space inside pages. Inserting each table's entries in key order into a
//! fresh database fills every leaf; on the chitchat corpus the file drops from 200 MB (redb's
//! compaction) to 132 MB (docs/BENCHMARKS.md).
//!
//! # Crash analysis
//! The new file is written at `<path>.compact` and committed with
//! `redb::Durability::Immediate` (fsync) before it is renamed over `path`; the rename is the
//! commit point, and the directory is fsynced after it. A crash before the rename leaves the
//! old file untouched and a stray `<path>.compact`, deleted by the next open or compaction; a
//! crash after it leaves the complete new file. A failure during the copy (a full disk, say)
//! deletes the partial file and leaves the open store as it was.
//!
//! The new database is opened before the rename and kept open across it, so the file at `path`
//! is locked (redb's file lock) at every moment: another process never opens the store while
//! it is being replaced.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use tresor_backend::BackendError;

use crate::RedbConfig;
use crate::error::{map_err, map_io};

/// Stored bytes (keys and values) copied per write transaction of the new file: bounds the
/// memory a rewrite holds (redb keeps a transaction's dirty pages in memory until commit).
const CHUNK_BYTES: usize = 32 * 1024 * 1024;

/// The path of the file a rewrite of `path` is written to before it replaces `path`.
pub(crate) fn scratch_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".compact");
    PathBuf::from(name)
}

/// Deletes the scratch file a rewrite interrupted by a crash left behind. Call only while the
/// store at `path` is open (locked): then no other process is rewriting it.
///
/// # Errors
/// [`BackendError::Io`] when the file exists but cannot be deleted.
pub(crate) fn remove_scratch(path: &Path) -> Result<(), BackendError> {
    match std::fs::remove_file(scratch_path(path)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(map_io(e)),
    }
}

/// Rewrites the database open in `db` at `path` into a new file with full pages, replaces the
/// file at `path` with it and `db` with the new database. The caller holds `db` exclusively
/// (no read or write runs) and has checked that no snapshot is alive.
///
/// # Errors
/// [`BackendError::DiskFull`] when the new file does not fit, [`BackendError::Io`] or a mapped
/// redb error for any other failure; `db` and the file at `path` are then unchanged.
pub(crate) fn rewrite(
    db: &mut Database,
    path: &Path,
    config: &RedbConfig,
) -> Result<(), BackendError> {
    let scratch = scratch_path(path);
    remove_scratch(path)?;
    let new = match copy_into(db, &scratch, config) {
        Ok(new) => new,
        Err(e) => {
            // Best effort: the error of the copy is the one to report.
            let _ = std::fs::remove_file(&scratch);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::rename(&scratch, path) {
        drop(new);
        let _ = std::fs::remove_file(&scratch);
        return Err(map_io(e));
    }
    // The rename happened: the new file is the store from here on, whatever follows.
    *db = new;
    sync_parent(path)
}

/// Copies every table of `db`, in key order, into a new database at `scratch`, committed
/// durably, and returns it open.
fn copy_into(db: &Database, scratch: &Path, config: &RedbConfig) -> Result<Database, BackendError> {
    let mut new = config.builder().create(scratch).map_err(map_err)?;
    {
        let rx = db.begin_read().map_err(map_err)?;
        let mut wx = new.begin_write().map_err(map_err)?;
        wx.set_durability(Durability::None).map_err(map_err)?;
        let mut pending = 0usize;
        for handle in rx.list_tables().map_err(map_err)? {
            let def: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new(handle.name());
            let from = rx.open_table(def).map_err(map_err)?;
            // Created even when empty: an empty table stays a table.
            wx.open_table(def).map_err(map_err)?;
            let mut rows = from.iter().map_err(map_err)?;
            loop {
                let mut to = wx.open_table(def).map_err(map_err)?;
                let mut full = false;
                for row in rows.by_ref() {
                    let (k, v) = row.map_err(map_err)?;
                    to.insert(k.value(), v.value()).map_err(map_err)?;
                    pending += k.value().len() + v.value().len();
                    if pending >= CHUNK_BYTES {
                        full = true;
                        break;
                    }
                }
                drop(to);
                if !full {
                    break;
                }
                wx.commit().map_err(map_err)?;
                wx = new.begin_write().map_err(map_err)?;
                wx.set_durability(Durability::None).map_err(map_err)?;
                pending = 0;
            }
        }
        wx.set_durability(Durability::Immediate).map_err(map_err)?;
        wx.commit().map_err(map_err)?;
    }
    // Gives back the pages the chunked commits freed (the last leaf of each chunk is copied
    // on write by the next one).
    new.compact().map_err(|e| match e {
        redb::CompactionError::Storage(err) => map_err(err),
        other => BackendError::Engine(other.to_string()),
    })?;
    Ok(new)
}

/// Fsyncs the directory holding `path`, so that the rename survives a power loss.
fn sync_parent(path: &Path) -> Result<(), BackendError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(map_io)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use redb::ReadableTableMetadata;

    const T: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("t");
    const EMPTY: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("empty");

    /// A rewrite keeps every entry and every table (an empty one too), spans several chunks,
    /// and gives a smaller file than redb's own compaction after random-order inserts.
    #[test]
    fn rewrite_keeps_everything_and_fills_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let mut db = Database::create(&path).unwrap();
        let wx = db.begin_write().unwrap();
        {
            let mut t = wx.open_table(T).unwrap();
            // Keys in a scrambled order, like blinded tokens.
            for i in 0u32..40_000 {
                let k = i.wrapping_mul(2_654_435_761).to_be_bytes();
                t.insert(k.as_slice(), [7u8; 1000].as_slice()).unwrap();
            }
            wx.open_table(EMPTY).unwrap();
        }
        wx.commit().unwrap();
        db.compact().unwrap();
        let before = std::fs::metadata(&path).unwrap().len();

        rewrite(
            &mut db,
            &path,
            &RedbConfig::default().with_cache_bytes(16 << 20),
        )
        .unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < before, "{after} !< {before}");
        assert!(!scratch_path(&path).exists());

        let rx = db.begin_read().unwrap();
        let t = rx.open_table(T).unwrap();
        assert_eq!(t.len().unwrap(), 40_000);
        let k = 12_345u32.wrapping_mul(2_654_435_761).to_be_bytes();
        assert_eq!(t.get(k.as_slice()).unwrap().unwrap().value(), [7u8; 1000]);
        assert!(rx.open_table(EMPTY).is_ok());
        drop((t, rx));

        // The file at the path is the new database: reopen it from disk.
        drop(db);
        let db = Database::open(&path).unwrap();
        let rx = db.begin_read().unwrap();
        assert_eq!(rx.open_table(T).unwrap().len().unwrap(), 40_000);
    }

    /// A stray scratch file (a crash before the rename) is deleted, and a rewrite still works.
    #[test]
    fn stray_scratch_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        std::fs::write(scratch_path(&path), b"half a database").unwrap();
        let mut db = Database::create(&path).unwrap();
        rewrite(&mut db, &path, &RedbConfig::default()).unwrap();
        assert!(!scratch_path(&path).exists());
        std::fs::write(scratch_path(&path), b"again").unwrap();
        remove_scratch(&path).unwrap();
        assert!(!scratch_path(&path).exists());
        remove_scratch(&path).unwrap();
    }
}
