//! Reading a backup: header, unlocking, chunk authentication, entries, trailer; and `verify`.

use std::io::Read;

use tresor_crypto::aead::SEAL_OVERHEAD;
use tresor_crypto::{CryptoError, KeyHeader, SealingKey, Secret, StoreKeys};
use tresor_schema::catalog::TableSpec;
use tresor_schema::version;
use zeroize::Zeroizing;

use crate::check::{Expect, Invalid, Tally};
use crate::format::{self, CHUNK_TARGET, DIGEST_LEN, Header, MAX_SEALED_LEN, Trailer};
use crate::{BackupError, BackupSummary};

/// One authenticated chunk.
pub(crate) enum Chunk {
    /// A data chunk's plaintext (entries), at position `index`.
    Data {
        index: u64,
        plaintext: Zeroizing<Vec<u8>>,
    },
    /// The final chunk: its trailer, and the digest computed over the bytes before it.
    Final {
        trailer: Trailer,
        digest: [u8; DIGEST_LEN],
    },
}

/// Reads a backup chunk by chunk, authenticating each one.
pub(crate) struct ChunkReader<R> {
    input: R,
    bytes: u64,
    header: Header,
    header_hash: [u8; DIGEST_LEN],
    key: SealingKey,
    hasher: blake3::Hasher,
    next_index: u64,
}

impl<R: Read> ChunkReader<R> {
    /// Reads the header, checks its schema version and unlocks its key header with
    /// `secret`. Returns the reader and the store's keys.
    pub fn open(mut input: R, secret: &Secret) -> Result<(Self, StoreKeys), BackupError> {
        let (header, raw) = Header::read(&mut input)?;
        let key_header =
            KeyHeader::decode(&header.key_header).map_err(|_| BackupError::MalformedHeader {
                reason: "key header does not decode",
            })?;
        version::check(header.schema_version).map_err(BackupError::UnsupportedSchema)?;
        let keys = key_header
            .unlock(secret)
            .map_err(|e| match e {
                CryptoError::WrongPassphrase => BackupError::WrongPassphrase,
                other => BackupError::Crypto(other),
            })?
            .store_keys();
        let mut hasher = blake3::Hasher::new();
        hasher.update(&raw);
        let reader = Self {
            input,
            bytes: raw.len() as u64,
            header_hash: *blake3::hash(&raw).as_bytes(),
            key: keys.backup_key(&header.backup_id),
            header,
            hasher,
            next_index: 0,
        };
        Ok((reader, keys))
    }

    /// What the entries must agree with.
    pub fn expect(&self) -> Expect<'_> {
        Expect {
            key_header: &self.header.key_header,
            schema_version: self.header.schema_version,
        }
    }

    /// Reads and authenticates the next chunk.
    pub fn next_chunk(&mut self) -> Result<Chunk, BackupError> {
        let index = self.next_index;
        let mut len_bytes = [0u8; 4];
        if format::read_full(&mut self.input, &mut len_bytes)? < len_bytes.len() {
            return Err(BackupError::Truncated);
        }
        let len = u32::from_le_bytes(len_bytes);
        if len > MAX_SEALED_LEN || (len as usize) < SEAL_OVERHEAD {
            return Err(BackupError::MalformedChunk {
                index,
                reason: "chunk length out of range",
            });
        }
        // Grows with the bytes actually read: a lying length on a short file allocates little.
        let mut sealed = Vec::with_capacity((len as usize).min(CHUNK_TARGET + 4096));
        (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut sealed)?;
        if sealed.len() < len as usize {
            return Err(BackupError::Truncated);
        }
        self.bytes += 4 + u64::from(len);

        let data_aad = format::chunk_aad(&self.header_hash, index, false);
        if let Ok(plaintext) = self.key.open(&data_aad, &sealed) {
            let plaintext = Zeroizing::new(plaintext);
            if plaintext.is_empty() {
                return Err(BackupError::MalformedChunk {
                    index,
                    reason: "empty data chunk",
                });
            }
            self.hasher.update(&len_bytes);
            self.hasher.update(&sealed);
            self.next_index += 1;
            return Ok(Chunk::Data { index, plaintext });
        }
        let final_aad = format::chunk_aad(&self.header_hash, index, true);
        let plaintext = self
            .key
            .open(&final_aad, &sealed)
            .map_err(|_| BackupError::ChunkAuthentication { index })?;
        let trailer = Trailer::decode(&plaintext)
            .map_err(|reason| BackupError::MalformedChunk { index, reason })?;
        Ok(Chunk::Final {
            trailer,
            digest: *self.hasher.finalize().as_bytes(),
        })
    }

    /// Checks the final chunk against what was read (counts, digest, key header presence),
    /// then that nothing follows it; returns the backup's summary.
    pub fn finish(
        &mut self,
        tally: &Tally,
        trailer: &Trailer,
        digest: &[u8; DIGEST_LEN],
    ) -> Result<BackupSummary, BackupError> {
        tally.check_trailer(trailer, self.next_index, self.header.schema_version)?;
        if &trailer.digest != digest {
            return Err(BackupError::DigestMismatch);
        }
        tally.check_complete()?;
        let mut probe = [0u8; 1];
        if format::read_full(&mut self.input, &mut probe)? != 0 {
            return Err(BackupError::TrailingData);
        }
        Ok(BackupSummary {
            backup_id: self.header.backup_id,
            created_ms: self.header.created_ms,
            schema_version: self.header.schema_version,
            entries: tally.entries(),
            tables: tally.table_counts(),
            bytes: self.bytes,
        })
    }
}

