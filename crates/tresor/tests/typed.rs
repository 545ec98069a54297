//! Typed tables: get/put/delete, unique and multi-entry indexes, scans with order, limit and
//! cursor, atomicity, key rotation, backup, and the conversation family kept by message writes.
#![allow(clippy::unwrap_used)]

mod common;

use serde::{Deserialize, Serialize};
use tresor::typed::{IndexDef, KeyPart, TableDef};
use tresor::{Error, Order};

use common::{memory_store, msg};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Contact {
    peer: String,
    name: String,
    aliases: Vec<String>,
    group: String,
    seen_ms: i64,
}

static CONTACTS: TableDef<Contact> = TableDef {
    name: "contacts",
    primary_key: |c| c.peer.as_bytes().to_vec(),
    indexes: &[
        IndexDef {
            name: "alias",
            unique: true,
            keys: |c| c.aliases.iter().map(|a| vec![KeyPart::id(a)]).collect(),
        },
        IndexDef {
            name: "group_seen",
            unique: false,
            keys: |c| vec![vec![KeyPart::id(&c.group), KeyPart::I64(c.seen_ms)]],
        },
    ],
};

fn contact(peer: &str, aliases: &[&str], group: &str, seen_ms: i64) -> Contact {
    Contact {
        peer: peer.into(),
        name: peer.to_uppercase(),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        group: group.into(),
        seen_ms,
    }
}

async fn by(t: tresor::Table<'_, Contact>, alias: &str) -> Vec<Contact> {
    t.scan("alias", &[KeyPart::id(alias)], Order::Ascending, 10, None)
        .await
        .unwrap()
}

fn peers(cs: &[Contact]) -> Vec<&str> {
    cs.iter().map(|c| c.peer.as_str()).collect()
}

#[tokio::test]
async fn get_put_delete_and_index_maintenance() {
    let store = memory_store().await;
    let t = store.table(&CONTACTS);
    assert_eq!(t.get("alice").await.unwrap(), None);
    let a = contact("alice", &["al", "ally"], "work", 10);
    t.put(&a).await.unwrap();
    assert_eq!(t.get("alice").await.unwrap(), Some(a.clone()));
    assert_eq!(peers(&by(t, "ally").await), vec!["alice"]);
    // An update drops the entries the new value no longer has.
    let a2 = contact("alice", &["al"], "home", 20);
    t.put(&a2).await.unwrap();
    assert!(by(t, "ally").await.is_empty());
    assert_eq!(peers(&by(t, "al").await), vec!["alice"]);
    let work = t
        .scan(
            "group_seen",
            &[KeyPart::id("work")],
            Order::Ascending,
            10,
            None,
        )
        .await
        .unwrap();
    assert!(work.is_empty());
    assert!(t.delete("alice").await.unwrap());
    assert!(!t.delete("alice").await.unwrap());
    assert_eq!(t.get("alice").await.unwrap(), None);
    assert!(by(t, "al").await.is_empty());
    assert!(t.list(10, None).await.unwrap().is_empty());
    assert!(matches!(
        t.scan("nope", &[], Order::Ascending, 1, None).await,
        Err(Error::UnknownIndex(_))
    ));
}

#[tokio::test]
async fn unique_violations_are_typed_and_write_nothing() {
    let store = memory_store().await;
    let t = store.table(&CONTACTS);
    t.put(&contact("alice", &["al"], "g", 1)).await.unwrap();
    let err = t
        .put_many(&[
            contact("bob", &["bobby"], "g", 2),
            contact("carol", &["caz", "al"], "g", 3),
        ])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::UniqueViolation {
            table: "contacts",
            index: "alias"
        }
    ));
    assert_eq!(
        t.get("bob").await.unwrap(),
        None,
        "the whole batch is refused"
    );
    assert_eq!(t.get("carol").await.unwrap(), None);
    // Within one batch too.
    assert!(matches!(
        t.put_many(&[contact("d", &["x"], "g", 1), contact("e", &["x"], "g", 1)])
            .await,
        Err(Error::UniqueViolation { .. })
    ));
    // A record keeps its own unique entries; freeing one lets another take it.
    t.put(&contact("alice", &["al", "al2"], "g", 5))
        .await
        .unwrap();
    t.put(&contact("alice", &["al2"], "g", 5)).await.unwrap();
    t.put(&contact("bob", &["al"], "g", 5)).await.unwrap();
    assert_eq!(store.stats().await.unwrap().messages, 0);
}

