//! Writes `tests/vectors.json`: known-answer vectors of tresor's key hierarchy, made by this
//! crate's code (run by `cargo xtask vectors --write`; checked by `tests/vectors.rs`, by
//! `tresor-schema`'s tests, and independently by `xtask/vectors/verify.py`).
//!
//! Inputs are fixed; the random parts (salts, nonces, DEKs) are drawn once and recorded, so
//! the file is regenerated only when the format changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tresor_crypto::keys::{INFO_BACKUP, INFO_INDEX, INFO_VALUES, hkdf_sha256};
use tresor_crypto::{
    BlindKey, DataKey, KdfParams, KeyHeader, Passphrase, RawKey, SealingKey, Secret,
};
use zeroize::Zeroizing;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// bincode 2 `config::standard()` varint of an unsigned integer (docs/FORMAT.md 1.8).
fn varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if v <= u64::from(u16::MAX) {
        out.push(251);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v <= u64::from(u32::MAX) {
        out.push(252);
        out.extend_from_slice(&(v as u32).to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The record bytes of a `Message` (format 1), by hand from docs/FORMAT.md 1.8.
fn message_record(m: &Value) -> Vec<u8> {
    let mut p = Vec::new();
    string(&mut p, m["id"].as_str().unwrap());
    string(&mut p, m["conversation_id"].as_str().unwrap());
    string(&mut p, m["sender"].as_str().unwrap());
    match m["recipient"].as_str() {
        Some(r) => {
            p.push(1);
            string(&mut p, r);
        }
        None => p.push(0),
    }
    let ts = m["timestamp_ms"].as_i64().unwrap();
    varint(&mut p, ((ts << 1) ^ (ts >> 63)) as u64);
    string(&mut p, m["body"].as_str().unwrap());
    varint(&mut p, m["seq"].as_u64().unwrap());
    let mut out = vec![1];
    out.extend_from_slice(&p);
    out
}

/// Unsigned LEB128 (docs/FORMAT.md 1.8, format 3).
fn leb128(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A format-3 `text`: kind 1 (16 bytes and a suffix) for a string starting with a canonical
/// lowercase UUID, kind 0 otherwise (docs/FORMAT.md 1.8).
fn compact_text(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let uuid = b.len() >= 36
        && b[..36].iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        });
    if uuid {
        out.push(1);
        let digits: Vec<u8> = b[..36].iter().copied().filter(|c| *c != b'-').collect();
        for pair in digits.chunks(2) {
            out.push(u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap());
        }
        leb128(out, (b.len() - 36) as u64);
        out.extend_from_slice(&b[36..]);
    } else {
        out.push(0);
        leb128(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

/// The record bytes of a `Message` in format 3, by hand from docs/FORMAT.md 1.8.
fn compact_record(m: &Value) -> Vec<u8> {
    let mut out = vec![3];
    compact_text(&mut out, m["id"].as_str().unwrap());
    compact_text(&mut out, m["conversation_id"].as_str().unwrap());
    compact_text(&mut out, m["sender"].as_str().unwrap());
    match m["recipient"].as_str() {
        Some(r) => compact_text(&mut out, r),
        None => out.push(2),
    }
    let ts = m["timestamp_ms"].as_i64().unwrap();
    leb128(&mut out, ((ts << 1) ^ (ts >> 63)) as u64);
    compact_text(&mut out, m["body"].as_str().unwrap());
    leb128(&mut out, m["seq"].as_u64().unwrap());
    out
}

/// Padmé length with a 64-byte floor (docs/FORMAT.md 1.8, format 2).
fn padded_len(len: usize) -> usize {
    let l = len.max(64) as u64;
    let e = 63 - u64::from(l.leading_zeros());
    let s = 64 - u64::from(e.leading_zeros());
    let mask = (1u64 << (e - s)) - 1;
    ((l + mask) & !mask) as usize
}

fn record_aad(table: &str, key: &[u8]) -> Vec<u8> {
    let mut aad = b"tresor/v1/record".to_vec();
    aad.push(table.len() as u8);
    aad.extend_from_slice(table.as_bytes());
    aad.extend_from_slice(key);
    aad
}

fn order_key(ts: i64, seq: u64) -> Vec<u8> {
    let mut k = ((ts as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    k.extend_from_slice(&(u64::MAX - seq).to_be_bytes());
    k
}

fn main() {
    let out_path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors.json").into());
    let passphrase = "correct horse battery staple";
    let secret = Secret::Passphrase(Passphrase::from(passphrase));
    let raw_key = RawKey::new(Zeroizing::new(std::array::from_fn(|i| i as u8)));
    let raw_secret = Secret::RawKey(raw_key.clone());
    let salt: [u8; 16] = *b"tresor-kat-salt!";

    // 1. KDFs: secret + salt + parameters -> KEK.
    let mut kdfs = Vec::new();
    for (name, params, extra) in [
        (
            "argon2id",
            KdfParams::ARGON2ID_OWASP,
            json!({"memory_kib": 19456, "iterations": 2, "parallelism": 1}),
        ),
        (
            "pbkdf2-hmac-sha512",
            KdfParams::PBKDF2_OWASP,
            json!({"iterations": 220000}),
        ),
    ] {
        let kek = params.derive_kek(&secret, &salt).unwrap();
        kdfs.push(
            json!({"kdf": name, "params": extra, "passphrase": passphrase,
            "salt_hex": hex(&salt), "kek_hex": hex(kek.as_ref())}),
        );
    }
    let kek = KdfParams::RawKey.derive_kek(&raw_secret, &salt).unwrap();
    kdfs.push(
        json!({"kdf": "raw-key", "params": {}, "raw_key_hex": hex(raw_key.expose()),
        "salt_hex": hex(&salt), "kek_hex": hex(kek.as_ref())}),
    );

    // 2. Key headers: header bytes + secret -> DEK.
    let (header, dek) = KeyHeader::create(&secret, KdfParams::ARGON2ID_OWASP).unwrap();
    let raw_header = KeyHeader::wrap(&dek, &raw_secret, KdfParams::default()).unwrap();
    let pbkdf2_header = KeyHeader::wrap(&dek, &secret, KdfParams::PBKDF2_OWASP).unwrap();
    let headers = json!([
        {"passphrase": passphrase, "header_hex": hex(&header.encode()), "dek_hex": hex(dek.expose())},
        {"passphrase": passphrase, "header_hex": hex(&pbkdf2_header.encode()), "dek_hex": hex(dek.expose())},
        {"raw_key_hex": hex(raw_key.expose()), "header_hex": hex(&raw_header.encode()), "dek_hex": hex(dek.expose())},
    ]);

    // 3. Subkeys of that DEK, and one backup's chunk key.
    let values = hkdf_sha256(&[], dek.expose(), INFO_VALUES);
    let index = hkdf_sha256(&[], dek.expose(), INFO_INDEX);
    let backup_root = hkdf_sha256(&[], dek.expose(), INFO_BACKUP);
    let backup_id: [u8; 16] = *b"backup-id-kat-01";
    let backup_key = hkdf_sha256(&backup_id, backup_root.as_ref(), b"tresor/v1/backup-chunks");
    let subkeys = json!({"dek_hex": hex(dek.expose()), "values_hex": hex(values.as_ref()),
        "index_hex": hex(index.as_ref()), "backup_root_hex": hex(backup_root.as_ref()),
        "backup_id_hex": hex(&backup_id), "backup_chunk_key_hex": hex(backup_key.as_ref())});

    // 4. Blind tokens under the index key.
    let blind = BlindKey::new(index.clone());
    let mut tokens = Vec::new();
    for (domain, id) in [
        ("message", "m1"),
        ("conversation", "room-1"),
        ("peer", "alice"),
        ("peer", "bob"),
        ("peer", "élodie 🐝"),
    ] {
        tokens.push(json!({"domain": domain, "id": id,
            "token_hex": hex(&blind.token(domain.as_bytes(), id.as_bytes()))}));
    }

    // 5. Sealed records: value key + AAD -> record bytes (format 1, padded format 2, and the
    // compact format 3 of a message with UUID ids).
    let sealing = SealingKey::new(&values);
    let message = json!({"id": "m1", "conversation_id": "room-1", "sender": "alice",
        "recipient": "bob", "timestamp_ms": 1_700_000_000_000i64, "body": "hi Bob, ça va? 🐝",
        "seq": 300});
    let token = blind.token(b"message", b"m1");
    let plain = message_record(&message);
    let mut padded = vec![2];
    padded.extend_from_slice(&((plain.len() - 1) as u32).to_le_bytes());
    padded.extend_from_slice(&plain[1..]);
    padded.resize(padded_len(padded.len()), 0);
    let uuids = json!({"id": "a07edb12-6b91-4138-b11e-02421888d699:7",
        "conversation_id": "a07edb12-6b91-4138-b11e-02421888d699",
        "sender": "720840be-e522-47ba-9e9f-143f66372673", "recipient": "bob",
        "timestamp_ms": 1_525_289_895_000i64, "body": "Hello, ça va? 🐝", "seq": 300});
    let uuid_token = blind.token(b"message", uuids["id"].as_str().unwrap().as_bytes());
    let compact = compact_record(&uuids);
    let mut records = Vec::new();
    for (record, message, token) in [
        (&plain, &message, &token),
        (&padded, &message, &token),
        (&compact, &uuids, &uuid_token),
    ] {
        let aad = record_aad("messages", token);
        let sealed = sealing.seal(&aad, record).unwrap();
        records.push(
            json!({"table": "messages", "key_hex": hex(token), "aad_hex": hex(&aad),
            "sealed_hex": hex(&sealed), "record_hex": hex(record), "message": message}),
        );
    }

    // 6. Order keys.
    let mut orders = Vec::new();
    for (ts, seq) in [(0i64, 0u64), (1_700_000_000_000, 300), (-1, u64::MAX)] {
        orders.push(
            json!({"timestamp_ms": ts, "seq": seq, "order_key_hex": hex(&order_key(ts, seq))}),
        );
    }

    // 7. Rotation: the previous DEK wrapped under the new one.
    let new_dek = DataKey::generate().unwrap();
    let wrapped = new_dek.wrap_previous(&dek).unwrap();
    let rotation = json!({"dek_hex": hex(new_dek.expose()), "previous_dek_hex": hex(dek.expose()),
        "wrapped_hex": hex(&wrapped)});

    let doc = json!({
        "about": "tresor known-answer vectors, generated by crates/tresor-crypto/examples/gen_vectors.rs; every value is reproducible from docs/FORMAT.md (xtask/vectors/verify.py). Hex is lowercase.",
        "kdf": kdfs,
        "key_headers": headers,
        "subkeys": subkeys,
        "tokens": tokens,
        "records": records,
        "order_keys": orders,
        "rotation": rotation,
    });
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    std::fs::write(&out_path, text).unwrap();
    eprintln!("wrote {out_path}");
}
