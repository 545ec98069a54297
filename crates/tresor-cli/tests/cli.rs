//! The `tresor` binary end to end: the main job on the bundled sample, idempotent import,
//! pagination, backups, and errors (one line, exit 1, never a panic).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use aho_corasick::AhoCorasick;
use serde_json::Value;

use common::{fails_with, json_lines, ok};
const PASS: &str = "cli test passphrase";

fn tresor(db: Option<&Path>, args: &[&str], pass: Option<&str>) -> Output {
    let mut c = common::command(db, args);
    if let Some(p) = pass {
        c.env("TRESOR_PASSPHRASE", p);
    }
    common::run(c)
}

fn stats(db: &Path) -> Value {
    serde_json::from_str(&ok(tresor(Some(db), &["stats", "--json"], Some(PASS)))).unwrap()
}

fn imported_sample(dir: &Path) -> PathBuf {
    let db = dir.join("chat.redb");
    ok(tresor(Some(&db), &["import", "chitchat"], Some(PASS)));
    db
}

#[test]
fn the_main_job_imports_the_sample_and_answers_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_sample(dir.path());
    let s = stats(&db);
    assert_eq!(s["messages"], 9511);
    assert_eq!(s["conversations"], 300);
    assert_eq!(s["peers"], 199);
    assert!(s["file_bytes"].as_u64().unwrap() > 0);

    let recent = json_lines(&ok(tresor(
        Some(&db),
        &["messages", "--recent", "--limit", "5", "--json"],
        Some(PASS),
    )));
    assert_eq!(recent.len(), 5);
    for m in &recent {
        for field in [
            "id",
            "conversation_id",
            "sender",
            "recipient",
            "timestamp_ms",
            "body",
        ] {
            assert!(m.get(field).is_some(), "{field} in {m}");
        }
    }
    let ts: Vec<i64> = recent
        .iter()
        .map(|m| m["timestamp_ms"].as_i64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]), "newest first: {ts:?}");

    // The library's own reading of the sample is the oracle for one conversation.
    let sample = tresor_cli::chitchat::bundled_sample().unwrap();
    let conv = sample.iter().max_by_key(|c| c.messages.len()).unwrap();
    let mut expected: Vec<_> = conv.messages.iter().collect();
    expected.sort_by_key(|m| std::cmp::Reverse(m.timestamp_ms));
    // Stable sort keeps file (insertion) order among equal timestamps.
    let expected: Vec<&str> = expected.iter().map(|m| m.id.as_str()).collect();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = vec![
            "messages",
            "--conversation",
            conv.id.as_str(),
            "--limit",
            "7",
            "--json",
        ];
        if let Some(c) = &cursor {
            args.extend(["--before-id", c.as_str()]);
        }
        let page = json_lines(&ok(tresor(Some(&db), &args, Some(PASS))));
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        cursor = Some(page.last().unwrap()["id"].as_str().unwrap().to_owned());
        seen.extend(
            page.into_iter()
                .map(|m| m["id"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(seen, expected, "each message once, newest first");

    // By peer: every message has the peer as sender or recipient.
    let peer = conv.messages[0].sender.clone();
    let by_peer = json_lines(&ok(tresor(
        Some(&db),
        &["messages", "--peer", &peer, "--limit", "50", "--json"],
        Some(PASS),
    )));
    assert!(!by_peer.is_empty());
    assert!(
        by_peer
            .iter()
            .all(|m| m["sender"] == peer.as_str() || m["recipient"] == peer.as_str())
    );
}

#[test]
fn importing_the_same_file_twice_leaves_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_sample(dir.path());
    let before = (
        stats(&db),
        ok(tresor(
            Some(&db),
            &["messages", "--recent", "--limit", "100", "--json"],
            Some(PASS),
        )),
    );
    let second = ok(tresor(Some(&db), &["import", "chitchat"], Some(PASS)));
    assert!(
        second.contains("0 new, 0 updated, 9511 unchanged"),
        "{second}"
    );
    let after = (
        stats(&db),
        ok(tresor(
            Some(&db),
            &["messages", "--recent", "--limit", "100", "--json"],
            Some(PASS),
        )),
    );
    assert_eq!(before.0["messages"], after.0["messages"]);
    assert_eq!(before.0["conversations"], after.0["conversations"]);
    assert_eq!(before.0["peers"], after.0["peers"]);
    assert_eq!(before.1, after.1);
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The store file, the backup repository and the restored store show no message body of 16+
/// bytes, no sender id and no conversation id.
#[test]
fn no_identifier_or_body_appears_in_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_sample(dir.path());
    let repo = dir.path().join("b");
    let out = ok(tresor(
        Some(&db),
        &["backup", "create", "--out", &repo.to_string_lossy()],
        Some(PASS),
    ));
    assert!(out.starts_with("backup written: "), "{out}");
    let restored = dir.path().join("restored.redb");
    let target = format!("dir:{}", repo.display());
    ok(tresor(
        Some(&restored),
        &["restore", "--target", &target, "latest"],
        Some(PASS),
    ));

    let sample = tresor_cli::chitchat::bundled_sample().unwrap();
    let mut needles: Vec<String> = Vec::new();
    for c in &sample {
        needles.push(c.id.clone());
        for m in &c.messages {
            needles.push(m.sender.clone());
            needles.push(m.id.clone());
            if m.body.len() >= 16 {
                needles.push(m.body.clone());
            }
        }
    }
    needles.sort();
    needles.dedup();
    assert!(
        needles.len() > 5000,
        "the check has teeth: {} needles",
        needles.len()
    );
    let matcher = AhoCorasick::new(&needles).unwrap();
    let repo_files = all_files(&repo);
    assert!(repo_files.len() > 10);
    let repo_bytes: u64 = repo_files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(repo_bytes > 100_000);
    for file in [db.clone(), restored].into_iter().chain(repo_files) {
        let bytes = std::fs::read(&file).unwrap();
        if let Some(m) = matcher.find(&bytes) {
            panic!(
                "{} contains {:?} at byte {}",
                file.display(),
                needles[m.pattern().as_usize()],
                m.start()
            );
        }
    }
    // The matcher does find plaintext when it is there: the sample JSON itself.
    let json = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/chitchat-sample.json.gz"
    ))
    .unwrap();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&json[..]), &mut plain).unwrap();
    assert!(matcher.find(&plain).is_some());
}

