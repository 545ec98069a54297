//! The backend conformance suite of `tresor-backend`, run against
//! [`tresor_sqlite::SqliteBackend`], unchanged.
#![allow(clippy::unwrap_used)]

tresor_backend::backend_conformance_tests!(
    {
        let dir = tempfile::tempdir().unwrap();
        let b = tresor_sqlite::SqliteBackend::open(dir.path().join("store.sqlite")).unwrap();
        (b, dir)
    },
    reopen = |dir: &tempfile::TempDir| {
        tresor_sqlite::SqliteBackend::open_existing(dir.path().join("store.sqlite")).unwrap()
    }
);
