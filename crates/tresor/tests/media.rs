//! Encrypted media blobs: streamed round trips, indexes, sweeping, incomplete uploads.
//! (Tampering with chunks is tested in `src/media.rs`, which can name chunk keys; the 1 GiB
//! round trip is `cargo xtask media-1gib`.)
#![allow(clippy::unwrap_used)]

mod common;

use tresor::{DEFAULT_CHUNK_SIZE, Error, INCOMPLETE_GRACE_MS, NewMedia, Tresor};

use common::{PASS, memory_store};

/// Deterministic pseudo-random bytes (xorshift), so a misplaced chunk shows.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn eight_mib_streams_in_and_out_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let store = Tresor::create(dir.path().join("m.redb"), PASS.into())
        .await
        .unwrap();
    let media = store.media();
    let blob = bytes(7, 8 * 1024 * 1024 + 12_345);
    let mut up = media
        .upload(
            NewMedia::new("mxc://example.org/abc", "video/mp4", 1_000)
                .in_room("!room:example.org")
                .with_thumbnail(vec![0xFF, 0xD8, 0xFF]),
        )
        .await
        .unwrap();
    // Odd-sized writes cross chunk boundaries.
    for part in blob.chunks(100_003) {
        up.write(part).await.unwrap();
    }
    let info = up.finish().await.unwrap();
    assert_eq!(info.size, blob.len() as u64);
    assert_eq!(
        info.chunks,
        blob.len().div_ceil(DEFAULT_CHUNK_SIZE as usize) as u64
    );
    assert!(info.complete);

    let mut down = media.open("mxc://example.org/abc").await.unwrap().unwrap();
    let mut at = 0;
    let mut largest = 0;
    while let Some(chunk) = down.next_chunk().await.unwrap() {
        assert_eq!(chunk, blob[at..at + chunk.len()]);
        at += chunk.len();
        largest = largest.max(chunk.len());
    }
    assert_eq!(at, blob.len());
    assert_eq!(largest, DEFAULT_CHUNK_SIZE as usize, "one chunk at a time");
    let got = media.info("mxc://example.org/abc").await.unwrap().unwrap();
    assert_eq!(got.thumbnail, Some(vec![0xFF, 0xD8, 0xFF]));

    // Nothing of the blob is stored in clear.
    drop(store);
    let file = std::fs::read(dir.path().join("m.redb")).unwrap();
    let probe = &blob[1_000_000..1_000_032];
    assert!(!file.windows(probe.len()).any(|w| w == probe));
    assert!(!file.windows(11).any(|w| w == b"example.org"));
}

#[tokio::test]
async fn small_and_empty_blobs_and_indexes() {
    let store = memory_store().await;
    let media = store.media();
    media
        .put(NewMedia::new("a", "image/png", 10).in_room("r1"), b"png")
        .await
        .unwrap();
    media
        .put(NewMedia::new("b", "image/jpeg", 20).in_room("r1"), b"jpeg")
        .await
        .unwrap();
    media
        .put(NewMedia::new("c", "image/png", 30).in_room("r2"), b"")
        .await
        .unwrap();
    assert_eq!(media.read("c").await.unwrap().unwrap(), b"");
    assert_eq!(media.read("a").await.unwrap().unwrap(), b"png");
    assert!(media.read("zzz").await.unwrap().is_none());
    let ids = |v: Vec<tresor::MediaInfo>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(media.by_room("r1", 10, None).await.unwrap()),
        ["b", "a"]
    );
    assert_eq!(ids(media.by_room("r1", 1, Some("b")).await.unwrap()), ["a"]);
    assert_eq!(
        ids(media.by_mime("image/png", 10, None).await.unwrap()),
        ["c", "a"]
    );
    assert_eq!(ids(media.recent(10, None).await.unwrap()), ["c", "b", "a"]);
    assert!(matches!(
        media
            .upload(NewMedia::new("x", "a/b", 0).with_chunk_size(0))
            .await,
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn sweep_removes_expired_and_abandoned_uploads() {
    let store = memory_store().await;
    let media = store.media();
    media
        .put(
            NewMedia::new("old", "text/plain", 0).expires_at(100),
            b"bye",
        )
        .await
        .unwrap();
    media
        .put(
            NewMedia::new("later", "text/plain", 0).expires_at(1_000),
            b"later",
        )
        .await
        .unwrap();
    media
        .put(NewMedia::new("keep", "text/plain", 0), b"forever")
        .await
        .unwrap();
    // An upload that never finishes: invisible, swept after the grace period.
    let mut up = media
        .upload(NewMedia::new("partial", "text/plain", 50).with_chunk_size(4))
        .await
        .unwrap();
    up.write(&[1; 40]).await.unwrap();
    drop(up);
    assert!(media.open("partial").await.unwrap().is_none());
    assert!(!media.info("partial").await.unwrap().unwrap().complete);

    assert_eq!(media.sweep(99).await.unwrap(), 0);
    assert_eq!(media.sweep(100).await.unwrap(), 1);
    assert!(media.info("old").await.unwrap().is_none());
    assert_eq!(media.sweep(1_000).await.unwrap(), 1);
    assert_eq!(media.sweep(50 + INCOMPLETE_GRACE_MS).await.unwrap(), 1);
    assert!(media.info("partial").await.unwrap().is_none());
    assert_eq!(media.read("keep").await.unwrap().unwrap(), b"forever");
    assert_eq!(media.sweep(i64::MAX).await.unwrap(), 0);
}

#[tokio::test]
async fn a_replaced_upload_cannot_continue() {
    let store = memory_store().await;
    let media = store.media();
    let mut first = media
        .upload(NewMedia::new("m", "text/plain", 0).with_chunk_size(2))
        .await
        .unwrap();
    media
        .put(NewMedia::new("m", "text/plain", 1), b"second")
        .await
        .unwrap();
    first.write(&[0; 100]).await.unwrap_err();
    assert_eq!(media.read("m").await.unwrap().unwrap(), b"second");
}

/// Peers, media and Matrix state are ordinary typed records: the integrity check finds them
/// consistent, and a key rotation re-seals them (chunks included) so everything still reads.
#[tokio::test]
async fn check_and_key_rotation_cover_peers_media_and_room_state() {
    let store = memory_store().await;
    let blob = bytes(3, 600_000);
    store
        .media()
        .put(NewMedia::new("m", "image/png", 1).in_room("!r:x"), &blob)
        .await
        .unwrap();
    store
        .peers()
        .upsert(&tresor::Peer::new("p", vec![1; 32], 5))
        .await
        .unwrap();
    let ev = tresor::MatrixEvent::new("$1", "m.room.name", "@a:x", 7)
        .with_state_key("")
        .with_content(serde_json::json!({"name": "Room"}));
    store.matrix("@a:x").apply("!r:x", &ev).await.unwrap();
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{report:?}");

    store.rotate_key().await.unwrap();
    assert_eq!(store.media().read("m").await.unwrap().unwrap(), blob);
    assert_eq!(
        store.media().by_room("!r:x", 10, None).await.unwrap().len(),
        1
    );
    assert_eq!(store.peers().stats().await.unwrap().count, 1);
    assert!(store.peers().get("p").await.unwrap().is_some());
    let room = store.matrix("@a:x").room("!r:x").await.unwrap().unwrap();
    assert_eq!(room.name.as_deref(), Some("Room"));
    assert!(store.check().await.unwrap().is_clean());
}
