//! Creating a backup: stream every catalog table through sealed chunks into a writer.

use std::io::Write;
use std::ops::Bound;

use tresor_backend::{Backend, Direction, KeyRange, Snapshot};
use tresor_crypto::{KeyHeader, SealingKey, StoreKeys};
use tresor_schema::catalog::{TABLES, TableKind};
use tresor_schema::{sealed, version::SCHEMA_VERSION};
use zeroize::Zeroizing;

use crate::check::{Expect, Invalid, Tally};
use crate::format::{
    self, BACKUP_ID_LEN, CHUNK_TARGET, DIGEST_LEN, Header, MAX_CHUNK_PLAINTEXT, Trailer,
};
use crate::{BackupError, BackupSummary};

/// Most entries fetched per `scan` call.
const PAGE: usize = 1024;
/// Fewest entries fetched per `scan` call.
const MIN_PAGE: usize = 16;
/// Entries of the first page of each table, before their size is known.
const FIRST_PAGE: usize = 256;
/// Target size of a page in bytes: the page limit adapts to the entry size seen so far, so
/// a page of large records stays near 1 MiB.
const PAGE_BYTES: usize = 1024 * 1024;

/// Writes a backup of every table of `backend` to `out` and returns its summary.
///
/// Tables are read in [`tresor_schema::catalog::TABLES`] order with paged forward scans (up to
/// 1,024 entries or about 1 MiB per page, each page starting after the last key of the
/// previous one); sealed-table values are opened with `keys` and written as plaintext into
/// chunks sealed under [`StoreKeys::backup_key`] of a fresh random backup id. `key_header` is
/// the store's encoded [`KeyHeader`] (it must equal the `meta` table's `key_header`);
/// `created_ms` is recorded in the header as is. Memory stays bounded (a page and about two
/// chunks, a few MiB) whatever the store size. `out` is written with blocking calls and
/// flushed at the end; on error it holds a partial backup that the caller should delete.
///
/// Everything is read from one snapshot of `backend` ([`Backend::snapshot`]) taken first:
/// writers go on meanwhile, and the backup holds exactly the snapshot's state.
///
/// # Errors
/// - [`BackupError::MalformedHeader`] if `key_header` does not decode as a [`KeyHeader`];
/// - [`BackupError::KeyHeaderMismatch`] if the `meta` table has no `key_header` or another one;
/// - [`BackupError::Schema`] if a sealed record does not open with `keys` (wrong keys or a
///   corrupted store);
/// - [`BackupError::InvalidEntry`] if an entry does not fit its table (a record that does not
///   decode, an index value that is not a token or a message record key, a message record
///   not under its record key, a schema version other than [`SCHEMA_VERSION`]);
/// - [`BackupError::EntryTooLarge`] for an entry over 64 MiB;
/// - [`BackupError::Backend`], [`BackupError::Io`], [`BackupError::Crypto`] when the store,
///   the output or the random generator fails.
pub async fn create<W: Write + Send>(
    backend: &dyn Backend,
    keys: &StoreKeys,
    key_header: &[u8],
    created_ms: i64,
    out: W,
) -> Result<BackupSummary, BackupError> {
    create_with_chunk_target(backend, keys, key_header, created_ms, out, CHUNK_TARGET).await
}

/// [`create`] from a snapshot taken by the caller (the facade takes it under its writer lock,
/// with no key rotation in progress, and releases the lock before the backup is read).
///
/// # Errors
/// As [`create`].
pub async fn create_from_snapshot<W: Write + Send>(
    snapshot: &dyn Snapshot,
    keys: &StoreKeys,
    key_header: &[u8],
    created_ms: i64,
    out: W,
) -> Result<BackupSummary, BackupError> {
    write_backup(snapshot, keys, key_header, created_ms, out, CHUNK_TARGET).await
}

/// [`create`] with a chosen data-chunk plaintext target instead of 1 MiB, so tests can make
/// backups of many chunks from small stores. Not part of the stable API.
///
/// # Errors
/// As [`create`].
#[doc(hidden)]
pub async fn create_with_chunk_target<W: Write + Send>(
    backend: &dyn Backend,
    keys: &StoreKeys,
    key_header: &[u8],
    created_ms: i64,
    out: W,
    chunk_target: usize,
) -> Result<BackupSummary, BackupError> {
    let snapshot = backend.snapshot().await?;
    write_backup(&*snapshot, keys, key_header, created_ms, out, chunk_target).await
}

