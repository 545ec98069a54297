//! Hostile and damaged backups: every failure is a typed error, never `Ok`, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use tresor_backend::{Backend, Durability, MemoryBackend, WriteBatch};
use tresor_backup::{BackupError, restore, verify};
use tresor_crypto::Secret;
use tresor_schema::catalog::{self, TABLES};

/// A small backup of a few entries in several chunks (cheap KDF), with its keys.
async fn small_backup() -> (Keys, MemoryBackend, Vec<u8>) {
    let k = cheap_keys();
    let source = build_store(&k, 3, 8).await;
    let file = backup(&source, &k, 400).await;
    assert!(Layout::parse(&file).chunks.len() >= 3);
    (k, source, file)
}

fn verify_err(bytes: &[u8]) -> BackupError {
    match verify(bytes, &passphrase()) {
        Ok(s) => panic!("corrupted backup verified: {s:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn wrong_passphrase() {
    let (_, _, file) = small_backup().await;
    let err = verify(file.as_slice(), &Secret::from("wrong")).unwrap_err();
    assert!(matches!(err, BackupError::WrongPassphrase), "{err:?}");
    let target = MemoryBackend::new();
    let err = restore(file.as_slice(), &Secret::from("wrong"), &target)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::WrongPassphrase), "{err:?}");
    assert!(target.tables().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_modified_byte_anywhere_is_detected() {
    let (_, _, file) = small_backup().await;
    assert!(verify(file.as_slice(), &passphrase()).is_ok());
    for pos in 0..file.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = file.clone();
            bad[pos] ^= mask;
            let err = verify_err(&bad);
            if pos < 8 {
                assert!(matches!(err, BackupError::NotABackup), "{pos}: {err:?}");
            } else if pos == 8 {
                assert!(
                    matches!(err, BackupError::UnsupportedFormat(_)),
                    "{pos}: {err:?}"
                );
            }
            // Error messages carry no record contents.
            assert!(!format!("{err}").contains("peer-"), "{err}");
        }
    }
}

#[tokio::test]
async fn truncation_at_every_length_is_detected() {
    let (_, _, file) = small_backup().await;
    assert!(matches!(verify_err(&[]), BackupError::NotABackup));
    for len in 1..file.len() {
        let err = verify_err(&file[..len]);
        assert!(matches!(err, BackupError::Truncated), "{len}: {err:?}");
    }
}

