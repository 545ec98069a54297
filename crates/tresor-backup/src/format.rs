//! Byte layout of backup format version 1: header, chunk AAD, entries, trailer.
//!
//! The layout is specified in the crate documentation ("Backup file format, version 1").
//! The constants are public; the encoders and decoders are internal.

use std::io::Read;

use tresor_crypto::aead::SEAL_OVERHEAD;
use tresor_schema::catalog::TABLES;

use crate::BackupError;

/// The first 8 bytes of every backup.
pub const MAGIC: [u8; 8] = *b"TRESORBK";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the backup id in bytes.
pub const BACKUP_ID_LEN: usize = 16;
/// Length of the header before the key header: magic, version, id, time, schema, length.
pub const FIXED_HEADER_LEN: usize = 8 + 1 + BACKUP_ID_LEN + 8 + 4 + 2;
/// Largest key header length a reader accepts (the version-1 key header is 90 bytes).
pub const MAX_KEY_HEADER_LEN: usize = 1024;
/// Largest `sealed_len` a reader accepts (64 MiB).
pub const MAX_SEALED_LEN: u32 = 64 * 1024 * 1024;
/// Largest chunk plaintext: [`MAX_SEALED_LEN`] minus the AEAD's nonce and tag.
pub const MAX_CHUNK_PLAINTEXT: usize = MAX_SEALED_LEN as usize - SEAL_OVERHEAD;
/// Plaintext size at which the writer closes a data chunk (1 MiB).
pub const CHUNK_TARGET: usize = 1024 * 1024;
/// First part of every chunk's AAD.
pub const CHUNK_AAD_LABEL: &[u8] = b"tresor/v1/backup-chunk";
/// Length of a BLAKE3 digest (header hash, stream digest).
pub const DIGEST_LEN: usize = 32;
/// Bytes an entry adds to its key and value: table index, key length, value length.
pub(crate) const ENTRY_OVERHEAD: usize = 1 + 4 + 4;

// Table indexes are one byte.
const _: () = assert!(TABLES.len() <= u8::MAX as usize);

/// The backup header (plaintext, authenticated through its hash in every chunk's AAD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub backup_id: [u8; BACKUP_ID_LEN],
    pub created_ms: i64,
    pub schema_version: u32,
    pub key_header: Vec<u8>,
}

impl Header {
    /// Encodes the header.
    ///
    /// # Errors
    /// [`BackupError::MalformedHeader`] if the key header is empty or longer than
    /// [`MAX_KEY_HEADER_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, BackupError> {
        let kh_len = checked_key_header_len(self.key_header.len())?;
        let mut out = Vec::with_capacity(FIXED_HEADER_LEN + self.key_header.len());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.backup_id);
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&self.schema_version.to_le_bytes());
        out.extend_from_slice(&kh_len.to_le_bytes());
        out.extend_from_slice(&self.key_header);
        Ok(out)
    }

    /// Reads and parses a header, returning it with its raw bytes (for the header hash).
    ///
    /// # Errors
    /// [`BackupError::NotABackup`], [`BackupError::UnsupportedFormat`],
    /// [`BackupError::Truncated`], [`BackupError::MalformedHeader`], [`BackupError::Io`].
    pub fn read<R: Read + ?Sized>(input: &mut R) -> Result<(Header, Vec<u8>), BackupError> {
        let mut fixed = [0u8; FIXED_HEADER_LEN];
        let n = read_full(input, &mut fixed)?;
        let magic_seen = n.min(MAGIC.len());
        if n == 0 || fixed[..magic_seen] != MAGIC[..magic_seen] {
            return Err(BackupError::NotABackup);
        }
        if n > MAGIC.len() && fixed[MAGIC.len()] != FORMAT_VERSION {
            return Err(BackupError::UnsupportedFormat(fixed[MAGIC.len()]));
        }
        if n < FIXED_HEADER_LEN {
            return Err(BackupError::Truncated);
        }
        let mut backup_id = [0u8; BACKUP_ID_LEN];
        backup_id.copy_from_slice(&fixed[9..25]);
        let created_ms = i64::from_le_bytes(array_at(&fixed, 25));
        let schema_version = u32::from_le_bytes(array_at(&fixed, 33));
        let kh_len = usize::from(u16::from_le_bytes(array_at(&fixed, 37)));
        checked_key_header_len(kh_len)?;
        let mut key_header = vec![0u8; kh_len];
        if read_full(input, &mut key_header)? < kh_len {
            return Err(BackupError::Truncated);
        }
        let mut raw = Vec::with_capacity(FIXED_HEADER_LEN + kh_len);
        raw.extend_from_slice(&fixed);
        raw.extend_from_slice(&key_header);
        Ok((
            Header {
                backup_id,
                created_ms,
                schema_version,
                key_header,
            },
            raw,
        ))
    }
}

