//! The checked-in stores of older schema versions (`tests/fixtures/v<N>-chat.redb`, written by
//! the code of that version: `crates/tresor-schema/migrations/NOTES.md`) and what the
//! migration tests do with them.

use std::path::{Path, PathBuf};

use tresor::{Error, Message, Options, RedbBackend, Tresor};
use tresor_backend::{Fault, FaultBackend, FaultKind, FaultPoint};

/// The fixtures' passphrase.
pub const FIXTURE_PASS: &str = "tresor fixture passphrase";

/// A private copy of the fixture of schema `version` in `dir` (opening migrates it in place).
pub fn fixture_copy(dir: &Path, version: u32) -> PathBuf {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/v{version}-chat.redb"));
    let dst = dir.join(format!("v{version}.redb"));
    std::fs::copy(src, &dst).unwrap();
    dst
}

/// Every message of `store`, newest first, read through `recent` pages of `page`.
pub async fn all_messages(store: &Tresor, page: usize) -> Vec<Message> {
    let mut out = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let got = store
            .messages()
            .recent(page, before.as_deref())
            .await
            .unwrap();
        let Some(last) = got.last() else { break };
        before = Some(last.id.clone());
        out.extend(got);
    }
    out
}

/// Opens the store at `path` (migrating it in batches of 16 entries) over a backend whose
/// commits fail from the `nth` on (0-based), as a crash mid-migration would leave it. Returns
/// the open's error and the backend underneath, to inspect what landed.
pub async fn open_failing_from(path: &Path, nth: u64) -> (Error, RedbBackend) {
    let backend = FaultBackend::new(
        RedbBackend::open_existing(path).unwrap(),
        Fault {
            point: FaultPoint::Write,
            nth,
            kind: FaultKind::Io,
            sticky: true,
        },
    );
    let raw = backend.inner().clone();
    let options = Options::default().with_migration_batch(16);
    let err = Tresor::with_backend(backend, FIXTURE_PASS.into(), options)
        .await
        .unwrap_err();
    (err, raw)
}
