//! matrix-sdk's own `StateStore` conformance suite, unchanged, on tresor.

mod common;

use matrix_sdk_base::store::{Result, StateStore, StoreError};
use tresor_matrix::TresorMatrixStore;

async fn get_store() -> Result<impl StateStore> {
    let store = TresorMatrixStore::open(common::fresh_path(), "state suite".into())
        .await
        .map_err(StoreError::from)?;
    Ok(store.state_store())
}

matrix_sdk_base::statestore_integration_tests!();
