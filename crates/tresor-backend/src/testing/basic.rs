//! The basic cases: reads, writes, deletes, scans, the model test.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::{Backend, BackendError, Direction, Durability, KeyRange, WriteBatch};

pub(crate) fn kv(k: &[u8], v: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (k.to_vec(), v.to_vec())
}

pub(crate) async fn put_all<B: Backend>(b: &B, table: &str, entries: &[(&[u8], &[u8])]) {
    let mut batch = WriteBatch::new();
    for (k, v) in entries {
        batch.put(table, *k, *v);
    }
    b.commit(batch, Durability::Immediate).await.unwrap();
}

/// A missing key, and a key of a table never written, read as `None`; such a table is empty.
pub async fn missing_key_reads_none<B: Backend>(b: &B) {
    assert_eq!(b.get("never_written", b"k").await.unwrap(), None);
    assert_eq!(b.len("never_written").await.unwrap(), 0);
    let scan = b
        .scan("never_written", KeyRange::all(), Direction::Forward, 10)
        .await
        .unwrap();
    assert!(scan.is_empty());
    put_all(b, "t", &[(b"a", b"1")]).await;
    assert_eq!(b.get("t", b"b").await.unwrap(), None);
}

/// A put is readable after commit; the empty key and empty value are legal.
pub async fn put_then_get<B: Backend>(b: &B) {
    put_all(b, "t", &[(b"key", b"value"), (b"", b""), (b"e", b"")]).await;
    assert_eq!(b.get("t", b"key").await.unwrap(), Some(b"value".to_vec()));
    assert_eq!(b.get("t", b"").await.unwrap(), Some(Vec::new()));
    assert_eq!(b.get("t", b"e").await.unwrap(), Some(Vec::new()));
}

