//! Conditional writes (read-modify-write), batch atomicity, and concurrent writers.

use std::collections::BTreeSet;

use super::basic::put_all;
use crate::{Backend, BackendError, Direction, Durability, Expect, KeyRange, WriteBatch};

fn failed_at(err: &BackendError) -> Option<(&str, usize)> {
    match err {
        BackendError::ConditionFailed { table, index } => Some((table.as_str(), *index)),
        _ => None,
    }
}

/// `Absent`, `Present` and `Value` are checked against the committed state; a failure names
/// the condition's table and position; a batch of conditions only writes nothing.
pub async fn conditions_check_committed_state<B: Backend>(b: &B) {
    put_all(b, "t", &[(b"k", b"v1")]).await;
    let mut ok = WriteBatch::new();
    ok.expect("t", b"k".to_vec(), Expect::Present);
    ok.expect("t", b"k".to_vec(), Expect::Value(b"v1".to_vec()));
    ok.expect("t", b"absent".to_vec(), Expect::Absent);
    ok.expect("never_written", b"x".to_vec(), Expect::Absent);
    ok.put("t", b"k".to_vec(), b"v2".to_vec());
    b.commit(ok, Durability::Immediate).await.unwrap();
    assert_eq!(b.get("t", b"k").await.unwrap(), Some(b"v2".to_vec()));

    let cases = [
        ("t", b"k".to_vec(), Expect::Absent),
        ("t", b"k".to_vec(), Expect::Value(b"v1".to_vec())),
        ("t", b"k".to_vec(), Expect::Value(Vec::new())),
        ("t", b"absent".to_vec(), Expect::Present),
        ("other", b"k".to_vec(), Expect::Present),
    ];
    for (table, key, expect) in cases {
        let mut batch = WriteBatch::new();
        batch.expect("t", b"k".to_vec(), Expect::Present); // index 0 holds
        batch.expect(table, key.clone(), expect.clone()); // index 1 fails
        batch.put("t", b"k".to_vec(), b"never".to_vec());
        let err = b.commit(batch, Durability::Immediate).await.unwrap_err();
        assert_eq!(failed_at(&err), Some((table, 1)), "{expect:?}: {err:?}");
    }
    assert_eq!(b.get("t", b"k").await.unwrap(), Some(b"v2".to_vec()));

    let mut only = WriteBatch::new();
    only.expect("t", b"k".to_vec(), Expect::Present);
    b.commit(only, Durability::Eventual).await.unwrap();
    let mut bad_name = WriteBatch::new();
    bad_name.expect("Bad", b"k".to_vec(), Expect::Absent);
    assert!(matches!(
        b.commit(bad_name, Durability::Immediate).await,
        Err(BackendError::InvalidTableName(_))
    ));
}

/// A batch whose last condition fails leaves nothing of its puts and deletes, in any table.
pub async fn failed_condition_applies_nothing<B: Backend>(b: &B) {
    put_all(b, "a", &[(b"keep", b"1"), (b"gone", b"2")]).await;
    let mut batch = WriteBatch::new();
    batch.put("a", b"new".to_vec(), b"x".to_vec());
    batch.put("a", b"keep".to_vec(), b"changed".to_vec());
    batch.delete("a", b"gone".to_vec());
    batch.put("b", b"new".to_vec(), b"x".to_vec());
    batch.expect("a", b"keep".to_vec(), Expect::Value(b"1".to_vec()));
    batch.expect("a", b"gone".to_vec(), Expect::Absent);
    let err = b.commit(batch, Durability::Immediate).await.unwrap_err();
    assert_eq!(failed_at(&err), Some(("a", 1)), "{err:?}");
    let all = b
        .scan("a", KeyRange::all(), Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(
        all,
        vec![
            (b"gone".to_vec(), b"2".to_vec()),
            (b"keep".to_vec(), b"1".to_vec())
        ]
    );
    assert_eq!(b.len("b").await.unwrap(), 0);
    assert!(!b.tables().await.unwrap().contains(&"b".to_owned()));
}

/// 32 tasks race to claim each of 8 one-time keys (`Absent` then put): each key is claimed by
/// exactly one task and every loser gets `ConditionFailed`.
pub async fn claim_exactly_once_under_contention<B: Backend + Clone>(b: &B) {
    let mut handles = Vec::new();
    for task in 0u8..32 {
        let b = b.clone();
        handles.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for key in 0u8..8 {
                let mut batch = WriteBatch::new();
                batch.expect("claims", vec![key], Expect::Absent);
                batch.put("claims", vec![key], vec![task]);
                batch.put("winners", vec![key, task], Vec::new());
                match b.commit(batch, Durability::Immediate).await {
                    Ok(()) => won.push(key),
                    Err(BackendError::ConditionFailed { .. }) => {}
                    Err(err) => panic!("task {task}: {err:?}"),
                }
            }
            (task, won)
        }));
    }
    let mut claimed = BTreeSet::new();
    for h in handles {
        let (task, won) = h.await.unwrap();
        for key in won {
            assert!(claimed.insert(key), "key {key} claimed twice");
            assert_eq!(b.get("claims", &[key]).await.unwrap(), Some(vec![task]));
        }
    }
    assert_eq!(claimed, (0u8..8).collect());
    assert_eq!(b.len("winners").await.unwrap(), 8);
}

