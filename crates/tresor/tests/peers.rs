//! Peers for reconnection: every operation, scoring, atomic attempts, quotas, export/import.
#![allow(clippy::unwrap_used)]

mod common;

use tresor::{
    ConnectionQuality, ConnectionType, Error, EvictionPolicy, Order, Peer, PeerConfig, PeerQuery,
    PeerRetention, PeerSort, RawKey, Secret,
};

use common::memory_store;

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
const NOW: i64 = 1_700_000_000_000;

fn peer(id: &str, last_seen: i64) -> Peer {
    let mut p = Peer::new(id, vec![1; 32], last_seen - DAY);
    p.last_seen_ms = last_seen;
    p.display_name = Some(format!("Peer {id}"));
    p.shared_secret = Some(vec![9; 32]);
    p.last_address = Some("192.0.2.1:4000".into());
    p.ice_candidates = vec!["candidate:1 1 udp 2122260223 192.0.2.1 4000 typ host".into()];
    p
}

fn quality(latency: u32, success: f64, kind: ConnectionType) -> ConnectionQuality {
    ConnectionQuality {
        latency_ms: Some(latency),
        success_rate: Some(success),
        connection_type: Some(kind),
        avg_uptime_s: Some(600),
    }
}

fn ids(ps: &[Peer]) -> Vec<&str> {
    ps.iter().map(|p| p.peer_id.as_str()).collect()
}

