//! A real full disk: a small tmpfs is mounted (where the machine allows it; otherwise the test
//! says so and returns), the store is filled until a write fails with a typed error, every
//! acknowledged write survives a reopen, and after deleting data writing continues.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{PASS, msg};
use tresor::{BackendKind, Error, Message, Options, Tresor};

struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Mount(dir.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn message(i: usize) -> Message {
    msg(
        &format!("m{i}"),
        &format!("c{}", i % 9),
        "alice",
        Some("bob"),
        i as i64,
        &format!("{i:06} {}", "x".repeat(400)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_typed_error_and_loses_nothing_redb() {
    full_disk(BackendKind::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_typed_error_and_loses_nothing_sqlite() {
    full_disk(BackendKind::Sqlite).await;
}

async fn full_disk(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let _mount = match Mount::tmpfs(dir.path(), "6m") {
        Ok(m) => m,
        Err(reason) => {
            println!(
                "SKIPPED a_full_disk_is_a_typed_error_and_loses_nothing: cannot mount a tmpfs here ({reason})"
            );
            return;
        }
    };
    // Another file on the same disk: the space a user frees to get out of a full disk.
    let other = dir.path().join("other-app-data");
    std::fs::write(&other, vec![0u8; 1 << 20]).unwrap();
    let path = dir.path().join("full.redb");
    let store = Tresor::create_with(
        &path,
        PASS.into(),
        Options::default().with_backend_kind(kind),
    )
    .await
    .unwrap();
    let mut acked = 0;
    let err = loop {
        let batch: Vec<Message> = (acked..acked + 50).map(message).collect();
        match store.messages().save_batch(&batch).await {
            Ok(_) => acked += 50,
            Err(e) => break e,
        }
        assert!(acked < 100_000, "a 6 MiB disk must fill up");
    };
    println!("{kind:?}: disk full after {acked} messages: {err}");
    assert!(
        matches!(
            err,
            Error::Backend(tresor_backend::BackendError::DiskFull(_))
        ),
        "a typed disk-full error: {err:?}"
    );
    drop(store);

    let store = Tresor::open(&path, PASS.into())
        .await
        .expect("reopens after ENOSPC");
    assert_eq!(store.stats().await.unwrap().messages, acked as u64);
    for i in [0, acked / 2, acked - 1] {
        assert!(
            store
                .messages()
                .get(&format!("m{i}"))
                .await
                .unwrap()
                .unwrap()
                .same_content(&message(i))
        );
    }
    // Deleting is a write too. Either it fails, typed, and changes nothing, or the engine
    // manages it within pages the file already has (SQLite's free list; redb's pages freed by
    // earlier copy-on-write commits, depending on where the failed batch left its allocator)
    // and the message is really gone.
    let mut deleted = 0;
    match store.messages().delete("m0").await {
        Err(err) => {
            assert!(
                matches!(
                    err,
                    Error::Backend(tresor_backend::BackendError::DiskFull(_))
                ),
                "{err:?}"
            );
            assert!(store.messages().get("m0").await.unwrap().is_some());
        }
        Ok(existed) => {
            assert!(existed);
            assert!(store.messages().get("m0").await.unwrap().is_none());
            deleted += 1;
        }
    }
    // The user frees some space elsewhere and reopens the store (redb refuses every write
    // after an I/O error until the database is reopened); deleting half of the messages then
    // works...
    std::fs::remove_file(&other).unwrap();
    drop(store);
    let store = Tresor::open(&path, PASS.into()).await.unwrap();
    for i in (0..acked).step_by(2).skip(deleted) {
        match store.messages().delete(&format!("m{i}")).await {
            Ok(true) => deleted += 1,
            Ok(false) => panic!("m{i} missing"),
            Err(e) => panic!("delete on a full disk must work ({deleted} done): {e:?}"),
        }
    }
    // ...and the disk is filled up again by someone else: new messages still fit, into the
    // pages the deletes freed inside the store file.
    let mut filler = std::fs::File::create(&other).unwrap();
    while std::io::Write::write_all(&mut filler, &[0u8; 64 * 1024]).is_ok() {}
    drop(filler);
    for i in acked..acked + 100 {
        store
            .messages()
            .save(&message(i))
            .await
            .expect("writes continue after deleting data");
    }
    assert_eq!(
        store.stats().await.unwrap().messages,
        (acked - deleted + 100) as u64
    );
    assert!(store.check().await.unwrap().is_clean());
}
