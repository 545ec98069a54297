//! The async read path with and without `Options::reads_in_place`, measured (docs/BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p tresor --example async_reads [-- MESSAGES]
//! ```
//!
//! Builds a store of `MESSAGES` synthetic messages (default 100,000, in conversations of 40,
//! UUID ids) in a temporary directory, then, from a task on a two-worker runtime, times random
//! point gets (`get`) and conversation pages (`by_conversation`, 50) through the async API:
//! the store opened with the default (a hop to tokio's blocking pool per query), then with
//! `reads_in_place`, alternating, three rounds. A measurement, not a test: it asserts nothing
//! beyond every read finding what it looks for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use tresor::{Message, Options, Tresor};

/// A UUID-shaped id from `n` (RFC 9562 layout, not random).
fn uuid(n: u64) -> String {
    let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (n >> 3) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// xorshift64: the same picks in every round.
fn picks(n: usize, below: usize, mut x: u64) -> Vec<usize> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % below as u64) as usize
        })
        .collect()
}

fn main() {
    let total: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("reads.redb");
    let conversations = (total / 40).max(1);
    rt.block_on(async {
        let store = Tresor::create(&path, "pw".into()).await.expect("create");
        let all: Vec<Message> = (0..total)
            .map(|i| {
                let c = uuid(1_000_000 + i % conversations);
                Message::new(
                    format!("{c}:{i}"),
                    c,
                    uuid(2_000_000 + i % 97),
                    None,
                    1_500_000_000_000 + i as i64 * 1_000,
                    "a message of about the length of a chat message",
                )
            })
            .collect();
        let batches = futures_util::stream::iter(all.chunks(1_000).map(<[_]>::to_vec));
        store
            .messages()
            .save_batches(batches, |_| {})
            .await
            .expect("import");
        drop(store);
        let ids: Vec<String> = all.iter().map(|m| m.id.clone()).collect();
        let convs: Vec<String> = (0..conversations).map(|c| uuid(1_000_000 + c)).collect();
        let gets = picks(50_000, ids.len(), 0x1234_5678);
        let pages = picks(5_000, convs.len(), 0x8765_4321);
        println!("{total} messages; async API from a task on a 2-worker runtime");
        println!("| round | reads | gets/s | pages of 50/s |\n|---|---|---:|---:|");
        for round in 1..=3 {
            for in_place in [false, true] {
                let options = Options::default().with_reads_in_place(in_place);
                let store = Tresor::open_with(&path, "pw".into(), options)
                    .await
                    .expect("open");
                let (ids, convs, gets, pages) =
                    (ids.clone(), convs.clone(), gets.clone(), pages.clone());
                let (get_rate, page_rate) = tokio::spawn(async move {
                    let t = Instant::now();
                    for &i in &gets {
                        assert!(store.messages().get(&ids[i]).await.unwrap().is_some());
                    }
                    let get_rate = gets.len() as f64 / t.elapsed().as_secs_f64();
                    let t = Instant::now();
                    for &c in &pages {
                        let messages = store.messages();
                        let page = messages.by_conversation(&convs[c], 50, None).await;
                        assert!(!page.unwrap().is_empty());
                    }
                    (get_rate, pages.len() as f64 / t.elapsed().as_secs_f64())
                })
                .await
                .expect("reader task");
                let how = if in_place {
                    "in place"
                } else {
                    "blocking pool"
                };
                println!("| {round} | {how} | {get_rate:.0} | {page_rate:.0} |");
            }
        }
    });
}
