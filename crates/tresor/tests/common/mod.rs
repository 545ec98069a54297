//! Shared helpers of the facade's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

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
