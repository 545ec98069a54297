//! The keys of an open store: unlock, seal counting, passphrase change, key information.
//!
//! ```text
//! meta/key_header ──secret + KDF──▶ KEK ──unwrap──▶ DEK ──HKDF──▶ StoreKeys (Keyring::current)
//! meta/rotation_previous_dek ──HKDF(DEK) unwrap──▶ previous DEK ──▶ Keyring::previous
//! ```
//!
//! Readers take a snapshot of the [`Keyring`] (an `Arc`); the writer, under the writer lock,
//! owns the [`KeyState`] (header, KEK, DEK, seal count, rotation cursor) and swaps the keyring
//! when a rotation starts or ends.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tresor_backend::{Backend, Durability, Op, WriteBatch};
use tresor_crypto::{DataKey, KdfParams, Kek, KeyHeader, Secret, StoreKeys};
use tresor_schema::catalog::{self, META, TableKind, meta_keys};

use crate::rotation::RotationStatus;
use crate::store::{Inner, WriterState};
use crate::{Error, Options, Tresor};

/// The keys readers use: the current keys, and during a rotation the previous ones.
pub(crate) struct Keyring {
    /// Subkeys of the current DEK: every write uses these.
    pub(crate) current: StoreKeys,
    /// Subkeys of the DEK being retired, while a rotation is in progress.
    pub(crate) previous: Option<StoreKeys>,
    /// Incremented on every swap, so a reader can tell that its snapshot is stale.
    pub(crate) epoch: u64,
}

