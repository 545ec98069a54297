//! Where a backup repository lives: the [`BackupTarget`] trait and its implementations.
//!
//! A target stores named objects (whole byte strings). Names are relative paths of ASCII
//! letters, digits, `-`, `_` and `.`, separated by `/` (no empty, `.` or `..` segment), such
//! as `config`, `manifests/<hex>` or `chunks/<hex>`.
//!
//! - [`DirTarget`]: a local directory (`dir:PATH`).
//! - [`S3Target`] (feature `s3`): S3-compatible object storage (`s3://bucket/prefix`).
//! - [`ErasureTarget`]: `k` data and `m` parity shards of every object spread over `k + m`
//!   targets (`ec:k+m:T1,T2,…`).
//!
//! [`open_url`] turns one of those strings into a target.

use std::fmt::Debug;
use std::sync::Arc;

mod dir;
mod erasure;
#[cfg(feature = "s3")]
mod s3;

pub use dir::DirTarget;
pub use erasure::{ErasureRepair, ErasureTarget};
#[cfg(feature = "s3")]
pub use s3::S3Target;

use crate::TargetError;

/// One object as listed by [`BackupTarget::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object's full name (with the listed prefix).
    pub name: String,
    /// Its size in bytes, when the target knows it without reading the object (`None` for an
    /// erasure-coded set, whose shards differ in size from the object).
    pub size: Option<u64>,
}

impl ObjectInfo {
    /// An entry for `name` of `size` bytes.
    pub fn new(name: impl Into<String>, size: Option<u64>) -> Self {
        Self {
            name: name.into(),
            size,
        }
    }
}

/// A store of named objects that a backup repository is written to.
///
/// Contracts every implementation keeps:
/// - [`put`](Self::put) is atomic: a reader sees either no object or the whole new one, never
///   a partial write; it replaces an existing object of that name.
/// - [`get`](Self::get) of a missing object is `Ok(None)`, not an error.
/// - [`list`](Self::list) returns every object whose name starts with `prefix`, sorted by name,
///   and is strongly consistent with completed puts and deletes.
/// - [`delete`](Self::delete) of a missing object succeeds.
#[async_trait::async_trait]
pub trait BackupTarget: Send + Sync + Debug {
    /// Stores `bytes` under `name`, atomically.
    ///
    /// # Errors
    /// [`TargetError`] if the name is invalid or the write fails.
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), TargetError>;

    /// Reads the object `name`, or `None` if there is none.
    ///
    /// # Errors
    /// [`TargetError`] if the name is invalid or the read fails.
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, TargetError>;

    /// Lists the objects whose name starts with `prefix`, sorted by name.
    ///
    /// # Errors
    /// [`TargetError`] if the listing fails.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, TargetError>;

    /// Deletes the object `name` (success if there is none).
    ///
    /// # Errors
    /// [`TargetError`] if the name is invalid or the delete fails.
    async fn delete(&self, name: &str) -> Result<(), TargetError>;

    /// A short human-readable description (the URL it was opened from), with no secret.
    fn describe(&self) -> String;
}

/// Checks an object name: non-empty `/`-separated segments of `[A-Za-z0-9._-]`, none of them
/// `.` or `..`.
///
/// # Errors
/// [`TargetError::InvalidName`].
pub fn check_name(name: &str) -> Result<(), TargetError> {
    let ok = !name.is_empty()
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(TargetError::InvalidName(name.to_owned()))
    }
}

/// Opens the target that `url` names:
///
/// - `dir:PATH` — a local directory (created on first write);
/// - `s3://BUCKET[/PREFIX]` — S3-compatible object storage (feature `s3`); the endpoint,
///   region and credentials come from the standard AWS environment variables
///   (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …);
/// - `ec:K+M:T1,T2,…` — an erasure-coded set of `K + M` targets (each one of the forms above,
///   except `ec:`), `K` data and `M` parity shards per object.
///
/// A plain path (no scheme) is read as `dir:PATH`.
///
/// # Errors
/// [`TargetError::InvalidUrl`] for a malformed string; [`TargetError::ObjectStore`] if the
/// S3 client cannot be configured.
pub fn open_url(url: &str) -> Result<Arc<dyn BackupTarget>, TargetError> {
    let invalid = |reason: &str| TargetError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(path) = url.strip_prefix("dir:") {
        if path.is_empty() {
            return Err(invalid("empty directory path"));
        }
        return Ok(Arc::new(DirTarget::new(path)));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        #[cfg(feature = "s3")]
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket"));
            }
            return Ok(Arc::new(S3Target::from_env(bucket, prefix)?));
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = rest;
            return Err(invalid("built without the s3 feature"));
        }
    }
    if url.starts_with("ec:") {
        return open_erasure_url(url).map(|t| Arc::new(t) as Arc<dyn BackupTarget>);
    }
    if url.contains("://") {
        return Err(invalid("unknown scheme (use dir:, s3:// or ec:)"));
    }
    if url.is_empty() {
        return Err(invalid("empty target"));
    }
    Ok(Arc::new(DirTarget::new(url)))
}

/// Opens an erasure-coded set from `ec:K+M:T1,T2,…` (see [`open_url`]).
///
/// # Errors
/// [`TargetError::InvalidUrl`] for a malformed string or an invalid shape.
pub fn open_erasure_url(url: &str) -> Result<ErasureTarget, TargetError> {
    let invalid = |reason: &str| TargetError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(rest) = url.strip_prefix("ec:") else {
        return Err(invalid("expected ec:K+M:T1,T2,…"));
    };
    {
        let (shape, list) = rest
            .split_once(':')
            .ok_or_else(|| invalid("expected ec:K+M:T1,T2,…"))?;
        let (k, m) = shape
            .split_once('+')
            .ok_or_else(|| invalid("expected K+M"))?;
        let k: usize = k.parse().map_err(|_| invalid("K is not a number"))?;
        let m: usize = m.parse().map_err(|_| invalid("M is not a number"))?;
        let mut targets = Vec::new();
        for part in list.split(',') {
            if part.starts_with("ec:") {
                return Err(invalid("erasure-coded sets do not nest"));
            }
            targets.push(open_url(part)?);
        }
        ErasureTarget::new(k, m, targets).map_err(|e| invalid(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["config", "chunks/ab01", "locks/backup-0a", "a/b/c.d_e"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "/x", "x/", "a//b", "..", "a/../b", "a b", "ä", "./x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_parse() {
        assert!(open_url("dir:/tmp/x").is_ok());
        assert!(open_url("/tmp/x").is_ok());
        assert!(open_url("dir:").is_err());
        assert!(open_url("ftp://x").is_err());
        assert!(open_url("ec:2+1:dir:/a,dir:/b,dir:/c").is_ok());
        assert!(open_url("ec:2+1:dir:/a,dir:/b").is_err());
        assert!(open_url("ec:2+0:dir:/a,dir:/b").is_err());
        assert!(open_url("ec:x+1:dir:/a").is_err());
        assert!(open_url("ec:1+1:ec:1+1:dir:/a,dir:/b").is_err());
    }
}
