//! Encrypted media blobs ([`Media`], typed tables `media` and `media_chunk`, layout in
//! `tresor_schema::media`): streamed in with [`MediaUpload`] and out with [`MediaDownload`],
//! never holding more than a few chunks in memory.
//!
//! An upload first stores the metadata marked incomplete, then appends chunks in atomic
//! batches of [`FLUSH_CHUNKS`] that also advance the metadata's chunk count and size, and
//! finally marks it complete. So after a crash the metadata always knows every chunk stored,
//! and a sweep removes an upload that never finished (`INCOMPLETE_GRACE_MS` after it began).

use std::sync::Arc;

use tresor_backend::WriteBatch;
use tresor_crypto::StoreKeys;
use tresor_schema::catalog::TYPED_RECORDS;
use tresor_schema::media::{
    DEFAULT_CHUNK_SIZE, MEDIA, MEDIA_BY_MIME, MEDIA_BY_ROOM, MEDIA_BY_SWEEP, MEDIA_BY_TIME,
    MEDIA_CHUNKS, MediaChunk, MediaInfo,
};
use tresor_schema::typed::{Envelope, KeyPart, open_envelope, record_key, seal_envelope};

use crate::keys::Keyring;
use crate::store::Inner;
use crate::table::TypedBatch;
use crate::{Error, Order, Tresor};

/// Full chunks an upload buffers before writing them in one atomic batch.
pub const FLUSH_CHUNKS: usize = 4;
/// The largest chunk size accepted: 4 MiB.
pub const MAX_CHUNK_SIZE: u32 = 4 * 1024 * 1024;
/// Chunks deleted per atomic batch when a blob is deleted.
const DELETE_CHUNKS: u64 = 1024;

/// What to store about a new blob, for [`Media::upload`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewMedia {
    /// The blob id (e.g. an `mxc://` URI).
    pub id: String,
    /// The room it belongs to, if any.
    pub room_id: Option<String>,
    /// Its MIME type.
    pub mime_type: String,
    /// A small thumbnail, if any.
    pub thumbnail: Option<Vec<u8>>,
    /// When it is stored, ms since the Unix epoch.
    pub created_ms: i64,
    /// When it expires, ms since the Unix epoch (`None`: never).
    pub expires_ms: Option<i64>,
    /// The chunk size in bytes, 1 to [`MAX_CHUNK_SIZE`]. Default: [`DEFAULT_CHUNK_SIZE`]
    /// (255 KiB).
    pub chunk_size: u32,
}

impl NewMedia {
    /// A blob `id` of type `mime_type` stored at `created_ms`, in no room, never expiring.
    pub fn new(id: impl Into<String>, mime_type: impl Into<String>, created_ms: i64) -> Self {
        Self {
            id: id.into(),
            room_id: None,
            mime_type: mime_type.into(),
            thumbnail: None,
            created_ms,
            expires_ms: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// Sets the room.
    pub fn in_room(mut self, room_id: impl Into<String>) -> Self {
        self.room_id = Some(room_id.into());
        self
    }

    /// Sets the expiry (ms since the Unix epoch).
    pub fn expires_at(mut self, expires_ms: i64) -> Self {
        self.expires_ms = Some(expires_ms);
        self
    }

    /// Sets the thumbnail.
    pub fn with_thumbnail(mut self, thumbnail: Vec<u8>) -> Self {
        self.thumbnail = Some(thumbnail);
        self
    }

    /// Sets the chunk size in bytes.
    pub fn with_chunk_size(mut self, chunk_size: u32) -> Self {
        self.chunk_size = chunk_size;
        self
    }
}

/// The media blobs of a [`Tresor`], from [`Tresor::media`].
#[derive(Debug, Clone, Copy)]
pub struct Media<'a> {
    store: &'a Tresor,
}

impl Tresor {
    /// The media repository.
    pub fn media(&self) -> Media<'_> {
        Media { store: self }
    }
}

/// Adds the deletes of chunks `from..to` of `info` to `ops` (chunks have no index entries, so
/// their record keys are all there is).
fn delete_chunks(keys: &StoreKeys, info: &MediaInfo, from: u64, to: u64, ops: &mut WriteBatch) {
    for i in from..to {
        let pk = MediaChunk::key(&info.id, &info.upload, i);
        ops.delete(TYPED_RECORDS, record_key(keys, MEDIA_CHUNKS.name, &pk));
    }
}

