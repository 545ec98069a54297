//! Read views: synchronous reads, isolation, agreement with the async reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::basic::put_all;
use super::snapshots::{PairWrites, check_while_writing};
use crate::{Backend, BackendError, Direction, Durability, KeyRange, WriteBatch};

/// Runs `f` with a fresh read view of `b` on a blocking thread, as callers must.
async fn in_view<B, T, F>(b: &B, f: F) -> T
where
    B: Backend + Clone,
    T: Send + 'static,
    F: FnOnce(&dyn crate::ReadView) -> T + Send + 'static,
{
    let b = b.clone();
    tokio::task::spawn_blocking(move || {
        let view = b.read_view().unwrap();
        f(&*view)
    })
    .await
    .unwrap()
}

/// Five entries of table `t`, the empty key among them.
async fn put_five<B: Backend + Clone>(b: &B) {
    put_all(
        b,
        "t",
        &[
            (b"", b"e"),
            (b"a", b"1"),
            (b"ab", b"x"),
            (b"b", b"2"),
            (b"c", b"3"),
        ],
    )
    .await;
}

/// Ranges over [`put_five`]'s keys: all, between, prefixes (empty, matching, matching
/// nothing), an excluded start with an included end.
fn ranges_of_every_kind() -> Vec<KeyRange> {
    vec![
        KeyRange::all(),
        KeyRange::between(b"ab".to_vec(), b"c".to_vec()),
        KeyRange::prefix(b"a"),
        KeyRange::prefix(b""),
        KeyRange::prefix(b"zz"),
        KeyRange {
            start: std::ops::Bound::Excluded(b"a".to_vec()),
            end: std::ops::Bound::Included(b"c".to_vec()),
        },
    ]
}

