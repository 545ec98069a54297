//! S3-compatible object storage as a backup target, through the `object_store` crate.

use std::sync::Arc;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use super::{BackupTarget, ObjectInfo, check_name};
use crate::TargetError;

/// Objects in one bucket of an S3-compatible service, under an optional prefix. A put is one
/// `PutObject` (atomic on S3); listing is strongly consistent on AWS S3 and Garage.
#[derive(Debug, Clone)]
pub struct S3Target {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
}

fn os_err(e: object_store::Error) -> TargetError {
    TargetError::ObjectStore(e.to_string())
}

impl S3Target {
    /// A target on `bucket` under `prefix` (may be empty), configured from the standard AWS
    /// environment variables: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`
    /// (default `us-east-1`), `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`) for a non-AWS service, in
    /// which case path-style requests are used and plain `http://` is allowed.
    ///
    /// # Errors
    /// [`TargetError::ObjectStore`] if the configuration is incomplete.
    pub fn from_env(bucket: &str, prefix: &str) -> Result<Self, TargetError> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .ok();
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_endpoint(&endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            builder = builder.with_region("us-east-1");
        }
        let store = builder.build().map_err(os_err)?;
        Ok(Self {
            store: Arc::new(store),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// A target on `bucket` under `prefix` with explicit settings (no environment): the
    /// service's `endpoint` URL (path-style requests; `http://` allowed), its `region`, and
    /// the access key.
    ///
    /// # Errors
    /// [`TargetError::ObjectStore`] if the configuration is rejected.
    pub fn with_credentials(
        bucket: &str,
        prefix: &str,
        endpoint: &str,
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<Self, TargetError> {
        let store = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_region(region)
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key)
            .build()
            .map_err(os_err)?;
        Ok(Self {
            store: Arc::new(store),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    fn path(&self, name: &str) -> Result<Path, TargetError> {
        check_name(name)?;
        Ok(Path::from(self.full(name)))
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

#[async_trait::async_trait]
impl BackupTarget for S3Target {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), TargetError> {
        let path = self.path(name)?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(os_err)?;
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, TargetError> {
        let path = self.path(name)?;
        match self.store.get(&path).await {
            Ok(result) => Ok(Some(result.bytes().await.map_err(os_err)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(os_err(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, TargetError> {
        // object_store lists by directory; list the directory part, filter by the rest.
        let (dir, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let dir_full = if dir.is_empty() {
            self.prefix.clone()
        } else {
            self.full(dir)
        };
        let dir_path = (!dir_full.is_empty()).then(|| Path::from(dir_full.as_str()));
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out = Vec::new();
        let mut stream = self.store.list(dir_path.as_ref());
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(os_err)?;
            let full = meta.location.to_string();
            let Some(name) = full.strip_prefix(&strip) else {
                continue;
            };
            if name.starts_with(prefix) && check_name(name).is_ok() {
                out.push(ObjectInfo::new(name, Some(meta.size)));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn delete(&self, name: &str) -> Result<(), TargetError> {
        let path = self.path(name)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(os_err(e)),
        }
    }

    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}
