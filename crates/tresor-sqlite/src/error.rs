//! Mapping of SQLite errors to [`BackendError`]: the only place that inspects a rusqlite error.

use std::io;

use rusqlite::ErrorCode;
use tresor_backend::BackendError;

/// Maps a rusqlite error. The message never carries stored bytes (SQLite's messages name
/// tables and statements, never bound values).
pub(crate) fn map_err(err: rusqlite::Error) -> BackendError {
    match &err {
        rusqlite::Error::SqliteFailure(e, message) => {
            let text = message.clone().unwrap_or_else(|| e.to_string());
            match e.code {
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                    BackendError::Corrupted(text)
                }
                ErrorCode::DiskFull => BackendError::DiskFull(text),
                ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => {
                    BackendError::Io(io::Error::other(text))
                }
                ErrorCode::PermissionDenied | ErrorCode::ReadOnly => {
                    BackendError::Io(io::Error::new(io::ErrorKind::PermissionDenied, text))
                }
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => BackendError::Busy(text),
                _ => BackendError::Engine(text),
            }
        }
        _ => BackendError::Engine(err.to_string()),
    }
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

/// The message of the [`BackendError::Engine`] returned when an SQLite call panicked on
/// tokio's blocking pool (`tresor_backend::run_blocking`; a cancelled call is
/// [`BackendError::Closed`]). The panic payload is not included.
pub(crate) const PANICKED: &str = "an SQLite call panicked";

/// The error of a poisoned lock: a thread panicked while holding it.
pub(crate) fn poisoned<T>(_: T) -> BackendError {
    BackendError::Engine("an SQLite connection lock is poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_codes_keep_their_meaning() {
        use rusqlite::ffi;
        assert!(matches!(
            map_err(failure(ffi::SQLITE_CORRUPT)),
            BackendError::Corrupted(_)
        ));
        assert!(matches!(
            map_err(failure(ffi::SQLITE_NOTADB)),
            BackendError::Corrupted(_)
        ));
        assert!(matches!(
            map_err(failure(ffi::SQLITE_FULL)),
            BackendError::DiskFull(_)
        ));
        assert!(matches!(
            map_err(failure(ffi::SQLITE_IOERR)),
            BackendError::Io(_)
        ));
        assert!(matches!(
            map_err(failure(ffi::SQLITE_BUSY)),
            BackendError::Busy(_)
        ));
        assert!(matches!(
            map_err(failure(ffi::SQLITE_MISUSE)),
            BackendError::Engine(_)
        ));
    }

    #[test]
    fn full_disk_maps_to_disk_full() {
        assert!(matches!(
            map_io(io::Error::from(io::ErrorKind::StorageFull)),
            BackendError::DiskFull(_)
        ));
        assert!(matches!(
            map_io(io::Error::from(io::ErrorKind::NotFound)),
            BackendError::Io(_)
        ));
    }
}