/// A view keeps showing the state it was taken at while later commits change, add and
/// delete keys and tables.
pub async fn view_does_not_see_later_commits<B: Backend + Clone>(b: &B) {
    put_all(b, "t", &[(b"a", b"1"), (b"b", b"2")]).await;
    let view = {
        let b = b.clone();
        tokio::task::spawn_blocking(move || b.read_view().unwrap())
            .await
            .unwrap()
    };
    let mut batch = WriteBatch::new();
    batch.put("t", b"a".to_vec(), b"changed".to_vec());
    batch.delete("t", b"b".to_vec());
    batch.put("t", b"c".to_vec(), b"3".to_vec());
    batch.put("new_table", b"k".to_vec(), b"v".to_vec());
    b.commit(batch, Durability::Immediate).await.unwrap();

    let seen = tokio::task::spawn_blocking(move || {
        (
            view.get("t", b"a").unwrap(),
            view.get("t", b"b").unwrap(),
            view.get("t", b"c").unwrap(),
            view.len("t").unwrap(),
            view.get("new_table", b"k").unwrap(),
            view.scan("t", KeyRange::all(), Direction::Reverse, 10)
                .unwrap(),
            view.tables().unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(seen.0, Some(b"1".to_vec()));
    assert_eq!(seen.1, Some(b"2".to_vec()));
    assert_eq!(seen.2, None);
    assert_eq!(seen.3, 2);
    assert_eq!(seen.4, None);
    assert_eq!(
        seen.5,
        vec![
            (b"b".to_vec(), b"2".to_vec()),
            (b"a".to_vec(), b"1".to_vec())
        ]
    );
    assert_eq!(seen.6, vec!["t".to_owned()]);
    // A new view sees the commit.
    let later = in_view(b, |v| {
        (
            v.get("t", b"a").unwrap(),
            v.len("t").unwrap(),
            v.tables().unwrap(),
        )
    })
    .await;
    assert_eq!(
        later,
        (
            Some(b"changed".to_vec()),
            2,
            vec!["new_table".to_owned(), "t".to_owned()]
        )
    );
}

/// Views taken while writers commit two-table batches always see whole batches.
pub async fn view_sees_whole_batches<B: Backend + Clone>(b: &B) {
    let writes = PairWrites {
        rounds: 30,
        delete_every: 3,
        durability: |_| Durability::Eventual,
    };
    let reader = {
        let b = b.clone();
        move |done: Arc<AtomicBool>| {
            tokio::task::spawn_blocking(move || {
                let mut checked = 0u32;
                while !done.load(Ordering::SeqCst) || checked < 5 {
                    let view = b.read_view().unwrap();
                    let left = view
                        .scan("left", KeyRange::all(), Direction::Forward, usize::MAX)
                        .unwrap();
                    std::thread::yield_now();
                    let right = view
                        .scan("right", KeyRange::all(), Direction::Forward, usize::MAX)
                        .unwrap();
                    assert_eq!(left, right, "view {checked} saw half a batch");
                    assert_eq!(view.len("right").unwrap(), right.len() as u64);
                    checked += 1;
                }
                checked
            })
        }
    };
    check_while_writing(b, writes, reader).await;
}

/// A view's reads answer exactly as the backend's async reads: missing tables are empty,
/// names are validated, `get_many` answers in request order, limits, bounds and directions
/// hold.
pub async fn view_reads_like_the_backend<B: Backend + Clone>(b: &B) {
    put_five(b).await;
    let ranges = ranges_of_every_kind();
    let mut expected = Vec::new();
    for direction in [Direction::Forward, Direction::Reverse] {
        for limit in [0, 1, 2, 10] {
            for range in &ranges {
                expected.push(b.scan("t", range.clone(), direction, limit).await.unwrap());
            }
        }
    }
    let (scans, misc) = in_view(b, move |v| {
        let mut scans = Vec::new();
        for direction in [Direction::Forward, Direction::Reverse] {
            for limit in [0, 1, 2, 10] {
                for range in &ranges {
                    scans.push(v.scan("t", range.clone(), direction, limit).unwrap());
                }
            }
        }
        let misc = (
            v.get("absent", b"a").unwrap(),
            v.len("absent").unwrap(),
            v.scan("absent", KeyRange::all(), Direction::Forward, 5)
                .unwrap(),
            matches!(v.get("Bad", b"a"), Err(BackendError::InvalidTableName(_))),
            matches!(
                v.scan("", KeyRange::all(), Direction::Forward, 1),
                Err(BackendError::InvalidTableName(_))
            ),
            v.get_many("t", &[b"c".to_vec(), b"x".to_vec(), b"".to_vec()])
                .unwrap(),
            v.get_many("t", &[]).unwrap(),
            v.len("t").unwrap(),
        );
        (scans, misc)
    })
    .await;
    assert_eq!(scans, expected);
    assert_eq!(misc.0, None);
    assert_eq!(misc.1, 0);
    assert!(misc.2.is_empty());
    assert!(misc.3, "an invalid table name is rejected by get");
    assert!(misc.4, "an empty table name is rejected by scan");
    assert_eq!(misc.5, vec![Some(b"3".to_vec()), None, Some(b"e".to_vec())]);
    assert!(misc.6.is_empty());
    assert_eq!(misc.7, 5);
    // Every read of a view refuses a bad name, whatever the view has read before, and each
    // time (a refused name is never remembered as a table).
    let refusals = in_view(b, |v| {
        let mut refusals = Vec::new();
        for bad in ["Bad", "", "a-b", "t "] {
            for _ in 0..2 {
                refusals.push((bad, "get", v.get(bad, b"a").err()));
                refusals.push((bad, "get_many", v.get_many(bad, &[b"a".to_vec()]).err()));
                refusals.push((bad, "get_many of none", v.get_many(bad, &[]).err()));
                refusals.push((
                    bad,
                    "scan",
                    v.scan(bad, KeyRange::all(), Direction::Forward, 5).err(),
                ));
                refusals.push((
                    bad,
                    "scan of 0",
                    v.scan(bad, KeyRange::all(), Direction::Forward, 0).err(),
                ));
                refusals.push((bad, "len", v.len(bad).err()));
                // A valid table read in between, so that the view has tables open.
                v.get("t", b"a").unwrap();
            }
        }
        refusals
    })
    .await;
    for (bad, read, refused) in refusals {
        assert!(
            matches!(refused, Some(BackendError::InvalidTableName(_))),
            "{read} of table {bad:?}: {refused:?}"
        );
    }
}

/// `scan_each` lends exactly the entries `scan` returns, in its order, for every kind of
/// range, direction and limit; it stops when the visitor says so (counting the stopping
/// entry), reads a missing table as empty, and refuses a bad table name.
pub async fn view_scan_each_lends_what_scan_returns<B: Backend + Clone>(b: &B) {
    put_five(b).await;
    let outcome = in_view(b, |v| {
        let mut ranges = ranges_of_every_kind();
        ranges.push(KeyRange::between(b"c".to_vec(), b"a".to_vec()));
        let mut mismatches = Vec::new();
        for direction in [Direction::Forward, Direction::Reverse] {
            for limit in [0, 1, 2, 10] {
                for range in &ranges {
                    let scanned = v.scan("t", range.clone(), direction, limit).unwrap();
                    let mut lent = Vec::new();
                    let n = v
                        .scan_each("t", range.clone(), direction, limit, &mut |k, val| {
                            lent.push((k.to_vec(), val.to_vec()));
                            true
                        })
                        .unwrap();
                    if lent != scanned || n != scanned.len() {
                        mismatches.push((direction, limit, range.clone()));
                    }
                }
            }
        }
        let mut seen = Vec::new();
        let stopped = v
            .scan_each("t", KeyRange::all(), Direction::Reverse, 10, &mut |k, _| {
                seen.push(k.to_vec());
                seen.len() < 2
            })
            .unwrap();
        let absent = v
            .scan_each(
                "absent",
                KeyRange::all(),
                Direction::Forward,
                5,
                &mut |_, _| true,
            )
            .unwrap();
        let bad = v
            .scan_each(
                "Bad",
                KeyRange::all(),
                Direction::Forward,
                5,
                &mut |_, _| true,
            )
            .err();
        (mismatches, stopped, seen, absent, bad)
    })
    .await;
    let (mismatches, stopped, seen, absent, bad) = outcome;
    assert!(mismatches.is_empty(), "{mismatches:?}");
    assert_eq!(stopped, 2);
    assert_eq!(seen, vec![b"c".to_vec(), b"b".to_vec()]);
    assert_eq!(absent, 0);
    assert!(
        matches!(bad, Some(BackendError::InvalidTableName(_))),
        "{bad:?}"
    );
}
