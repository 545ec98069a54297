//! Keys through the facade: passphrase change, raw keys, seal counting, key rotation (online,
//! resumable, automatic), padding, and secrets kept out of every message.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use common::{PASS, msg};
use tresor::{
    Backend, Durability, Error, KdfParams, MemoryBackend, Message, Options, RawKey, Secret, Tresor,
    restore_backup, verify_backup,
};
use tresor_backend::{BackendError, BackendStats, Direction, Entry, KeyRange, WriteBatch};
use zeroize::Zeroizing;

fn raw(b: u8) -> RawKey {
    RawKey::new(Zeroizing::new([b; 32]))
}

fn cheap() -> Options {
    Options::default()
        .with_kdf(KdfParams::PBKDF2_OWASP)
        .with_background_rotation(false)
}

fn sample(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            msg(
                &format!("m{i}"),
                &format!("c{}", i % 7),
                &format!("p{}", i % 5),
                Some(&format!("p{}", (i + 1) % 5)),
                1_600_000_000_000 + (i / 3) as i64 * 1000,
                &format!("message body number {i}"),
            )
        })
        .collect()
}

/// Every answer the store gives, to compare before and after.
async fn answers(store: &Tresor) -> Vec<Vec<(String, String, u64)>> {
    let m = store.messages();
    let flat = |v: Vec<Message>| -> Vec<(String, String, u64)> {
        v.into_iter().map(|m| (m.id, m.body, m.seq)).collect()
    };
    let mut out = vec![flat(m.recent(10_000, None).await.unwrap())];
    for c in 0..7 {
        out.push(flat(
            m.by_conversation(&format!("c{c}"), 10_000, None)
                .await
                .unwrap(),
        ));
    }
    for p in 0..5 {
        out.push(flat(
            m.by_peer(&format!("p{p}"), 10_000, None).await.unwrap(),
        ));
    }
    // A paged walk with cursors gives the same as one page.
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = m.by_conversation("c3", 4, before.as_deref()).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|x| x.id.clone());
        paged.extend(page);
    }
    out.push(flat(paged));
    let s = store.stats().await.unwrap();
    out.push(vec![(
        "stats".into(),
        format!("{} {} {}", s.messages, s.conversations, s.peers),
        0,
    )]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_change_rewraps_and_backups_follow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Tresor::create_with(&path, PASS.into(), cheap())
        .await
        .unwrap();
    store.messages().save_batch(&sample(50)).await.unwrap();
    let before = answers(&store).await;
    let old_backup = store.backup_to_dir(dir.path().join("b1")).await.unwrap();
    let seals = store.key_info().await.unwrap().seals;

    // A wrong current passphrase changes nothing.
    let err = store
        .change_passphrase("nope".into(), "new pass".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase), "{err:?}");
    store
        .change_passphrase(PASS.into(), "new pass".into())
        .await
        .unwrap();
    // O(1): no record was re-sealed.
    assert_eq!(store.key_info().await.unwrap().seals, seals);
    let new_backup = store.backup_to_dir(dir.path().join("b2")).await.unwrap();
    drop(store);

    let err = Tresor::open(&path, PASS.into()).await.unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase), "{err:?}");
    let store = Tresor::open(&path, "new pass".into()).await.unwrap();
    assert_eq!(answers(&store).await, before);
    drop(store);

    // Backups keep the secret they were made with.
    verify_backup(&old_backup.path, PASS.into()).await.unwrap();
    let err = verify_backup(&new_backup.path, PASS.into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase), "{err:?}");
    let (restored, _) = restore_backup(
        &new_backup.path,
        dir.path().join("r.redb"),
        "new pass".into(),
    )
    .await
    .unwrap();
    assert_eq!(answers(&restored).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_key_stores_open_only_with_their_key_and_switch_by_rewrap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.redb");
    let store = Tresor::create(&path, raw(7).into()).await.unwrap();
    store.messages().save_batch(&sample(20)).await.unwrap();
    let before = answers(&store).await;
    assert_eq!(store.key_info().await.unwrap().kdf, KdfParams::RawKey);
    let backup = store.backup_to_dir(dir.path().join("b")).await.unwrap();
    drop(store);

    let err = Tresor::open(&path, raw(8).into()).await.unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase), "{err:?}");
    let err = Tresor::open(&path, PASS.into()).await.unwrap_err();
    assert!(err.to_string().contains("raw key"), "{err}");

    // The backup verifies and restores with the raw key alone.
    verify_backup(&backup.path, raw(7).into()).await.unwrap();
    assert!(verify_backup(&backup.path, raw(9).into()).await.is_err());
    let (restored, _) = restore_backup(&backup.path, dir.path().join("r.redb"), raw(7).into())
        .await
        .unwrap();
    assert_eq!(answers(&restored).await, before);
    drop(restored);

    // Raw key -> passphrase -> another raw key: each a re-wrap of the same data key.
    let store = Tresor::open_with(&path, raw(7).into(), cheap())
        .await
        .unwrap();
    store
        .change_passphrase(raw(7).into(), PASS.into())
        .await
        .unwrap();
    assert_eq!(store.key_info().await.unwrap().kdf, KdfParams::PBKDF2_OWASP);
    drop(store);
    let store = Tresor::open(&path, PASS.into()).await.unwrap();
    assert_eq!(answers(&store).await, before);
    store
        .change_passphrase(PASS.into(), raw(9).into())
        .await
        .unwrap();
    drop(store);
    let store = Tresor::open(&path, raw(9).into()).await.unwrap();
    assert_eq!(answers(&store).await, before);
}

