//! Reopening, statistics and compaction.

use super::basic::put_all;
use crate::{Backend, BackendError, Direction, Durability, KeyRange, WriteBatch};

/// Immediate and Eventual commits, deletes and several tables are all there after every handle
/// is dropped (a clean close) and the store is opened again.
pub async fn reopen_persists<B, F>(b: B, mut reopen: F)
where
    B: Backend,
    F: FnMut() -> B,
{
    put_all(&b, "t", &[(b"a", b"1"), (b"b", b"2"), (b"", b"empty")]).await;
    let mut batch = WriteBatch::new();
    batch.delete("t", b"b".to_vec());
    batch.put("u", b"k".to_vec(), vec![9u8; 100_000]);
    b.commit(batch, Durability::Immediate).await.unwrap();
    let mut batch = WriteBatch::new();
    batch.put("t", b"eventual".to_vec(), b"e".to_vec());
    b.commit(batch, Durability::Eventual).await.unwrap();
    drop(b);

    let b = reopen();
    let all = b
        .scan("t", KeyRange::all(), Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(
        all,
        vec![
            (b"".to_vec(), b"empty".to_vec()),
            (b"a".to_vec(), b"1".to_vec()),
            (b"eventual".to_vec(), b"e".to_vec())
        ]
    );
    assert_eq!(b.get("u", b"k").await.unwrap(), Some(vec![9u8; 100_000]));
    assert_eq!(b.tables().await.unwrap(), vec!["t", "u"]);
    assert_eq!(b.len("t").await.unwrap(), 3);
    // The reopened store takes writes and survives a second reopen.
    put_all(&b, "t", &[(b"second", b"2")]).await;
    drop(b);
    let b = reopen();
    assert_eq!(b.get("t", b"second").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(b.len("t").await.unwrap(), 4);
}

/// Per-table entry counts follow inserts, overwrites, deletes and deletes of absent keys.
pub async fn stats_count_entries_per_table<B: Backend>(b: &B) {
    assert!(b.stats().await.unwrap().table_entries.is_empty());
    let mut batch = WriteBatch::new();
    for i in 0u8..50 {
        batch.put("t", vec![i], vec![i]);
        batch.put("u", vec![i], vec![i]);
    }
    b.commit(batch, Durability::Immediate).await.unwrap();
    let mut batch = WriteBatch::new();
    for i in 0u8..20 {
        batch.put("t", vec![i], vec![0]); // overwrite
        batch.delete("u", vec![i]);
        batch.delete("u", vec![i]); // twice
        batch.delete("u", vec![200 + i]); // absent
    }
    batch.put("u", vec![0], vec![1]); // re-insert one deleted key
    b.commit(batch, Durability::Eventual).await.unwrap();
    let stats = b.stats().await.unwrap();
    assert_eq!(
        stats.table_entries,
        vec![("t".to_owned(), 50), ("u".to_owned(), 31)]
    );
    assert_eq!(b.len("t").await.unwrap(), 50);
    assert_eq!(b.len("u").await.unwrap(), 31);
    if let Some(bytes) = stats.file_bytes {
        assert!(bytes > 0);
    }
}

/// Compaction keeps every entry, reports the sizes it saw, and is refused with `Busy` (or
/// allowed) while a snapshot is alive, which stays readable either way.
pub async fn compact_keeps_data<B: Backend>(b: &B) {
    let mut batch = WriteBatch::new();
    for i in 0u32..2_000 {
        batch.put("t", i.to_be_bytes().to_vec(), vec![7u8; 500]);
    }
    b.commit(batch, Durability::Immediate).await.unwrap();
    let mut batch = WriteBatch::new();
    for i in 0u32..1_900 {
        batch.delete("t", i.to_be_bytes().to_vec());
    }
    b.commit(batch, Durability::Eventual).await.unwrap();

    let snap = b.snapshot().await.unwrap();
    match b.compact().await {
        Ok(_) | Err(BackendError::Busy(_)) => {}
        Err(err) => panic!("compaction with a live snapshot: {err:?}"),
    }
    assert_eq!(snap.len("t").await.unwrap(), 100);
    drop(snap);

    let report = b.compact().await.unwrap();
    let after = b.stats().await.unwrap().file_bytes;
    assert_eq!(report.bytes_after, after);
    if let (Some(before), Some(after)) = (report.bytes_before, report.bytes_after) {
        assert_eq!(report.bytes_reclaimed(), before.saturating_sub(after));
    }
    assert_eq!(b.len("t").await.unwrap(), 100);
    let first = b
        .scan("t", KeyRange::all(), Direction::Forward, 1)
        .await
        .unwrap();
    assert_eq!(
        first,
        vec![(1_900u32.to_be_bytes().to_vec(), vec![7u8; 500])]
    );
    put_all(b, "t", &[(b"after", b"compaction")]).await;
    assert_eq!(b.len("t").await.unwrap(), 101);
}

/// While a slow commit (16 MiB, fsync) and a slow scan of it are in flight, other tasks of the
/// same runtime keep running. Meant for a **current-thread** runtime, where one blocking call
/// would stop every task: a ticker task must advance during each call. Not part of
/// [`backend_conformance_tests!`](crate::backend_conformance_tests) (the memory backend works
/// in place, without I/O to wait for); backends doing I/O run it from their own tests.
pub async fn slow_calls_do_not_block_the_runtime<B: Backend>(b: &B) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let ticks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (ticks, stop) = (Arc::clone(&ticks), Arc::clone(&stop));
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    let mut batch = WriteBatch::new();
    for i in 0u8..16 {
        batch.put("big", vec![i], vec![i; 1 << 20]);
    }
    let before = ticks.load(Ordering::SeqCst);
    b.commit(batch, Durability::Immediate).await.unwrap();
    let during_commit = ticks.load(Ordering::SeqCst) - before;

    let before = ticks.load(Ordering::SeqCst);
    let all = b
        .scan("big", KeyRange::all(), Direction::Forward, usize::MAX)
        .await
        .unwrap();
    let during_scan = ticks.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::SeqCst);
    ticker.await.unwrap();
    assert_eq!(all.len(), 16);
    assert!(
        during_commit > 0,
        "the runtime was blocked during the commit"
    );
    assert!(during_scan > 0, "the runtime was blocked during the scan");
}
