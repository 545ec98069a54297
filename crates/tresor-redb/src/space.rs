//! Free space of the file system holding the store, for the commit log's space policy
//! ([`crate::RedbConfig::log_min_free_bytes`]).

use std::path::Path;

/// Bytes available to an unprivileged writer on the file system holding `path`
/// (`statvfs`: `f_bavail × f_frsize`), or `None` when it cannot be told (not Unix, or the call
/// failed).
#[cfg(unix)]
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Bytes available on the file system holding `path`: not known on this platform.
#[cfg(not(unix))]
pub(crate) fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn a_temporary_directory_has_some_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let free = super::free_bytes(&dir.path().join("x.redb")).unwrap();
        assert!(free > 0);
    }
}
