//! `tresor restore --backend sqlite`: a backup of a redb store restores into a new SQLite
//! store that answers the same queries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;

use tresor::BackendKind;

use common::ok;
const PASS: &str = "cli test passphrase";

fn tresor(db: Option<&Path>, args: &[&str]) -> Output {
    let mut c = common::command(db, args);
    c.env("TRESOR_PASSPHRASE", PASS);
    common::run(c)
}

fn engine(path: &Path) -> Option<BackendKind> {
    BackendKind::detect(path)
}

#[test]
fn restore_creates_an_sqlite_store_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.redb");
    ok(tresor(Some(&db), &["import", "chitchat"]));
    let target = format!("dir:{}", dir.path().join("repo").display());
    ok(tresor(
        Some(&db),
        &["backup", "create", "--target", &target],
    ));

    let restored = dir.path().join("restored.sqlite");
    let json = ok(tresor(
        Some(&restored),
        &[
            "--backend",
            "sqlite",
            "restore",
            "--target",
            &target,
            "latest",
            "--json",
        ],
    ));
    let report: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(report["messages"], 9511);
    assert_eq!(engine(&restored), Some(BackendKind::Sqlite));
    assert_eq!(engine(&db), Some(BackendKind::Redb));
    for args in [
        &["stats", "--json"][..],
        &["messages", "--recent", "--limit", "300", "--json"][..],
        &["conversations", "--json"][..],
    ] {
        let a = ok(tresor(Some(&db), args));
        let b = ok(tresor(Some(&restored), args));
        if args[0] == "stats" {
            let (a, b): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(&a).unwrap(),
                serde_json::from_str(&b).unwrap(),
            );
            for k in ["messages", "conversations", "peers"] {
                assert_eq!(a[k], b[k], "{k}");
            }
        } else {
            assert_eq!(a, b, "{args:?}");
        }
    }
    // The default engine stays redb.
    let again = dir.path().join("restored.redb");
    ok(tresor(
        Some(&again),
        &["restore", "--target", &target, "latest"],
    ));
    assert_eq!(engine(&again), Some(BackendKind::Redb));
}
