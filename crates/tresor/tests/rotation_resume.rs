//! Regression: a key rotation interrupted mid-way, with writes before and after the
//! interruption, loses no record when it is resumed (found by the crash test).
#![allow(clippy::unwrap_used)]

mod common;

use common::{PASS, msg};
use tresor::{MemoryBackend, Message, Options, Tresor};

fn m(i: usize) -> Message {
    msg(
        &format!("m{i}"),
        &format!("c{}", i % 5),
        &format!("p{}", i % 4),
        Some("hub"),
        (i % 37) as i64,
        "body",
    )
}

async fn all_present(store: &Tresor, n: usize) {
    for i in 0..n {
        assert!(
            store
                .messages()
                .get(&format!("m{i}"))
                .await
                .unwrap()
                .is_some(),
            "m{i} lost"
        );
    }
}

#[tokio::test]
async fn an_interrupted_rotation_resumed_later_loses_nothing() {
    for steps in [1usize, 2, 3, 5, 8] {
        for after in [0usize, 1, 30] {
            let backend = MemoryBackend::new();
            let opts = Options::default().with_background_rotation(false);
            let store = Tresor::with_backend(backend.clone(), PASS.into(), opts)
                .await
                .unwrap();
            let first: Vec<Message> = (0..200).map(m).collect();
            store.messages().save_batch(&first).await.unwrap();
            // One complete rotation first (the crash test lost records that had been through
            // one finished rotation before an interrupted one).
            store.rotate_key_with(64, |_| {}).await.unwrap();
            store.begin_rotation().await.unwrap();
            for _ in 0..steps {
                store.rotation_step(16).await.unwrap();
            }
            // Writes while the rotation is half done.
            for i in 200..200 + after {
                store.messages().save(&m(i)).await.unwrap();
            }
            drop(store); // "crash"
            let store = Tresor::with_backend(backend.clone(), PASS.into(), opts)
                .await
                .unwrap();
            all_present(&store, 200 + after).await;
            for i in 300..310 {
                store.messages().save(&m(i)).await.unwrap();
            }
            // A second rotation requested while the first is unfinished.
            store.rotate_key_with(64, |_| {}).await.unwrap();
            all_present(&store, 200 + after).await;
            assert!(
                store.check().await.unwrap().is_clean(),
                "steps {steps} after {after}"
            );
            drop(store);
            let store = Tresor::with_backend(backend, PASS.into(), opts)
                .await
                .unwrap();
            all_present(&store, 200 + after).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_disk_with_background_resume_and_passphrase_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.redb");
    let store = Tresor::create(&path, PASS.into()).await.unwrap();
    let first: Vec<Message> = (0..300).map(m).collect();
    store.messages().save_batch(&first).await.unwrap();
    store
        .change_passphrase(PASS.into(), "other".into())
        .await
        .unwrap();
    store.rotate_key_with(64, |_| {}).await.unwrap();
    for i in 300..320 {
        store.messages().save(&m(i)).await.unwrap();
    }
    store.begin_rotation().await.unwrap();
    store.rotation_step(16).await.unwrap();
    store.rotation_step(16).await.unwrap();
    drop(store);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for round in 0..3 {
        let store = loop {
            match Tresor::open(&path, "other".into()).await {
                Err(tresor::Error::Backend(tresor::BackendError::Locked)) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                other => break other.unwrap(),
            }
        };
        all_present(&store, 320).await;
        if round == 1 {
            store.rotate_key_with(8, |_| {}).await.unwrap();
        }
        let r = store.check().await.unwrap();
        assert!(r.is_clean(), "round {round}: {:?}", r.issues);
        all_present(&store, 320).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_passphrase_change_then_interrupted_rotation() {
    for steps in [0usize, 1, 2, 4, 40] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.redb");
        let store = Tresor::create(&path, PASS.into()).await.unwrap();
        store
            .messages()
            .save_batch(&(0..100).map(m).collect::<Vec<_>>())
            .await
            .unwrap();
        store.rotate_key_with(64, |_| {}).await.unwrap();
        store
            .change_passphrase(PASS.into(), "other".into())
            .await
            .unwrap();
        store
            .messages()
            .save_batch(&(100..200).map(m).collect::<Vec<_>>())
            .await
            .unwrap();
        store.begin_rotation().await.unwrap();
        for _ in 0..steps {
            store.rotation_step(16).await.unwrap();
        }
        drop(store);
        let store = loop {
            match Tresor::open(&path, "other".into()).await {
                Err(tresor::Error::Backend(tresor::BackendError::Locked)) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                other => break other.unwrap(),
            }
        };
        all_present(&store, 200).await;
        assert!(store.check().await.unwrap().is_clean(), "steps {steps}");
        all_present(&store, 200).await;
    }
}

#[tokio::test]
async fn writes_during_a_rotation_keep_counters_and_reads_exact() {
    let backend = MemoryBackend::new();
    let opts = Options::default().with_background_rotation(false);
    let store = Tresor::with_backend(backend, PASS.into(), opts)
        .await
        .unwrap();
    store
        .messages()
        .save_batch(&(0..100).map(m).collect::<Vec<_>>())
        .await
        .unwrap();
    store.begin_rotation().await.unwrap();
    store.rotation_step(5).await.unwrap();
    // New messages in conversations whose counters are not migrated yet, an edit of an
    // unmigrated message, and a delete of one.
    for i in 100..110 {
        store.messages().save(&m(i)).await.unwrap();
    }
    let mut edited = m(50);
    edited.body = "edited".into();
    store.messages().save(&edited).await.unwrap();
    assert!(store.messages().delete("m60").await.unwrap());
    store.rotate_key_with(7, |_| {}).await.unwrap();
    let r = store.check().await.unwrap();
    assert!(r.is_clean(), "{:?}", r.issues);
    let s = store.stats().await.unwrap();
    assert_eq!((s.messages, s.conversations), (109, 5));
    assert_eq!(
        store.messages().get("m50").await.unwrap().unwrap().body,
        "edited"
    );
    let mut total = 0;
    for c in 0..5 {
        total += store
            .messages()
            .by_conversation(&format!("c{c}"), 1000, None)
            .await
            .unwrap()
            .len();
    }
    assert_eq!(total, 109);
}
