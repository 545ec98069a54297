//! The v2 → v3 migration from a real v2 store: `tests/fixtures/v2-chat.redb` was written by
//! the v2 code (`crates/tresor-schema/migrations/NOTES.md`); opening it with today's code must
//! give every message its extended state, keep every other record, and resume after a crash.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use tresor::{Backend, DeliveryStatus, Error, Message, RedbBackend, SCHEMA_VERSION, Tresor};

mod common;

use common::fixtures::{FIXTURE_PASS, fixture_copy, open_failing_from};

async fn all_messages(store: &Tresor) -> Vec<Message> {
    common::fixtures::all_messages(store, 500).await
}

/// Every message has its state record: the `by_status` index (which only state records
/// feed) lists every message of every conversation, as `Delivered`, in the same order as the
/// conversation index.
async fn assert_every_message_has_a_state(store: &Tresor) -> usize {
    let messages = all_messages(store).await;
    let mut by_conversation: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in &messages {
        by_conversation
            .entry(&m.conversation_id)
            .or_default()
            .push(&m.id);
    }
    for (conversation, ids) in &by_conversation {
        let listed = store
            .messages()
            .by_status(conversation, DeliveryStatus::Delivered, 10_000, None)
            .await
            .unwrap();
        let listed: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(&listed, ids, "{conversation}");
        assert_eq!(store.conversations().unread(conversation).await.unwrap(), 0);
    }
    messages.len()
}

#[tokio::test]
async fn a_v2_store_is_migrated_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path(), 2);
    assert_eq!(Tresor::schema_version_at(&path).await.unwrap(), 2);
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.schema_version, SCHEMA_VERSION);
    assert_eq!(stats.conversations, 20);
    let n = assert_every_message_has_a_state(&store).await;
    assert_eq!(n as u64, stats.messages);
    assert!(n > 100, "{n}");
    // The v2 typed records are all still there.
    assert_eq!(
        store.conversations().recent(100, None).await.unwrap().len(),
        20
    );
    let contact = store.contacts().get("fixture-peer").await.unwrap().unwrap();
    assert_eq!(contact.display_name, "Fixture Peer");
    assert_eq!(
        store
            .key_values()
            .get("fixture-setting")
            .await
            .unwrap()
            .as_deref(),
        Some(b"fixture value".as_slice())
    );
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{:?}", report.issues);
    // States are sparse: the migration wrote no state record (20 conversations, a contact
    // and a key-value entry remain the typed records).
    assert!(report.typed_records < 30, "{}", report.typed_records);
    // The new operations work on migrated messages.
    let any = all_messages(&store).await.remove(0);
    assert!(
        store
            .messages()
            .set_status(&any.id, DeliveryStatus::Read)
            .await
            .unwrap()
    );
    drop(store);
    // Reopening migrates nothing more.
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().schema_version, SCHEMA_VERSION);
    assert_eq!(
        store
            .messages()
            .state(&any.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        DeliveryStatus::Read
    );
    assert!(Tresor::pending_migrations(SCHEMA_VERSION).is_empty());
    assert_eq!(Tresor::pending_migrations(2).len(), 3);
    assert_eq!(Tresor::pending_migrations(1).len(), 4);
}

#[tokio::test]
async fn a_v1_store_goes_through_both_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path(), 1);
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().schema_version, SCHEMA_VERSION);
    assert_every_message_has_a_state(&store).await;
    assert!(store.check().await.unwrap().is_clean());
}

#[tokio::test]
async fn a_failed_v3_step_leaves_v2_and_a_stale_cursor_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path(), 2);
    {
        // The step's one commit fails: the store stays v2, nothing written.
        let (err, raw) = open_failing_from(&path, 0).await;
        assert!(matches!(err, Error::Backend(_)), "{err:?}");
        let version = raw.get("meta", b"schema_version").await.unwrap().unwrap();
        assert_eq!(version, 2u32.to_le_bytes(), "still v2");
        // A cursor as the first v3 code left it when interrupted mid-pass.
        let mut batch = tresor_backend::WriteBatch::new();
        let mut cursor = 3u32.to_le_bytes().to_vec();
        cursor.extend_from_slice(&[0x80; 16]);
        batch.put("meta", b"migration_cursor".to_vec(), cursor);
        raw.commit(batch, tresor::Durability::Immediate)
            .await
            .unwrap();
    }
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().schema_version, SCHEMA_VERSION);
    assert_every_message_has_a_state(&store).await;
    assert!(store.check().await.unwrap().is_clean());
    drop(store);
    let raw = RedbBackend::open_existing(&path).unwrap();
    assert_eq!(raw.get("meta", b"migration_cursor").await.unwrap(), None);
}
