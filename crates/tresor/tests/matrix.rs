//! Matrix-compatible room state: a realistic event sequence, one-time key claims under
//! concurrency, transactions, aliases, receipts, typing, presence, account data.
#![allow(clippy::unwrap_used)]

mod common;

use serde_json::json;
use tresor::{
    DeviceKeys, Error, MatrixEvent, OneTimeKey, Presence, Receipt, RoomAlias, Tresor, TxnStatus,
};

use common::{PASS, memory_store};

const ROOM: &str = "!abc:example.org";
const ME: &str = "@alice:example.org";
const BOB: &str = "@bob:example.org";
const EVE: &str = "@eve:example.org";

/// A room's life as a client sees it in `/sync`, as Matrix JSON.
fn history() -> Vec<MatrixEvent> {
    let raw = json!([
        {"event_id": "$1", "type": "m.room.create", "sender": ME, "state_key": "",
         "origin_server_ts": 1000, "content": {"room_version": "10", "creator": ME}},
        {"event_id": "$2", "type": "m.room.member", "sender": ME, "state_key": ME,
         "origin_server_ts": 1001, "content": {"membership": "join", "displayname": "Alice"}},
        {"event_id": "$3", "type": "m.room.power_levels", "sender": ME, "state_key": "",
         "origin_server_ts": 1002,
         "content": {"users": {ME: 100}, "users_default": 0, "ban": 50, "kick": 50,
                     "events": {"m.room.name": 50}, "invite": 0, "notifications": {"room": 50}}},
        {"event_id": "$4", "type": "m.room.name", "sender": ME, "state_key": "",
         "origin_server_ts": 1003, "content": {"name": "Tresor dev"}},
        {"event_id": "$5", "type": "m.room.topic", "sender": ME, "state_key": "",
         "origin_server_ts": 1004, "content": {"topic": "storage engines"}},
        {"event_id": "$6", "type": "m.room.canonical_alias", "sender": ME, "state_key": "",
         "origin_server_ts": 1005,
         "content": {"alias": "#tresor:example.org", "alt_aliases": ["#storage:example.org"]}},
        {"event_id": "$7", "type": "m.room.member", "sender": ME, "state_key": BOB,
         "origin_server_ts": 1006, "content": {"membership": "invite"}},
        {"event_id": "$8", "type": "m.room.member", "sender": BOB, "state_key": BOB,
         "origin_server_ts": 1007,
         "content": {"membership": "join", "displayname": "Bob", "avatar_url": "mxc://example.org/bob"}},
        {"event_id": "$9", "type": "m.room.member", "sender": EVE, "state_key": EVE,
         "origin_server_ts": 1008, "content": {"membership": "join", "displayname": "Eve"}},
        {"event_id": "$10", "type": "m.room.message", "sender": EVE,
         "origin_server_ts": 1009, "content": {"msgtype": "m.text", "body": "spam"}},
        {"event_id": "$11", "type": "m.room.member", "sender": ME, "state_key": EVE,
         "origin_server_ts": 1010, "content": {"membership": "ban", "reason": "spam"}},
        {"event_id": "$12", "type": "m.room.power_levels", "sender": ME, "state_key": "",
         "origin_server_ts": 1011,
         "content": {"users": {ME: 100, BOB: 50}, "users_default": 0, "ban": 50, "kick": 50}},
        {"event_id": "$13", "type": "m.room.member", "sender": BOB, "state_key": BOB,
         "origin_server_ts": 1012, "content": {"membership": "leave"}},
        {"event_id": "$14", "type": "m.room.topic", "sender": ME, "state_key": "",
         "origin_server_ts": 1013, "content": {"topic": "oops, private"}},
        {"event_id": "$15", "type": "m.room.redaction", "sender": ME, "redacts": "$14",
         "origin_server_ts": 1014, "content": {"reason": "leak"}},
        {"event_id": "$16", "type": "m.room.redaction", "sender": ME,
         "origin_server_ts": 1015, "content": {"redacts": "$12"}},
    ]);
    serde_json::from_value(raw).unwrap()
}

