//! Keys as byte strings: ordering of arbitrary keys, every kind of range bound, the empty key
//! and value, many tables.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::Rng;
use super::basic::put_all;
use crate::memory::scan_map;
use crate::{Backend, Direction, Durability, KeyRange, WriteBatch};

/// A key of 0 to 5 bytes drawn mostly from the bytes where orderings go wrong (0x00, 0x01,
/// 0x7F, 0x80, 0xFF), sometimes from all 256.
fn tricky_key(rng: &mut Rng) -> Vec<u8> {
    const EDGES: [u8; 5] = [0x00, 0x01, 0x7F, 0x80, 0xFF];
    let len = rng.below(6) as usize;
    (0..len)
        .map(|_| {
            if rng.below(4) == 0 {
                rng.below(256) as u8
            } else {
                EDGES[rng.below(5) as usize]
            }
        })
        .collect()
}

fn bound(rng: &mut Rng) -> Bound<Vec<u8>> {
    match rng.below(3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(tricky_key(rng)),
        _ => Bound::Excluded(tricky_key(rng)),
    }
}

/// 600 arbitrary byte keys (prefixes of each other, high bytes, the empty key) sort exactly as
/// `[u8]`'s `Ord`; 300 random ranges of every bound kind, both directions, random limits, match
/// a `BTreeMap`.
pub async fn arbitrary_keys_order_as_bytes<B: Backend>(b: &B) {
    let mut rng = Rng::new(0xC0FF_EE00_D15E_A5E5);
    let mut model = BTreeMap::new();
    for chunk in 0..6u8 {
        let mut batch = WriteBatch::new();
        for i in 0..100u8 {
            let key = tricky_key(&mut rng);
            let value = vec![chunk, i];
            model.insert(key.clone(), value.clone());
            batch.put("keys", key, value);
        }
        b.commit(batch, Durability::Eventual).await.unwrap();
    }
    let all = b
        .scan("keys", KeyRange::all(), Direction::Forward, usize::MAX)
        .await
        .unwrap();
    assert_eq!(all, model.clone().into_iter().collect::<Vec<_>>());
    assert_eq!(b.len("keys").await.unwrap(), model.len() as u64);
    for round in 0..300 {
        let range = KeyRange {
            start: bound(&mut rng),
            end: bound(&mut rng),
        };
        let direction = if rng.below(2) == 0 {
            Direction::Forward
        } else {
            Direction::Reverse
        };
        let limit = match rng.below(3) {
            0 => usize::MAX,
            _ => rng.below(20) as usize,
        };
        let got = b
            .scan("keys", range.clone(), direction, limit)
            .await
            .unwrap();
        let expected = scan_map(&model, &range, direction, limit);
        assert_eq!(
            got, expected,
            "round {round}: {range:?} {direction:?} {limit}"
        );
    }
}

/// Every combination of included, excluded and unbounded ends, forward and reverse, with
/// limits 0, 1, 3 and none, over keys that sit exactly on and beside the bounds.
pub async fn range_bounds_of_every_kind<B: Backend>(b: &B) {
    let keys: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x10],
        vec![0x20],
        vec![0x20, 0x00],
        vec![0x30],
        vec![0x40],
        vec![0xFF],
    ];
    let model: BTreeMap<Vec<u8>, Vec<u8>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), vec![i as u8]))
        .collect();
    let refs: Vec<(&[u8], &[u8])> = model
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    put_all(b, "t", &refs).await;
    let lo = vec![0x20];
    let hi = vec![0x40];
    let ends = |k: &Vec<u8>| {
        [
            Bound::Included(k.clone()),
            Bound::Excluded(k.clone()),
            Bound::Unbounded,
        ]
    };
    for start in ends(&lo) {
        for end in ends(&hi) {
            for direction in [Direction::Forward, Direction::Reverse] {
                for limit in [0, 1, 3, usize::MAX] {
                    let range = KeyRange {
                        start: start.clone(),
                        end: end.clone(),
                    };
                    let got = b.scan("t", range.clone(), direction, limit).await.unwrap();
                    let expected = scan_map(&model, &range, direction, limit);
                    assert_eq!(got, expected, "{range:?} {direction:?} {limit}");
                }
            }
        }
    }
    // Degenerate ranges: empty (start == end, excluded) and a single key.
    let single = KeyRange {
        start: Bound::Included(lo.clone()),
        end: Bound::Included(lo.clone()),
    };
    let got = b.scan("t", single, Direction::Reverse, 10).await.unwrap();
    assert_eq!(got, vec![(lo.clone(), vec![2])]);
    let empty = KeyRange {
        start: Bound::Excluded(lo.clone()),
        end: Bound::Excluded(lo.clone()),
    };
    assert!(
        b.scan("t", empty, Direction::Forward, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The empty key and empty values are ordinary: stored, read, deleted, first in order, and
/// usable as a range bound.
pub async fn empty_keys_and_values<B: Backend>(b: &B) {
    put_all(b, "t", &[(b"", b""), (b"\x00", b""), (b"a", b"x")]).await;
    assert_eq!(b.get("t", b"").await.unwrap(), Some(Vec::new()));
    assert_eq!(b.get("t", b"\x00").await.unwrap(), Some(Vec::new()));
    let first = b
        .scan("t", KeyRange::all(), Direction::Forward, 1)
        .await
        .unwrap();
    assert_eq!(first, vec![(Vec::new(), Vec::new())]);
    let upto_empty = KeyRange {
        start: Bound::Unbounded,
        end: Bound::Included(Vec::new()),
    };
    let got = b
        .scan("t", upto_empty, Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(got, vec![(Vec::new(), Vec::new())]);
    let after_empty = KeyRange {
        start: Bound::Excluded(Vec::new()),
        end: Bound::Unbounded,
    };
    let got = b
        .scan("t", after_empty, Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, vec![0x00]);
    let values = b.get_many("t", &[Vec::new(), b"a".to_vec()]).await.unwrap();
    assert_eq!(values, vec![Some(Vec::new()), Some(b"x".to_vec())]);
    let mut batch = WriteBatch::new();
    batch.delete("t", Vec::new());
    b.commit(batch, Durability::Immediate).await.unwrap();
    assert_eq!(b.get("t", b"").await.unwrap(), None);
    assert_eq!(b.len("t").await.unwrap(), 2);
}

/// One batch writes 100 tables; each is its own keyspace with its own count, and all are
/// listed in order.
pub async fn many_tables<B: Backend>(b: &B) {
    let names: Vec<String> = (0..100).map(|i| format!("table_{i:03}")).collect();
    let mut batch = WriteBatch::new();
    for (i, name) in names.iter().enumerate() {
        for j in 0..=(i % 5) {
            batch.put(name, vec![j as u8], vec![i as u8]);
        }
    }
    b.commit(batch, Durability::Immediate).await.unwrap();
    let listed = b.tables().await.unwrap();
    assert_eq!(listed, names);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(b.len(name).await.unwrap(), (i % 5 + 1) as u64, "{name}");
        assert_eq!(b.get(name, &[0]).await.unwrap(), Some(vec![i as u8]));
    }
    let stats = b.stats().await.unwrap();
    let expected: Vec<(String, u64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), (i % 5 + 1) as u64))
        .collect();
    assert_eq!(stats.table_entries, expected);
}
