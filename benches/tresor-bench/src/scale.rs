//! `scale`: a synthetic store grown to millions of messages drawn from the corpus'
//! distributions, with W3 and W4 latency measured at each checkpoint (tresor and raw redb).
//!
//! Each synthetic conversation copies a random real conversation's shape: its number of
//! messages, its turn-taking (which of its participants sent each message, and the recipient
//! rule), its bodies (so body lengths follow the corpus) and its gaps between messages; it gets
//! a fresh UUID-like id, a random start time in 2018–2019, and participants drawn from a peer
//! pool that grows with the store (as many peers per message as the corpus has).

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use tresor::{Message, Tresor};

use crate::common::{Data, Rng, W1_BATCH, W3_GETS, W4_LIMIT, W4_PAGES, rss, secs};

/// A synthetic conversation: its id and how many of its messages were generated.
struct SynConv {
    id: String,
    start: usize,
    len: usize,
}

/// Generates the synthetic message stream.
struct Generator<'a> {
    data: &'a Data,
    rng: Rng,
    pool: usize,
    convs: Vec<SynConv>,
    emitted: usize,
    /// Messages of the current conversation still to emit.
    pending: std::vec::IntoIter<Message>,
}

impl<'a> Generator<'a> {
    fn new(data: &'a Data, target: usize) -> Self {
        let peers: HashSet<&str> = data
            .messages
            .iter()
            .flat_map(|m| std::iter::once(m.sender.as_str()).chain(m.recipient.as_deref()))
            .collect();
        let per_message = peers.len() as f64 / data.messages.len() as f64;
        let pool = ((target as f64 * per_message) as usize)
            .max(peers.len())
            .max(2);
        Self {
            data,
            rng: Rng::new(0x5ca1e),
            pool,
            convs: Vec::new(),
            emitted: 0,
            pending: Vec::new().into_iter(),
        }
    }

    fn uuid(&mut self) -> String {
        let a = self.rng.next_u64();
        let b = self.rng.next_u64();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    fn next_conversation(&mut self) {
        let data = self.data;
        let t = &data.conversations[self.rng.below(data.conversations.len())];
        let template = &data.messages[t.first..t.first + t.len];
        let id = self.uuid();
        let start_ms = 1_514_764_800_000 + (self.rng.next_u64() % (2 * 365 * 86_400_000)) as i64;
        let first_ts = template[0].timestamp_ms;
        let mut map: Vec<(&str, String)> = Vec::new();
        let mut peer = |name: &'a str, rng: &mut Rng, pool: usize| -> String {
            if let Some((_, p)) = map.iter().find(|(n, _)| *n == name) {
                return p.clone();
            }
            let p = format!("peer-{:016x}", rng.below(pool) as u64 * 0x9E37_79B9 + 1);
            map.push((name, p.clone()));
            p
        };
        let pool = self.pool;
        let msgs: Vec<Message> = template
            .iter()
            .enumerate()
            .map(|(n, m)| {
                let sender = peer(&m.sender, &mut self.rng, pool);
                let recipient = m.recipient.as_deref().map(|r| peer(r, &mut self.rng, pool));
                Message::new(
                    format!("{id}:{n}"),
                    id.as_str(),
                    sender,
                    recipient,
                    start_ms + (m.timestamp_ms - first_ts),
                    m.body.as_str(),
                )
            })
            .collect();
        self.convs.push(SynConv {
            id,
            start: self.emitted,
            len: 0,
        });
        self.pending = msgs.into_iter();
    }

    /// The next `n` messages.
    fn batch(&mut self, n: usize) -> Vec<Message> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.pending.next() {
                Some(m) => {
                    out.push(m);
                    self.emitted += 1;
                    if let Some(c) = self.convs.last_mut() {
                        c.len += 1;
                    }
                }
                None => self.next_conversation(),
            }
        }
        out
    }

    /// The id of the `i`-th generated message.
    fn id_of(&self, i: usize) -> String {
        let c = self.convs.partition_point(|c| c.start <= i) - 1;
        let c = &self.convs[c];
        format!("{}:{}", c.id, i - c.start)
    }
}

/// Latency figures of one workload at one checkpoint, microseconds per operation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}

fn latency(mut samples: Vec<f64>) -> Latency {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Latency {
        mean_us: samples.iter().sum::<f64>() / samples.len() as f64,
        p50_us: at(0.5),
        p99_us: at(0.99),
    }
}

