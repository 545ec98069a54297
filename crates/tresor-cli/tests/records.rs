//! `tresor migrate`, `tresor conversations|sessions|proofs` and the schema version in `info`,
//! on a copy of the real v1 fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const FIXTURE_PASS: &str = "tresor fixture passphrase";

fn tresor(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tresor"))
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("TRESOR_DB")
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_PASSPHRASE", FIXTURE_PASS)
        .output()
        .expect("the binary runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn migrate_then_list_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v1.redb");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tresor/tests/fixtures/v1-chat.redb");
    std::fs::copy(fixture, &db).unwrap();

    let dry = ok(tresor(&db, &["migrate", "--dry-run"]));
    assert!(
        dry.contains("schema version 1; this tresor writes 3"),
        "{dry}"
    );
    assert!(dry.contains("step v1 -> v2"), "{dry}");
    // A dry run changes nothing.
    assert!(ok(tresor(&db, &["migrate", "--dry-run"])).contains("schema version 1"));

    let done = ok(tresor(&db, &["migrate"]));
    assert!(
        done.contains("migrated from schema version 1 to 3"),
        "{done}"
    );
    assert!(ok(tresor(&db, &["migrate"])).contains("nothing to migrate"));

    let info: Value = serde_json::from_str(&ok(tresor(&db, &["info", "--json"]))).unwrap();
    assert_eq!(info["schema_version"], 3);
    assert!(ok(tresor(&db, &["info"])).contains("schema version:     3"));

    let lines = ok(tresor(&db, &["conversations", "--limit", "100", "--json"]));
    let convs: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(convs.len(), 20);
    let last: Vec<i64> = convs
        .iter()
        .map(|c| c["last_activity_ms"].as_i64().unwrap())
        .collect();
    assert!(last.windows(2).all(|w| w[0] >= w[1]), "most recent first");
    assert_eq!(convs[0]["participants"].as_array().unwrap().len(), 2);
    assert_eq!(convs[0]["unread"], 0);
    let text = ok(tresor(&db, &["conversations", "--limit", "3"]));
    assert_eq!(text.lines().count(), 3);

    assert_eq!(ok(tresor(&db, &["sessions", "--json"])), "");
    assert_eq!(ok(tresor(&db, &["proofs", "--json"])), "");
}
