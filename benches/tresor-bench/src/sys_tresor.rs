//! tresor through its public facade: redb backend, encryption on, default options (Argon2id
//! at OWASP's minimum, `Durability::Immediate`).

use std::path::Path;
use std::time::Instant;

use tresor::{Message, Tresor};

use crate::common::{Data, RunResult, W1_BATCH, W4_LIMIT, file_size, reset_peak_rss, rss, secs};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs every workload on a fresh store in `dir`; with `commit_log` (the default, system
/// `tresor`) the store uses redb's commit log, without it (system `tresor-nolog`) every durable
/// save is a durable redb commit (`Options::commit_log`). `TRESOR_BENCH_CACHE_MIB`
/// sets redb's page cache (`Options::engine_cache_bytes`, MiB; default tresor's 64 MiB, raw
/// redb's default is 1,024); `TRESOR_BENCH_CHECKPOINT_MIB` the commit log's checkpoint size
/// (`Options::engine_checkpoint_bytes`, MiB).
pub fn run(data: &Data, dir: &Path, commit_log: bool) -> RunResult {
    let rt = runtime();
    let path = dir.join("tresor.redb");
    let mut options = tresor::Options::default().with_commit_log(commit_log);
    if let Some(mib) = std::env::var("TRESOR_BENCH_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        options = options.with_engine_cache_bytes(mib << 20);
    }
    if let Some(mib) = std::env::var("TRESOR_BENCH_CHECKPOINT_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        options = options.with_engine_checkpoint_bytes(mib << 20);
    }
    let mut r = RunResult {
        system: if commit_log { "tresor" } else { "tresor-nolog" }.into(),
        messages: data.messages.len(),
        ..RunResult::default()
    };
    rt.block_on(async {
        let t = Instant::now();
        let store = Tresor::create_with(&path, PASS.into(), options)
            .await
            .expect("create tresor");
        r.create_ms = secs(t) * 1e3;

        r.rss_base_kib = rss().now_kib;
        reset_peak_rss();
        let t = Instant::now();
        if std::env::var_os("TRESOR_BENCH_W1_SEQUENTIAL").is_some() {
            for batch in data.messages.chunks(W1_BATCH) {
                store.messages().save_batch(batch).await.expect("W1 batch");
            }
        } else {
            let batches =
                futures_util::stream::iter(data.messages.chunks(W1_BATCH).map(<[_]>::to_vec));
            store
                .messages()
                .save_batches(batches, |_| {})
                .await
                .expect("W1 batches");
        }
        r.w1_s = secs(t);
        r.w1_per_s = data.messages.len() as f64 / r.w1_s;
        r.rss_w1_peak_kib = rss().peak_kib;
        reset_peak_rss();
        drop(store);
    });
    // The store is closed when the runtime has no task left holding it.
    r.file_after_w1 = file_size(&path);
    r.unlock_ms = unlock_ms(&path);

    rt.block_on(async {
        let t = Instant::now();
        let store = Tresor::open_with(&path, PASS.into(), options)
            .await
            .expect("open tresor");
        r.open_ms = secs(t) * 1e3;
        let messages = store.messages();

        let t = Instant::now();
        let mut found = 0u64;
        for &i in &data.w3 {
            if messages
                .get(&data.messages[i].id)
                .await
                .expect("W3 get")
                .is_some()
            {
                found += 1;
            }
        }
        r.w3_per_s = data.w3.len() as f64 / secs(t);

        let t = Instant::now();
        let mut rows = 0u64;
        for &c in &data.w4 {
            let page = messages
                .by_conversation(&data.conversations[c].id, W4_LIMIT, None)
                .await
                .expect("W4 page");
            rows += page.len() as u64;
        }
        r.w4_per_s = data.w4.len() as f64 / secs(t);

        // The full scan: `Messages::scan` in storage order, pages of 1,000.
        let t = Instant::now();
        let mut scanned = 0u64;
        let mut cursor: Option<String> = None;
        loop {
            let page = messages
                .scan(1_000, cursor.as_deref())
                .await
                .expect("W5 page");
            scanned += page.len() as u64;
            match page.last() {
                Some(m) => cursor = Some(m.id.clone()),
                None => break,
            }
        }
        r.w5_per_s = scanned as f64 / secs(t);
        let view_check = blocking_reads(&store, data, &mut r).await;
        assert_eq!(
            view_check,
            [found, rows, scanned],
            "the blocking view read what the async API read"
        );
        r.check = [found, rows, scanned];

        let t = Instant::now();
        for m in &data.w2 {
            messages.save(m).await.expect("W2 save");
        }
        r.w2_per_s = data.w2.len() as f64 / secs(t);

        let t = Instant::now();
        let tasks: Vec<_> = data
            .w6
            .iter()
            .map(|list| {
                let store = store.clone();
                let list: Vec<Message> = list.clone();
                tokio::spawn(async move {
                    for m in &list {
                        store.messages().save(m).await.expect("W6 save");
                    }
                })
            })
            .collect();
        let total: usize = data.w6.iter().map(Vec::len).sum();
        for task in tasks {
            task.await.expect("W6 writer");
        }
        r.w6_per_s = total as f64 / secs(t);
        r.file_end = file_size(&path);
        // tresor's own compaction (a rewrite with full pages: tresor-redb's compact.rs).
        store.compact().await.expect("compact");
        drop(store);
    });
    drop(rt);
    r.file_compacted = file_size(&path);
    r.rss_rest_peak_kib = rss().peak_kib;
    r
}

const PASS: &str = crate::common::PASSPHRASE;

/// W3, W4 and W5 again through `Tresor::blocking_view` from one blocking thread: the reads as a
/// blocking caller (a thread of its own, `spawn_blocking`) makes them, with no thread hop per
/// read. One view per get and per page (as the async API takes), one view for the whole scan.
/// Returns the check values.
async fn blocking_reads(store: &Tresor, data: &Data, r: &mut RunResult) -> [u64; 3] {
    let store = store.clone();
    let ids: Vec<String> = data
        .w3
        .iter()
        .map(|&i| data.messages[i].id.clone())
        .collect();
    let convs: Vec<String> = data
        .w4
        .iter()
        .map(|&c| data.conversations[c].id.clone())
        .collect();
    let (rates, check) = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let mut found = 0u64;
        for id in &ids {
            let view = store.blocking_view().expect("view");
            if view.message(id).expect("W3 get").is_some() {
                found += 1;
            }
        }
        let w3 = ids.len() as f64 / secs(t);
        let t = Instant::now();
        let mut rows = 0u64;
        for c in &convs {
            let view = store.blocking_view().expect("view");
            rows += view
                .by_conversation(c, W4_LIMIT, None)
                .expect("W4 page")
                .len() as u64;
        }
        let w4 = convs.len() as f64 / secs(t);
        let t = Instant::now();
        let view = store.blocking_view().expect("view");
        let mut scanned = 0u64;
        let mut cursor: Option<String> = None;
        loop {
            let page = view.scan(1_000, cursor.as_deref()).expect("W5 page");
            scanned += page.len() as u64;
            match page.last() {
                Some(m) => cursor = Some(m.id.clone()),
                None => break,
            }
        }
        let w5 = scanned as f64 / secs(t);
        ([w3, w4, w5], [found, rows, scanned])
    })
    .await
    .expect("blocking reads");
    [r.w3_view_per_s, r.w4_view_per_s, r.w5_view_per_s] = rates;
    check
}

