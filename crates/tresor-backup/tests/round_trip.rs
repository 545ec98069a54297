//! create → verify → restore round trips, the documented layout, and create's own checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use tresor_backend::{Backend, Durability, MemoryBackend, WriteBatch};
use tresor_backup::{BackupError, BackupSummary, create, restore, verify};
use tresor_crypto::{KeyHeader, TOKEN_LEN};
use tresor_schema::catalog::{self, MESSAGES, META, TABLES, TableKind};
use tresor_schema::codec;
use tresor_schema::messages::{RECORD_KEY_LEN, message_token, open_message, record_key, tokens};
use tresor_schema::version::SCHEMA_VERSION;

fn assert_counts(summary: &BackupSummary, dump: &Dump) {
    let total: usize = dump.values().map(Vec::len).sum();
    assert_eq!(summary.entries, total as u64);
    assert_eq!(summary.tables.len(), TABLES.len());
    for (spec, (name, count)) in TABLES.iter().zip(&summary.tables) {
        assert_eq!(name, spec.name);
        assert_eq!(*count, dump[spec.name].len() as u64, "{name}");
        assert_eq!(summary.table_entries(name), *count);
    }
}

#[tokio::test]
async fn round_trip_with_real_kdf_and_passphrase_alone() {
    let k = owasp_keys();
    let source = build_store(&k, 12, 40).await;
    let mut file = Vec::new();
    let created = create(&source, &k.keys, &k.key_header, 1_234, &mut file)
        .await
        .unwrap();
    assert_eq!(created.bytes, file.len() as u64);
    assert_eq!(created.created_ms, 1_234);
    assert_eq!(created.schema_version, SCHEMA_VERSION);
    let source_dump = dump(&source, &k.keys).await;
    assert_counts(&created, &source_dump);
    assert_eq!(created.table_entries(MESSAGES), 12);
    assert_eq!(created.table_entries(META), 3);
    assert_eq!(created.table_entries("nope"), 0);

    let verified = verify(file.as_slice(), &passphrase()).unwrap();
    assert_eq!(verified, created);

    let target = MemoryBackend::new();
    let restored = restore(file.as_slice(), &passphrase(), &target)
        .await
        .unwrap();
    assert_eq!(restored, created);

    // A new device knows only the passphrase: the key header comes from the restored store.
    let key_header = target
        .get(META, catalog::meta_keys::KEY_HEADER.as_bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key_header, k.key_header);
    let keys = KeyHeader::decode(&key_header)
        .unwrap()
        .unlock(&passphrase())
        .unwrap()
        .store_keys();
    // Schema v4: message token → record key (message_ids) → record, sealed under that key.
    let token = message_token(&keys, "msg-3");
    let rk = target
        .get(catalog::MESSAGE_IDS, &token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rk.len(), RECORD_KEY_LEN);
    let stored = target.get(MESSAGES, &rk).await.unwrap().unwrap();
    let m = open_message(&keys, &rk, &stored).unwrap();
    assert!(m.same_content(&message(3, 40)));
    assert_eq!(m.seq, 4);
    assert_eq!(rk, record_key(&m, &tokens(&keys, &m)));
    assert!(target.get(MESSAGES, &token).await.unwrap().is_none());

    // Every table holds the same entries; sealed records were re-sealed with fresh nonces.
    assert_eq!(dump(&target, &keys).await, source_dump);
    for spec in TABLES {
        assert_eq!(
            target.len(spec.name).await.unwrap(),
            source.len(spec.name).await.unwrap()
        );
        let before = raw_table(&source, spec.name).await;
        let after = raw_table(&target, spec.name).await;
        for ((k1, v1), (k2, v2)) in before.iter().zip(&after) {
            assert_eq!(k1, k2);
            if spec.kind == TableKind::Sealed {
                assert_ne!(v1, v2, "{} value was not re-sealed", spec.name);
            } else {
                assert_eq!(v1, v2);
            }
        }
    }
}

