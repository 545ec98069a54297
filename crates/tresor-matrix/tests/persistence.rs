//! tresor-matrix's own guarantees: data survives close and reopen, two stores are
//! independent, a wrong passphrase is refused, and nothing is stored in the clear.

mod common;

use matrix_sdk_base::store::{StateStore, StateStoreDataKey, StateStoreDataValue};
use matrix_sdk_crypto::store::CryptoStore;
use ruma::room_id;
use tresor_matrix::{Error, TresorMatrixStore};

const SYNC_TOKEN: &str = "s72594_4483_1934_unmistakable-marker";

async fn save_token(store: &TresorMatrixStore, token: &str) {
    store
        .state_store()
        .set_kv_data(
            StateStoreDataKey::SyncToken,
            StateStoreDataValue::SyncToken(token.to_owned()),
        )
        .await
        .expect("save the sync token");
}

async fn token(store: &TresorMatrixStore) -> Option<String> {
    store
        .state_store()
        .get_kv_data(StateStoreDataKey::SyncToken)
        .await
        .expect("read the sync token")
        .and_then(StateStoreDataValue::into_sync_token)
}

#[tokio::test]
async fn data_survives_reopen_and_stores_are_independent() {
    let a = common::fresh_path();
    let b = common::fresh_path();
    {
        let store = TresorMatrixStore::open(&a, "pw-a".into()).await.unwrap();
        save_token(&store, SYNC_TOKEN).await;
        store
            .crypto_store()
            .set_custom_value("k", b"crypto value".to_vec())
            .await
            .unwrap();
        let other = TresorMatrixStore::open(&b, "pw-b".into()).await.unwrap();
        save_token(&other, "other").await;
    }
    let store = TresorMatrixStore::open(&a, "pw-a".into()).await.unwrap();
    assert_eq!(token(&store).await.as_deref(), Some(SYNC_TOKEN));
    assert_eq!(
        store.crypto_store().get_custom_value("k").await.unwrap(),
        Some(b"crypto value".to_vec())
    );
    drop(store);
    let other = TresorMatrixStore::open(&b, "pw-b".into()).await.unwrap();
    assert_eq!(token(&other).await.as_deref(), Some("other"));
    assert_eq!(
        other.crypto_store().get_custom_value("k").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn wrong_passphrase_is_a_typed_error() {
    let path = common::fresh_path();
    drop(
        TresorMatrixStore::open(&path, "right".into())
            .await
            .unwrap(),
    );
    let err = TresorMatrixStore::open(&path, "wrong".into())
        .await
        .expect_err("a wrong passphrase must not open the store");
    assert!(
        matches!(err, Error::Tresor(tresor::Error::WrongPassphrase)),
        "{err:?}"
    );
}

#[tokio::test]
async fn nothing_is_stored_in_the_clear() {
    let path = common::fresh_path();
    {
        let store = TresorMatrixStore::open(&path, "pw".into()).await.unwrap();
        save_token(&store, SYNC_TOKEN).await;
        store
            .state_store()
            .remove_room(room_id!("!unmistakable-room:example.org"))
            .await
            .unwrap();
        store
            .state_store()
            .set_custom_value(b"unmistakable-key", b"unmistakable-value".to_vec())
            .await
            .unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    for needle in [
        SYNC_TOKEN.as_bytes(),
        b"unmistakable",
        b"sync_token",
        b"s.kv",
        b"s.custom",
    ] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} found in the file",
            String::from_utf8_lossy(needle)
        );
    }
}

#[tokio::test]
async fn save_changes_then_remove_room_clears_the_room() {
    use matrix_sdk_base::store::StateChanges;
    use ruma::events::StateEventType;
    use ruma::serde::Raw;

    let store = TresorMatrixStore::open(common::fresh_path(), "pw".into())
        .await
        .unwrap();
    let state = store.state_store();
    let room = room_id!("!r:example.org");
    let mut changes = StateChanges::new("token-1".to_owned());
    let topic: Raw<ruma::events::AnySyncStateEvent> = Raw::new(&serde_json::json!({
        "type": "m.room.topic", "state_key": "", "event_id": "$e1:example.org",
        "sender": "@a:example.org", "origin_server_ts": 1, "content": {"topic": "hi"}
    }))
    .unwrap()
    .cast_unchecked();
    changes
        .state
        .entry(room.to_owned())
        .or_default()
        .entry(StateEventType::RoomTopic)
        .or_default()
        .insert(String::new(), topic);
    state.save_changes(&changes).await.unwrap();
    assert_eq!(
        state
            .get_kv_data(StateStoreDataKey::SyncToken)
            .await
            .unwrap()
            .and_then(StateStoreDataValue::into_sync_token)
            .as_deref(),
        Some("token-1")
    );
    assert!(
        state
            .get_state_event(room, StateEventType::RoomTopic, "")
            .await
            .unwrap()
            .is_some()
    );
    state.remove_room(room).await.unwrap();
    assert!(
        state
            .get_state_events(room, StateEventType::RoomTopic)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn handles_share_one_store() {
    use matrix_sdk_crypto::olm::Account;
    use matrix_sdk_crypto::store::types::PendingChanges;
    use ruma::{device_id, user_id};

    let store = TresorMatrixStore::open(common::fresh_path(), "pw".into())
        .await
        .unwrap();
    let (a, b) = (store.crypto_store(), store.crypto_store());
    assert!(b.get_static_account().is_none());
    let account = Account::with_device_id(user_id!("@a:example.org"), device_id!("DEV"));
    a.save_pending_changes(PendingChanges {
        account: Some(account),
    })
    .await
    .unwrap();
    let seen = b
        .get_static_account()
        .expect("the other handle sees the account");
    assert_eq!(seen.device_id, device_id!("DEV"));
}
