//! Encrypted media blobs (typed tables `media` and `media_chunk`): large attachments stored
//! in fixed-size chunks, each its own sealed typed record.
//!
//! ```text
//! media:       id                                   → MediaInfo (metadata, upload state)
//! media_chunk: len(id) u64 LE ‖ id ‖ upload ‖ index u64 BE → MediaChunk (≤ chunk_size bytes)
//! ```
//!
//! A chunk is sealed like every typed record (AAD = table and record key, the record key being
//! the blinded token of the chunk's primary key), and the sealed envelope repeats the primary
//! key, checked on open: so each chunk is bound to its blob id, its upload and its index. A
//! chunk moved to another blob or index does not open; a missing chunk, or a chunk of the
//! wrong length, is detected against [`MediaInfo::chunks`], [`MediaInfo::chunk_size`] and
//! [`MediaInfo::size`]. `upload` is a random 16-byte id per upload, so chunks of an earlier
//! (interrupted or replaced) upload under the same blob id never mix with the current one.

use serde::{Deserialize, Serialize};

use crate::typed::{IndexDef, KeyPart, TableDef};

/// Default chunk size: 255 KiB (261,120 bytes), so that a sealed chunk (data plus about 100
/// bytes of envelope, nonce and tag) stays within 256 KiB: redb allocates values in
/// power-of-two regions, and a chunk of exactly 256 KiB would take 512 KiB on disk.
pub const DEFAULT_CHUNK_SIZE: u32 = 255 * 1024;
/// How long an incomplete upload is kept after it started before a sweep removes it: one day,
/// in ms.
pub const INCOMPLETE_GRACE_MS: i64 = 86_400_000;

/// Metadata of one media blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// The blob id (primary key), e.g. a Matrix content URI `mxc://server/id`.
    pub id: String,
    /// The room it belongs to, if any.
    pub room_id: Option<String>,
    /// Its MIME type, e.g. `image/jpeg`.
    pub mime_type: String,
    /// Its size in bytes (during an upload: the bytes stored so far).
    pub size: u64,
    /// A small thumbnail, if any (stored inline, sealed with the metadata).
    pub thumbnail: Option<Vec<u8>>,
    /// When it was stored, ms since the Unix epoch.
    pub created_ms: i64,
    /// When it expires (a sweep then deletes it), ms since the Unix epoch; `None`: never.
    pub expires_ms: Option<i64>,
    /// The chunk size in bytes: every chunk but the last holds exactly this many.
    pub chunk_size: u32,
    /// How many chunks are stored.
    pub chunks: u64,
    /// Whether the upload finished (an incomplete blob cannot be read).
    pub complete: bool,
    /// The random id of the upload that wrote the chunks.
    pub upload: [u8; 16],
}

impl MediaInfo {
    /// When a sweep deletes it: its expiry, or for an incomplete upload `created_ms +`
    /// [`INCOMPLETE_GRACE_MS`] (whichever comes first); `None` for a complete blob that never
    /// expires.
    pub fn sweep_at(&self) -> Option<i64> {
        let incomplete =
            (!self.complete).then(|| self.created_ms.saturating_add(INCOMPLETE_GRACE_MS));
        match (self.expires_ms, incomplete) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// One chunk of a media blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaChunk {
    /// The blob id.
    pub media_id: String,
    /// The upload it belongs to ([`MediaInfo::upload`]).
    pub upload: [u8; 16],
    /// Its index, from 0.
    pub index: u64,
    /// Its bytes.
    #[serde(with = "crate::bytes")]
    pub data: Vec<u8>,
}

impl MediaChunk {
    /// The primary key of chunk `index` of upload `upload` of blob `media_id`.
    pub fn key(media_id: &str, upload: &[u8; 16], index: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(8 + media_id.len() + 16 + 8);
        k.extend_from_slice(&(media_id.len() as u64).to_le_bytes());
        k.extend_from_slice(media_id.as_bytes());
        k.extend_from_slice(upload);
        k.extend_from_slice(&index.to_be_bytes());
        k
    }
}

/// Index of [`MEDIA`] by room (`[Id(room_id), I64(created_ms)]`; complete blobs with a room).
pub const MEDIA_BY_ROOM: &str = "by_room";
/// Index of [`MEDIA`] by MIME type (`[Id(mime_type), I64(created_ms)]`; complete blobs).
pub const MEDIA_BY_MIME: &str = "by_mime";
/// Index of [`MEDIA`] by creation time (`[I64(created_ms)]`; complete blobs).
pub const MEDIA_BY_TIME: &str = "by_time";
/// Index of [`MEDIA`] by sweep time (`[I64(sweep_at)]`; blobs with a [`MediaInfo::sweep_at`]).
pub const MEDIA_BY_SWEEP: &str = "by_sweep";

/// The media metadata table (typed table `media`).
pub static MEDIA: TableDef<MediaInfo> = TableDef {
    name: "media",
    primary_key: |m| m.id.as_bytes().to_vec(),
    indexes: &[
        IndexDef {
            name: MEDIA_BY_ROOM,
            unique: false,
            keys: |m| match (&m.room_id, m.complete) {
                (Some(r), true) => vec![vec![KeyPart::id(r), KeyPart::I64(m.created_ms)]],
                _ => vec![],
            },
        },
        IndexDef {
            name: MEDIA_BY_MIME,
            unique: false,
            keys: |m| {
                if m.complete {
                    vec![vec![KeyPart::id(&m.mime_type), KeyPart::I64(m.created_ms)]]
                } else {
                    vec![]
                }
            },
        },
        IndexDef {
            name: MEDIA_BY_TIME,
            unique: false,
            keys: |m| {
                if m.complete {
                    vec![vec![KeyPart::I64(m.created_ms)]]
                } else {
                    vec![]
                }
            },
        },
        IndexDef {
            name: MEDIA_BY_SWEEP,
            unique: false,
            keys: |m| {
                m.sweep_at()
                    .map(|t| vec![KeyPart::I64(t)])
                    .into_iter()
                    .collect()
            },
        },
    ],
};

/// The media chunk table (typed table `media_chunk`, primary key [`MediaChunk::key`], no
/// index).
pub static MEDIA_CHUNKS: TableDef<MediaChunk> = TableDef {
    name: "media_chunk",
    primary_key: |c| MediaChunk::key(&c.media_id, &c.upload, c.index),
    indexes: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_are_unambiguous_and_sweep_times_follow_state() {
        assert_ne!(
            MediaChunk::key("ab", &[0; 16], 1),
            MediaChunk::key("a", &[0; 16], 1)
        );
        assert_ne!(
            MediaChunk::key("a", &[0; 16], 1),
            MediaChunk::key("a", &[1; 16], 1)
        );
        let mut m = MediaInfo {
            id: "m".into(),
            room_id: None,
            mime_type: "image/png".into(),
            size: 0,
            thumbnail: None,
            created_ms: 10,
            expires_ms: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            chunks: 0,
            complete: false,
            upload: [0; 16],
        };
        assert_eq!(m.sweep_at(), Some(10 + INCOMPLETE_GRACE_MS));
        m.expires_ms = Some(20);
        assert_eq!(m.sweep_at(), Some(20));
        m.complete = true;
        m.expires_ms = None;
        assert_eq!(m.sweep_at(), None);
    }
}