#[tokio::test]
async fn many_small_chunks_round_trip() {
    let k = cheap_keys();
    let source = build_store(&k, 40, 30).await;
    let file = backup(&source, &k, 200).await;
    let layout = Layout::parse(&file);
    assert!(layout.chunks.len() > 10, "{} chunks", layout.chunks.len());
    let verified = verify(file.as_slice(), &passphrase()).unwrap();
    let target = MemoryBackend::new();
    let restored = restore(file.as_slice(), &passphrase(), &target)
        .await
        .unwrap();
    assert_eq!(verified, restored);
    let source_dump = dump(&source, &k.keys).await;
    assert_eq!(dump(&target, &k.keys).await, source_dump);
    assert_counts(&restored, &source_dump);
}

#[tokio::test]
async fn default_chunk_size_streams_more_than_a_page_per_table() {
    // 1,500 messages of ~1 KiB: more than one scan page (1,024) per table and ~2 MiB of
    // plaintext, hence several 1 MiB data chunks.
    let k = cheap_keys();
    let source = build_store(&k, 1_500, 1_000).await;
    let mut file = Vec::new();
    let summary = create(&source, &k.keys, &k.key_header, 0, &mut file)
        .await
        .unwrap();
    assert_eq!(summary.table_entries(MESSAGES), 1_500);
    let layout = Layout::parse(&file);
    let data_chunks = layout.chunks.len() - 1;
    assert!((2..=4).contains(&data_chunks), "{data_chunks} data chunks");
    for c in &layout.chunks[..data_chunks] {
        let plain = c.len() - 4 - 28;
        assert!(plain <= 1024 * 1024 + 2_000, "chunk of {plain} bytes");
    }
    let target = MemoryBackend::new();
    restore(file.as_slice(), &passphrase(), &target)
        .await
        .unwrap();
    assert_eq!(dump(&target, &k.keys).await, dump(&source, &k.keys).await);
}

/// Decodes a backup with an independent implementation of FORMAT.md.
#[tokio::test]
async fn layout_matches_the_documented_format() {
    let k = cheap_keys();
    let source = build_store(&k, 6, 10).await;
    let file = backup(&source, &k, 300).await;
    let layout = Layout::parse(&file);

    let h = &layout.header;
    assert_eq!(&h[..8], b"TRESORBK");
    assert_eq!(h[8], 1);
    assert_eq!(
        i64::from_le_bytes(h[25..33].try_into().unwrap()),
        1_700_000_000_123
    );
    assert_eq!(
        u32::from_le_bytes(h[33..37].try_into().unwrap()),
        SCHEMA_VERSION
    );
    assert_eq!(u16::from_le_bytes(h[37..39].try_into().unwrap()), 90);
    assert_eq!(&h[39..], k.key_header.as_slice());
    assert_eq!(h.len(), 129);

    let mut entries = Vec::new();
    let n = layout.chunks.len();
    for i in 0..n - 1 {
        let plain = layout.open(&k.keys, i);
        assert!(!plain.is_empty());
        entries.extend(parse_entries(&plain));
    }
    // Entries in (table, key) order, sealed values as record plaintext, others verbatim.
    assert_eq!(entries, file_entries(&source, &k.keys, TABLES.len()).await);
    let first_message = entries.iter().find(|e| e.0 == 1).unwrap();
    assert!(codec::decode_message(&first_message.2).is_ok());
    // Index values: message record keys in `message_ids`, tokens elsewhere (the conversation
    // token in `msg_by_peer` and `msg_by_time`); msg_by_conversation is empty since v4.
    let index_of = |name: &str| TABLES.iter().position(|t| t.name == name).unwrap() as u8;
    let message_indexes = [index_of(catalog::MESSAGE_IDS)];
    assert!(
        !entries
            .iter()
            .any(|e| e.0 == index_of(catalog::MSG_BY_CONVERSATION))
    );
    for e in entries.iter().filter(|e| e.0 >= 4) {
        let expected = if message_indexes.contains(&e.0) {
            RECORD_KEY_LEN
        } else {
            TOKEN_LEN
        };
        assert_eq!(e.2.len(), expected, "table {}", e.0);
    }
    for e in entries.iter().filter(|e| e.0 == 1) {
        assert_eq!(e.1.len(), RECORD_KEY_LEN);
    }
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.0 == index_of(catalog::MESSAGE_IDS))
            .count(),
        6
    );

    let trailer = layout.open(&k.keys, n - 1);
    assert_eq!(trailer.len(), 17 + 8 * TABLES.len() + 32);
    let u64_at = |i: usize| u64::from_le_bytes(trailer[i..i + 8].try_into().unwrap());
    assert_eq!(u64_at(0), entries.len() as u64);
    assert_eq!(u64_at(8), (n - 1) as u64);
    assert_eq!(trailer[16] as usize, TABLES.len());
    for ti in 0..TABLES.len() {
        let count = entries.iter().filter(|e| e.0 as usize == ti).count();
        assert_eq!(u64_at(17 + 8 * ti), count as u64);
    }
    assert_eq!(&trailer[17 + 8 * TABLES.len()..], &layout.stream_digest());
    assert_eq!(
        layout.chunks[n - 1].len(),
        4 + 28 + 17 + 8 * TABLES.len() + 32
    );
}

