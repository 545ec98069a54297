//! Model-based fuzzing of the facade: the input is a sequence of operations (save, batch,
//! delete, paged query, reopen) run against a store on the in-memory backend and against a
//! `BTreeMap` model; every answer must match the model, and `check` must stay clean.
//! The store uses a cheap key header (Argon2id m = 8 KiB, t = 1) so a reopen costs µs.
#![no_main]

#[path = "common.rs"]
mod common;

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tresor::{MemoryBackend, Message, Options, Tresor};
use tresor_backend::{Backend, Durability, WriteBatch};
use tresor_schema::catalog::{META, meta_keys};

const PASS: &str = "fuzz";

fn cheap_store_backend() -> MemoryBackend {
    let (header, _) = common::cheap_header(PASS, [5u8; 16]);
    let backend = MemoryBackend::new();
    let mut batch = WriteBatch::new();
    batch.put(META, meta_keys::KEY_HEADER, header);
    batch.put(META, meta_keys::SCHEMA_VERSION, 1u32.to_le_bytes().to_vec());
    batch.put(META, meta_keys::NEXT_SEQ, 0u64.to_le_bytes().to_vec());
    futures_block(backend.commit(batch, Durability::Immediate)).expect("commit");
    backend
}

fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
}

fn message(id: u8, conv: u8, ts: u8, body: u8) -> Message {
    Message::new(
        format!("m{}", id % 16),
        format!("c{}", conv % 3),
        format!("p{}", id % 3),
        (body % 2 == 0).then(|| format!("p{}", (id + 1) % 3)),
        i64::from(ts % 6),
        format!("b{body}"),
    )
}

#[derive(Default)]
struct Model {
    messages: BTreeMap<String, Message>,
    next_seq: u64,
}

impl Model {
    fn save(&mut self, m: &Message) {
        let mut m = m.clone();
        match self.messages.get(&m.id) {
            Some(old) if old.same_content(&m) => return,
            Some(old) => m.seq = old.seq,
            None => {
                m.seq = self.next_seq;
                self.next_seq += 1;
            }
        }
        self.messages.insert(m.id.clone(), m);
    }

    fn ordered(&self, keep: impl Fn(&Message) -> bool) -> Vec<Message> {
        let mut v: Vec<Message> = self.messages.values().filter(|m| keep(m)).cloned().collect();
        v.sort_by(|a, b| b.timestamp_ms.cmp(&a.timestamp_ms).then(a.seq.cmp(&b.seq)));
        v
    }
}

fuzz_target!(|data: &[u8]| {
    let backend = cheap_store_backend();
    futures_block(async {
        let open = || Tresor::with_backend(backend.clone(), PASS.into(), Options::default());
        let mut store = open().await.expect("open");
        let mut model = Model::default();
        for op in data.chunks_exact(4).take(64) {
            let (a, b, c, d) = (op[0], op[1], op[2], op[3]);
            let m = store.messages();
            match a % 7 {
                0 | 1 => {
                    let msg = message(b, c, d, a / 7);
                    m.save(&msg).await.expect("save");
                    model.save(&msg);
                }
                2 => {
                    let batch: Vec<Message> =
                        (0..b % 5).map(|i| message(c.wrapping_add(i), d, i, a)).collect();
                    m.save_batch(&batch).await.expect("batch");
                    batch.iter().for_each(|x| model.save(x));
                }
                3 => {
                    let id = format!("m{}", b % 16);
                    let existed = m.delete(&id).await.expect("delete");
                    assert_eq!(existed, model.messages.remove(&id).is_some());
                }
                4 => {
                    let conv = format!("c{}", b % 3);
                    let limit = usize::from(c % 4) + 1;
                    let mut got = Vec::new();
                    let mut cursor: Option<String> = None;
                    loop {
                        let page = m.by_conversation(&conv, limit, cursor.as_deref()).await.expect("page");
                        let Some(last) = page.last() else { break };
                        cursor = Some(last.id.clone());
                        got.extend(page);
                    }
                    assert_eq!(got, model.ordered(|x| x.conversation_id == conv));
                }
                5 => {
                    let limit = usize::from(b % 20) + 1;
                    let want: Vec<_> = model.ordered(|_| true).into_iter().take(limit).collect();
                    assert_eq!(m.recent(limit, None).await.expect("recent"), want);
                }
                _ => {
                    drop(store);
                    store = open().await.expect("reopen");
                }
            }
        }
        assert!(store.check().await.expect("check").is_clean());
        assert_eq!(store.stats().await.expect("stats").messages, model.messages.len() as u64);
    });
});
