//! Reading the commit log back at open (*replay*), record by record.
//!
//! The log is read through a small buffer, one record at a time, never whole: memory at open
//! stays bounded by [`REPLAY_CHUNK_BYTES`] plus the largest single record, whatever the log's
//! size ([`crate::RedbConfig::checkpoint_bytes`] bounds it only between checkpoints that
//! succeed). Records are applied in chunks of about [`REPLAY_CHUNK_BYTES`], each chunk in its
//! own redb transaction committed without sync, and the last one with
//! `redb::Durability::Immediate`, which makes the whole replay durable at once.
//!
//! # Why chunks are as good as one transaction
//! Replay is idempotent (`log.rs`, "Why replay is correct"): applying any prefix of the records
//! over a state that already reflects a prefix of them, then the rest, leaves every key with
//! the value of its last operation. A crash during replay leaves redb at a state reflecting
//! a prefix of the log's records (its last durable commit plus possibly some of the chunk
//! commits after it) and the log untouched (it is emptied only after the final durable
//! commit), so the next open replays again from the first record, with the same result.
//! Within a chunk, and from one chunk to the next, operations are applied in log order, as
//! the writer applied them (`writer::GroupTables::apply_all`).

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};

use redb::Database;
use tresor_backend::{BackendError, Op};

use crate::error::{map_err, map_io};
use crate::log::{CHECK_BYTES, HEADER_BYTES, check, check_header, decode_body};

/// Log bytes replayed per redb transaction: 8 MiB. Bounds what replay holds in memory (the
/// chunk's decoded operations) besides redb's own write buffer.
pub(crate) const REPLAY_CHUNK_BYTES: u64 = 8 << 20;

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// Whole, valid records applied.
    pub(crate) batches: u64,
    /// Length of the log up to the end of the last valid record (the header alone: 32).
    pub(crate) good: u64,
    /// End of the log's content: the file's length less the zeros at its end (space the
    /// writer reserved ahead of its appends, `CommitLog::reserve`). What lies between
    /// [`Replayed::good`] and it is a torn or damaged tail.
    pub(crate) content_end: u64,
}

/// The records of a log, after its header, read in order from `reader`: each record is
/// checked (length within the file, check, decoding, sequence) before it is returned, and the
/// first one that fails ends the records.
pub(crate) struct Records<'id, R> {
    reader: R,
    id: &'id [u8; 16],
    /// Bytes of the log not read yet.
    remaining: u64,
    /// End of the last valid record.
    good: u64,
    expect_seq: Option<u64>,
    done: bool,
}

impl<'id, R: Read> Records<'id, R> {
    /// Records of the log of database `id`, read from `reader` positioned just after the
    /// header of a log `len` bytes long.
    pub(crate) fn new(reader: R, id: &'id [u8; 16], len: u64) -> Self {
        Self {
            reader,
            id,
            remaining: len.saturating_sub(HEADER_BYTES),
            good: HEADER_BYTES,
            expect_seq: None,
            done: false,
        }
    }

    /// Length of the log up to the end of the last valid record returned.
    pub(crate) fn good(&self) -> u64 {
        self.good
    }

    /// The next valid record's operations and its length in the log, or `None` at the end or
    /// at the first record that is torn (shorter than its length says), fails its check, does
    /// not decode or is out of sequence.
    ///
    /// # Errors
    /// When reading fails (an I/O error, not a short file).
    pub(crate) fn next_record(&mut self) -> std::io::Result<Option<(Vec<Op>, u64)>> {
        if self.done {
            return Ok(None);
        }
        let record = self.read_record();
        if !matches!(record, Ok(Some(_))) {
            self.done = true;
        }
        record
    }

    fn read_record(&mut self) -> std::io::Result<Option<(Vec<Op>, u64)>> {
        let mut len_bytes = [0u8; 4];
        if !self.read_exact(&mut len_bytes)? {
            return Ok(None);
        }
        let len = u64::from(u32::from_le_bytes(len_bytes));
        // A length past the end of the file is a torn record: checked before anything is
        // allocated for it, so a damaged length never asks for gigabytes.
        if len + CHECK_BYTES as u64 > self.remaining {
            return Ok(None);
        }
        let Ok(body_len) = usize::try_from(len) else {
            return Ok(None);
        };
        let mut body = vec![0u8; body_len];
        let mut sum = [0u8; CHECK_BYTES];
        if !self.read_exact(&mut body)? || !self.read_exact(&mut sum)? {
            return Ok(None);
        }
        if check(self.id, &len_bytes, &body) != sum {
            return Ok(None);
        }
        let Some((seq, ops)) = decode_body(&body) else {
            return Ok(None);
        };
        if self.expect_seq.is_some_and(|want| want != seq) {
            return Ok(None);
        }
        self.expect_seq = Some(seq + 1);
        let bytes = 4 + len + CHECK_BYTES as u64;
        self.good += bytes;
        Ok(Some((ops, bytes)))
    }

