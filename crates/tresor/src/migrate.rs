//! Schema migrations: numbered steps run at open, in bounded atomic batches, resumable.
//!
//! A store of schema version `v < SCHEMA_VERSION` is migrated step by step (`v → v+1`) before
//! [`Tresor::open`] returns. Each batch commits its writes together with the progress cursor
//! `meta/migration_cursor` (`u32 LE target version ‖ last key done`); the last batch of a step
//! writes the new `meta/schema_version` and deletes the cursor. A crash resumes after the last
//! committed batch. The steps are listed in `crates/tresor-schema/migrations/NOTES.md`.
//!
//! - **v1 → v2**: the typed tables (`typed_records`, `typed_index`) appear, and the
//!   `conversation` typed table is populated from the existing messages (participants,
//!   created, last activity).
//! - **v2 → v3**: extended messages. Nothing to write: message states are sparse, and a
//!   message without a `message_state` record reads as its default state (outgoing,
//!   `Delivered`). (Until tresor 0.1's sparse states, this step wrote a default record for
//!   every message; stores migrated then keep those records, which read the same.)
//! - **v3 → v4**: message records move from their message token to their record key
//!   (conversation token ‖ order key), `message_ids` maps each message token to that key,
//!   `msg_by_peer` and `msg_by_time` hold the conversation token, and `msg_by_conversation`
//!   entries are deleted (the record key replaces them). One forward pass over `messages`; a
//!   record whose key is already a record key (32 bytes: moved by an earlier batch, or restored
//!   from a backup by v4 code) is skipped, so every batch is idempotent.
//! - **v4 → v5**: message records are written in the compact record format 3
//!   (`tresor_schema::compact`). Nothing to write: records of formats 1 and 2 read as they
//!   are, and are rewritten in format 3 when a save, a key rotation or a rekey writes them.

use std::ops::Bound;

use tresor_backend::{Direction, Entry, KeyRange, WriteBatch};
use tresor_crypto::TOKEN_LEN;
use tresor_schema::catalog::{MESSAGES, META, meta_keys};
use tresor_schema::messages::{index_entries, record_key, seal_message_with, tokens, v3_entries};
use tresor_schema::{Message, version};

use crate::store::{Inner, WriterState};
use crate::table::TypedBatch;
use crate::{Error, Tresor};

/// Entries read per migration batch.
pub const MIGRATION_BATCH: usize = 512;

/// One migration step, as [`Tresor::pending_migrations`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationStep {
    /// The version it migrates to (from `to - 1`).
    pub to: u32,
    /// What it does.
    pub description: &'static str,
}

/// Every migration step this code knows, oldest first.
const STEPS: &[MigrationStep] = &[
    MigrationStep {
        to: 2,
        description: "typed tables; the conversation table populated from the messages",
    },
    MigrationStep {
        to: 3,
        description: "extended messages (no write: a message without a state reads as delivered)",
    },
    MigrationStep {
        to: 4,
        description: "message records keyed by conversation and time; the message_ids index",
    },
    MigrationStep {
        to: 5,
        description: "compact message records (format 3) for new writes (no write: older records read as they are)",
    },
];

/// The steps that migrate a store of version `found` to this code's version.
pub fn steps_from(found: u32) -> Vec<MigrationStep> {
    STEPS.iter().filter(|s| s.to > found).cloned().collect()
}

impl Inner {
    /// Migrates the store from `found` to the current schema version (writer lock held), in
    /// batches of `batch` entries. Returns the batches committed.
    pub(crate) async fn migrate_locked(
        &self,
        w: &mut WriterState,
        found: u32,
        batch: usize,
    ) -> Result<u64, Error> {
        let mut batches = 0;
        let mut at = found;
        while at < version::SCHEMA_VERSION {
            let to = at + 1;
            loop {
                let done = match to {
                    2 => self.message_pass_locked(w, to, batch.max(1)).await?,
                    3 => self.set_version_locked(w, to).await?,
                    4 => self.record_key_pass_locked(w, to, batch.max(1)).await?,
                    5 => self.set_version_locked(w, to).await?,
                    _ => return Err(Error::Corrupted(format!("no migration to v{to}"))),
                };
                batches += 1;
                if done {
                    break;
                }
            }
            at = to;
        }
        Ok(batches)
    }

    /// A step with nothing to migrate: writes the new version (and drops a cursor an older
    /// tresor left mid-step). Returns true (the step is complete).
    async fn set_version_locked(&self, w: &mut WriterState, to: u32) -> Result<bool, Error> {
        let mut ops = WriteBatch::new();
        ops.put(
            META,
            meta_keys::SCHEMA_VERSION,
            version::encode(to).to_vec(),
        );
        ops.delete(META, meta_keys::MIGRATION_CURSOR);
        self.commit_locked(w, ops).await?;
        Ok(true)
    }

