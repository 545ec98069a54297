//! `check` finds every kind of damage and `repair` fixes what the records allow.
#![allow(clippy::unwrap_used)]

mod common;

use common::{PASS, msg};
use tresor::{Backend, Error, IssueKind, MemoryBackend, Options, Severity, Tresor};
use tresor_backend::{Direction, Durability, KeyRange, WriteBatch};

async fn setup() -> (Tresor, MemoryBackend) {
    let backend = MemoryBackend::new();
    let store = Tresor::with_backend(backend.clone(), PASS.into(), Options::default())
        .await
        .unwrap();
    let batch: Vec<_> = (0..40)
        .map(|i| {
            msg(
                &format!("m{i}"),
                &format!("c{}", i % 4),
                &format!("p{}", i % 3),
                Some("hub"),
                i as i64,
                "body",
            )
        })
        .collect();
    store.messages().save_batch(&batch).await.unwrap();
    (store, backend)
}

async fn first(b: &MemoryBackend, table: &str) -> (Vec<u8>, Vec<u8>) {
    b.scan(table, KeyRange::all(), Direction::Forward, 1)
        .await
        .unwrap()
        .remove(0)
}

async fn apply(b: &MemoryBackend, f: impl FnOnce(&mut WriteBatch)) {
    let mut batch = WriteBatch::new();
    f(&mut batch);
    b.commit(batch, Durability::Immediate).await.unwrap();
}

fn kinds(r: &tresor::CheckReport) -> Vec<IssueKind> {
    let mut k: Vec<_> = r.issues.iter().map(|i| i.kind).collect();
    k.sort_by_key(|k| format!("{k:?}"));
    k
}

async fn assert_repaired(store: &Tresor) -> tresor::RepairReport {
    let report = store.repair().await.unwrap();
    assert!(!report.found.is_clean());
    let after = store.check().await.unwrap();
    assert!(after.is_clean(), "{:?}", after.issues);
    report
}

#[tokio::test]
async fn a_clean_store_checks_clean() {
    let (store, _) = setup().await;
    let r = store.check().await.unwrap();
    assert!(r.is_clean(), "{:?}", r.issues);
    assert_eq!(r.records, 40);
    // conversation, sender, recipient, time; each conversation's by_activity entry (message
    // states are sparse: plain messages have none).
    assert_eq!(r.index_entries, 40 * 4 + 4);
    assert_eq!(r.typed_records, 4);
    assert_eq!(r.counters, 4 + 4);
}

#[tokio::test]
async fn a_missing_index_entry_is_found_and_rebuilt() {
    let (store, b) = setup().await;
    let (k, _) = first(&b, "message_ids").await;
    apply(&b, |w| w.delete("message_ids", k.clone())).await;
    let r = store.check().await.unwrap();
    assert_eq!(kinds(&r), [IssueKind::MissingIndexEntry]);
    assert_eq!(r.issues[0].table, "message_ids");
    assert_eq!(r.issues[0].severity, Severity::Warning);
    let rep = assert_repaired(&store).await;
    assert_eq!(rep.index_entries_fixed, 1);
    let total: usize = futures_count(&store).await;
    assert_eq!(total, 40);
}

async fn futures_count(store: &Tresor) -> usize {
    let mut n = 0;
    for c in 0..4 {
        n += store
            .messages()
            .by_conversation(&format!("c{c}"), 1000, None)
            .await
            .unwrap()
            .len();
    }
    n
}

#[tokio::test]
async fn an_orphan_index_entry_is_found_and_dropped() {
    let (store, b) = setup().await;
    apply(&b, |w| w.put("msg_by_time", vec![0x80; 16], vec![7; 16])).await;
    let r = store.check().await.unwrap();
    assert_eq!(kinds(&r), [IssueKind::OrphanIndexEntry]);
    // A query that reaches it reports corruption rather than skipping silently.
    let err = store.messages().recent(100, None).await.unwrap_err();
    assert!(matches!(err, Error::Corrupted(_)), "{err:?}");
    assert_repaired(&store).await;
    assert_eq!(store.messages().recent(100, None).await.unwrap().len(), 40);
}

#[tokio::test]
async fn an_altered_index_key_is_an_error_not_a_wrong_answer() {
    let (store, b) = setup().await;
    // Move one time-index entry to another timestamp, keeping its value.
    let (k, v) = first(&b, "msg_by_time").await;
    let mut moved = k.clone();
    moved[7] ^= 0x40;
    apply(&b, |w| {
        w.delete("msg_by_time", k.clone());
        w.put("msg_by_time", moved.clone(), v.clone());
    })
    .await;
    let err = store.messages().recent(100, None).await.unwrap_err();
    assert!(matches!(err, Error::Corrupted(_)), "{err:?}");
    let r = store.check().await.unwrap();
    // The moved entry's order key with its value (the conversation token) names no record.
    assert_eq!(
        kinds(&r),
        [IssueKind::MissingIndexEntry, IssueKind::OrphanIndexEntry]
    );
    assert_repaired(&store).await;
    let recent = store.messages().recent(100, None).await.unwrap();
    assert_eq!(recent.len(), 40);
    assert_eq!(recent.last().unwrap().id, "m0");
}

