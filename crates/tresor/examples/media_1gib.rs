//! A 1 GiB media blob streamed into a redb store and back, with peak memory (VmHWM from
//! /proc/self/status) reported before and after: `cargo xtask media-1gib` runs it (release).
//! `TRESOR_MEDIA_BYTES` changes the size (bytes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use tresor::{BackendKind, NewMedia, Options, RawKey, Tresor};

/// Peak resident set size of this process in KiB (Linux), if known.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The byte at offset `i` of the blob: a cheap function of `i`, so no copy is kept.
fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total: u64 = std::env::var("TRESOR_MEDIA_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let dir = tempfile::tempdir().expect("temp dir");
    let key = RawKey::generate().expect("random key");
    // TRESOR_MEDIA_BACKEND=sqlite stores it in SQLite (whose page cache is small) instead of
    // redb (whose page cache grows up to 1 GiB by default, counted in VmHWM).
    let sqlite = std::env::var("TRESOR_MEDIA_BACKEND").is_ok_and(|b| b == "sqlite");
    let kind = if sqlite {
        BackendKind::Sqlite
    } else {
        BackendKind::Redb
    };
    println!("backend: {kind:?}");
    let path = dir
        .path()
        .join(if sqlite { "media.sqlite" } else { "media.redb" });
    let store = Tresor::create_with(
        &path,
        key.into(),
        Options::default().with_backend_kind(kind),
    )
    .await
    .expect("create store");
    let base = vm_hwm_kib();
    println!("blob: {total} bytes; VmHWM after open: {base:?} KiB");

    let media = store.media();
    let started = Instant::now();
    let mut up = media
        .upload(NewMedia::new("mxc://bench/1gib", "video/mp4", 0).in_room("!bench:x"))
        .await
        .expect("upload");
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    while at < total {
        let n = (total - at).min(buf.len() as u64) as usize;
        for (j, b) in buf[..n].iter_mut().enumerate() {
            *b = byte_at(at + j as u64);
        }
        up.write(&buf[..n]).await.expect("write");
        at += n as u64;
    }
    let info = up.finish().await.expect("finish");
    let put_s = started.elapsed().as_secs_f64();
    let after_put = vm_hwm_kib();
    println!(
        "put: {:.1} s, {:.1} MiB/s, {} chunks; VmHWM {after_put:?} KiB",
        put_s,
        total as f64 / 1048576.0 / put_s,
        info.chunks
    );

    let started = Instant::now();
    let mut down = media
        .open("mxc://bench/1gib")
        .await
        .expect("open")
        .expect("stored");
    let mut at = 0u64;
    while let Some(chunk) = down.next_chunk().await.expect("chunk") {
        for (j, b) in chunk.iter().enumerate() {
            assert_eq!(*b, byte_at(at + j as u64), "byte {} differs", at + j as u64);
        }
        at += chunk.len() as u64;
    }
    assert_eq!(at, total, "every byte came back");
    let get_s = started.elapsed().as_secs_f64();
    let after_get = vm_hwm_kib();
    let file = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "get: {:.1} s, {:.1} MiB/s; VmHWM {after_get:?} KiB; store file {} MiB",
        get_s,
        total as f64 / 1048576.0 / get_s,
        file / 1048576
    );
    if let (Some(b), Some(p)) = (base, after_get) {
        println!(
            "peak growth over the open store: {} KiB ({:.1} chunks of 255 KiB)",
            p.saturating_sub(b),
            p.saturating_sub(b) as f64 / 255.0
        );
    }
}
