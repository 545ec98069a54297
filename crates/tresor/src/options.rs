//! Store options.

use tresor_backend::Durability;
use tresor_crypto::KdfParams;

use crate::BackendKind;

/// The default [`Options::seal_limit`]: 2^31 AES-GCM seals under one value key.
///
/// NIST SP 800-38D §8.3 requires that, with random 96-bit nonces, the total number of
/// invocations of the authenticated encryption function under one key not exceed 2^32, which
/// keeps the probability of a nonce collision below 2^-32. Rotating at half that bound leaves
/// room for seals made by other copies of the same key (a store restored from a backup shares
/// its data key) and for the seals of a rotation itself.
pub const DEFAULT_SEAL_LIMIT: u64 = 1 << 31;

/// Options for creating and using a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// KDF used when *creating* a store or *changing its passphrase* (an existing store keeps
    /// the parameters in its header until then). Ignored for raw keys. Default: Argon2id at
    /// OWASP's minimum (m = 19 MiB, t = 2, p = 1).
    pub kdf: KdfParams,
    /// Durability of every write. Default: [`Durability::Immediate`] (fsync before a save
    /// returns).
    pub durability: Durability,
    /// When *creating* a store: pad every record to a Padmé length (`docs/FORMAT.md` 1.8,
    /// format 2), so sealed sizes reveal less of the content's length. Persisted in the store
    /// (`meta/padding`); ignored when opening. Default: off.
    pub pad_records: bool,
    /// Seals under one value key after which a key rotation starts by itself. Default:
    /// [`DEFAULT_SEAL_LIMIT`] (2^31).
    pub seal_limit: u64,
    /// Whether key rotations run by themselves in a background task: one interrupted by a
    /// crash resumes at open, and one starts when the seal count reaches
    /// [`Options::seal_limit`]. Without it, rotations run only inside
    /// [`crate::Tresor::rotate_key`] (and a backup finishes one in progress). Default: on.
    pub background_rotation: bool,
    /// Storage engine of a store *created* at a path. Default: [`BackendKind::Redb`].
    pub backend: BackendKind,
    /// Entries read per atomic batch of a schema migration at open. Default:
    /// [`crate::MIGRATION_BATCH`] (512).
    pub migration_batch: usize,
    /// Bytes of opened typed records kept in memory (an LRU cache invalidated by every write;
    /// hits and misses in [`crate::Stats`]). 0 turns it off. Default: 8 MiB.
    pub cache_bytes: usize,
    /// How often the sweeper deletes expired (disappearing) messages and applies
    /// per-conversation retention ([`crate::Messages::sweep`]); it also sweeps once at open.
    /// `None` turns both off (sweep by hand). Default: every 60 s.
    pub sweep_interval: Option<std::time::Duration>,
    /// Upper bound of the storage engine's page cache, in bytes: redb keeps the pages it reads
    /// and writes up to this much (`tresor_redb::RedbConfig`); SQLite ignores it (its own cache
    /// is 2 MiB by default). Default: [`tresor_redb::DEFAULT_CACHE_BYTES`] (64 MiB; redb's own
    /// default would be 1 GiB).
    pub engine_cache_bytes: usize,
    /// redb: durable commits through the engine's commit log
    /// (`tresor_redb::RedbConfig::commit_log`, docs/FORMAT.md 1.17): a durable save is one log
    /// append and one
    /// `fdatasync` instead of a durable redb commit (on the chitchat corpus a durable batch of
    /// 1,000 messages takes about half the time, docs/BENCHMARKS.md), at the cost of a
    /// `<store>-log` file beside the store while it is open. Bypassed while the file system
    /// has less than 256 MiB free (`tresor_redb::RedbConfig::log_min_free_bytes`): then every
    /// durable save is a durable redb commit, so a full disk fails only the save that does not
    /// fit. Applies to stores *opened* with these options (creating and restoring write
    /// without it). SQLite ignores it (it has its own WAL). Default: on.
    pub commit_log: bool,
    /// redb: the commit log's size, in bytes, past which a checkpoint (one durable redb commit)
    /// empties it (`tresor_redb::RedbConfig::checkpoint_bytes`). Larger values make durable
    /// redb commits rarer (faster bulk imports) at the cost of a larger `<store>-log` file
    /// between checkpoints and a longer replay after a crash (replay reads the log record by
    /// record, so memory does not grow with it). Default
    /// `tresor_redb::DEFAULT_CHECKPOINT_BYTES`.
    pub engine_checkpoint_bytes: u64,
    /// How an async query reaches a blocking engine (redb, SQLite). Off (the default): on a
    /// blocking thread (`tokio::task::spawn_blocking`), a thread hop per query (about 15 µs
    /// on the reference VM, more than a cached point read costs). On: in place, on the
    /// calling thread, through `tokio::task::block_in_place`, which first hands the thread's
    /// other tasks to another worker, so they keep running; on a current-thread runtime (where
    /// `block_in_place` is not allowed) and outside a runtime, reads take the blocking thread
    /// as with the option off. The price: futures that the *same* task polls concurrently with
    /// the query (`tokio::join!`, `tokio::select!`) wait until the engine returns (a cached
    /// read: microseconds; a read from a cold disk: milliseconds). Writes are unaffected (they
    /// go to the engine's writer thread). docs/BENCHMARKS.md measures both.
    pub reads_in_place: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            kdf: KdfParams::default(),
            durability: Durability::Immediate,
            pad_records: false,
            seal_limit: DEFAULT_SEAL_LIMIT,
            background_rotation: true,
            backend: BackendKind::Redb,
            migration_batch: crate::MIGRATION_BATCH,
            cache_bytes: 8 << 20,
            sweep_interval: Some(std::time::Duration::from_secs(60)),
            engine_cache_bytes: tresor_redb::DEFAULT_CACHE_BYTES,
            commit_log: true,
            engine_checkpoint_bytes: tresor_redb::DEFAULT_CHECKPOINT_BYTES,
            reads_in_place: false,
        }
    }
}

