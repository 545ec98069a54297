//! What only another process can show: the store is locked against a second process, and a
//! process killed without a clean close keeps every `Immediate` commit and a prefix of the
//! `Eventual` ones.
//!
//! The child processes are this test binary run again with `TRESOR_REDB_CHILD` set: the test
//! `child_process_entry` then plays the child's part (and does nothing in a normal run).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use tresor_backend::{Backend, BackendError, Durability, WriteBatch};
use tresor_redb::{RedbBackend, RedbConfig};

/// Exit code of a child whose open failed with `Locked`.
const LOCKED: i32 = 10;
/// Exit code of a child whose open failed otherwise.
const OTHER_ERROR: i32 = 11;

/// This test binary, to be run again as a child playing `role` on the store at `path`.
fn child_command(role: &str, path: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_process_entry",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("TRESOR_REDB_CHILD", role)
    .env("TRESOR_REDB_PATH", path);
    cmd
}

/// Runs a child playing `role` to its end.
fn child(role: &str, path: &Path) -> ExitStatus {
    child_command(role, path).status().unwrap()
}

/// Runs a child playing `role` until it prints `COMMITTED`, then kills it (SIGKILL on Unix):
/// no destructor, no clean close. The child's store has the commit log unless `log` is false.
fn child_killed_after_commits(role: &str, path: &Path) -> ExitStatus {
    child_killed_after_commits_with(role, path, true)
}

/// [`child_killed_after_commits`], with or without the commit log.
fn child_killed_after_commits_with(role: &str, path: &Path, log: bool) -> ExitStatus {
    let mut command = child_command(role, path);
    if !log {
        command.env("TRESOR_REDB_NO_LOG", "1");
    }
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let committed = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(COMMITTED));
    // Killed in any case, so that a failing child never outlives the test.
    let _ = child.kill();
    let status = child.wait().unwrap();
    assert!(committed, "the child stopped before committing: {status:?}");
    status
}

/// What a child prints once its commits returned.
const COMMITTED: &str = "COMMITTED";

/// Tells the parent the commits returned, then waits to be killed.
fn wait_to_be_killed() -> ! {
    println!("{COMMITTED}");
    loop {
        std::thread::park();
    }
}

async fn put(b: &RedbBackend, key: &[u8], durability: Durability) {
    let mut batch = WriteBatch::new();
    batch.put("t", key, key);
    b.commit(batch, durability).await.unwrap();
}

/// The 256 KiB value the "large log" role writes under key `i`.
fn big_value(i: u32) -> Vec<u8> {
    (0..256 * 1024)
        .map(|j: u32| (j ^ i.wrapping_mul(31)) as u8)
        .collect()
}

/// The child's part; a no-op unless `TRESOR_REDB_CHILD` is set by [`child`].
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var("TRESOR_REDB_CHILD") else {
        return;
    };
    let path = std::env::var("TRESOR_REDB_PATH").unwrap();
    let config = RedbConfig::default()
        .with_commit_log(std::env::var("TRESOR_REDB_NO_LOG").is_err())
        // Small enough that the "many" role checkpoints several times; the "large log" role
        // never checkpoints, so that its whole log is replayed.
        .with_checkpoint_bytes(if role == "large_log_then_killed" {
            u64::MAX
        } else {
            4096
        });
    let backend = match RedbBackend::open_with_config(&path, config) {
        Ok(b) => b,
        Err(BackendError::Locked) => std::process::exit(LOCKED),
        Err(err) => {
            eprintln!("child open: {err:?}");
            std::process::exit(OTHER_ERROR)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match role.as_str() {
            "open" => {}
            "eventual_then_killed" => {
                put(&backend, b"durable", Durability::Immediate).await;
                put(&backend, b"eventual_1", Durability::Eventual).await;
                put(&backend, b"eventual_2", Durability::Eventual).await;
                // Visible to this process before the crash.
                assert!(backend.get("t", b"eventual_2").await.unwrap().is_some());
                wait_to_be_killed();
            }
            "eventual_then_immediate_then_killed" => {
                put(&backend, b"eventual", Durability::Eventual).await;
                put(&backend, b"immediate", Durability::Immediate).await;
                wait_to_be_killed();
            }
            "many_then_killed" => {
                for i in 0u32..300 {
                    let mut batch = WriteBatch::new();
                    batch.put("t", i.to_be_bytes(), vec![7u8; 100]);
                    if i > 0 {
                        batch.delete("t", (i - 1).to_be_bytes());
                    }
                    batch.put("n", b"last", i.to_be_bytes());
                    backend.commit(batch, Durability::Immediate).await.unwrap();
                }
                assert!(backend.writer_stats().checkpoints >= 3);
                wait_to_be_killed();
            }
            "large_log_then_killed" => {
                // 24 MiB of log: three replay chunks (8 MiB each) and more.
                for i in 0u32..96 {
                    let mut batch = WriteBatch::new();
                    batch.put("big", i.to_be_bytes(), big_value(i));
                    if i % 4 == 3 {
                        batch.delete("big", (i - 1).to_be_bytes());
                    }
                    backend.commit(batch, Durability::Immediate).await.unwrap();
                }
                assert_eq!(backend.writer_stats().checkpoints, 0);
                wait_to_be_killed();
            }
            other => panic!("unknown child role {other}"),
        }
    });
    std::process::exit(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_opening_the_store_gets_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let first = RedbBackend::open(&path).unwrap();
    put(&first, b"k", Durability::Immediate).await;
    assert_eq!(child("open", &path).code(), Some(LOCKED));
    // The refused open changed nothing, and the lock goes with the last handle.
    assert_eq!(first.get("t", b"k").await.unwrap(), Some(b"k".to_vec()));
    drop(first);
    assert_eq!(child("open", &path).code(), Some(0));
}

