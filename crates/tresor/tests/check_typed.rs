//! `check` and `repair` cover typed tables: damage made through the backend (deleted, added,
//! moved index entries; unreadable records; states without messages; wrong unread counts) is
//! found, and `repair` rebuilds what the records allow.
#![allow(clippy::unwrap_used)]

mod common;

use common::{PASS, msg};
use tresor::{
    Backend, CheckReport, IssueKind, MemoryBackend, MessageExtras, Options, Severity, Tresor,
};
use tresor_backend::{Direction, Durability, KeyRange, WriteBatch};

async fn setup() -> (Tresor, MemoryBackend) {
    let backend = MemoryBackend::new();
    let store = Tresor::with_backend(backend.clone(), PASS.into(), Options::default())
        .await
        .unwrap();
    let batch: Vec<_> = (0..30)
        .map(|i| {
            (
                msg(
                    &format!("m{i}"),
                    &format!("c{}", i % 3),
                    "bob",
                    None,
                    i,
                    "x",
                ),
                MessageExtras::incoming().replying_to("m0"),
            )
        })
        .collect();
    store.messages().save_batch_with(&batch).await.unwrap();
    store
        .contacts()
        .save(&tresor::Contact {
            peer_id: "bob".into(),
            display_name: "Bob".into(),
            public_key: vec![1; 32],
            verified: false,
            blocked: false,
        })
        .await
        .unwrap();
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{:?}", report.issues);
    (store, backend)
}

async fn all(b: &MemoryBackend, table: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    b.scan(table, KeyRange::all(), Direction::Forward, 100_000)
        .await
        .unwrap()
}

async fn apply(b: &MemoryBackend, f: impl FnOnce(&mut WriteBatch)) {
    let mut batch = WriteBatch::new();
    f(&mut batch);
    b.commit(batch, Durability::Immediate).await.unwrap();
}

fn count(r: &CheckReport, table: &str, kind: IssueKind) -> usize {
    r.issues
        .iter()
        .filter(|i| i.table == table && i.kind == kind)
        .count()
}

async fn repaired(store: &Tresor) -> tresor::RepairReport {
    let report = store.repair().await.unwrap();
    assert!(!report.found.is_clean());
    let after = store.check().await.unwrap();
    assert!(after.is_clean(), "{:?}", after.issues);
    report
}

#[tokio::test]
async fn typed_index_entries_are_checked_both_ways_and_rebuilt() {
    let (store, b) = setup().await;
    let entries = all(&b, "typed_index").await;
    // 30 by_status, 30 by_thread, 30 unread, 3 by_activity.
    assert_eq!(entries.len(), 93);
    let (gone, _) = entries[0].clone();
    let (moved, moved_value) = entries[1].clone();
    let mut altered = moved.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0x55;
    apply(&b, |w| {
        w.delete("typed_index", gone.clone());
        w.delete("typed_index", moved.clone());
        // The moved entry still points at its (existing) record: stale.
        w.put("typed_index", altered.clone(), moved_value.clone());
        // An entry pointing at no record: orphan.
        w.put("typed_index", vec![7; 48], vec![9; 16]);
    })
    .await;
    let r = store.check().await.unwrap();
    assert_eq!(count(&r, "typed_index", IssueKind::MissingIndexEntry), 2);
    assert_eq!(count(&r, "typed_index", IssueKind::StaleIndexEntry), 1);
    assert_eq!(count(&r, "typed_index", IssueKind::OrphanIndexEntry), 1);
    assert!(r.issues.iter().all(|i| i.severity == Severity::Warning));
    let rep = repaired(&store).await;
    assert_eq!(rep.index_entries_fixed, 4);
    assert_eq!(rep.records_lost, 0);
    assert_eq!(all(&b, "typed_index").await, entries);
    // Queries over the rebuilt index answer as before.
    assert_eq!(
        store
            .messages()
            .thread("m0", 100, None)
            .await
            .unwrap()
            .len(),
        30
    );
}

