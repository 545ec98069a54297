//! Model-based property test: an arbitrary sequence of facade operations (save, batch save,
//! delete, paged queries, reopen) against an in-memory model, with shrinking. Modest case counts
//! here; `cargo xtask proptest` runs 100× as many.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::PASS;
use proptest::prelude::*;
use tresor::{MemoryBackend, Message, Options, Tresor};
use tresor_backend::QueuedCommits;

#[derive(Debug, Clone)]
enum Op {
    Save(u8, u8, i64, u8),
    Batch(Vec<(u8, u8, i64, u8)>),
    /// Several batches through `save_batches` (each prepared while the one before commits).
    Batches(Vec<Vec<(u8, u8, i64, u8)>>),
    Delete(u8),
    PageConversation(u8, usize),
    PagePeer(u8, usize),
    Recent(usize),
    Reopen,
}

fn message((id, conv, ts, body): (u8, u8, i64, u8)) -> Message {
    Message::new(
        format!("m{id}"),
        format!("c{conv}"),
        format!("p{}", id % 3),
        (body % 2 == 0).then(|| format!("p{}", (id + 1) % 3)),
        ts,
        format!("body {body}"),
    )
}

fn arb_spec() -> impl Strategy<Value = (u8, u8, i64, u8)> {
    (0u8..24, 0u8..3, 0i64..8, 0u8..4)
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => arb_spec().prop_map(|(a, b, c, d)| Op::Save(a, b, c, d)),
        2 => proptest::collection::vec(arb_spec(), 0..8).prop_map(Op::Batch),
        2 => proptest::collection::vec(proptest::collection::vec(arb_spec(), 0..6), 0..4)
            .prop_map(Op::Batches),
        2 => (0u8..24).prop_map(Op::Delete),
        2 => (0u8..3, 1usize..5).prop_map(|(c, l)| Op::PageConversation(c, l)),
        1 => (0u8..3, 1usize..5).prop_map(|(p, l)| Op::PagePeer(p, l)),
        1 => (1usize..30).prop_map(Op::Recent),
        1 => Just(Op::Reopen),
    ]
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
        let mut v: Vec<Message> = self
            .messages
            .values()
            .filter(|m| keep(m))
            .cloned()
            .collect();
        v.sort_by(|a, b| b.timestamp_ms.cmp(&a.timestamp_ms).then(a.seq.cmp(&b.seq)));
        v
    }
}

async fn pages<F, Fut>(limit: usize, mut fetch: F) -> Vec<Message>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Vec<Message>>,
{
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = fetch(cursor.clone()).await;
        assert!(page.len() <= limit);
        let Some(last) = page.last() else { return all };
        cursor = Some(last.id.clone());
        all.extend(page);
    }
}

async fn run(ops: Vec<Op>) {
    // Commits complete on another task: what runs beside one (`save_batches` preparing its
    // next batch) sees the store before it.
    let backend = QueuedCommits::new(MemoryBackend::new(), std::time::Duration::ZERO);
    let mut store = Tresor::with_backend(backend.clone(), PASS.into(), Options::default())
        .await
        .unwrap();
    let mut model = Model::default();
    let mut reopens = 0;
    for op in ops {
        let m = store.messages();
        match op {
            Op::Save(a, b, c, d) => {
                let msg = message((a, b, c, d));
                m.save(&msg).await.unwrap();
                model.save(&msg);
            }
            Op::Batch(specs) => {
                let batch: Vec<Message> = specs.into_iter().map(message).collect();
                m.save_batch(&batch).await.unwrap();
                for msg in &batch {
                    model.save(msg);
                }
            }
            Op::Batches(specs) => {
                let batches: Vec<Vec<Message>> = specs
                    .into_iter()
                    .map(|b| b.into_iter().map(message).collect())
                    .collect();
                let mut reported = Vec::new();
                let total = m
                    .save_batches(futures_util::stream::iter(batches.clone()), |s| {
                        reported.push(*s)
                    })
                    .await
                    .unwrap();
                let mut want = tresor::SaveSummary::default();
                let mut want_each = Vec::new();
                for batch in batches.iter().filter(|b| !b.is_empty()) {
                    let mut each = tresor::SaveSummary::default();
                    for msg in batch {
                        let before = model.messages.get(&msg.id).cloned();
                        model.save(msg);
                        match before {
                            None => each.inserted += 1,
                            Some(old) if old.same_content(msg) => each.unchanged += 1,
                            Some(_) => each.updated += 1,
                        }
                    }
                    want.inserted += each.inserted;
                    want.updated += each.updated;
                    want.unchanged += each.unchanged;
                    want_each.push(each);
                }
                assert_eq!(reported, want_each);
                assert_eq!(total, want);
            }
            Op::Delete(id) => {
                let id = format!("m{id}");
                let existed = m.delete(&id).await.unwrap();
                assert_eq!(existed, model.messages.remove(&id).is_some());
            }
            Op::PageConversation(c, limit) => {
                let conv = format!("c{c}");
                let got = pages(limit, |cur| {
                    let m = store.messages();
                    let conv = conv.clone();
                    async move {
                        m.by_conversation(&conv, limit, cur.as_deref())
                            .await
                            .unwrap()
                    }
                })
                .await;
                assert_eq!(got, model.ordered(|m| m.conversation_id == conv));
            }
            Op::PagePeer(p, limit) => {
                let peer = format!("p{p}");
                let got = pages(limit, |cur| {
                    let m = store.messages();
                    let peer = peer.clone();
                    async move { m.by_peer(&peer, limit, cur.as_deref()).await.unwrap() }
                })
                .await;
                assert_eq!(
                    got,
                    model.ordered(|m| m.sender == peer || m.recipient.as_deref() == Some(&peer))
                );
            }
            Op::Recent(limit) => {
                let got = m.recent(limit, None).await.unwrap();
                let want: Vec<Message> = model.ordered(|_| true).into_iter().take(limit).collect();
                assert_eq!(got, want);
            }
            Op::Reopen => {
                // A reopen costs a KDF run; two per case keep the test fast.
                if reopens < 2 {
                    reopens += 1;
                    drop(store);
                    store = Tresor::with_backend(backend.clone(), PASS.into(), Options::default())
                        .await
                        .unwrap();
                }
            }
        }
    }
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.messages, model.messages.len() as u64);
    let convs: std::collections::BTreeSet<_> = model
        .messages
        .values()
        .map(|m| &m.conversation_id)
        .collect();
    assert_eq!(stats.conversations, convs.len() as u64);
    assert!(store.check().await.unwrap().is_clean());
}

fn cases() -> u32 {
    let multiplier: u32 = std::env::var("TRESOR_PROPTEST_MULTIPLIER")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    24 * multiplier
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn the_facade_behaves_like_the_model(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}
