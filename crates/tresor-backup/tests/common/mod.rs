//! Shared fixtures: source stores built by hand with the schema helpers, cheap key headers, and
//! an independent parser of the backup layout as FORMAT.md describes it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;

use tresor_backend::{Backend, Direction, Durability, KeyRange, MemoryBackend, WriteBatch};
use tresor_crypto::{DataKey, KdfParams, KeyHeader, SealingKey, Secret, StoreKeys};
use tresor_schema::catalog::{self, CONVERSATIONS, MESSAGES, META, PEERS, TABLES, TableKind};
use tresor_schema::messages::{
    conversation_token, index_entries, peer_ids, peer_token, record_key, seal_message, tokens,
    v3_entries,
};
use tresor_schema::version::{self, SCHEMA_VERSION};
use tresor_schema::{ConversationSummary, Message, PeerSummary, sealed};
use zeroize::Zeroizing;

/// One decoded entry: `(table index, key, value)`.
pub type RawEntry = (u8, Vec<u8>, Vec<u8>);
/// Every catalog table's entries, sealed values opened.
pub type Dump = BTreeMap<&'static str, Vec<(Vec<u8>, Vec<u8>)>>;

pub const PASSPHRASE: &str = "correct horse battery staple";

pub fn passphrase() -> Secret {
    Secret::from(PASSPHRASE)
}

/// A store's key material: the encoded key header and the keys it unwraps to.
pub struct Keys {
    pub key_header: Vec<u8>,
    pub keys: StoreKeys,
}

/// A real key header at OWASP Argon2id parameters (one derivation ≈ 50 ms optimized).
pub fn owasp_keys() -> Keys {
    let (header, dek) = KeyHeader::create(&passphrase(), KdfParams::ARGON2ID_OWASP).unwrap();
    Keys {
        key_header: header.encode(),
        keys: dek.store_keys(),
    }
}

