//! Byte layout of repository format version 2: config, chunk objects, manifests, locks.
//!
//! Specified in the crate documentation ("Backup repository format, version 2").

use tresor_crypto::{SealingKey, StoreKeys};
use zeroize::Zeroizing;

use crate::BackupError;
use crate::format::{DIGEST_LEN, MAX_KEY_HEADER_LEN};

/// First 8 bytes of a repository's `config` object.
pub const CONFIG_MAGIC: [u8; 8] = *b"TRESORRP";
/// First 8 bytes of a manifest object.
pub const MANIFEST_MAGIC: [u8; 8] = *b"TRESORMF";
/// The repository format version.
pub const REPO_VERSION: u8 = 2;
/// Length of a repository id.
pub const REPO_ID_LEN: usize = 16;
/// Length of a chunk id (keyed BLAKE3).
pub const CHUNK_ID_LEN: usize = 32;
/// Default content-defined chunking parameters (minimum, average, maximum chunk size).
pub const DEFAULT_CHUNKING: Chunking = Chunking {
    min: 16 * 1024,
    avg: 64 * 1024,
    max: 256 * 1024,
};
/// Largest manifest object a reader accepts (64 MiB).
pub const MAX_MANIFEST_LEN: usize = 64 * 1024 * 1024;
/// Largest description, in bytes of UTF-8.
pub const MAX_DESCRIPTION_LEN: usize = 4096;
/// zstd compression level of chunks.
pub const ZSTD_LEVEL: i32 = 3;

/// HKDF info labels (salt: the repository id) of the repository's keys.
pub(crate) const INFO_CHUNK_SEAL: &[u8] = b"tresor/v2/repo-chunk-seal";
pub(crate) const INFO_CHUNK_ID: &[u8] = b"tresor/v2/repo-chunk-id";
pub(crate) const INFO_MANIFEST_SEAL: &[u8] = b"tresor/v2/repo-manifest-seal";
pub(crate) const INFO_CONFIG_MAC: &[u8] = b"tresor/v2/repo-config-mac";
/// AAD labels.
pub(crate) const CHUNK_AAD_LABEL: &[u8] = b"tresor/v2/chunk";
pub(crate) const MANIFEST_AAD_LABEL: &[u8] = b"tresor/v2/manifest";

/// Content-defined chunking parameters (bytes), fixed per repository so that backups of the
/// same data cut the same chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    /// Smallest chunk (except the last one of a stream).
    pub min: u32,
    /// Average chunk size the cut-point mask aims at (a power of two).
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

impl Chunking {
    /// Whether `fastcdc` accepts these sizes and they stay below 16 MiB.
    pub fn is_valid(&self) -> bool {
        (fastcdc::v2020::MINIMUM_MIN..=fastcdc::v2020::MINIMUM_MAX).contains(&self.min)
            && (fastcdc::v2020::AVERAGE_MIN..=fastcdc::v2020::AVERAGE_MAX).contains(&self.avg)
            && (fastcdc::v2020::MAXIMUM_MIN..=fastcdc::v2020::MAXIMUM_MAX).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max
            && self.max <= 16 * 1024 * 1024
    }
}

/// The keys of one repository, derived from the store's backup root key and the repository id.
pub(crate) struct RepoKeys {
    pub chunk_seal: SealingKey,
    pub chunk_id: Zeroizing<[u8; 32]>,
    pub manifest_seal: SealingKey,
    pub config_mac: Zeroizing<[u8; 32]>,
}

impl RepoKeys {
    pub fn derive(keys: &StoreKeys, repo_id: &[u8; REPO_ID_LEN]) -> Self {
        Self {
            chunk_seal: SealingKey::new(&keys.backup_subkey(repo_id, INFO_CHUNK_SEAL)),
            chunk_id: keys.backup_subkey(repo_id, INFO_CHUNK_ID),
            manifest_seal: SealingKey::new(&keys.backup_subkey(repo_id, INFO_MANIFEST_SEAL)),
            config_mac: keys.backup_subkey(repo_id, INFO_CONFIG_MAC),
        }
    }

    /// The id of a chunk: keyed BLAKE3 of its plaintext.
    pub fn chunk_id(&self, plaintext: &[u8]) -> [u8; CHUNK_ID_LEN] {
        *blake3::keyed_hash(&self.chunk_id, plaintext).as_bytes()
    }
}

/// The repository `config` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    pub repo_id: [u8; REPO_ID_LEN],
    pub chunking: Chunking,
    pub key_header: Vec<u8>,
}