    /// Fills `buf`; `false` when the file ends first.
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let n = buf.len() as u64;
        if n > self.remaining {
            return Ok(false);
        }
        match self.reader.read_exact(buf) {
            Ok(()) => {
                self.remaining -= n;
                Ok(true)
            }
            // The file shrank since its length was taken: the rest is missing.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Replays the log in `file` (at its start) into `db`, in chunks of about `chunk_bytes` of
/// log, and returns what it did; the log itself is left as it is (the caller empties it).
/// `Ok(None)` when the file is shorter than a header (a crash while creating it, or a new
/// log): there is nothing to replay.
///
/// # Errors
/// [`BackendError::Corrupted`] when the header is not a tresor commit log's or names another
/// database; [`BackendError::Io`] / [`BackendError::DiskFull`] when reading fails or a chunk
/// cannot be committed (what was committed is a prefix of the records: the next open replays
/// the whole log again).
pub(crate) fn replay(
    db: &Database,
    file: &File,
    id: &[u8; 16],
    chunk_bytes: u64,
) -> Result<Option<Replayed>, BackendError> {
    let len = file.metadata().map_err(map_io)?.len();
    if len < HEADER_BYTES {
        return Ok(None);
    }
    let mut reader = BufReader::with_capacity(64 << 10, file);
    let mut header = [0u8; HEADER_BYTES as usize];
    reader.read_exact(&mut header).map_err(map_io)?;
    check_header(&header, id)?;
    let mut records = Records::new(reader, id, len);
    let mut chunk: Vec<Vec<Op>> = Vec::new();
    let mut chunk_len = 0u64;
    let mut batches = 0u64;
    while let Some((ops, bytes)) = records.next_record().map_err(map_io)? {
        chunk.push(ops);
        chunk_len += bytes;
        batches += 1;
        if chunk_len >= chunk_bytes {
            apply_chunk(db, &chunk, redb::Durability::None)?;
            chunk.clear();
            chunk_len = 0;
        }
    }
    if batches > 0 {
        // The last chunk (possibly empty) commits durably: every chunk before it with it.
        apply_chunk(db, &chunk, redb::Durability::Immediate)?;
    }
    let good = records.good();
    Ok(Some(Replayed {
        batches,
        good,
        content_end: content_end(file, good, len).map_err(map_io)?,
    }))
}

/// The end of the content of `file` (`len` bytes long) at or after `from`: the offset just
/// past its last non-zero byte, or `from` when only zeros follow it.
///
/// # Errors
/// When reading fails.
fn content_end(file: &File, from: u64, len: u64) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut reader = file;
    reader.seek(SeekFrom::Start(from))?;
    let mut block = vec![0u8; 64 << 10];
    let (mut pos, mut end) = (from, from);
    while pos < len {
        let n = reader.read(&mut block)?;
        if n == 0 {
            break;
        }
        if let Some(last) = block[..n].iter().rposition(|&b| b != 0) {
            end = pos + last as u64 + 1;
        }
        pos += n as u64;
    }
    Ok(end)
}

/// Applies `batches` in order in one transaction committed with `durability`, exactly as the
/// writer applies them (`writer::GroupTables::apply_all`: a delete in a table that does not
/// exist does not create it), on this thread only, so that a panic of redb over a damaged
/// file reaches the caller's `catch_unwind` as a panic.
fn apply_chunk(
    db: &Database,
    batches: &[Vec<Op>],
    durability: redb::Durability,
) -> Result<(), BackendError> {
    let mut txn = db.begin_write().map_err(map_err)?;
    txn.set_durability(durability).map_err(map_err)?;
    {
        let mut tables = crate::writer::GroupTables::new(&txn, 1);
        let all: Vec<&[Op]> = batches.iter().map(Vec::as_slice).collect();
        tables.apply_all(&all)?;
    }
    txn.commit().map_err(map_err)
}

/// The records of a whole log held in memory (header included) as `Records` reads them, and
/// where the valid part ends: for tests.
///
/// # Panics
/// Never on any input (a slice cannot fail to read).
#[cfg(test)]
pub(crate) fn parse_records(bytes: &[u8], id: &[u8; 16]) -> (Vec<Vec<Op>>, u64) {
    let rest = bytes.get(HEADER_BYTES as usize..).unwrap_or_default();
    let mut records = Records::new(rest, id, bytes.len() as u64);
    let mut out = Vec::new();
    // Reading a slice cannot fail: the error arm is unreachable.
    while let Ok(Some((ops, _))) = records.next_record() {
        out.push(ops);
    }
    (out, records.good())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report.

    use super::*;

    #[test]
    fn a_length_past_the_end_allocates_nothing_and_ends_the_records() {
        let id = [3u8; 16];
        let mut log = vec![0u8; HEADER_BYTES as usize];
        log.extend_from_slice(&u32::MAX.to_le_bytes());
        log.extend_from_slice(&[0u8; 40]);
        let (ops, good) = parse_records(&log, &id);
        assert!(ops.is_empty());
        assert_eq!(good, HEADER_BYTES);
    }

    /// A reader that fails after `ok` bytes, as a disk with a bad sector would.
    struct Failing<'a> {
        bytes: &'a [u8],
        ok: usize,
    }

    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.ok == 0 {
                return Err(std::io::Error::other("bad sector"));
            }
            let n = buf.len().min(self.ok).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_is_an_error_not_the_end_of_the_log() {
        let id = [4u8; 16];
        let mut log = Vec::new();
        let mut b = tresor_backend::WriteBatch::new();
        b.put("t", vec![1], vec![2; 100]);
        crate::log::encode_record(&mut log, &id, 1, b.ops()).unwrap();
        crate::log::encode_record(&mut log, &id, 2, b.ops()).unwrap();
        let total = HEADER_BYTES + log.len() as u64;
        let mut records = Records::new(
            Failing {
                bytes: &log,
                ok: log.len() / 2 + 10,
            },
            &id,
            total,
        );
        assert!(records.next_record().unwrap().is_some());
        assert!(records.next_record().is_err());
    }