async fn load_info(
    batch: &mut TypedBatch,
    inner: &Inner,
    keys: &StoreKeys,
    id: &str,
) -> Result<Option<MediaInfo>, Error> {
    let rk = record_key(keys, MEDIA.name, id.as_bytes());
    match batch.load(inner, keys, &rk).await? {
        Some(env) if env.table == MEDIA.name && env.pk == id.as_bytes() => Ok(Some(env.decode()?)),
        Some(_) => Err(Error::Corrupted("media record holds another record".into())),
        None => Ok(None),
    }
}

impl<'a> Media<'a> {
    fn inner(&self) -> &'a Inner {
        &self.store.inner
    }

    /// Starts storing blob `new.id` (replacing any blob with that id, whose chunks are deleted
    /// in the same batch): write its bytes with [`MediaUpload::write`], then
    /// [`MediaUpload::finish`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a chunk size of 0 or above [`MAX_CHUNK_SIZE`];
    /// [`Error::Crypto`] if no random upload id could be drawn; [`Error::Backend`];
    /// [`Error::Corrupted`].
    pub async fn upload(&self, new: NewMedia) -> Result<MediaUpload<'a>, Error> {
        if new.chunk_size == 0 || new.chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::InvalidInput(format!(
                "chunk size {} not in 1..={MAX_CHUNK_SIZE}",
                new.chunk_size
            )));
        }
        let mut upload = [0u8; 16];
        tresor_crypto::random_bytes(&mut upload)?;
        let info = MediaInfo {
            id: new.id,
            room_id: new.room_id,
            mime_type: new.mime_type,
            size: 0,
            thumbnail: new.thumbnail,
            created_ms: new.created_ms,
            expires_ms: new.expires_ms,
            chunk_size: new.chunk_size,
            chunks: 0,
            complete: false,
            upload,
        };
        let inner = self.inner();
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        let keys = &ring.current;
        let mut ops = WriteBatch::new();
        let mut batch = TypedBatch::default();
        if let Some(old) = load_info(&mut batch, inner, keys, &info.id).await? {
            delete_chunks(keys, &old, 0, old.chunks, &mut ops);
        }
        batch.put(inner, keys, &MEDIA, &info, &mut ops).await?;
        inner.commit_locked(&mut w, ops).await?;
        drop(w);
        Ok(MediaUpload {
            store: self.store,
            chunk_size: info.chunk_size as usize,
            info,
            buf: Vec::new(),
            pending: Vec::new(),
        })
    }

    /// Stores `data` as blob `new.id` in one call (an upload of all of it).
    ///
    /// # Errors
    /// As [`Media::upload`] and [`MediaUpload::finish`].
    pub async fn put(&self, new: NewMedia, data: &[u8]) -> Result<MediaInfo, Error> {
        let mut up = self.upload(new).await?;
        up.write(data).await?;
        up.finish().await
    }

    /// The metadata of blob `id` (complete or not).
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn info(&self, id: &str) -> Result<Option<MediaInfo>, Error> {
        self.store.table(&MEDIA).get(id).await
    }

    /// A reader of blob `id`'s bytes, chunk by chunk; `None` if there is no complete blob
    /// `id`.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn open(&self, id: &str) -> Result<Option<MediaDownload<'a>>, Error> {
        let Some(info) = self.info(id).await?.filter(|i| i.complete) else {
            return Ok(None);
        };
        let ring = self.inner().typed_ring().await?;
        Ok(Some(MediaDownload {
            store: self.store,
            info,
            ring,
            next: 0,
            read: 0,
        }))
    }

    /// Blob `id`'s bytes, all in memory (use [`Media::open`] for large blobs).
    ///
    /// # Errors
    /// As [`MediaDownload::next_chunk`].
    pub async fn read(&self, id: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some(mut d) = self.open(id).await? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(usize::try_from(d.info.size).unwrap_or(0));
        while let Some(chunk) = d.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(Some(out))
    }

    /// Deletes blob `id` and its chunks: chunks in atomic batches of 1,024 from the last one
    /// (the metadata, marked incomplete, keeps counting those left, so a crash leaves nothing
    /// unreachable), then the metadata. Returns whether it existed.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn delete(&self, id: &str) -> Result<bool, Error> {
        let inner = self.inner();
        let mut existed = false;
        loop {
            let mut w = inner.writer.lock().await;
            w.refresh(&*inner.backend).await?;
            inner.finish_typed_rotation_locked(&mut w).await?;
            let ring = inner.keyring();
            let keys = &ring.current;
            let mut batch = TypedBatch::default();
            let Some(mut info) = load_info(&mut batch, inner, keys, id).await? else {
                return Ok(existed);
            };
            existed = true;
            let mut ops = WriteBatch::new();
            let from = info.chunks.saturating_sub(DELETE_CHUNKS);
            delete_chunks(keys, &info, from, info.chunks, &mut ops);
            if from == 0 {
                batch
                    .delete(inner, keys, MEDIA.name, id.as_bytes(), &mut ops)
                    .await?;
            } else {
                info.chunks = from;
                info.complete = false;
                batch.put(inner, keys, &MEDIA, &info, &mut ops).await?;
            }
            inner.commit_locked(&mut w, ops).await?;
            if from == 0 {
                return Ok(true);
            }
        }
    }

    async fn scan(
        &self,
        index: &str,
        prefix: &[KeyPart],
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<MediaInfo>, Error> {
        self.store
            .table(&MEDIA)
            .scan(
                index,
                prefix,
                Order::Descending,
                limit,
                after.map(str::as_bytes),
            )
            .await
    }

    /// Up to `limit` complete blobs of room `room_id`, newest first, after blob `after`.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn by_room(
        &self,
        room_id: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<MediaInfo>, Error> {
        self.scan(MEDIA_BY_ROOM, &[KeyPart::id(room_id)], limit, after)
            .await
    }

    /// Up to `limit` complete blobs of MIME type `mime_type`, newest first, after blob `after`.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn by_mime(
        &self,
        mime_type: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<MediaInfo>, Error> {
        self.scan(MEDIA_BY_MIME, &[KeyPart::id(mime_type)], limit, after)
            .await
    }

    /// Up to `limit` complete blobs, newest first, after blob `after`.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn recent(&self, limit: usize, after: Option<&str>) -> Result<Vec<MediaInfo>, Error> {
        self.scan(MEDIA_BY_TIME, &[], limit, after).await
    }

    /// Deletes every blob whose [`MediaInfo::sweep_at`] is at or before `now_ms`: expired
    /// blobs and uploads that never finished. Returns how many were deleted.
    ///
    /// # Errors
    /// As [`Media::delete`]; blobs deleted before an error stay deleted.
    pub async fn sweep(&self, now_ms: i64) -> Result<u64, Error> {
        let mut deleted = 0;
        loop {
            let page = self
                .store
                .table(&MEDIA)
                .scan(MEDIA_BY_SWEEP, &[], Order::Ascending, 64, None)
                .await?;
            let due: Vec<String> = page
                .into_iter()
                .take_while(|m| m.sweep_at().is_some_and(|t| t <= now_ms))
                .map(|m| m.id)
                .collect();
            if due.is_empty() {
                return Ok(deleted);
            }
            for id in due {
                if self.delete(&id).await? {
                    deleted += 1;
                }
            }
        }
    }
}

