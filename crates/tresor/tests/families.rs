//! The record families on typed tables: contacts, sessions, proofs, relay queue.
#![allow(clippy::unwrap_used)]

mod common;

use tresor::{Contact, Error, Proof, Session};

use common::memory_store;

fn session(peer: &str, device: &str, key: &str, at: i64) -> Session {
    Session {
        peer_id: peer.into(),
        device_id: device.into(),
        key_id: key.into(),
        state: vec![at as u8; 3],
        last_activity_ms: at,
    }
}

fn proof(id: &str, message: &str, circuit: &str, at: i64) -> Proof {
    Proof {
        id: id.into(),
        message_id: message.into(),
        circuit_id: circuit.into(),
        proof: vec![1, 2, 3],
        public_signals: vec![vec![4], vec![5, 6]],
        generated_ms: at,
        prover: "alice".into(),
    }
}

#[tokio::test]
async fn contacts_round_trip() {
    let store = memory_store().await;
    let contacts = store.contacts();
    let mut bob = Contact {
        peer_id: "bob".into(),
        display_name: "Bob".into(),
        public_key: vec![7; 32],
        verified: false,
        blocked: false,
    };
    contacts.save(&bob).await.unwrap();
    bob.verified = true;
    contacts.save(&bob).await.unwrap();
    assert_eq!(contacts.get("bob").await.unwrap(), Some(bob.clone()));
    assert_eq!(contacts.list(10, None).await.unwrap(), vec![bob]);
    assert!(contacts.delete("bob").await.unwrap());
    assert_eq!(contacts.get("bob").await.unwrap(), None);
}

