//! Crash consistency: a writer process is SIGKILLed at random moments; after each kill the
//! store reopens with every acknowledged write present, no batch half visible, and `check`
//! clean. Every other writer commits through redb's commit log (`Options::commit_log`). 20
//! iterations here; `cargo xtask crash --iterations N` runs more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use tresor::Tresor;
use tresor_cli::crash::{Model, Rng};

const PASS: &str = "crash-test-passphrase"; // no spaces: logged on one line

/// Opens the store, waiting out a `Locked` while the previous handle's background key
/// rotation finishes its current batch and releases the file.
async fn open_retrying(db: &std::path::Path, pass: &str) -> Result<Tresor, tresor::Error> {
    for _ in 0..200 {
        match Tresor::open(db, pass.into()).await {
            Err(tresor::Error::Backend(tresor_backend_locked))
                if is_locked(&tresor_backend_locked) =>
            {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            other => return other,
        }
    }
    Tresor::open(db, pass.into()).await
}

fn is_locked(e: &dyn std::fmt::Display) -> bool {
    e.to_string().contains("locked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let iterations: u64 = std::env::var("TRESOR_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let mut db = dir.path().join("crash-0.redb");
    let mut model = Model::default();
    let mut history: Vec<String> = Vec::new();
    let mut rng = Rng::new(0xC0FFEE);
    let (mut acked_total, mut kills) = (0usize, 0u64);
    let (mut verified, mut deletes, mut key_changes) = (0usize, 0usize, 0u64);
    for i in 0..iterations {
        // A fresh store every 40 kills keeps each check (which reads the whole store) bounded,
        // so long runs (`cargo xtask crash`) stay linear in the number of kills.
        if i > 0 && i % 40 == 0 {
            verified += model.present.len();
            deletes += model.deleted.len();
            key_changes += model.key_changes;
            model = Model::default();
            history.clear();
            db = dir.path().join(format!("crash-{i}.redb"));
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_tresor-crash-writer"))
            .arg(&db)
            .arg(i.to_string())
            // Every other writer commits through redb's commit log; the checks below open the
            // store without it, so its records are replayed by an open that does not use it.
            .env(
                "TRESOR_CRASH_COMMIT_LOG",
                if i % 2 == 1 { "1" } else { "0" },
            )
            .env(
                "TRESOR_PASSPHRASE",
                model.passphrase.clone().unwrap_or_else(|| PASS.to_owned()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("writer starts");
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        // The first iteration pays store creation (KDF); later ones open it.
        let wait = 150 + rng.below(if i == 0 { 600 } else { 350 });
        std::thread::sleep(Duration::from_millis(wait));
        let still_running = child.try_wait().unwrap().is_none();
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        let log = reader.join().unwrap();
        if !still_running {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("writer exited by itself ({status}): {err}");
        }
        kills += 1;
        acked_total += log.lines().filter(|l| l.starts_with("ack ")).count();
        model.apply_log(&log);
        // Exactly one of the two passphrases opens the store, and the acknowledged one if known.
        let alt = tresor_cli::crash::alternate(PASS);
        let with_main = open_retrying(&db, PASS).await.map(drop);
        let with_alt = open_retrying(&db, &alt).await.map(drop);
        let opened_with = match (with_main, with_alt) {
            (Ok(()), Err(tresor::Error::WrongPassphrase)) => PASS.to_owned(),
            (Err(tresor::Error::WrongPassphrase), Ok(())) => alt.clone(),
            (a, b) => panic!(
                "iteration {i}: exactly one passphrase must open: {:?} / {:?}",
                a.err(),
                b.err()
            ),
        };
        let store = open_retrying(&db, &opened_with).await.unwrap();
        if let Some(p) = &model.passphrase {
            assert_eq!(
                &opened_with, p,
                "iteration {i}: the acknowledged passphrase opens"
            );
        }
        model.passphrase = Some(opened_with);
        let problems = model.verify(&store).await.unwrap();
        let key_batches: Vec<String> = log
            .lines()
            .filter(|l| l.starts_with("begin-passwd") || l.starts_with("begin-rekey"))
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect();
        history.extend(
            log.lines()
                .filter(|l| {
                    l.starts_with("begin-passwd")
                        || l.starts_with("begin-rekey")
                        || key_batches.iter().any(|b| *l == format!("ack {b}"))
                })
                .map(|l| format!("run {i}: {l}")),
        );
        assert!(
            problems.is_empty(),
            "iteration {i}: {problems:?}; key changes so far: {history:?}"
        );
        let report = store.check().await.unwrap();
        assert!(report.is_clean(), "iteration {i}: {:?}", report.issues);
        drop(store);
    }
    println!(
        "{kills} kills, {acked_total} acknowledged commits, {} messages verified present, {} deletes verified, {} passphrase changes and key rotations",
        verified + model.present.len(),
        deletes + model.deleted.len(),
        key_changes + model.key_changes
    );
    assert!(
        acked_total > 0,
        "the writer must have acknowledged something"
    );
}
