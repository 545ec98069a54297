//! Nothing is lost by a backup: a store with every record family (messages, conversations,
//! contacts, sessions, proofs, relay queue, key values, an application-defined typed table) is
//! backed up to a file (format 1) and to a repository (format 2), restored, and every table of
//! the restored store is compared entry by entry with the source (sealed values opened).
//!
//! And backups do not block writers: a backup whose target blocks until signalled lets writes
//! complete meanwhile, and holds exactly the state of the moment it started.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tresor::typed::{IndexDef, KeyPart, TableDef};
use tresor::{
    BackupEvent, BackupKind, BackupOptions, BackupTarget, Contact, Conversation, ConversationKind,
    DirTarget, NoProgress, ObjectInfo, Proof, RelayItem, Session, TargetError, Tresor,
    open_repository, restore_backup, restore_from_repository,
};
use tresor_backend::{Backend, Direction, KeyRange};
use tresor_crypto::{KeyHeader, StoreKeys};
use tresor_schema::catalog::{META, TABLES, TableKind, meta_keys};
use tresor_schema::sealed;

use common::{PASS, msg};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    id: String,
    tag: String,
    text: String,
}

/// An application-defined typed table: it must come back too.
static NOTES: TableDef<Note> = TableDef {
    name: "notes",
    primary_key: |n| n.id.as_bytes().to_vec(),
    indexes: &[IndexDef {
        name: "tag",
        unique: false,
        keys: |n| vec![vec![KeyPart::id(&n.tag)]],
    }],
};

/// Writes into every record family.
async fn fill(store: &Tresor, n: usize) {
    let messages: Vec<_> = (0..n)
        .map(|i| {
            msg(
                &format!("m{i}"),
                &format!("c{}", i % 6),
                &format!("p{}", i % 4),
                (i % 3 != 0).then(|| format!("p{}", (i + 1) % 4)).as_deref(),
                1_700_000_000_000 + i as i64 * 1_000,
                &format!("body {i} {}", "x".repeat(i % 50)),
            )
        })
        .collect();
    store.messages().save_batch(&messages).await.unwrap();
    store.messages().delete("m3").await.unwrap();
    store
        .conversations()
        .save(&Conversation {
            id: "c-custom".into(),
            kind: ConversationKind::Group,
            participants: vec!["p1".into(), "p2".into(), "p3".into()],
            title: Some("the group".into()),
            created_ms: 5,
            last_activity_ms: 9,
        })
        .await
        .unwrap();
    for i in 0..7 {
        store
            .contacts()
            .save(&Contact {
                peer_id: format!("p{i}"),
                display_name: format!("Peer {i}"),
                public_key: vec![i as u8; 32],
                verified: i % 2 == 0,
                blocked: i == 5,
            })
            .await
            .unwrap();
        store
            .sessions()
            .save(&Session {
                peer_id: format!("p{}", i % 3),
                device_id: format!("d{i}"),
                key_id: format!("k{}", i % 2),
                state: vec![i as u8; 40],
                last_activity_ms: 100 + i as i64,
            })
            .await
            .unwrap();
        store
            .proofs()
            .save(&Proof {
                id: format!("proof{i}"),
                message_id: format!("m{i}"),
                circuit_id: format!("circuit{}", i % 2),
                proof: vec![1, 2, i as u8],
                public_signals: vec![vec![i as u8], vec![4, 5]],
                generated_ms: 1_000 + i as i64,
                prover: "alice".into(),
            })
            .await
            .unwrap();
        store
            .relay_queue()
            .enqueue(&RelayItem {
                id: format!("r{i}"),
                peer_id: format!("p{i}"),
                payload: vec![9; i + 1],
                enqueued_ms: 10,
                next_attempt_ms: 10 + i as i64,
                attempts: 0,
            })
            .await
            .unwrap();
        store
            .key_values()
            .set(&format!("setting.{i}"), &[i as u8; 3])
            .await
            .unwrap();
        store
            .table(&NOTES)
            .put(&Note {
                id: format!("n{i}"),
                tag: format!("t{}", i % 3),
                text: "note".repeat(i),
            })
            .await
            .unwrap();
    }
    store.relay_queue().mark_attempt("r2", 50).await.unwrap();
    store.relay_queue().ack("r4").await.unwrap();
    store.contacts().delete("p6").await.unwrap();
}

