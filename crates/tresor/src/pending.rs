//! Reads that see a write batch submitted but not yet committed: what lets a bulk save
//! prepare its next batch while the previous one commits (`Messages::save_batches`).
//!
//! A [`Pending`] holds the effect of one [`WriteBatch`] (each key's last operation: a value,
//! or a deletion). [`Reads`] reads the backend *as it will be once that batch is committed*:
//! every read first looks at the pending batch, then at the backend. The writer lock is held
//! from the batch's preparation until the next batch is submitted, so nothing else writes in
//! between: the backend holds the state before the pending batch, or already the state after
//! it (if its commit finished meanwhile), and the pending values are right in both cases.
//!
//! Architecture invariant: only the writer that holds the lock reads through a `Pending`, and
//! only to *prepare* a batch; that batch is submitted only after the pending one committed
//! (so a failed commit never has a successor built on it), and no read of a `Pending` reaches
//! a cache or another task.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use tresor_backend::{Backend, BackendError, Direction, Entry, KeyRange, Op, ReadView, WriteBatch};

use crate::Error;

/// One table's written keys, in key order, each with its final state (`None`: deleted).
type Written = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The effect of one write batch: per table, each written key's final state (`Some(value)`
/// after a put, `None` after a delete), in key order.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    tables: HashMap<Arc<str>, Written>,
    /// Tables with a put (which creates a table, even if a later delete empties it).
    created: std::collections::HashSet<Arc<str>>,
}

impl Pending {
    /// The effect of `batch`: its operations in order, a later one on a key replacing an
    /// earlier one.
    pub(crate) fn of(batch: &WriteBatch) -> Self {
        let mut pending = Self::default();
        for op in batch.ops() {
            pending.apply(op);
        }
        pending
    }

    /// Adds `op` after the operations already held (it replaces an earlier one on its key).
    pub(crate) fn apply(&mut self, op: &Op) {
        match op {
            Op::Put { table, key, value } => {
                if !self.created.contains(&**table) {
                    self.created.insert(Arc::clone(table));
                }
                self.written(table).insert(key.clone(), Some(value.clone()));
            }
            Op::Delete { table, key } => {
                self.written(table).insert(key.clone(), None);
            }
        }
    }

    /// The written keys of `table`, created empty on first use.
    fn written(&mut self, table: &Arc<str>) -> &mut Written {
        self.tables.entry(Arc::clone(table)).or_default()
    }

    /// The pending state of `key` in `table`: `None` when the batch does not touch it,
    /// `Some(None)` when it deletes it, `Some(Some(value))` when it puts it.
    fn state(&self, table: &str, key: &[u8]) -> Option<Option<&[u8]>> {
        self.tables
            .get(table)
            .and_then(|t| t.get(key))
            .map(|v| v.as_deref())
    }

    /// The keys of `keys` this batch does not write, in order: those to read from the
    /// backend.
    fn unwritten(&self, table: &str, keys: &[Vec<u8>]) -> Vec<Vec<u8>> {
        keys.iter()
            .filter(|k| self.state(table, k).is_none())
            .cloned()
            .collect()
    }

    /// The values of `keys` in `table`, in order: the batch's where it writes a key, else the
    /// next of `read` (the backend's values of [`Pending::unwritten`], in order).
    ///
    /// # Errors
    /// [`BackendError::Engine`] when `read` holds fewer values than needed.
    fn merge(
        &self,
        table: &str,
        keys: &[Vec<u8>],
        read: Vec<Option<Vec<u8>>>,
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        let mut read = read.into_iter();
        keys.iter()
            .map(|k| match self.state(table, k) {
                Some(state) => Ok(state.map(<[u8]>::to_vec)),
                None => read.next().ok_or_else(|| {
                    BackendError::Engine("get_many returned fewer values than keys".into())
                }),
            })
            .collect()
    }

    /// The written keys of `table` within `range`, in key order (none for an empty or
    /// inverted range).
    fn in_range<'a>(
        &'a self,
        table: &str,
        range: &'a KeyRange,
    ) -> impl DoubleEndedIterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + 'a {
        let bounds = (bound_ref(&range.start), bound_ref(&range.end));
        // `BTreeMap::range` panics on an inverted range; an empty one holds nothing.
        self.tables
            .get(table)
            .filter(|_| !range.is_empty())
            .into_iter()
            .flat_map(move |t| t.range::<[u8], _>(bounds))
    }
}