/// An upload in progress, from [`Media::upload`]. Holds at most [`FLUSH_CHUNKS`] chunks plus
/// one partial chunk in memory. Dropping it without [`MediaUpload::finish`] leaves an
/// incomplete blob that cannot be read and that [`Media::sweep`] removes.
#[derive(Debug)]
pub struct MediaUpload<'a> {
    store: &'a Tresor,
    info: MediaInfo,
    chunk_size: usize,
    buf: Vec<u8>,
    pending: Vec<Vec<u8>>,
}

impl MediaUpload<'_> {
    /// The metadata as stored so far.
    pub fn info(&self) -> &MediaInfo {
        &self.info
    }

    /// Appends `data` to the blob; full chunks are written in batches of [`FLUSH_CHUNKS`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if another upload of the same id replaced this one (or the blob
    /// was deleted); [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let take = (self.chunk_size - self.buf.len()).min(data.len());
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(self.chunk_size);
            }
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.chunk_size {
                self.pending.push(std::mem::take(&mut self.buf));
                if self.pending.len() >= FLUSH_CHUNKS {
                    self.flush(false).await?;
                }
            }
        }
        Ok(())
    }

    /// Writes the rest and marks the blob complete. Returns its metadata.
    ///
    /// # Errors
    /// As [`MediaUpload::write`].
    pub async fn finish(mut self) -> Result<MediaInfo, Error> {
        if !self.buf.is_empty() {
            self.pending.push(std::mem::take(&mut self.buf));
        }
        self.flush(true).await?;
        Ok(self.info)
    }

    async fn flush(&mut self, complete: bool) -> Result<(), Error> {
        let inner = &self.store.inner;
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        let keys = &ring.current;
        let mut batch = TypedBatch::default();
        let stored = load_info(&mut batch, inner, keys, &self.info.id).await?;
        if stored.as_ref() != Some(&self.info) {
            return Err(Error::InvalidInput(format!(
                "upload of media {} was replaced or deleted",
                self.info.id
            )));
        }
        let mut ops = WriteBatch::new();
        let mut info = self.info.clone();
        for data in &self.pending {
            let chunk = MediaChunk {
                media_id: info.id.clone(),
                upload: info.upload,
                index: info.chunks,
                data: data.clone(),
            };
            let env = Envelope::new(&MEDIA_CHUNKS, &chunk)?;
            let rk = env.record_key(keys);
            ops.put(
                TYPED_RECORDS,
                rk.clone(),
                seal_envelope(keys, &rk, &env, inner.padded)?,
            );
            info.chunks += 1;
            info.size += data.len() as u64;
        }
        info.complete = complete;
        batch.put(inner, keys, &MEDIA, &info, &mut ops).await?;
        inner.commit_locked(&mut w, ops).await?;
        self.info = info;
        self.pending.clear();
        Ok(())
    }
}

