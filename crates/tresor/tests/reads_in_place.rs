//! `Options::reads_in_place`: an async query's engine reads run on the calling thread through
//! `tokio::task::block_in_place`, which hands the thread's other tasks to another worker first.
//! A read view that sleeps (a slow disk) shows it: on a runtime with a *single* worker, a
//! ticking task keeps ticking during the query, which it could not if the read blocked that
//! worker. On a current-thread runtime the option falls back to the blocking pool.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tresor::{Message, Options, RedbBackend, Tresor};
use tresor_backend::{Fault, FaultBackend, FaultKind, FaultPoint};

/// Every read of a view sleeps this long.
const DELAY: Duration = Duration::from_millis(40);

/// A store over redb whose view reads sleep [`DELAY`], with three messages, and the directory
/// holding it.
async fn slow_store(options: Options) -> (Tresor, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let never = Fault {
        point: FaultPoint::Read,
        nth: u64::MAX,
        kind: FaultKind::Io,
        sticky: false,
    };
    let backend = FaultBackend::new(
        RedbBackend::open(dir.path().join("store.redb")).unwrap(),
        never,
    )
    .with_view_read_delay(DELAY);
    let store = Tresor::with_backend(backend, "pw".into(), options)
        .await
        .unwrap();
    let batch: Vec<Message> = (0..3)
        .map(|i| Message::new(format!("m{i}"), "c", "alice", None, i, "hi"))
        .collect();
    store.messages().save_batch(&batch).await.unwrap();
    (store, dir)
}

/// Ticks of a task that ticks every 2 ms while `m1` is read (at least two view reads, so at
/// least twice [`DELAY`]); and the message read.
async fn ticks_during_a_get(store: &Tresor) -> (u64, Option<Message>) {
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = {
        let ticks = Arc::clone(&ticks);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(2)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Let the ticker start.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let before = ticks.load(Ordering::SeqCst);
    // On a worker, as an application's task would (a test's own body runs on the thread that
    // called `block_on`, which is not a worker).
    let reader = store.clone();
    let got = tokio::spawn(async move { reader.messages().get("m1").await })
        .await
        .unwrap()
        .unwrap();
    let during = ticks.load(Ordering::SeqCst) - before;
    ticker.abort();
    (during, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn in_place_reads_leave_the_other_tasks_running() {
    let (store, _dir) = slow_store(Options::default().with_reads_in_place(true)).await;
    let (during, got) = ticks_during_a_get(&store).await;
    assert_eq!(got.unwrap().id, "m1");
    // 80 ms or more at a tick per 2 ms: about 40 ticks; none if the worker were blocked.
    assert!(during >= 10, "the only worker was blocked: {during} ticks");
    // Every query answers as with the option off.
    let page = store
        .messages()
        .by_conversation("c", 10, None)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["m2", "m1", "m0"]
    );
    assert_eq!(store.messages().scan(10, None).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn on_a_current_thread_runtime_reads_take_the_blocking_pool() {
    let (store, _dir) = slow_store(Options::default().with_reads_in_place(true)).await;
    let (during, got) = ticks_during_a_get(&store).await;
    assert_eq!(got.unwrap().id, "m1");
    assert!(
        during >= 10,
        "the runtime's only thread was blocked: {during} ticks"
    );
}