/// A valid version-1 key header with Argon2id m = 8 KiB, t = 1, p = 1: far below what
/// `KeyHeader::create` accepts for new stores, but `unlock` accepts it, and it derives in
/// microseconds, so tests can run `verify` once per byte position of a backup. Built by hand
/// from the layout documented in `tresor_crypto::header` (any bit flip in its KDF parameters
/// yields at most a 64 MiB Argon2 run, or a refusal).
pub fn cheap_keys() -> Keys {
    let kdf = KdfParams::Argon2id {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    let mut salt = [0u8; 16];
    tresor_crypto::random_bytes(&mut salt).unwrap();
    let mut prefix = Vec::with_capacity(30);
    prefix.push(1); // header version
    prefix.push(1); // Argon2id
    prefix.extend_from_slice(&8u32.to_le_bytes());
    prefix.extend_from_slice(&1u32.to_le_bytes());
    prefix.extend_from_slice(&1u32.to_le_bytes());
    prefix.extend_from_slice(&salt);
    let kek = SealingKey::new(&kdf.derive_kek(&passphrase(), &salt).unwrap());
    let dek = DataKey::generate().unwrap();
    let mut aad = b"tresor/v1/dek".to_vec();
    aad.extend_from_slice(&prefix);
    let mut key_header = prefix;
    key_header.extend_from_slice(&kek.seal(&aad, dek.expose()).unwrap());
    assert_eq!(key_header.len(), 90);
    let unlocked = KeyHeader::decode(&key_header)
        .unwrap()
        .unlock(&passphrase())
        .unwrap();
    assert_eq!(unlocked.expose(), dek.expose());
    Keys {
        key_header,
        keys: dek.store_keys(),
    }
}

/// The `i`-th test message (seq `i + 1`), in one of three conversations, between four peers.
pub fn message(i: usize, body_len: usize) -> Message {
    let mut m = Message::new(
        format!("msg-{i}"),
        format!("conv-{}", i % 3),
        format!("peer-{}", i % 4),
        (!i.is_multiple_of(5)).then(|| format!("peer-{}", (i + 1) % 4)),
        1_700_000_000_000 + (i as i64) * 1000 - 5_000,
        format!("{i}:{}", "x".repeat(body_len)),
    );
    m.seq = i as u64 + 1;
    m
}

/// Builds a source store as the facade would, in the current (v4) layout: meta (key header,
/// schema version, next seq), `n` sealed messages under their record keys with their index
/// entries (`message_ids`, `msg_by_peer`, `msg_by_time`), and sealed conversation and peer
/// summaries.
pub async fn build_store(k: &Keys, n: usize, body_len: usize) -> MemoryBackend {
    build_store_at(k, n, body_len, SCHEMA_VERSION).await
}

/// [`build_store`] as the code of schema `schema_version` wrote it: 5 (records under record
/// keys, in format 3), 4 (the same in format 1), or 3 (v1–v3 layout, format 1: records
/// under message tokens, `msg_by_conversation`, index values that are message tokens, no
/// `message_ids`; meta says 3).
pub async fn build_store_at(
    k: &Keys,
    n: usize,
    body_len: usize,
    schema_version: u32,
) -> MemoryBackend {
    assert!((3..=5).contains(&schema_version));
    let backend = MemoryBackend::new();
    let keys = &k.keys;
    let mut batch = WriteBatch::new();
    batch.put(META, catalog::meta_keys::KEY_HEADER, k.key_header.clone());
    batch.put(
        META,
        catalog::meta_keys::SCHEMA_VERSION,
        version::encode(schema_version).to_vec(),
    );
    batch.put(
        META,
        catalog::meta_keys::NEXT_SEQ,
        (n as u64 + 1).to_le_bytes().to_vec(),
    );
    let mut conversations: BTreeMap<String, u64> = BTreeMap::new();
    let mut peers: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..n {
        let m = message(i, body_len);
        let t = tokens(keys, &m);
        if schema_version == 3 {
            for (table, key) in v3_entries(&m, &t) {
                let value = if table == MESSAGES {
                    sealed::seal(keys, MESSAGES, &key, &m).unwrap()
                } else {
                    t.id.to_vec()
                };
                batch.put(table, key, value);
            }
        } else {
            let rk = record_key(&m, &t);
            // The v4 code wrote format 1, the v5 code format 3.
            let sealed = if schema_version == 4 {
                sealed::seal(keys, MESSAGES, &rk, &m).unwrap()
            } else {
                seal_message(keys, &rk, &m).unwrap()
            };
            batch.put(MESSAGES, rk.clone(), sealed);
            for (table, key, value) in index_entries(&m, &t) {
                batch.put(table, key, value);
            }
        }
        *conversations.entry(m.conversation_id.clone()).or_default() += 1;
        for p in peer_ids(&m) {
            *peers.entry(p.to_owned()).or_default() += 1;
        }
    }
    for (id, message_count) in conversations {
        let key = conversation_token(keys, &id);
        let summary = ConversationSummary { id, message_count };
        batch.put(
            CONVERSATIONS,
            key.to_vec(),
            sealed::seal(keys, CONVERSATIONS, &key, &summary).unwrap(),
        );
    }
    for (id, message_count) in peers {
        let key = peer_token(keys, &id);
        let summary = PeerSummary { id, message_count };
        batch.put(
            PEERS,
            key.to_vec(),
            sealed::seal(keys, PEERS, &key, &summary).unwrap(),
        );
    }
    backend.commit(batch, Durability::Immediate).await.unwrap();
    backend
}

/// Every entry of every catalog table, sealed values opened (nonces differ after a restore).
pub async fn dump(backend: &dyn Backend, keys: &StoreKeys) -> Dump {
    let mut out = BTreeMap::new();
    for spec in TABLES {
        let entries = raw_table(backend, spec.name).await;
        let entries = entries
            .into_iter()
            .map(|(k, v)| {
                let v = if spec.kind == TableKind::Sealed {
                    sealed::open_bytes(keys, spec.name, &k, &v).unwrap()
                } else {
                    v
                };
                (k, v)
            })
            .collect();
        out.insert(spec.name, entries);
    }
    out
}

/// Every raw entry of `table`.
pub async fn raw_table(backend: &dyn Backend, table: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    backend
        .scan(table, KeyRange::all(), Direction::Forward, usize::MAX)
        .await
        .unwrap()
}

/// A backup of `backend` made with the given chunk target, as bytes.
pub async fn backup(backend: &MemoryBackend, k: &Keys, chunk_target: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let summary = tresor_backup::create_with_chunk_target(
        backend,
        &k.keys,
        &k.key_header,
        1_700_000_000_123,
        &mut out,
        chunk_target,
    )
    .await
    .unwrap();
    assert_eq!(summary.bytes, out.len() as u64);
    out
}

/// A backup file cut into its parts, following FORMAT.md.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The header bytes.
    pub header: Vec<u8>,
    /// Every chunk with its length prefix, final chunk last.
    pub chunks: Vec<Vec<u8>>,
}

