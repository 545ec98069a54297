//! A backend opened with a page cache far smaller than its data still reads every value back,
//! before and after a reopen (the cache bound changes memory use, never answers).

use tresor_backend::{Backend, Direction, Durability, KeyRange, WriteBatch};
use tresor_redb::{DEFAULT_CACHE_BYTES, RedbBackend, RedbConfig};

#[test]
fn default_cache_bound_is_64_mib() {
    assert_eq!(RedbConfig::default().cache_bytes, 64 << 20);
    assert_eq!(DEFAULT_CACHE_BYTES, 64 << 20);
    assert_eq!(RedbConfig::default().with_cache_bytes(1).cache_bytes, 1);
}

#[tokio::test]
async fn tiny_cache_reads_back_more_than_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let config = RedbConfig::default().with_cache_bytes(256 * 1024);
    let value = |i: u32| vec![(i % 251) as u8; 16 * 1024];
    {
        let b = RedbBackend::open_with_config(&path, config).unwrap();
        // 8 MiB of values through a 256 KiB cache, in 4 batches.
        for chunk in 0..4u32 {
            let mut batch = WriteBatch::new();
            for i in chunk * 128..(chunk + 1) * 128 {
                batch.put("t", i.to_be_bytes().to_vec(), value(i));
            }
            b.commit(batch, Durability::Immediate).await.unwrap();
        }
        assert_eq!(
            b.get("t", &7u32.to_be_bytes()).await.unwrap(),
            Some(value(7))
        );
    }
    let b = RedbBackend::open_existing_with_config(&path, config).unwrap();
    let all = b
        .scan("t", KeyRange::all(), Direction::Forward, usize::MAX)
        .await
        .unwrap();
    assert_eq!(all.len(), 512);
    for (i, (k, v)) in all.iter().enumerate() {
        assert_eq!(k, &(i as u32).to_be_bytes().to_vec());
        assert_eq!(v, &value(i as u32));
    }
}