/// One checkpoint of a scale run: printed as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Checkpoint {
    /// `tresor` or `redb`.
    pub system: String,
    /// Messages in the store.
    pub messages: usize,
    /// Messages per second of the import since the previous checkpoint.
    pub import_per_s: f64,
    /// Seconds of import since the start.
    pub import_s: f64,
    /// W3 point get latency.
    pub w3: Latency,
    /// W4 newest-50-of-a-conversation latency.
    pub w4: Latency,
    /// Store file size, bytes.
    pub file_bytes: u64,
    /// Process peak RSS so far, KiB.
    pub rss_peak_kib: u64,
}

/// What a scale run drives: one import batch, one get, one page.
trait Target {
    fn save(&mut self, batch: &[Message]);
    fn get(&mut self, id: &str) -> bool;
    fn page(&mut self, conversation: &str) -> usize;
}

struct TresorTarget {
    rt: tokio::runtime::Runtime,
    store: Tresor,
}

impl Target for TresorTarget {
    fn save(&mut self, batch: &[Message]) {
        self.rt
            .block_on(self.store.messages().save_batch(batch))
            .expect("save batch");
    }
    fn get(&mut self, id: &str) -> bool {
        self.rt
            .block_on(self.store.messages().get(id))
            .expect("get")
            .is_some()
    }
    fn page(&mut self, conversation: &str) -> usize {
        self.rt
            .block_on(
                self.store
                    .messages()
                    .by_conversation(conversation, W4_LIMIT, None),
            )
            .expect("page")
            .len()
    }
}

struct RedbTarget(redb::Database);

impl Target for RedbTarget {
    fn save(&mut self, batch: &[Message]) {
        crate::sys_redb::save(&self.0, batch);
    }
    fn get(&mut self, id: &str) -> bool {
        crate::sys_redb::get(&self.0, id).is_some()
    }
    fn page(&mut self, conversation: &str) -> usize {
        crate::sys_redb::page(&self.0, conversation, W4_LIMIT).len()
    }
}

/// Grows a store of `system` in `dir` to each of `points` (ascending) and prints one
/// [`Checkpoint`] JSON line at each.
pub fn run(system: &str, data: &Data, dir: &Path, points: &[usize]) -> Result<(), String> {
    let target_n = points.iter().copied().max().ok_or("no scale point")?;
    let path = dir.join(format!("scale-{system}.redb"));
    let mut target: Box<dyn Target> = match system {
        "tresor" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let store = rt
                .block_on(Tresor::create(&path, crate::common::PASSPHRASE.into()))
                .map_err(|e| e.to_string())?;
            Box::new(TresorTarget { rt, store })
        }
        "redb" => Box::new(RedbTarget(
            redb::Database::create(&path).map_err(|e| e.to_string())?,
        )),
        other => return Err(format!("scale: unknown system {other:?} (tresor, redb)")),
    };
    let mut g = Generator::new(data, target_n);
    let mut rng = Rng::new(0xc0ffee);
    let started = Instant::now();
    let mut done = 0usize;
    let mut points = points.to_vec();
    points.sort_unstable();
    for point in points {
        let t = Instant::now();
        let from = done;
        while done < point {
            let batch = g.batch(W1_BATCH.min(point - done));
            target.save(&batch);
            done += batch.len();
        }
        let import_per_s = (done - from) as f64 / secs(t);
        let mut w3 = Vec::with_capacity(W3_GETS);
        for _ in 0..W3_GETS {
            let id = g.id_of(rng.below(done));
            let t = Instant::now();
            let found = target.get(&id);
            w3.push(secs(t) * 1e6);
            assert!(found, "scale: message {id} not found");
        }
        let complete = g.convs.len().saturating_sub(1).max(1);
        let mut w4 = Vec::with_capacity(W4_PAGES);
        for _ in 0..W4_PAGES {
            let c = &g.convs[rng.below(complete)];
            let t = Instant::now();
            let n = target.page(&c.id);
            w4.push(secs(t) * 1e6);
            assert_eq!(n, c.len.min(W4_LIMIT), "scale: short page");
        }
        let cp = Checkpoint {
            system: system.into(),
            messages: done,
            import_per_s,
            import_s: secs(started),
            w3: latency(w3),
            w4: latency(w4),
            file_bytes: crate::common::file_size(&path),
            rss_peak_kib: rss().peak_kib,
        };
        println!("{}", serde_json::to_string(&cp).map_err(|e| e.to_string())?);
    }
    drop(target);
    let _ = std::fs::remove_file(&path);
    Ok(())
}
