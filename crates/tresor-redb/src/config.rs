//! Settings of a redb backend.

/// The default bound of redb's page cache: 64 MiB (redb's own default is 1 GiB).
///
/// redb keeps every page it reads or writes in its cache up to this bound, so the bound is
/// what a store adds to the process' resident memory at most (on top of the OS page cache,
/// which the kernel reclaims under pressure). 64 MiB keeps a messenger's memory flat whatever
/// the store's size (a 1 GiB media blob, a 10-million-message import); random point reads of a
/// store larger than the cache then come from the OS page cache through `pread`, which costs
/// more per read than a cache hit: raise the bound with [`RedbConfig::with_cache_bytes`] on a
/// machine where memory is plentiful and read latency matters more.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Settings of a [`crate::RedbBackend`], given at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedbConfig {
    /// Upper bound of redb's page cache, in bytes (`redb::Builder::set_cache_size`).
    /// Default [`DEFAULT_CACHE_BYTES`].
    pub cache_bytes: usize,
}

impl Default for RedbConfig {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

impl RedbConfig {
    /// These settings with a page-cache bound of `bytes`.
    #[must_use]
    pub fn with_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// A redb builder with these settings: what every database of the backend is opened or
    /// created with (the store, and the file a compaction writes).
    pub(crate) fn builder(&self) -> redb::Builder {
        let mut builder = redb::Builder::new();
        builder.set_cache_size(self.cache_bytes);
        builder
    }
}
