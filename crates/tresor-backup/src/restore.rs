//! Restoring a backup into an empty backend.

use std::io::Read;

use tresor_backend::{Backend, Durability, WriteBatch};
use tresor_crypto::Secret;
use tresor_schema::catalog::{TABLES, TableKind};
use tresor_schema::sealed;

use crate::reader::{Chunk, ChunkReader, for_each_entry};
use crate::{BackupError, BackupSummary};

/// Restores the backup read from `input` into `target`, which must be empty, and returns the
/// backup's summary.
///
/// Unlocks the backup's key header with `secret` (passphrase or raw key) (a new device needs nothing else: the
/// restored `meta` table holds the same key header, so the restored store opens with the same
/// passphrase and has the same data key and index tokens). Runs every check of [`crate::verify`]
/// while writing: each data chunk becomes one write batch in which sealed-table values are
/// re-sealed under a fresh nonce with [`sealed::seal_bytes`]; batches are committed with
/// [`Durability::Eventual`], one chunk behind the reading, and the last one with
/// [`Durability::Immediate`] only after the trailer, the stream digest and the end of the
/// input have been checked. Memory stays bounded by about two chunks. `input` is read with
/// blocking calls.
///
/// **Schema versions:** every table is restored as it was backed up, keys and layout
/// included, and `meta` (with `schema_version`) too: a backup of a schema-v3 store restores
/// to a v3 store (records under message tokens, `msg_by_conversation`, index values that are
/// tokens), which the facade migrates to v4 when it opens it; a backup of a v4 store restores
/// to a v4 store (records under record keys, `message_ids`).
///
/// **Atomicity contract:** when this returns an error, `target` may hold part of the backup.
/// Making the store visible only once the restore has succeeded is the caller's job: the
/// `tresor` facade restores into a temporary file and renames it into place on success.
///
/// # Errors
/// - [`BackupError::TargetNotEmpty`] if a catalog table of `target` holds entries (checked
///   before anything is read or written; `target` is left unchanged);
/// - every error of [`crate::verify`], including [`BackupError::WrongPassphrase`] and
///   [`BackupError::UnsupportedSchema`];
/// - [`BackupError::Schema`] if re-sealing fails (random generator), [`BackupError::Backend`]
///   if a commit fails.
pub async fn restore<R: Read + Send>(
    input: R,
    secret: &Secret,
    target: &dyn Backend,
) -> Result<BackupSummary, BackupError> {
    for spec in TABLES {
        let entries = target.len(spec.name).await?;
        if entries > 0 {
            return Err(BackupError::TargetNotEmpty {
                table: spec.name,
                entries,
            });
        }
    }
    let (mut reader, keys) = ChunkReader::open(input, secret)?;
    let mut tally = crate::check::Tally::new();
    let mut pending: Option<WriteBatch> = None;
    loop {
        match reader.next_chunk()? {
            Chunk::Data { index, plaintext } => {
                let mut batch = WriteBatch::new();
                let expect = reader.expect();
                for_each_entry(
                    &mut tally,
                    &expect,
                    index,
                    &plaintext,
                    |spec, key, value| {
                        let stored = if spec.kind == TableKind::Sealed {
                            sealed::seal_bytes(&keys, spec.name, key, value)
                                .map_err(BackupError::Schema)?
                        } else {
                            value.to_vec()
                        };
                        batch.put(spec.name, key, stored);
                        Ok(())
                    },
                )?;
                drop(plaintext);
                if let Some(previous) = pending.replace(batch) {
                    target.commit(previous, Durability::Eventual).await?;
                }
            }
            Chunk::Final { trailer, digest } => {
                let summary = reader.finish(&tally, &trailer, &digest)?;
                target
                    .commit(pending.unwrap_or_default(), Durability::Immediate)
                    .await?;
                return Ok(summary);
            }
        }
    }
}
