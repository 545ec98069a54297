//! Raw redb: the floor. The same records (tresor's record codec, no encryption), the same three
//! indexes keyed by the clear ids (conversation, each peer, time), the same order keys and
//! sequence numbers, the same idempotent save (read the old record first), the same durability
//! (`Immediate`, redb's default), no per-conversation counts and no async hop.

use std::path::Path;
use std::thread;
use std::time::Instant;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use tresor::Message;
use tresor_schema::codec;
use tresor_schema::index::{Position, order_key};

use crate::common::{Data, RunResult, W1_BATCH, W4_LIMIT, file_size, reset_peak_rss, rss, secs};

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;
/// Message id → `codec::encode(message)`.
pub const MESSAGES: Def = TableDefinition::new("messages");
/// Conversation id ‖ 0 ‖ order key → message id.
pub const BY_CONV: Def = TableDefinition::new("by_conversation");
/// Peer id ‖ 0 ‖ order key → message id (sender, and the recipient when it differs).
pub const BY_PEER: Def = TableDefinition::new("by_peer");
/// Order key → message id.
pub const BY_TIME: Def = TableDefinition::new("by_time");
/// `next_seq` → u64 LE.
pub const META: Def = TableDefinition::new("meta");

fn prefixed(prefix: &str, m: &Message) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 17);
    k.extend_from_slice(prefix.as_bytes());
    k.push(0);
    k.extend_from_slice(&order_key(pos(m)));
    k
}

fn pos(m: &Message) -> Position {
    Position {
        timestamp_ms: m.timestamp_ms,
        seq: m.seq,
    }
}

fn peers(m: &Message) -> impl Iterator<Item = &str> {
    let r = m.recipient.as_deref().filter(|r| *r != m.sender);
    std::iter::once(m.sender.as_str()).chain(r)
}

/// Saves `batch` in `txn` as tresor would (minus sealing, blinding and counts).
pub fn save_in(txn: &WriteTransaction, batch: &[Message]) {
    let mut meta = txn.open_table(META).expect("meta");
    let mut next_seq = meta
        .get(b"next_seq".as_slice())
        .expect("read seq")
        .map(|v| u64::from_le_bytes(v.value().try_into().expect("8 bytes")))
        .unwrap_or(0);
    let mut messages = txn.open_table(MESSAGES).expect("messages");
    let mut by_conv = txn.open_table(BY_CONV).expect("by_conv");
    let mut by_peer = txn.open_table(BY_PEER).expect("by_peer");
    let mut by_time = txn.open_table(BY_TIME).expect("by_time");
    for m in batch {
        let old: Option<Message> = messages
            .get(m.id.as_bytes())
            .expect("get old")
            .map(|v| codec::decode(v.value()).expect("decode old"));
        let mut new = m.clone();
        match old {
            Some(o) if o.same_content(m) => continue,
            Some(o) => {
                new.seq = o.seq;
                by_conv
                    .remove(prefixed(&o.conversation_id, &o).as_slice())
                    .expect("rm");
                for p in peers(&o) {
                    by_peer.remove(prefixed(p, &o).as_slice()).expect("rm");
                }
                by_time.remove(order_key(pos(&o)).as_slice()).expect("rm");
            }
            None => {
                new.seq = next_seq;
                next_seq += 1;
            }
        }
        let id = new.id.as_bytes();
        messages
            .insert(id, codec::encode(&new).expect("encode").as_slice())
            .expect("insert");
        by_conv
            .insert(prefixed(&new.conversation_id, &new).as_slice(), id)
            .expect("insert");
        for p in peers(&new) {
            by_peer
                .insert(prefixed(p, &new).as_slice(), id)
                .expect("insert");
        }
        by_time
            .insert(order_key(pos(&new)).as_slice(), id)
            .expect("insert");
    }
    meta.insert(b"next_seq".as_slice(), next_seq.to_le_bytes().as_slice())
        .expect("seq");
}

/// One durable write transaction saving `batch`.
pub fn save(db: &Database, batch: &[Message]) {
    let txn = db.begin_write().expect("write txn");
    save_in(&txn, batch);
    txn.commit().expect("commit");
}

