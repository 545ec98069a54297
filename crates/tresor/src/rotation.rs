//! Key rotation: a new data key, every record re-sealed and every token re-blinded, online.
//!
//! 1. **Begin** (one atomic batch, [`Durability::Immediate`]): a fresh DEK is wrapped under the
//!    same KEK as the old one (`meta/key_header`), the old DEK is wrapped under the new one
//!    (`meta/rotation_previous_dek`), the cursor starts at the `typed_records` table
//!    (`meta/rotation_cursor`), the seal count restarts at 0 and `meta/key_created_ms` is set.
//!    From then on every write uses the new keys.
//! 2. **Steps** (each one atomic batch under the writer lock, so writes interleave between
//!    them): a forward scan of at most `batch` entries after the cursor in `typed_records`
//!    (whose index entries in `typed_index` move with each record), then `messages`, then
//!    `conversations`, then `peers`. Typed tables go first: typed reads and writes during a
//!    rotation first finish that part (`table.rs`), so they only ever see one generation. An entry that opens under the new value key is already
//!    migrated (written since the rotation began, or migrated earlier and moved ahead of the
//!    cursor by its new token) and skipped. Any other entry is opened under the old key, and
//!    deleted together with its index entries under the old tokens, then written under its new
//!    key (a token; for a message, its record key under the new conversation token), re-sealed
//!    with a fresh nonce, with its index entries under the new tokens. The cursor
//!    and the seal count are written in the same batch, so a crash resumes at the last
//!    committed batch.
//! 3. **End** (in the batch that finds the end of `peers`): the cursor and the wrapped old DEK
//!    are deleted: the old key is retired.
//!
//! Invariants at every committed batch: a message lives in exactly one generation (record and
//! all its index entries under the same key); a conversation or peer summary lives in exactly
//! one generation and carries the total count. Readers look under the new token and then the
//! old one, and merge index scans of both generations (`messages.rs`).

use std::ops::Bound;

use tresor_backend::{Direction, Durability, KeyRange, WriteBatch};
use tresor_crypto::{DataKey, KeyHeader};
use tresor_schema::catalog::{
    self, CONVERSATIONS, MESSAGES, META, PEERS, TYPED_INDEX, TYPED_RECORDS, meta_keys,
};
use tresor_schema::messages::{
    conversation_token, index_entries, peer_token, record_key, seal_message_with, tokens,
};
use tresor_schema::typed::{Envelope, pk_token, seal_envelope};
use tresor_schema::{ConversationSummary, PeerSummary, codec, sealed};

use crate::keys::now_ms;
use crate::store::{Inner, WriterState};
use crate::{Error, Tresor};

/// Catalog positions of the tables a rotation migrates, in order: the typed records first
/// (so typed-table code never sees two key generations: `table.rs`), then `messages`,
/// `conversations`, `peers`. (A v1 store's rotation cursor never names the typed table.)
const ORDER: [u8; 4] = [catalog::TYPED_RECORDS_POSITION, 1, 2, 3];

/// Whether a rotation in progress has not finished migrating the typed tables.
pub(crate) fn typed_pending(w: &WriterState) -> bool {
    w.keys.rotation.as_ref().and_then(|c| c.first()) == Some(&catalog::TYPED_RECORDS_POSITION)
}
/// Entries examined per rotation batch by [`Tresor::rotate_key`] and the background task.
pub const ROTATION_BATCH: usize = 512;

/// A key rotation in progress, as [`crate::KeyInfo`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotationStatus {
    /// The table being migrated: `typed_records`, `messages`, `conversations` or `peers` (in
    /// that order).
    pub table: &'static str,
}

/// What one rotation batch did ([`Tresor::rotate_key_with`] reports each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RotationStep {
    /// Entries read by the batch.
    pub examined: u64,
    /// Entries re-sealed under the new key (the rest were already under it).
    pub migrated: u64,
    /// Whether the rotation is complete (the old key is retired).
    pub done: bool,
}

/// What [`Tresor::rotate_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RotationSummary {
    /// Whether this call began the rotation (false: it completed one already in progress).
    pub began: bool,
    /// Records (messages, conversation and peer summaries) re-sealed under the new key.
    pub migrated: u64,
    /// Atomic batches committed.
    pub batches: u64,
}

pub(crate) fn check_cursor(cursor: &[u8]) -> Result<(), Error> {
    match cursor.first() {
        Some(t) if ORDER.contains(t) => Ok(()),
        _ => Err(Error::Corrupted("malformed rotation cursor".into())),
    }
}

pub(crate) fn status(cursor: &[u8]) -> RotationStatus {
    let table = cursor
        .first()
        .and_then(|&t| catalog::TABLES.get(usize::from(t)))
        .map_or(MESSAGES, |spec| spec.name);
    RotationStatus { table }
}

