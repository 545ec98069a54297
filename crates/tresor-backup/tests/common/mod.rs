//! Shared fixtures: source stores built by hand with the schema helpers, cheap key headers, and
//! an independent parser of the backup layout as FORMAT.md describes it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;

use tresor_backend::{Backend, Direction, Durability, KeyRange, MemoryBackend, WriteBatch};
use tresor_crypto::{DataKey, KdfParams, KeyHeader, SealingKey, Secret, StoreKeys};
use tresor_schema::catalog::{self, CONVERSATIONS, MESSAGES, META, PEERS, TABLES, TableKind};
use tresor_schema::messages::{
    conversation_token, index_entries, peer_ids, peer_token, seal_message, tokens,
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

/// Builds a source store as the facade would: meta (key header, schema version, next seq),
/// `n` sealed messages with their index entries, and sealed conversation and peer summaries.
pub async fn build_store(k: &Keys, n: usize, body_len: usize) -> MemoryBackend {
    let backend = MemoryBackend::new();
    let keys = &k.keys;
    let mut batch = WriteBatch::new();
    batch.put(META, catalog::meta_keys::KEY_HEADER, k.key_header.clone());
    batch.put(
        META,
        catalog::meta_keys::SCHEMA_VERSION,
        version::encode(SCHEMA_VERSION).to_vec(),
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
        batch.put(MESSAGES, t.id.to_vec(), seal_message(keys, &t, &m).unwrap());
        for (table, key, value) in index_entries(&m, &t) {
            batch.put(table, key, value);
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
