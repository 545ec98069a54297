//! Mapping of redb errors to [`BackendError`]: the only place that inspects a redb error.

use std::io;

use tresor_backend::BackendError;

/// Maps any redb error (`DatabaseError`, `TransactionError`, `TableError`, `StorageError`,
/// `CommitError`, `SetDurabilityError`, ...) to a [`BackendError`].
pub(crate) fn map_err(err: impl Into<redb::Error>) -> BackendError {
    match err.into() {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
            BackendError::Locked
        }
        redb::Error::Corrupted(message) => BackendError::Corrupted(message),
        redb::Error::ValueTooLarge(len) => BackendError::ValueTooLarge(len),
        redb::Error::Io(err) => map_io(err),
        redb::Error::DatabaseClosed => BackendError::Closed,
        other => BackendError::Engine(other.to_string()),
    }
}

/// Maps an error of opening the database file.
///
/// As [`map_err`], except that redb reports a file that is not a redb database (wrong magic
/// number, or empty when it must exist) as an I/O error of kind `InvalidData`: that becomes
/// [`BackendError::Corrupted`].
pub(crate) fn map_open_err(err: redb::DatabaseError) -> BackendError {
    match err {
        redb::DatabaseError::Storage(redb::StorageError::Io(err))
            if err.kind() == io::ErrorKind::InvalidData =>
        {
            BackendError::Corrupted(err.to_string())
        }
        other => map_err(other),
    }
}

/// The error of an open during which redb panicked: redb panics on some damaged pages.
pub(crate) fn open_panicked() -> BackendError {
    BackendError::Corrupted("redb panicked while opening the file: it is damaged".into())
}

/// The error of a poisoned database lock: a thread panicked while holding it (inside redb).
pub(crate) fn poisoned<T>(_: T) -> BackendError {
    BackendError::Engine("the database lock is poisoned (a redb call panicked)".into())
}

/// Maps an OS I/O error: a full disk or quota becomes [`BackendError::DiskFull`].
pub(crate) fn map_io(err: io::Error) -> BackendError {
    match err.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            BackendError::DiskFull(err.to_string())
        }
        _ => BackendError::Io(err),
    }
}

/// The message of the [`BackendError::Engine`] returned when a redb call panicked on tokio's
/// blocking pool (`tresor_backend::run_blocking`; a cancelled call is
/// [`BackendError::Closed`]). The panic payload is not included, so that no message can carry
/// stored bytes.
pub(crate) const PANICKED: &str = "a redb call panicked (the store file may be corrupted)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_errors_map_to_locked() {
        assert!(matches!(
            map_err(redb::DatabaseError::DatabaseAlreadyOpen),
            BackendError::Locked
        ));
    }

    #[test]
    fn full_disk_maps_to_disk_full() {
        let err = redb::StorageError::Io(io::Error::from(io::ErrorKind::StorageFull));
        assert!(matches!(map_err(err), BackendError::DiskFull(_)));
        let err = redb::StorageError::Io(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(
            matches!(map_err(err), BackendError::Io(e) if e.kind() == io::ErrorKind::PermissionDenied)
        );
    }

    #[test]
    fn storage_errors_keep_their_meaning() {
        assert!(matches!(
            map_err(redb::StorageError::Corrupted("bad page".into())),
            BackendError::Corrupted(m) if m == "bad page"
        ));
        assert!(matches!(
            map_err(redb::StorageError::ValueTooLarge(7)),
            BackendError::ValueTooLarge(7)
        ));
        assert!(matches!(
            map_err(redb::StorageError::DatabaseClosed),
            BackendError::Closed
        ));
        assert!(matches!(
            map_err(redb::StorageError::PreviousIo),
            BackendError::Engine(_)
        ));
    }

    #[test]
    fn not_a_database_on_open_is_corrupted() {
        let err = redb::DatabaseError::Storage(redb::StorageError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "Not a redb database",
        )));
        assert!(matches!(map_open_err(err), BackendError::Corrupted(_)));
        let err = redb::DatabaseError::Storage(redb::StorageError::Io(io::Error::from(
            io::ErrorKind::NotFound,
        )));
        assert!(
            matches!(map_open_err(err), BackendError::Io(e) if e.kind() == io::ErrorKind::NotFound)
        );
    }
}
