//! What only a file-backed SQLite store can show: locking (in this process and against a
//! second one), typed errors for foreign and missing files, compaction, and a runtime that
//! keeps running during slow calls.
//!
//! The second process is this test binary run again with `TRESOR_SQLITE_CHILD` set: the test
//! `child_process_entry` then plays the child's part (and does nothing in a normal run).
#![allow(clippy::unwrap_used)]

use std::process::Command;

use tresor_backend::{Backend, BackendError, Durability, WriteBatch};
use tresor_sqlite::SqliteBackend;

/// Exit code of a child whose open failed with `Locked`.
const LOCKED: i32 = 10;

/// The child's part; a no-op unless `TRESOR_SQLITE_CHILD` is set.
#[test]
fn child_process_entry() {
    let Ok(path) = std::env::var("TRESOR_SQLITE_CHILD") else {
        return;
    };
    match SqliteBackend::open(&path) {
        Ok(_) => std::process::exit(0),
        Err(BackendError::Locked) => std::process::exit(LOCKED),
        Err(err) => panic!("child open: {err:?}"),
    }
}

fn child_open(path: &std::path::Path) -> Option<i32> {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_process_entry", "--exact", "--test-threads=1"])
        .env("TRESOR_SQLITE_CHILD", path)
        .status()
        .unwrap()
        .code()
}

async fn put(b: &SqliteBackend, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put("t", key, value);
    b.commit(batch, Durability::Immediate).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_locked_while_open_in_this_and_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let first = SqliteBackend::open(&path).unwrap();
    put(&first, b"k", b"v").await;
    assert!(matches!(
        SqliteBackend::open(&path),
        Err(BackendError::Locked)
    ));
    assert_eq!(child_open(&path), Some(LOCKED));
    assert_eq!(first.get("t", b"k").await.unwrap(), Some(b"v".to_vec()));
    drop(first);
    assert_eq!(child_open(&path), Some(0));
    let again = SqliteBackend::open_existing(&path).unwrap();
    assert_eq!(again.get("t", b"k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(again.path(), path.as_path());
}

#[test]
fn a_foreign_file_is_corrupted_and_a_missing_one_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    std::fs::write(&path, vec![0x5A; 10_000]).unwrap();
    assert!(matches!(
        SqliteBackend::open(&path),
        Err(BackendError::Corrupted(_))
    ));
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x5A; 10_000]);
    let absent = dir.path().join("absent.sqlite");
    match SqliteBackend::open_existing(&absent) {
        Err(BackendError::Io(err)) => assert_eq!(err.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected Io(NotFound), got {other:?}"),
    }
    assert!(!absent.exists());
    assert!(matches!(
        SqliteBackend::open(dir.path().join("no_dir").join("s.sqlite")),
        Err(BackendError::Io(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_reclaims_space_but_not_under_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let b = SqliteBackend::open(&path).unwrap();
    let mut batch = WriteBatch::new();
    for i in 0u32..64 {
        batch.put("t", i.to_be_bytes(), vec![3u8; 64 * 1024]);
    }
    b.commit(batch, Durability::Immediate).await.unwrap();
    let mut batch = WriteBatch::new();
    for i in 1u32..64 {
        batch.delete("t", i.to_be_bytes().to_vec());
    }
    b.commit(batch, Durability::Immediate).await.unwrap();

    let snapshot = b.snapshot().await.unwrap();
    assert!(matches!(b.compact().await, Err(BackendError::Busy(_))));
    put(&b, b"new", b"v").await;
    assert_eq!(snapshot.len("t").await.unwrap(), 1);
    drop(snapshot);

    let report = b.compact().await.unwrap();
    assert!(report.bytes_reclaimed() > 1024 * 1024, "{report:?}");
    assert_eq!(b.len("t").await.unwrap(), 2);
    assert_eq!(
        b.stats().await.unwrap().table_entries,
        vec![("t".to_owned(), 2)]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn slow_calls_do_not_block_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let b = SqliteBackend::open(dir.path().join("store.sqlite")).unwrap();
    tresor_backend::testing::slow_calls_do_not_block_the_runtime(&b).await;
}
