//! `tresor peers list|candidates|cleanup` and `tresor media put|get|ls`, with `--json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tresor::{ConnectionQuality, ConnectionType, Peer, Tresor};

use common::{json_lines, ok};
const PASS: &str = "p2p cli test passphrase";
const DAY: i64 = 86_400_000;

fn tresor(db: &Path, args: &[&str]) -> Output {
    let mut c = common::command(Some(db), args);
    c.env("TRESOR_PASSPHRASE", PASS);
    common::run(c)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_list_candidates_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.redb");
    let now = now();
    {
        let store = Tresor::create(&db, PASS.into()).await.unwrap();
        let peers = store.peers();
        for (id, age_days, latency) in [("near", 0, 10), ("far", 3, 300), ("gone", 60, 10)] {
            let mut p = Peer::new(id, vec![1; 32], now - age_days * DAY);
            p.shared_secret = Some(b"top secret bytes".to_vec());
            p.quality = ConnectionQuality {
                latency_ms: Some(latency),
                success_rate: Some(0.9),
                connection_type: Some(ConnectionType::Host),
                avg_uptime_s: None,
            };
            peers.upsert(&p).await.unwrap();
        }
    }
    let list = ok(tresor(&db, &["peers", "list", "--json"]));
    let rows = json_lines(&list);
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["peer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["near", "far", "gone"]);
    assert!(
        !list.contains("top secret"),
        "shared secrets are never printed"
    );
    assert!(
        rows[0]["quality_score"].as_f64().unwrap() > rows[1]["quality_score"].as_f64().unwrap()
    );

    let by_quality = json_lines(&ok(tresor(
        &db,
        &["peers", "list", "--sort", "quality", "--json"],
    )));
    assert_eq!(by_quality.last().unwrap()["peer_id"], "far");

    let cands = json_lines(&ok(tresor(&db, &["peers", "candidates", "--json"])));
    let ids: Vec<&str> = cands
        .iter()
        .map(|r| r["peer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["near", "far"], "older than 7 days is no candidate");
    assert!(
        cands[0]["reconnection_score"].as_f64().unwrap()
            > cands[1]["reconnection_score"].as_f64().unwrap()
    );

    let human = ok(tresor(&db, &["peers", "candidates"]));
    assert!(human.contains("near") && human.contains("score"), "{human}");

    let report = json_lines(&ok(tresor(
        &db,
        &["peers", "cleanup", "--inactive-days", "30", "--json"],
    )));
    assert_eq!(report[0]["stale_deleted"], 1);
    assert_eq!(report[0]["peers"], 2);
    let report = json_lines(&ok(tresor(
        &db,
        &["peers", "cleanup", "--keep", "1", "--json"],
    )));
    assert_eq!(report[0]["trimmed"], 1);
    let ids: Vec<Value> = json_lines(&ok(tresor(&db, &["peers", "list", "--json"])))
        .into_iter()
        .map(|r| r["peer_id"].clone())
        .collect();
    assert_eq!(ids, ["near"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_put_get_ls() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.redb");
    drop(Tresor::create(&db, PASS.into()).await.unwrap());
    let photo = dir.path().join("cat.jpg");
    let bytes: Vec<u8> = (0..700_000u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(&photo, &bytes).unwrap();
    let note = dir.path().join("note.txt");
    std::fs::write(&note, b"hello").unwrap();

    let put = json_lines(&ok(tresor(
        &db,
        &[
            "media",
            "put",
            photo.to_str().unwrap(),
            "--room",
            "!r:x",
            "--json",
        ],
    )));
    assert_eq!(put[0]["id"], "cat.jpg");
    assert_eq!(put[0]["mime_type"], "image/jpeg");
    assert_eq!(put[0]["size"], 700_000);
    assert_eq!(put[0]["chunks"], 3);
    ok(tresor(
        &db,
        &[
            "media",
            "put",
            note.to_str().unwrap(),
            "--id",
            "n1",
            "--expires-days",
            "1",
        ],
    ));

    let back = dir.path().join("back.jpg");
    ok(tresor(
        &db,
        &["media", "get", "cat.jpg", "--out", back.to_str().unwrap()],
    ));
    assert_eq!(std::fs::read(&back).unwrap(), bytes);
    let stdout = ok(tresor(&db, &["media", "get", "n1", "--out", "-"]));
    assert_eq!(stdout, "hello");

    let all = json_lines(&ok(tresor(&db, &["media", "ls", "--json"])));
    assert_eq!(all.len(), 2);
    let room = json_lines(&ok(tresor(
        &db,
        &["media", "ls", "--room", "!r:x", "--json"],
    )));
    assert_eq!(room.len(), 1);
    assert_eq!(room[0]["id"], "cat.jpg");
    let text = json_lines(&ok(tresor(
        &db,
        &["media", "ls", "--mime", "text/plain", "--json"],
    )));
    assert_eq!(text[0]["id"], "n1");
    let human = ok(tresor(&db, &["media", "ls"]));
    assert!(
        human.contains("cat.jpg") && human.contains("700000 bytes"),
        "{human}"
    );

    let missing = tresor(&db, &["media", "get", "nope", "--out", "-"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no media nope"));
}