#[tokio::test]
async fn reordered_dropped_or_duplicated_chunks_are_detected() {
    let (_, _, file) = small_backup().await;
    let layout = Layout::parse(&file);
    let n = layout.chunks.len();

    let mut swapped = layout.clone();
    swapped.chunks.swap(0, 1);
    let err = verify_err(&swapped.join());
    assert!(
        matches!(err, BackupError::ChunkAuthentication { index: 0 }),
        "{err:?}"
    );

    let mut dropped = layout.clone();
    dropped.chunks.remove(1);
    let err = verify_err(&dropped.join());
    assert!(
        matches!(err, BackupError::ChunkAuthentication { index: 1 }),
        "{err:?}"
    );

    let mut duplicated = layout.clone();
    let c = duplicated.chunks[0].clone();
    duplicated.chunks.insert(1, c);
    let err = verify_err(&duplicated.join());
    assert!(
        matches!(err, BackupError::ChunkAuthentication { index: 1 }),
        "{err:?}"
    );

    // Without the final chunk the backup is truncated, even at a chunk boundary.
    let mut no_final = layout.clone();
    no_final.chunks.pop();
    assert!(matches!(
        verify_err(&no_final.join()),
        BackupError::Truncated
    ));

    // The final chunk moved before the last data chunk.
    let mut early_final = layout.clone();
    early_final.chunks.swap(n - 2, n - 1);
    let err = verify_err(&early_final.join());
    assert!(
        matches!(err, BackupError::ChunkAuthentication { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn trailing_data_is_detected() {
    let (_, _, file) = small_backup().await;
    for garbage in [&[0u8][..], b"more bytes", &file[..]] {
        let mut bad = file.clone();
        bad.extend_from_slice(garbage);
        assert!(matches!(verify_err(&bad), BackupError::TrailingData));
    }
    let layout = Layout::parse(&file);
    let mut bad = file.clone();
    bad.extend_from_slice(layout.chunks.last().unwrap());
    assert!(matches!(verify_err(&bad), BackupError::TrailingData));
}

#[tokio::test]
async fn splicing_two_backups_is_detected() {
    // Two backups of the same store with the same keys: only the backup id differs.
    let k = cheap_keys();
    let source = build_store(&k, 3, 8).await;
    let a = Layout::parse(&backup(&source, &k, 400).await);
    let b = Layout::parse(&backup(&source, &k, 400).await);
    assert_eq!(a.chunks.len(), b.chunks.len());

    let mut header_a_chunks_b = b.clone();
    header_a_chunks_b.header = a.header.clone();
    let err = verify_err(&header_a_chunks_b.join());
    assert!(
        matches!(err, BackupError::ChunkAuthentication { index: 0 }),
        "{err:?}"
    );

    let mut mixed = a.clone();
    mixed.chunks[1] = b.chunks[1].clone();
    let err = verify_err(&mixed.join());
    assert!(
        matches!(err, BackupError::ChunkAuthentication { index: 1 }),
        "{err:?}"
    );

    let mut final_of_b = a.clone();
    *final_of_b.chunks.last_mut().unwrap() = b.chunks.last().unwrap().clone();
    let err = verify_err(&final_of_b.join());
    assert!(
        matches!(err, BackupError::ChunkAuthentication { .. }),
        "{err:?}"
    );

    // A backup of another store (other keys) under this store's header.
    let other = cheap_keys();
    let other_store = build_store(&other, 3, 8).await;
    let mut foreign = Layout::parse(&backup(&other_store, &other, 400).await);
    foreign.header = a.header.clone();
    let err = verify_err(&foreign.join());
    assert!(
        matches!(err, BackupError::ChunkAuthentication { index: 0 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn restore_refuses_a_non_empty_target_and_leaves_it_unchanged() {
    let (k, _, file) = small_backup().await;
    for table in [catalog::META, catalog::MSG_BY_TIME] {
        let target = MemoryBackend::new();
        let mut batch = WriteBatch::new();
        batch.put(table, b"existing".to_vec(), b"value".to_vec());
        target.commit(batch, Durability::Immediate).await.unwrap();
        let before: Vec<_> = {
            let mut all = Vec::new();
            for spec in TABLES {
                all.push(raw_table(&target, spec.name).await);
            }
            all
        };
        let err = restore(file.as_slice(), &passphrase(), &target)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackupError::TargetNotEmpty { table: t, entries: 1 } if t == table),
            "{err:?}"
        );
        for (spec, entries) in TABLES.iter().zip(&before) {
            assert_eq!(&raw_table(&target, spec.name).await, entries);
        }
    }
    // A table outside the catalog does not count.
    let target = MemoryBackend::new();
    let mut batch = WriteBatch::new();
    batch.put("unrelated", b"k".to_vec(), b"v".to_vec());
    target.commit(batch, Durability::Immediate).await.unwrap();
    restore(file.as_slice(), &passphrase(), &target)
        .await
        .unwrap();
    let _ = k;
}

#[tokio::test]
async fn restore_of_a_damaged_backup_fails() {
    let (_, _, file) = small_backup().await;
    let layout = Layout::parse(&file);
    let final_start = file.len() - layout.chunks.last().unwrap().len();
    // One flip in each region: header, first data chunk, last data chunk, final chunk.
    for pos in [40, 129 + 10, final_start - 3, file.len() - 1] {
        let mut bad = file.clone();
        bad[pos] ^= 0x20;
        let target = MemoryBackend::new();
        assert!(
            restore(bad.as_slice(), &passphrase(), &target)
                .await
                .is_err(),
            "{pos}"
        );
    }
    for len in [0, 100, 200, file.len() - 1] {
        let target = MemoryBackend::new();
        assert!(
            restore(&file[..len], &passphrase(), &target).await.is_err(),
            "{len}"
        );
    }
    let mut trailing = file.clone();
    trailing.push(0);
    let target = MemoryBackend::new();
    let err = restore(trailing.as_slice(), &passphrase(), &target)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::TrailingData), "{err:?}");
}

#[tokio::test]
async fn unsupported_schema_version_is_refused_before_unlocking() {
    let (_, _, file) = small_backup().await;
    let mut newer = file.clone();
    newer[33..37].copy_from_slice(&(tresor_schema::version::SCHEMA_VERSION + 1).to_le_bytes());
    // Even with a wrong passphrase: the check comes before the KDF.
    let err = verify(newer.as_slice(), &Secret::from("wrong")).unwrap_err();
    assert!(matches!(err, BackupError::UnsupportedSchema(_)), "{err:?}");
    let target = MemoryBackend::new();
    let err = restore(newer.as_slice(), &passphrase(), &target)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::UnsupportedSchema(_)), "{err:?}");
}

#[tokio::test]
async fn oversized_lengths_are_refused_without_allocating() {
    let (_, _, file) = small_backup().await;
    let layout = Layout::parse(&file);
    let mut bad = layout.header.clone();
    bad.extend_from_slice(&u32::MAX.to_le_bytes());
    bad.extend_from_slice(&[0; 64]);
    let err = verify_err(&bad);
    assert!(
        matches!(err, BackupError::MalformedChunk { index: 0, .. }),
        "{err:?}"
    );
    // A plausible length on a short file: truncated, not a 64 MiB allocation.
    let mut bad = layout.header.clone();
    bad.extend_from_slice(&(60u32 * 1024 * 1024).to_le_bytes());
    bad.extend_from_slice(&[0; 64]);
    assert!(matches!(verify_err(&bad), BackupError::Truncated));
    let mut bad = layout.header.clone();
    bad.extend_from_slice(&27u32.to_le_bytes());
    bad.extend_from_slice(&[0; 27]);
    assert!(matches!(
        verify_err(&bad),
        BackupError::MalformedChunk { .. }
    ));
}

/// Backups forged with the right keys (an attacker cannot do this, a buggy writer could):
/// the structural checks behind the AEAD still hold.
#[tokio::test]
async fn forged_chunks_with_valid_tags_are_still_checked() {
    let (k, _, file) = small_backup().await;
    let layout = Layout::parse(&file);
    let n = layout.chunks.len();
    let trailer = layout.open(&k.keys, n - 1).to_vec();
    let digest_at = trailer.len() - 32;

    let forge_trailer = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut t = trailer.clone();
        edit(&mut t);
        let mut l = layout.clone();
        l.reseal(&k.keys, n - 1, true, &t);
        verify_err(&l.join())
    };
    let err = forge_trailer(&|t| t[0] ^= 1);
    assert!(
        matches!(&err, BackupError::TrailerMismatch { what, .. } if what == "total entries"),
        "{err:?}"
    );
    let err = forge_trailer(&|t| t[8] ^= 1);
    assert!(
        matches!(&err, BackupError::TrailerMismatch { what, .. } if what == "data chunks"),
        "{err:?}"
    );
    let err = forge_trailer(&|t| {
        t[17] += 1; // meta +1 …
        t[25] -= 1; // … messages -1: same total
    });
    assert!(
        matches!(&err, BackupError::TrailerMismatch { what, recorded: 4, counted: 3 }
            if what == "entries of table meta"),
        "{err:?}"
    );
    let err = forge_trailer(&|t| t[digest_at] ^= 1);
    assert!(matches!(err, BackupError::DigestMismatch), "{err:?}");
    let err = forge_trailer(&|t| {
        t.pop();
    });
    assert!(matches!(err, BackupError::MalformedChunk { .. }), "{err:?}");

    // Data chunks: an index of the final chunk's data, out-of-order, unknown table, bad value.
    let entries = parse_entries(&layout.open(&k.keys, 0));
    let forge_data = |edit: &dyn Fn(&mut Vec<RawEntry>)| {
        let mut e = entries.clone();
        edit(&mut e);
        let mut l = layout.clone();
        l.reseal(&k.keys, 0, false, &encode_entries(&e));
        verify_err(&l.join())
    };
    let err = forge_data(&|e| e.reverse());
    assert!(
        matches!(err, BackupError::MalformedChunk { index: 0, .. }),
        "{err:?}"
    );
    let err = forge_data(&|e| e[0].0 = 7);
    assert!(
        matches!(err, BackupError::MalformedChunk { index: 0, .. }),
        "{err:?}"
    );
    let err = forge_data(&|e| {
        let dup = e[0].clone();
        e.insert(1, dup);
    });
    assert!(
        matches!(err, BackupError::MalformedChunk { index: 0, .. }),
        "{err:?}"
    );
    let err = forge_data(&|e| {
        let kh = e.iter_mut().find(|x| x.1 == b"key_header").unwrap();
        kh.2[50] ^= 1;
    });
    assert!(matches!(err, BackupError::KeyHeaderMismatch), "{err:?}");
    // Without a key header in meta (trailer counts and digest forged to match).
    let mut e = entries.clone();
    e.retain(|x| x.1 != b"key_header");
    let mut l = layout.clone();
    l.reseal(&k.keys, 0, false, &encode_entries(&e));
    let mut t = trailer.clone();
    t[0] -= 1; // total entries
    t[17] -= 1; // meta entries
    let digest = l.stream_digest();
    t[digest_at..].copy_from_slice(&digest);
    l.reseal(&k.keys, n - 1, true, &t);
    let err = verify_err(&l.join());
    assert!(matches!(err, BackupError::KeyHeaderMismatch), "{err:?}");
    let err = forge_data(&|e| {
        let last = e.last_mut().unwrap();
        last.2 = b"\x01 not a record".to_vec();
        last.0 = 1;
    });
    assert!(
        matches!(err, BackupError::MalformedChunk { index: 0, .. }),
        "{err:?}"
    );
    let err = forge_data(&|e| e.clear());
    assert!(
        matches!(err, BackupError::MalformedChunk { index: 0, .. }),
        "{err:?}"
    );
    // An entry that runs past its chunk.
    let mut l = layout.clone();
    let mut plain = encode_entries(&entries);
    plain.truncate(plain.len() - 1);
    l.reseal(&k.keys, 0, false, &plain);
    let err = verify_err(&l.join());
    assert!(
        matches!(err, BackupError::MalformedChunk { index: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn arbitrary_inputs_never_verify() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for len in 0..300 {
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len >= 9 && len % 2 == 0 {
            bytes[..8].copy_from_slice(b"TRESORBK");
            bytes[8] = 1;
        }
        assert!(verify(bytes.as_slice(), &passphrase()).is_err());
    }
}