/// Bytes of the config before the key header.
pub(crate) const CONFIG_FIXED_LEN: usize = 8 + 1 + REPO_ID_LEN + 12 + 2;

impl Config {
    /// The bytes covered by the MAC.
    fn body(&self) -> Result<Vec<u8>, BackupError> {
        let len = self.key_header.len();
        if !(1..=MAX_KEY_HEADER_LEN).contains(&len) {
            return Err(BackupError::MalformedConfig {
                reason: "key header length out of range",
            });
        }
        let mut out = Vec::with_capacity(CONFIG_FIXED_LEN + len + DIGEST_LEN);
        out.extend_from_slice(&CONFIG_MAGIC);
        out.push(REPO_VERSION);
        out.extend_from_slice(&self.repo_id);
        out.extend_from_slice(&self.chunking.min.to_le_bytes());
        out.extend_from_slice(&self.chunking.avg.to_le_bytes());
        out.extend_from_slice(&self.chunking.max.to_le_bytes());
        // Invariant: len <= MAX_KEY_HEADER_LEN (1024) fits a u16.
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&self.key_header);
        Ok(out)
    }

    /// Encodes the config with its MAC under `keys`.
    pub fn encode(&self, keys: &RepoKeys) -> Result<Vec<u8>, BackupError> {
        let mut out = self.body()?;
        let mac = blake3::keyed_hash(&keys.config_mac, &out);
        out.extend_from_slice(mac.as_bytes());
        Ok(out)
    }

    /// Parses a config without checking its MAC (the keys come from its key header).
    /// Returns the config and its MAC.
    pub fn decode(bytes: &[u8]) -> Result<(Config, [u8; DIGEST_LEN]), BackupError> {
        if bytes.len() < 9 || bytes[..8] != CONFIG_MAGIC {
            return Err(BackupError::NotARepository);
        }
        if bytes[8] != REPO_VERSION {
            return Err(BackupError::UnsupportedFormat(bytes[8]));
        }
        let malformed = |reason| BackupError::MalformedConfig { reason };
        if bytes.len() < CONFIG_FIXED_LEN {
            return Err(malformed("config is truncated"));
        }
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut repo_id = [0u8; REPO_ID_LEN];
        repo_id.copy_from_slice(&bytes[9..25]);
        let chunking = Chunking {
            min: u32_at(25),
            avg: u32_at(29),
            max: u32_at(33),
        };
        let kh_len = usize::from(u16::from_le_bytes([bytes[37], bytes[38]]));
        if !(1..=MAX_KEY_HEADER_LEN).contains(&kh_len) {
            return Err(malformed("key header length out of range"));
        }
        if bytes.len() != CONFIG_FIXED_LEN + kh_len + DIGEST_LEN {
            return Err(malformed("config has the wrong length"));
        }
        if !chunking.is_valid() {
            return Err(malformed("invalid chunking parameters"));
        }
        let key_header = bytes[CONFIG_FIXED_LEN..CONFIG_FIXED_LEN + kh_len].to_vec();
        let mut mac = [0u8; DIGEST_LEN];
        mac.copy_from_slice(&bytes[CONFIG_FIXED_LEN + kh_len..]);
        Ok((
            Config {
                repo_id,
                chunking,
                key_header,
            },
            mac,
        ))
    }

    /// Checks `mac` against this config under `keys` (constant time).
    pub fn check_mac(&self, keys: &RepoKeys, mac: &[u8; DIGEST_LEN]) -> Result<(), BackupError> {
        let expected = blake3::keyed_hash(&keys.config_mac, &self.body()?);
        // blake3::Hash equality is constant-time.
        if expected == blake3::Hash::from(*mac) {
            Ok(())
        } else {
            Err(BackupError::ConfigAuthentication)
        }
    }
}

/// The AAD of chunk `id` in repository `repo_id`.
pub(crate) fn chunk_aad(repo_id: &[u8; REPO_ID_LEN], id: &[u8; CHUNK_ID_LEN]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(CHUNK_AAD_LABEL.len() + REPO_ID_LEN + CHUNK_ID_LEN);
    aad.extend_from_slice(CHUNK_AAD_LABEL);
    aad.extend_from_slice(repo_id);
    aad.extend_from_slice(id);
    aad
}

/// Object name of a chunk.
pub(crate) fn chunk_name(id: &[u8; CHUNK_ID_LEN]) -> String {
    format!("chunks/{}", hex(id))
}

