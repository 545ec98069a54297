//! Messages, extended: delivery status, threads, edits, redaction, media, `delete_before`,
//! retention, disappearing messages and the sweeper, unread counts.
#![allow(clippy::unwrap_used)]

mod common;

use common::{PASS, ids, memory_store, msg};
use tresor::{
    DeliveryStatus, MediaRef, MemoryBackend, Message, MessageExtras, Options, Retention,
    SWEEP_BATCH, Tresor,
};

fn incoming() -> MessageExtras {
    MessageExtras::incoming()
}

#[tokio::test]
async fn status_is_indexed_by_conversation_and_can_be_set() {
    let store = memory_store().await;
    let m = store.messages();
    for i in 0..6 {
        let status = if i % 2 == 0 {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Sent
        };
        m.save_with(
            &msg(&format!("m{i}"), "c1", "me", Some("bob"), i, "x"),
            &MessageExtras::outgoing(status),
        )
        .await
        .unwrap();
    }
    // Another conversation with the same status does not leak in.
    m.save_with(
        &msg("other", "c2", "me", None, 3, "x"),
        &MessageExtras::outgoing(DeliveryStatus::Pending),
    )
    .await
    .unwrap();
    // A plain save is outgoing and delivered.
    m.save(&msg("plain", "c1", "me", None, 10, "x"))
        .await
        .unwrap();

    let pending = m
        .by_status("c1", DeliveryStatus::Pending, 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&pending), vec!["m4", "m2", "m0"], "newest first");
    let page = m
        .by_status("c1", DeliveryStatus::Pending, 2, None)
        .await
        .unwrap();
    let next = m
        .by_status("c1", DeliveryStatus::Pending, 2, Some(&page[1].id))
        .await
        .unwrap();
    assert_eq!(ids(&next), vec!["m0"]);
    let delivered = m
        .by_status("c1", DeliveryStatus::Delivered, 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&delivered), vec!["plain"]);

    assert!(m.set_status("m2", DeliveryStatus::Failed).await.unwrap());
    assert!(!m.set_status("nope", DeliveryStatus::Read).await.unwrap());
    let pending = m
        .by_status("c1", DeliveryStatus::Pending, 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&pending), vec!["m4", "m0"]);
    let failed = m
        .by_status("c1", DeliveryStatus::Failed, 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&failed), vec!["m2"]);
    assert_eq!(
        m.state("m2").await.unwrap().unwrap().status,
        DeliveryStatus::Failed
    );
    // Re-saving the same message content keeps its status (a plain save keeps the state).
    m.save(&msg("m2", "c1", "me", Some("bob"), 2, "x"))
        .await
        .unwrap();
    assert_eq!(
        m.state("m2").await.unwrap().unwrap().status,
        DeliveryStatus::Failed
    );
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn a_thread_lists_its_replies_in_order() {
    let store = memory_store().await;
    let m = store.messages();
    m.save(&msg("root", "c", "alice", None, 100, "question"))
        .await
        .unwrap();
    // Saved out of order; two with the same timestamp keep insertion order.
    for (id, ts) in [("r3", 400), ("r1", 200), ("r2a", 300), ("r2b", 300)] {
        m.save_with(
            &msg(id, "c", "bob", None, ts, "answer"),
            &incoming().replying_to("root"),
        )
        .await
        .unwrap();
    }
    m.save_with(
        &msg("elsewhere", "c", "bob", None, 250, "x"),
        &incoming().replying_to("other-root"),
    )
    .await
    .unwrap();
    let thread = m.thread("root", 10, None).await.unwrap();
    assert_eq!(ids(&thread), vec!["r1", "r2a", "r2b", "r3"]);
    let page = m.thread("root", 2, None).await.unwrap();
    let rest = m.thread("root", 10, Some(&page[1].id)).await.unwrap();
    assert_eq!(ids(&rest), vec!["r2b", "r3"]);
    assert_eq!(
        m.state("r1").await.unwrap().unwrap().relates_to.as_deref(),
        Some("root")
    );
    // Deleting a reply removes it from the thread in the same batch.
    assert!(m.delete("r2a").await.unwrap());
    assert_eq!(
        ids(&m.thread("root", 10, None).await.unwrap()),
        vec!["r1", "r2b", "r3"]
    );
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn edits_replace_the_body_and_keep_history() {
    let store = memory_store().await;
    let m = store.messages();
    let seq = m
        .save(&msg("m", "c", "alice", None, 5, "first"))
        .await
        .unwrap();
    assert!(m.edit("m", "second", 10).await.unwrap());
    assert!(m.edit("m", "third", 20).await.unwrap());
    assert!(!m.edit("missing", "x", 1).await.unwrap());
    let got = m.get("m").await.unwrap().unwrap();
    assert_eq!((got.body.as_str(), got.seq), ("third", seq));
    let s = m.state("m").await.unwrap().unwrap();
    assert_eq!(s.edited_ms, Some(20));
    let history: Vec<_> = s.edits.iter().map(|e| e.previous_body.as_str()).collect();
    assert_eq!(history, vec!["first", "second"]);
    assert_eq!(
        ids(&m.by_conversation("c", 10, None).await.unwrap()),
        vec!["m"]
    );
    assert_eq!(store.stats().await.unwrap().messages, 1);
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn redaction_wipes_body_history_and_media_and_keeps_the_reason() {
    let store = memory_store().await;
    let m = store.messages();
    let media = MediaRef {
        id: "blob-1".into(),
        mime: "image/png".into(),
        size: 1234,
    };
    m.save_with(
        &msg("m", "c", "alice", None, 5, "secret one"),
        &incoming().with_media(media.clone()),
    )
    .await
    .unwrap();
    assert!(m.edit("m", "secret two", 6).await.unwrap());
    // Read (and cache) the state holding the history before redacting.
    let before = m.state("m").await.unwrap().unwrap();
    assert_eq!(before.media, vec![media]);
    assert_eq!(before.edits[0].previous_body, "secret one");
    assert!(store.stats().await.unwrap().cache_bytes > 0);

    assert!(m.redact("m", Some("spam"), 7).await.unwrap());
    let got = m.get("m").await.unwrap().unwrap();
    assert_eq!(got.body, "");
    let s = m.state("m").await.unwrap().unwrap();
    assert!(s.edits.is_empty() && s.media.is_empty());
    let r = s.redaction.unwrap();
    assert_eq!((r.reason.as_deref(), r.redacted_ms), (Some("spam"), 7));
    assert!(s.incoming, "the rest of the state is kept");
    // A redacted message cannot be edited back to life.
    assert!(!m.edit("m", "resurrected", 8).await.unwrap());
    assert_eq!(m.get("m").await.unwrap().unwrap().body, "");
    // Nothing anywhere still says the old bodies: every query path returns the wiped state.
    for page in [
        m.by_conversation("c", 10, None).await.unwrap(),
        m.recent(10, None).await.unwrap(),
        m.by_status("c", DeliveryStatus::Delivered, 10, None)
            .await
            .unwrap(),
    ] {
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].body, "");
    }
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn redaction_leaves_no_plaintext_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Tresor::create(&path, PASS.into()).await.unwrap();
    let body = "UNIQUE-SECRET-BODY-7f3a";
    store
        .messages()
        .save(&msg("m", "c", "alice", None, 5, body))
        .await
        .unwrap();
    store.messages().edit("m", "edited", 6).await.unwrap();
    store.messages().redact("m", None, 7).await.unwrap();
    drop(store);
    let bytes = std::fs::read(&path).unwrap();
    for needle in [body, "edited"] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()));
    }
}

