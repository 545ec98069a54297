//! Store options.

use tresor_backend::Durability;
use tresor_crypto::KdfParams;

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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            kdf: KdfParams::default(),
            durability: Durability::Immediate,
        }
    }
}

impl Options {
    /// Sets the KDF used when creating a store.
    pub fn with_kdf(mut self, kdf: KdfParams) -> Self {
        self.kdf = kdf;
        self
    }

    /// Sets the durability of writes.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }
}
