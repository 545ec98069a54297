//! SQLite (feature `sqlite`) or SQLCipher (feature `sqlcipher`) through rusqlite: one table,
//! a unique index on the message id, indexes by conversation, sender, recipient and time,
//! WAL, `synchronous=FULL`; SQLCipher with its default KDF (`PRAGMA key`, PBKDF2-HMAC-SHA512).

use std::path::Path;
use std::sync::Mutex;
use std::thread;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, Row, params};
use tresor::Message;

use crate::common::{
    Data, PASSPHRASE, RunResult, W1_BATCH, W4_LIMIT, file_size, reset_peak_rss, rss, secs,
};

/// The system's name in results.
pub const NAME: &str = if cfg!(feature = "sqlcipher") {
    "sqlcipher"
} else {
    "sqlite"
};

const SCHEMA: &str = "
CREATE TABLE messages(
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT,
    ts INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX by_conversation ON messages(conversation_id, ts DESC, seq);
CREATE INDEX by_sender ON messages(sender, ts DESC, seq);
CREATE INDEX by_recipient ON messages(recipient, ts DESC, seq);
CREATE INDEX by_time ON messages(ts DESC, seq);
";

const INSERT: &str = "
INSERT INTO messages(id, conversation_id, sender, recipient, ts, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT(id) DO UPDATE SET conversation_id = excluded.conversation_id, sender = excluded.sender,
    recipient = excluded.recipient, ts = excluded.ts, body = excluded.body
WHERE conversation_id IS NOT excluded.conversation_id OR sender IS NOT excluded.sender
    OR recipient IS NOT excluded.recipient OR ts IS NOT excluded.ts OR body IS NOT excluded.body";

const COLUMNS: &str = "seq, id, conversation_id, sender, recipient, ts, body";

fn row(r: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        seq: r.get::<_, i64>(0)? as u64,
        id: r.get(1)?,
        conversation_id: r.get(2)?,
        sender: r.get(3)?,
        recipient: r.get(4)?,
        timestamp_ms: r.get(5)?,
        body: r.get(6)?,
    })
}

/// Opens the database, keys it (SQLCipher) and sets WAL and `synchronous=FULL`. Returns the
/// connection and the milliseconds of the first statement that reads the file (where
/// SQLCipher runs its KDF).
fn open(path: &Path) -> (Connection, f64) {
    let c = Connection::open(path).expect("open");
    if cfg!(feature = "sqlcipher") {
        c.pragma_update(None, "key", PASSPHRASE).expect("key");
    }
    let t = Instant::now();
    let _: i64 = c
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .expect("first read");
    let first_read_ms = secs(t) * 1e3;
    let _: String = c
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("wal");
    c.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    (c, first_read_ms)
}

fn save(c: &Connection, m: &Message) {
    c.prepare_cached(INSERT)
        .expect("prepare")
        .execute(params![
            m.id,
            m.conversation_id,
            m.sender,
            m.recipient,
            m.timestamp_ms,
            m.body
        ])
        .expect("insert");
}

fn checkpoint(c: &Connection) {
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
}

