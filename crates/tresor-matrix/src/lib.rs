//! tresor-matrix: matrix-sdk's [`StateStore`](matrix_sdk_base::store::StateStore) and
//! [`CryptoStore`](matrix_sdk_crypto::store::CryptoStore) (matrix-sdk 0.18) on tresor.
//!
//! Every value a Matrix client stores (room state, members, receipts, send queue, Olm and
//! Megolm sessions, devices, identities, ...) becomes one entry of a single tresor typed table,
//! so it is sealed with AES-256-GCM under AAD bound to its key, and every identifier in a key
//! (room id, user id, event type, session id) is a blinded token. `docs/MATRIX.md` maps each
//! kind of Matrix data onto the table.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tresor_matrix::Error> {
//! use tresor_matrix::TresorMatrixStore;
//! let store = TresorMatrixStore::open("matrix.redb", "passphrase".into()).await?;
//! let state = store.state_store();   // a matrix_sdk_base::store::StateStore
//! let crypto = store.crypto_store(); // a matrix_sdk_crypto::store::CryptoStore
//! # let _ = (state, crypto); Ok(()) }
//! ```
//!
//! # Code map
//! - [`TresorMatrixStore`] (`lib.rs`): opens the tresor store shared by both stores.
//! - `kv.rs`: the typed table (`matrix`): namespaced multi-part keys, prefix indexes, and
//!   write transactions committed in one atomic batch.
//! - [`TresorStateStore`] (`state.rs`): the `StateStore`.
//! - [`TresorCryptoStore`] (`crypto.rs`): the `CryptoStore`.
//! - [`Error`] (`error.rs`): failures, mapped onto matrix-sdk's `StoreError` and
//!   `CryptoStoreError`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod crypto;
mod error;
mod kv;
mod state;

use std::path::Path;
use std::sync::Arc;

pub use crypto::TresorCryptoStore;
pub use error::Error;
pub use state::TresorStateStore;
pub use tresor::{Options, Secret};

use tresor::Tresor;

/// A tresor store holding a Matrix client's state and crypto data.
#[derive(Debug, Clone)]
pub struct TresorMatrixStore {
    store: Arc<Tresor>,
    /// Handed out as clones, so every handle shares one write lock (and account cache).
    state: TresorStateStore,
    crypto: TresorCryptoStore,
}

impl TresorMatrixStore {
    /// Opens the tresor store at `path` with `secret` (a passphrase or a raw key), creating it
    /// if there is no file.
    ///
    /// # Errors
    /// [`Error::Tresor`]: a wrong passphrase, a file that is not a tresor store, I/O.
    pub async fn open(path: impl AsRef<Path>, secret: Secret) -> Result<Self, Error> {
        Self::open_with(path, secret, Options::default()).await
    }

    /// As [`TresorMatrixStore::open`] with tresor `options` (KDF, durability, engine).
    ///
    /// # Errors
    /// As [`TresorMatrixStore::open`].
    pub async fn open_with(
        path: impl AsRef<Path>,
        secret: Secret,
        options: Options,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        let store = if path.exists() {
            Tresor::open_with(path, secret, options).await?
        } else {
            Tresor::create_with(path, secret, options).await?
        };
        Ok(Self::from_tresor(Arc::new(store)))
    }

    /// Uses an open tresor store (its Matrix data lives in the typed table `matrix`).
    pub fn from_tresor(store: Arc<Tresor>) -> Self {
        Self {
            state: TresorStateStore::new(store.clone()),
            crypto: TresorCryptoStore::new(store.clone()),
            store,
        }
    }

    /// The underlying tresor store.
    pub fn tresor(&self) -> &Arc<Tresor> {
        &self.store
    }

    /// The matrix-sdk state store on this tresor store (every call returns a handle to the
    /// same store: one write lock).
    pub fn state_store(&self) -> TresorStateStore {
        self.state.clone()
    }

    /// The matrix-sdk crypto store on this tresor store (every call returns a handle to the
    /// same store: one write lock, one account cache).
    pub fn crypto_store(&self) -> TresorCryptoStore {
        self.crypto.clone()
    }
}
