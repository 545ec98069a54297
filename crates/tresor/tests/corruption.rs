//! A damaged store file: opening fails with a typed error or succeeds, and every read returns
//! authentic data or a typed error — never a panic, never a forged or misplaced message.
//! Salvage copies every readable message into a new store.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{PASS, msg};
use tresor::{Message, Tresor, salvage};

const CONVERSATIONS: usize = 5;

async fn build(path: &Path) -> HashMap<String, Message> {
    let store = Tresor::create(path, PASS.into()).await.unwrap();
    let batch: Vec<Message> = (0..400)
        .map(|i| {
            msg(
                &format!("m{i}"),
                &format!("c{}", i % CONVERSATIONS),
                &format!("p{}", i % 7),
                Some("hub"),
                1_000 * (i / 2) as i64,
                &"x".repeat(50 + i % 200),
            )
        })
        .collect();
    for chunk in batch.chunks(100) {
        store.messages().save_batch(chunk).await.unwrap();
    }
    let all = store.messages().recent(10_000, None).await.unwrap();
    all.into_iter().map(|m| (m.id.clone(), m)).collect()
}

/// Every message a read returns is exactly the original with that id, and pages come back in
/// the documented order.
fn authentic(got: &[Message], originals: &HashMap<String, Message>) {
    for m in got {
        assert_eq!(
            Some(m),
            originals.get(&m.id),
            "a read returned altered data"
        );
    }
    for w in got.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(
            a.timestamp_ms > b.timestamp_ms || (a.timestamp_ms == b.timestamp_ms && a.seq < b.seq),
            "order broken"
        );
    }
}

async fn exercise(path: &Path, originals: &HashMap<String, Message>) -> bool {
    let Ok(store) = Tresor::open(path, PASS.into()).await else {
        return false; // a typed error: acceptable
    };
    let m = store.messages();
    if let Ok(got) = m.recent(10_000, None).await {
        authentic(&got, originals);
    }
    for c in 0..CONVERSATIONS {
        if let Ok(got) = m.by_conversation(&format!("c{c}"), 10_000, None).await {
            assert!(got.iter().all(|g| g.conversation_id == format!("c{c}")));
            authentic(&got, originals);
        }
    }
    if let Ok(got) = m.by_peer("hub", 10_000, None).await {
        authentic(&got, originals);
    }
    for id in ["m0", "m123", "m399"] {
        if let Ok(Some(got)) = m.get(id).await {
            assert_eq!(Some(&got), originals.get(id));
        }
    }
    let _ = store.check().await;
    let _ = store.stats().await;
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_zeroed_and_truncated_files_never_serve_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.redb");
    let originals = build(&clean).await;
    let bytes = std::fs::read(&clean).unwrap();
    let len = bytes.len();
    assert!(len > 64 * 1024, "{len}");

    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..16 {
        let pos = (len / 16) * i + 37;
        let mut b = bytes.clone();
        b[pos] ^= 0x5A;
        variants.push((format!("flip@{pos}"), b));
    }
    for i in 0..8 {
        let page = (len / 4096 / 8) * i * 4096;
        let mut b = bytes.clone();
        b[page..(page + 4096).min(len)].fill(0);
        variants.push((format!("zero page@{page}"), b));
    }
    for cut in [len / 3, len / 2, len - 4096, 512] {
        variants.push((format!("truncate@{cut}"), bytes[..cut].to_vec()));
    }
    let mut opened = 0;
    for (what, data) in &variants {
        let path = dir.path().join("damaged.redb");
        std::fs::write(&path, data).unwrap();
        if exercise(&path, &originals).await {
            opened += 1;
        }
        let _ = what;
    }
    println!(
        "{opened} of {} damaged variants opened; all reads authentic",
        variants.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salvage_recovers_every_readable_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let originals = build(&path).await;
    // Damage one sealed record in place, as bit rot would.
    {
        use tresor::Backend;
        use tresor_backend::{Direction, Durability, KeyRange, WriteBatch};
        let b = tresor_redb::RedbBackend::open_existing(&path).unwrap();
        let (k, mut v) = b
            .scan("messages", KeyRange::all(), Direction::Forward, 1)
            .await
            .unwrap()
            .remove(0);
        v[20] ^= 1;
        let mut w = WriteBatch::new();
        w.put("messages", k, v);
        b.commit(w, Durability::Immediate).await.unwrap();
        tokio::task::spawn_blocking(move || drop(b)).await.unwrap();
    }
    let target = dir.path().join("salvaged.redb");
    let (store, report) = salvage(&path, &target, PASS.into()).await.unwrap();
    assert_eq!(
        (report.candidates, report.recovered, report.lost),
        (400, 399, 1)
    );
    let got = store.messages().recent(10_000, None).await.unwrap();
    assert_eq!(got.len(), 399);
    for m in &got {
        let o = &originals[&m.id];
        assert!(m.same_content(o));
    }
    assert!(store.check().await.unwrap().is_clean());
    // Order among equal timestamps survives the salvage.
    let mut expected: Vec<_> = originals
        .values()
        .filter(|m| got.iter().any(|g| g.id == m.id))
        .collect();
    expected.sort_by(|a, b| b.timestamp_ms.cmp(&a.timestamp_ms).then(a.seq.cmp(&b.seq)));
    let expected: Vec<_> = expected.iter().map(|m| m.id.clone()).collect();
    let got_ids: Vec<_> = got.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got_ids, expected);
    // The damaged store was only read; the target may not be overwritten.
    let err = salvage(&path, &target, PASS.into()).await.unwrap_err();
    assert!(matches!(err, tresor::Error::AlreadyExists(_)));
}