impl Keyring {
    /// The keys of one generation: the previous ones when `previous` (and a rotation is in
    /// progress), else the current ones.
    pub(crate) fn generation(&self, previous: bool) -> &StoreKeys {
        match (&self.previous, previous) {
            (Some(prev), true) => prev,
            _ => &self.current,
        }
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("rotating", &self.previous.is_some())
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Key material and counters owned by the writer.
pub(crate) struct KeyState {
    /// The encoded current key header (equal to `meta/key_header`).
    pub(crate) header: Vec<u8>,
    /// The KEK of that header, to wrap a new DEK without the secret.
    pub(crate) kek: Kek,
    /// The current DEK.
    pub(crate) dek: DataKey,
    /// Seals made under the current value key (equal to `meta/seal_count`).
    pub(crate) seals: u64,
    /// When the current DEK was made (ms since the epoch), if recorded.
    pub(crate) created_ms: Option<i64>,
    /// During a rotation: the cursor (`u8 table index ‖ last key migrated`).
    pub(crate) rotation: Option<Vec<u8>>,
}

impl std::fmt::Debug for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyState")
            .field("seals", &self.seals)
            .field("created_ms", &self.created_ms)
            .field("rotating", &self.rotation.is_some())
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Makes the key material of a new store and the `meta` entries that record it.
pub(crate) async fn initialize(
    secret: Secret,
    options: &Options,
) -> Result<(WriteBatch, KeyState, Keyring), Error> {
    let kdf = options.kdf;
    let (header, kek, dek) = tokio::task::spawn_blocking(move || {
        note_kdf(&secret);
        let dek = DataKey::generate()?;
        let (header, kek) = KeyHeader::wrap_kek(&dek, &secret, kdf)?;
        Ok::<_, tresor_crypto::CryptoError>((header, kek, dek))
    })
    .await??;
    let header = header.encode();
    let created = now_ms();
    let mut batch = WriteBatch::new();
    batch.put(META, meta_keys::KEY_HEADER, header.clone());
    batch.put(META, meta_keys::SEAL_COUNT, 0u64.to_le_bytes().to_vec());
    batch.put(
        META,
        meta_keys::KEY_CREATED_MS,
        created.to_le_bytes().to_vec(),
    );
    if options.pad_records {
        batch.put(META, meta_keys::PADDING, vec![1]);
    }
    let ring = Keyring {
        current: dek.store_keys(),
        previous: None,
        epoch: 0,
    };
    let state = KeyState {
        header,
        kek,
        dek,
        seals: 0,
        created_ms: Some(created),
        rotation: None,
    };
    Ok((batch, state, ring))
}

/// Test-only record of the KDF's runs: the passphrase of each, in order. Tests run
/// concurrently in one process, so a test counts the entries of its own passphrase.
#[cfg(test)]
pub(crate) static KDF_RUNS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

#[cfg(test)]
fn note_kdf(secret: &Secret) {
    if let Secret::Passphrase(p) = secret {
        // A poisoned lock means another test panicked while holding it: keep counting.
        let mut runs = KDF_RUNS.lock().unwrap_or_else(|e| e.into_inner());
        runs.push(p.expose().to_vec());
    }
}

#[cfg(not(test))]
fn note_kdf(_: &Secret) {}

/// What unlocks a store's key header.
pub(crate) enum Credential {
    /// The passphrase or raw key: the header's KDF derives the KEK.
    Secret(Secret),
    /// A KEK derived moments ago from the secret and this header's salt: `Tresor::create_with`
    /// opens the store it has just made without running the KDF a second time.
    Kek(Kek),
}

/// Unlocks the key header of `backend` with `credential`, and the previous DEK if a rotation
/// is in progress.
pub(crate) async fn unlock(
    backend: &dyn Backend,
    credential: Credential,
) -> Result<(KeyState, Keyring), Error> {
    let header_bytes = backend
        .get(META, meta_keys::KEY_HEADER.as_bytes())
        .await?
        .ok_or(Error::NotAStore)?;
    let header = KeyHeader::decode(&header_bytes)?;
    let (kek, dek) = match credential {
        Credential::Secret(secret) => {
            tokio::task::spawn_blocking(move || {
                note_kdf(&secret);
                header.unlock_kek(&secret)
            })
            .await??
        }
        // No KDF: opening the wrapped DEK under `kek` authenticates the header (AES-GCM with
        // the header's AAD), as a passphrase's KEK would.
        Credential::Kek(kek) => {
            let dek = header.unlock_with(&kek)?;
            (kek, dek)
        }
    };
    let seals = read_opt_u64(backend, meta_keys::SEAL_COUNT)
        .await?
        .unwrap_or(0);
    let created_ms = read_opt_u64(backend, meta_keys::KEY_CREATED_MS)
        .await?
        .map(|v| v as i64);
    let previous = match backend
        .get(META, meta_keys::ROTATION_PREVIOUS_DEK.as_bytes())
        .await?
    {
        Some(wrapped) => Some(
            dek.unwrap_previous(&wrapped)
                .map_err(|_| Error::Corrupted("the previous data key does not unwrap".into()))?,
        ),
        None => None,
    };
    let rotation = match &previous {
        Some(_) => {
            let cursor = backend
                .get(META, meta_keys::ROTATION_CURSOR.as_bytes())
                .await?
                .ok_or_else(|| Error::Corrupted("rotation cursor missing".into()))?;
            crate::rotation::check_cursor(&cursor)?;
            Some(cursor)
        }
        None => None,
    };
    let ring = Keyring {
        current: dek.store_keys(),
        previous: previous.map(|p| p.store_keys()),
        epoch: 0,
    };
    let state = KeyState {
        header: header_bytes,
        kek,
        dek,
        seals,
        created_ms,
        rotation,
    };
    Ok((state, ring))
}

/// Whether the store pads its records (`meta/padding` = 1).
pub(crate) async fn read_padding(backend: &dyn Backend) -> Result<bool, Error> {
    match backend.get(META, meta_keys::PADDING.as_bytes()).await? {
        None => Ok(false),
        Some(v) if v == [0] => Ok(false),
        Some(v) if v == [1] => Ok(true),
        Some(_) => Err(Error::Corrupted("unknown padding mode".into())),
    }
}

async fn read_opt_u64(backend: &dyn Backend, key: &'static str) -> Result<Option<u64>, Error> {
    match backend.get(META, key.as_bytes()).await? {
        None => Ok(None),
        Some(bytes) => {
            let arr: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| Error::from(tresor_schema::SchemaError::MalformedMeta { key }))?;
            Ok(Some(u64::from_le_bytes(arr)))
        }
    }
}

/// Number of puts into sealed tables in `ops`: each is one AES-GCM seal under the value key.
fn seals_in(ops: &WriteBatch) -> u64 {
    // Operations on one table share its name (`WriteBatch`): the catalog is looked up once
    // per run of a table, not per operation.
    let mut last: Option<(&Arc<str>, bool)> = None;
    let mut seals = 0;
    for op in ops.ops() {
        let Op::Put { table, .. } = op else {
            continue;
        };
        let sealed = match last {
            Some((name, sealed)) if Arc::ptr_eq(name, table) => sealed,
            _ => {
                let sealed = catalog::table(table).map(|t| t.kind) == Some(TableKind::Sealed);
                last = Some((table, sealed));
                sealed
            }
        };
        seals += u64::from(sealed);
    }
    seals
}

impl Inner {
    /// A snapshot of the keys for reading.
    pub(crate) fn keyring(&self) -> Arc<Keyring> {
        // A poisoned lock means a panic while swapping an Arc, which cannot leave it torn.
        match self.keyring.read() {
            Ok(ring) => Arc::clone(&ring),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the keyring (writer lock held).
    pub(crate) fn set_keyring(&self, current: StoreKeys, previous: Option<StoreKeys>) {
        let mut slot = match self.keyring.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        let epoch = slot.epoch + 1;
        *slot = Arc::new(Keyring {
            current,
            previous,
            epoch,
        });
    }

    /// Commits `ops` with the store's durability, counting its seals: the new seal count is
    /// written in the same batch (`meta/seal_count`, one put per batch). Once the count
    /// reaches [`Options::seal_limit`], starts a key rotation in the background (when
    /// [`Options::background_rotation`] is on).
    pub(crate) async fn commit_locked(
        &self,
        writer: &mut WriterState,
        mut ops: WriteBatch,
    ) -> Result<(), Error> {
        writer.refresh(&*self.backend).await?;
        let counted = begin_commit(writer, &mut ops);
        let result = self.backend.commit(ops, self.options.durability).await;
        self.after_commit_locked(writer, result, counted).await
    }

    /// What follows a commit of a batch prepared by [`begin_commit`], applied or not: drops
    /// the cached typed records it wrote, and on success moves the seal count on (starting a
    /// key rotation at the limit) and clears `writer.stale`, which `begin_commit` set.
    ///
    /// # Errors
    /// The commit's error (then the counters are re-read before the next write); a rotation
    /// that cannot begin.
    pub(crate) async fn after_commit_locked(
        &self,
        writer: &mut WriterState,
        result: Result<(), tresor_backend::BackendError>,
        counted: Counted,
    ) -> Result<(), Error> {
        // After the commit (applied or not): no reader may keep or insert an older value.
        if !counted.typed.is_empty() {
            self.cache
                .invalidate(counted.typed.iter().map(Vec::as_slice));
        }
        if let Err(e) = result {
            // A failed commit is ambiguous (a failed fsync may have applied it): re-read the
            // counters before the next write.
            writer.stale = true;
            return Err(e.into());
        }
        writer.keys.seals = counted.seals;
        if self.options.background_rotation
            && writer.keys.rotation.is_none()
            && counted.seals >= self.options.seal_limit
        {
            self.begin_rotation_locked(writer).await?;
            self.spawn_rotation();
        }
        // The counters hold what the store holds (the caller sets `next_seq` right after,
        // without an await in between).
        writer.stale = false;
        Ok(())
    }
}

/// What [`Tresor::key_info`] reports: how the store is keyed and how much the key was used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// Version of the key header (`docs/FORMAT.md` 1.3): 1.
    pub header_version: u8,
    /// The KDF and its parameters ([`KdfParams::RawKey`] for a raw-key store).
    pub kdf: KdfParams,
    /// When the current data key was made, ms since the Unix epoch (`None` for a store
    /// created before this was recorded).
    pub key_created_ms: Option<i64>,
    /// AES-GCM seals made under the current value key.
    pub seals: u64,
    /// The seal count at which a rotation starts ([`Options::seal_limit`]).
    pub seal_limit: u64,
    /// Whether records are padded to Padmé lengths.
    pub padded: bool,
    /// A key rotation in progress, if any.
    pub rotation: Option<RotationStatus>,
}

impl Tresor {
    /// Changes the secret that unlocks the store: re-wraps the data key under `new` (a
    /// passphrase, with the KDF of [`Options::kdf`] and a fresh salt; or a raw key) after
    /// checking `current` against the store's key header.
    ///
    /// O(1): one KDF run for each secret and one write of `meta/key_header`, as a single atomic
    /// batch with [`Durability::Immediate`]; records, tokens and backups are untouched. After a
    /// crash exactly one of the two secrets opens the store. Backups taken before the change
    /// still need the old secret (they carry the old key header); backups taken after it need
    /// the new one. Also switches between passphrase and raw key.
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] if `current` does not unlock the store (nothing is written);
    /// [`Error::Crypto`] for a secret of the wrong kind or KDF parameters below the minimum;
    /// [`Error::Backend`] if the write fails (then the old secret still opens the store).
    pub async fn change_passphrase(&self, current: Secret, new: Secret) -> Result<(), Error> {
        let inner = &self.inner;
        let mut writer = inner.writer.lock().await;
        let header = KeyHeader::decode(&writer.keys.header)?;
        let kdf = inner.options.kdf;
        let (header, kek, dek) = tokio::task::spawn_blocking(move || {
            let dek = header.unlock(&current)?;
            let (header, kek) = KeyHeader::wrap_kek(&dek, &new, kdf)?;
            Ok::<_, tresor_crypto::CryptoError>((header, kek, dek))
        })
        .await??;
        // The header unlocked with `current` is the one this store runs on, so `dek` is the
        // current DEK; a mismatch would mean the in-memory state diverged from the file.
        if !constant_time_eq(dek.expose(), writer.keys.dek.expose()) {
            return Err(Error::Corrupted(
                "the key header changed under the store".into(),
            ));
        }
        let encoded = header.encode();
        let mut batch = WriteBatch::new();
        batch.put(META, meta_keys::KEY_HEADER, encoded.clone());
        inner.backend.commit(batch, Durability::Immediate).await?;
        writer.keys.header = encoded;
        writer.keys.kek = kek;
        Ok(())
    }