#[tokio::test]
async fn scans_have_order_limit_and_cursor() {
    let store = memory_store().await;
    let t = store.table(&CONTACTS);
    let mut all = Vec::new();
    for i in 0..25 {
        let group = if i % 2 == 0 { "even" } else { "odd" };
        all.push(contact(&format!("p{i:02}"), &[], group, -5 + i));
    }
    t.put_many(&all).await.unwrap();
    let newest = t
        .scan(
            "group_seen",
            &[KeyPart::id("even")],
            Order::Descending,
            3,
            None,
        )
        .await
        .unwrap();
    assert_eq!(peers(&newest), vec!["p24", "p22", "p20"]);
    // Walking pages returns every record once, in order, in both directions.
    for order in [Order::Ascending, Order::Descending] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = t
                .scan(
                    "group_seen",
                    &[KeyPart::id("odd")],
                    order,
                    4,
                    after.as_deref().map(str::as_bytes),
                )
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = Some(page.last().unwrap().peer.clone());
            seen.extend(page.into_iter().map(|c| c.seen_ms));
        }
        let mut expected: Vec<i64> = (0..25).filter(|i| i % 2 == 1).map(|i| -5 + i).collect();
        if order == Order::Descending {
            expected.reverse();
        }
        assert_eq!(seen, expected);
    }
    // A range on the trailing part: the odd group's entries at exactly seen = 0.
    let at_zero = t
        .scan(
            "group_seen",
            &[KeyPart::id("odd"), KeyPart::I64(0)],
            Order::Ascending,
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(peers(&at_zero), vec!["p05"]);
    assert!(matches!(
        t.scan("group_seen", &[], Order::Ascending, 1, Some(b"nobody"))
            .await,
        Err(Error::CursorNotFound)
    ));
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = t
            .list(7, after.as_deref().map(str::as_bytes))
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.peer.clone());
        listed.extend(page);
    }
    assert_eq!(listed.len(), 25);
}

#[tokio::test]
async fn typed_records_survive_key_rotation_and_backup() {
    let store = memory_store().await;
    let t = store.table(&CONTACTS);
    for i in 0..40 {
        t.put(&contact(&format!("p{i}"), &[&format!("a{i}")], "g", i))
            .await
            .unwrap();
    }
    // Begin a rotation, then use the table mid-way: typed tables are migrated first.
    assert!(store.begin_rotation().await.unwrap());
    store.rotation_step(5).await.unwrap();
    t.put(&contact("new", &["fresh"], "g", 100)).await.unwrap();
    assert_eq!(t.get("p3").await.unwrap().unwrap().seen_ms, 3);
    store.rotate_key().await.unwrap();
    assert_eq!(t.list(100, None).await.unwrap().len(), 41);
    let found = t
        .scan("alias", &[KeyPart::id("a7")], Order::Ascending, 5, None)
        .await
        .unwrap();
    assert_eq!(peers(&found), vec!["p7"]);
    let newest = t
        .scan(
            "group_seen",
            &[KeyPart::id("g")],
            Order::Descending,
            2,
            None,
        )
        .await
        .unwrap();
    assert_eq!(peers(&newest), vec!["new", "p39"]);
    assert!(store.check().await.unwrap().is_clean());

    let dir = tempfile::tempdir().unwrap();
    let file = store.backup_to_dir(dir.path()).await.unwrap();
    let (restored, _) = tresor::restore_backup(
        &file.path,
        dir.path().join("restored.redb"),
        common::PASS.into(),
    )
    .await
    .unwrap();
    let rt = restored.table(&CONTACTS);
    assert_eq!(rt.list(100, None).await.unwrap().len(), 41);
    assert_eq!(rt.get("p9").await.unwrap(), t.get("p9").await.unwrap());
}