    /// One batch of a step that is one forward pass over `messages` (v1 → v2: the next
    /// messages after the cursor folded into their conversations). Returns true when the step
    /// is complete.
    async fn message_pass_locked(
        &self,
        w: &mut WriterState,
        to: u32,
        max: usize,
    ) -> Result<bool, Error> {
        let (ring, page) = self.migration_page(w, to, max).await?;
        let mut messages: Vec<Message> = Vec::with_capacity(page.len());
        for (key, value) in &page {
            // During a key rotation (begun under v1) a message may be under either key.
            messages.push(crate::messages::open_any(&ring, key, value)?.0);
        }
        let mut ops = WriteBatch::new();
        let refs: Vec<&Message> = messages.iter().collect();
        crate::conversations::fold_messages(
            self,
            &ring.current,
            &mut TypedBatch::default(),
            &refs,
            &mut ops,
        )
        .await?;
        self.finish_migration_batch(w, to, max, &page, ops).await
    }

    /// The keys and the next `max` entries of `messages` after the migration cursor of the
    /// step to `to`, once a rotation in progress has finished its typed tables (writer lock
    /// held).
    async fn migration_page(
        &self,
        w: &mut WriterState,
        to: u32,
        max: usize,
    ) -> Result<(std::sync::Arc<crate::keys::Keyring>, Vec<Entry>), Error> {
        self.finish_typed_rotation_locked(w).await?;
        let ring = self.keyring();
        let cursor = self
            .backend
            .get(META, meta_keys::MIGRATION_CURSOR.as_bytes())
            .await?;
        let start = match &cursor {
            Some(c) if c.len() >= 4 && c[..4] == to.to_le_bytes() => {
                if c.len() == 4 {
                    Bound::Unbounded
                } else {
                    Bound::Excluded(c[4..].to_vec())
                }
            }
            Some(_) => return Err(Error::Corrupted("malformed migration cursor".into())),
            None => Bound::Unbounded,
        };
        let page = self
            .backend
            .scan(
                MESSAGES,
                KeyRange {
                    start,
                    end: Bound::Unbounded,
                },
                Direction::Forward,
                max,
            )
            .await?;
        Ok((ring, page))
    }

    /// Commits `ops` of one batch of a message pass with the cursor after `page` or, when
    /// `page` was the last (shorter than `max`), with the new version. Returns whether the
    /// step is complete.
    async fn finish_migration_batch(
        &self,
        w: &mut WriterState,
        to: u32,
        max: usize,
        page: &[Entry],
        mut ops: WriteBatch,
    ) -> Result<bool, Error> {
        let done = page.len() < max;
        if done {
            ops.put(
                META,
                meta_keys::SCHEMA_VERSION,
                version::encode(to).to_vec(),
            );
            ops.delete(META, meta_keys::MIGRATION_CURSOR);
        } else {
            let mut c = to.to_le_bytes().to_vec();
            if let Some((last, _)) = page.last() {
                c.extend_from_slice(last);
            }
            ops.put(META, meta_keys::MIGRATION_CURSOR, c);
        }
        self.commit_locked(w, ops).await?;
        Ok(done)
    }

    /// One batch of v3 → v4: the next records after the cursor that still live under their
    /// message token move to their record key under the current keys, with their index
    /// entries (during a key rotation begun under v3, a record under the previous keys moves
    /// to the current ones, as the rotation would move it). Returns true when the step is
    /// complete.
    async fn record_key_pass_locked(
        &self,
        w: &mut WriterState,
        to: u32,
        max: usize,
    ) -> Result<bool, Error> {
        let (ring, page) = self.migration_page(w, to, max).await?;
        let mut ops = WriteBatch::new();
        for (key, value) in &page {
            if key.len() != TOKEN_LEN {
                continue; // already under its record key
            }
            let (m, previous) = crate::messages::open_any(&ring, key, value)?;
            for (table, k) in v3_entries(&m, &tokens(ring.generation(previous), &m)) {
                ops.delete(table, k);
            }
            let t = tokens(&ring.current, &m);
            let rk = record_key(&m, &t);
            let sealed = seal_message_with(&ring.current, &rk, &m, self.padded)?;
            ops.put(MESSAGES, rk, sealed);
            for (table, k, v) in index_entries(&m, &t) {
                ops.put(table, k, v);
            }
        }
        self.finish_migration_batch(w, to, max, &page, ops).await
    }
}

impl Tresor {
    /// The schema version of the store file at `path` (clear metadata: no secret needed, and
    /// nothing is migrated). For `tresor migrate --dry-run`.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no file; [`Error::NotAStore`] if it has no schema
    /// version; [`Error::Backend`] if it cannot be opened.
    pub async fn schema_version_at(path: impl AsRef<std::path::Path>) -> Result<u32, Error> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            return Err(Error::NotFound(path));
        }
        let backend = crate::engine::open(
            crate::BackendKind::default(),
            path,
            false,
            tresor_redb::RedbConfig::default(),
        )
        .await?;
        let found = backend
            .get(META, meta_keys::SCHEMA_VERSION.as_bytes())
            .await;
        // Closing a file backend joins its writer thread: off the async threads.
        tokio::task::spawn_blocking(move || drop(backend)).await?;
        Ok(version::decode(&found?.ok_or(Error::NotAStore)?)?)
    }

    /// The migration steps a store of schema version `found` needs (empty if none): what
    /// `tresor migrate --dry-run` shows. Opening a store runs them.
    pub fn pending_migrations(found: u32) -> Vec<MigrationStep> {
        steps_from(found)
    }
}
