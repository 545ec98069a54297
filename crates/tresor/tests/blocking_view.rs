//! `Tresor::blocking_view` and `Messages::scan`: synchronous reads answer exactly as the async
//! queries, see one consistent state, and walk every message once — on every backend and
//! during a key rotation.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::{ids, msg};
use tresor::{Error, Message, Tresor};

fn sample(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            msg(
                &format!("m{i}"),
                &format!("c{}", i % 5),
                &format!("p{}", i % 3),
                Some(&format!("p{}", (i + 1) % 3)),
                // Equal timestamps in pairs: order among them is insertion order.
                1_600_000_000_000 + (i / 2) as i64,
                &format!("body {i}"),
            )
        })
        .collect()
}

/// Runs `f` with a fresh view on a blocking thread.
async fn in_view<T: Send + 'static>(
    store: &Tresor,
    f: impl FnOnce(&tresor::BlockingView) -> T + Send + 'static,
) -> T {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store.blocking_view().unwrap()))
        .await
        .unwrap()
}

/// Every page walk of the view equals the async walk, cursor for cursor.
async fn view_answers_as_the_async_queries(store: Tresor) {
    store.messages().save_batch(&sample(97)).await.unwrap();
    let m = store.messages();
    let mut expected = Vec::new();
    for conv in ["c0", "c3", "absent"] {
        let first = m.by_conversation(conv, 7, None).await.unwrap();
        let next = match first.last() {
            Some(last) => m.by_conversation(conv, 7, Some(&last.id)).await.unwrap(),
            None => Vec::new(),
        };
        expected.push((first, next));
    }
    let by_peer = m.by_peer("p1", 1000, None).await.unwrap();
    let recent = m.recent(10, Some("m50")).await.unwrap();
    let one = m.get("m42").await.unwrap();
    assert_eq!(one.as_ref().unwrap().body, "body 42");

    let got = in_view(&store, |v| {
        let mut pages = Vec::new();
        for conv in ["c0", "c3", "absent"] {
            let first = v.by_conversation(conv, 7, None).unwrap();
            let next = match first.last() {
                Some(last) => v.by_conversation(conv, 7, Some(&last.id)).unwrap(),
                None => Vec::new(),
            };
            pages.push((first, next));
        }
        (
            pages,
            v.by_peer("p1", 1000, None).unwrap(),
            v.recent(10, Some("m50")).unwrap(),
            v.message("m42").unwrap(),
            v.message("absent").unwrap(),
            matches!(v.recent(5, Some("absent")), Err(Error::CursorNotFound)),
            v.message_count().unwrap(),
        )
    })
    .await;
    assert_eq!(got.0, expected);
    assert_eq!(got.0[0].0.len(), 7, "a full first page of c0");
    assert_eq!(got.1, by_peer);
    assert_eq!(got.1.len(), 65, "p1 sends or receives two thirds of 97");
    assert_eq!(got.2, recent);
    assert_eq!(got.3, one);
    assert_eq!(got.4, None);
    assert!(got.5, "an unknown cursor is CursorNotFound");
    assert_eq!(got.6, 97);
}

/// A view keeps showing the state it was taken at; a new view shows the writes.
async fn view_is_a_snapshot(store: Tresor) {
    store.messages().save_batch(&sample(20)).await.unwrap();
    let view = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.blocking_view().unwrap())
            .await
            .unwrap()
    };
    store.messages().delete("m3").await.unwrap();
    let mut edited = sample(20)[4].clone();
    edited.body = "edited".into();
    store
        .messages()
        .save_batch(&[edited, msg("new", "c0", "p0", None, 1, "new")])
        .await
        .unwrap();
    let (old, new) = tokio::task::spawn_blocking({
        let store = store.clone();
        move || {
            let old = (
                view.message("m3").unwrap().is_some(),
                view.message("m4").unwrap().unwrap().body,
                view.message("new").unwrap().is_some(),
                view.message_count().unwrap(),
            );
            drop(view);
            let fresh = store.blocking_view().unwrap();
            let new = (
                fresh.message("m3").unwrap().is_some(),
                fresh.message("m4").unwrap().unwrap().body,
                fresh.message("new").unwrap().is_some(),
                fresh.message_count().unwrap(),
            );
            (old, new)
        }
    })
    .await
    .unwrap();
    assert_eq!(old, (true, "body 4".to_owned(), false, 20));
    assert_eq!(new, (false, "edited".to_owned(), true, 20));
}

/// `Messages::scan` and `BlockingView::scan` walk every message exactly once, in the same
/// order; pages hold at most `limit`.
async fn scans_walk_every_message_once(store: Tresor) {
    let messages = sample(103);
    store.messages().save_batch(&messages).await.unwrap();
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.messages().scan(10, after.as_deref()).await.unwrap();
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        walked.extend(page);
    }
    let viewed = in_view(&store, |v| {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = v.scan(17, after.as_deref()).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            out.extend(page);
        }
        out
    })
    .await;
    assert_eq!(ids(&walked), ids(&viewed));
    let distinct: BTreeSet<&str> = ids(&walked).into_iter().collect();
    assert_eq!(distinct.len(), 103);
    assert_eq!(walked.len(), 103);
    for m in &walked {
        let i: usize = m.id[1..].parse().unwrap();
        assert_eq!(m.body, messages[i].body);
    }
    assert!(matches!(
        store.messages().scan(5, Some("absent")).await,
        Err(Error::CursorNotFound)
    ));
    assert!(store.messages().scan(0, None).await.unwrap().is_empty());
}