#[tokio::test]
async fn create_checks_the_store_and_its_key_header() {
    let k = cheap_keys();
    let other = cheap_keys();
    let source = build_store(&k, 3, 10).await;

    // A key header other than the store's.
    let err = create(&source, &k.keys, &other.key_header, 0, Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::KeyHeaderMismatch), "{err:?}");
    // Not a key header at all.
    let err = create(&source, &k.keys, b"nope", 0, Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackupError::MalformedHeader { .. }),
        "{err:?}"
    );
    // Keys that do not open the store's records.
    let err = create(&source, &other.keys, &k.key_header, 0, Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Schema(_)), "{err:?}");
    // A store without a key header in meta.
    let bare = MemoryBackend::new();
    let err = create(&bare, &k.keys, &k.key_header, 0, Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::KeyHeaderMismatch), "{err:?}");
    // An index entry whose value is not a token.
    let mut batch = WriteBatch::new();
    batch.put(catalog::MSG_BY_TIME, vec![0u8; 16], vec![1u8; 3]);
    source.commit(batch, Durability::Immediate).await.unwrap();
    let err = create(&source, &k.keys, &k.key_header, 0, Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::InvalidEntry {
                table: catalog::MSG_BY_TIME,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err}").contains("msg-"));
}

#[tokio::test]
async fn an_empty_store_with_only_meta_round_trips() {
    let k = cheap_keys();
    let source = build_store(&k, 0, 0).await;
    let file = backup(&source, &k, 1 << 20).await;
    assert_eq!(Layout::parse(&file).chunks.len(), 2);
    let target = MemoryBackend::new();
    let s = restore(file.as_slice(), &passphrase(), &target)
        .await
        .unwrap();
    assert_eq!(s.entries, 3);
    assert_eq!(dump(&target, &k.keys).await, dump(&source, &k.keys).await);
}

