//! The backend conformance suite of `tresor-backend`, run against [`tresor_redb::RedbBackend`].
#![allow(clippy::unwrap_used)]

tresor_backend::backend_conformance_tests!(
    {
        let dir = tempfile::tempdir().unwrap();
        let b = tresor_redb::RedbBackend::open(dir.path().join("store.redb")).unwrap();
        (b, dir)
    },
    reopen = |dir: &tempfile::TempDir| {
        tresor_redb::RedbBackend::open_existing(dir.path().join("store.redb")).unwrap()
    }
);
