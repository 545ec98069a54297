//! The store on disk: create, reopen, passphrases, versions.
#![allow(clippy::unwrap_used)]

mod common;

use common::{PASS, msg};
use tresor::{Backend, Error, Tresor};
use tresor_backend::{Durability, WriteBatch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_returns_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.redb");
    let before = {
        let store = Tresor::create(&path, PASS.into()).await.unwrap();
        let m = store.messages();
        m.save_batch(&[
            msg("1", "c", "alice", Some("bob"), 1, "one"),
            msg("2", "c", "bob", Some("alice"), 2, "two"),
        ])
        .await
        .unwrap();
        (
            m.recent(10, None).await.unwrap(),
            store.stats().await.unwrap(),
        )
    };
    let store = Tresor::open(&path, PASS.into()).await.unwrap();
    assert_eq!(store.messages().recent(10, None).await.unwrap(), before.0);
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.messages, stats.conversations, stats.peers),
        (2, 1, 2)
    );
    assert_eq!(stats.messages, before.1.messages);
    assert!(stats.file_bytes.unwrap() > 0);
    assert_eq!(store.path(), Some(path.as_path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passphrase_missing_and_existing_paths_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    drop(Tresor::create(&path, PASS.into()).await.unwrap());
    let err = Tresor::open(&path, "wrong".into()).await.unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase), "{err:?}");
    assert_eq!(err.to_string(), "wrong passphrase");
    let err = Tresor::create(&path, PASS.into()).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    let err = Tresor::open(dir.path().join("none.redb"), PASS.into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert!(
        !dir.path().join("none.redb").exists(),
        "open must not create a file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_open_elsewhere_is_locked_not_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let _first = Tresor::create(&path, PASS.into()).await.unwrap();
    let err = Tresor::open(&path, PASS.into()).await.unwrap_err();
    assert!(
        matches!(err, Error::Backend(tresor_backend::BackendError::Locked)),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    drop(Tresor::create(&path, PASS.into()).await.unwrap());
    {
        let backend = tresor_redb::RedbBackend::open_existing(&path).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(
            "meta",
            b"schema_version".to_vec(),
            99u32.to_le_bytes().to_vec(),
        );
        backend.commit(batch, Durability::Immediate).await.unwrap();
        tokio::task::spawn_blocking(move || drop(backend))
            .await
            .unwrap();
    }
    let err = Tresor::open(&path, PASS.into()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedVersion {
                found: 99,
                supported: tresor::SCHEMA_VERSION
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_a_header_or_a_garbage_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.redb");
    {
        let backend = tresor_redb::RedbBackend::open(&path).unwrap();
        let mut batch = WriteBatch::new();
        batch.put("other", b"k".to_vec(), b"v".to_vec());
        backend.commit(batch, Durability::Immediate).await.unwrap();
        tokio::task::spawn_blocking(move || drop(backend))
            .await
            .unwrap();
    }
    let err = Tresor::open(&path, PASS.into()).await.unwrap_err();
    assert!(matches!(err, Error::NotAStore), "{err:?}");
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0x5A; 8192]).unwrap();
    let err = Tresor::open(&garbage, PASS.into()).await.unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_moved_to_another_key_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Tresor::create(&path, PASS.into()).await.unwrap();
    let m = store.messages();
    m.save(&msg("1", "c", "a", None, 1, "one")).await.unwrap();
    m.save(&msg("2", "c", "a", None, 2, "two")).await.unwrap();
    drop(store);
    // Swap the two sealed records on disk, as an attacker with write access could.
    let backend = tresor_redb::RedbBackend::open_existing(&path).unwrap();
    let all = backend
        .scan(
            "messages",
            tresor_backend::KeyRange::all(),
            tresor_backend::Direction::Forward,
            10,
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let mut batch = WriteBatch::new();
    batch.put("messages", all[0].0.clone(), all[1].1.clone());
    batch.put("messages", all[1].0.clone(), all[0].1.clone());
    backend.commit(batch, Durability::Immediate).await.unwrap();
    tokio::task::spawn_blocking(move || drop(backend))
        .await
        .unwrap();
    let store = Tresor::open(&path, PASS.into()).await.unwrap();
    let err = store.messages().get("1").await.unwrap_err();
    assert!(matches!(err, Error::Corrupted(_)), "{err:?}");
    let err = store.messages().recent(10, None).await.unwrap_err();
    assert!(matches!(err, Error::Corrupted(_)), "{err:?}");
}
