//! `tresor info`, `passwd`, `rekey` and `--key-file`, end to end through the binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use common::{fails_with, ok};
fn tresor(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = common::command(Some(db), args);
    c.envs(env.iter().copied());
    common::run(c)
}

#[test]
fn key_file_info_passwd_and_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.redb");
    let key = dir.path().join("store.key");
    let hex: String = (0..32u8).map(|b| format!("{:02x}", b * 7)).collect();
    std::fs::write(&key, format!("{hex}\n")).unwrap();
    let k = key.to_str().unwrap();

    ok(tresor(&db, &["--key-file", k, "import", "chitchat"], &[]));
    let info: Value =
        serde_json::from_str(&ok(tresor(&db, &["--key-file", k, "info", "--json"], &[]))).unwrap();
    assert_eq!(info["header_version"], 1);
    assert_eq!(info["kdf"], "raw-key-hkdf-sha256");
    // 9,511 messages, 300 conversation and 199 peer summaries, re-sealed as counts change,
    // and 300 conversation records.
    assert!(info["seals"].as_u64().unwrap() >= 9511 + 300 + 199 + 300);
    assert_eq!(info["rotation_in_progress"], Value::Null);
    assert_eq!(info["padded"], false);
    assert!(info["key_created_ms"].as_i64().unwrap() > 1_600_000_000_000);
    let before = ok(tresor(
        &db,
        &[
            "--key-file",
            k,
            "messages",
            "--recent",
            "--limit",
            "50",
            "--json",
        ],
        &[],
    ));

    // A passphrase does not open a raw-key store; a malformed key file is a clean error.
    fails_with(
        tresor(&db, &["stats"], &[("TRESOR_PASSPHRASE", "pw")]),
        "raw key",
    );
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not a key").unwrap();
    fails_with(
        tresor(&db, &["--key-file", bad.to_str().unwrap(), "stats"], &[]),
        "key file",
    );

    // Switch to a passphrase.
    let out = ok(tresor(
        &db,
        &["--key-file", k, "passwd"],
        &[("TRESOR_NEW_PASSPHRASE", "a new passphrase")],
    ));
    assert!(out.contains("passphrase changed"), "{out}");
    fails_with(tresor(&db, &["--key-file", k, "stats"], &[]), "raw key");
    let pass = [("TRESOR_PASSPHRASE", "a new passphrase")];
    let info: Value = serde_json::from_str(&ok(tresor(&db, &["info", "--json"], &pass))).unwrap();
    assert_eq!(info["kdf"], "argon2id");
    assert_eq!(info["kdf_params"]["memory_kib"], 19456);
    let seals_before = info["seals"].as_u64().unwrap();

    // Rekey: every record re-encrypted, the answers unchanged, the count restarted.
    let out = ok(tresor(&db, &["rekey", "--batch-size", "1000"], &pass));
    assert!(out.contains("10310 records re-encrypted"), "{out}");
    let info: Value = serde_json::from_str(&ok(tresor(&db, &["info", "--json"], &pass))).unwrap();
    assert_eq!(info["seals"], 10310);
    assert_ne!(info["seals"].as_u64().unwrap(), seals_before);
    let after = ok(tresor(
        &db,
        &["messages", "--recent", "--limit", "50", "--json"],
        &pass,
    ));
    assert_eq!(before, after);
    let text = ok(tresor(&db, &["info"], &pass));
    assert!(text.contains("seals under key:    10310"), "{text}");
}