/// Point get of one message in its own read transaction.
pub fn get(db: &Database, id: &str) -> Option<Message> {
    let txn = db.begin_read().expect("read txn");
    let t = txn.open_table(MESSAGES).expect("messages");
    t.get(id.as_bytes())
        .expect("get")
        .map(|v| codec::decode(v.value()).expect("decode"))
}

/// The newest `limit` messages of a conversation, in one read transaction.
pub fn page(db: &Database, conversation: &str, limit: usize) -> Vec<Message> {
    let txn = db.begin_read().expect("read txn");
    let idx = txn.open_table(BY_CONV).expect("by_conv");
    let messages = txn.open_table(MESSAGES).expect("messages");
    let mut lo = conversation.as_bytes().to_vec();
    lo.push(0);
    let mut hi = conversation.as_bytes().to_vec();
    hi.push(1);
    let mut out = Vec::with_capacity(limit);
    for entry in idx
        .range(lo.as_slice()..hi.as_slice())
        .expect("range")
        .rev()
        .take(limit)
    {
        let (_, id) = entry.expect("entry");
        let v = messages
            .get(id.value())
            .expect("get")
            .expect("indexed message present");
        out.push(codec::decode(v.value()).expect("decode"));
    }
    out
}

/// Runs every workload on a fresh database in `dir`.
pub fn run(data: &Data, dir: &Path) -> RunResult {
    let path = dir.join("raw.redb");
    let mut r = RunResult {
        system: "redb".into(),
        messages: data.messages.len(),
        ..RunResult::default()
    };
    let t = Instant::now();
    let db = Database::create(&path).expect("create");
    r.create_ms = secs(t) * 1e3;

    r.rss_base_kib = rss().now_kib;
    reset_peak_rss();
    let t = Instant::now();
    for batch in data.messages.chunks(W1_BATCH) {
        save(&db, batch);
    }
    r.w1_s = secs(t);
    r.w1_per_s = data.messages.len() as f64 / r.w1_s;
    r.rss_w1_peak_kib = rss().peak_kib;
    reset_peak_rss();
    drop(db);
    r.file_after_w1 = file_size(&path);

    let t = Instant::now();
    let db = Database::open(&path).expect("open");
    r.open_ms = secs(t) * 1e3;

    let t = Instant::now();
    let found = data
        .w3
        .iter()
        .filter(|&&i| get(&db, &data.messages[i].id).is_some())
        .count() as u64;
    r.w3_per_s = data.w3.len() as f64 / secs(t);

    let t = Instant::now();
    let rows: u64 = data
        .w4
        .iter()
        .map(|&c| page(&db, &data.conversations[c].id, W4_LIMIT).len() as u64)
        .sum();
    r.w4_per_s = data.w4.len() as f64 / secs(t);

    let t = Instant::now();
    let mut scanned = 0u64;
    {
        let txn = db.begin_read().expect("read txn");
        let table = txn.open_table(MESSAGES).expect("messages");
        for entry in table.iter().expect("iter") {
            let (_, v) = entry.expect("entry");
            let m: Message = codec::decode(v.value()).expect("decode");
            std::hint::black_box(&m);
            scanned += 1;
        }
    }
    r.w5_per_s = scanned as f64 / secs(t);
    // Already blocking reads: the same numbers.
    [r.w3_view_per_s, r.w4_view_per_s, r.w5_view_per_s] = [r.w3_per_s, r.w4_per_s, r.w5_per_s];
    r.check = [found, rows, scanned];

    let t = Instant::now();
    for m in &data.w2 {
        save(&db, std::slice::from_ref(m));
    }
    r.w2_per_s = data.w2.len() as f64 / secs(t);

    let t = Instant::now();
    thread::scope(|s| {
        for list in &data.w6 {
            let db = &db;
            s.spawn(move || {
                for m in list {
                    save(db, std::slice::from_ref(m));
                }
            });
        }
    });
    let total: usize = data.w6.iter().map(Vec::len).sum();
    r.w6_per_s = total as f64 / secs(t);
    drop(db);
    r.file_end = file_size(&path);
    r.file_compacted = compact(&path);
    r.rss_rest_peak_kib = rss().peak_kib;
    r
}

/// Compacts the closed store file with redb's own compaction (what a raw redb user has) and
/// returns its size.
pub fn compact(path: &Path) -> u64 {
    let mut db = redb::Database::open(path).expect("open for compaction");
    while db.compact().expect("compact") {}
    drop(db);
    file_size(path)
}