    /// How the store is keyed: header version, KDF and parameters, key age, seals under the
    /// current key, padding, and a rotation in progress.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the stored key header does not decode (cannot happen for a store
    /// that opened).
    pub async fn key_info(&self) -> Result<KeyInfo, Error> {
        let inner = &self.inner;
        let writer = inner.writer.lock().await;
        let header = KeyHeader::decode(&writer.keys.header)?;
        Ok(KeyInfo {
            header_version: header.version(),
            kdf: header.kdf(),
            key_created_ms: writer.keys.created_ms,
            seals: writer.keys.seals,
            seal_limit: inner.options.seal_limit,
            padded: inner.padded,
            rotation: writer.keys.rotation.as_deref().map(crate::rotation::status),
        })
    }
}

impl Tresor {
    /// Adds `n` seals made outside the writer (a restore re-seals every record) to the count.
    pub(crate) async fn add_seals(&self, n: u64) -> Result<(), Error> {
        let inner = &self.inner;
        let mut writer = inner.writer.lock().await;
        let seals = writer.keys.seals + n;
        let mut batch = WriteBatch::new();
        batch.put(META, meta_keys::SEAL_COUNT, seals.to_le_bytes().to_vec());
        inner.backend.commit(batch, Durability::Immediate).await?;
        writer.keys.seals = seals;
        Ok(())
    }
}

/// Constant-time equality of two 32-byte keys (`ring`'s comparison, via `tresor-crypto`).
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    tresor_crypto::constant_time_eq(a, b)
}