/// A single file written by schema-v3 code (records under message tokens, index values that
/// are tokens, `msg_by_conversation`, a 9-table trailer) still verifies, and restores as it
/// was, `meta` saying 3: the facade migrates it when it opens it.
#[tokio::test]
async fn a_single_file_of_a_schema_3_store_verifies_and_restores_as_it_was() {
    let k = cheap_keys();
    let v3 = build_store_at(&k, 20, 10, 3).await;
    let entries = file_entries(&v3, &k.keys, 9).await;
    let file = write_file(&k, 3, &entries, 9);
    let verified = verify(file.as_slice(), &passphrase()).unwrap();
    assert_eq!(verified.schema_version, 3);
    assert_eq!(verified.table_entries(catalog::MSG_BY_CONVERSATION), 20);
    assert_eq!(verified.table_entries(catalog::MESSAGE_IDS), 0);
    assert_eq!(verified.tables.len(), TABLES.len());
    let target = MemoryBackend::new();
    let restored = restore(file.as_slice(), &passphrase(), &target)
        .await
        .unwrap();
    assert_eq!(restored, verified);
    assert_eq!(dump(&target, &k.keys).await, dump(&v3, &k.keys).await);
    let token = message_token(&k.keys, "msg-3");
    let stored = target.get(MESSAGES, &token).await.unwrap().unwrap();
    assert!(
        open_message(&k.keys, &token, &stored)
            .unwrap()
            .same_content(&message(3, 10))
    );

    // The trailer counts the tables of its schema version: 9 for v3, 10 for v4.
    let err = verify(write_file(&k, 3, &entries, 10).as_slice(), &passphrase()).unwrap_err();
    assert!(
        matches!(err, BackupError::TrailerMismatch { .. }),
        "{err:?}"
    );
    let v4 = common::build_store_at(&k, 20, 10, 4).await;
    let v4_entries = file_entries(&v4, &k.keys, TABLES.len()).await;
    let err = verify(write_file(&k, 4, &v4_entries, 9).as_slice(), &passphrase()).unwrap_err();
    assert!(
        matches!(err, BackupError::TrailerMismatch { .. }),
        "{err:?}"
    );
    verify(write_file(&k, 4, &v4_entries, 10).as_slice(), &passphrase()).unwrap();
    // A v4 layout under a v3 header, or the reverse, does not fit the schema.
    let v4_as_v3 = relabelled(&v4_entries, 3);
    let err = verify(write_file(&k, 3, &v4_as_v3, 9).as_slice(), &passphrase()).unwrap_err();
    assert!(matches!(err, BackupError::MalformedChunk { .. }), "{err:?}");
    let v3_as_v4 = relabelled(&entries, 4);
    let err = verify(write_file(&k, 4, &v3_as_v4, 10).as_slice(), &passphrase()).unwrap_err();
    assert!(matches!(err, BackupError::MalformedChunk { .. }), "{err:?}");

    // This code backs up only a store in the current layout.
    let err = create(&v3, &k.keys, &k.key_header, 0, Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackupError::InvalidEntry { table: META, .. }),
        "{err:?}"
    );
}

/// A v4 record must sit under its own record key: the key ends with its order key.
#[tokio::test]
async fn create_refuses_a_record_under_another_position() {
    let k = cheap_keys();
    let source = build_store(&k, 3, 10).await;
    let m = message(1, 10);
    let mut rk = record_key(&m, &tokens(&k.keys, &m));
    rk[31] ^= 1;
    let mut batch = WriteBatch::new();
    batch.put(
        MESSAGES,
        rk.clone(),
        tresor_schema::messages::seal_message(&k.keys, &rk, &m).unwrap(),
    );
    source.commit(batch, Durability::Immediate).await.unwrap();
    let err = create(&source, &k.keys, &k.key_header, 0, Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::InvalidEntry {
                table: MESSAGES,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let k = cheap_keys();
    let backend = MemoryBackend::new();
    let p = passphrase();
    let c = create(&backend, &k.keys, &k.key_header, 0, Vec::new());
    assert_send(&c);
    let r = restore(&b""[..], &p, &backend);
    assert_send(&r);
}

/// `entries` with the `meta` schema version set to `version` (nothing else changed).
fn relabelled(entries: &[(u8, Vec<u8>, Vec<u8>)], version: u32) -> Vec<(u8, Vec<u8>, Vec<u8>)> {
    let mut out = entries.to_vec();
    for e in &mut out {
        if e.0 == 0 && e.1 == catalog::meta_keys::SCHEMA_VERSION.as_bytes() {
            e.2 = version.to_le_bytes().to_vec();
        }
    }
    out
}
