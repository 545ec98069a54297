//! The in-memory backend: a `BTreeMap` per table behind a lock.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::{
    Backend, BackendError, BackendStats, Direction, Durability, Entry, KeyRange, Op, WriteBatch,
    validate_table_name,
};

type Tables = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// A backend that keeps every table in memory. Nothing survives the process; `Durability` is
/// accepted and ignored. Cloning shares the same storage.
///
/// It is the reference model: its behaviour defines what the conformance suite expects.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    tables: Arc<RwLock<Tables>>,
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
        let tables = self.read()?.clone();
        Ok(MemoryBackend {
            tables: Arc::new(RwLock::new(tables)),
        })
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Tables>, BackendError> {
        // A poisoned lock means a writer panicked mid-batch; refuse to serve possibly torn data.
        self.tables
            .read()
            .map_err(|_| BackendError::Engine("memory backend lock poisoned".into()))
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

#[async_trait]
impl Backend for MemoryBackend {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        validate_table_name(table)?;
        Ok(self.read()?.get(table).and_then(|t| t.get(key)).cloned())
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        validate_table_name(table)?;
        let tables = self.read()?;
        let t = tables.get(table);
        Ok(keys
            .iter()
            .map(|k| t.and_then(|t| t.get(k)).cloned())
            .collect())
    }

    async fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        validate_table_name(table)?;
        let tables = self.read()?;
        Ok(tables
            .get(table)
            .map(|t| scan_map(t, &range, direction, limit))
            .unwrap_or_default())
    }

    async fn commit(&self, batch: WriteBatch, _durability: Durability) -> Result<(), BackendError> {
        for op in batch.ops() {
            validate_table_name(op.table())?;
        }
        let mut tables = self
            .tables
            .write()
            .map_err(|_| BackendError::Engine("memory backend lock poisoned".into()))?;
        for op in batch.into_ops() {
            match op {
                Op::Put { table, key, value } => {
                    tables.entry(table).or_default().insert(key, value);
                }
                Op::Delete { table, key } => {
                    if let Some(t) = tables.get_mut(&table) {
                        t.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    async fn len(&self, table: &str) -> Result<u64, BackendError> {
        validate_table_name(table)?;
        Ok(self.read()?.get(table).map_or(0, |t| t.len() as u64))
    }

    async fn tables(&self) -> Result<Vec<String>, BackendError> {
        Ok(self.read()?.keys().cloned().collect())
    }

    async fn stats(&self) -> Result<BackendStats, BackendError> {
        Ok(BackendStats { file_bytes: None })
    }
}

#[cfg(all(test, feature = "testing"))]
mod conformance {
    crate::backend_conformance_tests!((crate::MemoryBackend::new(), ()));
}
