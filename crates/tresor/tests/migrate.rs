//! Schema migrations from real old stores: `tests/fixtures/v1-chat.redb` was written by the v1
//! code (`crates/tresor-schema/migrations/NOTES.md`); today's code must migrate every record,
//! resume a migration interrupted by a crash, and refuse a store newer than itself.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tresor::{Backend, Error, Message, RedbBackend, Tresor};
use tresor_backend::{Durability, WriteBatch};

mod common;

use common::fixtures::{FIXTURE_PASS, open_failing_from};

/// A private copy of the v1 fixture (opening migrates it in place).
fn fixture_copy(dir: &Path) -> PathBuf {
    common::fixtures::fixture_copy(dir, 1)
}

async fn all_messages(store: &Tresor) -> Vec<Message> {
    common::fixtures::all_messages(store, 500).await
}

/// Every conversation record equals what its messages say.
async fn assert_conversations_match_messages(store: &Tresor) {
    let messages = all_messages(store).await;
    let mut expected: BTreeMap<&str, (BTreeSet<&str>, i64, i64)> = BTreeMap::new();
    for m in &messages {
        let e = expected
            .entry(&m.conversation_id)
            .or_insert((BTreeSet::new(), i64::MAX, i64::MIN));
        e.0.insert(&m.sender);
        if let Some(r) = &m.recipient {
            e.0.insert(r);
        }
        e.1 = e.1.min(m.timestamp_ms);
        e.2 = e.2.max(m.timestamp_ms);
    }
    let convs = store.conversations().recent(10_000, None).await.unwrap();
    assert_eq!(convs.len(), expected.len());
    assert!(
        convs
            .windows(2)
            .all(|w| w[0].last_activity_ms >= w[1].last_activity_ms)
    );
    for c in convs {
        let (participants, created, last) = &expected[c.id.as_str()];
        let got: BTreeSet<&str> = c.participants.iter().map(String::as_str).collect();
        assert_eq!(&got, participants, "{}", c.id);
        assert_eq!((c.created_ms, c.last_activity_ms), (*created, *last));
    }
}

#[tokio::test]
async fn a_v1_store_is_migrated_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path());
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.schema_version, tresor::SCHEMA_VERSION);
    assert_eq!(stats.conversations, 20);
    assert!(stats.messages > 100, "{}", stats.messages);
    assert_conversations_match_messages(&store).await;
    assert!(store.check().await.unwrap().is_clean());
    drop(store);
    // Reopening changes nothing.
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    let again = store.stats().await.unwrap();
    assert_eq!(
        (again.messages, again.conversations, again.schema_version),
        (stats.messages, stats.conversations, tresor::SCHEMA_VERSION)
    );
    assert_eq!(
        store.conversations().recent(100, None).await.unwrap().len(),
        20
    );
    assert!(Tresor::pending_migrations(tresor::SCHEMA_VERSION).is_empty());
    assert_eq!(Tresor::pending_migrations(1).len(), 4);
}

#[tokio::test]
async fn a_migration_interrupted_by_a_crash_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path());
    {
        // Every commit from the fourth on fails: three migration batches land.
        let (err, raw) = open_failing_from(&path, 3).await;
        assert!(matches!(err, Error::Backend(_)), "{err:?}");
        let version = raw.get("meta", b"schema_version").await.unwrap().unwrap();
        assert_eq!(version, 1u32.to_le_bytes(), "still v1");
        let cursor = raw.get("meta", b"migration_cursor").await.unwrap().unwrap();
        assert_eq!(cursor[..4], 2u32.to_le_bytes());
        assert!(
            raw.len("typed_records").await.unwrap() > 0,
            "some batches landed"
        );
    }
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    assert_eq!(
        store.stats().await.unwrap().schema_version,
        tresor::SCHEMA_VERSION
    );
    assert_conversations_match_messages(&store).await;
}

#[tokio::test]
async fn a_store_newer_than_the_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path());
    {
        let raw = RedbBackend::open_existing(&path).unwrap();
        let mut batch = WriteBatch::new();
        let newer = tresor::SCHEMA_VERSION + 1;
        batch.put("meta", "schema_version", newer.to_le_bytes().to_vec());
        raw.commit(batch, Durability::Immediate).await.unwrap();
    }
    let err = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap_err();
    assert!(matches!(
        err,
        Error::UnsupportedVersion { found, supported }
            if found == tresor::SCHEMA_VERSION + 1 && supported == tresor::SCHEMA_VERSION
    ));
}
