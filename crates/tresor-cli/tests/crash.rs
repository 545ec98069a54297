//! Crash consistency: a writer process is SIGKILLed at random moments; after each kill the
//! store reopens with every acknowledged write present, no batch half visible, and `check`
//! clean. 20 iterations here; `cargo xtask crash --iterations N` runs more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use tresor::Tresor;
use tresor_cli::crash::{Model, Rng};

const PASS: &str = "crash test passphrase";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let iterations: u64 = std::env::var("TRESOR_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.redb");
    let mut model = Model::default();
    let mut rng = Rng::new(0xC0FFEE);
    let (mut acked_total, mut kills) = (0usize, 0u64);
    for i in 0..iterations {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tresor-crash-writer"))
            .arg(&db)
            .arg(i.to_string())
            .env("TRESOR_PASSPHRASE", PASS)
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
        let store = Tresor::open(&db, PASS.into())
            .await
            .expect("store reopens after SIGKILL");
        let problems = model.verify(&store).await.unwrap();
        assert!(problems.is_empty(), "iteration {i}: {problems:?}");
        let report = store.check().await.unwrap();
        assert!(report.is_clean(), "iteration {i}: {:?}", report.issues);
        drop(store);
    }
    println!(
        "{kills} kills, {acked_total} acknowledged commits, {} messages verified present, {} deletes verified",
        model.present.len(),
        model.deleted.len()
    );
    assert!(
        acked_total > 0,
        "the writer must have acknowledged something"
    );
}
