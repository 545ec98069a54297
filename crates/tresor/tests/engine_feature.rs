//! The `sqlite` feature: with it (the default) a SQLite store is created and reopened; without
//! it (`cargo test -p tresor --no-default-features --test engine_feature`) asking for one fails
//! with `Error::UnsupportedBackend`, leaves no file behind, and redb stores still work.
#![allow(clippy::unwrap_used)]

use tresor::{BackendKind, Options, Tresor};

const PASS: &str = "correct horse battery staple";

fn sqlite() -> Options {
    Options::default().with_backend_kind(BackendKind::Sqlite)
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_stores_open_with_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    drop(
        Tresor::create_with(&path, PASS.into(), sqlite())
            .await
            .unwrap(),
    );
    assert_eq!(BackendKind::detect(&path), Some(BackendKind::Sqlite));
    Tresor::open(&path, PASS.into()).await.unwrap();
}

#[cfg(not(feature = "sqlite"))]
#[tokio::test]
async fn sqlite_is_refused_without_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let err = Tresor::create_with(&path, PASS.into(), sqlite())
        .await
        .unwrap_err();
    assert!(
        matches!(err, tresor::Error::UnsupportedBackend(BackendKind::Sqlite)),
        "{err:?}"
    );
    assert!(!path.exists(), "a refused create leaves no file");

    // An existing SQLite file (its header is all detection reads) is refused too.
    std::fs::write(&path, b"SQLite format 3\0 and then some pages").unwrap();
    let err = Tresor::open(&path, PASS.into()).await.unwrap_err();
    assert!(
        matches!(err, tresor::Error::UnsupportedBackend(BackendKind::Sqlite)),
        "{err:?}"
    );
}

#[tokio::test]
async fn redb_works_either_way() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.store");
    drop(Tresor::create(&path, PASS.into()).await.unwrap());
    assert_eq!(BackendKind::detect(&path), Some(BackendKind::Redb));
    Tresor::open(&path, PASS.into()).await.unwrap();
}
