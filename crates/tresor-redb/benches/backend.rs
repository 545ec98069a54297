//! The backend layer measured: `RedbBackend` through the `Backend` trait against raw redb
//! used directly, in the same binary, on the same data (run by `cargo xtask bench-backend`).
//!
//! Data: every message of the chitchat corpus (`../shared/data/chitchat/dataset.json.gz`
//! from the workspace root, or the file named by `TRESOR_BENCH_CORPUS`), shaped as tresor
//! stores it: a `messages` table (16-byte token → body plus 28 bytes of seal overhead) and a
//! `by_conversation` index (token ‖ timestamp ‖ sequence → message token). Without the corpus,
//! a synthetic corpus of the same size is used (and the output says so).
//!
//! Prints a Markdown table. Timing lives here only, never in tests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, TableDefinition};
use tresor_backend::{Backend, Direction, Durability, KeyRange, WriteBatch};
use tresor_redb::RedbBackend;

type Def<'a> = TableDefinition<'a, &'static [u8], &'static [u8]>;
const MESSAGES: &str = "messages";
const BY_CONV: &str = "by_conversation";

/// One record as the facade would store it.
struct Record {
    key: Vec<u8>,
    value: Vec<u8>,
    index_key: Vec<u8>,
}

/// splitmix64: a stand-in for the keyed BLAKE3 tokens (uniform 64-bit words).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn token(domain: u64, n: u64) -> Vec<u8> {
    [
        mix(domain ^ n).to_be_bytes(),
        mix(n.rotate_left(17) ^ domain).to_be_bytes(),
    ]
    .concat()
}

/// (conversation number, body) of every corpus message, and where they came from.
fn corpus() -> (Vec<(u64, String)>, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = std::env::var_os("TRESOR_BENCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data/chitchat/dataset.json.gz"));
    let Ok(file) = std::fs::File::open(&path) else {
        let synthetic = (0..258_145u64)
            .map(|i| (i / 36, "x".repeat(20 + (mix(i) % 120) as usize)))
            .collect();
        return (synthetic, "synthetic (no corpus found)".into());
    };
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut json)
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let mut out = Vec::new();
    for (c, conv) in value.as_object().unwrap().values().enumerate() {
        for turn in conv["messages"].as_array().into_iter().flatten() {
            for m in turn.as_array().into_iter().flatten() {
                out.push((c as u64, m["text"].as_str().unwrap_or("").to_owned()));
            }
        }
    }
    (out, format!("chitchat corpus ({})", path.display()))
}

fn records(corpus: &[(u64, String)]) -> Vec<Record> {
    corpus
        .iter()
        .enumerate()
        .map(|(seq, (conv, body))| {
            let key = token(1, seq as u64);
            let mut value = vec![0xA5u8; 28];
            value.extend_from_slice(body.as_bytes());
            let mut index_key = token(2, *conv);
            index_key.extend_from_slice(&(1_500_000_000_000u64 + seq as u64).to_be_bytes());
            index_key.extend_from_slice(&(u64::MAX - seq as u64).to_be_bytes());
            Record {
                key,
                value,
                index_key,
            }
        })
        .collect()
}

fn batch_of(records: &[Record]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for r in records {
        batch.put(MESSAGES, r.key.clone(), r.value.clone());
        batch.put(BY_CONV, r.index_key.clone(), r.key.clone());
    }
    batch
}

fn raw_commit(db: &Database, records: &[Record], durable: bool) {
    let mut txn = db.begin_write().unwrap();
    if !durable {
        txn.set_durability(redb::Durability::None).unwrap();
    }
    {
        let mut m = txn.open_table(Def::new(MESSAGES)).unwrap();
        let mut i = txn.open_table(Def::new(BY_CONV)).unwrap();
        for r in records {
            m.insert(r.key.as_slice(), r.value.as_slice()).unwrap();
            i.insert(r.index_key.as_slice(), r.key.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}

fn raw_get(db: &Database, key: &[u8]) -> Option<Vec<u8>> {
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(Def::new(MESSAGES)).unwrap();
    t.get(key).unwrap().map(|v| v.value().to_vec())
}

fn raw_scan(db: &Database, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(Def::new(BY_CONV)).unwrap();
    let range = KeyRange::prefix(prefix);
    let bounds = (
        range.start.as_ref().map(Vec::as_slice),
        range.end.as_ref().map(Vec::as_slice),
    );
    t.range::<&[u8]>(bounds)
        .unwrap()
        .rev()
        .take(limit)
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.value().to_vec(), v.value().to_vec())
        })
        .collect()
}