#[test]
fn backup_list_verify_forget_prune_restore_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_sample(dir.path());
    let repo = dir.path().join("b");
    let target = format!("dir:{}", repo.display());
    let created = ok(tresor(
        Some(&db),
        &[
            "backup",
            "create",
            "--target",
            &target,
            "--description",
            "first",
            "--json",
        ],
        Some(PASS),
    ));
    let first = &json_lines(&created)[0];
    assert_eq!(first["description"], "first");
    assert_eq!(first["tables"]["messages"], 9511);
    assert!(first["peak_rss_bytes"].as_u64().unwrap_or(1) > 0);
    let second = &json_lines(&ok(tresor(
        Some(&db),
        &["backup", "create", "--target", &target, "--json"],
        Some(PASS),
    )))[0];
    // Nothing changed: no new chunk.
    assert_eq!(second["added_chunks"], 0);
    let list = json_lines(&ok(tresor(
        None,
        &["backup", "list", "--target", &target, "--json"],
        Some(PASS),
    )));
    assert_eq!(list.len(), 2);
    // verify needs no store.
    let verified = ok(tresor(
        None,
        &["backup", "verify", "--target", &target],
        Some(PASS),
    ));
    assert!(
        verified.starts_with("backup ok: 2 backups, 2 streams"),
        "{verified}"
    );
    let subset = json_lines(&ok(tresor(
        None,
        &[
            "backup", "verify", "--target", &target, "--subset", "0.5", "--json",
        ],
        Some(PASS),
    )))[0]
        .clone();
    assert_eq!(subset["streams_checked"], 0);
    let dry = json_lines(&ok(tresor(
        None,
        &[
            "backup",
            "forget",
            "--target",
            &target,
            "--keep-last",
            "1",
            "--dry-run",
            "--json",
        ],
        Some(PASS),
    )));
    assert_eq!(dry.iter().filter(|d| d["keep"] == false).count(), 1);
    assert_eq!(
        json_lines(&ok(tresor(
            None,
            &["backup", "list", "--target", &target, "--json"],
            Some(PASS),
        )))
        .len(),
        2
    );
    ok(tresor(
        None,
        &["backup", "forget", "--target", &target, "--keep-last", "1"],
        Some(PASS),
    ));
    let pruned = ok(tresor(
        None,
        &["backup", "prune", "--target", &target],
        Some(PASS),
    ));
    assert!(pruned.starts_with("pruned 0 of"), "{pruned}"); // the two backups shared all chunks
    fails_with(
        tresor(None, &["backup", "forget", "--target", &target], Some(PASS)),
        "retention",
    );

    let restored = dir.path().join("new-device").join("chat.redb");
    std::fs::create_dir_all(restored.parent().unwrap()).unwrap();
    let id = list[1]["id"].as_str().unwrap();
    ok(tresor(
        Some(&restored),
        &["restore", "--target", &target, &id[..10]],
        Some(PASS),
    ));
    let q = |d: &Path| {
        ok(tresor(
            Some(d),
            &["messages", "--recent", "--limit", "200", "--json"],
            Some(PASS),
        ))
    };
    assert_eq!(q(&db), q(&restored));
    let (a, b) = (stats(&db), stats(&restored));
    for k in ["messages", "conversations", "peers"] {
        assert_eq!(a[k], b[k], "{k}");
    }
    // Restoring again onto the existing store is refused and leaves it intact.
    fails_with(
        tresor(
            Some(&restored),
            &["restore", "--target", &target, "latest"],
            Some(PASS),
        ),
        "already exists",
    );
    assert_eq!(stats(&restored)["messages"], 9511);

    // A flipped byte in a chunk is rejected by verify and by restore, which leaves nothing.
    let mut chunks = all_files(&repo.join("chunks"));
    chunks.sort();
    let victim = &chunks[chunks.len() / 2];
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(victim, &bytes).unwrap();
    fails_with(
        tresor(None, &["backup", "verify", "--target", &target], Some(PASS)),
        "corrupt",
    );
    let from_bad = dir.path().join("from-bad.redb");
    fails_with(
        tresor(
            Some(&from_bad),
            &["restore", "--target", &target, "latest"],
            Some(PASS),
        ),
        "corrupt",
    );
    assert!(!from_bad.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    fails_with(
        tresor(
            None,
            &["backup", "verify", "--target", &target],
            Some("wrong"),
        ),
        "wrong passphrase",
    );
    fails_with(
        tresor(None, &["backup", "list", "--target", "ftp://x"], Some(PASS)),
        "unknown scheme",
    );
}