fn checked_key_header_len(len: usize) -> Result<u16, BackupError> {
    if (1..=MAX_KEY_HEADER_LEN).contains(&len) {
        u16::try_from(len).map_err(|_| BackupError::MalformedHeader {
            reason: "key header length out of range",
        })
    } else {
        Err(BackupError::MalformedHeader {
            reason: "key header length out of range",
        })
    }
}

/// The `N` bytes of `bytes` at `at`. Callers pass in-bounds offsets of fixed-size buffers.
fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
pub(crate) fn read_full<R: Read + ?Sized>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The AAD of chunk `index`: label ‖ header hash ‖ index ‖ final flag.
pub(crate) fn chunk_aad(header_hash: &[u8; DIGEST_LEN], index: u64, is_final: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(CHUNK_AAD_LABEL.len() + DIGEST_LEN + 8 + 1);
    aad.extend_from_slice(CHUNK_AAD_LABEL);
    aad.extend_from_slice(header_hash);
    aad.extend_from_slice(&index.to_le_bytes());
    aad.push(u8::from(is_final));
    aad
}

/// Encoded size of an entry with this key and value.
pub(crate) fn entry_len(key: &[u8], value: &[u8]) -> usize {
    ENTRY_OVERHEAD + key.len() + value.len()
}

/// Appends an entry to a chunk plaintext. The caller guarantees that
/// `entry_len(key, value) <= MAX_CHUNK_PLAINTEXT`, so both lengths fit a `u32`.
pub(crate) fn push_entry(buf: &mut Vec<u8>, table_index: u8, key: &[u8], value: &[u8]) {
    buf.push(table_index);
    buf.extend_from_slice(&len_u32(key.len()).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&len_u32(value.len()).to_le_bytes());
    buf.extend_from_slice(value);
}

fn len_u32(len: usize) -> u32 {
    // Invariant (push_entry's contract): len <= MAX_CHUNK_PLAINTEXT < u32::MAX.
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// One entry of a chunk plaintext, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryRef<'a> {
    pub table_index: u8,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Iterator over the entries of a chunk plaintext. Yields one error at most, then stops.
pub(crate) struct Entries<'a> {
    rest: &'a [u8],
}

/// The entries of a data chunk's plaintext.
pub(crate) fn entries(plaintext: &[u8]) -> Entries<'_> {
    Entries { rest: plaintext }
}

impl<'a> Entries<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn take_len(&mut self) -> Option<usize> {
        let bytes = self.take(4)?;
        usize::try_from(u32::from_le_bytes(array_at(bytes, 0))).ok()
    }

    fn parse(&mut self) -> Option<EntryRef<'a>> {
        let table_index = *self.take(1)?.first()?;
        let key_len = self.take_len()?;
        let key = self.take(key_len)?;
        let value_len = self.take_len()?;
        let value = self.take(value_len)?;
        Some(EntryRef {
            table_index,
            key,
            value,
        })
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<EntryRef<'a>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match self.parse() {
            Some(entry) => Some(Ok(entry)),
            None => {
                self.rest = &[];
                Some(Err("entry runs past the end of its chunk"))
            }
        }
    }
}

/// The plaintext of the final chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub entries: u64,
    pub data_chunks: u64,
    pub tables: Vec<u64>,
    pub digest: [u8; DIGEST_LEN],
}