#[tokio::test]
async fn seals_are_counted_per_batch_and_reported() {
    let backend = MemoryBackend::new();
    let store = Tresor::with_backend(backend.clone(), PASS.into(), cheap())
        .await
        .unwrap();
    let info = store.key_info().await.unwrap();
    assert_eq!(info.seals, 0);
    assert_eq!(info.header_version, 1);
    assert!(info.key_created_ms.unwrap() > 1_600_000_000_000);
    assert_eq!(info.seal_limit, tresor::DEFAULT_SEAL_LIMIT);
    assert!(!info.padded && info.rotation.is_none());
    // 35 messages in 7 conversations among 5 peers: 35 + 7 + 5 seals and 7 conversation
    // records (typed tables); plain messages have no state record (states are sparse).
    store.messages().save_batch(&sample(35)).await.unwrap();
    assert_eq!(store.key_info().await.unwrap().seals, 54);
    // Re-saving identical messages seals nothing.
    store.messages().save_batch(&sample(35)).await.unwrap();
    assert_eq!(store.key_info().await.unwrap().seals, 54);
    // A delete re-seals the summaries of one conversation and two peers.
    store.messages().delete("m3").await.unwrap();
    assert_eq!(store.key_info().await.unwrap().seals, 57);
    drop(store);
    let again = Tresor::with_backend(backend, PASS.into(), cheap())
        .await
        .unwrap();
    assert_eq!(again.key_info().await.unwrap().seals, 57);
}