/// Single backup files (format 1) stay readable: verify and restore.
#[test]
fn version_1_backup_files_still_verify_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_sample(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let file = rt.block_on(async {
        let store = tresor::Tresor::open(&db, PASS.into()).await.unwrap();
        store
            .backup_to_dir(dir.path().join("v1"))
            .await
            .unwrap()
            .path
    });
    let file = file.to_string_lossy().into_owned();
    let verified = ok(tresor(None, &["backup", "verify", &file], Some(PASS)));
    assert!(verified.starts_with("backup ok"), "{verified}");
    let restored = dir.path().join("v1.redb");
    ok(tresor(Some(&restored), &["restore", &file], Some(PASS)));
    assert_eq!(stats(&restored)["messages"], 9511);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let bad = dir.path().join("bad.tbk");
    std::fs::write(&bad, &bytes).unwrap();
    fails_with(
        tresor(
            None,
            &["backup", "verify", &bad.to_string_lossy()],
            Some(PASS),
        ),
        "backup",
    );
}

#[test]
fn bad_input_is_one_line_and_exit_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_sample(dir.path());
    fails_with(
        tresor(Some(&db), &["stats"], Some("wrong")),
        "wrong passphrase",
    );
    fails_with(tresor(Some(&db), &["stats"], None), "no passphrase");
    fails_with(
        tresor(Some(&dir.path().join("none.redb")), &["stats"], Some(PASS)),
        "no store",
    );
    fails_with(tresor(None, &["stats"], Some(PASS)), "--db");
    fails_with(
        tresor(
            Some(&db),
            &["messages", "--recent", "--before-id", "no-such-id"],
            Some(PASS),
        ),
        "cursor",
    );
    // Malformed JSON: an error, and no store is created.
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, b"{\"c\": {\"messages\": [[{\"text\": 1}]]").unwrap();
    let fresh = dir.path().join("fresh.redb");
    fails_with(
        tresor(
            Some(&fresh),
            &["import", "chitchat", &bad_json.to_string_lossy()],
            Some(PASS),
        ),
        "malformed",
    );
    assert!(!fresh.exists());
    // A truncated gzip.
    let gz = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/chitchat-sample.json.gz"
    ))
    .unwrap();
    let cut = dir.path().join("cut.json.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let out = tresor(
        Some(&fresh),
        &["import", "chitchat", &cut.to_string_lossy()],
        Some(PASS),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!fresh.exists());
    // A file that is not a store.
    let junk = dir.path().join("junk.redb");
    std::fs::write(&junk, vec![7u8; 10_000]).unwrap();
    let out = tresor(Some(&junk), &["stats"], Some(PASS));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not a backup.
    fails_with(
        tresor(
            None,
            &["backup", "verify", &junk.to_string_lossy()],
            Some(PASS),
        ),
        "backup",
    );
    // Usage errors are clap's (exit 2), never a panic.
    assert_eq!(
        tresor(Some(&db), &["messages"], Some(PASS)).status.code(),
        Some(2)
    );
    // The failed attempts changed nothing.
    assert_eq!(stats(&db)["messages"], 9511);
}

