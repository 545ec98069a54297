//! The in-memory backend: a `BTreeMap` per table behind a lock, shared copy-on-write with
//! snapshots.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::{
    Backend, BackendError, BackendStats, CompactReport, Direction, Durability, Entry, KeyRange, Op,
    ReadView, Snapshot, WriteBatch, validate_table_name,
};

type Table = BTreeMap<Vec<u8>, Vec<u8>>;
type Tables = BTreeMap<String, Table>;

/// A backend that keeps every table in memory. Nothing survives the process; `Durability` is
/// accepted and ignored. Cloning shares the same storage.
///
/// It is the reference model: its behaviour defines what the conformance suite expects.
///
/// A [`Snapshot`] shares the tables (an `Arc`); the first commit while a snapshot is alive
/// copies them (copy-on-write), so a snapshot costs O(1) to take and O(store) once if writes
/// follow it.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    tables: Arc<RwLock<Arc<Tables>>>,
}

fn poisoned<T>(_: T) -> BackendError {
    // A poisoned lock means a writer panicked mid-batch; refuse to serve possibly torn data.
    BackendError::Engine("memory backend lock poisoned".into())
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An independent copy of every table (later writes to either do not affect the other).
    ///
    /// # Errors
    /// [`BackendError::Engine`] if a writer panicked while holding the lock.
    pub fn deep_copy(&self) -> Result<MemoryBackend, BackendError> {
        // The state is copy-on-write: sharing the current Arc is an independent copy.
        Ok(MemoryBackend {
            tables: Arc::new(RwLock::new(self.current()?)),
        })
    }

    /// The current state (a cheap `Arc` clone), for snapshots.
    fn current(&self) -> Result<Arc<Tables>, BackendError> {
        Ok(Arc::clone(&*self.tables.read().map_err(poisoned)?))
    }

    /// Runs `f` on the current state under the read lock (without sharing it, so that a
    /// concurrent commit never has to copy the tables because of a plain read).
    fn with<T>(&self, f: impl FnOnce(&Tables) -> T) -> Result<T, BackendError> {
        let guard = self.tables.read().map_err(poisoned)?;
        Ok(f(&guard))
    }
}

/// Collects up to `limit` entries of `map` inside `range` in `direction`.
pub(crate) fn scan_map(
    map: &BTreeMap<Vec<u8>, Vec<u8>>,
    range: &KeyRange,
    direction: Direction,
    limit: usize,
) -> Vec<Entry> {
    if limit == 0 || range.is_empty() {
        return Vec::new();
    }
    let bounds = (range.start.clone(), range.end.clone());
    let iter = map.range::<Vec<u8>, _>(bounds);
    let clone = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
    match direction {
        Direction::Forward => iter.take(limit).map(clone).collect(),
        Direction::Reverse => iter.rev().take(limit).map(clone).collect(),
    }
}

/// A snapshot: one shared state of the tables.
#[derive(Debug)]
struct MemorySnapshot(Arc<Tables>);

fn get(tables: &Tables, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
    validate_table_name(table)?;
    Ok(tables.get(table).and_then(|t| t.get(key)).cloned())
}

fn get_many(
    tables: &Tables,
    table: &str,
    keys: &[Vec<u8>],
) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
    validate_table_name(table)?;
    let t = tables.get(table);
    Ok(keys
        .iter()
        .map(|k| t.and_then(|t| t.get(k)).cloned())
        .collect())
}

fn scan(
    tables: &Tables,
    table: &str,
    range: &KeyRange,
    direction: Direction,
    limit: usize,
) -> Result<Vec<Entry>, BackendError> {
    validate_table_name(table)?;
    Ok(tables
        .get(table)
        .map(|t| scan_map(t, range, direction, limit))
        .unwrap_or_default())
}

fn len(tables: &Tables, table: &str) -> Result<u64, BackendError> {
    validate_table_name(table)?;
    Ok(tables.get(table).map_or(0, |t| t.len() as u64))
}

fn names(tables: &Tables) -> Vec<String> {
    tables.keys().cloned().collect()
}

impl ReadView for MemorySnapshot {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        get(&self.0, table, key)
    }

    fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        get_many(&self.0, table, keys)
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        scan(&self.0, table, &range, direction, limit)
    }

    fn len(&self, table: &str) -> Result<u64, BackendError> {
        len(&self.0, table)
    }

    fn tables(&self) -> Result<Vec<String>, BackendError> {
        Ok(names(&self.0))
    }
}

#[async_trait]
impl Snapshot for MemorySnapshot {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        get(&self.0, table, key)
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        get_many(&self.0, table, keys)
    }

    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        scan(&self.0, table, &range, direction, limit)
    }

    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        len(&self.0, table)
    }

    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        Ok(names(&self.0))
    }
}

/// Applies `ops` to `tables`.
fn apply(tables: &mut Tables, ops: Vec<Op>) {
    for op in ops {
        match op {
            Op::Put { table, key, value } => match tables.get_mut(&*table) {
                Some(t) => {
                    t.insert(key, value);
                }
                None => {
                    tables
                        .entry(table.to_string())
                        .or_default()
                        .insert(key, value);
                }
            },
            Op::Delete { table, key } => {
                if let Some(t) = tables.get_mut(&*table) {
                    t.remove(&key);
                }
            }
        }
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.with(|t| get(t, table, key))?
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        self.with(|t| get_many(t, table, keys))?
    }

    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        self.with(|t| scan(t, table, &range, direction, limit))?
    }

    async fn commit(&self, batch: WriteBatch, _durability: Durability) -> Result<(), BackendError> {
        batch.validate()?;
        let mut guard = self.tables.write().map_err(poisoned)?;
        batch.check(|table, key, expect| {
            let current = guard.get(table).and_then(|t| t.get(key));
            Ok(expect.holds(current.map(Vec::as_slice)))
        })?;
        let (_, ops) = batch.into_parts();
        if !ops.is_empty() {
            // Copies the tables only when a snapshot (or a reader) still shares them.
            apply(Arc::make_mut(&mut guard), ops);
        }
        Ok(())
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, BackendError> {
        Ok(Box::new(MemorySnapshot(self.current()?)))
    }

    /// A view shares the tables like a snapshot (a commit while it is alive copies them), so
    /// views are for short reads.
    fn read_view(&self) -> Result<Box<dyn ReadView>, BackendError> {
        Ok(Box::new(MemorySnapshot(self.current()?)))
    }

    fn reads_block(&self) -> bool {
        false
    }

    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        self.with(|t| len(t, table))?
    }

    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        self.with(names)
    }

    async fn stats(&self) -> Result<BackendStats, BackendError> {
        let table_entries = self.with(|tables| {
            tables
                .iter()
                .map(|(name, t)| (name.clone(), t.len() as u64))
                .collect()
        })?;
        Ok(BackendStats {
            file_bytes: None,
            table_entries,
        })
    }

    async fn compact(&self) -> Result<CompactReport, BackendError> {
        Ok(CompactReport::new(None, None))
    }
}

#[cfg(all(test, feature = "testing"))]
mod conformance {
    crate::backend_conformance_tests!(
        {
            let backend = crate::MemoryBackend::new();
            (backend.clone(), backend)
        },
        reopen = |same: &crate::MemoryBackend| same.clone()
    );
}