/// The key derivation alone: reads the key header from the closed store and unlocks it.
fn unlock_ms(path: &Path) -> f64 {
    use redb::{ReadableDatabase, TableDefinition};
    let header = {
        let db = redb::Database::open(path).expect("open store file");
        let txn = db.begin_read().expect("read txn");
        let table = txn
            .open_table(TableDefinition::<&[u8], &[u8]>::new(
                tresor_schema::catalog::META,
            ))
            .expect("meta table");
        let value = table
            .get(tresor_schema::catalog::meta_keys::KEY_HEADER.as_bytes())
            .expect("read header")
            .expect("key header present");
        value.value().to_vec()
    };
    let header = tresor_crypto::KeyHeader::decode(&header).expect("key header");
    let t = Instant::now();
    header
        .unlock(&tresor_crypto::Secret::Passphrase(
            tresor_crypto::Passphrase::new(PASS),
        ))
        .expect("unlock");
    secs(t) * 1e3
}

/// Rates of the facade alone: tresor over the in-memory backend (no I/O, no thread hop), so
/// what it measures is the facade's own CPU cost (tokens, sealing, encoding, index entries).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FacadeResult {
    /// W1: messages per second (batches of 1,000).
    pub w1_per_s: f64,
    /// W3: point gets per second.
    pub w3_per_s: f64,
    /// W4: pages per second.
    pub w4_per_s: f64,
    /// W5: messages per second, walking `scan` pages of 1,000.
    pub w5_per_s: f64,
}

/// Runs W1, W3, W4 and W5 on tresor over [`tresor::MemoryBackend`].
pub fn facade(data: &Data) -> FacadeResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let store = Tresor::with_backend(
            tresor::MemoryBackend::new(),
            PASS.into(),
            tresor::Options::default(),
        )
        .await
        .expect("store on memory backend");
        let messages = store.messages();
        let mut r = FacadeResult::default();
        let t = Instant::now();
        for batch in data.messages.chunks(W1_BATCH) {
            messages.save_batch(batch).await.expect("W1 batch");
        }
        r.w1_per_s = data.messages.len() as f64 / secs(t);
        let t = Instant::now();
        for &i in &data.w3 {
            let m = messages.get(&data.messages[i].id).await.expect("W3 get");
            assert!(m.is_some(), "W3: message missing");
        }
        r.w3_per_s = data.w3.len() as f64 / secs(t);
        let t = Instant::now();
        for &c in &data.w4 {
            let page = messages
                .by_conversation(&data.conversations[c].id, W4_LIMIT, None)
                .await
                .expect("W4 page");
            std::hint::black_box(page);
        }
        r.w4_per_s = data.w4.len() as f64 / secs(t);
        let t = Instant::now();
        let mut scanned = 0usize;
        let mut cursor: Option<String> = None;
        loop {
            let page = messages
                .scan(1_000, cursor.as_deref())
                .await
                .expect("W5 page");
            scanned += page.len();
            match page.last() {
                Some(m) => cursor = Some(m.id.clone()),
                None => break,
            }
        }
        r.w5_per_s = scanned as f64 / secs(t);
        r
    })
}
