//! Snapshot isolation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinHandle;

use super::basic::put_all;
use crate::{Backend, BackendError, Direction, Durability, KeyRange, WriteBatch};

/// A snapshot keeps showing the state it was taken at while later commits change, add and
/// delete keys and tables; the backend shows the new state.
pub async fn snapshot_does_not_see_later_commits<B: Backend>(b: &B) {
    put_all(b, "t", &[(b"a", b"1"), (b"b", b"2")]).await;
    let snap = b.snapshot().await.unwrap();
    let mut batch = WriteBatch::new();
    batch.put("t", b"a".to_vec(), b"changed".to_vec());
    batch.delete("t", b"b".to_vec());
    batch.put("t", b"c".to_vec(), b"3".to_vec());
    batch.put("new_table", b"k".to_vec(), b"v".to_vec());
    b.commit(batch, Durability::Immediate).await.unwrap();
    put_all(b, "t", &[(b"d", b"4")]).await;

    assert_eq!(snap.get("t", b"a").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(snap.get("t", b"b").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(snap.get("t", b"c").await.unwrap(), None);
    assert_eq!(snap.len("t").await.unwrap(), 2);
    assert_eq!(snap.get("new_table", b"k").await.unwrap(), None);
    assert_eq!(snap.tables().await.unwrap(), vec!["t".to_owned()]);
    let all = snap
        .scan("t", KeyRange::all(), Direction::Reverse, 10)
        .await
        .unwrap();
    assert_eq!(
        all,
        vec![
            (b"b".to_vec(), b"2".to_vec()),
            (b"a".to_vec(), b"1".to_vec())
        ]
    );
    assert_eq!(b.get("t", b"a").await.unwrap(), Some(b"changed".to_vec()));
    assert_eq!(b.len("t").await.unwrap(), 3);
    let later = b.snapshot().await.unwrap();
    assert_eq!(later.len("t").await.unwrap(), 3);
    assert_eq!(
        later.get("new_table", b"k").await.unwrap(),
        Some(b"v".to_vec())
    );
    drop(snap);
    // Still usable after another snapshot of the same backend was dropped.
    assert_eq!(later.get("t", b"d").await.unwrap(), Some(b"4".to_vec()));
}

/// How the writers of [`check_while_writing`] commit.
pub(crate) struct PairWrites {
    /// Batches each of the 4 writers commits.
    pub(crate) rounds: u8,
    /// Every `delete_every`-th batch of a writer also deletes the key its previous batch put.
    pub(crate) delete_every: u8,
    /// The durability of a writer's `i`-th batch.
    pub(crate) durability: fn(u8) -> Durability,
}

/// Runs 4 writer tasks committing two-table batches (each puts, and sometimes deletes, the same
/// key in tables `left` and `right`, so that a reader seeing half a batch sees the two tables
/// differ) while the reader task started by `spawn_reader` checks them. Once every writer is
/// done, raises the flag given to the reader, which must then end, returning how many checks
/// it made: at least 5. Ends with both tables of the same size.
pub(crate) async fn check_while_writing<B: Backend + Clone>(
    b: &B,
    writes: PairWrites,
    spawn_reader: impl FnOnce(Arc<AtomicBool>) -> JoinHandle<u32>,
) {
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0u8..4 {
        let b = b.clone();
        writers.push(tokio::spawn(async move {
            for i in 0u8..writes.rounds {
                let mut batch = WriteBatch::new();
                batch.put("left", vec![w, i], vec![i]);
                batch.put("right", vec![w, i], vec![i]);
                if i > 0 && i % writes.delete_every == 0 {
                    batch.delete("left", vec![w, i - 1]);
                    batch.delete("right", vec![w, i - 1]);
                }
                b.commit(batch, (writes.durability)(i)).await.unwrap();
            }
        }));
    }
    let reader = spawn_reader(Arc::clone(&done));
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    assert!(reader.await.unwrap() >= 5);
    assert_eq!(b.len("left").await.unwrap(), b.len("right").await.unwrap());
}

/// Snapshots taken while writers commit two-table batches always see whole batches: both
/// tables hold the same keys, never one without the other.
pub async fn snapshot_sees_whole_batches<B: Backend + Clone>(b: &B) {
    let writes = PairWrites {
        rounds: 40,
        delete_every: 4,
        durability: |i| {
            if i % 2 == 0 {
                Durability::Eventual
            } else {
                Durability::Immediate
            }
        },
    };
    let reader = {
        let b = b.clone();
        move |done: Arc<AtomicBool>| {
            tokio::spawn(async move {
                let mut checked = 0u32;
                while !done.load(Ordering::SeqCst) || checked < 5 {
                    let snap = b.snapshot().await.unwrap();
                    let left = snap
                        .scan("left", KeyRange::all(), Direction::Forward, usize::MAX)
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                    let right = snap
                        .scan("right", KeyRange::all(), Direction::Forward, usize::MAX)
                        .await
                        .unwrap();
                    assert_eq!(left, right, "snapshot {checked} saw half a batch");
                    assert_eq!(snap.len("left").await.unwrap(), left.len() as u64);
                    assert_eq!(snap.len("right").await.unwrap(), right.len() as u64);
                    checked += 1;
                }
                checked
            })
        }
    };
    check_while_writing(b, writes, reader).await;
}

/// A snapshot's reads behave as the backend's: missing tables are empty, names are validated,
/// `get_many` answers in request order, limits and directions hold.
pub async fn snapshot_reads_like_the_backend<B: Backend>(b: &B) {
    put_all(b, "t", &[(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]).await;
    let snap = b.snapshot().await.unwrap();
    assert_eq!(snap.get("absent", b"a").await.unwrap(), None);
    assert_eq!(snap.len("absent").await.unwrap(), 0);
    assert!(
        snap.scan("absent", KeyRange::all(), Direction::Forward, 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        snap.get("Bad", b"a").await,
        Err(BackendError::InvalidTableName(_))
    ));
    assert!(matches!(
        snap.scan("", KeyRange::all(), Direction::Forward, 1).await,
        Err(BackendError::InvalidTableName(_))
    ));
    let many = snap
        .get_many("t", &[b"c".to_vec(), b"x".to_vec(), b"a".to_vec()])
        .await
        .unwrap();
    assert_eq!(many, vec![Some(b"3".to_vec()), None, Some(b"1".to_vec())]);
    assert!(snap.get_many("t", &[]).await.unwrap().is_empty());
    for direction in [Direction::Forward, Direction::Reverse] {
        for limit in [0, 2, 10] {
            for range in [
                KeyRange::all(),
                KeyRange::between(b"b".to_vec(), b"z".to_vec()),
                KeyRange::prefix(b"a"),
            ] {
                assert_eq!(
                    snap.scan("t", range.clone(), direction, limit)
                        .await
                        .unwrap(),
                    b.scan("t", range, direction, limit).await.unwrap()
                );
            }
        }
    }
}