impl Layout {
    pub fn parse(bytes: &[u8]) -> Layout {
        let kh_len = u16::from_le_bytes([bytes[37], bytes[38]]) as usize;
        let header_len = 39 + kh_len;
        let mut chunks = Vec::new();
        let mut at = header_len;
        while at < bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            chunks.push(bytes[at..at + 4 + len].to_vec());
            at += 4 + len;
        }
        assert_eq!(at, bytes.len());
        Layout {
            header: bytes[..header_len].to_vec(),
            chunks,
        }
    }

    pub fn join(&self) -> Vec<u8> {
        let mut out = self.header.clone();
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out
    }

    pub fn backup_id(&self) -> [u8; 16] {
        self.header[9..25].try_into().unwrap()
    }

    /// The chunk AAD as FORMAT.md defines it.
    pub fn aad(&self, index: u64, is_final: bool) -> Vec<u8> {
        let mut aad = b"tresor/v1/backup-chunk".to_vec();
        aad.extend_from_slice(blake3::hash(&self.header).as_bytes());
        aad.extend_from_slice(&index.to_le_bytes());
        aad.push(u8::from(is_final));
        aad
    }

    /// Opens chunk `index` with the AAD FORMAT.md prescribes.
    pub fn open(&self, keys: &StoreKeys, index: usize) -> Zeroizing<Vec<u8>> {
        let is_final = index + 1 == self.chunks.len();
        let key = keys.backup_key(&self.backup_id());
        Zeroizing::new(
            key.open(&self.aad(index as u64, is_final), &self.chunks[index][4..])
                .expect("chunk opens with the documented AAD"),
        )
    }

    /// Replaces chunk `index` by `plaintext` sealed with the documented AAD and key.
    pub fn reseal(&mut self, keys: &StoreKeys, index: usize, is_final: bool, plaintext: &[u8]) {
        let key = keys.backup_key(&self.backup_id());
        let sealed = key
            .seal(&self.aad(index as u64, is_final), plaintext)
            .unwrap();
        let mut chunk = (sealed.len() as u32).to_le_bytes().to_vec();
        chunk.extend_from_slice(&sealed);
        if index == self.chunks.len() {
            self.chunks.push(chunk);
        } else {
            self.chunks[index] = chunk;
        }
    }

    /// BLAKE3 of everything before the final chunk.
    pub fn stream_digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&self.header);
        for c in &self.chunks[..self.chunks.len() - 1] {
            h.update(c);
        }
        *h.finalize().as_bytes()
    }
}

/// Decodes the entries of a data chunk plaintext per FORMAT.md.
pub fn parse_entries(mut p: &[u8]) -> Vec<RawEntry> {
    let mut out = Vec::new();
    while !p.is_empty() {
        let t = p[0];
        let kl = u32::from_le_bytes(p[1..5].try_into().unwrap()) as usize;
        let key = p[5..5 + kl].to_vec();
        p = &p[5 + kl..];
        let vl = u32::from_le_bytes(p[..4].try_into().unwrap()) as usize;
        let value = p[4..4 + vl].to_vec();
        p = &p[4 + vl..];
        out.push((t, key, value));
    }
    out
}

/// Encodes entries per FORMAT.md.
pub fn encode_entries(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (t, k, v) in entries {
        out.push(*t);
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// The entries a single-file backup (format 1) of `backend` holds, per FORMAT.md: the first
/// `tables` catalog tables in catalog order, each in key order, sealed values opened.
pub async fn file_entries(backend: &dyn Backend, keys: &StoreKeys, tables: usize) -> Vec<RawEntry> {
    let mut out = Vec::new();
    for (ti, spec) in TABLES.iter().enumerate().take(tables) {
        for (key, value) in raw_table(backend, spec.name).await {
            let value = if spec.kind == TableKind::Sealed {
                sealed::open_bytes(keys, spec.name, &key, &value).unwrap()
            } else {
                value
            };
            out.push((ti as u8, key, value));
        }
    }
    out
}

/// A single-file backup (format 1) written by hand per FORMAT.md, as older code wrote them:
/// a header with `schema_version`, one data chunk holding `entries`, and a trailer with
/// `table_count` table counts.
pub fn write_file(
    k: &Keys,
    schema_version: u32,
    entries: &[RawEntry],
    table_count: usize,
) -> Vec<u8> {
    let mut header = b"TRESORBK".to_vec();
    header.push(1);
    header.extend_from_slice(&[0x42; 16]);
    header.extend_from_slice(&1_600_000_000_000i64.to_le_bytes());
    header.extend_from_slice(&schema_version.to_le_bytes());
    header.extend_from_slice(&(k.key_header.len() as u16).to_le_bytes());
    header.extend_from_slice(&k.key_header);
    let mut layout = Layout {
        header,
        chunks: Vec::new(),
    };
    layout.reseal(&k.keys, 0, false, &encode_entries(entries));
    let mut trailer = (entries.len() as u64).to_le_bytes().to_vec();
    trailer.extend_from_slice(&1u64.to_le_bytes());
    trailer.push(u8::try_from(table_count).unwrap());
    for t in 0..table_count {
        let count = entries.iter().filter(|e| usize::from(e.0) == t).count() as u64;
        trailer.extend_from_slice(&count.to_le_bytes());
    }
    // The digest covers everything before the final chunk.
    layout.chunks.push(Vec::new());
    trailer.extend_from_slice(&layout.stream_digest());
    layout.chunks.pop();
    layout.reseal(&k.keys, 1, true, &trailer);
    layout.join()
}
