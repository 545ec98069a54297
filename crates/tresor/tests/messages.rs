//! Behaviour of the message repository: order, cursors, updates, deletes, counts. Every case
//! taking a `store` runs on every backend (memory, redb, SQLite): see `on_every_backend!` at
//! the end.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::HashSet;

use common::{PASS, ids, memory_store, msg};
use proptest::prelude::*;
use tresor::{Error, MemoryBackend, Message, Options, Tresor};

async fn newest_first_with_ties_in_insertion_order(store: Tresor) {
    let m = store.messages();
    m.save_batch(&[
        msg("a", "c", "alice", Some("bob"), 1_000, "first"),
        msg("b", "c", "bob", Some("alice"), 2_000, "second"),
        msg("c", "c", "alice", Some("bob"), 2_000, "same second, later"),
        msg("d", "c", "bob", Some("alice"), 3_000, "third"),
    ])
    .await
    .unwrap();
    let got = m.by_conversation("c", 10, None).await.unwrap();
    assert_eq!(ids(&got), ["d", "b", "c", "a"]);
    // Sequence numbers are assigned in insertion order.
    let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [3, 1, 2, 0]);
    assert_eq!(ids(&m.recent(2, None).await.unwrap()), ["d", "b"]);
}

async fn queries_by_conversation_peer_and_time(store: Tresor) {
    let m = store.messages();
    m.save_batch(&[
        msg("1", "c1", "alice", Some("bob"), 10, "x"),
        msg("2", "c2", "carol", Some("alice"), 20, "y"),
        msg("3", "c2", "carol", None, 30, "z"),
        msg("4", "c1", "bob", Some("alice"), 40, "w"),
    ])
    .await
    .unwrap();
    assert_eq!(
        ids(&m.by_conversation("c1", 10, None).await.unwrap()),
        ["4", "1"]
    );
    assert_eq!(
        ids(&m.by_conversation("c2", 10, None).await.unwrap()),
        ["3", "2"]
    );
    assert!(
        m.by_conversation("nope", 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    // alice is sender of 1 and recipient of 2 and 4.
    assert_eq!(
        ids(&m.by_peer("alice", 10, None).await.unwrap()),
        ["4", "2", "1"]
    );
    assert_eq!(
        ids(&m.by_peer("carol", 10, None).await.unwrap()),
        ["3", "2"]
    );
    assert_eq!(
        ids(&m.recent(10, None).await.unwrap()),
        ["4", "3", "2", "1"]
    );
    assert!(m.recent(0, None).await.unwrap().is_empty());
    let got = m.get("2").await.unwrap().unwrap();
    assert_eq!(got.body, "y");
    assert_eq!(got.recipient.as_deref(), Some("alice"));
    assert!(m.get("missing").await.unwrap().is_none());
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.messages, stats.conversations, stats.peers),
        (4, 2, 3)
    );
}

async fn a_message_to_oneself_is_listed_once_for_that_peer(store: Tresor) {
    let m = store.messages();
    m.save(&msg(
        "n",
        "notes",
        "alice",
        Some("alice"),
        5,
        "note to self",
    ))
    .await
    .unwrap();
    assert_eq!(ids(&m.by_peer("alice", 10, None).await.unwrap()), ["n"]);
    assert_eq!(store.stats().await.unwrap().peers, 1);
}

async fn cursor_pages_never_skip_or_repeat(store: Tresor) {
    let m = store.messages();
    // 50 messages, many sharing a timestamp, saved in a scrambled order.
    let batch: Vec<Message> = (0..50)
        .map(|i| (i * 17) % 50)
        .map(|i| {
            msg(
                &format!("m{i}"),
                "c",
                if i % 2 == 0 { "a" } else { "b" },
                None,
                (i / 4) as i64,
                "t",
            )
        })
        .collect();
    m.save_batch(&batch).await.unwrap();
    let all = m.by_conversation("c", 1000, None).await.unwrap();
    assert_eq!(all.len(), 50);
    for limit in [1, 3, 7, 50] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = m
                .by_conversation("c", limit, cursor.as_deref())
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= limit);
            cursor = Some(page.last().unwrap().id.clone());
            seen.extend(page);
        }
        assert_eq!(ids(&seen), ids(&all), "limit {limit}");
    }
    let unique: HashSet<_> = all.iter().map(|m| &m.id).collect();
    assert_eq!(unique.len(), 50);
}