#[tokio::test]
async fn upsert_get_touch_quality_remove() {
    let store = memory_store().await;
    let peers = store.peers();
    let mut a = peer("a", NOW);
    peers.upsert(&a).await.unwrap();
    assert_eq!(peers.get("a").await.unwrap(), Some(a.clone()));
    a.display_name = Some("Alice".into());
    peers.upsert(&a).await.unwrap();
    assert_eq!(
        peers
            .get("a")
            .await
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Alice")
    );

    let t = peers.touch("a", NOW + 5).await.unwrap().unwrap();
    assert_eq!(t.last_seen_ms, NOW + 5);
    let t = peers.touch("a", NOW - 5).await.unwrap().unwrap();
    assert_eq!(t.last_seen_ms, NOW + 5, "last seen never moves back");
    assert!(peers.touch("nobody", NOW).await.unwrap().is_none());

    peers
        .update_quality("a", &quality(40, 0.9, ConnectionType::Srflx))
        .await
        .unwrap();
    let merged = peers
        .update_quality(
            "a",
            &ConnectionQuality {
                latency_ms: Some(20),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(merged.quality.latency_ms, Some(20));
    assert_eq!(merged.quality.success_rate, Some(0.9));
    assert_eq!(merged.quality.connection_type, Some(ConnectionType::Srflx));

    let stats = peers.stats().await.unwrap();
    assert_eq!(stats.count, 1);
    assert!(stats.bytes > 100, "{stats:?}");
    assert!(peers.remove("a").await.unwrap());
    assert!(!peers.remove("a").await.unwrap());
    let stats = peers.stats().await.unwrap();
    assert_eq!((stats.count, stats.bytes), (0, 0));
}

#[tokio::test]
async fn attempts_blacklist_and_success_resets() {
    let store = memory_store().await;
    let peers = store.peers_with(PeerConfig::default().with_blacklist(3, H));
    peers.upsert(&peer("a", NOW)).await.unwrap();
    for n in 1..=2 {
        let o = peers.record_attempt("a", NOW).await.unwrap().unwrap();
        assert_eq!((o.attempts, o.blacklisted_until_ms), (n, None));
    }
    let o = peers.record_attempt("a", NOW + 7).await.unwrap().unwrap();
    assert_eq!((o.attempts, o.blacklisted_until_ms), (3, Some(NOW + 7 + H)));
    assert!(
        peers
            .get("a")
            .await
            .unwrap()
            .unwrap()
            .is_blacklisted(NOW + H)
    );
    assert!(peers.record_attempt("zz", NOW).await.unwrap().is_none());

    // Candidates leave it out while blacklisted.
    assert!(
        peers
            .reconnection_candidates(NOW, 10, DAY)
            .await
            .unwrap()
            .is_empty()
    );
    // Not yet expired: nothing cleared.
    assert_eq!(peers.clear_expired_blacklists(NOW + H).await.unwrap(), 0);
    assert_eq!(
        peers.clear_expired_blacklists(NOW + 7 + H).await.unwrap(),
        1
    );
    let p = peers.get("a").await.unwrap().unwrap();
    assert_eq!((p.reconnection_attempts, p.blacklisted_until_ms), (0, None));

    peers.record_attempt("a", NOW).await.unwrap();
    let p = peers.record_success("a", NOW + 100).await.unwrap().unwrap();
    assert_eq!(p.reconnection_attempts, 0);
    assert_eq!(p.last_connected_ms, Some(NOW + 100));
    assert_eq!(p.last_seen_ms, NOW + 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_attempts_never_lose_an_increment() {
    let store = memory_store().await;
    let config = PeerConfig::default().with_blacklist(1_000, H);
    store
        .peers_with(config)
        .upsert(&peer("a", NOW))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                store
                    .peers_with(config)
                    .record_attempt("a", NOW + t * 100 + i)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let p = store.peers().get("a").await.unwrap().unwrap();
    assert_eq!(p.reconnection_attempts, 400);
    assert_eq!(p.blacklisted_until_ms, None, "400 < 1000 failures");
    assert_eq!(store.peers().stats().await.unwrap().count, 1);
}

#[tokio::test]
async fn query_sorts_filters_and_pages() {
    let store = memory_store().await;
    let peers = store.peers();
    for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let mut p = peer(id, NOW - i as i64 * H);
        p.quality = quality(
            10 + 100 * i as u32,
            1.0 - 0.2 * i as f64,
            ConnectionType::Host,
        );
        if i % 2 == 0 {
            p.last_connected_ms = Some(NOW - 10 * H + i as i64);
        }
        peers.upsert(&p).await.unwrap();
    }
    peers.record_attempt("b", NOW).await.unwrap();
    let q = PeerQuery::new(NOW, 10);
    assert_eq!(
        ids(&peers.query(&q).await.unwrap()),
        ["a", "b", "c", "d", "e"]
    );
    let asc = q.clone().sorted(PeerSort::LastSeen, Order::Ascending);
    assert_eq!(
        ids(&peers.query(&asc).await.unwrap()),
        ["e", "d", "c", "b", "a"]
    );
    let best = q.clone().sorted(PeerSort::Quality, Order::Descending);
    assert_eq!(
        ids(&peers.query(&best).await.unwrap()),
        ["a", "b", "c", "d", "e"]
    );
    let connected = q.clone().sorted(PeerSort::LastConnected, Order::Descending);
    assert_eq!(
        ids(&peers.query(&connected).await.unwrap()),
        ["e", "c", "a"]
    );

    // Filters.
    let good = best.clone().min_quality(0.6);
    let got = peers.query(&good).await.unwrap();
    assert!(got.iter().all(|p| p.quality.score() >= 0.6) && !got.is_empty());
    assert!(got.len() < 5);
    assert_eq!(
        ids(&peers.query(&q.clone().max_age(2 * H)).await.unwrap()),
        ["a", "b", "c"]
    );
    store
        .peers_with(PeerConfig::default().with_blacklist(1, H))
        .record_attempt("b", NOW)
        .await
        .unwrap();
    assert_eq!(
        ids(&peers.query(&q.clone().exclude_blacklisted()).await.unwrap()),
        ["a", "c", "d", "e"]
    );

    // Paging with a cursor returns every peer once.
    let mut seen = Vec::new();
    let mut page = PeerQuery::new(NOW, 2);
    loop {
        let got = peers.query(&page).await.unwrap();
        if got.is_empty() {
            break;
        }
        seen.extend(got.iter().map(|p| p.peer_id.clone()));
        page = page.after(got.last().unwrap().peer_id.clone());
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert!(matches!(
        peers.query(&PeerQuery::new(NOW, 2).after("nobody")).await,
        Err(Error::CursorNotFound)
    ));
}

#[tokio::test]
async fn candidates_follow_the_documented_score() {
    let store = memory_store().await;
    let peers = store.peers();
    // Same quality, seen now vs a day ago: the recent one scores twice as high.
    let mut fresh = peer("fresh", NOW);
    fresh.quality = quality(50, 0.8, ConnectionType::Srflx);
    let mut stale = peer("stale", NOW - DAY);
    stale.quality = fresh.quality;
    // Better quality but 3 failed attempts.
    let mut flaky = peer("flaky", NOW);
    flaky.quality = quality(0, 1.0, ConnectionType::Host);
    flaky.reconnection_attempts = 3;
    // Too old for max_age.
    let ancient = peer("ancient", NOW - 30 * DAY);
    for p in [&fresh, &stale, &flaky, &ancient] {
        peers.upsert(p).await.unwrap();
    }
    let c = peers
        .reconnection_candidates(NOW, 10, 7 * DAY)
        .await
        .unwrap();
    let got: Vec<&str> = c.iter().map(|c| c.peer.peer_id.as_str()).collect();
    assert_eq!(got, ["fresh", "stale", "flaky"]);
    let q = fresh.quality.score();
    assert!((c[0].score - q).abs() < 1e-9);
    assert!((c[1].score - q / 2.0).abs() < 1e-9);
    // 0.4 + 0.3 + 0.2 + 0.1 * (600 / 3600) = 0.91666…, over 4.
    assert!((c[2].score - (0.9 + 0.1 / 6.0) / 4.0).abs() < 1e-9);
    assert_eq!(
        peers
            .reconnection_candidates(NOW, 1, 7 * DAY)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn cleanup_keep_best_and_clear() {
    let store = memory_store().await;
    let peers = store.peers();
    let mut active_old = peer("active-old", NOW - 20 * DAY);
    active_old.last_connected_ms = Some(NOW - 20 * DAY);
    let mut active_recent = peer("active-recent", NOW - 5 * DAY);
    active_recent.last_connected_ms = Some(NOW - 5 * DAY);
    let inactive_old = peer("inactive-old", NOW - 5 * DAY);
    let inactive_new = peer("inactive-new", NOW - DAY);
    for p in [&active_old, &active_recent, &inactive_old, &inactive_new] {
        peers.upsert(p).await.unwrap();
    }
    // Active peers kept 14 days, inactive ones 3 days.
    assert_eq!(
        peers.cleanup(NOW, PeerRetention::new(14, 3)).await.unwrap(),
        2
    );
    let left = peers.query(&PeerQuery::new(NOW, 10)).await.unwrap();
    assert_eq!(ids(&left), ["inactive-new", "active-recent"]);
    assert_eq!(peers.stats().await.unwrap().count, 2);

    for i in 0..5 {
        peers
            .upsert(&peer(&format!("p{i}"), NOW + i))
            .await
            .unwrap();
    }
    assert_eq!(peers.keep_best(3, PeerSort::LastSeen).await.unwrap(), 4);
    let left = peers.query(&PeerQuery::new(NOW, 10)).await.unwrap();
    assert_eq!(ids(&left), ["p4", "p3", "p2"]);
    assert_eq!(peers.clear().await.unwrap(), 3);
    assert!(
        peers
            .query(&PeerQuery::new(NOW, 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(peers.stats().await.unwrap().count, 0);
}

#[tokio::test]
async fn quotas_reject_or_evict() {
    let store = memory_store().await;
    let reject =
        store.peers_with(PeerConfig::default().with_quota(Some(2), None, EvictionPolicy::Reject));
    reject.upsert(&peer("a", NOW)).await.unwrap();
    reject.upsert(&peer("b", NOW + 1)).await.unwrap();
    assert!(matches!(
        reject.upsert(&peer("c", NOW + 2)).await,
        Err(Error::QuotaExceeded {
            what: "peers",
            limit: 2
        })
    ));
    assert!(reject.get("c").await.unwrap().is_none(), "nothing written");
    // Replacing an existing peer is fine.
    reject.upsert(&peer("a", NOW + 3)).await.unwrap();
    let stats = reject.stats().await.unwrap();
    assert_eq!(stats.count, 2);
    assert!((stats.utilization - 1.0).abs() < 1e-12);

    let lru = store.peers_with(PeerConfig::default().with_quota(
        Some(2),
        None,
        EvictionPolicy::LeastRecentlySeen,
    ));
    lru.upsert(&peer("c", NOW + 2)).await.unwrap();
    assert!(
        lru.get("b").await.unwrap().is_none(),
        "b was least recently seen"
    );
    assert!(lru.get("a").await.unwrap().is_some() && lru.get("c").await.unwrap().is_some());

    let mut low = peer("low", NOW);
    low.quality = quality(900, 0.1, ConnectionType::Relay);
    let by_quality = store.peers_with(PeerConfig::default().with_quota(
        Some(2),
        None,
        EvictionPolicy::LowestQuality,
    ));
    by_quality.upsert(&low).await.unwrap();
    let mut high = peer("high", NOW);
    high.quality = quality(1, 1.0, ConnectionType::Host);
    by_quality.upsert(&high).await.unwrap();
    assert!(by_quality.get("low").await.unwrap().is_none());
    assert_eq!(by_quality.stats().await.unwrap().count, 2);

    // A byte quota.
    let size = by_quality.stats().await.unwrap().bytes;
    let bytes = store.peers_with(PeerConfig::default().with_quota(
        None,
        Some(size),
        EvictionPolicy::Reject,
    ));
    let mut big = peer("high", NOW);
    big.ice_candidates = vec!["x".repeat(1000)];
    assert!(matches!(
        bytes.upsert(&big).await,
        Err(Error::QuotaExceeded {
            what: "peer bytes",
            ..
        })
    ));
}

#[tokio::test]
async fn export_import_round_trip_encrypted() {
    let source = memory_store().await;
    let peers = source.peers();
    let mut a = peer("alice-peer", NOW);
    a.quality = quality(30, 0.7, ConnectionType::Relay);
    a.blacklisted_until_ms = Some(NOW + H);
    let b = peer("bob-peer", NOW - H);
    peers.upsert(&a).await.unwrap();
    peers.upsert(&b).await.unwrap();
    let key = RawKey::generate().unwrap();
    let file = peers.export(&Secret::from(key.clone())).await.unwrap();
    assert!(file.starts_with(tresor::EXPORT_MAGIC));
    for needle in [b"alice-peer".as_slice(), b"192.0.2.1", &[9; 32]] {
        assert!(
            !file.windows(needle.len()).any(|w| w == needle),
            "plaintext leaked"
        );
    }

    let target = memory_store().await;
    assert_eq!(
        target
            .peers()
            .import(&file, &Secret::from(key.clone()))
            .await
            .unwrap(),
        2
    );
    assert_eq!(target.peers().get("alice-peer").await.unwrap(), Some(a));
    assert_eq!(target.peers().get("bob-peer").await.unwrap(), Some(b));
    assert_eq!(target.peers().stats().await.unwrap().count, 2);

    let other = Secret::from(RawKey::generate().unwrap());
    assert!(matches!(
        target.peers().import(&file, &other).await,
        Err(Error::WrongPassphrase)
    ));
    let mut bad = file.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        target
            .peers()
            .import(&bad, &Secret::from(key.clone()))
            .await,
        Err(Error::Corrupted(_))
    ));
    assert!(matches!(
        target.peers().import(b"nonsense", &Secret::from(key)).await,
        Err(Error::InvalidInput(_))
    ));

    // A passphrase export (stretched with the store's KDF).
    let file = peers.export(&"export pass".into()).await.unwrap();
    let third = memory_store().await;
    assert_eq!(
        third
            .peers()
            .import(&file, &"export pass".into())
            .await
            .unwrap(),
        2
    );
}