/// Within a batch and across batches, the last write to a key wins.
pub async fn last_write_wins<B: Backend>(b: &B) {
    let mut batch = WriteBatch::new();
    batch.put("t", b"k".to_vec(), b"1".to_vec());
    batch.put("t", b"k".to_vec(), b"2".to_vec());
    batch.delete("t", b"d".to_vec());
    batch.put("t", b"d".to_vec(), b"kept".to_vec());
    batch.put("t", b"x".to_vec(), b"gone".to_vec());
    batch.delete("t", b"x".to_vec());
    b.commit(batch, Durability::Immediate).await.unwrap();
    assert_eq!(b.get("t", b"k").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(b.get("t", b"d").await.unwrap(), Some(b"kept".to_vec()));
    assert_eq!(b.get("t", b"x").await.unwrap(), None);
    put_all(b, "t", &[(b"k", b"3")]).await;
    assert_eq!(b.get("t", b"k").await.unwrap(), Some(b"3".to_vec()));
    assert_eq!(b.len("t").await.unwrap(), 2);
}

/// Deletes remove keys; deleting an absent key (or in an absent table) succeeds.
pub async fn delete_removes<B: Backend>(b: &B) {
    put_all(b, "t", &[(b"a", b"1"), (b"b", b"2")]).await;
    let mut batch = WriteBatch::new();
    batch.delete("t", b"a".to_vec());
    batch.delete("t", b"absent".to_vec());
    batch.delete("other_absent", b"absent".to_vec());
    b.commit(batch, Durability::Immediate).await.unwrap();
    assert_eq!(b.get("t", b"a").await.unwrap(), None);
    assert_eq!(b.get("t", b"b").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(b.len("t").await.unwrap(), 1);
}

/// A batch writes to several tables at once; tables are independent keyspaces.
pub async fn batch_spans_tables<B: Backend>(b: &B) {
    let mut batch = WriteBatch::new();
    batch.put("alpha", b"k".to_vec(), b"a".to_vec());
    batch.put("beta", b"k".to_vec(), b"b".to_vec());
    batch.put("beta", b"k2".to_vec(), b"b2".to_vec());
    b.commit(batch, Durability::Immediate).await.unwrap();
    assert_eq!(b.get("alpha", b"k").await.unwrap(), Some(b"a".to_vec()));
    assert_eq!(b.get("beta", b"k").await.unwrap(), Some(b"b".to_vec()));
    assert_eq!(b.len("alpha").await.unwrap(), 1);
    assert_eq!(b.len("beta").await.unwrap(), 2);
    let tables = b.tables().await.unwrap();
    assert!(tables.contains(&"alpha".to_owned()) && tables.contains(&"beta".to_owned()));
    let mut sorted = tables.clone();
    sorted.sort();
    assert_eq!(tables, sorted, "tables() is in ascending order");
}

/// An empty batch commits and changes nothing.
pub async fn empty_batch_is_noop<B: Backend>(b: &B) {
    b.commit(WriteBatch::new(), Durability::Immediate)
        .await
        .unwrap();
    b.commit(WriteBatch::new(), Durability::Eventual)
        .await
        .unwrap();
    assert_eq!(b.len("t").await.unwrap(), 0);
}

/// A batch with an invalid table name is rejected as a whole: nothing of it is applied.
pub async fn invalid_batch_applies_nothing<B: Backend>(b: &B) {
    let mut batch = WriteBatch::new();
    batch.put("good", b"k".to_vec(), b"v".to_vec());
    batch.put("Bad/Name", b"k".to_vec(), b"v".to_vec());
    let err = b.commit(batch, Durability::Immediate).await.unwrap_err();
    assert!(matches!(err, BackendError::InvalidTableName(_)), "{err:?}");
    assert_eq!(b.get("good", b"k").await.unwrap(), None);
    assert!(matches!(
        b.get("Bad/Name", b"k").await,
        Err(BackendError::InvalidTableName(_))
    ));
}

/// Keys sort as unsigned byte strings, forward and reverse, and `limit` is respected.
pub async fn scan_orders_bytes<B: Backend>(b: &B) {
    let keys: [&[u8]; 7] = [
        b"",
        &[0x00],
        &[0x00, 0x00],
        &[0x01],
        &[0x7F],
        &[0x80],
        &[0xFF, 0x00],
    ];
    // Insert in a scrambled order.
    for i in [3usize, 6, 0, 5, 1, 4, 2] {
        put_all(b, "t", &[(keys[i], &[i as u8])]).await;
    }
    let fwd = b
        .scan("t", KeyRange::all(), Direction::Forward, 100)
        .await
        .unwrap();
    let expected: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| kv(k, &[i as u8]))
        .collect();
    assert_eq!(fwd, expected);
    let rev = b
        .scan("t", KeyRange::all(), Direction::Reverse, 100)
        .await
        .unwrap();
    let mut expected_rev = expected.clone();
    expected_rev.reverse();
    assert_eq!(rev, expected_rev);
    let first3 = b
        .scan("t", KeyRange::all(), Direction::Forward, 3)
        .await
        .unwrap();
    assert_eq!(first3, expected[..3].to_vec());
    let last2 = b
        .scan("t", KeyRange::all(), Direction::Reverse, 2)
        .await
        .unwrap();
    assert_eq!(last2, expected_rev[..2].to_vec());
    let none = b
        .scan("t", KeyRange::all(), Direction::Forward, 0)
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// Included, excluded and unbounded ends, prefixes and inverted ranges behave as in `BTreeMap`.
pub async fn scan_respects_bounds<B: Backend>(b: &B) {
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0u8..20).map(|i| (vec![b'k', i], vec![i])).collect();
    let refs: Vec<(&[u8], &[u8])> = entries
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    put_all(b, "t", &refs).await;
    put_all(b, "t", &[(b"j", b"before"), (b"l", b"after")]).await;
    let keys = |v: Vec<(Vec<u8>, Vec<u8>)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();

    let prefix = b
        .scan("t", KeyRange::prefix(b"k"), Direction::Forward, 100)
        .await
        .unwrap();
    assert_eq!(prefix, entries);

    let between = b
        .scan(
            "t",
            KeyRange::between(vec![b'k', 5], vec![b'k', 8]),
            Direction::Forward,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        keys(between),
        vec![vec![b'k', 5], vec![b'k', 6], vec![b'k', 7]]
    );

    let range = KeyRange {
        start: Bound::Excluded(vec![b'k', 5]),
        end: Bound::Included(vec![b'k', 8]),
    };
    let got = b.scan("t", range, Direction::Reverse, 100).await.unwrap();
    assert_eq!(keys(got), vec![vec![b'k', 8], vec![b'k', 7], vec![b'k', 6]]);

    let below = b
        .scan(
            "t",
            KeyRange::prefix_below(b"k", vec![b'k', 3]),
            Direction::Reverse,
            2,
        )
        .await
        .unwrap();
    assert_eq!(keys(below), vec![vec![b'k', 2], vec![b'k', 1]]);

    let inverted = KeyRange::between(vec![b'k', 9], vec![b'k', 2]);
    assert!(
        b.scan("t", inverted, Direction::Forward, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let open_start = KeyRange {
        start: Bound::Unbounded,
        end: Bound::Excluded(b"k".to_vec()),
    };
    let got = b
        .scan("t", open_start, Direction::Forward, 100)
        .await
        .unwrap();
    assert_eq!(keys(got), vec![b"j".to_vec()]);
}

/// `get_many` answers each key in request order, `None` for missing ones.
pub async fn get_many_in_request_order<B: Backend>(b: &B) {
    put_all(b, "t", &[(b"a", b"1"), (b"c", b"3")]).await;
    let got = b
        .get_many(
            "t",
            &[b"c".to_vec(), b"b".to_vec(), b"a".to_vec(), b"c".to_vec()],
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some(b"3".to_vec()),
            None,
            Some(b"1".to_vec()),
            Some(b"3".to_vec())
        ]
    );
    assert!(b.get_many("t", &[]).await.unwrap().is_empty());
    assert_eq!(
        b.get_many("absent", &[b"a".to_vec()]).await.unwrap(),
        vec![None]
    );
}

/// Values of 16 MiB and keys of 1 KiB round-trip intact, beside small ones.
pub async fn large_values_round_trip<B: Backend>(b: &B) {
    let value: Vec<u8> = (0..16 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let key = vec![0xAB; 1024];
    put_all(b, "t", &[(&key, &value), (b"small", b"s")]).await;
    assert_eq!(b.get("t", &key).await.unwrap(), Some(value.clone()));
    assert_eq!(b.get("t", b"small").await.unwrap(), Some(b"s".to_vec()));
    let all = b
        .scan("t", KeyRange::all(), Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].0, b"small".to_vec());
    assert_eq!(all[1].1, value);
}

/// `Eventual` commits are visible to readers as soon as the commit returns.
pub async fn eventual_commits_are_visible<B: Backend>(b: &B) {
    let mut batch = WriteBatch::new();
    batch.put("t", b"k".to_vec(), b"v".to_vec());
    b.commit(batch, Durability::Eventual).await.unwrap();
    assert_eq!(b.get("t", b"k").await.unwrap(), Some(b"v".to_vec()));
}

/// Batches committed concurrently from many tasks are all applied, none torn.
pub async fn concurrent_commits_all_apply<B: Backend + Clone>(b: &B) {
    let mut handles = Vec::new();
    for task in 0u8..16 {
        let b = b.clone();
        handles.push(tokio::spawn(async move {
            for i in 0u8..8 {
                let mut batch = WriteBatch::new();
                batch.put("t", vec![task, i], vec![task]);
                batch.put("u", vec![task, i], vec![i]);
                b.commit(batch, Durability::Immediate).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(b.len("t").await.unwrap(), 16 * 8);
    assert_eq!(b.len("u").await.unwrap(), 16 * 8);
    for task in 0u8..16 {
        for i in 0u8..8 {
            assert_eq!(b.get("t", &[task, i]).await.unwrap(), Some(vec![task]));
        }
    }
}

/// A deterministic pseudo-random workload of puts, deletes and scans, checked step by step
/// against a `BTreeMap` model.
pub async fn matches_btreemap_model<B: Backend>(b: &B) {
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64*: a fixed sequence, so a failure reproduces exactly.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for round in 0..60 {
        let mut batch = WriteBatch::new();
        for _ in 0..(next() % 12) {
            let key = vec![(next() % 6) as u8, (next() % 6) as u8];
            if next() % 3 == 0 {
                model.remove(&key);
                batch.delete("model", key);
            } else {
                let value = next().to_be_bytes().to_vec();
                model.insert(key.clone(), value.clone());
                batch.put("model", key, value);
            }
        }
        b.commit(batch, Durability::Immediate).await.unwrap();
        let lo = vec![(next() % 7) as u8];
        let hi = vec![(next() % 7) as u8, (next() % 7) as u8];
        let limit = (next() % 10) as usize;
        let direction = if next() % 2 == 0 {
            Direction::Forward
        } else {
            Direction::Reverse
        };
        let range = KeyRange::between(lo.clone(), hi.clone());
        let got = b
            .scan("model", range.clone(), direction, limit)
            .await
            .unwrap();
        let expected = crate::memory::scan_map(&model, &range, direction, limit);
        assert_eq!(
            got, expected,
            "round {round}: scan {lo:?}..{hi:?} {direction:?} {limit}"
        );
        assert_eq!(
            b.len("model").await.unwrap(),
            model.len() as u64,
            "round {round}"
        );
    }
    let all = b
        .scan("model", KeyRange::all(), Direction::Forward, usize::MAX)
        .await
        .unwrap();
    let expected: Vec<_> = model.into_iter().collect();
    assert_eq!(all, expected);
}
