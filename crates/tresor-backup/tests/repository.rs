//! Backup repositories (format 2): round trip, incremental sharing, every kind of tampering,
//! prune and its lock, forget, erasure-coded targets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Keys, build_store, cheap_keys, dump, passphrase};
use tresor_backend::{Backend, MemoryBackend};
use tresor_backup::repo_format::Chunking;
use tresor_backup::target::{BackupTarget, DirTarget, ErasureTarget};
use tresor_backup::{BackupError, BackupOptions, NoProgress, Repository, RetentionPolicy};
use tresor_crypto::{KeyHeader, Passphrase, SealingKey, StoreKeys};
use zeroize::Zeroizing;

/// Small chunks, so a small store spans many chunks.
const SMALL: Chunking = Chunking {
    min: 256,
    avg: 1024,
    max: 4096,
};

fn store_keys(k: &Keys) -> Arc<StoreKeys> {
    Arc::new(
        KeyHeader::decode(&k.key_header)
            .unwrap()
            .unlock(&passphrase())
            .unwrap()
            .store_keys(),
    )
}

async fn repo(target: Arc<dyn BackupTarget>, k: &Keys) -> Repository {
    Repository::open_or_init_with(target, store_keys(k), &k.key_header, SMALL)
        .await
        .unwrap()
}

fn dir_target(path: &std::path::Path) -> Arc<dyn BackupTarget> {
    Arc::new(DirTarget::new(path))
}

async fn restore_dump(repo: &Repository, which: &str, k: &Keys) -> common::Dump {
    let target = MemoryBackend::new();
    repo.restore(which, &target, &NoProgress).await.unwrap();
    dump(&target, &k.keys).await
}

fn files(dir: &std::path::Path, sub: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join(sub))
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn round_trip_on_a_new_device_with_the_passphrase_alone() {
    let k = cheap_keys();
    let source = build_store(&k, 300, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir_target(dir.path()), &k).await;
    let report = r
        .backup(
            &source,
            &BackupOptions::with_description("first"),
            &NoProgress,
        )
        .await
        .unwrap();
    assert!(report.info.chunks > 5, "{:?}", report.info);
    assert_eq!(report.info.added_chunks, report.info.chunks);
    assert_eq!(report.info.description, "first");
    assert_eq!(report.info.entries, 3 + 300);

    // A new device: only the directory and the passphrase.
    let fresh = Repository::open(dir_target(dir.path()), &passphrase())
        .await
        .unwrap();
    let list = fresh.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0], report.info);
    let restored = MemoryBackend::new();
    let summary = fresh
        .restore("latest", &restored, &NoProgress)
        .await
        .unwrap();
    assert_eq!(summary.table_entries("messages"), 300);
    // Every table equal, the derived ones rebuilt from the records.
    assert_eq!(dump(&restored, &k.keys).await, dump(&source, &k.keys).await);
    let v = fresh.verify(None, None, &NoProgress).await.unwrap();
    assert_eq!((v.backups, v.streams_checked), (1, 1));
    assert_eq!(v.chunks_read, report.info.chunks);
    assert_eq!(v.unreferenced_chunks, 0);

    // A restore refuses a non-empty target; a wrong passphrase is typed.
    assert!(matches!(
        fresh.restore("latest", &restored, &NoProgress).await,
        Err(BackupError::TargetNotEmpty { .. })
    ));
    assert!(matches!(
        Repository::open(dir_target(dir.path()), &Passphrase::from("wrong").into()).await,
        Err(BackupError::WrongPassphrase)
    ));
    assert!(matches!(
        Repository::open(dir_target(&dir.path().join("none")), &passphrase()).await,
        Err(BackupError::NotARepository)
    ));
}

