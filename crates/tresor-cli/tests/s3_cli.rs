//! The CLI with an `s3://bucket/prefix` target against a real Garage on 127.0.0.1 (endpoint
//! and credentials from the standard AWS environment variables): backup create, list, verify,
//! and restore into a new store. Skipped without a garage binary, except under
//! `TRESOR_S3_TESTS=1` (CI), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{json_lines as json, ok};
#[path = "../../tresor-backup/tests/common/garage.rs"]
mod garage;

use std::path::Path;
use std::process::Output;

use garage::{BUCKET, Garage, KEY_ID, REGION, SECRET, garage_bin};

const PASS: &str = "cli test passphrase";

fn tresor(garage: &Garage, db: Option<&Path>, args: &[&str]) -> Output {
    let mut c = common::command(db, args);
    c.env("TRESOR_PASSPHRASE", PASS)
        .env("AWS_ENDPOINT_URL", garage.endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    common::run(c)
}

#[test]
fn backup_and_restore_through_an_s3_url() {
    let Some(bin) = garage_bin() else {
        return;
    };
    let garage = Garage::start(bin);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.redb");
    ok(tresor(&garage, Some(&db), &["import", "chitchat"]));
    let target = format!("s3://{BUCKET}/cli/repo");

    let first = &json(&ok(tresor(
        &garage,
        Some(&db),
        &["backup", "create", "--target", &target, "--json"],
    )))[0];
    assert_eq!(first["tables"]["messages"], 9511);
    let second = &json(&ok(tresor(
        &garage,
        Some(&db),
        &["backup", "create", "--target", &target, "--json"],
    )))[0];
    assert_eq!(second["added_chunks"], 0);
    let list = json(&ok(tresor(
        &garage,
        None,
        &["backup", "list", "--target", &target, "--json"],
    )));
    assert_eq!(list.len(), 2);
    ok(tresor(
        &garage,
        None,
        &["backup", "verify", "--target", &target],
    ));

    let restored = dir.path().join("restored.sqlite");
    ok(tresor(
        &garage,
        Some(&restored),
        &[
            "--backend",
            "sqlite",
            "restore",
            "--target",
            &target,
            "latest",
        ],
    ));
    let query = |d: &Path| {
        ok(tresor(
            &garage,
            Some(d),
            &["messages", "--recent", "--limit", "100", "--json"],
        ))
    };
    assert_eq!(query(&db), query(&restored));
    assert_eq!(
        tresor::BackendKind::detect(&restored),
        Some(tresor::BackendKind::Sqlite)
    );
}
