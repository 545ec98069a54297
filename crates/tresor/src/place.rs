//! Making a new store file appear atomically: build it under a temporary name beside its final
//! path, then link it into place (never overwriting), then remove the temporary name.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::Error;

/// The directory of `target` and a fresh temporary path beside it,
/// `.<file name>.<what>-<12 hex digits>`.
///
/// # Errors
/// [`Error::Crypto`] if the random tag cannot be drawn.
pub(crate) fn temp_beside(target: &Path, what: &str) -> Result<(PathBuf, PathBuf), Error> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tag = [0u8; 6];
    tresor_crypto::random_bytes(&mut tag)?;
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let name = target
        .file_name()
        .map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.{what}-{tag}"));
    Ok((dir, temp))
}

/// Links the closed file `temp` to `target`. `hard_link` fails if the target appeared
/// meanwhile: a store is never overwritten.
///
/// # Errors
/// [`Error::AlreadyExists`] if `target` exists; [`Error::Io`] otherwise.
pub(crate) fn link_into_place(temp: &Path, target: &Path) -> Result<(), Error> {
    std::fs::hard_link(temp, target).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::AlreadyExists(target.to_path_buf())
        } else {
            Error::Io {
                context: format!("link {}", target.display()),
                source: e,
            }
        }
    })
}

/// Removes the temporary name and, for a failed SQLite build, its `-wal`/`-shm` files (SQLite
/// removes them itself when it closes cleanly). Best effort.
pub(crate) fn remove_temp(temp: &Path) {
    let _ = std::fs::remove_file(temp);
    for suffix in ["-wal", "-shm"] {
        let mut side = temp.to_path_buf().into_os_string();
        side.push(suffix);
        let _ = std::fs::remove_file(side);
    }
}

/// Best-effort fsync of a directory so a rename or link in it is durable (no-op where
/// unsupported).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
