//! A store opened with `Options::commit_log`: durable saves go through redb's commit log
//! (`<store>-log`), which a clean close checkpoints and deletes, and which an open without the
//! option still replays.
#![allow(clippy::unwrap_used)]

mod common;

use common::{PASS, msg};
use tresor::{Options, Tresor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_through_the_commit_log_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.redb");
    let log = dir.path().join("chat.redb-log");
    let options = Options::default().with_commit_log(true);
    let store = Tresor::create_with(&path, PASS.into(), options)
        .await
        .unwrap();
    assert!(log.exists(), "an open store with the option has its log");
    let batch: Vec<_> = (0..200)
        .map(|i| {
            msg(
                &format!("m{i}"),
                &format!("c{}", i % 7),
                "alice",
                Some("bob"),
                i,
                "hi",
            )
        })
        .collect();
    store.messages().save_batch(&batch).await.unwrap();
    store
        .messages()
        .save(&msg("late", "c1", "bob", Some("alice"), 1_000, "later"))
        .await
        .unwrap();
    assert!(store.messages().delete("m3").await.unwrap());
    assert!(
        std::fs::metadata(&log).unwrap().len() > 32,
        "the saves are in the log"
    );
    assert_eq!(store.stats().await.unwrap().messages, 200);
    drop(store);
    assert!(
        !log.exists(),
        "a clean close checkpoints and deletes the log"
    );

    // Reopened without the option: the store file alone holds everything.
    let store = Tresor::open(&path, PASS.into()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().messages, 200);
    assert!(store.messages().get("m3").await.unwrap().is_none());
    assert_eq!(
        store.messages().get("late").await.unwrap().unwrap().body,
        "later"
    );
    let page = store
        .messages()
        .by_conversation("c1", 50, None)
        .await
        .unwrap();
    assert_eq!(page.first().unwrap().id, "late");
    assert!(store.check().await.unwrap().is_clean());
}