/// A reader of a stored blob, from [`Media::open`]: each [`MediaDownload::next_chunk`] reads,
/// opens and checks one chunk.
pub struct MediaDownload<'a> {
    store: &'a Tresor,
    info: MediaInfo,
    ring: Arc<Keyring>,
    next: u64,
    read: u64,
}

impl std::fmt::Debug for MediaDownload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaDownload")
            .field("info", &self.info)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl MediaDownload<'_> {
    /// The blob's metadata.
    pub fn info(&self) -> &MediaInfo {
        &self.info
    }

    /// The next chunk's bytes, `None` after the last one.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if a chunk is missing (the blob was deleted meanwhile, or
    /// damaged), does not open (altered, or moved from another blob or index), or has the
    /// wrong length; [`Error::Backend`].
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let info = &self.info;
        if self.next == info.chunks {
            if self.read != info.size {
                return Err(Error::Corrupted(format!(
                    "media {} holds {} bytes, not {}",
                    info.id, self.read, info.size
                )));
            }
            return Ok(None);
        }
        let inner = &self.store.inner;
        let pk = MediaChunk::key(&info.id, &info.upload, self.next);
        let mut retried = false;
        let bytes = loop {
            let rk = record_key(&self.ring.current, MEDIA_CHUNKS.name, &pk);
            match inner.backend.get(TYPED_RECORDS, &rk).await? {
                Some(b) => break (rk, b),
                // A key rotation moved every typed record meanwhile: look again under the new
                // keys.
                None if !retried && inner.keyring().epoch != self.ring.epoch => {
                    self.ring = inner.typed_ring().await?;
                    retried = true;
                }
                None => {
                    return Err(Error::Corrupted(format!(
                        "chunk {} of media {} is missing",
                        self.next, info.id
                    )));
                }
            }
        };
        let (rk, bytes) = bytes;
        let env = open_envelope(&self.ring.current, &rk, &bytes)?;
        if env.table != MEDIA_CHUNKS.name || env.pk != pk {
            return Err(Error::Corrupted(format!(
                "chunk {} of media {} holds another record",
                self.next, info.id
            )));
        }
        let chunk: MediaChunk = env.decode()?;
        let len = chunk.data.len() as u64;
        let last = self.next + 1 == info.chunks;
        let size_ok = if last {
            len >= 1 && len <= u64::from(info.chunk_size)
        } else {
            len == u64::from(info.chunk_size)
        };
        if !size_ok || chunk.index != self.next {
            return Err(Error::Corrupted(format!(
                "chunk {} of media {} has the wrong length",
                self.next, info.id
            )));
        }
        self.next += 1;
        self.read += len;
        Ok(Some(chunk.data))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{MemoryBackend, Options};

    async fn store() -> Tresor {
        Tresor::with_backend(
            MemoryBackend::new(),
            tresor_crypto::RawKey::generate().unwrap().into(),
            Options::default(),
        )
        .await
        .unwrap()
    }

    fn chunk_key(s: &Tresor, info: &MediaInfo, i: u64) -> Vec<u8> {
        let ring = s.inner.keyring();
        record_key(
            &ring.current,
            MEDIA_CHUNKS.name,
            &MediaChunk::key(&info.id, &info.upload, i),
        )
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn swapped_moved_and_truncated_chunks_are_detected() {
        let s = store().await;
        let media = s.media();
        let a = media
            .put(
                NewMedia::new("a", "image/png", 1).with_chunk_size(1024),
                &data(4000),
            )
            .await
            .unwrap();
        let b = media
            .put(
                NewMedia::new("b", "image/png", 2).with_chunk_size(1024),
                &data(4000),
            )
            .await
            .unwrap();
        assert_eq!(a.chunks, 4);
        assert_eq!(media.read("a").await.unwrap().unwrap(), data(4000));
        let backend = &s.inner.backend;
        let get =
            |k: Vec<u8>| async move { backend.get(TYPED_RECORDS, &k).await.unwrap().unwrap() };
        let put = |k: Vec<u8>, v: Vec<u8>| async move {
            let mut ops = WriteBatch::new();
            ops.put(TYPED_RECORDS, k, v);
            backend
                .commit(ops, tresor_backend::Durability::Immediate)
                .await
                .unwrap();
        };
        let (c0, c1) = (
            get(chunk_key(&s, &a, 0)).await,
            get(chunk_key(&s, &a, 1)).await,
        );

        // Chunks 0 and 1 of a swapped.
        put(chunk_key(&s, &a, 0), c1.clone()).await;
        put(chunk_key(&s, &a, 1), c0.clone()).await;
        assert!(matches!(media.read("a").await, Err(Error::Corrupted(_))));
        put(chunk_key(&s, &a, 0), c0.clone()).await;
        put(chunk_key(&s, &a, 1), c1.clone()).await;
        assert_eq!(media.read("a").await.unwrap().unwrap(), data(4000));

        // Chunk 0 of b moved into a.
        put(chunk_key(&s, &a, 0), get(chunk_key(&s, &b, 0)).await).await;
        assert!(matches!(media.read("a").await, Err(Error::Corrupted(_))));
        put(chunk_key(&s, &a, 0), c0).await;

        // The last chunk removed (truncation), then a flipped bit.
        let c3 = get(chunk_key(&s, &a, 3)).await;
        let mut ops = WriteBatch::new();
        ops.delete(TYPED_RECORDS, chunk_key(&s, &a, 3));
        backend
            .commit(ops, tresor_backend::Durability::Immediate)
            .await
            .unwrap();
        let mut d = media.open("a").await.unwrap().unwrap();
        for _ in 0..3 {
            assert!(d.next_chunk().await.unwrap().is_some());
        }
        assert!(matches!(d.next_chunk().await, Err(Error::Corrupted(_))));
        let mut flipped = c3;
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        put(chunk_key(&s, &a, 3), flipped).await;
        assert!(matches!(media.read("a").await, Err(Error::Corrupted(_))));
        // b was never touched.
        assert_eq!(media.read("b").await.unwrap().unwrap(), data(4000));
    }

    #[tokio::test]
    async fn replacing_and_deleting_remove_every_chunk() {
        let s = store().await;
        let media = s.media();
        let first = media
            .put(
                NewMedia::new("m", "video/mp4", 1).with_chunk_size(100),
                &data(950),
            )
            .await
            .unwrap();
        let second = media
            .put(
                NewMedia::new("m", "video/mp4", 2).with_chunk_size(100),
                &data(150),
            )
            .await
            .unwrap();
        let backend = &s.inner.backend;
        for i in 0..first.chunks {
            assert!(
                backend
                    .get(TYPED_RECORDS, &chunk_key(&s, &first, i))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert_eq!(media.read("m").await.unwrap().unwrap(), data(150));
        assert!(media.delete("m").await.unwrap());
        for i in 0..second.chunks {
            assert!(
                backend
                    .get(TYPED_RECORDS, &chunk_key(&s, &second, i))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert!(media.info("m").await.unwrap().is_none());
        assert!(!media.delete("m").await.unwrap());
    }
}
