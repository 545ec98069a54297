//! A matrix-sdk client whose state and crypto stores are one tresor file.
//!
//! `cargo run -p tresor-matrix --example matrix_client -- [PATH]` activates a client for
//! `@alice:example.org` (no network: the base client, below matrix-sdk's HTTP layer), which
//! creates its Olm account in the crypto store, then opens the file again and shows that
//! the same device keys come back. The stores are what `matrix_sdk::ClientBuilder::
//! store_config` takes, so a full `matrix_sdk::Client` is built the same way.

use matrix_sdk_base::store::{RoomLoadSettings, StoreConfig};
use matrix_sdk_base::{BaseClient, DmRoomDefinition, SessionMeta, ThreadingSupport};
use matrix_sdk_common::cross_process_lock::CrossProcessLockConfig;
use ruma::{device_id, user_id};
use tresor_matrix::TresorMatrixStore;

async fn client(path: &std::path::Path) -> Result<BaseClient, Box<dyn std::error::Error>> {
    let store = TresorMatrixStore::open(path, "example passphrase".into()).await?;
    let config = StoreConfig::new(CrossProcessLockConfig::SingleProcess)
        .state_store(store.state_store())
        .crypto_store(store.crypto_store());
    let client = BaseClient::new(
        config,
        ThreadingSupport::Disabled,
        DmRoomDefinition::default(),
    );
    client
        .activate(
            SessionMeta {
                user_id: user_id!("@alice:example.org").to_owned(),
                device_id: device_id!("TRESORDEV").to_owned(),
            },
            RoomLoadSettings::default(),
            None,
        )
        .await?;
    Ok(client)
}

async fn device_key(client: &BaseClient) -> Option<String> {
    let machine = client.olm_machine().await;
    machine
        .as_ref()
        .map(|m| m.identity_keys().ed25519.to_base64())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("tresor-matrix-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| dir.join("client.redb"), Into::into);

    let first = client(&path).await?;
    let key = device_key(&first).await;
    println!("device ed25519 key: {key:?}");
    drop(first);

    let again = client(&path).await?;
    let reopened = device_key(&again).await;
    println!("after reopening:    {reopened:?}");
    assert_eq!(key, reopened, "the Olm account must come back from tresor");
    println!("stored in {} (sealed, keys blinded)", path.display());
    Ok(())
}