#[tokio::test]
async fn message_writes_keep_conversations_up_to_date() {
    let store = memory_store().await;
    let m = store.messages();
    m.save_batch(&[
        msg("1", "c1", "alice", Some("bob"), 100, "hi"),
        msg("2", "c2", "carol", Some("dave"), 50, "yo"),
        msg("3", "c1", "bob", Some("alice"), 150, "hey"),
    ])
    .await
    .unwrap();
    let convs = store.conversations();
    let c1 = convs.get("c1").await.unwrap().unwrap();
    assert_eq!(c1.participants, vec!["alice", "bob"]);
    assert_eq!((c1.created_ms, c1.last_activity_ms), (100, 150));
    assert_eq!(c1.kind, tresor::ConversationKind::Direct);
    let ids = |cs: Vec<tresor::Conversation>| cs.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(convs.recent(10, None).await.unwrap()), vec!["c1", "c2"]);
    m.save(&msg("4", "c2", "erin", None, 200, "group now"))
        .await
        .unwrap();
    let c2 = convs.get("c2").await.unwrap().unwrap();
    assert_eq!(c2.kind, tresor::ConversationKind::Group);
    assert_eq!(ids(convs.recent(10, None).await.unwrap()), vec!["c2", "c1"]);
    assert_eq!(ids(convs.recent(10, Some("c2")).await.unwrap()), vec!["c1"]);
    // An application-set title survives later messages.
    let mut titled = c2.clone();
    titled.title = Some("Friends".into());
    convs.save(&titled).await.unwrap();
    m.save(&msg("5", "c2", "dave", None, 300, "again"))
        .await
        .unwrap();
    let c2 = convs.get("c2").await.unwrap().unwrap();
    assert_eq!(c2.title.as_deref(), Some("Friends"));
    assert_eq!(c2.last_activity_ms, 300);
}

#[tokio::test]
async fn the_record_cache_counts_hits_and_is_invalidated_by_writes() {
    let store = memory_store().await;
    let t = store.table(&CONTACTS);
    t.put(&contact("alice", &["al"], "g", 1)).await.unwrap();
    let s0 = store.stats().await.unwrap();
    assert_eq!(t.get("alice").await.unwrap().unwrap().seen_ms, 1); // miss, then cached
    assert_eq!(t.get("alice").await.unwrap().unwrap().seen_ms, 1); // hit
    let s1 = store.stats().await.unwrap();
    assert_eq!(s1.cache_misses - s0.cache_misses, 1);
    assert_eq!(s1.cache_hits - s0.cache_hits, 1);
    assert!(s1.cache_bytes > 0);
    // A write invalidates: the next read sees the new value.
    t.put(&contact("alice", &["al"], "g", 2)).await.unwrap();
    assert_eq!(t.get("alice").await.unwrap().unwrap().seen_ms, 2);
    let scanned = t
        .scan(
            "group_seen",
            &[KeyPart::id("g")],
            Order::Descending,
            5,
            None,
        )
        .await
        .unwrap();
    assert_eq!(scanned[0].seen_ms, 2);
    assert!(
        store.stats().await.unwrap().cache_hits > s1.cache_hits,
        "the scan hit"
    );
    t.delete("alice").await.unwrap();
    assert_eq!(t.get("alice").await.unwrap(), None);
    // A rotation moves every record: nothing stale is served afterwards.
    t.put(&contact("bob", &["b"], "g", 3)).await.unwrap();
    assert_eq!(t.get("bob").await.unwrap().unwrap().seen_ms, 3);
    store.rotate_key().await.unwrap();
    t.put(&contact("bob", &["b"], "g", 4)).await.unwrap();
    assert_eq!(t.get("bob").await.unwrap().unwrap().seen_ms, 4);
    // Turned off: no hits.
    let off = tresor::Tresor::with_backend(
        tresor::MemoryBackend::new(),
        common::PASS.into(),
        tresor::Options::default().with_cache_bytes(0),
    )
    .await
    .unwrap();
    let t = off.table(&CONTACTS);
    t.put(&contact("c", &[], "g", 1)).await.unwrap();
    t.get("c").await.unwrap();
    t.get("c").await.unwrap();
    assert_eq!(off.stats().await.unwrap().cache_hits, 0);
}