impl Trailer {
    /// Encodes the trailer. The caller passes at most 255 table counts (one per catalog table).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17 + 8 * self.tables.len() + DIGEST_LEN);
        out.extend_from_slice(&self.entries.to_le_bytes());
        out.extend_from_slice(&self.data_chunks.to_le_bytes());
        out.push(u8::try_from(self.tables.len()).unwrap_or(u8::MAX));
        for count in &self.tables {
            out.extend_from_slice(&count.to_le_bytes());
        }
        out.extend_from_slice(&self.digest);
        out
    }

    /// Decodes a trailer.
    ///
    /// # Errors
    /// A fixed reason when the length does not match the table count.
    pub fn decode(bytes: &[u8]) -> Result<Trailer, &'static str> {
        const WRONG: &str = "trailer has the wrong length";
        let table_count = usize::from(*bytes.get(16).ok_or(WRONG)?);
        if bytes.len() != 17 + 8 * table_count + DIGEST_LEN {
            return Err(WRONG);
        }
        let tables = (0..table_count)
            .map(|i| u64::from_le_bytes(array_at(bytes, 17 + 8 * i)))
            .collect();
        Ok(Trailer {
            entries: u64::from_le_bytes(array_at(bytes, 0)),
            data_chunks: u64::from_le_bytes(array_at(bytes, 8)),
            tables,
            digest: array_at(bytes, 17 + 8 * table_count),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn header() -> Header {
        Header {
            backup_id: [7; 16],
            created_ms: -5,
            schema_version: 1,
            key_header: vec![9; 90],
        }
    }

    #[test]
    fn header_layout_and_round_trip() {
        let bytes = header().encode().unwrap();
        assert_eq!(bytes.len(), 129);
        assert_eq!(&bytes[..8], b"TRESORBK");
        assert_eq!(bytes[8], 1);
        assert_eq!(&bytes[25..33], &(-5i64).to_le_bytes());
        assert_eq!(&bytes[37..39], &[90, 0]);
        let (h, raw) = Header::read(&mut bytes.as_slice()).unwrap();
        assert_eq!(h, header());
        assert_eq!(raw, bytes);
    }

    #[test]
    fn header_errors_are_typed() {
        let bytes = header().encode().unwrap();
        assert!(matches!(
            Header::read(&mut &b""[..]),
            Err(BackupError::NotABackup)
        ));
        assert!(matches!(
            Header::read(&mut &b"TRESORXX-----"[..]),
            Err(BackupError::NotABackup)
        ));
        assert!(matches!(
            Header::read(&mut &bytes[..5]),
            Err(BackupError::Truncated)
        ));
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert!(matches!(
            Header::read(&mut v2.as_slice()),
            Err(BackupError::UnsupportedFormat(2))
        ));
        let mut huge = bytes.clone();
        huge[37..39].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(
            Header::read(&mut huge.as_slice()),
            Err(BackupError::MalformedHeader { .. })
        ));
        let mut zero = bytes.clone();
        zero[37..39].copy_from_slice(&[0, 0]);
        assert!(matches!(
            Header::read(&mut zero.as_slice()),
            Err(BackupError::MalformedHeader { .. })
        ));
        assert!(matches!(
            Header::read(&mut &bytes[..128]),
            Err(BackupError::Truncated)
        ));
        let mut long = header();
        long.key_header = vec![0; MAX_KEY_HEADER_LEN + 1];
        assert!(long.encode().is_err());
    }

    #[test]
    fn aad_layout() {
        let aad = chunk_aad(&[3; 32], 0x0102, true);
        assert_eq!(aad.len(), 63);
        assert_eq!(&aad[..22], b"tresor/v1/backup-chunk");
        assert_eq!(&aad[54..62], &0x0102u64.to_le_bytes());
        assert_eq!(aad[62], 1);
        assert_eq!(chunk_aad(&[3; 32], 0x0102, false)[62], 0);
    }

    #[test]
    fn trailer_round_trip_and_length_check() {
        let t = Trailer {
            entries: 10,
            data_chunks: 2,
            tables: vec![1, 2, 3, 4, 0, 0, 0],
            digest: [5; 32],
        };
        let bytes = t.encode();
        assert_eq!(bytes.len(), 105);
        assert_eq!(Trailer::decode(&bytes).unwrap(), t);
        assert!(Trailer::decode(&bytes[..104]).is_err());
        assert!(Trailer::decode(&[]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Trailer::decode(&longer).is_err());
    }

    proptest! {
        #[test]
        fn entries_round_trip(list in proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40),
             proptest::collection::vec(any::<u8>(), 0..40)), 0..20)) {
            let mut buf = Vec::new();
            for (t, k, v) in &list {
                push_entry(&mut buf, *t, k, v);
            }
            let parsed: Vec<_> = entries(&buf)
                .map(|e| e.map(|e| (e.table_index, e.key.to_vec(), e.value.to_vec())))
                .collect::<Result<_, _>>()
                .unwrap();
            prop_assert_eq!(parsed, list);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = entries(&bytes).count();
            let _ = Trailer::decode(&bytes);
            let _ = Header::read(&mut bytes.as_slice());
        }
    }
}
