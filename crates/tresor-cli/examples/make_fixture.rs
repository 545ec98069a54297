//! Writes a small store of the *current* schema version for migration tests:
//! `cargo run -p tresor-cli --example make_fixture -- OUT.redb`.
//!
//! The store holds the first 20 conversations of the bundled chitchat sample, under the
//! passphrase [`PASSPHRASE`]. Fixtures made by each schema version are checked in under
//! `crates/tresor/tests/fixtures/` (`v<N>-chat.redb`) and never regenerated: they are what an
//! old tresor really wrote (`crates/tresor-schema/migrations/NOTES.md`).
#![allow(clippy::print_stdout)]

use tresor::{Options, Tresor};

/// The fixtures' passphrase.
const PASSPHRASE: &str = "tresor fixture passphrase";
/// Conversations of the bundled sample written to a fixture.
const CONVERSATIONS: usize = 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: make_fixture OUT.redb")?;
    let store = Tresor::create_with(&out, PASSPHRASE.into(), Options::default()).await?;
    let conversations = tresor_cli::chitchat::bundled_sample()?;
    let mut total = 0;
    for c in conversations.iter().take(CONVERSATIONS) {
        total += c.messages.len();
        store.messages().save_batch(&c.messages).await?;
    }
    // A few records of other typed tables (schema v2 and later), so migrations prove they
    // keep them.
    if stats_version(&store).await? >= 2 {
        store
            .contacts()
            .save(&tresor::Contact {
                peer_id: "fixture-peer".into(),
                display_name: "Fixture Peer".into(),
                public_key: vec![7; 32],
                verified: true,
                blocked: false,
            })
            .await?;
        store
            .key_values()
            .set("fixture-setting", b"fixture value")
            .await?;
    }
    // Extended message state (schema v3 and later): a status, an edit, a redaction.
    if stats_version(&store).await? >= 3 {
        let ids: Vec<String> = conversations
            .iter()
            .take(CONVERSATIONS)
            .flat_map(|c| c.messages.iter().take(1).map(|m| m.id.clone()))
            .collect();
        if let [a, b, c, ..] = ids.as_slice() {
            store
                .messages()
                .set_status(a, tresor::DeliveryStatus::Read)
                .await?;
            store
                .messages()
                .edit(b, "fixture edit", 1_700_000_000_000)
                .await?;
            store
                .messages()
                .redact(c, Some("fixture"), 1_700_000_000_001)
                .await?;
        }
    }
    let stats = store.stats().await?;
    println!(
        "{out}: schema v{}, {total} messages, {} conversations",
        stats.schema_version, stats.conversations
    );
    Ok(())
}

async fn stats_version(store: &Tresor) -> Result<u32, tresor::Error> {
    Ok(store.stats().await?.schema_version)
}
