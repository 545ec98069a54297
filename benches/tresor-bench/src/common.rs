//! What every system shares: the data set, the workload inputs, measurement helpers and the
//! result record printed as JSON.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tresor::Message;

/// Messages per W1 batch.
pub const W1_BATCH: usize = 1_000;
/// Single durable writes of W2.
pub const W2_WRITES: usize = 2_000;
/// Point gets of W3.
pub const W3_GETS: usize = 100_000;
/// Conversations read by W4.
pub const W4_PAGES: usize = 5_000;
/// Page size of W4.
pub const W4_LIMIT: usize = 50;
/// Concurrent writers of W6.
pub const W6_WRITERS: usize = 64;
/// Single durable writes of each W6 writer.
pub const W6_PER_WRITER: usize = 32;
/// The passphrase of the encrypted systems.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// SplitMix64: a tiny deterministic PRNG, so every system sees the same random choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // The modulo bias is below 2^-40 for the sizes used here.
        (self.next_u64() % n as u64) as usize
    }
}

/// Where the records come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The chitchat corpus file.
    Corpus(PathBuf),
    /// The bundled sample (300 conversations), repeated with fresh ids until it holds at least
    /// this many messages (no repetition when it already does).
    Sample(usize),
}

impl Source {
    /// Parses `corpus:PATH` or `sample:N`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("corpus:") {
            Ok(Self::Corpus(PathBuf::from(p)))
        } else if let Some(n) = s.strip_prefix("sample:") {
            n.parse()
                .map(Self::Sample)
                .map_err(|e| format!("bad sample size {n:?}: {e}"))
        } else {
            Err(format!("bad data source {s:?} (corpus:PATH or sample:N)"))
        }
    }
}

/// One conversation of the data set: its id and its messages' indices in [`Data::messages`].
#[derive(Debug, Clone)]
pub struct Conv {
    /// The conversation id.
    pub id: String,
    /// Index of its first message.
    pub first: usize,
    /// Number of its messages.
    pub len: usize,
}

/// The data set and the workload inputs, identical for every system.
#[derive(Debug)]
pub struct Data {
    /// Every message of the data set, in file order (conversation by conversation).
    pub messages: Vec<Message>,
    /// The conversations (non-empty ones).
    pub conversations: Vec<Conv>,
    /// W2: new messages, one durable write each.
    pub w2: Vec<Message>,
    /// W3: indices into `messages`.
    pub w3: Vec<usize>,
    /// W4: indices into `conversations`.
    pub w4: Vec<usize>,
    /// W6: one list of new messages per writer.
    pub w6: Vec<Vec<Message>>,
}

/// Loads the data set and derives the workload inputs (fixed seed).
pub fn load(source: &Source) -> Result<Data, String> {
    let convs = match source {
        Source::Corpus(p) => tresor_cli::chitchat::read_file(p).map_err(|e| e.to_string())?,
        Source::Sample(_) => tresor_cli::chitchat::bundled_sample().map_err(|e| e.to_string())?,
    };
    let want = match source {
        Source::Sample(n) => *n,
        Source::Corpus(_) => 0,
    };
    let mut messages = Vec::new();
    let mut conversations = Vec::new();
    let mut copy = 0usize;
    loop {
        for c in &convs {
            if c.messages.is_empty() {
                continue;
            }
            let id = if copy == 0 {
                c.id.clone()
            } else {
                format!("{}~{copy}", c.id)
            };
            conversations.push(Conv {
                id: id.clone(),
                first: messages.len(),
                len: c.messages.len(),
            });
            for m in &c.messages {
                let mut m = m.clone();
                if copy > 0 {
                    m.id = format!("{}~{copy}", m.id);
                    m.conversation_id.clone_from(&id);
                }
                messages.push(m);
            }
        }
        copy += 1;
        if messages.len() >= want || messages.is_empty() {
            break;
        }
    }
    if messages.is_empty() {
        return Err("the data set has no message".into());
    }
    let mut rng = Rng::new(0x7265_736f_7221);
    let new_message = |rng: &mut Rng, tag: &str, i: usize| -> Message {
        // A new message in a random conversation, with a random real message's peers and body.
        let c = &conversations[rng.below(conversations.len())];
        let t = &messages[c.first + rng.below(c.len)];
        Message::new(
            format!("{}:{tag}{i}", c.id),
            c.id.as_str(),
            t.sender.as_str(),
            t.recipient.clone(),
            t.timestamp_ms + 1,
            t.body.as_str(),
        )
    };
    let w2 = (0..W2_WRITES)
        .map(|i| new_message(&mut rng, "w2-", i))
        .collect();
    let w6 = (0..W6_WRITERS)
        .map(|w| {
            (0..W6_PER_WRITER)
                .map(|i| new_message(&mut rng, &format!("w6-{w}-"), i))
                .collect()
        })
        .collect();
    let w3 = (0..W3_GETS).map(|_| rng.below(messages.len())).collect();
    let w4 = (0..W4_PAGES)
        .map(|_| rng.below(conversations.len()))
        .collect();
    Ok(Data {
        messages,
        conversations,
        w2,
        w3,
        w4,
        w6,
    })
}