/// What [`begin_commit`] noted of a batch about to be committed.
pub(crate) struct Counted {
    /// The seal count once the batch is committed.
    seals: u64,
    /// The typed record keys it writes (their cached values are dropped after the commit).
    typed: Vec<Vec<u8>>,
}

/// Prepares `ops` for its commit: adds the seal count it brings the store to
/// (`meta/seal_count`, when it seals anything), notes the typed records it writes, and marks
/// the writer's counters in doubt until [`Inner::after_commit_locked`] has done the commit's
/// bookkeeping (a caller that stops waiting leaves the commit running, and the next writer
/// must read the counters back: `WriterState::refresh`).
pub(crate) fn begin_commit(writer: &mut WriterState, ops: &mut WriteBatch) -> Counted {
    writer.stale = true;
    let seals = writer.keys.seals + seals_in(ops);
    if seals != writer.keys.seals {
        ops.put(META, meta_keys::SEAL_COUNT, seals.to_le_bytes().to_vec());
    }
    let typed: Vec<Vec<u8>> = ops
        .ops()
        .iter()
        .filter_map(|op| match op {
            Op::Put { table, key, .. } | Op::Delete { table, key }
                if &**table == catalog::TYPED_RECORDS =>
            {
                Some(key.clone())
            }
            _ => None,
        })
        .collect();
    Counted { seals, typed }
}

#[cfg(test)]
mod tests {
    use super::KDF_RUNS;
    use crate::Tresor;
    use tresor_crypto::Secret;

    fn kdf_runs(passphrase: &str) -> usize {
        let runs = KDF_RUNS.lock().unwrap_or_else(|e| e.into_inner());
        runs.iter()
            .filter(|p| p.as_slice() == passphrase.as_bytes())
            .count()
    }

    /// Creating a store derives its KEK once (the open that follows reuses it); every open
    /// with the passphrase derives it again.
    #[tokio::test]
    async fn creating_a_store_runs_the_kdf_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let pass = "keys::tests::creating_a_store_runs_the_kdf_once";
        let store = Tresor::create(&path, Secret::from(pass)).await.unwrap();
        assert_eq!(kdf_runs(pass), 1);
        drop(store);
        let store = Tresor::open(&path, Secret::from(pass)).await.unwrap();
        assert_eq!(kdf_runs(pass), 2);
        drop(store);
        assert!(matches!(
            Tresor::open(&path, Secret::from("another passphrase")).await,
            Err(crate::Error::WrongPassphrase)
        ));
    }
}
