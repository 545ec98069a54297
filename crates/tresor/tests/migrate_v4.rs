//! The v3 → v4 migration from a real v3 store: `tests/fixtures/v3-chat.redb` was written by
//! the v3 code (`crates/tresor-schema/migrations/NOTES.md`); opening it with today's code must
//! move every message record to its record key (conversation token ‖ order key), build
//! `message_ids`, empty `msg_by_conversation`, keep every message, state and typed record, and
//! resume after a crash.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tresor::{Backend, DeliveryStatus, Error, Message, RedbBackend, SCHEMA_VERSION, Tresor};
use tresor_backend::{Direction, KeyRange};

mod common;

use common::fixtures::{FIXTURE_PASS, open_failing_from};

fn fixture_copy(dir: &Path) -> PathBuf {
    common::fixtures::fixture_copy(dir, 3)
}

/// Key lengths of every entry of `table`, and the number of entries.
async fn key_lengths(b: &RedbBackend, table: &str) -> (BTreeSet<usize>, usize) {
    let all = b
        .scan(table, KeyRange::all(), Direction::Forward, 1_000_000)
        .await
        .unwrap();
    (all.iter().map(|(k, _)| k.len()).collect(), all.len())
}

async fn all_messages(store: &Tresor) -> Vec<Message> {
    common::fixtures::all_messages(store, 100).await
}

/// Every message is found by id, by its conversation (in the same order as the time walk)
/// and by the storage-order scan, exactly once each.
async fn assert_every_message_is_reachable(store: &Tresor, want: usize) -> Vec<Message> {
    let messages = all_messages(store).await;
    assert_eq!(messages.len(), want);
    let mut conversations = BTreeSet::new();
    for m in &messages {
        assert_eq!(store.messages().get(&m.id).await.unwrap().as_ref(), Some(m));
        conversations.insert(m.conversation_id.clone());
    }
    let mut via_conversations = 0;
    for c in &conversations {
        let page = store
            .messages()
            .by_conversation(c, 10_000, None)
            .await
            .unwrap();
        let expected: Vec<&Message> = messages
            .iter()
            .filter(|m| &m.conversation_id == c)
            .collect();
        assert_eq!(page.iter().collect::<Vec<_>>(), expected, "{c}");
        via_conversations += page.len();
    }
    assert_eq!(via_conversations, want);
    let mut scanned = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.messages().scan(7, after.as_deref()).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for m in page {
            assert!(scanned.insert(m.id), "scanned twice");
        }
    }
    assert_eq!(scanned.len(), want);
    messages
}

#[tokio::test]
async fn a_v3_store_is_migrated_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path());
    assert_eq!(Tresor::schema_version_at(&path).await.unwrap(), 3);
    let before = {
        let raw = RedbBackend::open_existing(&path).unwrap();
        let (lengths, n) = key_lengths(&raw, "messages").await;
        assert_eq!(
            lengths,
            BTreeSet::from([16]),
            "v3 records are keyed by token"
        );
        assert_eq!(key_lengths(&raw, "msg_by_conversation").await.1, n);
        n
    };
    assert!(before > 100, "{before}");

    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.schema_version, SCHEMA_VERSION);
    assert_eq!((stats.messages, stats.conversations), (before as u64, 20));
    let messages = assert_every_message_is_reachable(&store, before).await;
    // The states the v3 code wrote (a status, an edit, a redaction) are all still there.
    let mut read = 0;
    let mut edited = 0;
    let mut redacted = 0;
    for m in &messages {
        let s = store.messages().state(&m.id).await.unwrap().unwrap();
        read += usize::from(s.status == DeliveryStatus::Read);
        edited += usize::from(!s.edits.is_empty());
        redacted += usize::from(s.redaction.is_some());
    }
    assert_eq!((read, edited, redacted), (1, 1, 1));
    assert_eq!(
        store
            .contacts()
            .get("fixture-peer")
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "Fixture Peer"
    );
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{:?}", report.issues);

    // Writes work on migrated messages: a moved timestamp moves the record, a delete removes
    // it, a new message is found.
    let mut moved = messages[3].clone();
    moved.timestamp_ms -= 86_400_000;
    store.messages().save(&moved).await.unwrap();
    assert!(store.messages().delete(&messages[5].id).await.unwrap());
    let new = Message::new("new", &messages[0].conversation_id, "me", None, 1, "hello");
    store.messages().save(&new).await.unwrap();
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{:?}", report.issues);
    assert_every_message_is_reachable(&store, before).await;
    drop(store);

    let raw = RedbBackend::open_existing(&path).unwrap();
    let (lengths, n) = key_lengths(&raw, "messages").await;
    assert_eq!(
        lengths,
        BTreeSet::from([32]),
        "v4 records are keyed by record key"
    );
    assert_eq!(n, before);
    assert_eq!(key_lengths(&raw, "msg_by_conversation").await.1, 0);
    assert_eq!(key_lengths(&raw, "message_ids").await.1, before);
    assert_eq!(raw.get("meta", b"migration_cursor").await.unwrap(), None);
    drop(raw);
    // Reopening migrates nothing more.
    assert!(Tresor::pending_migrations(SCHEMA_VERSION).is_empty());
    assert_eq!(Tresor::pending_migrations(3).len(), 2);
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().schema_version, SCHEMA_VERSION);
}

#[tokio::test]
async fn an_interrupted_v4_step_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path());
    let total = {
        let raw = RedbBackend::open_existing(&path).unwrap();
        key_lengths(&raw, "messages").await.1
    };
    {
        // Every commit from the fourth on fails: three batches of 16 entries land.
        let (err, raw) = open_failing_from(&path, 3).await;
        assert!(matches!(err, Error::Backend(_)), "{err:?}");
        let version = raw.get("meta", b"schema_version").await.unwrap().unwrap();
        assert_eq!(version, 3u32.to_le_bytes(), "still v3");
        let cursor = raw.get("meta", b"migration_cursor").await.unwrap().unwrap();
        assert_eq!(cursor[..4], 4u32.to_le_bytes());
        // Half-way: both layouts side by side, nothing lost.
        let (lengths, n) = key_lengths(&raw, "messages").await;
        assert_eq!(lengths, BTreeSet::from([16, 32]), "some batches landed");
        assert_eq!(n, total);
    }
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().schema_version, SCHEMA_VERSION);
    assert_every_message_is_reachable(&store, total).await;
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{:?}", report.issues);
}

#[tokio::test]
async fn a_migrated_store_rotates_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path());
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    let total = store.stats().await.unwrap().messages as usize;
    let summary = store.rotate_key().await.unwrap();
    assert!(summary.migrated as usize >= total, "{summary:?}");
    assert_every_message_is_reachable(&store, total).await;
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{:?}", report.issues);
}