async fn unknown_cursor_is_a_typed_error(store: Tresor) {
    let err = store.messages().recent(5, Some("ghost")).await.unwrap_err();
    assert!(matches!(err, Error::CursorNotFound), "{err:?}");
}

async fn saving_the_same_batch_twice_changes_nothing(store: Tresor) {
    let m = store.messages();
    let batch = vec![
        msg("1", "c", "a", Some("b"), 1, "x"),
        msg("2", "c", "b", Some("a"), 2, "y"),
    ];
    let first = m.save_batch(&batch).await.unwrap();
    assert_eq!((first.inserted, first.updated, first.unchanged), (2, 0, 0));
    let before = m.recent(10, None).await.unwrap();
    let second = m.save_batch(&batch).await.unwrap();
    assert_eq!(
        (second.inserted, second.updated, second.unchanged),
        (0, 0, 2)
    );
    assert_eq!(m.recent(10, None).await.unwrap(), before);
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.messages, stats.conversations, stats.peers),
        (2, 1, 2)
    );
}

async fn an_edited_message_moves_in_every_index_and_keeps_its_seq(store: Tresor) {
    let m = store.messages();
    m.save(&msg("1", "c1", "a", Some("b"), 10, "x"))
        .await
        .unwrap();
    m.save(&msg("2", "c1", "a", Some("b"), 20, "y"))
        .await
        .unwrap();
    let seq = m.get("1").await.unwrap().unwrap().seq;
    // Move message 1 to another conversation, peer and time.
    let summary = m
        .save_batch(&[msg("1", "c2", "z", None, 30, "moved")])
        .await
        .unwrap();
    assert_eq!(summary.updated, 1);
    let moved = m.get("1").await.unwrap().unwrap();
    assert_eq!((moved.seq, moved.body.as_str()), (seq, "moved"));
    assert_eq!(
        ids(&m.by_conversation("c1", 10, None).await.unwrap()),
        ["2"]
    );
    assert_eq!(
        ids(&m.by_conversation("c2", 10, None).await.unwrap()),
        ["1"]
    );
    assert_eq!(ids(&m.by_peer("z", 10, None).await.unwrap()), ["1"]);
    assert_eq!(ids(&m.by_peer("a", 10, None).await.unwrap()), ["2"]);
    assert_eq!(ids(&m.recent(10, None).await.unwrap()), ["1", "2"]);
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.messages, stats.conversations, stats.peers),
        (2, 2, 3)
    );
}

async fn a_batch_with_a_repeated_id_keeps_the_last(store: Tresor) {
    let m = store.messages();
    let s = m
        .save_batch(&[
            msg("1", "c", "a", None, 1, "old"),
            msg("1", "c", "a", None, 2, "new"),
        ])
        .await
        .unwrap();
    assert_eq!((s.inserted, s.updated), (1, 1));
    assert_eq!(ids(&m.recent(10, None).await.unwrap()), ["1"]);
    assert_eq!(m.get("1").await.unwrap().unwrap().body, "new");
    assert_eq!(store.stats().await.unwrap().messages, 1);
}

