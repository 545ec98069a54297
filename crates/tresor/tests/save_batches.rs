//! `Messages::save_batches`: a failing batch stops the import and keeps the batches before it;
//! a key rotation begun by one of its commits makes the next batch be prepared again.
#![allow(clippy::unwrap_used)]

mod common;

use common::PASS;
use futures_util::stream;
use tresor::{MemoryBackend, Message, Options, SaveSummary, Tresor};
use tresor_backend::{Fault, FaultBackend, FaultKind, FaultPoint};

/// Message `i` of five conversations and four peers.
fn message(i: usize) -> Message {
    Message::new(
        format!("m{i}"),
        format!("c{}", i % 5),
        format!("p{}", i % 4),
        Some(format!("p{}", (i + 1) % 4)),
        1_700_000_000_000 + i as i64,
        format!("body {i}"),
    )
}

/// `n` batches of `size` messages, numbered on from 0.
fn batches(n: usize, size: usize) -> Vec<Vec<Message>> {
    (0..n)
        .map(|b| (b * size..(b + 1) * size).map(message).collect())
        .collect()
}

fn fault(nth: u64) -> Fault {
    Fault {
        point: FaultPoint::Write,
        nth,
        kind: FaultKind::Io,
        sticky: false,
    }
}

#[tokio::test]
async fn a_failing_batch_stops_the_import_and_keeps_the_ones_before_it() {
    let memory = MemoryBackend::new();
    drop(
        Tresor::with_backend(memory.clone(), PASS.into(), Options::default())
            .await
            .unwrap(),
    );
    // How many commits an open makes by itself, so that the fault hits the third batch.
    let counting = FaultBackend::new(memory.clone(), fault(u64::MAX));
    drop(
        Tresor::with_backend(counting.clone(), PASS.into(), Options::default())
            .await
            .unwrap(),
    );
    let opening = counting.counted();
    let failing = FaultBackend::new(memory.clone(), fault(opening + 2));
    let store = Tresor::with_backend(failing.clone(), PASS.into(), Options::default())
        .await
        .unwrap();

    let all = batches(5, 10);
    let mut reported = Vec::new();
    let outcome = store
        .messages()
        .save_batches(stream::iter(all.clone()), |s| reported.push(*s))
        .await;
    assert!(outcome.is_err(), "the third commit fails");
    assert_eq!(failing.injected(), 1);
    assert_eq!(reported.len(), 2, "two batches were committed and reported");
    assert!(reported.iter().all(|s| s.inserted == 10));
    assert_eq!(store.stats().await.unwrap().messages, 20);
    for (i, m) in all.iter().flatten().enumerate() {
        let found = store.messages().get(&m.id).await.unwrap();
        assert_eq!(found.is_some(), i < 20, "message {i}");
    }
    assert!(store.check().await.unwrap().is_clean());

    // The same import again (the fault fired once): the first two batches are unchanged.
    // On a spawned task: the import's future is `Send`.
    let task = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut again = Vec::new();
            let total = store
                .messages()
                .save_batches(stream::iter(all), |s| again.push(*s))
                .await;
            (again, total)
        })
    };
    let (again, total) = task.await.unwrap();
    let total = total.unwrap();
    assert_eq!(again.len(), 5);
    assert_eq!(
        (total.unchanged, total.inserted, total.updated),
        (20, 30, 0)
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.messages, stats.conversations, stats.peers),
        (50, 5, 4)
    );
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn a_rotation_begun_by_a_commit_prepares_the_next_batch_again() {
    // A seal limit a few batches reach: a commit in the middle of the import starts a key
    // rotation, under whose new keys the later batches must be sealed and indexed.
    let options = Options::default()
        .with_seal_limit(25)
        .with_background_rotation(true);
    let store = Tresor::with_backend(MemoryBackend::new(), PASS.into(), options)
        .await
        .unwrap();
    let all = batches(8, 10);
    let total = store
        .messages()
        .save_batches(stream::iter(all.clone()), |_| {})
        .await
        .unwrap();
    let mut want = SaveSummary::default();
    want.inserted = 80;
    assert_eq!(total, want);
    // Let the background rotation finish, then read everything back under the final keys.
    store.check().await.unwrap();
    for m in all.iter().flatten() {
        let found = store.messages().get(&m.id).await.unwrap().unwrap();
        assert_eq!(found.body, m.body);
    }
    for c in 0..5 {
        let page = store
            .messages()
            .by_conversation(&format!("c{c}"), 100, None)
            .await
            .unwrap();
        assert_eq!(page.len(), 16, "conversation c{c}");
    }
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.messages, stats.conversations, stats.peers),
        (80, 5, 4)
    );
    assert!(store.check().await.unwrap().is_clean());
}