/// Midway through a key rotation (records under both keys), a view answers as before the
/// rotation and its scan walks every message once.
async fn views_read_both_key_generations(store: Tresor) {
    store.messages().save_batch(&sample(60)).await.unwrap();
    let before = in_view(&store, |v| {
        (
            v.by_conversation("c2", 100, None).unwrap(),
            v.recent(100, None).unwrap(),
        )
    })
    .await;
    assert!(store.begin_rotation().await.unwrap());
    let step = store.rotation_step(25).await.unwrap();
    assert!(!step.done, "the rotation is midway");
    let (during, walked) = in_view(&store, |v| {
        let mut walked = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = v.scan(7, after.as_deref()).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            walked.extend(page.into_iter().map(|m| m.id));
        }
        (
            (
                v.by_conversation("c2", 100, None).unwrap(),
                v.recent(100, None).unwrap(),
            ),
            walked,
        )
    })
    .await;
    assert_eq!(during, before);
    assert_eq!(walked.len(), 60);
    assert_eq!(walked.iter().collect::<BTreeSet<_>>().len(), 60);
    assert_eq!(
        store.messages().get("m7").await.unwrap().unwrap().body,
        "body 7"
    );
}

on_every_backend!(
    view_answers_as_the_async_queries,
    view_is_a_snapshot,
    scans_walk_every_message_once,
    views_read_both_key_generations,
);

/// Index keys are not authenticated: an entry moved under another conversation's prefix, or
/// with its position altered, makes the page that reads it fail with `Corrupted` — through
/// the async queries and a blocking view — never return a message where it does not belong.
#[tokio::test]
async fn altered_index_entries_are_errors_not_answers() {
    use tresor::{Backend, MemoryBackend, Options};
    use tresor_backend::{Direction, KeyRange, WriteBatch};
    // Index entries (`msg_by_peer`) moved under another peer or to another position, and a
    // record (`messages`, keyed by conversation ‖ position) moved to another conversation.
    for alteration in ["moved", "reordered", "record moved"] {
        let backend = MemoryBackend::new();
        let store = Tresor::with_backend(backend.clone(), common::PASS.into(), Options::default())
            .await
            .unwrap();
        store.messages().save_batch(&sample(40)).await.unwrap();
        let table = if alteration == "record moved" {
            "messages"
        } else {
            "msg_by_peer"
        };
        let entries = backend
            .scan(table, KeyRange::all(), Direction::Forward, 1000)
            .await
            .unwrap();
        let (key, value) = entries[0].clone();
        // A prefix under which this entry's message has no entry: another conversation, or
        // the one peer of three the message does not involve (the message's peer entries share
        // its value, the conversation token, and its order key).
        let holds_it: Vec<&[u8]> = entries
            .iter()
            .filter(|(k, v)| table == "msg_by_peer" && *v == value && k[16..] == key[16..])
            .map(|(k, _)| &k[..16])
            .collect();
        let other = entries
            .iter()
            .find(|(k, _)| k[..16] != key[..16] && !holds_it.contains(&&k[..16]))
            .unwrap()
            .0
            .clone();
        let mut batch = WriteBatch::new();
        match alteration {
            // The same message listed under another peer (or conversation) too.
            "moved" | "record moved" => {
                let mut moved = other[..16].to_vec();
                moved.extend_from_slice(&key[16..]);
                batch.put(table, moved, value);
            }
            // Its position changed (a message shown out of order).
            _ => {
                let mut reordered = key.clone();
                let last = reordered.len() - 1;
                reordered[last] ^= 0x40;
                batch.delete(table, key.clone());
                batch.put(table, reordered, value);
            }
        }
        backend
            .commit(batch, tresor::Durability::Immediate)
            .await
            .unwrap();
        let mut corrupted = 0;
        let walks: Vec<String> = if table == "messages" {
            (0..5).map(|c| format!("c{c}")).collect()
        } else {
            (0..3).map(|p| format!("p{p}")).collect()
        };
        for id in walks {
            let (async_page, view_page) = if table == "messages" {
                let id2 = id.clone();
                (
                    store.messages().by_conversation(&id, 100, None).await,
                    in_view(&store, move |v| v.by_conversation(&id2, 100, None)).await,
                )
            } else {
                let id2 = id.clone();
                (
                    store.messages().by_peer(&id, 100, None).await,
                    in_view(&store, move |v| v.by_peer(&id2, 100, None)).await,
                )
            };
            match (async_page, view_page) {
                (Err(Error::Corrupted(_)), Err(Error::Corrupted(_))) => corrupted += 1,
                (Ok(page), Ok(same)) => {
                    assert_eq!(page, same);
                    assert!(
                        page.iter().all(|m| m.conversation_id == id
                            || m.sender == id
                            || m.recipient.as_deref() == Some(id.as_str())),
                        "{alteration}"
                    );
                }
                other => panic!("{alteration}: {other:?}"),
            }
        }
        assert_eq!(
            corrupted, 1,
            "{alteration}: exactly the altered conversation or peer fails"
        );
    }
}