/// With the commit log, a killed process loses nothing it committed: every
/// batch, `Eventual` ones included, was written to the log before its commit returned, and the
/// OS keeps written data across the death of a process (only a power loss can drop the
/// `Eventual` records, which were never synced). The reopen replays them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_with_the_commit_log_keeps_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let status = child_killed_after_commits("eventual_then_killed", &path);
    assert!(!status.success(), "the child was killed: {status:?}");
    let log = dir.path().join("store.redb-log");
    assert!(
        std::fs::metadata(&log).unwrap().len() > 32,
        "the killed child left its records in the log"
    );
    let with_log = RedbConfig::default().with_commit_log(true);
    let b = RedbBackend::open_existing_with_config(&path, with_log).unwrap();
    assert_eq!(b.recovery().replayed_batches, 3);
    assert_eq!(b.recovery().discarded_bytes, 0);
    for key in [&b"durable"[..], b"eventual_1", b"eventual_2"] {
        assert_eq!(b.get("t", key).await.unwrap(), Some(key.to_vec()));
    }
    // The replayed records are in the database now: the log was emptied.
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 32);
    put(&b, b"after", Durability::Immediate).await;
    drop(b);
    // A clean close checkpointed and deleted the log; opening without it replays nothing.
    assert!(!log.exists());
    let b =
        RedbBackend::open_existing_with_config(&path, RedbConfig::default().with_commit_log(false))
            .unwrap();
    assert_eq!(b.recovery().replayed_batches, 0);
    assert_eq!(b.len("t").await.unwrap(), 4);
}

/// Without the commit log, `Eventual` commits are redb's non-durable commits: a killed process
/// loses them (a suffix), never an `Immediate` one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_keeps_immediate_commits_and_a_prefix_of_eventual_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let status = child_killed_after_commits_with("eventual_then_killed", &path, false);
    assert!(!status.success(), "the child was killed: {status:?}");
    let b =
        RedbBackend::open_existing_with_config(&path, RedbConfig::default().with_commit_log(false))
            .unwrap();
    assert_eq!(
        b.get("t", b"durable").await.unwrap(),
        Some(b"durable".to_vec())
    );
    let e1 = b.get("t", b"eventual_1").await.unwrap().is_some();
    let e2 = b.get("t", b"eventual_2").await.unwrap().is_some();
    // The loss window: Eventual commits since the last Immediate one may be lost, but only as
    // a suffix (never a later one without an earlier one). redb 4.6 loses both here: its
    // recovery goes back to the last durable commit.
    assert!(e1 || !e2, "eventual_2 survived without eventual_1");
    assert_eq!(
        (e1, e2),
        (false, false),
        "redb 4.6 keeps no non-durable commit"
    );
    // The recovered store takes writes.
    put(&b, b"after", Durability::Immediate).await;
    assert_eq!(b.len("t").await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_commit_makes_earlier_eventual_ones_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let status = child_killed_after_commits("eventual_then_immediate_then_killed", &path);
    assert!(!status.success(), "the child was killed: {status:?}");
    let b = RedbBackend::open_existing(&path).unwrap();
    assert_eq!(
        b.get("t", b"eventual").await.unwrap(),
        Some(b"eventual".to_vec())
    );
    assert_eq!(
        b.get("t", b"immediate").await.unwrap(),
        Some(b"immediate".to_vec())
    );
}

/// Checkpoints empty the log while writes go on; a kill after them loses nothing: the reopen
/// replays the records written since the last checkpoint over the checkpointed state (puts
/// and deletes alike).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_after_checkpoints_keeps_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let status = child_killed_after_commits("many_then_killed", &path);
    assert!(!status.success(), "the child was killed: {status:?}");
    // Opened without the log: the log left by the crash is still replayed, then deleted.
    let b =
        RedbBackend::open_existing_with_config(&path, RedbConfig::default().with_commit_log(false))
            .unwrap();
    assert!(!dir.path().join("store.redb-log").exists());
    let replayed = b.recovery().replayed_batches;
    assert!(replayed > 0 && replayed < 300, "replayed {replayed}");
    assert_eq!(b.len("t").await.unwrap(), 1);
    assert_eq!(
        b.get("t", &299u32.to_be_bytes()).await.unwrap(),
        Some(vec![7u8; 100])
    );
    assert_eq!(
        b.get("n", b"last").await.unwrap(),
        Some(299u32.to_be_bytes().to_vec())
    );
}

/// A log much larger than one replay chunk (24 MiB against 8 MiB) left by a killed process is
/// replayed whole at the next open, in order across chunk boundaries (deletes of keys put in
/// earlier chunks included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_of_several_replay_chunks_is_replayed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let status = child_killed_after_commits("large_log_then_killed", &path);
    assert!(!status.success(), "the child was killed: {status:?}");
    let log = dir.path().join("store.redb-log");
    assert!(std::fs::metadata(&log).unwrap().len() > 24 << 20);
    let b = RedbBackend::open_existing(&path).unwrap();
    assert_eq!(b.recovery().replayed_batches, 96);
    assert_eq!(b.recovery().discarded_bytes, 0);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 32);
    assert_eq!(b.len("big").await.unwrap(), 96 - 24);
    for i in 0u32..96 {
        let deleted = i % 4 == 2;
        let got = b.get("big", &i.to_be_bytes()).await.unwrap();
        assert_eq!(got, (!deleted).then(|| big_value(i)), "key {i}");
    }
}