/// Rotates in small batches with writes, deletes and reads between every batch, checking every
/// answer against a model each time.
#[tokio::test]
async fn rotation_is_online_with_reads_and_writes_between_batches() {
    let backend = MemoryBackend::new();
    let store = Tresor::with_backend(backend.clone(), PASS.into(), cheap())
        .await
        .unwrap();
    let mut model: BTreeMap<String, Message> = BTreeMap::new();
    for m in sample(120) {
        model.insert(m.id.clone(), m);
    }
    let all: Vec<Message> = model.values().cloned().collect();
    store.messages().save_batch(&all).await.unwrap();
    let tokens_before: Vec<Vec<u8>> = backend
        .scan("messages", KeyRange::all(), Direction::Forward, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let created = store.key_info().await.unwrap().key_created_ms;

    assert!(store.begin_rotation().await.unwrap());
    assert!(!store.begin_rotation().await.unwrap(), "already rotating");
    // Typed records (here: conversations) are migrated first.
    assert_eq!(
        store.key_info().await.unwrap().rotation.unwrap().table,
        "typed_records"
    );
    let mut i = 0;
    loop {
        let step = store.rotation_step(9).await.unwrap();
        // Between batches: an update of a (maybe not yet migrated) message, a new message, a
        // delete, and every query.
        let old_id = format!("m{}", (i * 13) % 120);
        if let Some(m) = model.get_mut(&old_id) {
            m.body = format!("edited {i}");
            store.messages().save(m).await.unwrap();
        }
        let fresh = msg(
            &format!("n{i}"),
            &format!("c{}", i % 9),
            "p1",
            Some("p8"),
            1_600_000_000_500 + i as i64,
            "during rotation",
        );
        store.messages().save(&fresh).await.unwrap();
        let got = store.messages().get(&fresh.id).await.unwrap().unwrap();
        model.insert(fresh.id.clone(), got);
        let gone = format!("m{}", (i * 7 + 3) % 120);
        assert_eq!(
            store.messages().delete(&gone).await.unwrap(),
            model.remove(&gone).is_some()
        );
        check_against_model(&store, &model).await;
        i += 1;
        if step.done {
            break;
        }
        assert!(i < 1000, "rotation does not end");
    }
    let info = store.key_info().await.unwrap();
    assert!(info.rotation.is_none());
    assert!(info.key_created_ms >= created);
    // Every primary key is a new token: none of the old ones is left.
    let after: Vec<Vec<u8>> = backend
        .scan("messages", KeyRange::all(), Direction::Forward, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(after.iter().all(|k| !tokens_before.contains(k)));
    assert!(
        backend
            .get("meta", b"rotation_previous_dek")
            .await
            .unwrap()
            .is_none()
    );
    drop(store);
    // Reopened, the store runs on the new key alone.
    let again = Tresor::with_backend(backend, PASS.into(), cheap())
        .await
        .unwrap();
    check_against_model(&again, &model).await;
}

async fn check_against_model(store: &Tresor, model: &BTreeMap<String, Message>) {
    let m = store.messages();
    let recent = m.recent(100_000, None).await.unwrap();
    let mut want: Vec<&Message> = model.values().collect();
    want.sort_by(|a, b| b.timestamp_ms.cmp(&a.timestamp_ms).then(a.seq.cmp(&b.seq)));
    let got: Vec<(&str, &str)> = recent
        .iter()
        .map(|x| (x.id.as_str(), x.body.as_str()))
        .collect();
    let exp: Vec<(&str, &str)> = want
        .iter()
        .map(|x| (x.id.as_str(), x.body.as_str()))
        .collect();
    assert_eq!(got, exp);
    let mut conversations: BTreeMap<&str, usize> = BTreeMap::new();
    let mut peers: BTreeMap<&str, usize> = BTreeMap::new();
    for x in model.values() {
        *conversations.entry(&x.conversation_id).or_default() += 1;
        *peers.entry(&x.sender).or_default() += 1;
        if let Some(r) = &x.recipient
            && r != &x.sender
        {
            *peers.entry(r).or_default() += 1;
        }
    }
    for (c, n) in &conversations {
        assert_eq!(m.by_conversation(c, 100_000, None).await.unwrap().len(), *n);
    }
    for (p, n) in &peers {
        assert_eq!(m.by_peer(p, 100_000, None).await.unwrap().len(), *n, "{p}");
    }
    let s = store.stats().await.unwrap();
    assert_eq!(
        (s.messages, s.conversations, s.peers),
        (
            model.len() as u64,
            conversations.len() as u64,
            peers.len() as u64
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_resumes_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Tresor::create_with(&path, PASS.into(), cheap())
        .await
        .unwrap();
    store.messages().save_batch(&sample(200)).await.unwrap();
    let before = answers(&store).await;
    store.begin_rotation().await.unwrap();
    for _ in 0..5 {
        assert!(!store.rotation_step(17).await.unwrap().done);
    }
    // "Crash": nothing after the last committed batch reaches the file.
    drop(store);
    let store = Tresor::open_with(&path, PASS.into(), cheap())
        .await
        .unwrap();
    assert!(store.key_info().await.unwrap().rotation.is_some());
    assert_eq!(answers(&store).await, before);
    let summary = store.rotate_key().await.unwrap();
    assert!(!summary.began);
    assert!(summary.migrated > 0);
    assert!(store.key_info().await.unwrap().rotation.is_none());
    assert_eq!(answers(&store).await, before);
    // A backup after the rotation restores under the new key with the same passphrase.
    let b = store.backup_to_dir(dir.path().join("b")).await.unwrap();
    drop(store);
    let (restored, _) = restore_backup(&b.path, dir.path().join("r.redb"), PASS.into())
        .await
        .unwrap();
    assert_eq!(answers(&restored).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_a_rotation_finishes_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Tresor::create_with(dir.path().join("s.redb"), PASS.into(), cheap())
        .await
        .unwrap();
    store.messages().save_batch(&sample(60)).await.unwrap();
    let before = answers(&store).await;
    store.begin_rotation().await.unwrap();
    store.rotation_step(10).await.unwrap();
    let b = store.backup_to_dir(dir.path().join("b")).await.unwrap();
    assert!(store.key_info().await.unwrap().rotation.is_none());
    verify_backup(&b.path, PASS.into()).await.unwrap();
    let (restored, _) = restore_backup(&b.path, dir.path().join("r.redb"), PASS.into())
        .await
        .unwrap();
    assert_eq!(answers(&restored).await, before);
}

/// A backend whose commits start failing after a given number: a crash between batches.
#[derive(Clone)]
struct Failing {
    inner: MemoryBackend,
    commits_left: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

#[async_trait]
impl Backend for Failing {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.get(table, key).await
    }
    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        self.inner.get_many(table, keys).await
    }
    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        self.inner.scan(table, range, direction, limit).await
    }
    async fn commit(&self, batch: WriteBatch, d: Durability) -> Result<(), BackendError> {
        if self.failing.load(Ordering::SeqCst) {
            let left = self.commits_left.load(Ordering::SeqCst);
            if left == 0 {
                return Err(BackendError::Io(std::io::Error::other("injected crash")));
            }
            self.commits_left.store(left - 1, Ordering::SeqCst);
        }
        self.inner.commit(batch, d).await
    }
    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        self.inner.len(table).await
    }
    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.inner.tables().await
    }
    async fn stats(&self) -> Result<BackendStats, BackendError> {
        self.inner.stats().await
    }
    async fn snapshot(&self) -> Result<Box<dyn tresor_backend::Snapshot>, BackendError> {
        self.inner.snapshot().await
    }
    fn read_view(&self) -> Result<Box<dyn tresor_backend::ReadView>, BackendError> {
        self.inner.read_view()
    }
    async fn compact(&self) -> Result<tresor_backend::CompactReport, BackendError> {
        self.inner.compact().await
    }
}

#[tokio::test]
async fn crashes_at_every_point_leave_one_secret_and_a_consistent_store() {
    // Passphrase change: the single commit fails -> the old passphrase still opens.
    let memory = MemoryBackend::new();
    let failing = Failing {
        inner: memory.clone(),
        commits_left: Arc::new(AtomicUsize::new(0)),
        failing: Arc::new(AtomicBool::new(false)),
    };
    let store = Tresor::with_backend(failing.clone(), PASS.into(), cheap())
        .await
        .unwrap();
    store.messages().save_batch(&sample(90)).await.unwrap();
    let before = answers(&store).await;
    failing.failing.store(true, Ordering::SeqCst);
    assert!(
        store
            .change_passphrase(PASS.into(), "other".into())
            .await
            .is_err()
    );
    drop(store);
    assert!(
        Tresor::with_backend(memory.clone(), "other".into(), cheap())
            .await
            .is_err()
    );
    // Rotation: crash after k committed batches, for several k; each time the store reopens
    // consistent, and the rotation resumes to the end.
    for k in [0usize, 1, 2, 5, 9] {
        failing.failing.store(false, Ordering::SeqCst);
        let store = Tresor::with_backend(failing.clone(), PASS.into(), cheap())
            .await
            .unwrap();
        failing.commits_left.store(k, Ordering::SeqCst);
        failing.failing.store(true, Ordering::SeqCst);
        let result = store.rotate_key_with(11, |_| {}).await;
        // The last rounds may finish the rotation within their k commits.
        assert!(result.is_err() || k >= 5, "k = {k}");
        drop(store);
        let store = Tresor::with_backend(memory.clone(), PASS.into(), cheap())
            .await
            .unwrap();
        assert_eq!(answers(&store).await, before, "k = {k}");
    }
    let store = Tresor::with_backend(memory, PASS.into(), cheap())
        .await
        .unwrap();
    store.rotate_key().await.unwrap();
    assert_eq!(answers(&store).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seal_limit_starts_a_rotation_in_the_background() {
    let backend = MemoryBackend::new();
    let options = Options::default()
        .with_kdf(KdfParams::PBKDF2_OWASP)
        .with_seal_limit(40);
    let store = Tresor::with_backend(backend.clone(), PASS.into(), options)
        .await
        .unwrap();
    let first = store.key_info().await.unwrap().key_created_ms;
    let all = sample(60);
    for chunk in all.chunks(10) {
        store.messages().save_batch(chunk).await.unwrap();
    }
    // The rotation began when the count passed 40 and runs in the background; wait for it.
    let mut rounds = 0;
    loop {
        let info = store.key_info().await.unwrap();
        if info.rotation.is_none() && info.key_created_ms != first {
            // Re-sealed records (60 messages, 12 summaries, 7 conversation records, 60
            // message states) and the writes after the rotation began (each batch re-seals up
            // to 7 conversations and seals its 10 message states).
            assert!(
                info.seals < 40 + 60 + 12 + 7 + 60 + 6 * (7 + 10),
                "{}",
                info.seals
            );
            break;
        }
        rounds += 1;
        assert!(rounds < 10_000, "the rotation never finished");
        tokio::task::spawn_blocking(|| std::thread::sleep(std::time::Duration::from_millis(2)))
            .await
            .unwrap();
    }
    assert_eq!(store.messages().recent(1000, None).await.unwrap().len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn padded_stores_seal_padme_lengths_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let backend = MemoryBackend::new();
    let store = Tresor::with_backend(backend.clone(), PASS.into(), cheap().with_padding(true))
        .await
        .unwrap();
    assert!(store.key_info().await.unwrap().padded);
    store.messages().save_batch(&sample(40)).await.unwrap();
    let before = answers(&store).await;
    for (_, v) in backend
        .scan("messages", KeyRange::all(), Direction::Forward, 1000)
        .await
        .unwrap()
    {
        let plain = v.len() - 28;
        assert_eq!(tresor_schema::codec::padded_len(plain), plain, "{plain}");
        assert!(plain >= 64);
    }
    // Reopened without the option, the store keeps padding (it is persisted).
    drop(store);
    let store = Tresor::with_backend(backend, PASS.into(), cheap())
        .await
        .unwrap();
    assert!(store.key_info().await.unwrap().padded);
    assert_eq!(answers(&store).await, before);
    store.rotate_key().await.unwrap();
    assert_eq!(answers(&store).await, before);
    let b = store.backup_to_dir(dir.path().join("b")).await.unwrap();
    let (restored, _) = restore_backup(&b.path, dir.path().join("r.redb"), PASS.into())
        .await
        .unwrap();
    assert!(restored.key_info().await.unwrap().padded);
    assert_eq!(answers(&restored).await, before);
}

/// Renderings of a key's bytes that must never appear in any message.
fn renderings(key: &[u8]) -> Vec<String> {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let dec: Vec<String> = key.iter().map(|b| b.to_string()).collect();
    vec![
        hex.clone(),
        hex.to_uppercase(),
        hex[..16].to_string(),
        dec.join(", "),
        dec.join(","),
        format!("{key:?}"),
    ]
}

#[tokio::test]
async fn no_key_material_in_debug_display_or_errors() {
    // A key with no repeated byte, so that its renderings are distinctive.
    let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(101));
    let key = RawKey::new(Zeroizing::new(bytes));
    let backend = MemoryBackend::new();
    let store = Tresor::with_backend(backend.clone(), Secret::from(key.clone()), cheap())
        .await
        .unwrap();
    store.messages().save_batch(&sample(5)).await.unwrap();
    let mut shown = vec![
        format!("{key:?}"),
        format!("{:?}", Secret::from(key.clone())),
        format!("{store:?}"),
        format!("{:?}", store.key_info().await.unwrap()),
    ];
    let mut wrong = bytes;
    wrong[0] ^= 1;
    for secret in [
        Secret::from(RawKey::new(Zeroizing::new(wrong))),
        Secret::from("hunter2-zebra"),
    ] {
        let err = Tresor::with_backend(backend.clone(), secret, cheap())
            .await
            .unwrap_err();
        shown.push(format!("{err:?}"));
        shown.push(err.to_string());
    }
    let err = store
        .change_passphrase(RawKey::new(Zeroizing::new(wrong)).into(), "x".into())
        .await
        .unwrap_err();
    shown.push(format!("{err:?} {err}"));
    for s in &shown {
        for r in renderings(&bytes) {
            assert!(!s.contains(&r), "{s} contains {r}");
        }
        assert!(!s.contains("hunter2"), "{s}");
    }
}
