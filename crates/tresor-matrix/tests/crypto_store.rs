//! matrix-sdk's own `CryptoStore` conformance suites, unchanged, on tresor.

// The suite has `cfg(feature = ...)` items for matrix-sdk-crypto features of its own.
#![allow(unexpected_cfgs)]

mod common;

use tresor_matrix::{TresorCryptoStore, TresorMatrixStore};

/// The store called `name`: its data is wiped first if `clear_data`, else the same data is
/// opened again (by path). The suite's stores without a passphrase get a fixed one.
async fn get_store(name: &str, passphrase: Option<&str>, clear_data: bool) -> TresorCryptoStore {
    let path = common::dir().join(format!("{name}.redb"));
    if clear_data && path.exists() {
        std::fs::remove_file(&path).expect("remove the old store");
    }
    let secret = passphrase.unwrap_or("crypto suite");
    TresorMatrixStore::open(&path, secret.into())
        .await
        .expect("open the store")
        .crypto_store()
}

matrix_sdk_crypto::cryptostore_integration_tests!();
matrix_sdk_crypto::cryptostore_integration_tests_time!();