/// Every table of the store file at `path`, sealed values opened; and the store's keys.
async fn dump(path: &Path) -> BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> {
    let backend = tresor_redb::RedbBackend::open_existing(path).unwrap();
    let header = backend
        .get(META, meta_keys::KEY_HEADER.as_bytes())
        .await
        .unwrap()
        .unwrap();
    let keys: StoreKeys = KeyHeader::decode(&header)
        .unwrap()
        .unlock(&PASS.into())
        .unwrap()
        .store_keys();
    let mut names = backend.tables().await.unwrap();
    names.extend(TABLES.iter().map(|t| t.name.to_owned()));
    names.sort();
    names.dedup();
    let mut out = BTreeMap::new();
    for name in names {
        let kind = TABLES
            .iter()
            .find(|t| t.name == name)
            .map(|t| (t.name, t.kind));
        let entries = backend
            .scan(
                &name,
                KeyRange {
                    start: Bound::Unbounded,
                    end: Bound::Unbounded,
                },
                Direction::Forward,
                1_000_000,
            )
            .await
            .unwrap();
        let table = entries
            .into_iter()
            .map(|(k, v)| {
                let v = match kind {
                    Some((static_name, TableKind::Sealed)) => {
                        sealed::open_bytes(&keys, static_name, &k, &v).unwrap()
                    }
                    _ => v,
                };
                (k, v)
            })
            .collect();
        out.insert(name, table);
    }
    out
}

fn seal_count(tables: &BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>) -> u64 {
    tables[META]
        .get(meta_keys::SEAL_COUNT.as_bytes())
        .map_or(0, |b| u64::from_le_bytes(b.as_slice().try_into().unwrap()))
}

/// Compares a restored store's tables with the source's: equal entry by entry, except the
/// seal count, which grows by the records the restore re-sealed.
fn assert_same(
    source: &BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
    restored: &BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
    what: &str,
) {
    let names = |t: &BTreeMap<String, _>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(source), names(restored), "{what}: table names");
    for (name, entries) in source {
        let other = &restored[name];
        if name == META {
            let strip = |t: &BTreeMap<Vec<u8>, Vec<u8>>| {
                let mut t = t.clone();
                t.remove(meta_keys::SEAL_COUNT.as_bytes());
                t
            };
            assert_eq!(strip(entries), strip(other), "{what}: meta");
            continue;
        }
        assert_eq!(entries.len(), other.len(), "{what}: entries of {name}");
        for ((k1, v1), (k2, v2)) in entries.iter().zip(other) {
            assert_eq!(k1, k2, "{what}: a key of {name}");
            assert_eq!(v1, v2, "{what}: the value of a key of {name}");
        }
    }
    let resealed: u64 = TABLES
        .iter()
        .filter(|t| t.kind == TableKind::Sealed)
        .map(|t| source[t.name].len() as u64)
        .sum();
    assert_eq!(
        seal_count(restored),
        seal_count(source) + resealed,
        "{what}: seal count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_comes_back_from_file_and_repository_backups() {
    let dir = tempfile::tempdir().unwrap();
    let source_path = dir.path().join("source.redb");
    let store = Tresor::create(&source_path, PASS.into()).await.unwrap();
    fill(&store, 400).await;

    let file = store.backup_to_dir(dir.path().join("files")).await.unwrap();
    let repo_dir = dir.path().join("repo");
    let target: Arc<dyn BackupTarget> = Arc::new(DirTarget::new(&repo_dir));
    let report = store
        .backup_to_target(target, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    drop(store);
    let source = dump(&source_path).await;
    // Every family wrote something: typed records and their indexes are not empty. Only
    // `msg_by_conversation` is empty: since schema v4 the record keys replace it.
    for table in TABLES {
        assert_eq!(
            source[table.name].is_empty(),
            table.name == tresor_schema::catalog::MSG_BY_CONVERSATION,
            "{} is empty or not as expected",
            table.name
        );
    }
    assert_eq!(
        report.info.tables,
        TABLES
            .iter()
            .map(|t| (t.name.to_owned(), source[t.name].len() as u64))
            .collect::<Vec<_>>()
    );

    let from_file = dir.path().join("from-file.redb");
    let (restored, _) = restore_backup(&file.path, &from_file, PASS.into())
        .await
        .unwrap();
    assert_eq!(
        restored
            .table(&NOTES)
            .get("n4")
            .await
            .unwrap()
            .unwrap()
            .text
            .len(),
        16
    );
    drop(restored);
    assert_same(&source, &dump(&from_file).await, "file backup");

    let repo = open_repository(Arc::new(DirTarget::new(&repo_dir)), &PASS.into())
        .await
        .unwrap();
    let from_repo = dir.path().join("from-repo.redb");
    let (restored, summary) =
        restore_from_repository(&repo, "latest", &from_repo, PASS.into(), &NoProgress)
            .await
            .unwrap();
    assert_eq!(summary.tables, report.info.tables);
    assert_eq!(
        restored
            .conversations()
            .get("c-custom")
            .await
            .unwrap()
            .unwrap()
            .title
            .as_deref(),
        Some("the group")
    );
    assert!(restored.check().await.unwrap().is_clean());
    drop(restored);
    assert_same(&source, &dump(&from_repo).await, "repository backup");
}

/// A target whose chunk uploads wait until the test opens it.
#[derive(Debug)]
struct Gate {
    inner: DirTarget,
    reached: tokio::sync::Notify,
    open: tokio::sync::watch::Sender<bool>,
}

#[async_trait::async_trait]
impl BackupTarget for Gate {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), TargetError> {
        if name.starts_with("chunks/") {
            self.reached.notify_one();
            let mut open = self.open.subscribe();
            open.wait_for(|open| *open).await.unwrap();
        }
        self.inner.put(name, bytes).await
    }
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, TargetError> {
        self.inner.get(name).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, TargetError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, name: &str) -> Result<(), TargetError> {
        self.inner.delete(name).await
    }
    fn describe(&self) -> String {
        "gate".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_complete_while_a_backup_runs_and_the_backup_is_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = Tresor::create(dir.path().join("s.redb"), PASS.into())
        .await
        .unwrap();
    fill(&store, 300).await;
    let before = dump_answers(&store).await;
    let mut events = store.backup_events();

    let gate = Arc::new(Gate {
        inner: DirTarget::new(dir.path().join("repo")),
        reached: tokio::sync::Notify::new(),
        open: tokio::sync::watch::channel(false).0,
    });
    let target: Arc<dyn BackupTarget> = gate.clone();
    let backup = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .backup_to_target(target, &BackupOptions::default(), &NoProgress)
                .await
        }
    });
    // The backup has read its snapshot and is stuck uploading its first chunk.
    gate.reached.notified().await;
    assert!(matches!(
        events.recv().await.unwrap(),
        BackupEvent::Started {
            kind: BackupKind::Repository,
            ..
        }
    ));
    assert!(!backup.is_finished());
    // Writes of every kind complete meanwhile (a writer blocked by the backup would hang
    // here; the timeout only turns such a hang into a failure).
    tokio::time::timeout(Duration::from_secs(120), async {
        store
            .messages()
            .save(&msg("late", "c1", "p1", None, 1_800_000_000_000, "late"))
            .await
            .unwrap();
        store.messages().delete("m10").await.unwrap();
        store.key_values().set("late", b"v").await.unwrap();
        store.relay_queue().ack("r1").await.unwrap();
    })
    .await
    .expect("writes waited for the backup");
    assert!(!backup.is_finished());
    let during = dump_answers(&store).await;
    assert_ne!(during, before);

    gate.open.send_replace(true);
    let report = backup.await.unwrap().unwrap();
    let BackupEvent::Finished(last) = events.recv().await.unwrap() else {
        panic!("expected the finished event");
    };
    assert!(last.ok());
    assert_eq!(last.id.as_deref(), Some(report.info.id.as_str()));
    assert_eq!(
        last.bytes,
        report.info.added_bytes + report.info.manifest_bytes
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.last_backup, Some(last));

    // The backup holds the state at its start: none of the writes made meanwhile.
    let repo = open_repository(
        Arc::new(DirTarget::new(dir.path().join("repo"))),
        &PASS.into(),
    )
    .await
    .unwrap();
    let (restored, _) = restore_from_repository(
        &repo,
        &report.info.id,
        dir.path().join("r.redb"),
        PASS.into(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(dump_answers(&restored).await, before);
}

/// What a store answers, through the public API, for every family.
async fn dump_answers(store: &Tresor) -> String {
    let m = store.messages();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        m.recent(10_000, None).await.unwrap(),
        store.conversations().recent(100, None).await.unwrap(),
        store.contacts().list(100, None).await.unwrap(),
        store.sessions().recent(100, None).await.unwrap(),
        store.proofs().recent(100, None).await.unwrap(),
        store.relay_queue().peek_due(i64::MAX, 100).await.unwrap(),
        store.key_values().list(100, None).await.unwrap(),
    )
}

