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

/// The suite on stores opened with the settings `config()` returns (defined in the calling
/// module).
macro_rules! suite_with_config {
    () => {
        tresor_backend::backend_conformance_tests!(
            {
                let dir = tempfile::tempdir().unwrap();
                let b = tresor_redb::RedbBackend::open_with_config(
                    dir.path().join("store.redb"),
                    config(),
                )
                .unwrap();
                (b, dir)
            },
            reopen = |dir: &tempfile::TempDir| {
                tresor_redb::RedbBackend::open_existing_with_config(
                    dir.path().join("store.redb"),
                    config(),
                )
                .unwrap()
            }
        );
    };
}

/// The same suite with checkpoints every 4 KiB of commit log (so that the cases run across many
/// checkpoints; the default is 32 MiB) and the log used whatever the free space.
mod with_commit_log {
    #![allow(clippy::unwrap_used)]

    fn config() -> tresor_redb::RedbConfig {
        tresor_redb::RedbConfig::default()
            .with_commit_log(true)
            .with_checkpoint_bytes(4096)
            .with_log_min_free_bytes(0)
    }

    suite_with_config!();
}

/// The same suite with the commit log off: every `Immediate` group a durable redb commit.
mod without_commit_log {
    #![allow(clippy::unwrap_used)]

    fn config() -> tresor_redb::RedbConfig {
        tresor_redb::RedbConfig::default().with_commit_log(false)
    }

    suite_with_config!();
}