/// 16 tasks each increment a shared counter 10 times with a read, compare-and-set, retry loop:
/// the counter ends at exactly 160.
pub async fn counter_increments_lose_no_update<B: Backend + Clone>(b: &B) {
    let mut handles = Vec::new();
    for _ in 0..16 {
        let b = b.clone();
        handles.push(tokio::spawn(async move {
            let mut retries = 0u64;
            for _ in 0..10 {
                loop {
                    let current = b.get("counters", b"c").await.unwrap();
                    let n = current
                        .as_deref()
                        .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
                    let mut batch = WriteBatch::new();
                    batch.expect(
                        "counters",
                        b"c".to_vec(),
                        current.map_or(Expect::Absent, Expect::Value),
                    );
                    batch.put("counters", b"c".to_vec(), (n + 1).to_be_bytes().to_vec());
                    match b.commit(batch, Durability::Immediate).await {
                        Ok(()) => break,
                        Err(BackendError::ConditionFailed { .. }) => retries += 1,
                        Err(err) => panic!("{err:?}"),
                    }
                }
            }
            retries
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let value = b.get("counters", b"c").await.unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(value.try_into().unwrap()), 160);
}

/// Valid and failing batches (a failed condition, an invalid table name) committed at the same
/// time: every valid one applies, every failing one fails with its own error and leaves nothing.
pub async fn failing_batches_do_not_fail_others<B: Backend + Clone>(b: &B) {
    put_all(b, "t", &[(b"taken", b"x")]).await;
    let mut handles = Vec::new();
    for task in 0u8..48 {
        let b = b.clone();
        handles.push(tokio::spawn(async move {
            let mut batch = WriteBatch::new();
            batch.put("t", vec![task], vec![task]);
            batch.put("u", vec![task], vec![task]);
            let durability = if task % 2 == 0 {
                Durability::Immediate
            } else {
                Durability::Eventual
            };
            match task % 3 {
                0 => batch.expect("t", b"taken".to_vec(), Expect::Absent),
                1 => batch.put("Not_Valid", vec![task], vec![task]),
                _ => batch.expect("t", b"taken".to_vec(), Expect::Present),
            }
            (task, b.commit(batch, durability).await)
        }));
    }
    for h in handles {
        let (task, result) = h.await.unwrap();
        match task % 3 {
            0 => assert!(
                matches!(result, Err(BackendError::ConditionFailed { index: 0, .. })),
                "{task}: {result:?}"
            ),
            1 => assert!(
                matches!(result, Err(BackendError::InvalidTableName(_))),
                "{task}: {result:?}"
            ),
            _ => result.unwrap(),
        }
        let expected = (task % 3 == 2).then(|| vec![task]);
        assert_eq!(b.get("t", &[task]).await.unwrap(), expected);
        assert_eq!(b.get("u", &[task]).await.unwrap(), expected);
    }
    assert_eq!(b.len("u").await.unwrap(), 16);
}
