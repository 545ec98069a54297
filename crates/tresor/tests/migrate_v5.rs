//! The v4 → v5 migration from a real v4 store: `tests/fixtures/v4-chat.redb` was written by
//! the v4 code (`crates/tresor-schema/migrations/NOTES.md`). Opening it with today's code must
//! write version 5 and nothing else; the v4 records (format 1) must read as before, and every
//! record written afterwards (a save, a key rotation) must be in the compact format 3.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use tresor::{Backend, Message, RedbBackend, SCHEMA_VERSION, Tresor};
use tresor_backend::{Direction, KeyRange};
use tresor_crypto::{KeyHeader, StoreKeys};
use tresor_schema::catalog::{MESSAGES, META, meta_keys};
use tresor_schema::{codec, sealed};

mod common;

use common::fixtures::{FIXTURE_PASS, fixture_copy};

/// The store's keys, unlocked from its key header.
async fn keys_of(b: &RedbBackend) -> StoreKeys {
    let header = b
        .get(META, meta_keys::KEY_HEADER.as_bytes())
        .await
        .unwrap()
        .unwrap();
    KeyHeader::decode(&header)
        .unwrap()
        .unlock(&FIXTURE_PASS.into())
        .unwrap()
        .store_keys()
}

/// The record format (first plaintext byte) of every message record, by record key; and every
/// entry of the store other than the `meta` table's, sealed values as stored.
async fn formats_and_entries(
    path: &Path,
) -> (BTreeMap<Vec<u8>, u8>, BTreeMap<(String, Vec<u8>), Vec<u8>>) {
    let raw = RedbBackend::open_existing(path).unwrap();
    let keys = keys_of(&raw).await;
    let mut formats = BTreeMap::new();
    let mut entries = BTreeMap::new();
    for table in raw.tables().await.unwrap() {
        if table == META {
            continue;
        }
        for (k, v) in raw
            .scan(&table, KeyRange::all(), Direction::Forward, usize::MAX)
            .await
            .unwrap()
        {
            if table == MESSAGES {
                let plain = sealed::open_bytes(&keys, MESSAGES, &k, &v).unwrap();
                codec::decode_message(&plain).unwrap();
                formats.insert(k.clone(), plain[0]);
            }
            entries.insert((table.clone(), k), v);
        }
    }
    (formats, entries)
}

#[tokio::test]
async fn a_v4_store_is_migrated_at_open_without_rewriting_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path(), 4);
    assert_eq!(Tresor::schema_version_at(&path).await.unwrap(), 4);
    let (formats, before) = formats_and_entries(&path).await;
    assert!(formats.len() > 100, "{}", formats.len());
    assert!(
        formats.values().all(|&f| f == codec::RECORD_FORMAT),
        "the v4 code wrote format 1"
    );
    let expected = {
        // What the v4 records say, read with the v4 decoder (format 1 is bincode).
        let raw = RedbBackend::open_existing(&path).unwrap();
        let keys = keys_of(&raw).await;
        let mut out: Vec<Message> = Vec::new();
        for (k, v) in raw
            .scan(MESSAGES, KeyRange::all(), Direction::Forward, usize::MAX)
            .await
            .unwrap()
        {
            out.push(codec::decode(&sealed::open_bytes(&keys, MESSAGES, &k, &v).unwrap()).unwrap());
        }
        out
    };

    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    assert_eq!(SCHEMA_VERSION, 5);
    assert_eq!(store.stats().await.unwrap().schema_version, 5);
    for m in &expected {
        assert_eq!(store.messages().get(&m.id).await.unwrap().as_ref(), Some(m));
    }
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{:?}", report.issues);
    drop(store);
    // The step wrote the version and nothing else.
    let (formats_after, after) = formats_and_entries(&path).await;
    assert_eq!(after, before, "no entry outside `meta` changed");
    assert_eq!(formats_after, formats);
    let raw = RedbBackend::open_existing(&path).unwrap();
    assert_eq!(
        raw.get(META, meta_keys::SCHEMA_VERSION.as_bytes())
            .await
            .unwrap()
            .unwrap(),
        5u32.to_le_bytes()
    );
    assert_eq!(raw.get(META, b"migration_cursor").await.unwrap(), None);
    drop(raw);
    assert!(Tresor::pending_migrations(SCHEMA_VERSION).is_empty());
    assert_eq!(Tresor::pending_migrations(4).len(), 1);

    // New and changed records are written in format 3, old ones keep format 1, and all read.
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    let mut edited = expected[7].clone();
    edited.body.push_str(" (edited)");
    store.messages().save(&edited).await.unwrap();
    let new = Message::new(
        "0b5b7c1e-2f4a-4c0e-9a51-8d2f3e4c5b6a:1",
        &expected[0].conversation_id,
        "me",
        None,
        1_700_000_000_000,
        "hello",
    );
    store.messages().save(&new).await.unwrap();
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{:?}", report.issues);
    let read = store.messages().get(&new.id).await.unwrap().unwrap();
    assert!(read.same_content(&new));
    let read = store.messages().get(&edited.id).await.unwrap().unwrap();
    assert!(read.same_content(&edited));
    drop(store);
    let (formats, _) = formats_and_entries(&path).await;
    let count = |f: u8| formats.values().filter(|&&x| x == f).count();
    assert_eq!(count(3), 2, "the edited and the new message");
    assert_eq!(count(1), expected.len() - 1);

    // A key rotation re-seals every record: all in format 3 afterwards.
    let store = Tresor::open(&path, FIXTURE_PASS.into()).await.unwrap();
    store.rotate_key().await.unwrap();
    for m in expected.iter().filter(|m| m.id != edited.id) {
        assert_eq!(store.messages().get(&m.id).await.unwrap().as_ref(), Some(m));
    }
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{:?}", report.issues);
    drop(store);
    let (formats, _) = formats_and_entries(&path).await;
    assert_eq!(formats.len(), expected.len() + 1);
    assert!(
        formats.values().all(|&f| f == 3),
        "rotation rewrites in format 3"
    );
}