/// Mean time per operation of `n` runs of `f`.
fn per_op(n: usize, mut f: impl FnMut(usize)) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        f(i);
    }
    started.elapsed() / n as u32
}

async fn per_op_async<F, Fut>(n: usize, mut f: F) -> Duration
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    for i in 0..n {
        f(i).await;
    }
    started.elapsed() / n as u32
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// `writers` tasks each committing `per_writer` single messages durably into `store`, all at
/// once: commits per second and the groups (transactions) they took.
async fn concurrent(
    store: &RedbBackend,
    records: &Arc<Vec<Record>>,
    writers: usize,
    per_writer: usize,
) -> (f64, u64) {
    let before = store.writer_stats();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (b, records) = (store.clone(), Arc::clone(records));
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let k = 1_000 + w * per_writer + i;
                b.commit(batch_of(&records[k..k + 1]), Durability::Immediate)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (writers * per_writer) as f64 / started.elapsed().as_secs_f64();
    let groups = store.writer_stats().transactions - before.transactions;
    (rate, groups)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let (corpus, source) = corpus();
    let records = Arc::new(records(&corpus));
    let conversations: Vec<u64> = corpus
        .iter()
        .map(|(c, _)| *c)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    eprintln!(
        "{} messages, {} conversations from {source}",
        records.len(),
        conversations.len()
    );
    let dir = tempfile::tempdir().unwrap();
    // The same page cache as raw redb's default (1 GiB), so that the two differ only by the
    // layer (tresor's default is 64 MiB: `tresor_redb::DEFAULT_CACHE_BYTES`).
    let trait_store = RedbBackend::open_with_config(
        dir.path().join("trait.redb"),
        tresor_redb::RedbConfig::default().with_cache_bytes(1024 * 1024 * 1024),
    )
    .unwrap();
    // The same store without the commit log: every durable group a durable redb commit.
    let nolog_store = RedbBackend::open_with_config(
        dir.path().join("nolog.redb"),
        tresor_redb::RedbConfig::default()
            .with_cache_bytes(1024 * 1024 * 1024)
            .with_commit_log(false),
    )
    .unwrap();
    let raw = Arc::new(Database::create(dir.path().join("raw.redb")).unwrap());
    let mut rows: BTreeMap<usize, (String, String, String, String)> = BTreeMap::new();

    // Batch write of 1,000 messages (2,000 entries: record and index), durable: the load.
    let chunks: Vec<std::ops::Range<usize>> = (0..records.len())
        .step_by(1000)
        .map(|s| s..(s + 1000).min(records.len()))
        .collect();
    let mut trait_load = Duration::ZERO;
    let mut nolog_load = Duration::ZERO;
    let mut raw_load = Duration::ZERO;
    for range in &chunks {
        let batch = batch_of(&records[range.clone()]);
        let t = Instant::now();
        trait_store
            .commit(batch.clone(), Durability::Immediate)
            .await
            .unwrap();
        trait_load += t.elapsed();
        let t = Instant::now();
        nolog_store
            .commit(batch, Durability::Immediate)
            .await
            .unwrap();
        nolog_load += t.elapsed();
        let t = Instant::now();
        raw_commit(&raw, &records[range.clone()], true);
        raw_load += t.elapsed();
    }
    let n = chunks.len() as u32;
    rows.insert(
        3,
        (
            "batch write of 1,000 messages (durable)".into(),
            us(raw_load / n),
            us(trait_load / n),
            format!("{:.2}×", trait_load.as_secs_f64() / raw_load.as_secs_f64()),
        ),
    );
    rows.insert(
        6,
        (
            "batch write of 1,000 messages (durable), commit log off".into(),
            us(raw_load / n),
            us(nolog_load / n),
            format!("{:.2}×", nolog_load.as_secs_f64() / raw_load.as_secs_f64()),
        ),
    );

    // Point get: 20,000 random message keys.
    let picks: Vec<usize> = (0..20_000)
        .map(|i| (mix(i as u64 + 7) % records.len() as u64) as usize)
        .collect();
    let raw_get_t = per_op(picks.len(), |i| {
        assert!(raw_get(&raw, &records[picks[i]].key).is_some());
    });
    let raw_get_hop = per_op_async(picks.len(), |i| {
        let (raw, records, k) = (Arc::clone(&raw), Arc::clone(&records), picks[i]);
        async move {
            let found = tokio::task::spawn_blocking(move || raw_get(&raw, &records[k].key))
                .await
                .unwrap();
            assert!(found.is_some());
        }
    })
    .await;
    let trait_get = per_op_async(picks.len(), |i| {
        let (b, key) = (&trait_store, records[picks[i]].key.clone());
        async move {
            assert!(b.get(MESSAGES, &key).await.unwrap().is_some());
        }
    })
    .await;
    rows.insert(
        1,
        (
            "point get".into(),
            us(raw_get_t),
            us(trait_get),
            format!(
                "{:.2}× ({:.2}× vs raw in spawn_blocking: {})",
                trait_get.as_secs_f64() / raw_get_t.as_secs_f64(),
                trait_get.as_secs_f64() / raw_get_hop.as_secs_f64(),
                us(raw_get_hop)
            ),
        ),
    );

    // The same gets through the synchronous `ReadView` (one view, i.e. one read transaction,
    // per get, as raw redb's `begin_read` per get): the trait's own cost without a thread hop,
    // called the way a blocking caller calls it. Whole passes alternate raw, view, raw, view,
    // …; each side keeps its best pass, so that load on the machine weighs on both alike.
    let (mut raw_best, mut view_best) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        raw_best = raw_best.min(per_op(picks.len(), |i| {
            assert!(raw_get(&raw, &records[picks[i]].key).is_some());
        }));
        view_best = view_best.min(per_op(picks.len(), |i| {
            let view = trait_store.read_view().unwrap();
            assert!(
                view.get(MESSAGES, &records[picks[i]].key)
                    .unwrap()
                    .is_some()
            );
        }));
    }
    rows.insert(
        10,
        (
            "point get, blocking: `read_view()` + `get` vs `begin_read` + `get` (best of 3 alternating passes)".into(),
            us(raw_best),
            us(view_best),
            format!("**{:.2}×**", view_best.as_secs_f64() / raw_best.as_secs_f64()),
        ),
    );

    // Range scan of 50: newest 50 index entries of a conversation (reverse, limit 50).
    let convs: Vec<Vec<u8>> = (0..5_000)
        .map(|i| {
            token(
                2,
                conversations[(mix(i as u64 + 3) % conversations.len() as u64) as usize],
            )
        })
        .collect();
    let raw_scan_t = per_op(convs.len(), |i| {
        assert!(!raw_scan(&raw, &convs[i], 50).is_empty());
    });
    let raw_scan_hop = per_op_async(convs.len(), |i| {
        let (raw, prefix) = (Arc::clone(&raw), convs[i].clone());
        async move {
            let got = tokio::task::spawn_blocking(move || raw_scan(&raw, &prefix, 50))
                .await
                .unwrap();
            assert!(!got.is_empty());
        }
    })
    .await;
    let trait_scan = per_op_async(convs.len(), |i| {
        let (b, prefix) = (&trait_store, convs[i].clone());
        async move {
            let got = b
                .scan(BY_CONV, KeyRange::prefix(&prefix), Direction::Reverse, 50)
                .await
                .unwrap();
            assert!(!got.is_empty());
        }
    })
    .await;
    rows.insert(
        2,
        (
            "range scan of 50 (reverse, prefix)".into(),
            us(raw_scan_t),
            us(trait_scan),
            format!(
                "{:.2}× ({:.2}× vs raw in spawn_blocking: {})",
                trait_scan.as_secs_f64() / raw_scan_t.as_secs_f64(),
                trait_scan.as_secs_f64() / raw_scan_hop.as_secs_f64(),
                us(raw_scan_hop)
            ),
        ),
    );

    let (mut raw_best, mut view_best) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        raw_best = raw_best.min(per_op(convs.len(), |i| {
            assert!(!raw_scan(&raw, &convs[i], 50).is_empty());
        }));
        view_best = view_best.min(per_op(convs.len(), |i| {
            let view = trait_store.read_view().unwrap();
            let got = view
                .scan(BY_CONV, KeyRange::prefix(&convs[i]), Direction::Reverse, 50)
                .unwrap();
            assert!(!got.is_empty());
        }));
    }
    rows.insert(
        11,
        (
            "range scan of 50, blocking: `read_view()` + `scan` (best of 3 alternating passes)"
                .into(),
            us(raw_best),
            us(view_best),
            format!(
                "**{:.2}×**",
                view_best.as_secs_f64() / raw_best.as_secs_f64()
            ),
        ),
    );

    // Single durable write: one message (2 entries), fsync, one writer.
    let singles = 200;
    let raw_single = per_op(singles, |i| raw_commit(&raw, &records[i..i + 1], true));
    let trait_single = per_op_async(singles, |i| {
        let batch = batch_of(&records[i..i + 1]);
        let b = &trait_store;
        async move { b.commit(batch, Durability::Immediate).await.unwrap() }
    })
    .await;
    let nolog_single = per_op_async(singles, |i| {
        let batch = batch_of(&records[i..i + 1]);
        let b = &nolog_store;
        async move { b.commit(batch, Durability::Immediate).await.unwrap() }
    })
    .await;
    rows.insert(
        7,
        (
            "single durable write (1 writer), commit log off".into(),
            us(raw_single),
            us(nolog_single),
            format!(
                "{:.2}×",
                nolog_single.as_secs_f64() / raw_single.as_secs_f64()
            ),
        ),
    );
    rows.insert(
        4,
        (
            "single durable write (1 writer)".into(),
            us(raw_single),
            us(trait_single),
            format!(
                "{:.2}×",
                trait_single.as_secs_f64() / raw_single.as_secs_f64()
            ),
        ),
    );

    // 64 concurrent durable writers, single messages.
    let writers = 64usize;
    let per_writer = 40usize;
    let commits = (writers * per_writer) as f64;
    let (trait_rate, groups) = concurrent(&trait_store, &records, writers, per_writer).await;
    let (nolog_rate, nolog_groups) = concurrent(&nolog_store, &records, writers, per_writer).await;

    let raw_per_writer = 5usize;
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (raw, records) = (Arc::clone(&raw), Arc::clone(&records));
            std::thread::spawn(move || {
                for i in 0..raw_per_writer {
                    let k = 50_000 + w * raw_per_writer + i;
                    raw_commit(&raw, &records[k..k + 1], true);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let raw_rate = (writers * raw_per_writer) as f64 / started.elapsed().as_secs_f64();
    let single_rate = 1.0 / trait_single.as_secs_f64();
    let raw_single_rate = 1.0 / raw_single.as_secs_f64();
    rows.insert(
        5,
        (
            "64 concurrent durable writers, commits/s".into(),
            format!("{raw_rate:.0}/s (64 threads, no grouping)"),
            format!(
                "{trait_rate:.0}/s ({:.1} batches per fsync)",
                commits / groups.max(1) as f64
            ),
            format!(
                "**{:.1}×** the trait's 1-writer rate ({single_rate:.0}/s); {:.1}× raw's 1-writer rate ({raw_single_rate:.0}/s)",
                trait_rate / single_rate,
                trait_rate / raw_single_rate
            ),
        ),
    );

    let nolog_single_rate = 1.0 / nolog_single.as_secs_f64();
    rows.insert(
        8,
        (
            "64 concurrent durable writers, commits/s, commit log off".into(),
            format!("{raw_rate:.0}/s (64 threads, no grouping)"),
            format!(
                "{nolog_rate:.0}/s ({:.1} batches per fsync)",
                commits / nolog_groups.max(1) as f64
            ),
            format!(
                "**{:.1}×** its 1-writer rate ({nolog_single_rate:.0}/s); {:.1}× raw's 1-writer rate",
                nolog_rate / nolog_single_rate,
                nolog_rate / raw_single_rate
            ),
        ),
    );
    rows.insert(
        9,
        (
            "commit log: 1-writer durable rate / 64-writer rate, against log off".into(),
            "–".into(),
            format!("{single_rate:.0}/s / {trait_rate:.0}/s"),
            format!(
                "{:.2}× / {:.2}× the rates without the log",
                single_rate / nolog_single_rate,
                trait_rate / nolog_rate
            ),
        ),
    );
    println!(
        "Data: {} messages, {} conversations, {source}.\n",
        records.len(),
        conversations.len()
    );
    println!("| operation | raw redb | `Backend` trait (`RedbBackend`) | trait / raw |");
    println!("|---|---|---|---|");
    for (_, (op, raw, tr, ratio)) in rows {
        println!("| {op} | {raw} | {tr} | {ratio} |");
    }
}