#[test]
fn check_repair_and_salvage_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_sample(dir.path());
    let out = ok(tresor(Some(&db), &["check"], Some(PASS)));
    assert!(
        out.contains("checked 9511 records, 37971 index entries, 499 counters: 0 issues"),
        "{out}"
    );
    let report: Value =
        serde_json::from_str(&ok(tresor(Some(&db), &["check", "--json"], Some(PASS)))).unwrap();
    assert_eq!(report["issues"].as_array().unwrap().len(), 0);
    let out = ok(tresor(Some(&db), &["repair"], Some(PASS)));
    assert!(
        out.contains("0 index entries, 0 counters fixed; 0 unreadable records removed"),
        "{out}"
    );
    let target = dir.path().join("salvaged.redb");
    let out = ok(tresor(
        Some(&db),
        &["repair", "--into", &target.to_string_lossy()],
        Some(PASS),
    ));
    assert!(out.contains("salvaged 9511 of 9511 messages"), "{out}");
    assert_eq!(stats(&target)["messages"], 9511);
    ok(tresor(Some(&target), &["check"], Some(PASS)));
}

#[test]
fn backend_sqlite_creates_an_sqlite_store_that_answers_like_redb() {
    let dir = tempfile::tempdir().unwrap();
    let redb = imported_sample(dir.path());
    let sqlite = dir.path().join("chat.sqlite");
    ok(tresor(
        Some(&sqlite),
        &["--backend", "sqlite", "import", "chitchat"],
        Some(PASS),
    ));
    let head = std::fs::read(&sqlite).unwrap();
    assert!(head.starts_with(b"SQLite format 3\0"), "an SQLite file");
    // The engine of an existing store comes from its file: no --backend needed.
    let q = |d: &Path| {
        ok(tresor(
            Some(d),
            &["messages", "--recent", "--limit", "50", "--json"],
            Some(PASS),
        ))
    };
    assert_eq!(q(&redb), q(&sqlite));
    assert_eq!(stats(&sqlite)["messages"], stats(&redb)["messages"]);

    // (Restoring into an SQLite store from the CLI is covered by the library's
    // `restore_backup_with`; the CLI's `restore` creates redb stores.)
    // An unknown engine is a usage error (status 2).
    let out = tresor(Some(&redb), &["--backend", "leveldb", "stats"], Some(PASS));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: redb, sqlite"));
}

/// `tresor compact` shrinks an imported store, and the store answers exactly as before and
/// passes `check`.
#[test]
fn compact_shrinks_the_file_and_keeps_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_sample(dir.path());
    let query = ["messages", "--recent", "--limit", "50", "--json"];
    let before = ok(tresor(Some(&db), &query, Some(PASS)));
    let report: Value =
        serde_json::from_str(&ok(tresor(Some(&db), &["compact", "--json"], Some(PASS)))).unwrap();
    let (b, a) = (
        report["bytes_before"].as_u64().unwrap(),
        report["bytes_after"].as_u64().unwrap(),
    );
    assert!(a < b, "{report}");
    assert_eq!(report["bytes_reclaimed"].as_u64().unwrap(), b - a);
    // Closing may commit a little more (redb's allocator state): the file stays smaller.
    assert!(std::fs::metadata(&db).unwrap().len() < b);
    assert_eq!(ok(tresor(Some(&db), &query, Some(PASS))), before);
    assert_eq!(stats(&db)["messages"], 9511);
    ok(tresor(Some(&db), &["check"], Some(PASS)));
    fails_with(tresor(Some(&db), &["compact"], Some("wrong")), "passphrase");
}
