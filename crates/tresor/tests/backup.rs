//! Backups through the facade: create → verify → restore gives the same answers; damaged
//! backups are refused and leave nothing behind.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{PASS, msg};
use tresor::{Error, Message, Tresor, restore_backup, verify_backup};

async fn populated(path: &Path) -> Tresor {
    let store = Tresor::create(path, PASS.into()).await.unwrap();
    let batch: Vec<Message> = (0..300)
        .map(|i| {
            msg(
                &format!("m{i}"),
                &format!("c{}", i % 7),
                &format!("p{}", i % 5),
                Some(&format!("p{}", (i + 1) % 5)),
                1_600_000_000_000 + (i / 3) as i64 * 1000,
                &format!("message body number {i}"),
            )
        })
        .collect();
    store.messages().save_batch(&batch).await.unwrap();
    store.messages().delete("m17").await.unwrap();
    store
}

async fn answers(store: &Tresor) -> (Vec<Message>, Vec<Message>, Vec<Message>, (u64, u64, u64)) {
    let m = store.messages();
    let s = store.stats().await.unwrap();
    (
        m.recent(1000, None).await.unwrap(),
        m.by_conversation("c3", 1000, None).await.unwrap(),
        m.by_peer("p2", 1000, None).await.unwrap(),
        (s.messages, s.conversations, s.peers),
    )
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_verify_restore_gives_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(&dir.path().join("a.redb")).await;
    let backup = store
        .backup_to_dir(dir.path().join("backups"))
        .await
        .unwrap();
    assert_eq!(backup.summary.table_entries("messages"), 299);
    assert_eq!(
        entries(&dir.path().join("backups")).len(),
        1,
        "no partial file left"
    );
    let verified = verify_backup(&backup.path, PASS.into()).await.unwrap();
    assert_eq!(verified.entries, backup.summary.entries);

    let target = dir.path().join("device2").join("b.redb");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let (restored, summary) = restore_backup(&backup.path, &target, PASS.into())
        .await
        .unwrap();
    assert_eq!(summary.entries, backup.summary.entries);
    assert_eq!(answers(&restored).await, answers(&store).await);
    // No partial file: the restored store and, while it is open, its commit log.
    assert_eq!(
        entries(target.parent().unwrap()),
        vec!["b.redb".to_owned(), "b.redb-log".to_owned()]
    );
    // The restored store keeps counting sequence numbers where the source was.
    let seq = restored
        .messages()
        .save(&msg("new", "c1", "p1", None, 1, "x"))
        .await
        .unwrap();
    assert_eq!(seq, 300);
    drop(restored);
    // And it reopens with the passphrase alone.
    let reopened = Tresor::open(&target, PASS.into()).await.unwrap();
    assert_eq!(reopened.stats().await.unwrap().messages, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_backups_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(&dir.path().join("a.redb")).await;
    let backup = store
        .backup_to_dir(dir.path().join("backups"))
        .await
        .unwrap();
    let bytes = std::fs::read(&backup.path).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();

    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("flipped header byte", {
            let mut b = bytes.clone();
            b[20] ^= 0x80;
            b
        }),
        ("flipped middle byte", {
            let mut b = bytes.clone();
            let i = b.len() / 2;
            b[i] ^= 1;
            b
        }),
        ("flipped last byte", {
            let mut b = bytes.clone();
            let i = b.len() - 1;
            b[i] ^= 1;
            b
        }),
        ("truncated", bytes[..bytes.len() - 100].to_vec()),
        ("trailing garbage", {
            let mut b = bytes.clone();
            b.extend_from_slice(b"junk");
            b
        }),
        ("empty", Vec::new()),
    ];
    for (what, data) in damaged {
        let file = dir.path().join("damaged.tbk");
        std::fs::write(&file, &data).unwrap();
        let err = verify_backup(&file, PASS.into()).await.unwrap_err();
        assert!(matches!(err, Error::Backup(_)), "{what}: {err:?}");
        let target = out.join("restored.redb");
        let err = restore_backup(&file, &target, PASS.into())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Backup(_)), "{what}: {err:?}");
        assert!(entries(&out).is_empty(), "{what}: {:?}", entries(&out));
    }
    // The source store is untouched by all of it.
    assert_eq!(store.stats().await.unwrap().messages, 299);
    assert_eq!(std::fs::read(&backup.path).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passphrase_and_existing_target_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(&dir.path().join("a.redb")).await;
    let backup = store.backup_to_dir(dir.path()).await.unwrap();
    let err = verify_backup(&backup.path, "nope".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase), "{err:?}");
    let target = dir.path().join("t.redb");
    let err = restore_backup(&backup.path, &target, "nope".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase), "{err:?}");
    assert!(!target.exists());
    std::fs::write(&target, b"precious").unwrap();
    let err = restore_backup(&backup.path, &target, PASS.into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
}
