//! A save whose future is dropped while its commit is in flight (a timeout, a `select!`)
//! must not leave the writer's counters behind the store: the batch may still commit.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::PASS;
use tresor::{MemoryBackend, Message, Options, Tresor};
use tresor_backend::QueuedCommits;

/// A memory backend behind a queued writer, as the persistent backends have: commits are
/// applied in order, each taking `each`; a caller that stops waiting does not stop its commit.
fn queued(each: Duration) -> QueuedCommits<MemoryBackend> {
    QueuedCommits::new(MemoryBackend::new(), each)
}

fn message(i: u64) -> Message {
    Message::new(
        format!("m{i}"),
        "c",
        "alice",
        Some("bob".into()),
        1_700_000_000_000,
        format!("body {i}"),
    )
}

#[tokio::test]
async fn a_save_dropped_mid_commit_leaves_no_sequence_number_reused() {
    let store = Tresor::with_backend(
        queued(Duration::from_millis(30)),
        PASS.into(),
        Options::default(),
    )
    .await
    .unwrap();
    let store = Arc::new(store);
    store.messages().save(&message(0)).await.unwrap();
    // Gives up while the commit is in flight: the commit goes on without its caller.
    let dropped = tokio::time::timeout(
        Duration::from_millis(10),
        store.messages().save(&message(1)),
    )
    .await;
    assert!(dropped.is_err(), "the save was cut off mid-commit");
    // The next save comes at once, while the cut-off commit is still queued.
    let seq2 = store.messages().save(&message(2)).await.unwrap();
    let m1 = store.messages().get("m1").await.unwrap().unwrap();
    assert_ne!(m1.seq, seq2, "a sequence number was given twice");
    // And the same through the bulk path.
    let cut = tokio::time::timeout(
        Duration::from_millis(10),
        store.messages().save_batches(
            futures_util::stream::iter(vec![vec![message(3)], vec![message(4)]]),
            |_| {},
        ),
    )
    .await;
    assert!(cut.is_err());
    let seq5 = store.messages().save(&message(5)).await.unwrap();
    let mut stored = Vec::new();
    for id in ["m0", "m1", "m2", "m3", "m4"] {
        if let Some(m) = store.messages().get(id).await.unwrap() {
            stored.push(m.seq);
        }
    }
    assert!(!stored.contains(&seq5), "{seq5} given twice: {stored:?}");
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn savers_grouped_under_a_leader_that_stops_are_saved_by_the_next_one() {
    let store = Arc::new(
        Tresor::with_backend(
            queued(Duration::from_millis(100)),
            PASS.into(),
            Options::default(),
        )
        .await
        .unwrap(),
    );
    let save = |i: u64, limit: Option<Duration>| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let (messages, m) = (store.messages(), message(i));
            let saving = messages.save(&m);
            match limit {
                Some(limit) => tokio::time::timeout(limit, saving).await.ok(),
                None => Some(saving.await),
            }
        })
    };
    // A save that holds the writer lock for its 100 ms commit, while three more queue: the
    // first of them (which gives up after 150 ms) leads the other two at about 100 ms and
    // stops in the middle of their shared commit.
    let first = save(0, None);
    tokio::task::yield_now().await;
    let leader = save(1, Some(Duration::from_millis(150)));
    tokio::task::yield_now().await;
    let followers = [save(2, None), save(3, None)];
    assert!(first.await.unwrap().unwrap().is_ok());
    assert!(leader.await.unwrap().is_none(), "the leader gave up");
    for follower in followers {
        let outcome = follower.await.unwrap().unwrap();
        assert!(outcome.is_ok(), "a follower got {outcome:?}");
    }
    let mut seqs = Vec::new();
    for i in 0..4 {
        let found = store.messages().get(&format!("m{i}")).await.unwrap();
        // The leader's own save was submitted, so it is stored too.
        seqs.push(found.unwrap().seq);
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 4, "sequence numbers are unique");
    assert!(store.check().await.unwrap().is_clean());
}
