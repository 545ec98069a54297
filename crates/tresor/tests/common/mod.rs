//! Shared helpers of the facade's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

pub mod fixtures;

use tresor::{MemoryBackend, Message, Options, Tresor};

pub const PASS: &str = "correct horse battery staple";

pub async fn memory_store() -> Tresor {
    Tresor::with_backend(MemoryBackend::new(), PASS.into(), Options::default())
        .await
        .unwrap()
}

pub fn msg(
    id: &str,
    conv: &str,
    sender: &str,
    recipient: Option<&str>,
    ts: i64,
    body: &str,
) -> Message {
    Message::new(id, conv, sender, recipient.map(str::to_owned), ts, body)
}

pub fn ids(ms: &[Message]) -> Vec<&str> {
    ms.iter().map(|m| m.id.as_str()).collect()
}

/// The backends the facade's tests run on.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Memory,
    Redb,
    Sqlite,
}

/// A new store on `kind`, with the temporary directory holding its file (kept alive by the
/// caller).
pub async fn store_on(kind: Kind) -> (Tresor, Option<tempfile::TempDir>) {
    let engine = match kind {
        Kind::Memory => return (memory_store().await, None),
        Kind::Redb => tresor::BackendKind::Redb,
        Kind::Sqlite => tresor::BackendKind::Sqlite,
    };
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().with_backend_kind(engine);
    let store = Tresor::create_with(dir.path().join("store"), PASS.into(), options)
        .await
        .unwrap();
    (store, Some(dir))
}

/// Runs each `async fn case(store: Tresor)` named as a test in module `$module` on `$kind`.
#[allow(unused_macros)]
macro_rules! on_backend {
    ($module:ident, $kind:ident; $($case:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _dir) = crate::common::store_on(crate::common::Kind::$kind).await;
                    super::$case(store).await;
                }
            )*
        }
    };
}

/// Runs each `async fn case(store: Tresor)` as one test per backend: `memory::case`,
/// `redb::case`, `sqlite::case`.
#[allow(unused_macros)]
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        on_backend!(memory, Memory; $($case),*);
        on_backend!(redb, Redb; $($case),*);
        on_backend!(sqlite, Sqlite; $($case),*);
    };
}