/// Borrows a bound's bytes as a slice.
fn bound_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    bound.as_ref().map(Vec::as_slice)
}

/// A backend [`ReadView`] with a [`Pending`] batch applied on top.
pub(crate) struct PendingView {
    base: Box<dyn ReadView>,
    pending: Arc<Pending>,
}

impl ReadView for PendingView {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        match self.pending.state(table, key) {
            Some(state) => {
                // Still an error for a name the backend refuses, as without a pending batch.
                tresor_backend::validate_table_name(table)?;
                Ok(state.map(<[u8]>::to_vec))
            }
            None => self.base.get(table, key),
        }
    }

    fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        // Only the keys the batch does not write are read from the backend, in one call.
        let read = self
            .base
            .get_many(table, &self.pending.unwritten(table, keys))?;
        self.pending.merge(table, keys, read)
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        let written: Vec<_> = self.pending.in_range(table, &range).collect();
        if written.is_empty() || limit == 0 {
            return self.base.scan(table, range, direction, limit);
        }
        // Every backend entry the batch hides is one of its keys in the range: reading that
        // many more than `limit` leaves at least `limit` visible ones, if the table has them.
        let base = self.base.scan(
            table,
            range.clone(),
            direction,
            limit.saturating_add(written.len()),
        )?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
        for (key, state) in written {
            match state {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        // At least `limit` of the backend entries read stay visible (the batch hides at most
        // `written.len()`), so the first `limit` merged entries are the first `limit` visible
        // ones: a visible key before the last one read is either read or pending, and pending
        // keys past it come after those `limit`. If the backend ran out, the merge is whole.
        Ok(match direction {
            Direction::Forward => merged.into_iter().take(limit).collect(),
            Direction::Reverse => merged.into_iter().rev().take(limit).collect(),
        })
    }

    fn len(&self, table: &str) -> Result<u64, BackendError> {
        let mut len = self.base.len(table)?;
        for (key, state) in self.pending.in_range(table, &KeyRange::all()) {
            let before = self.base.get(table, key)?.is_some();
            match (before, state.is_some()) {
                (false, true) => len += 1,
                (true, false) => len = len.saturating_sub(1),
                _ => {}
            }
        }
        Ok(len)
    }

    fn tables(&self) -> Result<Vec<String>, BackendError> {
        let mut names = self.base.tables()?;
        for name in &self.pending.created {
            // A table exists once a put created it (a delete alone creates none).
            if !names.iter().any(|n| **n == **name) {
                names.push(name.to_string());
            }
        }
        names.sort_unstable();
        Ok(names)
    }
}

/// Where a batch being prepared reads: the backend, with the batch submitted before it (if
/// any) applied on top.
#[derive(Clone)]
pub(crate) struct Reads {
    base: Arc<dyn Backend>,
    pending: Option<Arc<Pending>>,
}

impl Reads {
    /// Reads of the backend itself.
    pub(crate) fn direct(base: &Arc<dyn Backend>) -> Self {
        Self {
            base: Arc::clone(base),
            pending: None,
        }
    }

    /// Reads of the backend as it will be after `pending` commits.
    pub(crate) fn after(base: &Arc<dyn Backend>, pending: Arc<Pending>) -> Self {
        Self {
            base: Arc::clone(base),
            pending: Some(pending),
        }
    }

    /// A consistent view (see [`Backend::read_view`]), with the pending batch on top.
    ///
    /// # Errors
    /// The backend's.
    pub(crate) fn view(&self) -> Result<Box<dyn ReadView>, BackendError> {
        let base = self.base.read_view()?;
        Ok(match &self.pending {
            Some(pending) => Box::new(PendingView {
                base,
                pending: Arc::clone(pending),
            }),
            None => base,
        })
    }

    /// Runs the blocking read `f` on a view (directly when the backend's reads do not block,
    /// else on tokio's blocking pool), as `crate::view::read` does.
    ///
    /// # Errors
    /// `f`'s; [`Error::Backend`] when no view can be taken.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&dyn ReadView) -> Result<T, Error> + Send + 'static,
    {
        if !self.base.reads_block() {
            return f(&*self.view()?);
        }
        let reads = self.clone();
        tokio::task::spawn_blocking(move || f(&*reads.view()?)).await?
    }

