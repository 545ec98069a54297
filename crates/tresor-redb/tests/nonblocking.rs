//! No redb call blocks the async runtime: on a current-thread runtime, other tasks keep
//! running while a 16 MiB durable commit and a scan of it are in flight.
#![allow(clippy::unwrap_used)]

#[tokio::test(flavor = "current_thread")]
async fn slow_calls_do_not_block_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let b = tresor_redb::RedbBackend::open(dir.path().join("store.redb")).unwrap();
    tresor_backend::testing::slow_calls_do_not_block_the_runtime(&b).await;
}