#[tokio::test]
async fn an_unreadable_record_is_reported_as_lost_and_removed_with_its_entries() {
    let (store, b) = setup().await;
    let (k, mut v) = first(&b, "messages").await;
    let last = v.len() - 1;
    v[last] ^= 1;
    apply(&b, |w| w.put("messages", k.clone(), v.clone())).await;
    let r = store.check().await.unwrap();
    let errors: Vec<_> = r
        .issues
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .map(|i| i.kind)
        .collect();
    assert!(
        errors.contains(&IssueKind::UnreadableRecord),
        "{:?}",
        r.issues
    );
    // Its 4 index entries now point at nothing readable…
    assert_eq!(
        r.issues
            .iter()
            .filter(|i| i.kind == IssueKind::OrphanIndexEntry && i.table != "typed_index")
            .count(),
        4
    );
    // …and a plain message has no state record to orphan (states are sparse).
    assert_eq!(
        r.issues
            .iter()
            .filter(|i| i.kind == IssueKind::OrphanState)
            .count(),
        0
    );
    let rep = assert_repaired(&store).await;
    assert_eq!(rep.records_lost, 1, "the message");
    let s = store.stats().await.unwrap();
    assert_eq!(s.messages, 39);
    assert_eq!(store.messages().recent(100, None).await.unwrap().len(), 39);
}

#[tokio::test]
async fn wrong_counters_and_next_seq_are_fixed() {
    let (store, b) = setup().await;
    let (k, _) = first(&b, "conversations").await;
    let (pk, _) = first(&b, "peers").await;
    apply(&b, |w| {
        w.delete("conversations", k.clone());
        w.put("peers", pk.clone(), vec![0; 40]);
        w.put("peers", vec![9; 16], vec![0; 40]);
        w.put("meta", b"next_seq".to_vec(), 3u64.to_le_bytes().to_vec());
    })
    .await;
    let r = store.check().await.unwrap();
    assert_eq!(
        kinds(&r),
        [
            IssueKind::CounterMismatch,
            IssueKind::MissingCounter,
            IssueKind::NextSequence,
            IssueKind::OrphanCounter
        ]
    );
    let rep = assert_repaired(&store).await;
    assert_eq!(rep.counters_fixed, 3);
    let s = store.stats().await.unwrap();
    assert_eq!((s.conversations, s.peers), (4, 4));
    // next_seq is repaired in the open store as well as on disk.
    drop(store);
    let store = Tresor::with_backend(b, PASS.into(), Options::default())
        .await
        .unwrap();
    let seq = store
        .messages()
        .save(&msg("new", "c0", "p0", None, 99, "x"))
        .await
        .unwrap();
    assert_eq!(seq, 40);
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn scheduled_checks_report_damage_as_it_appears() {
    let (store, b) = setup().await;
    let mut schedule = store.schedule_checks(std::time::Duration::from_millis(10));
    assert!(schedule.next().await.unwrap().is_clean());
    apply(&b, |w| w.put("msg_by_time", vec![0x80; 16], vec![7; 16])).await;
    // The next check that starts after the damage reports it.
    let mut report = schedule.next().await.unwrap();
    if report.is_clean() {
        report = schedule.next().await.unwrap();
    }
    assert_eq!(kinds(&report), [IssueKind::OrphanIndexEntry]);
    assert_eq!(schedule.latest(), Some(Ok(report)));
}

/// A `message_ids` entry whose record is gone: `get` (the single-id path) and the blocking
/// view report corruption for that message and read every other one, and `check` finds it.
#[tokio::test]
async fn a_record_missing_behind_its_id_entry_is_corruption_for_get() {
    let (store, b) = setup().await;
    let (_, record_key) = first(&b, "message_ids").await;
    apply(&b, |w| w.delete("messages", record_key.clone())).await;
    let mut corrupted = Vec::new();
    for i in 0..40 {
        let id = format!("m{i}");
        let by_get = store.messages().get(&id).await;
        let store2 = store.clone();
        let id2 = id.clone();
        let by_view = tokio::task::spawn_blocking(move || store2.blocking_view()?.message(&id2))
            .await
            .unwrap();
        match (by_get, by_view) {
            (Ok(Some(a)), Ok(Some(b))) => {
                assert_eq!(a.id, id);
                assert_eq!(b, a);
            }
            (Err(Error::Corrupted(_)), Err(Error::Corrupted(_))) => corrupted.push(id),
            other => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(corrupted.len(), 1, "{corrupted:?}");
    assert!(!store.check().await.unwrap().is_clean());
}
