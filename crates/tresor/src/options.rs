//! Store options.

use tresor_backend::Durability;
use tresor_crypto::KdfParams;

use crate::BackendKind;

/// Options for creating and using a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// KDF used when *creating* a store (an existing store keeps the parameters in its header).
    /// Default: Argon2id at OWASP's minimum (m = 19 MiB, t = 2, p = 1).
    pub kdf: KdfParams,
    /// Durability of every write. Default: [`Durability::Immediate`] (fsync before a save
    /// returns).
    pub durability: Durability,
    /// Storage engine of a store *created* at a path. Default: [`BackendKind::Redb`].
    pub backend: BackendKind,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            kdf: KdfParams::default(),
            durability: Durability::Immediate,
            backend: BackendKind::Redb,
        }
    }
}

impl Options {
    /// Sets the KDF used when creating a store.
    pub fn with_kdf(mut self, kdf: KdfParams) -> Self {
        self.kdf = kdf;
        self
    }

    /// Sets the storage engine used when creating a store at a path.
    pub fn with_backend_kind(mut self, backend: BackendKind) -> Self {
        self.backend = backend;
        self
    }

    /// Sets the durability of writes.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }
}