#[tokio::test]
async fn an_unreadable_typed_record_is_removed_with_its_entries() {
    let (store, b) = setup().await;
    let records = all(&b, "typed_records").await;
    let (k, mut v) = records[0].clone();
    let last = v.len() - 1;
    v[last] ^= 1;
    apply(&b, |w| w.put("typed_records", k.clone(), v.clone())).await;
    let r = store.check().await.unwrap();
    assert_eq!(count(&r, "typed_records", IssueKind::UnreadableRecord), 1);
    // Repair drops it and whatever pointed at it: the store checks clean after.
    let rep = repaired(&store).await;
    // Dropped (lost; a lost message state also fixes its conversation's unread count), or,
    // if it was a conversation state, rebuilt from the message states.
    assert!(rep.records_lost <= 1, "{rep:?}");
    assert!(rep.records_lost + rep.counters_fixed >= 1, "{rep:?}");
    assert_eq!(
        all(&b, "typed_records").await.len() as u64,
        records.len() as u64 - rep.records_lost
    );
}

#[tokio::test]
async fn a_state_without_its_message_and_wrong_unread_counts_are_fixed() {
    let (store, b) = setup().await;
    assert_eq!(store.conversations().unread("c0").await.unwrap(), 10);
    // Delete one message record behind tresor's back: its state is orphaned and its
    // conversation's unread count is one too high.
    let (k, _) = all(&b, "messages").await[0].clone();
    apply(&b, |w| w.delete("messages", k.clone())).await;
    let r = store.check().await.unwrap();
    assert_eq!(count(&r, "typed_records", IssueKind::OrphanState), 1);
    assert_eq!(count(&r, "typed_records", IssueKind::UnreadMismatch), 1);
    repaired(&store).await;
    let unread: u64 = [
        store.conversations().unread("c0").await.unwrap(),
        store.conversations().unread("c1").await.unwrap(),
        store.conversations().unread("c2").await.unwrap(),
    ]
    .iter()
    .sum();
    assert_eq!(unread, 29);
    assert_eq!(
        store
            .messages()
            .thread("m0", 100, None)
            .await
            .unwrap()
            .len(),
        29
    );
}

#[tokio::test]
async fn a_deleted_conversation_state_is_rebuilt_from_the_message_states() {
    let (store, b) = setup().await;
    // Every conversation state (the unread counts) deleted through the backend.
    let before = all(&b, "typed_records").await.len();
    let counts: Vec<u64> = [
        store.conversations().unread("c0").await.unwrap(),
        store.conversations().unread("c1").await.unwrap(),
        store.conversations().unread("c2").await.unwrap(),
    ]
    .to_vec();
    // Find them: typed records that are neither message states nor conversations nor the
    // contact cannot be told apart from outside, so delete and compare counts instead.
    let records = all(&b, "typed_records").await;
    let mut deleted = 0;
    for (k, v) in records {
        apply(&b, |w| w.delete("typed_records", k.clone())).await;
        let r = store.check().await.unwrap();
        // Exactly one more unread mismatch, nothing else: a conversation state.
        if r.issues.len() == deleted + 1
            && r.issues.iter().all(|i| i.kind == IssueKind::UnreadMismatch)
        {
            deleted += 1;
        } else {
            apply(&b, |w| w.put("typed_records", k.clone(), v.clone())).await;
        }
    }
    assert_eq!(deleted, 3, "one conversation state per conversation");
    assert_eq!(all(&b, "typed_records").await.len(), before - 3);
    let r = store.check().await.unwrap();
    assert_eq!(count(&r, "typed_records", IssueKind::UnreadMismatch), 3);
    repaired(&store).await;
    let after: Vec<u64> = [
        store.conversations().unread("c0").await.unwrap(),
        store.conversations().unread("c1").await.unwrap(),
        store.conversations().unread("c2").await.unwrap(),
    ]
    .to_vec();
    assert_eq!(after, counts);
}
