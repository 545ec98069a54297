//! The S3 target against a real S3-compatible server: Garage (`cargo install --locked garage`,
//! installed by `.ci/run` when missing), started here in single-node mode on free loopback
//! ports with a temporary directory, and stopped at the end.
//!
//! The binary is `$GARAGE_BIN`, else `garage` on `PATH`, else `~/.cargo/bin/garage`; without
//! one the test is skipped, except under `TRESOR_S3_TESTS=1` (CI), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/garage.rs"]
mod garage;

use std::sync::Arc;

use common::{build_store, cheap_keys, dump, passphrase};
use garage::{BUCKET, Garage, KEY_ID, REGION, SECRET, garage_bin};
use tresor_backend::MemoryBackend;
use tresor_backup::repo_format::Chunking;
use tresor_backup::target::{BackupTarget, DirTarget, ErasureTarget, S3Target};
use tresor_backup::{BackupOptions, NoProgress, Repository, RetentionPolicy};
use tresor_crypto::KeyHeader;

fn s3(garage: &Garage, prefix: &str) -> S3Target {
    S3Target::with_credentials(BUCKET, prefix, &garage.endpoint(), REGION, KEY_ID, SECRET).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_on_a_real_s3_server() {
    let Some(bin) = garage_bin() else {
        return;
    };
    let garage = tokio::task::spawn_blocking(move || Garage::start(bin))
        .await
        .unwrap();

    // The target contract: put, get, list by prefix, delete.
    let t = s3(&garage, "contract");
    assert_eq!(t.get("config").await.unwrap(), None);
    t.put("chunks/b", b"2".to_vec()).await.unwrap();
    t.put("chunks/a", b"1".to_vec()).await.unwrap();
    t.put("config", b"c".to_vec()).await.unwrap();
    assert_eq!(t.get("chunks/a").await.unwrap().unwrap(), b"1");
    let names: Vec<String> = t
        .list("chunks/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["chunks/a", "chunks/b"]);
    assert_eq!(t.list("conf").await.unwrap().len(), 1);
    t.delete("chunks/a").await.unwrap();
    t.delete("chunks/a").await.unwrap();
    assert_eq!(t.list("chunks/").await.unwrap().len(), 1);
    assert_eq!(t.describe(), format!("s3://{BUCKET}/contract"));

    // A repository: two backups, list, verify, restore on a "new device", forget, prune.
    let k = cheap_keys();
    let keys = Arc::new(
        KeyHeader::decode(&k.key_header)
            .unwrap()
            .unlock(&passphrase())
            .unwrap()
            .store_keys(),
    );
    let a = build_store(&k, 200, 60).await;
    let b = build_store(&k, 202, 60).await;
    let target: Arc<dyn BackupTarget> = Arc::new(s3(&garage, "repo"));
    // Small chunks, so that stores this small span many chunks and the second backup can
    // share most of them.
    let small = Chunking {
        min: 256,
        avg: 1024,
        max: 4096,
    };
    let repo = Repository::open_or_init_with(Arc::clone(&target), keys, &k.key_header, small)
        .await
        .unwrap();
    repo.backup(&a, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let second = repo
        .backup(&b, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(second.info.added_chunks < second.info.chunks);
    let fresh = Repository::open(Arc::new(s3(&garage, "repo")), &passphrase())
        .await
        .unwrap();
    assert_eq!(fresh.list().await.unwrap().len(), 2);
    fresh.verify(None, None, &NoProgress).await.unwrap();
    let restored = MemoryBackend::new();
    fresh
        .restore("latest", &restored, &NoProgress)
        .await
        .unwrap();
    assert_eq!(dump(&restored, &k.keys).await, dump(&b, &k.keys).await);
    fresh
        .forget(&RetentionPolicy::keep_last(1), false)
        .await
        .unwrap();
    let pruned = fresh.prune().await.unwrap();
    assert_eq!(pruned.backups, 1);
    fresh.verify(None, None, &NoProgress).await.unwrap();

    // An erasure-coded set mixing S3 prefixes and a directory: survives losing one.
    let dir = tempfile::tempdir().unwrap();
    let members: Vec<Arc<dyn BackupTarget>> = vec![
        Arc::new(s3(&garage, "ec0")),
        Arc::new(s3(&garage, "ec1")),
        Arc::new(DirTarget::new(dir.path().join("ec2"))),
    ];
    let ec: Arc<dyn BackupTarget> = Arc::new(ErasureTarget::new(2, 1, members).unwrap());
    let keys = Arc::new(
        KeyHeader::decode(&k.key_header)
            .unwrap()
            .unlock(&passphrase())
            .unwrap()
            .store_keys(),
    );
    let repo = Repository::open_or_init(Arc::clone(&ec), keys, &k.key_header)
        .await
        .unwrap();
    repo.backup(&a, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    std::fs::remove_dir_all(dir.path().join("ec2")).unwrap();
    let restored = MemoryBackend::new();
    Repository::open(ec, &passphrase())
        .await
        .unwrap()
        .restore("latest", &restored, &NoProgress)
        .await
        .unwrap();
    assert_eq!(dump(&restored, &k.keys).await, dump(&a, &k.keys).await);
    drop(garage);
}