    /// The value of `key` in `table`.
    ///
    /// # Errors
    /// The backend's.
    pub(crate) async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        if let Some(state) = self.pending.as_ref().and_then(|p| p.state(table, key)) {
            return Ok(state.map(<[u8]>::to_vec));
        }
        Ok(self.base.get(table, key).await?)
    }

    /// The values of `keys` in `table`, in order.
    ///
    /// # Errors
    /// The backend's.
    pub(crate) async fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let Some(pending) = &self.pending else {
            return Ok(self.base.get_many(table, keys).await?);
        };
        let read = self
            .base
            .get_many(table, &pending.unwritten(table, keys))
            .await?;
        Ok(pending.merge(table, keys, read)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report.

    use super::*;
    use proptest::prelude::*;
    use tresor_backend::{Durability, MemoryBackend};

    /// (table 0..2, key byte, value: `None` = delete).
    type Spec = (u8, u8, Option<u8>);

    /// (start, end: `None` unbounded, `(true, k)` included, `(false, k)` excluded; reverse;
    /// limit).
    type Scan = (Option<(bool, u8)>, Option<(bool, u8)>, bool, usize);

    fn batch_of(specs: &[Spec]) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for (t, k, v) in specs {
            let table = format!("t{t}");
            match v {
                Some(v) => batch.put(&table, vec![*k], vec![*v]),
                None => batch.delete(&table, vec![*k]),
            }
        }
        batch
    }

    fn bound(b: Option<(bool, u8)>) -> Bound<Vec<u8>> {
        match b {
            None => Bound::Unbounded,
            Some((true, k)) => Bound::Included(vec![k]),
            Some((false, k)) => Bound::Excluded(vec![k]),
        }
    }

    /// Reads of `base` with `pending` on top equal reads of `base` after committing it.
    fn check(base: Vec<Spec>, pending: Vec<Spec>, scans: Vec<Scan>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let before = MemoryBackend::new();
            let after = MemoryBackend::new();
            for b in [&before, &after] {
                if !base.is_empty() {
                    b.commit(batch_of(&base), Durability::Immediate)
                        .await
                        .unwrap();
                }
            }
            let batch = batch_of(&pending);
            let overlay = Arc::new(Pending::of(&batch));
            if !batch.is_empty() {
                after.commit(batch, Durability::Immediate).await.unwrap();
            }
            let before: Arc<dyn Backend> = Arc::new(before);
            let reads = Reads::after(&before, overlay);
            let view = reads.view().unwrap();
            let want = after.read_view().unwrap();
            let keys: Vec<Vec<u8>> = (0u8..8).map(|k| vec![k]).collect();
            for t in 0..3 {
                let table = format!("t{t}");
                for k in &keys {
                    assert_eq!(view.get(&table, k).unwrap(), want.get(&table, k).unwrap());
                    assert_eq!(
                        reads.get(&table, k).await.unwrap(),
                        want.get(&table, k).unwrap()
                    );
                }
                let expected = want.get_many(&table, &keys).unwrap();
                assert_eq!(view.get_many(&table, &keys).unwrap(), expected);
                assert_eq!(reads.get_many(&table, &keys).await.unwrap(), expected);
                assert_eq!(view.len(&table).unwrap(), want.len(&table).unwrap());
                for (start, end, reverse, limit) in &scans {
                    let range = KeyRange {
                        start: bound(*start),
                        end: bound(*end),
                    };
                    let direction = if *reverse {
                        Direction::Reverse
                    } else {
                        Direction::Forward
                    };
                    assert_eq!(
                        view.scan(&table, range.clone(), direction, *limit).unwrap(),
                        want.scan(&table, range, direction, *limit).unwrap(),
                    );
                }
            }
            assert_eq!(view.tables().unwrap(), want.tables().unwrap());
        });
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (0u8..3, 0u8..8, proptest::option::of(any::<u8>()))
    }

    fn scan() -> impl Strategy<Value = Scan> {
        (
            proptest::option::of((any::<bool>(), 0u8..8)),
            proptest::option::of((any::<bool>(), 0u8..8)),
            any::<bool>(),
            0usize..6,
        )
    }

    proptest! {
        #[test]
        fn reads_through_a_pending_batch_equal_reads_after_it(
            base in proptest::collection::vec(spec(), 0..24),
            pending in proptest::collection::vec(spec(), 0..12),
            scans in proptest::collection::vec(scan(), 1..6),
        ) {
            check(base, pending, scans);
        }
    }
}
