//! The shared read view: every read that begins before the next commit reads the same redb
//! read transaction (`Db::latest_view`), which the writer forgets after each commit, before it
//! answers the commit's callers. What must hold: a read begun after a commit was acknowledged
//! sees it, reads never go back in time, views taken earlier keep their snapshot, and the
//! shared view neither blocks compaction nor outlives the commit after it.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tresor_backend::{Backend, BackendError, Durability, WriteBatch};
use tresor_redb::RedbBackend;

fn counter_batch(n: u64) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put("t", b"n".to_vec(), n.to_be_bytes().to_vec());
    // A second table, so that a view that opened `t` earlier is not the only one in play.
    batch.put("u", n.to_be_bytes().to_vec(), b"x".to_vec());
    batch
}

fn value(bytes: Option<Vec<u8>>) -> u64 {
    bytes.map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()))
}

/// Each acknowledged commit is seen by the next read, through every read path, while views
/// from before it keep what they saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_an_acknowledged_commit_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = RedbBackend::open(dir.path().join("s.redb")).unwrap();
    let mut held = Vec::new();
    for n in 1..=60u64 {
        let durability = if n % 3 == 0 {
            Durability::Eventual
        } else {
            Durability::Immediate
        };
        // Read (and so share) the view of the state before this commit, on every path.
        let before = b.read_view().unwrap();
        assert_eq!(value(before.get("t", b"n").unwrap()), n - 1);
        assert_eq!(value(b.get("t", b"n").await.unwrap()), n - 1);
        b.commit(counter_batch(n), durability).await.unwrap();
        assert_eq!(value(b.read_view().unwrap().get("t", b"n").unwrap()), n);
        assert_eq!(value(b.get("t", b"n").await.unwrap()), n);
        assert_eq!(b.len("u").await.unwrap(), n);
        let snapshot = b.snapshot().await.unwrap();
        assert_eq!(value(snapshot.get("t", b"n").await.unwrap()), n);
        // The view from before still reads the state it was taken in.
        assert_eq!(value(before.get("t", b"n").unwrap()), n - 1);
        assert_eq!(before.len("u").unwrap(), n - 1);
        if n % 20 == 0 {
            held.push((n, before));
        }
    }
    for (n, view) in &held {
        assert_eq!(value(view.get("t", b"n").unwrap()), n - 1);
    }
}

/// Readers on several threads while commits go on: no reader ever sees the counter go back,
/// and each sees at least the value acknowledged before its read began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(RedbBackend::open(dir.path().join("s.redb")).unwrap());
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (b, acked, stop) = (Arc::clone(&b), Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut last = 0;
                let mut reads = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let floor = acked.load(Ordering::Acquire);
                    let seen = value(b.read_view().unwrap().get("t", b"n").unwrap());
                    assert!(seen >= floor, "read {seen} after {floor} was acknowledged");
                    assert!(seen >= last, "read {seen} after {last}");
                    last = seen;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for n in 1..=400u64 {
        b.commit(counter_batch(n), Durability::Eventual)
            .await
            .unwrap();
        acked.store(n, Ordering::Release);
    }
    stop.store(true, Ordering::Release);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
    assert_eq!(value(b.get("t", b"n").await.unwrap()), 400);
}

/// The shared view is not a snapshot anyone holds: compaction runs after reads without a
/// `Busy`, and a view the caller still holds makes it `Busy` as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_view_does_not_block_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let b = RedbBackend::open(dir.path().join("s.redb")).unwrap();
    for n in 1..=5u64 {
        b.commit(counter_batch(n), Durability::Immediate)
            .await
            .unwrap();
    }
    // Reads with no commit after them: the shared view is alive when compaction begins.
    assert_eq!(value(b.get("t", b"n").await.unwrap()), 5);
    assert_eq!(value(b.read_view().unwrap().get("t", b"n").unwrap()), 5);
    b.compact().await.unwrap();
    assert_eq!(value(b.get("t", b"n").await.unwrap()), 5);

    let held = b.read_view().unwrap();
    assert!(matches!(b.compact().await, Err(BackendError::Busy(_))));
    assert_eq!(value(held.get("t", b"n").unwrap()), 5);
    drop(held);
    b.compact().await.unwrap();
    b.commit(counter_batch(6), Durability::Immediate)
        .await
        .unwrap();
    assert_eq!(value(b.read_view().unwrap().get("t", b"n").unwrap()), 6);
}
