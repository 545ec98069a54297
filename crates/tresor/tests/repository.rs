//! Backups to repositories through the facade: backup → restore gives the same answers with
//! the passphrase alone; a damaged repository leaves nothing behind; scheduled backups run on
//! time, after N writes and at close, and apply retention.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{PASS, msg};
use tresor::{
    BackupOptions, BackupPolicy, BackupTarget, DirTarget, Error, Message, NoProgress,
    RetentionPolicy, Tresor, open_repository, restore_from_repository,
};

fn batch(range: std::ops::Range<usize>) -> Vec<Message> {
    range
        .map(|i| {
            msg(
                &format!("m{i}"),
                &format!("c{}", i % 7),
                &format!("p{}", i % 5),
                Some(&format!("p{}", (i + 1) % 5)),
                1_600_000_000_000 + i as i64 * 1000,
                &format!("message body number {i}"),
            )
        })
        .collect()
}

async fn answers(store: &Tresor) -> (Vec<Message>, Vec<Message>, (u64, u64, u64)) {
    let m = store.messages();
    let s = store.stats().await.unwrap();
    (
        m.recent(1000, None).await.unwrap(),
        m.by_peer("p2", 1000, None).await.unwrap(),
        (s.messages, s.conversations, s.peers),
    )
}

fn target(dir: &Path) -> Arc<dyn BackupTarget> {
    Arc::new(DirTarget::new(dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_gives_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Tresor::create(dir.path().join("a.redb"), PASS.into())
        .await
        .unwrap();
    store
        .messages()
        .save_batch(&batch(0..10_000))
        .await
        .unwrap();
    store.messages().delete("m17").await.unwrap();
    let repo_dir = dir.path().join("repo");
    let first = store
        .backup_to_target(target(&repo_dir), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    store
        .messages()
        .save_batch(&batch(10_000..10_030))
        .await
        .unwrap();
    let second = store
        .backup_to_target(target(&repo_dir), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(
        second.info.added_chunks * 2 < second.info.chunks,
        "{:?}",
        second.info
    );

    let repo = open_repository(target(&repo_dir), &PASS.into())
        .await
        .unwrap();
    let restored_path = dir.path().join("new").join("b.redb");
    std::fs::create_dir_all(restored_path.parent().unwrap()).unwrap();
    let (restored, summary) =
        restore_from_repository(&repo, "latest", &restored_path, PASS.into(), &NoProgress)
            .await
            .unwrap();
    assert_eq!(summary.table_entries("messages"), 10_029);
    assert_eq!(answers(&restored).await, answers(&store).await);
    assert!(restored.check().await.unwrap().is_clean());
    drop(restored);
    // The first backup restores the first state.
    let old_path = dir.path().join("old.redb");
    let (old, _) = restore_from_repository(
        &repo,
        &first.info.id[..8],
        &old_path,
        PASS.into(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(old.stats().await.unwrap().messages, 9_999);
    // An existing path is refused.
    assert!(matches!(
        restore_from_repository(&repo, "latest", &old_path, PASS.into(), &NoProgress).await,
        Err(Error::AlreadyExists(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_repository_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Tresor::create(dir.path().join("a.redb"), PASS.into())
        .await
        .unwrap();
    store.messages().save_batch(&batch(0..200)).await.unwrap();
    let repo_dir = dir.path().join("repo");
    store
        .backup_to_target(target(&repo_dir), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let mut chunks: Vec<_> = std::fs::read_dir(repo_dir.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    chunks.sort();
    let last = chunks.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(last, bytes).unwrap();
    let repo = open_repository(target(&repo_dir), &PASS.into())
        .await
        .unwrap();
    let path = dir.path().join("r.redb");
    assert!(matches!(
        restore_from_repository(&repo, "latest", &path, PASS.into(), &NoProgress).await,
        Err(Error::Backup(_))
    ));
    assert!(!path.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_after_writes_and_at_close_with_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = Tresor::create(dir.path().join("a.redb"), PASS.into())
        .await
        .unwrap();
    let repo_dir = dir.path().join("repo");
    let mut policy = BackupPolicy::every(target(&repo_dir), Duration::from_secs(3600));
    policy.after_writes = Some(50);
    policy.at_close = true;
    policy.retention = Some(RetentionPolicy::keep_last(2));
    policy.prune = true;
    let mut schedule = store.schedule_backups(policy);
    assert_eq!(schedule.latest(), None);
    for round in 0..3 {
        store
            .messages()
            .save_batch(&batch(round * 60..round * 60 + 60))
            .await
            .unwrap();
        let run = schedule.next().await.unwrap();
        assert_eq!(
            run.backup.tables[1],
            ("messages".into(), (round as u64 + 1) * 60)
        );
        assert_eq!(run.attempts, 1);
        assert_eq!(run.forgotten, u64::from(round == 2));
    }
    // Fewer writes than the threshold: no backup until close, which runs a last one.
    store.messages().save_batch(&batch(180..190)).await.unwrap();
    let last = schedule.close().await.unwrap().unwrap();
    assert_eq!(last.backup.tables[1].1, 190);
    let repo = open_repository(target(&repo_dir), &PASS.into())
        .await
        .unwrap();
    let list = repo.list().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].id, last.backup.id);
    repo.verify(None, None, &NoProgress).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_retry_with_backoff_and_report_failure() {
    let dir = tempfile::tempdir().unwrap();
    let store = Tresor::create(dir.path().join("a.redb"), PASS.into())
        .await
        .unwrap();
    store.messages().save_batch(&batch(0..10)).await.unwrap();
    // A target whose root is a file: every write fails.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let mut policy = BackupPolicy::every(target(&blocker.join("repo")), Duration::from_millis(50));
    policy.retries = 2;
    policy.backoff = Duration::from_millis(5);
    let mut schedule = store.schedule_backups(policy);
    let err = schedule.next().await.unwrap_err();
    assert!(err.contains("target"), "{err}");
    // Writers are not blocked meanwhile.
    store.messages().save_batch(&batch(10..20)).await.unwrap();
    drop(schedule);
}