#[tokio::test]
async fn a_realistic_event_sequence_gives_the_expected_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mx.redb");
    {
        let store = Tresor::create(&path, PASS.into()).await.unwrap();
        store.matrix(ME).apply_all(ROOM, &history()).await.unwrap();
    }
    // Everything survives a restart.
    let store = Tresor::open(&path, PASS.into()).await.unwrap();
    let mx = store.matrix(ME);

    let room = mx.room(ROOM).await.unwrap().unwrap();
    assert_eq!(room.membership, "join");
    assert_eq!(room.name.as_deref(), Some("Tresor dev"));
    assert_eq!(room.topic, None, "the newest topic was redacted");
    assert_eq!(room.creator.as_deref(), Some(ME));
    assert_eq!(room.room_version.as_deref(), Some("10"));
    assert_eq!(room.canonical_alias.as_deref(), Some("#tresor:example.org"));
    assert_eq!(
        (room.last_event_ts, room.last_event_id.as_deref()),
        (1015, Some("$16"))
    );

    // Members by membership.
    let member = |u: &str| {
        let u = u.to_owned();
        async move { mx.member(ROOM, &u).await.unwrap().unwrap() }
    };
    assert_eq!(member(ME).await.membership, "join");
    let bob = member(BOB).await;
    assert_eq!((bob.membership.as_str(), bob.displayname), ("leave", None));
    let eve = member(EVE).await;
    assert_eq!(eve.membership, "ban");
    assert_eq!(eve.event_id, "$11");
    let names = |ms: Vec<tresor::RoomMember>| {
        let mut v: Vec<String> = ms.into_iter().map(|m| m.user_id).collect();
        v.sort();
        v
    };
    assert_eq!(
        names(mx.members(ROOM, None, 100).await.unwrap()),
        [ME, BOB, EVE]
    );
    assert_eq!(
        names(mx.members(ROOM, Some("join"), 100).await.unwrap()),
        [ME]
    );
    assert_eq!(
        names(mx.members(ROOM, Some("ban"), 100).await.unwrap()),
        [EVE]
    );
    assert_eq!(mx.memberships_of(BOB, 10).await.unwrap().len(), 1);
    assert!(
        mx.invites(BOB, 10).await.unwrap().is_empty(),
        "the invite was accepted"
    );

    // Power levels: the latest event was redacted, which keeps users/users_default/ban/kick.
    let pl = mx
        .state(ROOM, "m.room.power_levels", "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pl.event_id, "$12");
    assert_eq!(pl.redacted_because.as_deref(), Some("$16"));
    assert_eq!(mx.power_level(ROOM, BOB).await.unwrap(), 50);
    assert_eq!(mx.power_level(ROOM, ME).await.unwrap(), 100);
    assert_eq!(mx.power_level(ROOM, EVE).await.unwrap(), 0);

    // The redacted topic keeps no content; the name is untouched.
    let topic = mx
        .state_content(ROOM, "m.room.topic", "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(topic, json!({}));
    let name = mx
        .state_content(ROOM, "m.room.name", "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(name, json!({"name": "Tresor dev"}));
    assert_eq!(
        mx.state_of_type(ROOM, "m.room.member", 100)
            .await
            .unwrap()
            .len(),
        3
    );
    // Message events are not state.
    assert_eq!(
        mx.state_of_type(ROOM, "m.room.message", 10)
            .await
            .unwrap()
            .len(),
        0
    );

    // Rooms by membership, by alias (canonical and alternative), by last event.
    assert_eq!(mx.rooms_by_membership("join", 10).await.unwrap().len(), 1);
    assert!(
        mx.rooms_by_membership("leave", 10)
            .await
            .unwrap()
            .is_empty()
    );
    for alias in ["#tresor:example.org", "#storage:example.org"] {
        assert_eq!(
            mx.room_by_alias(alias).await.unwrap().unwrap().room_id,
            ROOM
        );
    }
    assert!(
        mx.room_by_alias("#nope:example.org")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(mx.recent_rooms(10, None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn aliases_are_unique_across_rooms() {
    let store = memory_store().await;
    let mx = store.matrix(ME);
    mx.apply_all(ROOM, &history()[..6]).await.unwrap();
    let steal = MatrixEvent::new("$x", "m.room.canonical_alias", BOB, 5000)
        .with_state_key("")
        .with_content(json!({"alias": "#tresor:example.org"}));
    assert!(matches!(
        mx.apply("!other:example.org", &steal).await,
        Err(Error::UniqueViolation { .. })
    ));
    assert!(
        mx.room("!other:example.org").await.unwrap().is_none(),
        "nothing written"
    );

    let alias = RoomAlias {
        alias: "#a:example.org".into(),
        room_id: ROOM.into(),
        servers: vec!["example.org".into()],
    };
    mx.set_alias(&alias).await.unwrap();
    mx.set_alias(&alias).await.unwrap();
    let taken = RoomAlias {
        room_id: "!other:example.org".into(),
        ..alias.clone()
    };
    assert!(matches!(
        mx.set_alias(&taken).await,
        Err(Error::UniqueViolation { .. })
    ));
    assert_eq!(
        mx.resolve_alias("#a:example.org").await.unwrap(),
        Some(alias)
    );
    assert_eq!(mx.aliases_of(ROOM, 10).await.unwrap().len(), 1);
    assert!(mx.remove_alias("#a:example.org").await.unwrap());
    mx.set_alias(&taken).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_time_keys_are_claimed_exactly_once() {
    let store = memory_store().await;
    let mx = store.matrix(ME);
    let keys: Vec<OneTimeKey> = (0..50)
        .map(|i| OneTimeKey {
            user_id: BOB.into(),
            device_id: "BOBPHONE".into(),
            key_id: format!("signed_curve25519:AAAA{i:02}"),
            key: json!({"key": format!("k{i}")}).to_string(),
        })
        .chain(std::iter::once(OneTimeKey {
            user_id: BOB.into(),
            device_id: "BOBPHONE".into(),
            key_id: "curve25519:OTHER".into(),
            key: "\"x\"".into(),
        }))
        .collect();
    mx.add_one_time_keys(&keys).await.unwrap();
    assert_eq!(
        mx.count_one_time_keys(BOB, "BOBPHONE", "signed_curve25519", 100)
            .await
            .unwrap(),
        50
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(k) = store
                .matrix(ME)
                .claim_one_time_key(BOB, "BOBPHONE", "signed_curve25519")
                .await
                .unwrap()
            {
                got.push(k.key_id);
            }
            got
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    claimed.sort();
    let before = claimed.len();
    claimed.dedup();
    assert_eq!(before, 50, "every key claimed");
    assert_eq!(claimed.len(), 50, "no key claimed twice");
    assert_eq!(
        mx.count_one_time_keys(BOB, "BOBPHONE", "signed_curve25519", 100)
            .await
            .unwrap(),
        0
    );
    // The other algorithm is untouched.
    let other = mx
        .claim_one_time_key(BOB, "BOBPHONE", "curve25519")
        .await
        .unwrap();
    assert_eq!(other.unwrap().key_id, "curve25519:OTHER");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactions_start_once() {
    let store = memory_store().await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .matrix(ME)
                .begin_transaction("txn-1", ROOM, i)
                .await
                .unwrap()
                .1
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += u32::from(t.await.unwrap());
    }
    assert_eq!(created, 1);
    let mx = store.matrix(ME);
    assert_eq!(
        mx.transaction("txn-1").await.unwrap().unwrap().status,
        TxnStatus::Pending
    );
    let sent = TxnStatus::Sent {
        event_id: "$sent".into(),
    };
    mx.set_transaction_status("txn-1", sent.clone())
        .await
        .unwrap();
    let (t, created) = mx.begin_transaction("txn-1", ROOM, 99).await.unwrap();
    assert!(!created);
    assert_eq!(t.status, sent);
    assert!(
        mx.set_transaction_status("nope", TxnStatus::Pending)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn typing_expires_and_never_survives_a_restart_past_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    {
        let store = Tresor::create(&path, PASS.into()).await.unwrap();
        let mx = store.matrix(ME);
        mx.set_typing(ROOM, BOB, true, 30_000, 1_000).await.unwrap();
        mx.set_typing(ROOM, EVE, true, 5_000, 1_000).await.unwrap();
        mx.set_typing("!elsewhere:x", EVE, true, 5_000, 1_000)
            .await
            .unwrap();
        let mut now = mx.typing(ROOM, 1_000).await.unwrap();
        now.sort();
        assert_eq!(now, [BOB, EVE]);
        mx.set_typing(ROOM, BOB, false, 0, 2_000).await.unwrap();
        assert_eq!(mx.typing(ROOM, 2_000).await.unwrap(), [EVE]);
    }
    let store = Tresor::open(&path, PASS.into()).await.unwrap();
    let mx = store.matrix(ME);
    assert!(
        mx.typing(ROOM, 6_000).await.unwrap().is_empty(),
        "expired before the reopen"
    );
    assert_eq!(mx.sweep_typing(6_000).await.unwrap(), 2);
    assert_eq!(mx.sweep_typing(6_000).await.unwrap(), 0);
}

#[tokio::test]
async fn keys_receipts_presence_account_data() {
    let store = memory_store().await;
    let mx = store.matrix(ME);
    let dk = DeviceKeys {
        user_id: BOB.into(),
        device_id: "BOBPHONE".into(),
        algorithms: vec![
            "m.olm.v1.curve25519-aes-sha2".into(),
            "m.megolm.v1.aes-sha2".into(),
        ],
        keys: vec![(
            "curve25519:BOBPHONE".into(),
            "3C5BFWi2Y8MaVvjM8M22DBmh24PmgR0nPvJOIArzgyI".into(),
        )],
        signatures: json!({BOB: {"ed25519:BOBPHONE": "dSO80A01XiigH3uBiDVx"}}).to_string(),
        device_display_name: Some("Bob's phone".into()),
    };
    mx.set_device_keys(&dk).await.unwrap();
    mx.set_device_keys(&DeviceKeys {
        device_id: "BOBLAPTOP".into(),
        ..dk.clone()
    })
    .await
    .unwrap();
    assert_eq!(mx.device_keys(BOB, "BOBPHONE").await.unwrap(), Some(dk));
    assert_eq!(mx.devices_of(BOB, 10).await.unwrap().len(), 2);
    assert!(mx.remove_device_keys(BOB, "BOBLAPTOP").await.unwrap());
    assert_eq!(mx.devices_of(BOB, 10).await.unwrap().len(), 1);

    for (user, event) in [(BOB, "$5"), (EVE, "$5"), (ME, "$9")] {
        mx.set_receipt(&Receipt {
            room_id: ROOM.into(),
            user_id: user.into(),
            receipt_type: "m.read".into(),
            event_id: event.into(),
            ts: 10,
        })
        .await
        .unwrap();
    }
    assert_eq!(
        mx.receipts_for_event(ROOM, "$5", 10).await.unwrap().len(),
        2
    );
    // Bob reads further: his receipt moves.
    mx.set_receipt(&Receipt {
        room_id: ROOM.into(),
        user_id: BOB.into(),
        receipt_type: "m.read".into(),
        event_id: "$9".into(),
        ts: 20,
    })
    .await
    .unwrap();
    assert_eq!(
        mx.receipts_for_event(ROOM, "$5", 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        mx.receipts_for_event(ROOM, "$9", 10).await.unwrap().len(),
        2
    );
    assert_eq!(
        mx.receipt(ROOM, BOB, "m.read")
            .await
            .unwrap()
            .unwrap()
            .event_id,
        "$9"
    );

    let p = Presence {
        user_id: BOB.into(),
        presence: "online".into(),
        status_msg: Some("hacking".into()),
        currently_active: true,
        last_active_ts: 42,
    };
    mx.set_presence(&p).await.unwrap();
    assert_eq!(mx.presence(BOB).await.unwrap(), Some(p));

    mx.set_account_data(ME, "m.direct", &json!({BOB: [ROOM]}))
        .await
        .unwrap();
    mx.set_account_data(ME, "m.push_rules", &json!({"global": {}}))
        .await
        .unwrap();
    assert_eq!(
        mx.account_data(ME, "m.direct").await.unwrap(),
        Some(json!({BOB: [ROOM]}))
    );
    assert_eq!(mx.all_account_data(ME, 10).await.unwrap().len(), 2);
    assert!(mx.account_data(BOB, "m.direct").await.unwrap().is_none());
}
