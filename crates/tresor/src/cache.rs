//! A least-recently-used cache of opened typed records, bounded in bytes.
//!
//! Correctness under concurrency: every commit that touches `typed_records` removes the keys it
//! wrote *after* the commit and bumps a generation (`Inner::commit_locked`); a reader inserts
//! what it read only if the generation did not move since before its read. So a value read
//! before a commit can never be inserted after that commit's invalidation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tresor_schema::typed::Envelope;

/// Bookkeeping bytes counted per entry on top of its key and value.
const OVERHEAD: usize = 96;

#[derive(Default)]
struct State {
    entries: HashMap<Vec<u8>, (Envelope, u64, usize)>,
    by_age: BTreeMap<u64, Vec<u8>>,
    tick: u64,
    bytes: usize,
    generation: u64,
}

/// The cache of one store.
pub(crate) struct RecordCache {
    capacity: usize,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
}

fn size_of(key: &[u8], env: &Envelope) -> usize {
    OVERHEAD
        + 2 * key.len()
        + env.table.len()
        + env.pk.len()
        + env.value.len()
        + env
            .entries
            .iter()
            .map(|e| e.index.len() + 24 * e.parts.len() + 32)
            .sum::<usize>()
}

impl RecordCache {
    /// A cache of at most `capacity` bytes (0: disabled).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(State::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a panic inside a few map operations; the maps stay usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The generation to pass to [`RecordCache::insert`] for a read starting now.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The cached envelope under `key`, counting a hit or a miss.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Envelope> {
        if self.capacity == 0 {
            return None;
        }
        let mut s = self.lock();
        s.tick += 1;
        let tick = s.tick;
        let found = match s.entries.get_mut(key) {
            Some((env, age, _)) => {
                let old = std::mem::replace(age, tick);
                Some((env.clone(), old))
            }
            None => None,
        };
        match found {
            Some((env, old)) => {
                s.by_age.remove(&old);
                s.by_age.insert(tick, key.to_vec());
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(env)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Caches `env` under `key`, read by a read that began at `generation`.
    pub(crate) fn insert(&self, generation: u64, key: &[u8], env: &Envelope) {
        let size = size_of(key, env);
        if self.capacity == 0 || size > self.capacity {
            return;
        }
        let mut s = self.lock();
        if s.generation != generation {
            return;
        }
        s.tick += 1;
        let tick = s.tick;
        if let Some((_, age, old_size)) = s.entries.insert(key.to_vec(), (env.clone(), tick, size))
        {
            s.by_age.remove(&age);
            s.bytes -= old_size;
        }
        s.by_age.insert(tick, key.to_vec());
        s.bytes += size;
        while s.bytes > self.capacity {
            let Some((_, oldest)) = s.by_age.pop_first() else {
                break;
            };
            if let Some((_, _, n)) = s.entries.remove(&oldest) {
                s.bytes -= n;
            }
        }
    }

    /// Drops `keys` and moves the generation on (after a commit that wrote them).
    pub(crate) fn invalidate<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) {
        if self.capacity == 0 {
            return;
        }
        let mut s = self.lock();
        s.generation += 1;
        for k in keys {
            if let Some((_, age, n)) = s.entries.remove(k) {
                s.by_age.remove(&age);
                s.bytes -= n;
            }
        }
    }

    /// `(hits, misses, bytes held)`.
    pub(crate) fn counters(&self) -> (u64, u64, u64) {
        let bytes = self.lock().bytes as u64;
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            bytes,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: usize) -> Envelope {
        Envelope {
            table: "t".into(),
            pk: vec![1],
            entries: Vec::new(),
            value: vec![0; n],
        }
    }

    #[test]
    fn bounded_lru_with_generations() {
        let c = RecordCache::new(3 * (OVERHEAD + 2 + 1 + 1 + 100));
        let g = c.generation();
        for k in [b"a", b"b", b"c"] {
            c.insert(g, k, &env(100));
        }
        assert!(c.get(b"a").is_some()); // a is now the most recent
        c.insert(g, b"d", &env(100)); // evicts b
        assert!(c.get(b"b").is_none());
        assert!(c.get(b"a").is_some() && c.get(b"c").is_some() && c.get(b"d").is_some());
        c.invalidate([b"a".as_slice()].into_iter());
        assert!(c.get(b"a").is_none());
        c.insert(g, b"a", &env(1)); // a stale read: refused
        assert!(c.get(b"a").is_none());
        let (hits, misses, bytes) = c.counters();
        assert_eq!((hits, misses), (4, 3));
        assert!(bytes as usize <= 3 * (OVERHEAD + 104));
        let off = RecordCache::new(0);
        off.insert(off.generation(), b"a", &env(1));
        assert!(off.get(b"a").is_none());
    }
}
