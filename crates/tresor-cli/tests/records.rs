//! `tresor migrate`, `tresor conversations|sessions|proofs` and the schema version in `info`,
//! on a copy of the real v1 fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use common::ok;
const FIXTURE_PASS: &str = "tresor fixture passphrase";

fn tresor(db: &Path, args: &[&str]) -> Output {
    let mut c = common::command(Some(db), args);
    c.env("TRESOR_PASSPHRASE", FIXTURE_PASS);
    common::run(c)
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
        dry.contains("schema version 1; this tresor writes 5"),
        "{dry}"
    );
    assert!(dry.contains("step v1 -> v2"), "{dry}");
    assert!(dry.contains("step v3 -> v4"), "{dry}");
    assert!(dry.contains("step v4 -> v5"), "{dry}");
    // A dry run changes nothing.
    assert!(ok(tresor(&db, &["migrate", "--dry-run"])).contains("schema version 1"));

    let done = ok(tresor(&db, &["migrate"]));
    assert!(
        done.contains("migrated from schema version 1 to 5"),
        "{done}"
    );
    assert!(ok(tresor(&db, &["migrate"])).contains("nothing to migrate"));

    let info: Value = serde_json::from_str(&ok(tresor(&db, &["info", "--json"]))).unwrap();
    assert_eq!(info["schema_version"], 5);
    assert!(ok(tresor(&db, &["info"])).contains("schema version:     5"));

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