#[tokio::test]
async fn unread_counts_follow_message_writes() {
    let store = memory_store().await;
    let m = store.messages();
    let c = store.conversations();
    for i in 0..3 {
        m.save_with(
            &msg(&format!("in{i}"), "c", "bob", None, i, "x"),
            &incoming(),
        )
        .await
        .unwrap();
    }
    m.save_with(
        &msg("out", "c", "me", None, 9, "x"),
        &MessageExtras::outgoing(DeliveryStatus::Sent),
    )
    .await
    .unwrap();
    m.save_with(&msg("other", "d", "bob", None, 1, "x"), &incoming())
        .await
        .unwrap();
    assert_eq!(c.unread("c").await.unwrap(), 3);
    assert_eq!(c.unread("d").await.unwrap(), 1);
    assert_eq!(c.unread("none").await.unwrap(), 0);
    // Saving the same incoming message again does not count it twice.
    m.save_with(&msg("in0", "c", "bob", None, 0, "x"), &incoming())
        .await
        .unwrap();
    assert_eq!(c.unread("c").await.unwrap(), 3);
    // Reading one decrements; deleting an unread one decrements.
    m.set_status("in0", DeliveryStatus::Read).await.unwrap();
    assert_eq!(c.unread("c").await.unwrap(), 2);
    m.delete("in1").await.unwrap();
    assert_eq!(c.unread("c").await.unwrap(), 1);
    // Mark read resets.
    m.save_with(&msg("in3", "c", "bob", None, 3, "x"), &incoming())
        .await
        .unwrap();
    assert_eq!(c.mark_read("c").await.unwrap(), 2);
    assert_eq!(c.unread("c").await.unwrap(), 0);
    assert_eq!(c.unread("d").await.unwrap(), 1);
    assert_eq!(
        m.state("in3").await.unwrap().unwrap().status,
        DeliveryStatus::Read
    );
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn mark_read_spans_several_batches() {
    let store = memory_store().await;
    let n = SWEEP_BATCH + 10;
    let batch: Vec<(Message, MessageExtras)> = (0..n)
        .map(|i| {
            (
                msg(&format!("m{i}"), "c", "bob", None, i as i64, "x"),
                incoming(),
            )
        })
        .collect();
    store.messages().save_batch_with(&batch).await.unwrap();
    assert_eq!(store.conversations().unread("c").await.unwrap(), n as u64);
    assert_eq!(store.messages().mark_read("c").await.unwrap(), n as u64);
    assert_eq!(store.conversations().unread("c").await.unwrap(), 0);
}

#[tokio::test]
async fn delete_before_spans_conversations_and_batches() {
    let store = memory_store().await;
    let m = store.messages();
    let n = 2 * SWEEP_BATCH + 50;
    let batch: Vec<(Message, MessageExtras)> = (0..n)
        .map(|i| {
            let extras = if i % 5 == 0 {
                incoming()
            } else {
                MessageExtras::default()
            };
            (
                msg(
                    &format!("m{i}"),
                    &format!("c{}", i % 3),
                    "bob",
                    None,
                    i as i64,
                    "x",
                ),
                extras.replying_to(format!("m{}", i / 2)),
            )
        })
        .collect();
    m.save_batch_with(&batch).await.unwrap();
    let cut = (SWEEP_BATCH + 30) as i64;
    let deleted = m.delete_before(cut).await.unwrap();
    assert_eq!(deleted, cut as u64);
    assert_eq!(store.stats().await.unwrap().messages, (n as u64) - deleted);
    let rest = m.recent(n, None).await.unwrap();
    assert!(rest.iter().all(|x| x.timestamp_ms >= cut));
    assert!(m.state("m0").await.unwrap().is_none());
    assert!(m.thread("m1", 10, None).await.unwrap().is_empty());
    // Unread counts lost the deleted unread messages.
    let mut unread = 0;
    for c in 0..3 {
        unread += store
            .conversations()
            .unread(&format!("c{c}"))
            .await
            .unwrap();
    }
    let expected = (cut as usize..n).filter(|i| i % 5 == 0).count() as u64;
    assert_eq!(unread, expected);
    assert_eq!(m.delete_before(cut).await.unwrap(), 0);
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{:?}", report.issues);
}

#[tokio::test]
async fn retention_keeps_the_newest_and_the_young() {
    let store = memory_store().await;
    let m = store.messages();
    let batch: Vec<Message> = (0..40)
        .flat_map(|i| {
            [
                msg(&format!("a{i}"), "a", "bob", None, i * 1000, "x"),
                msg(&format!("b{i}"), "b", "bob", None, i * 1000, "x"),
                msg(&format!("k{i}"), "keep", "bob", None, i * 1000, "x"),
            ]
        })
        .collect();
    m.save_batch(&batch).await.unwrap();
    let by_count = Retention {
        max_age_ms: None,
        max_count: Some(5),
    };
    let by_age = Retention {
        max_age_ms: Some(10_000),
        max_count: None,
    };
    m.set_retention("a", Some(by_count)).await.unwrap();
    m.set_retention("b", Some(by_age)).await.unwrap();
    assert_eq!(m.retention("a").await.unwrap(), Some(by_count));
    assert_eq!(m.retention("keep").await.unwrap(), None);
    // Now = 45 s: "b" keeps messages from 35 s on.
    let report = m.sweep(45_000).await.unwrap();
    assert_eq!(report.retention, 35 + 35);
    assert_eq!(report.expired, 0);
    let a = m.by_conversation("a", 100, None).await.unwrap();
    assert_eq!(ids(&a), vec!["a39", "a38", "a37", "a36", "a35"]);
    let b = m.by_conversation("b", 100, None).await.unwrap();
    assert_eq!(b.len(), 5);
    assert!(b.iter().all(|x| x.timestamp_ms >= 35_000));
    assert_eq!(
        m.by_conversation("keep", 100, None).await.unwrap().len(),
        40
    );
    // A second sweep finds nothing; removing the policy stops it.
    assert_eq!(m.sweep(45_000).await.unwrap().retention, 0);
    m.set_retention("b", None).await.unwrap();
    assert_eq!(m.sweep(90_000).await.unwrap().retention, 0);
    assert_eq!(m.by_conversation("b", 100, None).await.unwrap().len(), 5);
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn disappearing_messages_are_swept_when_due() {
    let store = memory_store().await;
    let m = store.messages();
    for i in 0..10 {
        m.save_with(
            &msg(&format!("m{i}"), "c", "bob", None, i, "x"),
            &incoming().expiring_at(100 + i),
        )
        .await
        .unwrap();
    }
    m.save(&msg("forever", "c", "bob", None, 0, "x"))
        .await
        .unwrap();
    assert_eq!(store.conversations().unread("c").await.unwrap(), 10);
    let report = m.sweep(104).await.unwrap();
    assert_eq!(report.expired, 5);
    let left = m.by_conversation("c", 100, None).await.unwrap();
    assert_eq!(ids(&left), vec!["m9", "m8", "m7", "m6", "m5", "forever"]);
    assert_eq!(store.conversations().unread("c").await.unwrap(), 5);
    assert_eq!(m.sweep(1_000).await.unwrap().expired, 5);
    assert_eq!(
        ids(&m.by_conversation("c", 100, None).await.unwrap()),
        vec!["forever"]
    );
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn the_store_sweeps_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Tresor::create(&path, PASS.into()).await.unwrap();
    store
        .messages()
        .save_with(
            &msg("gone", "c", "bob", None, 1, "x"),
            &incoming().expiring_at(1),
        )
        .await
        .unwrap();
    store
        .messages()
        .save_with(
            &msg("stays", "c", "bob", None, 1, "x"),
            &incoming().expiring_at(i64::MAX),
        )
        .await
        .unwrap();
    drop(store);
    let store = Tresor::open(&path, PASS.into()).await.unwrap();
    let report = store.last_sweep().unwrap().unwrap();
    assert_eq!(report.expired, 1);
    assert!(store.messages().get("gone").await.unwrap().is_none());
    assert!(store.messages().get("stays").await.unwrap().is_some());
    // Without a sweep interval nothing runs by itself.
    drop(store);
    let options = Options::default().with_sweep_interval(None);
    let store = Tresor::open_with(&path, PASS.into(), options)
        .await
        .unwrap();
    assert!(store.last_sweep().is_none());
}

#[tokio::test]
async fn the_interval_sweeper_deletes_expired_messages() {
    let options = Options::default().with_sweep_interval(Some(std::time::Duration::from_millis(5)));
    let store = Tresor::with_backend(MemoryBackend::new(), PASS.into(), options)
        .await
        .unwrap();
    store
        .messages()
        .save_with(
            &msg("soon", "c", "bob", None, 1, "x"),
            &incoming().expiring_at(1),
        )
        .await
        .unwrap();
    // Wait (bounded) for a tick of the sweeper: no timing is asserted, only that it ran.
    let mut gone = false;
    for _ in 0..2_000 {
        if store.messages().get("soon").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(gone, "the sweeper never deleted the expired message");
    assert_eq!(store.conversations().unread("c").await.unwrap(), 0);
}

#[tokio::test]
async fn extended_state_survives_a_key_rotation() {
    let store = memory_store().await;
    let m = store.messages();
    m.save_with(
        &msg("r", "c", "bob", None, 1, "x"),
        &incoming().replying_to("root"),
    )
    .await
    .unwrap();
    m.save(&msg("root", "c", "alice", None, 0, "q"))
        .await
        .unwrap();
    store.rotate_key().await.unwrap();
    assert_eq!(ids(&m.thread("root", 10, None).await.unwrap()), vec!["r"]);
    assert_eq!(store.conversations().unread("c").await.unwrap(), 1);
    assert!(m.edit("root", "q2", 5).await.unwrap());
    assert_eq!(m.delete_before(i64::MAX).await.unwrap(), 2);
    assert_eq!(store.conversations().unread("c").await.unwrap(), 0);
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn the_sweeper_stops_when_the_store_is_dropped() {
    let backend = MemoryBackend::new();
    let every = Some(std::time::Duration::from_millis(2));
    let store = Tresor::with_backend(
        backend.clone(),
        PASS.into(),
        Options::default().with_sweep_interval(every),
    )
    .await
    .unwrap();
    drop(store);
    // The same data opened without a sweeper: an expired message stays, so no sweeper of the
    // dropped store is still running over it.
    let store = Tresor::with_backend(
        backend,
        PASS.into(),
        Options::default().with_sweep_interval(None),
    )
    .await
    .unwrap();
    store
        .messages()
        .save_with(
            &msg("expired", "c", "bob", None, 1, "x"),
            &incoming().expiring_at(1),
        )
        .await
        .unwrap();
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(store.messages().get("expired").await.unwrap().is_some());
    }
    // A sweep by hand deletes it.
    assert_eq!(store.messages().sweep(2).await.unwrap().expired, 1);
}

#[tokio::test]
async fn a_failed_write_stores_neither_the_message_nor_its_state() {
    use tresor_backend::{Fault, FaultBackend, FaultKind, FaultPoint};
    let base = MemoryBackend::new();
    // Commit 0 creates the store; commit 1 is the save below.
    let faulty = FaultBackend::new(
        base.clone(),
        Fault {
            point: FaultPoint::Write,
            nth: 1,
            kind: FaultKind::Io,
            sticky: false,
        },
    );
    let store = Tresor::with_backend(faulty.clone(), PASS.into(), Options::default())
        .await
        .unwrap();
    let saved = store
        .messages()
        .save_with(
            &msg("m", "c", "bob", None, 1, "x"),
            &incoming().replying_to("root").expiring_at(5),
        )
        .await;
    assert!(saved.is_err());
    assert_eq!(faulty.injected(), 1);
    drop(store);
    let store = Tresor::with_backend(base, PASS.into(), Options::default())
        .await
        .unwrap();
    assert!(store.messages().get("m").await.unwrap().is_none());
    assert!(store.messages().state("m").await.unwrap().is_none());
    assert!(
        store
            .messages()
            .thread("root", 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.conversations().unread("c").await.unwrap(), 0);
    assert!(store.check().await.unwrap().is_clean());
}
