//! Checks `tests/vectors.json` (written by `examples/gen_vectors.rs`) against this crate: every
//! deterministic value is recomputed, every random one (wrapped keys, sealed values) opened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tresor_crypto::keys::{INFO_BACKUP, INFO_INDEX, INFO_VALUES, hkdf_sha256};
use tresor_crypto::{
    BlindKey, DataKey, KdfParams, KeyHeader, Passphrase, RawKey, SealingKey, Secret,
};
use zeroize::Zeroizing;

fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors.json"))
        .expect("tests/vectors.json (cargo xtask vectors --write)");
    serde_json::from_str(&text).unwrap()
}

fn unhex(s: &Value) -> Vec<u8> {
    let s = s.as_str().expect("hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key32(v: &Value) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(unhex(v).try_into().unwrap())
}

fn secret(v: &Value) -> Secret {
    match v.get("passphrase") {
        Some(p) => Secret::Passphrase(Passphrase::from(p.as_str().unwrap())),
        None => Secret::RawKey(RawKey::new(key32(&v["raw_key_hex"]))),
    }
}

#[test]
fn kdf_vectors() {
    let v = vectors();
    for case in v["kdf"].as_array().unwrap() {
        let p = &case["params"];
        let kdf = match case["kdf"].as_str().unwrap() {
            "argon2id" => KdfParams::Argon2id {
                memory_kib: p["memory_kib"].as_u64().unwrap() as u32,
                iterations: p["iterations"].as_u64().unwrap() as u32,
                parallelism: p["parallelism"].as_u64().unwrap() as u32,
            },
            "pbkdf2-hmac-sha512" => KdfParams::Pbkdf2Sha512 {
                iterations: p["iterations"].as_u64().unwrap() as u32,
            },
            "raw-key" => KdfParams::RawKey,
            other => panic!("unknown kdf {other}"),
        };
        let salt: [u8; 16] = unhex(&case["salt_hex"]).try_into().unwrap();
        let kek = kdf.derive_kek(&secret(case), &salt).unwrap();
        assert_eq!(kek.to_vec(), unhex(&case["kek_hex"]), "{}", case["kdf"]);
    }
}

#[test]
fn key_header_vectors() {
    let v = vectors();
    for case in v["key_headers"].as_array().unwrap() {
        let header = KeyHeader::decode(&unhex(&case["header_hex"])).unwrap();
        let dek = header.unlock(&secret(case)).unwrap();
        assert_eq!(dek.expose().to_vec(), unhex(&case["dek_hex"]));
        assert_eq!(header.encode(), unhex(&case["header_hex"]));
    }
}

#[test]
fn subkey_token_and_sealed_record_vectors() {
    let v = vectors();
    let s = &v["subkeys"];
    let dek = key32(&s["dek_hex"]);
    for (info, field) in [
        (INFO_VALUES, "values_hex"),
        (INFO_INDEX, "index_hex"),
        (INFO_BACKUP, "backup_root_hex"),
    ] {
        assert_eq!(
            hkdf_sha256(&[], dek.as_ref(), info).to_vec(),
            unhex(&s[field])
        );
    }
    let root = key32(&s["backup_root_hex"]);
    assert_eq!(
        hkdf_sha256(
            &unhex(&s["backup_id_hex"]),
            root.as_ref(),
            b"tresor/v1/backup-chunks"
        )
        .to_vec(),
        unhex(&s["backup_chunk_key_hex"])
    );
    // The store's own derivation agrees with the raw HKDF.
    let store_keys = DataKey::from_bytes(dek.clone()).store_keys();
    let blind = BlindKey::new(key32(&s["index_hex"]));
    for t in v["tokens"].as_array().unwrap() {
        let (domain, id) = (t["domain"].as_str().unwrap(), t["id"].as_str().unwrap());
        let want = unhex(&t["token_hex"]);
        assert_eq!(blind.token(domain.as_bytes(), id.as_bytes()).to_vec(), want);
        assert_eq!(
            store_keys
                .index()
                .token(domain.as_bytes(), id.as_bytes())
                .to_vec(),
            want
        );
    }
    let sealing = SealingKey::new(&key32(&s["values_hex"]));
    for r in v["records"].as_array().unwrap() {
        let (aad, sealed) = (unhex(&r["aad_hex"]), unhex(&r["sealed_hex"]));
        assert_eq!(
            sealing.open(&aad, &sealed).unwrap(),
            unhex(&r["record_hex"])
        );
        assert_eq!(
            store_keys.values().open(&aad, &sealed).unwrap(),
            unhex(&r["record_hex"])
        );
        let mut other = aad.clone();
        other.push(0);
        assert!(sealing.open(&other, &sealed).is_err());
    }
}

#[test]
fn rotation_vector() {
    let v = vectors();
    let r = &v["rotation"];
    let dek = DataKey::from_bytes(key32(&r["dek_hex"]));
    let previous = dek.unwrap_previous(&unhex(&r["wrapped_hex"])).unwrap();
    assert_eq!(previous.expose().to_vec(), unhex(&r["previous_dek_hex"]));
}