async fn write_backup<W: Write + Send>(
    backend: &dyn Snapshot,
    keys: &StoreKeys,
    key_header: &[u8],
    created_ms: i64,
    out: W,
    chunk_target: usize,
) -> Result<BackupSummary, BackupError> {
    KeyHeader::decode(key_header).map_err(|_| BackupError::MalformedHeader {
        reason: "key header does not decode",
    })?;
    let chunk_target = chunk_target.clamp(1, MAX_CHUNK_PLAINTEXT);
    let mut backup_id = [0u8; BACKUP_ID_LEN];
    tresor_crypto::random_bytes(&mut backup_id).map_err(BackupError::Crypto)?;
    let header = Header {
        backup_id,
        created_ms,
        schema_version: SCHEMA_VERSION,
        key_header: key_header.to_vec(),
    };
    let header_bytes = header.encode()?;
    let mut sink = ChunkSink {
        out,
        bytes: 0,
        hasher: blake3::Hasher::new(),
        key: keys.backup_key(&backup_id),
        header_hash: *blake3::hash(&header_bytes).as_bytes(),
        next_index: 0,
    };
    sink.write_hashed(&header_bytes)?;

    let expect = Expect {
        key_header,
        schema_version: SCHEMA_VERSION,
    };
    let mut tally = Tally::new();
    let mut buf = Zeroizing::new(Vec::with_capacity(chunk_target.min(CHUNK_TARGET) + 4096));
    for (table_index, spec) in TABLES.iter().enumerate() {
        // Invariant: the catalog has at most 255 tables (asserted in `format`).
        let table_index = table_index as u8;
        let mut start = Bound::Unbounded;
        let mut limit = FIRST_PAGE;
        loop {
            let range = KeyRange {
                start,
                end: Bound::Unbounded,
            };
            let page = backend
                .scan(spec.name, range, Direction::Forward, limit)
                .await?;
            let full = page.len() == limit;
            let page_bytes: usize = page.iter().map(|(k, v)| k.len() + v.len()).sum();
            let average = (page_bytes / page.len().max(1)).max(1);
            limit = (PAGE_BYTES / average).clamp(MIN_PAGE, PAGE);
            for (key, stored) in &page {
                let opened;
                let value: &[u8] = if spec.kind == TableKind::Sealed {
                    opened = Zeroizing::new(
                        sealed::open_bytes(keys, spec.name, key, stored)
                            .map_err(BackupError::Schema)?,
                    );
                    &opened
                } else {
                    stored
                };
                tally
                    .entry(&expect, table_index, key, value)
                    .map_err(|e| match e {
                        Invalid::KeyHeaderMismatch => BackupError::KeyHeaderMismatch,
                        Invalid::Entry(reason) => BackupError::InvalidEntry {
                            table: spec.name,
                            reason,
                        },
                    })?;
                let len = format::entry_len(key, value);
                if len > MAX_CHUNK_PLAINTEXT {
                    return Err(BackupError::EntryTooLarge {
                        table: spec.name,
                        bytes: len as u64,
                    });
                }
                if !buf.is_empty() && buf.len() + len > MAX_CHUNK_PLAINTEXT {
                    sink.data_chunk(&buf)?;
                    buf.clear();
                }
                format::push_entry(&mut buf, table_index, key, value);
                if buf.len() >= chunk_target {
                    sink.data_chunk(&buf)?;
                    buf.clear();
                }
            }
            match page.last() {
                Some((last, _)) if full => start = Bound::Excluded(last.clone()),
                _ => break,
            }
        }
    }
    if !buf.is_empty() {
        sink.data_chunk(&buf)?;
    }
    tally.check_complete()?;

    let trailer = Trailer {
        entries: tally.entries(),
        data_chunks: sink.next_index,
        tables: tally.per_table().to_vec(),
        digest: *sink.hasher.finalize().as_bytes(),
    };
    sink.final_chunk(&trailer.encode())?;
    sink.out.flush()?;
    Ok(BackupSummary {
        backup_id,
        created_ms,
        schema_version: SCHEMA_VERSION,
        entries: tally.entries(),
        tables: tally.table_counts(),
        bytes: sink.bytes,
    })
}

/// Seals chunks, writes them with their length prefix, and hashes what precedes the final one.
struct ChunkSink<W> {
    out: W,
    bytes: u64,
    hasher: blake3::Hasher,
    key: SealingKey,
    header_hash: [u8; DIGEST_LEN],
    next_index: u64,
}

impl<W: Write> ChunkSink<W> {
    fn write_hashed(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.out.write_all(bytes)?;
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    fn seal(&self, plaintext: &[u8], is_final: bool) -> Result<(Vec<u8>, [u8; 4]), BackupError> {
        let aad = format::chunk_aad(&self.header_hash, self.next_index, is_final);
        let sealed = self
            .key
            .seal(&aad, plaintext)
            .map_err(BackupError::Crypto)?;
        // Invariant: plaintext <= MAX_CHUNK_PLAINTEXT, so sealed <= MAX_SEALED_LEN < u32::MAX.
        let len = u32::try_from(sealed.len()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "backup chunk over the format's size limit",
            )
        })?;
        Ok((sealed, len.to_le_bytes()))
    }

    fn data_chunk(&mut self, plaintext: &[u8]) -> Result<(), BackupError> {
        let (sealed, len) = self.seal(plaintext, false)?;
        self.write_hashed(&len)?;
        self.write_hashed(&sealed)?;
        self.next_index += 1;
        Ok(())
    }

    fn final_chunk(&mut self, plaintext: &[u8]) -> Result<(), BackupError> {
        let (sealed, len) = self.seal(plaintext, true)?;
        self.out.write_all(&len)?;
        self.out.write_all(&sealed)?;
        self.bytes += (len.len() + sealed.len()) as u64;
        Ok(())
    }
}