#[tokio::test]
async fn a_store_that_grew_little_writes_little_and_both_backups_restore() {
    let k = cheap_keys();
    let small = build_store(&k, 400, 80).await;
    let grown = build_store(&k, 404, 80).await; // 1% more messages, the newest
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir_target(dir.path()), &k).await;
    let first = r
        .backup(&small, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap()
        .info;
    let second = r
        .backup(&grown, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(second.existing_chunks, first.chunks);
    let ratio = second.info.added_bytes as f64 / first.added_bytes as f64;
    assert!(
        ratio < 0.15,
        "second backup wrote {} of {} bytes",
        second.info.added_bytes,
        first.added_bytes
    );
    // The same store twice: nothing new but the manifest.
    let third = r
        .backup(&grown, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(third.info.added_chunks, 0);
    assert_eq!(
        restore_dump(&r, &first.id, &k).await,
        dump(&small, &k.keys).await
    );
    assert_eq!(
        restore_dump(&r, "latest", &k).await,
        dump(&grown, &k.keys).await
    );
    assert!(matches!(
        r.find("zz").await,
        Err(BackupError::BackupNotFound(_))
    ));
}

/// Opens, edits and re-seals a manifest exactly as FORMAT.md describes it (an independent
/// implementation of the layout), so the tests can reorder, drop and splice chunk lists with
/// a valid tag.
struct ManifestEditor {
    key: SealingKey,
    repo_id: [u8; 16],
}

impl ManifestEditor {
    fn new(dir: &std::path::Path, keys: &StoreKeys) -> Self {
        let config = std::fs::read(dir.join("config")).unwrap();
        let repo_id: [u8; 16] = config[9..25].try_into().unwrap();
        let key = SealingKey::new(&keys.backup_subkey(&repo_id, b"tresor/v2/repo-manifest-seal"));
        Self { key, repo_id }
    }

    fn aad(&self, header: &[u8]) -> Vec<u8> {
        let mut aad = b"tresor/v2/manifest".to_vec();
        aad.extend_from_slice(&self.repo_id);
        aad.extend_from_slice(header);
        aad
    }

    /// (header, plaintext before the chunk list, chunk list entries of 36 bytes).
    fn open(&self, bytes: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<[u8; 36]>) {
        let header = bytes[..33].to_vec();
        let plain = self.key.open(&self.aad(&header), &bytes[33..]).unwrap();
        let count = plain.len().checked_sub(4).unwrap();
        // The chunk list is the tail: find its start from the count that precedes it.
        for n in 0..=count / 36 {
            let start = plain.len() - n * 36;
            let c = u32::from_le_bytes(plain[start - 4..start].try_into().unwrap()) as usize;
            if c == n {
                let list = plain[start..]
                    .chunks(36)
                    .map(|c| c.try_into().unwrap())
                    .collect();
                return (header, plain[..start - 4].to_vec(), list);
            }
        }
        panic!("no chunk list found");
    }

    fn seal(&self, header: &[u8], before: &[u8], list: &[[u8; 36]]) -> Vec<u8> {
        let mut plain = before.to_vec();
        plain.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for c in list {
            plain.extend_from_slice(c);
        }
        let mut out = header.to_vec();
        out.extend_from_slice(&self.key.seal(&self.aad(header), &plain).unwrap());
        out
    }
}

async fn verify_err(dir: &std::path::Path) -> BackupError {
    let r = Repository::open(dir_target(dir), &passphrase())
        .await
        .unwrap();
    let err = r.verify(None, None, &NoProgress).await.unwrap_err();
    // Restoring the damaged backup fails too (the damage may be in either backup).
    let mut failed = 0;
    for which in ["latest", "oldest"] {
        let id = match which {
            "latest" => "latest".to_owned(),
            _ => match r.list().await {
                Ok(list) => list[0].id.clone(),
                Err(_) => {
                    failed += 1;
                    continue;
                }
            },
        };
        let target = MemoryBackend::new();
        if r.restore(&id, &target, &NoProgress).await.is_err() {
            failed += 1;
        }
    }
    assert!(failed > 0, "no restore failed after {err:?}");
    err
}

#[tokio::test]
async fn tampering_is_detected() {
    let k = cheap_keys();
    let source = build_store(&k, 200, 60).await;
    let other = build_store(&k, 150, 61).await;
    let base = tempfile::tempdir().unwrap();
    let good = base.path().join("good");
    let r = repo(dir_target(&good), &k).await;
    r.backup(&source, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    r.backup(&other, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let fresh = |name: &str| {
        let d = base.path().join(name);
        copy_dir(&good, &d);
        d
    };
    let editor = ManifestEditor::new(&good, &k.keys);
    let manifests = files(&good, "manifests");
    assert_eq!(manifests.len(), 2);
    let latest_manifest = {
        let list = r.list().await.unwrap();
        good.join("manifests").join(&list[1].id)
    };

    // A flipped bit in a chunk.
    let d = fresh("bit");
    let chunk = &files(&d, "chunks")[3];
    let mut bytes = std::fs::read(chunk).unwrap();
    bytes[20] ^= 0x10;
    std::fs::write(chunk, bytes).unwrap();
    assert!(matches!(
        verify_err(&d).await,
        BackupError::CorruptChunk { .. }
    ));

    // A chunk stored under another chunk's name (its AAD binds its id).
    let d = fresh("swap");
    let chunks = files(&d, "chunks");
    std::fs::copy(&chunks[0], &chunks[1]).unwrap();
    assert!(matches!(
        verify_err(&d).await,
        BackupError::CorruptChunk { .. }
    ));

    // A missing chunk.
    let d = fresh("missing");
    std::fs::remove_file(&files(&d, "chunks")[2]).unwrap();
    assert!(matches!(
        verify_err(&d).await,
        BackupError::MissingChunk { .. }
    ));

    // A manifest renamed to another backup id, truncated, or with a flipped clear byte.
    let d = fresh("rename");
    let m = files(&d, "manifests")[0].clone();
    std::fs::rename(&m, d.join("manifests").join("00".repeat(16))).unwrap();
    assert!(matches!(
        verify_err(&d).await,
        BackupError::ManifestAuthentication { .. }
    ));
    let d = fresh("truncated-manifest");
    let m = files(&d, "manifests")[0].clone();
    let bytes = std::fs::read(&m).unwrap();
    std::fs::write(&m, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(
        verify_err(&d).await,
        BackupError::ManifestAuthentication { .. }
    ));
    let d = fresh("time");
    let m = files(&d, "manifests")[0].clone();
    let mut bytes = std::fs::read(&m).unwrap();
    bytes[27] ^= 1; // created_ms, in clear but authenticated
    std::fs::write(&m, bytes).unwrap();
    assert!(matches!(
        verify_err(&d).await,
        BackupError::ManifestAuthentication { .. }
    ));

    // A manifest of another repository of the same store (same keys, other repo id).
    let foreign = base.path().join("foreign");
    let r2 = repo(dir_target(&foreign), &k).await;
    r2.backup(&source, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let d = fresh("splice-manifest");
    let fm = files(&foreign, "manifests")[0].clone();
    std::fs::copy(&fm, d.join("manifests").join(fm.file_name().unwrap())).unwrap();
    assert!(matches!(
        verify_err(&d).await,
        BackupError::ManifestAuthentication { .. }
    ));
    // …and its chunks: they fail their tag in this repository.
    let d = fresh("splice-chunk");
    let fc = files(&foreign, "chunks")[0].clone();
    let target = files(&d, "chunks")[0].clone();
    std::fs::copy(&fc, &target).unwrap();
    assert!(matches!(
        verify_err(&d).await,
        BackupError::CorruptChunk { .. }
    ));

    // Re-sealed manifests (as someone holding the key could): reordered, truncated, and
    // spliced chunk lists are caught by the stream checks and the digest.
    let bytes = std::fs::read(&latest_manifest).unwrap();
    let (header, before, list) = editor.open(&bytes);
    assert!(list.len() > 4);
    let other_bytes =
        std::fs::read(manifests.iter().find(|p| **p != latest_manifest).unwrap()).unwrap();
    let (_, _, other_list) = editor.open(&other_bytes);
    let edits: Vec<(&str, Vec<[u8; 36]>)> = vec![
        ("reordered", {
            let mut l = list.clone();
            l.swap(1, 2);
            l
        }),
        ("truncated", list[..list.len() - 1].to_vec()),
        ("spliced", {
            let mut l = list[..2].to_vec();
            l.extend_from_slice(&other_list[2..]);
            l
        }),
        ("duplicated", {
            let mut l = list.clone();
            l.insert(2, list[1]);
            l
        }),
    ];
    for (name, edited) in edits {
        let d = fresh(name);
        let target = d
            .join("manifests")
            .join(latest_manifest.file_name().unwrap());
        std::fs::write(&target, editor.seal(&header, &before, &edited)).unwrap();
        let err = verify_err(&d).await;
        assert!(
            matches!(
                err,
                BackupError::MalformedManifest { .. }
                    | BackupError::MalformedStream { .. }
                    | BackupError::DigestMismatch
                    | BackupError::ManifestMismatch { .. }
            ),
            "{name}: {err:?}"
        );
    }
    // Sanity: the untouched copy verifies, and the editor round-trips.
    let d = fresh("untouched");
    let target = d
        .join("manifests")
        .join(latest_manifest.file_name().unwrap());
    std::fs::write(&target, editor.seal(&header, &before, &list)).unwrap();
    Repository::open(dir_target(&d), &passphrase())
        .await
        .unwrap()
        .verify(None, None, &NoProgress)
        .await
        .unwrap();
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

#[tokio::test]
async fn config_is_bound_to_its_store() {
    let k = cheap_keys();
    let other = cheap_keys();
    let dir = tempfile::tempdir().unwrap();
    repo(dir_target(dir.path()), &k).await;
    // Another store's keys fail the config's MAC.
    assert!(matches!(
        Repository::open_or_init(
            dir_target(dir.path()),
            store_keys(&other),
            &other.key_header
        )
        .await,
        Err(BackupError::ConfigAuthentication)
    ));
    // A modified config fails too.
    let path = dir.path().join("config");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[30] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(
        Repository::open(dir_target(dir.path()), &passphrase()).await,
        Err(BackupError::ConfigAuthentication)
    ));
}

#[tokio::test]
async fn forget_then_prune_frees_chunks_and_respects_locks() {
    let k = cheap_keys();
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir_target(dir.path()), &k).await;
    let a = build_store(&k, 150, 60).await;
    let b = build_store(&k, 150, 90).await; // every record differs
    let mut options = BackupOptions::default();
    options.created_ms = Some(1_000_000);
    r.backup(&a, &options, &NoProgress).await.unwrap();
    options.created_ms = Some(2_000_000);
    let newest = r.backup(&b, &options, &NoProgress).await.unwrap().info;
    let before = files(dir.path(), "chunks").len();

    let dry = r
        .forget(&RetentionPolicy::keep_last(1), true)
        .await
        .unwrap();
    assert!(!dry.applied);
    assert_eq!(dry.decisions.iter().filter(|d| !d.keep).count(), 1);
    assert_eq!(r.list().await.unwrap().len(), 2);
    let done = r
        .forget(&RetentionPolicy::keep_last(1), false)
        .await
        .unwrap();
    assert!(done.applied);
    assert_eq!(r.list().await.unwrap()[0].id, newest.id);
    let v = r.verify(None, None, &NoProgress).await.unwrap();
    assert!(v.unreferenced_chunks > 0);

    // A fresh backup lock blocks prune; a stale one (written long ago) does not.
    let t = dir_target(dir.path());
    t.put(
        "locks/backup-0000000000000000",
        now_ms().to_le_bytes().to_vec(),
    )
    .await
    .unwrap();
    assert!(matches!(
        r.prune().await,
        Err(BackupError::RepositoryLocked { .. })
    ));
    assert_eq!(files(dir.path(), "chunks").len(), before);
    // …and a prune lock blocks a backup.
    t.put(
        "locks/prune-0000000000000000",
        now_ms().to_le_bytes().to_vec(),
    )
    .await
    .unwrap();
    assert!(matches!(
        r.backup(&a, &BackupOptions::default(), &NoProgress).await,
        Err(BackupError::RepositoryLocked { .. })
    ));
    t.delete("locks/prune-0000000000000000").await.unwrap();
    t.put("locks/backup-0000000000000000", 0i64.to_le_bytes().to_vec())
        .await
        .unwrap();
    let pruned = r.prune().await.unwrap();
    assert_eq!(
        pruned.chunks_deleted as usize,
        before - newest.chunks as usize
    );
    assert_eq!(files(dir.path(), "chunks").len(), newest.chunks as usize);
    assert_eq!(files(dir.path(), "locks").len(), 1); // only the stale one remains
    let v = r.verify(None, None, &NoProgress).await.unwrap();
    assert_eq!(v.unreferenced_chunks, 0);
    assert_eq!(
        restore_dump(&r, "latest", &k).await,
        dump(&b, &k.keys).await
    );
    // Subset verification reads about the asked fraction.
    let s = r.verify(None, Some(1.0), &NoProgress).await.unwrap();
    assert_eq!(s.chunks_read, s.chunks_referenced);
    assert_eq!(s.streams_checked, 0);
    assert!(r.verify(None, Some(0.0), &NoProgress).await.is_err());
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn erasure_coded_repository_survives_m_lost_targets() {
    let k = cheap_keys();
    let source = build_store(&k, 120, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "ec:2+2:{}",
        (0..4)
            .map(|i| format!("dir:{}", dir.path().join(format!("t{i}")).display()))
            .collect::<Vec<_>>()
            .join(",")
    );
    let target = tresor_backup::open_url(&url).unwrap();
    let r = repo(Arc::clone(&target), &k).await;
    r.backup(&source, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    // Lose target 0, corrupt every shard on target 3.
    std::fs::remove_dir_all(dir.path().join("t0")).unwrap();
    for sub in ["chunks", "manifests"] {
        for f in files(&dir.path().join("t3"), sub) {
            let mut b = std::fs::read(&f).unwrap();
            let last = b.len() - 1;
            b[last] ^= 0xff;
            std::fs::write(&f, b).unwrap();
        }
    }
    let r = Repository::open(tresor_backup::open_url(&url).unwrap(), &passphrase())
        .await
        .unwrap();
    r.verify(None, None, &NoProgress).await.unwrap();
    assert_eq!(
        restore_dump(&r, "latest", &k).await,
        dump(&source, &k.keys).await
    );
    // Repair rebuilds both targets' shards; then any two targets suffice.
    let ec = tresor_backup::target::open_erasure_url(&url).unwrap();
    let report = ec
        .repair(&["config", "manifests/", "chunks/"])
        .await
        .unwrap();
    assert!(report.shards_rewritten > 0);
    assert!(report.unrecoverable.is_empty());
    std::fs::remove_dir_all(dir.path().join("t1")).unwrap();
    std::fs::remove_dir_all(dir.path().join("t2")).unwrap();
    let r = Repository::open(tresor_backup::open_url(&url).unwrap(), &passphrase())
        .await
        .unwrap();
    assert_eq!(
        restore_dump(&r, "latest", &k).await,
        dump(&source, &k.keys).await
    );
    let _: Option<&ErasureTarget> = None;
    let _ = Zeroizing::new(0u8);
}

#[tokio::test]
async fn the_repository_reveals_no_plaintext() {
    let k = cheap_keys();
    let source = build_store(&k, 100, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir_target(dir.path()), &k).await;
    r.backup(
        &source,
        &BackupOptions::with_description("secret-description"),
        &NoProgress,
    )
    .await
    .unwrap();
    let needles: Vec<String> = (0..100)
        .map(|i| format!("msg-{i}"))
        .chain([
            "conv-1".into(),
            "peer-2".into(),
            "secret-description".into(),
        ])
        .collect();
    for sub in ["", "chunks", "manifests"] {
        for f in files(dir.path(), sub) {
            if f.is_dir() {
                continue;
            }
            let bytes = std::fs::read(&f).unwrap();
            for n in &needles {
                assert!(
                    !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                    "{} contains {n}",
                    f.display()
                );
            }
        }
    }
    // The backend trait object is what the facade passes.
    let _: &dyn Backend = &source;
}

/// Opens and seals chunk objects as FORMAT.md describes them (independently of the crate).
struct ChunkCodec {
    seal: SealingKey,
    id_key: Zeroizing<[u8; 32]>,
    repo_id: [u8; 16],
}

impl ChunkCodec {
    fn new(dir: &std::path::Path, keys: &StoreKeys) -> Self {
        let config = std::fs::read(dir.join("config")).unwrap();
        let repo_id: [u8; 16] = config[9..25].try_into().unwrap();
        Self {
            seal: SealingKey::new(&keys.backup_subkey(&repo_id, b"tresor/v2/repo-chunk-seal")),
            id_key: keys.backup_subkey(&repo_id, b"tresor/v2/repo-chunk-id"),
            repo_id,
        }
    }

    fn aad(&self, id: &[u8]) -> Vec<u8> {
        let mut aad = b"tresor/v2/chunk".to_vec();
        aad.extend_from_slice(&self.repo_id);
        aad.extend_from_slice(id);
        aad
    }

    /// The plaintext of chunk `id` of the repository in `dir`.
    fn read(&self, dir: &std::path::Path, id: &[u8]) -> Vec<u8> {
        let object = std::fs::read(dir.join("chunks").join(hex(id))).unwrap();
        let compressed = self.seal.open(&self.aad(id), &object).unwrap();
        zstd::bulk::decompress(&compressed, 64 << 20).unwrap()
    }

    /// Writes `plaintext` as a chunk of the repository in `dir`; returns its manifest entry.
    fn write(&self, dir: &std::path::Path, plaintext: &[u8]) -> [u8; 36] {
        let id = *blake3::keyed_hash(&self.id_key, plaintext).as_bytes();
        let compressed = zstd::bulk::compress(plaintext, 3).unwrap();
        let object = self.seal.seal(&self.aad(&id), &compressed).unwrap();
        std::fs::write(dir.join("chunks").join(hex(&id)), object).unwrap();
        let mut entry = [0u8; 36];
        entry[..32].copy_from_slice(&id);
        entry[32..].copy_from_slice(&(plaintext.len() as u32).to_le_bytes());
        entry
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Restoring a backup writes the schema-v4 message layout: records under their record keys
/// (and sealed to them), `message_ids` from each message token to its record key, the peer
/// and time indexes pointing at record keys, `msg_by_conversation` empty, and the counters
/// rebuilt from the records.
#[tokio::test]
async fn restore_writes_the_v4_message_layout() {
    use tresor_schema::catalog::{
        CONVERSATIONS, MESSAGE_IDS, MESSAGES, MSG_BY_CONVERSATION, MSG_BY_PEER, MSG_BY_TIME, PEERS,
    };
    use tresor_schema::index::{order_key, prefixed_key};
    use tresor_schema::messages::{
        RECORD_KEY_LEN, conversation_token, open_message, peer_token, position, record_key, tokens,
    };
    use tresor_schema::{ConversationSummary, PeerSummary, sealed};

    let k = cheap_keys();
    let n = 60;
    let source = build_store(&k, n, 20).await;
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir_target(dir.path()), &k).await;
    let info = r
        .backup(&source, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap()
        .info;
    let source_count = |table: &str| info.tables.iter().find(|(t, _)| t == table).unwrap().1;
    assert_eq!(source_count(MESSAGE_IDS), n as u64);
    assert_eq!(source_count(MSG_BY_CONVERSATION), 0);

    let target = MemoryBackend::new();
    let summary = r.restore("latest", &target, &NoProgress).await.unwrap();
    assert_eq!(summary.table_entries(MESSAGES), n as u64);
    assert_eq!(summary.table_entries(MESSAGE_IDS), n as u64);
    assert_eq!(summary.table_entries(MSG_BY_CONVERSATION), 0);
    assert_eq!(target.len(MSG_BY_CONVERSATION).await.unwrap(), 0);
    let keys = &k.keys;
    for i in 0..n {
        let want = common::message(i, 20);
        let t = tokens(keys, &want);
        let rk = record_key(&want, &t);
        assert_eq!(rk.len(), RECORD_KEY_LEN);
        assert_eq!(
            target.get(MESSAGE_IDS, &t.id).await.unwrap(),
            Some(rk.clone())
        );
        // No record under the message token; the one under the record key opens only there.
        assert!(target.get(MESSAGES, &t.id).await.unwrap().is_none());
        let stored = target.get(MESSAGES, &rk).await.unwrap().unwrap();
        let m = open_message(keys, &rk, &stored).unwrap();
        assert!(m.same_content(&want));
        assert_eq!(m.seq, want.seq);
        assert!(open_message(keys, &t.id, &stored).is_err());
        let pos = position(&want);
        // The peer and time entries hold the conversation token, which their order key
        // completes into the record key.
        assert_eq!(
            target.get(MSG_BY_TIME, &order_key(pos)).await.unwrap(),
            Some(t.conversation.to_vec())
        );
        for p in &t.peers {
            assert_eq!(
                target
                    .get(MSG_BY_PEER, &prefixed_key(p, pos))
                    .await
                    .unwrap(),
                Some(t.conversation.to_vec())
            );
        }
    }
    // Counters rebuilt from the record keys and msg_by_peer.
    for c in 0..3 {
        let id = format!("conv-{c}");
        let key = conversation_token(keys, &id);
        let stored = target.get(CONVERSATIONS, &key).await.unwrap().unwrap();
        let s: ConversationSummary = sealed::open(keys, CONVERSATIONS, &key, &stored).unwrap();
        let count = (0..n).filter(|i| i % 3 == c).count() as u64;
        assert_eq!(
            s,
            ConversationSummary {
                id,
                message_count: count
            }
        );
    }
    assert_eq!(target.len(PEERS).await.unwrap(), 4);
    for p in 0..4 {
        let id = format!("peer-{p}");
        let key = peer_token(keys, &id);
        let stored = target.get(PEERS, &key).await.unwrap().unwrap();
        let s: PeerSummary = sealed::open(keys, PEERS, &key, &stored).unwrap();
        let count = (0..n)
            .filter(|i| {
                let m = common::message(*i, 0);
                m.sender == id || m.recipient.as_deref() == Some(id.as_str())
            })
            .count() as u64;
        assert_eq!(s.message_count, count, "{id}");
    }
    assert_eq!(dump(&target, keys).await, dump(&source, keys).await);
}

/// The logical stream did not change with schema v4: messages are carried under their
/// message token, as v3 code carried them, so a backup made by v3 code restores, to the v4
/// layout, with `meta` saying 3 (the facade's migration finishes the job when it opens the
/// store).
#[tokio::test]
async fn a_backup_made_by_schema_3_code_restores_to_the_v4_layout() {
    use tresor_schema::catalog::{MESSAGES, META, TABLES, meta_keys};
    use tresor_schema::messages::message_token;
    use tresor_schema::version;

    let k = cheap_keys();
    let n = 40;
    // This code's store (its message records in format 3), the same in the v4 code's format 1,
    // and in the v3 code's layout.
    let v4 = build_store(&k, n, 30).await;
    let v4_format1 = common::build_store_at(&k, n, 30, 4).await;
    let v3 = common::build_store_at(&k, n, 30, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir_target(dir.path()), &k).await;
    r.backup(&v4, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();

    // The stream as FORMAT.md describes it, built from the v3 store: meta in key order, then
    // every message, in time order, under its message token.
    let stream_of = |meta: Vec<(Vec<u8>, Vec<u8>)>, schema: u32, compact: bool| {
        let mut entries: Vec<common::RawEntry> = Vec::new();
        for (key, value) in meta {
            let value = if key == meta_keys::SCHEMA_VERSION.as_bytes() {
                version::encode(schema).to_vec()
            } else {
                value
            };
            entries.push((0, key, value));
        }
        for i in 0..n {
            let m = common::message(i, 30);
            entries.push((
                1,
                message_token(&k.keys, &m.id).to_vec(),
                if compact {
                    tresor_schema::compact::encode_message(&m).unwrap()
                } else {
                    tresor_schema::codec::encode(&m).unwrap()
                },
            ));
        }
        common::encode_entries(&entries)
    };
    let meta = common::raw_table(&v3, META).await;
    let v3_stream = stream_of(meta.clone(), 3, false);
    let v4_stream = stream_of(meta, version::SCHEMA_VERSION, true);
    // Message plaintexts in the v3 store are what the stream carries.
    let token = message_token(&k.keys, "msg-7");
    let stored = v3.get(MESSAGES, &token).await.unwrap().unwrap();
    assert_eq!(
        tresor_schema::sealed::open_bytes(&k.keys, MESSAGES, &token, &stored).unwrap(),
        tresor_schema::codec::encode(&common::message(7, 30)).unwrap()
    );

    // This code's backup of the v4 store is that stream, byte for byte.
    let editor = ManifestEditor::new(dir.path(), &k.keys);
    let codec = ChunkCodec::new(dir.path(), &k.keys);
    let manifest_path = files(dir.path(), "manifests").pop().unwrap();
    let (header, before, list) = editor.open(&std::fs::read(&manifest_path).unwrap());
    let mut stream = Vec::new();
    for c in &list {
        let plain = codec.read(dir.path(), &c[..32]);
        assert_eq!(
            plain.len(),
            u32::from_le_bytes(c[32..].try_into().unwrap()) as usize
        );
        stream.extend_from_slice(&plain);
    }
    assert_eq!(stream, v4_stream);

    // Rewrite the backup as v3 code wrote it: schema version 3 in the manifest and in the
    // stream's meta, the 9 table counts of the v3 store.
    let mut v3_tables = Vec::new();
    for spec in &TABLES[..9] {
        v3_tables.push(v3.len(spec.name).await.unwrap());
    }
    let mut plain = 3u32.to_le_bytes().to_vec();
    let mut at = 4;
    let tv = 1 + usize::from(before[at]);
    let desc = 2 + usize::from(u16::from_le_bytes(
        before[at + tv..at + tv + 2].try_into().unwrap(),
    ));
    let kh_at = at + tv + desc;
    let kh = 2 + usize::from(u16::from_le_bytes(
        before[kh_at..kh_at + 2].try_into().unwrap(),
    ));
    plain.extend_from_slice(&before[at..kh_at + kh]);
    at = kh_at + kh;
    assert_eq!(usize::from(before[at]), TABLES.len());
    plain.push(9);
    for count in &v3_tables {
        plain.extend_from_slice(&count.to_le_bytes());
    }
    at += 1 + 8 * TABLES.len();
    // stream_entries as before; stream_bytes of the v3 stream (its records in format 1 are
    // longer than this code's); added_bytes and added_chunks as before.
    assert_eq!(before.len() - 32 - at, 32);
    plain.extend_from_slice(&before[at..at + 8]);
    plain.extend_from_slice(&(v3_stream.len() as u64).to_le_bytes());
    plain.extend_from_slice(&before[at + 16..at + 32]);
    plain.extend_from_slice(blake3::hash(&v3_stream).as_bytes());
    let chunk = codec.write(dir.path(), &v3_stream);
    std::fs::write(&manifest_path, editor.seal(&header, &plain, &[chunk])).unwrap();

    let fresh = Repository::open(dir_target(dir.path()), &passphrase())
        .await
        .unwrap();
    let info = fresh.find("latest").await.unwrap();
    assert_eq!(info.schema_version, 3);
    fresh.verify(None, None, &NoProgress).await.unwrap();
    let target = MemoryBackend::new();
    let summary = fresh.restore("latest", &target, &NoProgress).await.unwrap();
    assert_eq!(summary.schema_version, 3);
    // The v4 layout (records as the v3 code wrote them: format 1), with meta saying 3.
    let mut expected = dump(&v4_format1, &k.keys).await;
    for (key, value) in expected.get_mut(META).unwrap() {
        if key.as_slice() == meta_keys::SCHEMA_VERSION.as_bytes() {
            *value = version::encode(3).to_vec();
        }
    }
    assert_eq!(dump(&target, &k.keys).await, expected);

    // This code backs up only a store in the v4 layout, and says why.
    let err = r
        .backup(&v3, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackupError::InvalidEntry { table: META, .. }),
        "{err:?}"
    );
    let mut batch = tresor_backend::WriteBatch::new();
    batch.put(
        META,
        meta_keys::SCHEMA_VERSION,
        version::encode(version::SCHEMA_VERSION).to_vec(),
    );
    tresor_backend::Backend::commit(&v3, batch, tresor_backend::Durability::Immediate)
        .await
        .unwrap();
    let err = r
        .backup(&v3, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::InvalidEntry {
                table: tresor_schema::catalog::MSG_BY_TIME,
                ..
            }
        ),
        "{err:?}"
    );
}
