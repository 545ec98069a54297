//! The backup reader under attack. The input picks a store's messages and a mutation; the
//! target builds a real backup of that store (with a cheap key header so each run is fast),
//! mutates it, and runs `verify`: the untouched backup must verify, every mutated one must be
//! refused, and raw fuzz bytes fed straight to the reader must never panic.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tresor_backend::{Durability, MemoryBackend, WriteBatch};
use tresor_crypto::{DataKey, Secret};
use tresor_schema::Message;
use tresor_schema::catalog::{META, MESSAGES, meta_keys};
use tresor_schema::messages::{index_entries, record_key, seal_message, tokens};
use tresor_schema::version;

const PASS: &str = "fuzz";

/// The cheap key header of every run (built once).
fn cheap_header() -> &'static (Vec<u8>, DataKey) {
    static H: OnceLock<(Vec<u8>, DataKey)> = OnceLock::new();
    H.get_or_init(|| common::cheap_header(PASS, [3u8; 16]))
}

fn backup_of(bodies: &[u8]) -> Vec<u8> {
    let (header, dek) = cheap_header();
    let keys = dek.store_keys();
    let backend = MemoryBackend::new();
    let mut batch = WriteBatch::new();
    batch.put(META, meta_keys::KEY_HEADER, header.clone());
    batch.put(META, meta_keys::SCHEMA_VERSION, version::encode(version::SCHEMA_VERSION).to_vec());
    for (i, chunk) in bodies.chunks(7).take(32).enumerate() {
        let mut m = Message::new(format!("m{i}"), format!("c{}", chunk[0] % 3), "a", Some("b".into()), i64::from(chunk[0]), String::from_utf8_lossy(chunk));
        m.seq = i as u64;
        let t = tokens(&keys, &m);
        let rk = record_key(&m, &t);
        batch.put(MESSAGES, rk.clone(), seal_message(&keys, &rk, &m).expect("seal"));
        for (table, k, v) in index_entries(&m, &t) {
            batch.put(table, k, v);
        }
    }
    batch.put(META, meta_keys::NEXT_SEQ, 32u64.to_le_bytes().to_vec());
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        tresor_backend::Backend::commit(&backend, batch, Durability::Immediate).await.expect("commit");
        let mut out = Vec::new();
        tresor_backup::create(&backend, &keys, header, 1_700_000_000_000, &mut out).await.expect("create");
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let pass = Secret::from(PASS);
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 5 == 4 {
        let _ = tresor_backup::verify(rest, &pass);
        return;
    }
    if rest.len() < 4 {
        return;
    }
    let pos = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let mut file = backup_of(&rest[4..]);
    match mode % 5 {
        0 => {
            tresor_backup::verify(&file[..], &pass).expect("an untouched backup verifies");
            return;
        }
        1 => {
            let i = pos % file.len();
            file[i] ^= 1 << (pos % 8);
        }
        2 => file.truncate(pos % file.len()),
        _ => file.push(pos as u8),
    }
    assert!(tresor_backup::verify(&file[..], &pass).is_err(), "a mutated backup verified (mode {mode})");
});