#[tokio::test]
async fn a_failed_backup_is_recorded_in_stats_and_sent_as_an_event() {
    let store = common::memory_store().await;
    let mut events = store.backup_events();
    assert_eq!(store.stats().await.unwrap().last_backup, None);
    // A file where the repository's directory should be: the target fails.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let target: Arc<dyn BackupTarget> = Arc::new(DirTarget::new(blocker.join("repo")));
    assert!(
        store
            .backup_to_target(target, &BackupOptions::default(), &NoProgress)
            .await
            .is_err()
    );
    assert!(matches!(
        events.recv().await.unwrap(),
        BackupEvent::Started {
            kind: BackupKind::Repository,
            ..
        }
    ));
    let BackupEvent::Finished(failed) = events.recv().await.unwrap() else {
        panic!("expected the finished event");
    };
    assert_eq!(failed.kind, BackupKind::Repository);
    assert!(!failed.ok());
    assert_eq!(store.last_backup(), Some(failed));

    let file_backup = store.backup_to(FailingWriter).await;
    assert!(file_backup.is_err());
    assert!(matches!(
        events.recv().await.unwrap(),
        BackupEvent::Started {
            kind: BackupKind::File,
            ..
        }
    ));
    let BackupEvent::Finished(last) = events.recv().await.unwrap() else {
        panic!("expected the finished event");
    };
    assert!(!last.ok());
    assert_eq!(last.kind, BackupKind::File);
    assert_eq!(last.id, None);
    assert!(last.error.as_deref().unwrap().contains("disk on fire"));
    assert_eq!(store.stats().await.unwrap().last_backup, Some(last));
}

struct FailingWriter;

impl std::io::Write for FailingWriter {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk on fire"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
