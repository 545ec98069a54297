//! A local directory as a backup target.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{BackupTarget, ObjectInfo, check_name};
use crate::TargetError;

/// Marker in the names of files being written; such files are never listed.
const TEMP_MARKER: &str = ".tmp-";

/// A directory holding one file per object (`name` is the relative path). Writes go to a
/// temporary file in the same directory, are synced, then renamed into place, so an object is
/// either absent or complete. All file-system calls run on tokio's blocking pool.
#[derive(Debug, Clone)]
pub struct DirTarget {
    root: PathBuf,
}

impl DirTarget {
    /// A target rooted at `root` (created, with parent directories, on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> Result<PathBuf, TargetError> {
        check_name(name)?;
        Ok(self.root.join(name))
    }
}

fn io(op: &'static str, name: &str) -> impl FnOnce(std::io::Error) -> TargetError {
    let name = name.to_owned();
    move |source| TargetError::Io { op, name, source }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TargetError> + Send + 'static,
) -> Result<T, TargetError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| TargetError::Io {
            op: "run",
            name: String::new(),
            source: std::io::Error::other("blocking task failed"),
        })?
}

fn sync_dir(dir: &Path) {
    // Best effort: makes the rename durable where directories can be synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[async_trait::async_trait]
impl BackupTarget for DirTarget {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), TargetError> {
        let path = self.path(name)?;
        let name = name.to_owned();
        blocking(move || {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            std::fs::create_dir_all(&dir).map_err(io("create directory for", &name))?;
            let mut tag = [0u8; 6];
            tresor_crypto::random_bytes(&mut tag).map_err(|_| TargetError::Io {
                op: "name temporary file for",
                name: name.clone(),
                source: std::io::Error::other("random generator failed"),
            })?;
            let file_name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let temp = dir.join(format!(".{file_name}{TEMP_MARKER}{}", hex(&tag)));
            let result = (|| {
                let mut file = std::fs::File::create(&temp).map_err(io("create", &name))?;
                file.write_all(&bytes).map_err(io("write", &name))?;
                file.sync_all().map_err(io("sync", &name))?;
                std::fs::rename(&temp, &path).map_err(io("rename", &name))?;
                sync_dir(&dir);
                Ok(())
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&temp);
            }
            result
        })
        .await
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, TargetError> {
        let path = self.path(name)?;
        let name = name.to_owned();
        blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &name)(e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, TargetError> {
        let (dir_part, file_prefix) = match prefix.rsplit_once('/') {
            Some((d, f)) => (Some(d.to_owned()), f.to_owned()),
            None => (None, prefix.to_owned()),
        };
        let dir = match &dir_part {
            Some(d) => self.path(d)?,
            None => self.root.clone(),
        };
        let prefix = prefix.to_owned();
        blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io("list", &prefix)(e)),
            };
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(io("list", &prefix))?;
                let file_name = entry.file_name().to_string_lossy().into_owned();
                if !file_name.starts_with(&file_prefix) || file_name.contains(TEMP_MARKER) {
                    continue;
                }
                let meta = entry.metadata().map_err(io("stat", &file_name))?;
                if !meta.is_file() {
                    continue;
                }
                let name = match &dir_part {
                    Some(d) => format!("{d}/{file_name}"),
                    None => file_name,
                };
                if check_name(&name).is_ok() {
                    out.push(ObjectInfo::new(name, Some(meta.len())));
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<(), TargetError> {
        let path = self.path(name)?;
        let name = name.to_owned();
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("delete", &name)(e)),
        })
        .await
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let t = DirTarget::new(dir.path().join("repo"));
        assert_eq!(t.get("config").await.unwrap(), None);
        assert!(t.list("chunks/").await.unwrap().is_empty());
        t.put("config", b"c".to_vec()).await.unwrap();
        t.put("chunks/bb", b"22".to_vec()).await.unwrap();
        t.put("chunks/aa", b"1".to_vec()).await.unwrap();
        t.put("chunks/aa", b"111".to_vec()).await.unwrap();
        assert_eq!(t.get("chunks/aa").await.unwrap().unwrap(), b"111");
        let listed = t.list("chunks/").await.unwrap();
        assert_eq!(
            listed,
            vec![
                ObjectInfo::new("chunks/aa", Some(3)),
                ObjectInfo::new("chunks/bb", Some(2))
            ]
        );
        assert_eq!(t.list("chunks/b").await.unwrap().len(), 1);
        assert_eq!(t.list("conf").await.unwrap().len(), 1);
        t.delete("chunks/aa").await.unwrap();
        t.delete("chunks/aa").await.unwrap();
        assert_eq!(t.list("chunks/").await.unwrap().len(), 1);
        assert!(t.put("../escape", vec![]).await.is_err());
        // A leftover temporary file is never listed.
        std::fs::write(dir.path().join("repo/chunks/.cc.tmp-01"), b"x").unwrap();
        assert_eq!(t.list("chunks/").await.unwrap().len(), 1);
    }
}