/// Object name of a manifest.
pub(crate) fn manifest_name(id: &[u8; 16]) -> String {
    format!("manifests/{}", hex(id))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Compresses and seals a chunk plaintext into its object bytes.
pub(crate) fn seal_chunk(
    keys: &RepoKeys,
    repo_id: &[u8; REPO_ID_LEN],
    id: &[u8; CHUNK_ID_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, BackupError> {
    let compressed = zstd::bulk::compress(plaintext, ZSTD_LEVEL)?;
    keys.chunk_seal
        .seal(&chunk_aad(repo_id, id), &compressed)
        .map_err(BackupError::Crypto)
}

/// Opens a chunk object: authenticates it, decompresses it (at most `max_len` bytes), and
/// checks its id.
pub(crate) fn open_chunk(
    keys: &RepoKeys,
    repo_id: &[u8; REPO_ID_LEN],
    id: &[u8; CHUNK_ID_LEN],
    object: &[u8],
    max_len: usize,
) -> Result<Zeroizing<Vec<u8>>, BackupError> {
    let corrupt = |reason| BackupError::CorruptChunk {
        chunk: hex(id),
        reason,
    };
    let compressed = Zeroizing::new(
        keys.chunk_seal
            .open(&chunk_aad(repo_id, id), object)
            .map_err(|_| corrupt("fails authentication"))?,
    );
    let plaintext = Zeroizing::new(
        zstd::bulk::decompress(&compressed, max_len).map_err(|_| corrupt("does not decompress"))?,
    );
    if &keys.chunk_id(&plaintext) != id {
        return Err(corrupt("content does not match its id"));
    }
    Ok(plaintext)
}

/// One chunk of a backup's stream, as listed in its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRef {
    pub id: [u8; CHUNK_ID_LEN],
    pub len: u32,
}

/// The sealed contents of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub backup_id: [u8; 16],
    pub created_ms: i64,
    pub schema_version: u32,
    pub tresor_version: String,
    pub description: String,
    pub key_header: Vec<u8>,
    /// Entry counts of every catalog table in the source store.
    pub source_tables: Vec<u64>,
    pub stream_entries: u64,
    pub stream_bytes: u64,
    pub added_bytes: u64,
    pub added_chunks: u64,
    pub digest: [u8; DIGEST_LEN],
    pub chunks: Vec<ChunkRef>,
}

/// Length of the manifest object's plaintext header.
pub(crate) const MANIFEST_HEADER_LEN: usize = 8 + 1 + 16 + 8;

impl Manifest {
    fn header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MANIFEST_HEADER_LEN);
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.push(REPO_VERSION);
        out.extend_from_slice(&self.backup_id);
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out
    }

    fn aad(repo_id: &[u8; REPO_ID_LEN], header: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(MANIFEST_AAD_LABEL.len() + REPO_ID_LEN + header.len());
        aad.extend_from_slice(MANIFEST_AAD_LABEL);
        aad.extend_from_slice(repo_id);
        aad.extend_from_slice(header);
        aad
    }

    /// Encodes and seals the manifest into its object bytes.
    pub fn seal(
        &self,
        keys: &RepoKeys,
        repo_id: &[u8; REPO_ID_LEN],
    ) -> Result<Vec<u8>, BackupError> {
        let mut p = Vec::with_capacity(256 + self.chunks.len() * (CHUNK_ID_LEN + 4));
        p.extend_from_slice(&self.schema_version.to_le_bytes());
        let version = self.tresor_version.as_bytes();
        let version = &version[..version.len().min(255)];
        p.push(version.len() as u8);
        p.extend_from_slice(version);
        let description = truncate_utf8(&self.description, MAX_DESCRIPTION_LEN);
        // Invariant: at most MAX_DESCRIPTION_LEN (4096) bytes, fits a u16.
        p.extend_from_slice(&(description.len() as u16).to_le_bytes());
        p.extend_from_slice(description.as_bytes());
        p.extend_from_slice(&(self.key_header.len().min(MAX_KEY_HEADER_LEN) as u16).to_le_bytes());
        p.extend_from_slice(&self.key_header[..self.key_header.len().min(MAX_KEY_HEADER_LEN)]);
        p.push(self.source_tables.len().min(255) as u8);
        for count in self.source_tables.iter().take(255) {
            p.extend_from_slice(&count.to_le_bytes());
        }
        for v in [
            self.stream_entries,
            self.stream_bytes,
            self.added_bytes,
            self.added_chunks,
        ] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p.extend_from_slice(&self.digest);
        let count =
            u32::try_from(self.chunks.len()).map_err(|_| BackupError::MalformedManifest {
                backup: hex(&self.backup_id),
                reason: "too many chunks",
            })?;
        p.extend_from_slice(&count.to_le_bytes());
        for c in &self.chunks {
            p.extend_from_slice(&c.id);
            p.extend_from_slice(&c.len.to_le_bytes());
        }
        let header = self.header();
        let sealed = keys
            .manifest_seal
            .seal(&Self::aad(repo_id, &header), &p)
            .map_err(BackupError::Crypto)?;
        let mut out = header;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Reads only the plaintext header of a manifest object: `(backup id, created_ms)`.
    pub fn peek(bytes: &[u8]) -> Option<([u8; 16], i64)> {
        if bytes.len() < MANIFEST_HEADER_LEN
            || bytes[..8] != MANIFEST_MAGIC
            || bytes[8] != REPO_VERSION
        {
            return None;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[9..25]);
        let created = i64::from_le_bytes(bytes[25..33].try_into().ok()?);
        Some((id, created))
    }

    /// Authenticates and decodes a manifest object stored under the name of `expected_id`.
    pub fn open(
        keys: &RepoKeys,
        repo_id: &[u8; REPO_ID_LEN],
        expected_id: &[u8; 16],
        bytes: &[u8],
    ) -> Result<Manifest, BackupError> {
        let backup = hex(expected_id);
        let auth = || BackupError::ManifestAuthentication {
            backup: backup.clone(),
        };
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(BackupError::MalformedManifest {
                backup: backup.clone(),
                reason: "manifest too large",
            });
        }
        let (backup_id, created_ms) = Self::peek(bytes).ok_or_else(auth)?;
        if &backup_id != expected_id {
            return Err(auth());
        }
        let header = &bytes[..MANIFEST_HEADER_LEN];
        let plain = Zeroizing::new(
            keys.manifest_seal
                .open(&Self::aad(repo_id, header), &bytes[MANIFEST_HEADER_LEN..])
                .map_err(|_| auth())?,
        );
        let malformed = |reason| BackupError::MalformedManifest {
            backup: backup.clone(),
            reason,
        };
        let mut r = Reader { rest: &plain };
        let truncated = "manifest plaintext is truncated";
        let schema_version = r.u32().ok_or_else(|| malformed(truncated))?;
        let vlen = usize::from(r.u8().ok_or_else(|| malformed(truncated))?);
        let tresor_version =
            String::from_utf8(r.take(vlen).ok_or_else(|| malformed(truncated))?.to_vec())
                .map_err(|_| malformed("tresor version is not UTF-8"))?;
        let dlen = usize::from(r.u16().ok_or_else(|| malformed(truncated))?);
        if dlen > MAX_DESCRIPTION_LEN {
            return Err(malformed("description too long"));
        }
        let description =
            String::from_utf8(r.take(dlen).ok_or_else(|| malformed(truncated))?.to_vec())
                .map_err(|_| malformed("description is not UTF-8"))?;
        let klen = usize::from(r.u16().ok_or_else(|| malformed(truncated))?);
        if !(1..=MAX_KEY_HEADER_LEN).contains(&klen) {
            return Err(malformed("key header length out of range"));
        }
        let key_header = r.take(klen).ok_or_else(|| malformed(truncated))?.to_vec();
        let tables = usize::from(r.u8().ok_or_else(|| malformed(truncated))?);
        let mut source_tables = Vec::with_capacity(tables);
        for _ in 0..tables {
            source_tables.push(r.u64().ok_or_else(|| malformed(truncated))?);
        }
        let stream_entries = r.u64().ok_or_else(|| malformed(truncated))?;
        let stream_bytes = r.u64().ok_or_else(|| malformed(truncated))?;
        let added_bytes = r.u64().ok_or_else(|| malformed(truncated))?;
        let added_chunks = r.u64().ok_or_else(|| malformed(truncated))?;
        let mut digest = [0u8; DIGEST_LEN];
        digest.copy_from_slice(r.take(DIGEST_LEN).ok_or_else(|| malformed(truncated))?);
        let count = r.u32().ok_or_else(|| malformed(truncated))? as usize;
        if r.rest.len() != count.saturating_mul(CHUNK_ID_LEN + 4) {
            return Err(malformed("chunk list has the wrong length"));
        }
        let mut chunks = Vec::with_capacity(count);
        for _ in 0..count {
            let mut id = [0u8; CHUNK_ID_LEN];
            id.copy_from_slice(r.take(CHUNK_ID_LEN).ok_or_else(|| malformed(truncated))?);
            let len = r.u32().ok_or_else(|| malformed(truncated))?;
            if len == 0 {
                return Err(malformed("empty chunk in the chunk list"));
            }
            chunks.push(ChunkRef { id, len });
        }
        let sum: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
        if sum != stream_bytes {
            return Err(malformed(
                "chunk lengths do not add up to the stream length",
            ));
        }
        Ok(Manifest {
            backup_id,
            created_ms,
            schema_version,
            tresor_version,
            description,
            key_header,
            source_tables,
            stream_entries,
            stream_bytes,
            added_bytes,
            added_chunks,
            digest,
            chunks,
        })
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

/// Kinds of lock objects (`locks/<kind>-<hex>`).
pub(crate) const LOCK_BACKUP: &str = "backup";
pub(crate) const LOCK_PRUNE: &str = "prune";
/// A lock older than this (by the time written in it) is stale and ignored: 24 hours.
pub const STALE_LOCK_MS: i64 = 24 * 60 * 60 * 1000;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tresor_crypto::DataKey;

    fn keys() -> (RepoKeys, [u8; 16]) {
        let store = DataKey::from_bytes(Zeroizing::new([3; 32])).store_keys();
        let id = [9u8; 16];
        (RepoKeys::derive(&store, &id), id)
    }

    #[test]
    fn config_layout_and_mac() {
        let (k, id) = keys();
        let c = Config {
            repo_id: id,
            chunking: DEFAULT_CHUNKING,
            key_header: vec![1; 90],
        };
        let bytes = c.encode(&k).unwrap();
        assert_eq!(bytes.len(), 39 + 90 + 32);
        assert_eq!(&bytes[..8], b"TRESORRP");
        let (back, mac) = Config::decode(&bytes).unwrap();
        assert_eq!(back, c);
        back.check_mac(&k, &mac).unwrap();
        let mut tampered = bytes.clone();
        tampered[30] ^= 1;
        let (t, mac) = Config::decode(&tampered).unwrap_or((c.clone(), [0; 32]));
        assert!(t.check_mac(&k, &mac).is_err());
        assert!(matches!(
            Config::decode(b"nope"),
            Err(BackupError::NotARepository)
        ));
        assert!(Config::decode(&bytes[..50]).is_err());
    }

    #[test]
    fn chunk_round_trip_and_binding() {
        let (k, id) = keys();
        let data = b"hello hello hello hello".repeat(10);
        let cid = k.chunk_id(&data);
        let obj = seal_chunk(&k, &id, &cid, &data).unwrap();
        assert_eq!(&*open_chunk(&k, &id, &cid, &obj, 1 << 20).unwrap(), &data);
        // Another id or repository: refused.
        let other = k.chunk_id(b"x");
        assert!(open_chunk(&k, &id, &other, &obj, 1 << 20).is_err());
        assert!(open_chunk(&k, &[0; 16], &cid, &obj, 1 << 20).is_err());
        // Over the size cap: refused.
        assert!(open_chunk(&k, &id, &cid, &obj, 10).is_err());
    }

    #[test]
    fn manifest_round_trip_and_binding() {
        let (k, id) = keys();
        let m = Manifest {
            backup_id: [4; 16],
            created_ms: 1_700_000_000_000,
            schema_version: 1,
            tresor_version: "0.1.0".into(),
            description: "nightly".into(),
            key_header: vec![2; 90],
            source_tables: vec![3, 10, 2, 2, 10, 20, 10],
            stream_entries: 13,
            stream_bytes: 7,
            added_bytes: 5,
            added_chunks: 2,
            digest: [6; 32],
            chunks: vec![
                ChunkRef {
                    id: [1; 32],
                    len: 3,
                },
                ChunkRef {
                    id: [2; 32],
                    len: 4,
                },
            ],
        };
        let bytes = m.seal(&k, &id).unwrap();
        assert_eq!(Manifest::open(&k, &id, &[4; 16], &bytes).unwrap(), m);
        assert!(Manifest::open(&k, &id, &[5; 16], &bytes).is_err());
        assert!(Manifest::open(&k, &[0; 16], &[4; 16], &bytes).is_err());
        let mut flipped = bytes.clone();
        flipped[30] ^= 1; // the clear creation time is authenticated
        assert!(Manifest::open(&k, &id, &[4; 16], &flipped).is_err());
        assert_eq!(Manifest::peek(&bytes), Some(([4; 16], 1_700_000_000_000)));
    }
}
