//! Concurrency stress: writers, pagers, backups and checks at once for a fixed number of
//! operations; no deadlock (a timeout fails the test), every page is ordered and authentic,
//! every check is clean, and the final state matches what the writers acknowledged.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{PASS, msg};
use tresor::{Message, Tresor};

fn message(w: usize, i: usize) -> Message {
    msg(
        &format!("w{w}-{i}"),
        &format!("c{}", i % 5),
        &format!("p{w}"),
        Some("hub"),
        (i % 50) as i64,
        &format!("body {w} {i}"),
    )
}

fn check_page(page: &[Message]) {
    let mut ids = BTreeSet::new();
    for m in page {
        assert!(ids.insert(m.id.clone()), "duplicate in one page");
        let (w, i) = m.id[1..].split_once('-').unwrap();
        assert!(
            m.same_content(&message(w.parse().unwrap(), i.parse().unwrap())),
            "altered"
        );
    }
    for p in page.windows(2) {
        assert!(
            p[0].timestamp_ms > p[1].timestamp_ms
                || (p[0].timestamp_ms == p[1].timestamp_ms && p[0].seq < p[1].seq)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_at_once_never_deadlock_or_see_torn_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Tresor::create(dir.path().join("s.redb"), PASS.into())
        .await
        .unwrap();
    let present = Arc::new(Mutex::new(BTreeSet::new()));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (store, present) = (store.clone(), present.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..60 {
                if i % 10 == 9 {
                    let id = format!("w{w}-{}", i - 5);
                    assert!(store.messages().delete(&id).await.unwrap());
                    present.lock().unwrap().remove(&id);
                } else if i % 4 == 0 {
                    store.messages().save(&message(w, i)).await.unwrap();
                    present.lock().unwrap().insert(format!("w{w}-{i}"));
                } else {
                    let batch = vec![message(w, i)];
                    store.messages().save_batch(&batch).await.unwrap();
                    present.lock().unwrap().insert(format!("w{w}-{i}"));
                }
            }
        }));
    }
    for r in 0..2 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..40 {
                let page = if r == 0 {
                    store
                        .messages()
                        .by_conversation(&format!("c{}", k % 5), 7, None)
                        .await
                        .unwrap()
                } else {
                    store.messages().recent(13, None).await.unwrap()
                };
                check_page(&page);
                if let Some(last) = page.last() {
                    // The cursor may be deleted concurrently: then CursorNotFound is correct.
                    match store.messages().by_peer("hub", 5, Some(&last.id)).await {
                        Ok(next) => check_page(&next),
                        Err(tresor::Error::CursorNotFound) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
        }));
    }
    {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..3 {
                let mut buf = Vec::new();
                store.backup_to(&mut buf).await.unwrap();
                assert!(!buf.is_empty());
                let report = store.check().await.unwrap();
                assert!(report.is_clean(), "{:?}", report.issues);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("no deadlock within 120 s");
    let expected = present.lock().unwrap().clone();
    let got: BTreeSet<String> = store
        .messages()
        .recent(10_000, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(got, expected);
    assert!(store.check().await.unwrap().is_clean());
}
