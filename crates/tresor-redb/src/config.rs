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

/// The default log size that triggers a checkpoint: 32 MiB ([`RedbConfig::checkpoint_bytes`]).
///
/// A checkpoint is one durable redb commit (it writes and syncs every page changed since the
/// last one) and empties the commit log. Larger values make checkpoints rarer (pages changed
/// many times are written once) at the cost of a longer replay after a crash (replay applies
/// the log at roughly the speed of a bulk import: well under a second for 32 MiB; it reads
/// the log record by record, so its memory does not grow with the log) and of a larger log
/// file between checkpoints. Session 9 measured 32, 64 and 128 MiB on the corpus import and
/// found no difference beyond this VM's noise (docs/BENCHMARKS.md).
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 32 * 1024 * 1024;

/// The default free space below which the commit log is bypassed: 256 MiB
/// ([`RedbConfig::log_min_free_bytes`]). Between two checkpoints the log holds at most
/// [`DEFAULT_CHECKPOINT_BYTES`] (plus up to 4 MiB it reserves ahead of its appends) and redb
/// at most its write buffer (the page cache, [`DEFAULT_CACHE_BYTES`]) of pages not yet
/// written; 256 MiB is well over all of them together.
pub const DEFAULT_LOG_MIN_FREE_BYTES: u64 = 256 * 1024 * 1024;

/// Settings of a [`crate::RedbBackend`], given at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedbConfig {
    /// Upper bound of redb's page cache, in bytes (`redb::Builder::set_cache_size`).
    /// Default [`DEFAULT_CACHE_BYTES`].
    pub cache_bytes: usize,
    /// Whether durable commits go through the commit log (`<path>-log`, see the crate
    /// documentation): one sequential append and one `fdatasync` per group instead of a
    /// durable redb commit. Default `true`. Without it every `Immediate` group is a durable
    /// redb commit, and an existing log is still replayed at open, then deleted.
    pub commit_log: bool,
    /// Free space, in bytes, the store's file system must have for a group to go through the
    /// commit log; below it the writer checkpoints and commits directly (durable redb
    /// commits), until space is back. Why: redb writes the pages of the commits since the last
    /// checkpoint only at the next one, so a disk that fills up while the log is in use could
    /// leave no room for that checkpoint (the data would stay safe in the log, but writes and
    /// reopening would fail until space is freed); a direct commit on a full disk fails only
    /// the batch that does not fit. Checked with `statvfs` before every group (Unix; elsewhere
    /// the space is taken as enough). Default [`DEFAULT_LOG_MIN_FREE_BYTES`].
    pub log_min_free_bytes: u64,
    /// Log size, in bytes, past which the writer checkpoints (a durable redb commit, then the
    /// log is emptied). `u64::MAX`: never by size, only at compaction, at a clean close and
    /// when free space runs short. Default [`DEFAULT_CHECKPOINT_BYTES`].
    pub checkpoint_bytes: u64,
    /// Most threads the writer applies a large group on (one table per thread at a time;
    /// redb 4.6 lets the tables of one write transaction be modified concurrently). 1 applies
    /// every group on the writer thread. Default [`default_apply_threads`].
    pub apply_threads: usize,
}

/// The default of [`RedbConfig::apply_threads`]: the machine's available parallelism, at most
/// 4 (a group seldom writes more than four large tables), at least 1.
pub fn default_apply_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

impl Default for RedbConfig {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
            commit_log: true,
            checkpoint_bytes: DEFAULT_CHECKPOINT_BYTES,
            log_min_free_bytes: DEFAULT_LOG_MIN_FREE_BYTES,
            apply_threads: default_apply_threads(),
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

    /// These settings with the commit log on (`true`, the default) or off (`false`).
    #[must_use]
    pub fn with_commit_log(mut self, on: bool) -> Self {
        self.commit_log = on;
        self
    }

    /// These settings with a checkpoint every `bytes` of commit log.
    #[must_use]
    pub fn with_checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }

    /// These settings with the commit log bypassed below `bytes` of free space.
    #[must_use]
    pub fn with_log_min_free_bytes(mut self, bytes: u64) -> Self {
        self.log_min_free_bytes = bytes;
        self
    }

    /// These settings with groups applied on at most `threads` threads (0 is taken as 1).
    #[must_use]
    pub fn with_apply_threads(mut self, threads: usize) -> Self {
        self.apply_threads = threads.max(1);
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
