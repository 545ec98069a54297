//! The record-level known-answer vectors of `tresor-crypto/tests/vectors.json` against this
//! crate: record AAD, record codec (formats 1, 2 and 3), message tokens, order keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tresor_crypto::{BlindKey, SealingKey};
use tresor_schema::index::{Position, order_key};
use tresor_schema::{Message, codec, sealed};
use zeroize::Zeroizing;

fn unhex(s: &Value) -> Vec<u8> {
    let s = s.as_str().expect("hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn record_vectors_match_the_schema_code() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tresor-crypto/tests/vectors.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let key = |f: &str| Zeroizing::new(<[u8; 32]>::try_from(unhex(&v["subkeys"][f])).unwrap());
    let values = SealingKey::new(&key("values_hex"));
    let index = BlindKey::new(key("index_hex"));
    assert_eq!(
        v["records"].as_array().unwrap().len(),
        3,
        "formats 1, 2 and 3"
    );
    for (i, r) in v["records"].as_array().unwrap().iter().enumerate() {
        let m = &r["message"];
        let want = Message {
            id: m["id"].as_str().unwrap().into(),
            conversation_id: m["conversation_id"].as_str().unwrap().into(),
            sender: m["sender"].as_str().unwrap().into(),
            recipient: m["recipient"].as_str().map(Into::into),
            timestamp_ms: m["timestamp_ms"].as_i64().unwrap(),
            body: m["body"].as_str().unwrap().into(),
            seq: m["seq"].as_u64().unwrap(),
        };
        let token = index.token(tresor_schema::messages::DOMAIN_MESSAGE, want.id.as_bytes());
        assert_eq!(token.to_vec(), unhex(&r["key_hex"]));
        let aad = sealed::record_aad(r["table"].as_str().unwrap(), &token);
        assert_eq!(aad, unhex(&r["aad_hex"]));
        let record = values.open(&aad, &unhex(&r["sealed_hex"])).unwrap();
        assert_eq!(record, unhex(&r["record_hex"]));
        assert_eq!(codec::decode_message(&record).unwrap(), want);
        let encoded = match i {
            0 => codec::encode(&want).unwrap(),
            1 => codec::encode_padded(&want).unwrap(),
            _ => tresor_schema::compact::encode_message(&want).unwrap(),
        };
        assert_eq!(encoded, record, "record {i}");
    }
    for o in v["order_keys"].as_array().unwrap() {
        let k = order_key(Position {
            timestamp_ms: o["timestamp_ms"].as_i64().unwrap(),
            seq: o["seq"].as_u64().unwrap(),
        });
        assert_eq!(k.to_vec(), unhex(&o["order_key_hex"]));
    }
}