impl Options {
    /// Turns the redb commit log on or off ([`Options::commit_log`]).
    #[must_use]
    pub fn with_commit_log(mut self, on: bool) -> Self {
        self.commit_log = on;
        self
    }

    /// The redb settings of these options: the page-cache bound, and the commit log when
    /// `log` (stores being created or restored into a temporary file are written without it,
    /// so that a closed temporary file is the whole store when it is moved into place).
    pub(crate) fn redb_config(&self, log: bool) -> tresor_redb::RedbConfig {
        tresor_redb::RedbConfig::default()
            .with_cache_bytes(self.engine_cache_bytes)
            .with_commit_log(log && self.commit_log)
            .with_checkpoint_bytes(self.engine_checkpoint_bytes)
    }

    /// Sets the commit log's checkpoint size ([`Options::engine_checkpoint_bytes`], bytes).
    #[must_use]
    pub fn with_engine_checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.engine_checkpoint_bytes = bytes;
        self
    }

    /// Sets the engine's page-cache bound ([`Options::engine_cache_bytes`]).
    #[must_use]
    pub fn with_engine_cache_bytes(mut self, bytes: usize) -> Self {
        self.engine_cache_bytes = bytes;
        self
    }

    /// Sets the sweeper's interval ([`Options::sweep_interval`]; `None`: no automatic sweeps).
    pub fn with_sweep_interval(mut self, every: Option<std::time::Duration>) -> Self {
        self.sweep_interval = every;
        self
    }

    /// Sets the KDF used when creating a store or changing its passphrase.
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

    /// Pads records of a new store to Padmé lengths ([`Options::pad_records`]).
    pub fn with_padding(mut self, pad: bool) -> Self {
        self.pad_records = pad;
        self
    }

    /// Sets the seal count that starts a key rotation ([`Options::seal_limit`]).
    pub fn with_seal_limit(mut self, limit: u64) -> Self {
        self.seal_limit = limit;
        self
    }

    /// Sets the entries per schema-migration batch ([`Options::migration_batch`], at least 1).
    pub fn with_migration_batch(mut self, batch: usize) -> Self {
        self.migration_batch = batch.max(1);
        self
    }

    /// Sets the size of the typed-record cache in bytes ([`Options::cache_bytes`]; 0: off).
    pub fn with_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Runs async queries' engine reads in place ([`Options::reads_in_place`]).
    #[must_use]
    pub fn with_reads_in_place(mut self, on: bool) -> Self {
        self.reads_in_place = on;
        self
    }

    /// Turns background rotation on or off ([`Options::background_rotation`]).
    pub fn with_background_rotation(mut self, on: bool) -> Self {
        self.background_rotation = on;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Options;

    /// The engine settings reach the redb configuration; the log only for stores opened with
    /// it.
    #[test]
    fn engine_settings_reach_the_redb_config() {
        let options = Options::default()
            .with_engine_checkpoint_bytes(4096)
            .with_engine_cache_bytes(1 << 20);
        let config = options.redb_config(true);
        assert_eq!(config.checkpoint_bytes, 4096);
        assert_eq!(config.cache_bytes, 1 << 20);
        assert!(config.commit_log);
        assert!(!options.redb_config(false).commit_log);
        assert_eq!(
            Options::default().redb_config(true).checkpoint_bytes,
            tresor_redb::DEFAULT_CHECKPOINT_BYTES
        );
    }
}