impl Inner {
    /// Begins a rotation (writer lock held). Returns false if one is already in progress.
    pub(crate) async fn begin_rotation_locked(&self, w: &mut WriterState) -> Result<bool, Error> {
        if w.keys.rotation.is_some() {
            return Ok(false);
        }
        let new_dek = DataKey::generate()?;
        let header = KeyHeader::decode(&w.keys.header)?
            .rewrap(&w.keys.kek, &new_dek)?
            .encode();
        let wrapped_previous = new_dek.wrap_previous(&w.keys.dek)?;
        let created = now_ms();
        let cursor = vec![ORDER[0]];
        let mut batch = WriteBatch::new();
        batch.put(META, meta_keys::KEY_HEADER, header.clone());
        batch.put(META, meta_keys::ROTATION_PREVIOUS_DEK, wrapped_previous);
        batch.put(META, meta_keys::ROTATION_CURSOR, cursor.clone());
        batch.put(META, meta_keys::SEAL_COUNT, 0u64.to_le_bytes().to_vec());
        batch.put(
            META,
            meta_keys::KEY_CREATED_MS,
            created.to_le_bytes().to_vec(),
        );
        self.backend.commit(batch, Durability::Immediate).await?;
        let old = std::mem::replace(&mut w.keys.dek, new_dek);
        w.keys.header = header;
        w.keys.seals = 0;
        w.keys.created_ms = Some(created);
        w.keys.rotation = Some(cursor);
        self.set_keyring(w.keys.dek.store_keys(), Some(old.store_keys()));
        Ok(true)
    }

    /// Migrates up to `max` entries after the cursor as one atomic batch (writer lock held).
    pub(crate) async fn rotation_step_locked(
        &self,
        w: &mut WriterState,
        max: usize,
    ) -> Result<RotationStep, Error> {
        let Some(cursor) = w.keys.rotation.clone() else {
            return Ok(RotationStep {
                done: true,
                ..RotationStep::default()
            });
        };
        check_cursor(&cursor)?;
        let max = max.max(1);
        let ring = self.keyring();
        let (cur, prev) = match &ring.previous {
            Some(prev) => (&ring.current, prev),
            None => return Err(Error::Corrupted("rotation without a previous key".into())),
        };
        let table_index = cursor[0];
        let table = catalog::TABLES[usize::from(table_index)].name;
        let start = if cursor.len() == 1 {
            Bound::Unbounded
        } else {
            Bound::Excluded(cursor[1..].to_vec())
        };
        let page = self
            .backend
            .scan(
                table,
                KeyRange {
                    start,
                    end: Bound::Unbounded,
                },
                Direction::Forward,
                max,
            )
            .await?;
        let mut deletes = WriteBatch::new();
        let mut puts = WriteBatch::new();
        let mut migrated = 0;
        for (key, value) in &page {
            if sealed::open_bytes(cur, table, key, value).is_ok() {
                continue;
            }
            let plain = sealed::open_bytes(prev, table, key, value)?;
            migrated += 1;
            deletes.delete(table, key.clone());
            match table {
                TYPED_RECORDS => {
                    let env: Envelope = codec::decode(&plain)?;
                    for (_, k) in env.index_keys(prev) {
                        deletes.delete(TYPED_INDEX, k);
                    }
                    let rk = env.record_key(cur);
                    let pk = pk_token(cur, &env.table, &env.pk);
                    for (_, k) in env.index_keys(cur) {
                        puts.put(TYPED_INDEX, k, pk.to_vec());
                    }
                    let sealed = seal_envelope(cur, &rk, &env, self.padded)?;
                    puts.put(TYPED_RECORDS, rk, sealed);
                }
                MESSAGES => {
                    let m = codec::decode_message(&plain)?;
                    for (t, k, _) in index_entries(&m, &tokens(prev, &m)) {
                        deletes.delete(t, k);
                    }
                    let t = tokens(cur, &m);
                    let rk = record_key(&m, &t);
                    let sealed = seal_message_with(cur, &rk, &m, self.padded)?;
                    puts.put(MESSAGES, rk, sealed);
                    for (table, k, v) in index_entries(&m, &t) {
                        puts.put(table, k, v);
                    }
                }
                CONVERSATIONS => {
                    let c: ConversationSummary = codec::decode(&plain)?;
                    let t = conversation_token(cur, &c.id);
                    puts.put(
                        table,
                        t,
                        sealed::seal_with(cur, table, &t, &c, self.padded)?,
                    );
                }
                _ => {
                    let p: PeerSummary = codec::decode(&plain)?;
                    let t = peer_token(cur, &p.id);
                    puts.put(
                        PEERS,
                        t,
                        sealed::seal_with(cur, PEERS, &t, &p, self.padded)?,
                    );
                }
            }
        }
        let next = if page.len() < max {
            ORDER
                .iter()
                .position(|&t| t == table_index)
                .and_then(|at| ORDER.get(at + 1))
                .map(|&t| vec![t])
        } else {
            let mut next = vec![table_index];
            if let Some((last, _)) = page.last() {
                next.extend_from_slice(last);
            }
            Some(next)
        };
        let mut ops = deletes;
        ops.extend(puts);
        match &next {
            Some(c) => ops.put(META, meta_keys::ROTATION_CURSOR, c.clone()),
            None => {
                ops.delete(META, meta_keys::ROTATION_CURSOR);
                ops.delete(META, meta_keys::ROTATION_PREVIOUS_DEK);
            }
        }
        self.commit_locked(w, ops).await?;
        let done = next.is_none();
        w.keys.rotation = next;
        if done {
            self.set_keyring(w.keys.dek.store_keys(), None);
        }
        Ok(RotationStep {
            examined: page.len() as u64,
            migrated,
            done,
        })
    }