    /// Every key of every table of `db`, in order.
    fn contents(db: &Database) -> std::collections::BTreeMap<(String, Vec<u8>), Vec<u8>> {
        use redb::{ReadableDatabase, ReadableTable, TableHandle};
        let r = db.begin_read().unwrap();
        let mut out = std::collections::BTreeMap::new();
        for handle in r.list_tables().unwrap() {
            let name = handle.name().to_owned();
            if name == crate::log::ID_TABLE {
                continue;
            }
            let table = r.open_table(crate::read::Def::new(&name)).unwrap();
            for entry in table.iter().unwrap() {
                let (k, v) = entry.unwrap();
                out.insert((name.clone(), k.value().to_vec()), v.value().to_vec());
            }
        }
        out
    }

    /// Replayed in chunks of any size (one record per chunk, a few records, the whole log),
    /// the log leaves the state of applying its operations one by one in order (a `BTreeMap`
    /// model), including keys written, deleted and written again across chunk boundaries and
    /// a torn record at the end.
    #[test]
    fn chunked_replay_equals_applying_every_operation_in_order() {
        let id = [9u8; 16];
        let mut log = crate::log::header(&id).to_vec();
        let mut model = std::collections::BTreeMap::new();
        let mut seq = 1;
        for i in 0u32..200 {
            let mut b = tresor_backend::WriteBatch::new();
            for j in 0..(i % 5) {
                let key = ((i * 7 + j * 13) % 37).to_be_bytes().to_vec();
                let table = if (i + j) % 3 == 0 { "a" } else { "b" };
                if (i * j) % 4 == 3 {
                    b.delete(table, key.clone());
                    model.remove(&(table.to_owned(), key));
                } else {
                    let value = format!("{i}-{j}").into_bytes();
                    b.put(table, key.clone(), value.clone());
                    model.insert((table.to_owned(), key), value);
                }
            }
            crate::log::encode_record(&mut log, &id, seq, b.ops()).unwrap();
            seq += 1;
        }
        let whole = log.len() as u64;
        // A torn record after the last whole one: never applied.
        let mut torn = tresor_backend::WriteBatch::new();
        torn.put("a", b"torn".to_vec(), b"x".to_vec());
        let mut tail = Vec::new();
        crate::log::encode_record(&mut tail, &id, seq, torn.ops()).unwrap();
        let torn_part = &tail[..tail.len() - 3];
        log.extend_from_slice(torn_part);
        let content = whole + torn_part.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1) as u64;
        // Then space reserved ahead of the appends: zeros, not counted as content.
        log.extend_from_slice(&[0u8; 5000]);
        for chunk_bytes in [1, 200, 4096, u64::MAX] {
            let dir = tempfile::tempdir().unwrap();
            let db = Database::create(dir.path().join("s.redb")).unwrap();
            let path = dir.path().join("log");
            std::fs::write(&path, &log).unwrap();
            let file = File::open(&path).unwrap();
            let replayed = replay(&db, &file, &id, chunk_bytes).unwrap().unwrap();
            assert_eq!(replayed.batches, 200, "chunks of {chunk_bytes}");
            assert_eq!(replayed.good, whole);
            assert_eq!(replayed.content_end, content);
            assert!(content > whole);
            assert_eq!(contents(&db), model, "chunks of {chunk_bytes}");
        }
    }
}
