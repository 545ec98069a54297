//! The store on each persistent engine: reopen, locking, stats, backups across engines.
//! (The message repository's behaviour runs on every backend in `messages.rs`.)
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{PASS, msg};
use tresor::{BackendKind, Error, Message, Options, Tresor, restore_backup_with};

fn options(kind: BackendKind) -> Options {
    Options::default().with_backend_kind(kind)
}

fn sample() -> Vec<Message> {
    (0..120)
        .map(|i| {
            msg(
                &format!("m{i}"),
                &format!("c{}", i % 4),
                &format!("p{}", i % 3),
                Some(&format!("p{}", (i + 1) % 3)),
                1_600_000_000_000 + i as i64,
                &format!("body {i}"),
            )
        })
        .collect()
}

async fn answers(store: &Tresor) -> (Vec<Message>, Vec<Message>, u64) {
    let m = store.messages();
    (
        m.recent(500, None).await.unwrap(),
        m.by_peer("p1", 500, None).await.unwrap(),
        store.stats().await.unwrap().messages,
    )
}

async fn reopen_lock_and_backup(kind: BackendKind, other: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.store");
    let before = {
        let store = Tresor::create_with(&path, PASS.into(), options(kind))
            .await
            .unwrap();
        store.messages().save_batch(&sample()).await.unwrap();
        assert_eq!(BackendKind::detect(&path), Some(kind));
        // Open twice: the second handle is refused while the first lives.
        let err = Tresor::open(&path, PASS.into()).await.unwrap_err();
        assert!(
            matches!(err, Error::Backend(tresor_backend::BackendError::Locked)),
            "{err:?}"
        );
        answers(&store).await
    };
    // Opened by detection, whatever the options say.
    let store = Tresor::open_with(&path, PASS.into(), options(other))
        .await
        .unwrap();
    assert_eq!(answers(&store).await, before);
    assert!(store.stats().await.unwrap().file_bytes.unwrap() > 0);
    let err = Tresor::open(dir.path().join("absent"), "x".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)));

    // A backup restores into the other engine with the same answers.
    let backup = store.backup_to_dir(dir.path().join("b")).await.unwrap();
    let target = dir.path().join("restored.store");
    let (restored, _) = restore_backup_with(&backup.path, &target, PASS.into(), options(other))
        .await
        .unwrap();
    assert_eq!(BackendKind::detect(&target), Some(other));
    assert_eq!(answers(&restored).await, before);
    only_the_store_file_is_left(dir.path(), &target, restored).await;
}

/// After closing, the restored store is one file: no temporary or log file beside it.
async fn only_the_store_file_is_left(dir: &Path, target: &Path, store: Tresor) {
    drop(store);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("restored") || n.starts_with(".restored"))
        .collect();
    names.sort();
    let expected = target.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(names, vec![expected]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_reopens_locks_and_restores_into_sqlite() {
    reopen_lock_and_backup(BackendKind::Redb, BackendKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_reopens_locks_and_restores_into_redb() {
    reopen_lock_and_backup(BackendKind::Sqlite, BackendKind::Redb).await;
}