/// Runs every workload on a fresh database in `dir`.
pub fn run(data: &Data, dir: &Path) -> RunResult {
    let path = dir.join(format!("{NAME}.db"));
    let mut r = RunResult {
        system: NAME.into(),
        messages: data.messages.len(),
        ..RunResult::default()
    };
    let t = Instant::now();
    let (mut c, _) = open(&path);
    c.execute_batch(SCHEMA).expect("schema");
    r.create_ms = secs(t) * 1e3;

    r.rss_base_kib = rss().now_kib;
    reset_peak_rss();
    let t = Instant::now();
    for batch in data.messages.chunks(W1_BATCH) {
        let tx = c.transaction().expect("begin");
        for m in batch {
            save(&tx, m);
        }
        tx.commit().expect("commit");
    }
    r.w1_s = secs(t);
    r.w1_per_s = data.messages.len() as f64 / r.w1_s;
    r.rss_w1_peak_kib = rss().peak_kib;
    reset_peak_rss();
    checkpoint(&c);
    drop(c);
    r.file_after_w1 = file_size(&path);

    let t = Instant::now();
    let (c, first_read_ms) = open(&path);
    r.open_ms = secs(t) * 1e3;
    r.unlock_ms = if cfg!(feature = "sqlcipher") {
        first_read_ms
    } else {
        0.0
    };

    let t = Instant::now();
    let mut found = 0u64;
    {
        let mut get = c
            .prepare_cached(&format!("SELECT {COLUMNS} FROM messages WHERE id = ?1"))
            .expect("prepare");
        for &i in &data.w3 {
            if get
                .query_row([&data.messages[i].id], row)
                .optional()
                .expect("get")
                .is_some()
            {
                found += 1;
            }
        }
    }
    r.w3_per_s = data.w3.len() as f64 / secs(t);

    let t = Instant::now();
    let mut rows = 0u64;
    {
        let mut page = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages WHERE conversation_id = ?1 \
                 ORDER BY ts DESC, seq LIMIT ?2"
            ))
            .expect("prepare");
        for &i in &data.w4 {
            let got: Vec<Message> = page
                .query_map(params![data.conversations[i].id, W4_LIMIT as i64], row)
                .expect("page")
                .collect::<Result<_, _>>()
                .expect("rows");
            rows += got.len() as u64;
        }
    }
    r.w4_per_s = data.w4.len() as f64 / secs(t);

    let t = Instant::now();
    let mut scanned = 0u64;
    {
        let mut all = c
            .prepare(&format!("SELECT {COLUMNS} FROM messages"))
            .expect("prepare");
        for m in all.query_map([], row).expect("scan") {
            std::hint::black_box(&m.expect("row"));
            scanned += 1;
        }
    }
    r.w5_per_s = scanned as f64 / secs(t);
    // Already blocking reads: the same numbers.
    [r.w3_view_per_s, r.w4_view_per_s, r.w5_view_per_s] = [r.w3_per_s, r.w4_per_s, r.w5_per_s];
    r.check = [found, rows, scanned];

    let t = Instant::now();
    for m in &data.w2 {
        save(&c, m);
    }
    r.w2_per_s = data.w2.len() as f64 / secs(t);

    // One connection shared by the writers (SQLite has one writer at a time; a connection per
    // writer would only add busy-handler sleeps).
    let t = Instant::now();
    let shared = Mutex::new(c);
    thread::scope(|s| {
        for list in &data.w6 {
            let shared = &shared;
            s.spawn(move || {
                for m in list {
                    save(&shared.lock().expect("writer lock"), m);
                }
            });
        }
    });
    let total: usize = data.w6.iter().map(Vec::len).sum();
    r.w6_per_s = total as f64 / secs(t);
    let c = shared.into_inner().expect("writer lock");
    checkpoint(&c);
    r.file_end = file_size(&path);
    c.execute_batch("VACUUM").expect("vacuum");
    checkpoint(&c);
    drop(c);
    r.file_compacted = file_size(&path);
    r.rss_rest_peak_kib = rss().peak_kib;
    r
}

/// Whether the query plan of a W4 page uses the conversation index without a sort (printed by
/// `plan`, for the docs).
pub fn plan(dir: &Path) -> Vec<String> {
    let path = dir.join(format!("{NAME}-plan.db"));
    let _ = std::fs::remove_file(&path);
    let (c, _) = open(&path);
    c.execute_batch(SCHEMA).expect("schema");
    let mut out = Vec::new();
    for q in [
        format!(
            "SELECT {COLUMNS} FROM messages WHERE conversation_id = 'x' ORDER BY ts DESC, seq LIMIT 50"
        ),
        format!("SELECT {COLUMNS} FROM messages WHERE id = 'x'"),
    ] {
        let mut st = c
            .prepare(&format!("EXPLAIN QUERY PLAN {q}"))
            .expect("prepare");
        let rows = st
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<Vec<_>, _>>()
            .expect("plan rows");
        out.push(format!("{q}: {}", rows.join("; ")));
    }
    drop(c);
    let _ = std::fs::remove_file(&path);
    out
}