/// Memory figures of this process from `/proc/self/status`, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    /// Resident set size now (`VmRSS`).
    pub now_kib: u64,
    /// Peak resident set size since start or the last [`reset_peak_rss`] (`VmHWM`).
    pub peak_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` (zeros where `/proc` is unavailable).
pub fn rss() -> Rss {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Rss {
        now_kib: field("VmRSS:"),
        peak_kib: field("VmHWM:"),
    }
}

/// Resets `VmHWM` to the current RSS (Linux: writing `5` to `/proc/self/clear_refs`). Returns
/// whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Seconds since `start`.
pub fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// Size of a file in bytes (0 if it does not exist).
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The result of one system on one run: what `run` prints as one JSON line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    /// `tresor`, `redb`, `sqlite` or `sqlcipher`.
    pub system: String,
    /// Messages imported by W1.
    pub messages: usize,
    /// Creating the empty store (with its key), ms.
    pub create_ms: f64,
    /// Opening the imported store, ready for the first query (KDF included), ms.
    pub open_ms: f64,
    /// The key derivation alone (0 for systems without one), ms.
    pub unlock_ms: f64,
    /// W1 bulk import: total seconds.
    pub w1_s: f64,
    /// W1: messages per second.
    pub w1_per_s: f64,
    /// W2: single durable writes per second.
    pub w2_per_s: f64,
    /// W3: point gets per second.
    pub w3_per_s: f64,
    /// W4: pages (50 newest of a conversation) per second.
    pub w4_per_s: f64,
    /// W5: messages per second of a full scan.
    pub w5_per_s: f64,
    /// W3 through blocking reads: tresor's `BlockingView` from one blocking thread (no hop per
    /// get); the other systems are blocking already (= `w3_per_s`).
    pub w3_view_per_s: f64,
    /// W4 through blocking reads (as `w3_view_per_s`).
    pub w4_view_per_s: f64,
    /// W5 through blocking reads (as `w3_view_per_s`).
    pub w5_view_per_s: f64,
    /// W6: durable single-message writes per second with 64 concurrent writers.
    pub w6_per_s: f64,
    /// Bytes on disk after W1 (SQLite: main file after a WAL checkpoint).
    pub file_after_w1: u64,
    /// Bytes on disk after every workload, before compaction.
    pub file_end: u64,
    /// Bytes on disk after compaction (`VACUUM` / redb `compact`) at the end.
    pub file_compacted: u64,
    /// RSS with the data set loaded, before W1, KiB.
    pub rss_base_kib: u64,
    /// Peak RSS during W1, KiB (whole process: includes the data set in memory).
    pub rss_w1_peak_kib: u64,
    /// Peak RSS from the end of W1 to the end of the run, KiB.
    pub rss_rest_peak_kib: u64,
    /// Check values: messages found by W3, rows returned by W4, messages read by W5.
    pub check: [u64; 3],
}