#[tokio::test]
async fn sessions_by_peer_key_and_activity() {
    let store = memory_store().await;
    let s = store.sessions();
    s.save(&session("bob", "phone", "k1", 10)).await.unwrap();
    s.save(&session("bob", "laptop", "k2", 30)).await.unwrap();
    s.save(&session("carol", "phone", "k1", 20)).await.unwrap();
    // Same peer/device replaces.
    s.save(&session("bob", "phone", "k1", 40)).await.unwrap();
    let devices = |v: Vec<Session>| {
        v.into_iter()
            .map(|s| format!("{}/{}", s.peer_id, s.device_id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        devices(s.by_peer("bob", 10).await.unwrap()),
        vec!["bob/phone", "bob/laptop"]
    );
    let mut by_key = devices(s.by_key("k1", 10).await.unwrap());
    by_key.sort();
    assert_eq!(by_key, vec!["bob/phone", "carol/phone"]);
    assert_eq!(
        devices(s.recent(2, None).await.unwrap()),
        vec!["bob/phone", "bob/laptop"]
    );
    assert_eq!(
        devices(s.recent(2, Some(("bob", "laptop"))).await.unwrap()),
        vec!["carol/phone"]
    );
    assert_eq!(
        s.get("bob", "phone")
            .await
            .unwrap()
            .unwrap()
            .last_activity_ms,
        40
    );
    assert!(s.delete("bob", "phone").await.unwrap());
    assert_eq!(
        devices(s.by_peer("bob", 10).await.unwrap()),
        vec!["bob/laptop"]
    );
}

#[tokio::test]
async fn proofs_unique_per_message_by_circuit_and_delete_before() {
    let store = memory_store().await;
    let p = store.proofs();
    for i in 0..600 {
        let circuit = if i % 3 == 0 { "age" } else { "membership" };
        p.save(&proof(&format!("p{i}"), &format!("m{i}"), circuit, i))
            .await
            .unwrap();
    }
    assert!(matches!(
        p.save(&proof("other", "m5", "age", 1)).await,
        Err(Error::UniqueViolation {
            table: "proof",
            index: "by_message"
        })
    ));
    assert_eq!(p.by_message("m5").await.unwrap().unwrap().id, "p5");
    assert_eq!(p.by_message("nope").await.unwrap(), None);
    let age: Vec<i64> = p
        .by_circuit("age", 3, None)
        .await
        .unwrap()
        .iter()
        .map(|p| p.generated_ms)
        .collect();
    assert_eq!(age, vec![597, 594, 591]);
    let next = p.by_circuit("age", 1, Some("p591")).await.unwrap();
    assert_eq!(next[0].id, "p588");
    assert_eq!(p.recent(1, None).await.unwrap()[0].id, "p599");
    assert_eq!(p.delete_before(550).await.unwrap(), 550);
    assert_eq!(p.get("p549").await.unwrap(), None);
    assert!(p.get("p550").await.unwrap().is_some());
    assert_eq!(
        p.by_message("m5").await.unwrap(),
        None,
        "index entries went too"
    );
    // The freed message id can take a new proof.
    p.save(&proof("again", "m5", "age", 1_000)).await.unwrap();
    assert_eq!(p.delete_before(0).await.unwrap(), 0);
}

fn item(id: &str, at: i64) -> tresor::RelayItem {
    tresor::RelayItem {
        id: id.into(),
        peer_id: "bob".into(),
        payload: vec![9; 4],
        enqueued_ms: at,
        next_attempt_ms: at,
        attempts: 0,
    }
}

#[tokio::test]
async fn relay_queue_due_order_backoff_ack_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.redb");
    let store = tresor::Tresor::create(&path, common::PASS.into())
        .await
        .unwrap();
    let q = store.relay_queue();
    for (id, at) in [("c", 30), ("a", 10), ("b", 20), ("d", 10_000)] {
        q.enqueue(&item(id, at)).await.unwrap();
    }
    let ids = |v: Vec<tresor::RelayItem>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(ids(q.peek_due(100, 10).await.unwrap()), vec!["a", "b", "c"]);
    // A failed attempt on "a" at t=100: due again at 100 + 1 s, then 2 s after the next.
    let a = q.mark_attempt("a", 100).await.unwrap().unwrap();
    assert_eq!((a.attempts, a.next_attempt_ms), (1, 1_100));
    assert_eq!(ids(q.peek_due(100, 10).await.unwrap()), vec!["b", "c"]);
    let a = q.mark_attempt("a", 1_100).await.unwrap().unwrap();
    assert_eq!((a.attempts, a.next_attempt_ms), (2, 3_100));
    assert!(q.ack("b").await.unwrap());
    assert!(!q.ack("b").await.unwrap());
    assert_eq!(q.mark_attempt("b", 5).await.unwrap(), None);
    drop(store);
    // After a restart the queue is intact, in due order.
    let store = tresor::Tresor::open(&path, common::PASS.into())
        .await
        .unwrap();
    let q = store.relay_queue();
    assert_eq!(
        ids(q.peek_due(20_000, 10).await.unwrap()),
        vec!["c", "a", "d"]
    );
    for _ in 0..40 {
        q.mark_attempt("c", 0).await.unwrap();
    }
    let c = q.peek_due(i64::MAX, 10).await.unwrap();
    let c = c.iter().find(|i| i.id == "c").unwrap();
    assert_eq!(
        c.next_attempt_ms,
        tresor::RELAY_MAX_BACKOFF_MS,
        "capped at one hour"
    );
}

#[tokio::test]
async fn key_values_set_get_remove_list() {
    let store = memory_store().await;
    let kv = store.key_values();
    assert_eq!(kv.get("identity").await.unwrap(), None);
    kv.set("identity", &[1, 2, 3]).await.unwrap();
    kv.set("theme", b"dark").await.unwrap();
    kv.set("theme", b"light").await.unwrap();
    assert_eq!(
        kv.get("theme").await.unwrap().as_deref(),
        Some(b"light".as_slice())
    );
    assert_eq!(kv.list(10, None).await.unwrap().len(), 2);
    assert!(kv.remove("identity").await.unwrap());
    assert!(!kv.remove("identity").await.unwrap());
    assert_eq!(kv.list(10, None).await.unwrap().len(), 1);
}