/// Checks and counts every entry of a data chunk's plaintext, handing each one to `each` with
/// its table.
pub(crate) fn for_each_entry(
    tally: &mut Tally,
    expect: &Expect<'_>,
    index: u64,
    plaintext: &[u8],
    mut each: impl FnMut(&'static TableSpec, &[u8], &[u8]) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    for entry in format::entries(plaintext) {
        let entry = entry.map_err(|reason| BackupError::MalformedChunk { index, reason })?;
        let spec = tally
            .entry(expect, entry.table_index, entry.key, entry.value)
            .map_err(|e| match e {
                Invalid::KeyHeaderMismatch => BackupError::KeyHeaderMismatch,
                Invalid::Entry(reason) => BackupError::MalformedChunk { index, reason },
            })?;
        each(spec, entry.key, entry.value)?;
    }
    Ok(())
}

/// Reads a whole backup and checks everything a restore would rely on, writing nothing.
///
/// Checks the header (magic, format version, key header, schema version), unlocks the key
/// header with `secret` (the passphrase, or the raw key of a raw-key store), authenticates every chunk at its position, decodes every entry
/// (sealed-table values as their record types: `messages` as [`tresor_schema::Message`],
/// `conversations` as [`tresor_schema::ConversationSummary`], `peers` as
/// [`tresor_schema::PeerSummary`]; index values as 16-byte tokens, except, from schema
/// version 4 on, 32-byte message record keys in `message_ids`; a
/// `messages` key as a 16-byte token, or from version 4 on a 32-byte record key ending with
/// the record's order key), checks the trailer's counts (one per catalog table of the
/// header's schema version) against the counted entries and chunks, the stream digest, and
/// that nothing follows the final chunk. Memory stays bounded by one chunk (normally about 1 MiB, at most
/// 64 MiB for a hostile file).
///
/// # Errors
/// Every failure is a typed [`BackupError`], never a panic: [`BackupError::NotABackup`],
/// [`BackupError::UnsupportedFormat`], [`BackupError::MalformedHeader`],
/// [`BackupError::UnsupportedSchema`], [`BackupError::WrongPassphrase`],
/// [`BackupError::Truncated`], [`BackupError::ChunkAuthentication`],
/// [`BackupError::MalformedChunk`], [`BackupError::KeyHeaderMismatch`],
/// [`BackupError::TrailerMismatch`], [`BackupError::DigestMismatch`],
/// [`BackupError::TrailingData`], [`BackupError::Io`], [`BackupError::Crypto`] (a KDF
/// failure).
pub fn verify<R: Read>(input: R, secret: &Secret) -> Result<BackupSummary, BackupError> {
    let (mut reader, _keys) = ChunkReader::open(input, secret)?;
    let mut tally = Tally::new();
    loop {
        match reader.next_chunk()? {
            Chunk::Data { index, plaintext } => {
                let expect = reader.expect();
                for_each_entry(&mut tally, &expect, index, &plaintext, |_, _, _| Ok(()))?;
            }
            Chunk::Final { trailer, digest } => return reader.finish(&tally, &trailer, &digest),
        }
    }
}
