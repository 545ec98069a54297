//! The conformance suite every [`Backend`](crate::Backend) must pass (feature `testing`).
//!
//! Each case is a plain `async fn` taking the backend under test. A backend crate runs them all,
//! one `#[tokio::test]` per case, with [`backend_conformance_tests!`](crate::backend_conformance_tests):
//!
//! ```text
//! // in crates/my-backend/tests/conformance.rs
//! tresor_backend::backend_conformance_tests!(
//!     {
//!         let dir = tempfile::tempdir().unwrap();
//!         let backend = MyBackend::open(dir.path().join("store")).unwrap();
//!         (backend, dir) // the second element is kept alive for the test's duration
//!     },
//!     // optional: how to open the same store again once every handle is dropped
//!     reopen = |dir: &tempfile::TempDir| MyBackend::open(dir.path().join("store")).unwrap()
//! );
//! ```
//!
//! The suite checks the backend against [`crate::MemoryBackend`]'s semantics, including
//! randomized model tests against a `BTreeMap` (a fixed pseudo-random sequence, so a failure
//! reproduces exactly).
//!
//! Files: `basic.rs` (reads, writes, scans, the model), `keys.rs` (byte ordering, bounds, empty
//! keys, many tables), `conditions.rs` (conditional writes, atomicity, concurrency),
//! `snapshots.rs` (isolation), `views.rs` (synchronous read views), `lifecycle.rs` (reopen, stats, compaction).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report.

mod basic;
mod conditions;
mod keys;
mod lifecycle;
mod snapshots;
mod views;

pub use basic::*;
pub use conditions::*;
pub use keys::*;
pub use lifecycle::*;
pub use snapshots::*;
pub use views::*;

/// xorshift64*: a fixed pseudo-random sequence for the randomized cases.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each running against a fresh backend.
///
/// `$factory` is an expression evaluated inside each (async) test that yields
/// `(backend, guard)`: the backend under test, which must be `Clone`, and any value to keep alive
/// until the test ends (a temporary directory, say; `()` if none). The calling crate needs
/// `tokio` (features `rt-multi-thread`, `macros`) as a dev-dependency.
///
/// With `reopen = CLOSURE`, the persistence cases run too: `CLOSURE(&guard)` must open the same
/// store again (it is called after every handle of the first backend has been dropped).
#[macro_export]
macro_rules! backend_conformance_tests {
    ($factory:expr) => {
        $crate::backend_conformance_tests!(@cases $factory;
            missing_key_reads_none,
            put_then_get,
            last_write_wins,
            delete_removes,
            batch_spans_tables,
            empty_batch_is_noop,
            invalid_batch_applies_nothing,
            scan_orders_bytes,
            scan_respects_bounds,
            get_many_in_request_order,
            large_values_round_trip,
            eventual_commits_are_visible,
            concurrent_commits_all_apply,
            matches_btreemap_model,
            arbitrary_keys_order_as_bytes,
            range_bounds_of_every_kind,
            empty_keys_and_values,
            many_tables,
            conditions_check_committed_state,
            failed_condition_applies_nothing,
            claim_exactly_once_under_contention,
            counter_increments_lose_no_update,
            failing_batches_do_not_fail_others,
            snapshot_does_not_see_later_commits,
            snapshot_sees_whole_batches,
            snapshot_reads_like_the_backend,
            view_does_not_see_later_commits,
            view_sees_whole_batches,
            view_reads_like_the_backend,
            view_scan_each_lends_what_scan_returns,
            stats_count_entries_per_table,
            compact_keeps_data,
        );
    };
    ($factory:expr, reopen = $reopen:expr $(,)?) => {
        $crate::backend_conformance_tests!($factory);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn reopen_persists() {
            let (backend, guard) = $factory;
            let reopen = $reopen;
            $crate::testing::reopen_persists(backend, || reopen(&guard)).await;
        }
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (backend, _guard) = $factory;
                $crate::testing::$case(&backend).await;
            }
        )*
    };
}