async fn delete_removes_record_index_entries_and_counts(store: Tresor) {
    let m = store.messages();
    m.save_batch(&[
        msg("1", "c1", "a", Some("b"), 1, "x"),
        msg("2", "c2", "a", Some("c"), 2, "y"),
    ])
    .await
    .unwrap();
    assert!(m.delete("1").await.unwrap());
    assert!(!m.delete("1").await.unwrap());
    assert!(m.get("1").await.unwrap().is_none());
    assert!(m.by_conversation("c1", 10, None).await.unwrap().is_empty());
    assert!(m.by_peer("b", 10, None).await.unwrap().is_empty());
    assert_eq!(ids(&m.by_peer("a", 10, None).await.unwrap()), ["2"]);
    assert_eq!(ids(&m.recent(10, None).await.unwrap()), ["2"]);
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.messages, stats.conversations, stats.peers),
        (1, 1, 2)
    );
}

async fn concurrent_writers_get_unique_sequence_numbers(store: Tresor) {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                store
                    .messages()
                    .save(&msg(
                        &format!("{w}-{i}"),
                        &format!("c{w}"),
                        "s",
                        None,
                        i,
                        "b",
                    ))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = store.messages().recent(1000, None).await.unwrap();
    let seqs: HashSet<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!((all.len(), seqs.len()), (80, 80));
    assert_eq!(store.stats().await.unwrap().conversations, 8);
}

#[tokio::test]
async fn a_wrong_passphrase_on_the_same_backend_is_refused() {
    let backend = MemoryBackend::new();
    let store = Tresor::with_backend(backend.clone(), PASS.into(), Options::default())
        .await
        .unwrap();
    store
        .messages()
        .save(&msg("1", "c", "a", None, 1, "x"))
        .await
        .unwrap();
    let err = Tresor::with_backend(backend.clone(), "not it".into(), Options::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase), "{err:?}");
    let again = Tresor::with_backend(backend, PASS.into(), Options::default())
        .await
        .unwrap();
    assert_eq!(again.messages().get("1").await.unwrap().unwrap().body, "x");
    // Sequence numbers continue after reopening.
    let seq = again
        .messages()
        .save(&msg("2", "c", "a", None, 2, "y"))
        .await
        .unwrap();
    assert_eq!(seq, 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    /// Any set of (conversation, timestamp) messages, paged with any limit, comes back exactly
    /// once each, in (timestamp desc, insertion asc) order.
    #[test]
    fn pagination_matches_a_sorted_model(
        spec in proptest::collection::vec((0u8..3, 0i64..6), 1..40),
        limit in 1usize..6,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = memory_store().await;
            let m = store.messages();
            let batch: Vec<Message> = spec.iter().enumerate()
                .map(|(i, (c, ts))| msg(&format!("m{i}"), &format!("c{c}"), "s", None, *ts, "b"))
                .collect();
            m.save_batch(&batch).await.unwrap();
            for c in 0u8..3 {
                let conv = format!("c{c}");
                let mut expected: Vec<(i64, usize)> = spec.iter().enumerate()
                    .filter(|(_, (cc, _))| *cc == c).map(|(i, (_, ts))| (*ts, i)).collect();
                expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                let expected: Vec<String> = expected.iter().map(|(_, i)| format!("m{i}")).collect();
                let mut got = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let page = m.by_conversation(&conv, limit, cursor.as_deref()).await.unwrap();
                    if page.is_empty() { break; }
                    cursor = Some(page.last().unwrap().id.clone());
                    got.extend(page.into_iter().map(|m| m.id));
                }
                assert_eq!(got, expected);
            }
        });
    }
}

on_every_backend!(
    newest_first_with_ties_in_insertion_order,
    queries_by_conversation_peer_and_time,
    a_message_to_oneself_is_listed_once_for_that_peer,
    cursor_pages_never_skip_or_repeat,
    unknown_cursor_is_a_typed_error,
    saving_the_same_batch_twice_changes_nothing,
    an_edited_message_moves_in_every_index_and_keeps_its_seq,
    a_batch_with_a_repeated_id_keeps_the_last,
    delete_removes_record_index_entries_and_counts,
    concurrent_writers_get_unique_sequence_numbers,
);