    /// Runs a rotation in progress to its end (writer lock held). Returns the batches run.
    pub(crate) async fn finish_rotation_locked(&self, w: &mut WriterState) -> Result<u64, Error> {
        let mut batches = 0;
        while w.keys.rotation.is_some() {
            self.rotation_step_locked(w, ROTATION_BATCH).await?;
            batches += 1;
        }
        Ok(batches)
    }

    /// Drives a rotation in progress to its end in a background task, one batch at a time,
    /// taking the writer lock per batch. The task holds only a weak reference between batches:
    /// dropping the store stops it (the rotation resumes at the next open). An error stops it
    /// too; the rotation then resumes at the next open or [`Tresor::rotate_key`].
    pub(crate) fn spawn_rotation(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = self.me.clone();
        runtime.spawn(async move {
            loop {
                let Some(inner) = me.upgrade() else { return };
                let step = {
                    let mut w = inner.writer.lock().await;
                    inner.rotation_step_locked(&mut w, ROTATION_BATCH).await
                };
                drop(inner);
                match step {
                    Ok(s) if !s.done => tokio::task::yield_now().await,
                    _ => return,
                }
            }
        });
    }
}

impl Tresor {
    /// Replaces the data key: begins a key rotation (unless one is in progress) and runs it to
    /// the end, re-sealing every record under fresh subkeys and re-blinding every token, in
    /// atomic batches of [`ROTATION_BATCH`] entries. Reads and writes keep working between
    /// batches; a crash resumes at the last committed batch (at open, or at the next call).
    /// The secret is unchanged: the new key is wrapped under the same KEK.
    ///
    /// Backups taken before the rotation restore (with the same secret) to a store under the
    /// old key, which is independent of this one.
    ///
    /// # Errors
    /// [`Error::Backend`] if a batch cannot be committed (the rotation stays in progress and
    /// resumes later); [`Error::Corrupted`] if a record opens under neither key.
    pub async fn rotate_key(&self) -> Result<RotationSummary, Error> {
        self.rotate_key_with(ROTATION_BATCH, |_| {}).await
    }

    /// As [`Tresor::rotate_key`], with `batch` entries per atomic batch (at least 1) and
    /// `progress` called after every batch.
    ///
    /// # Errors
    /// As [`Tresor::rotate_key`].
    pub async fn rotate_key_with(
        &self,
        batch: usize,
        mut progress: impl FnMut(&RotationStep) + Send,
    ) -> Result<RotationSummary, Error> {
        let inner = &self.inner;
        let began = {
            let mut w = inner.writer.lock().await;
            inner.begin_rotation_locked(&mut w).await?
        };
        let mut summary = RotationSummary {
            began,
            ..RotationSummary::default()
        };
        loop {
            let step = {
                let mut w = inner.writer.lock().await;
                inner.rotation_step_locked(&mut w, batch).await?
            };
            summary.migrated += step.migrated;
            summary.batches += 1;
            progress(&step);
            if step.done {
                return Ok(summary);
            }
        }
    }

    /// Begins a key rotation without running it: from now on every write uses a fresh data
    /// key, and [`Tresor::rotation_step`] (or the background task, or
    /// [`Tresor::rotate_key`]) migrates the existing records. Returns false if a rotation is
    /// already in progress (nothing changes then).
    ///
    /// # Errors
    /// [`Error::Backend`] if the first batch cannot be committed (then nothing changed).
    pub async fn begin_rotation(&self) -> Result<bool, Error> {
        let mut w = self.inner.writer.lock().await;
        self.inner.begin_rotation_locked(&mut w).await
    }

    /// Runs one batch of the rotation in progress: at most `batch` entries (at least 1), one
    /// atomic write. Returns `done: true` once the old key is retired (or if no rotation is in
    /// progress). Lets an application migrate in its idle time.
    ///
    /// # Errors
    /// As [`Tresor::rotate_key`].
    pub async fn rotation_step(&self, batch: usize) -> Result<RotationStep, Error> {
        let mut w = self.inner.writer.lock().await;
        self.inner.rotation_step_locked(&mut w, batch).await
    }

    /// At open: resumes a rotation interrupted by a crash, or begins one if the seal count
    /// has reached the limit, in the background (if [`crate::Options::background_rotation`]).
    pub(crate) async fn resume_rotation(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if !inner.options.background_rotation {
            return Ok(());
        }
        let mut w = inner.writer.lock().await;
        if w.keys.rotation.is_none() && w.keys.seals >= inner.options.seal_limit {
            inner.begin_rotation_locked(&mut w).await?;
        }
        if w.keys.rotation.is_some() {
            inner.spawn_rotation();
        }
        Ok(())
    }
}
