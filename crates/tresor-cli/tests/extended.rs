//! `tresor thread`, `tresor messages --status` and unread counts in `tresor conversations`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;

use tresor::{DeliveryStatus, Message, MessageExtras, Tresor};

use common::{json_lines, ok};
const PASS: &str = "cli extended passphrase";

fn tresor(db: &Path, args: &[&str]) -> Output {
    let mut c = common::command(Some(db), args);
    c.env("TRESOR_PASSPHRASE", PASS);
    common::run(c)
}

fn make_store(db: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Tresor::create(db, PASS.into()).await.unwrap();
        let m = store.messages();
        m.save(&Message::new("root", "c", "alice", None, 1, "question?"))
            .await
            .unwrap();
        for (id, ts) in [("r2", 30), ("r1", 20)] {
            m.save_with(
                &Message::new(id, "c", "bob", None, ts, format!("answer {id}")),
                &MessageExtras::incoming().replying_to("root"),
            )
            .await
            .unwrap();
        }
        m.save_with(
            &Message::new("out", "c", "alice", None, 40, "sending"),
            &MessageExtras::outgoing(DeliveryStatus::Pending),
        )
        .await
        .unwrap();
        m.edit("r2", "answer r2, edited", 50).await.unwrap();
    });
}

#[test]
fn thread_status_and_unread_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.redb");
    make_store(&db);

    let thread = json_lines(&ok(tresor(&db, &["thread", "root", "--json"])));
    let ids: Vec<&str> = thread.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["r1", "r2"], "oldest first");
    assert_eq!(thread[1]["body"], "answer r2, edited");
    assert_eq!(thread[1]["relates_to"], "root");
    assert_eq!(thread[1]["edited_ms"], 50);
    assert_eq!(thread[0]["status"], "delivered");
    assert_eq!(thread[0]["incoming"], true);
    let text = ok(tresor(&db, &["thread", "root"]));
    assert!(text.contains("(edited)"), "{text}");

    let pending = json_lines(&ok(tresor(
        &db,
        &[
            "messages",
            "--conversation",
            "c",
            "--status",
            "pending",
            "--json",
        ],
    )));
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], "out");
    assert_eq!(pending[0]["status"], "pending");
    let bad = tresor(
        &db,
        &["messages", "--conversation", "c", "--status", "lost"],
    );
    assert!(!bad.status.success());

    let convs = json_lines(&ok(tresor(&db, &["conversations", "--json"])));
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["id"], "c");
    assert_eq!(convs[0]["unread"], 2);
    assert!(ok(tresor(&db, &["conversations"])).contains("unread 2"));
}
