//! Applying a group's operations to redb: table by table, each table's operations in key
//! order, the tables spread over threads.
//!
//! Operations on different keys commute, so the result of a group does not depend on the
//! order its operations are applied in, as long as the operations on one key of one table keep
//! their order. The writer therefore:
//!
//! - **partitions** the operations by table, keeping batch order within each table;
//! - **sorts** each table's operations by key with a *stable* sort (operations on the same key
//!   keep their batch order, so the last put or delete of a key still wins): consecutive
//!   inserts then walk neighbouring paths of the B-tree, which keeps the branch pages they
//!   share hot and lets redb modify a leaf it already copied in this transaction in place;
//! - **inserts runs through a cursor**: new keys that fall into one gap between stored keys
//!   (a conversation's new records) go in as one run that redb packs into full leaves
//!   ([`apply_table`]); lone keys, overwrites and deletes go through `Table::insert` and
//!   `Table::remove`;
//! - **spreads the tables over threads** when the group is large enough
//!   ([`PARALLEL_MIN_OPS`]): redb 4.6 allows the tables of one `WriteTransaction` to be
//!   modified concurrently from several threads (`WriteTransaction: Sync`, each `Table` used by
//!   one thread), and its page allocation scales with them. Tables are assigned largest first
//!   to the least-loaded thread, each table's size being its *measured* cost: the time per
//!   operation it took in earlier groups ([`Costs`], a moving average per table) times its
//!   operations. Byte counts are a poor guide: an insert at a random position (a blind index)
//!   costs more than a larger one next to the previous insert (session 10 measured a W1 group:
//!   4.0 µs per `message_ids` insert, 2.5 µs per `messages` insert of ~10× the bytes). A small
//!   group stays on the writer thread: starting a thread costs tens of microseconds.
//!
//! Nothing here decides *what* is applied: conditions are checked, and failures handled, by the
//! writer ([`crate::writer`]); an error from any table aborts the whole transaction.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Mutex;

use tresor_backend::{BackendError, Op};

use crate::error::map_err;

/// Fewest operations in a group for which its tables are spread over threads.
pub(crate) const PARALLEL_MIN_OPS: usize = 256;

/// A writable view of one backend table inside a write transaction.
pub(crate) type WriteTable<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;

/// The operations of one table, in the order they are applied.
pub(crate) struct TableOps<'a> {
    /// The table's name.
    pub(crate) name: &'a str,
    /// Its operations: batch order, then stably sorted by key.
    pub(crate) ops: Vec<&'a Op>,
    /// Whether any of them is a put (a table with only deletes that does not exist is
    /// skipped rather than created).
    pub(crate) has_put: bool,
    /// Estimated cost, for spreading tables over threads: one unit per operation plus one per
    /// 32 bytes of key and value (a random insert copies a page whichever its size, but larger
    /// values split pages more often: measured on the chitchat import, where the `messages`
    /// table alone costs about what all index tables cost together).
    weight: usize,
}

/// The key of `op`.
fn key(op: &Op) -> &[u8] {
    match op {
        Op::Put { key, .. } | Op::Delete { key, .. } => key,
    }
}

/// Partitions the operations of `groups` (each a batch's operations, in commit order) by
/// table, in order of first appearance, each table's operations stably sorted by key.
pub(crate) fn partition<'a>(groups: &[&'a [Op]]) -> Vec<TableOps<'a>> {
    let mut index: HashMap<&'a str, usize> = HashMap::new();
    let mut tables: Vec<TableOps<'a>> = Vec::new();
    for op in groups.iter().flat_map(|ops| ops.iter()) {
        let name = op.table();
        let at = *index.entry(name).or_insert_with(|| {
            tables.push(TableOps {
                name,
                ops: Vec::new(),
                has_put: false,
                weight: 0,
            });
            tables.len() - 1
        });
        // `at` was just taken from `index`, which only holds positions of `tables`.
        let Some(table) = tables.get_mut(at) else {
            continue;
        };
        let bytes = match op {
            Op::Put { key, value, .. } => {
                table.has_put = true;
                key.len() + value.len()
            }
            Op::Delete { key, .. } => key.len(),
        };
        table.weight += 1 + bytes / 32;
        table.ops.push(op);
    }
    for table in &mut tables {
        if !table.ops.is_sorted_by(|a, b| key(a) <= key(b)) {
            // Stable: operations on one key keep their order.
            table.ops.sort_by(|a, b| key(a).cmp(key(b)));
        }
    }
    tables
}

/// Applies each table's operations to its open table, spreading the tables over up to
/// `threads` threads (the calling thread is one of them) when there are at least
/// [`PARALLEL_MIN_OPS`] operations in all.
///
/// # Errors
/// The first error redb returns (or [`BackendError::Engine`] if a thread panicked); the other
/// threads still finish their tables, and the caller aborts the transaction.
pub(crate) fn run<'a>(
    work: Bin<'_, '_, 'a>,
    threads: usize,
    costs: &mut Costs,
) -> Result<(), BackendError> {
    let total: usize = work.iter().map(|(_, t)| t.ops.len()).sum();
    let threads = threads.min(work.len()).max(1);
    if threads == 1 || total < PARALLEL_MIN_OPS {
        return apply_bin(work).map(drop);
    }
    let mut work: Vec<_> = work
        .into_iter()
        .map(|item| (costs.estimate(&item.1), item))
        .collect();
    work.sort_by_key(|(estimate, _)| Reverse(*estimate));
    let mut bins: Vec<(u64, Bin<'_, '_, '_>)> = (0..threads).map(|_| (0, Vec::new())).collect();
    for (estimate, item) in work {
        if let Some(bin) = bins.iter_mut().min_by_key(|(load, _)| *load) {
            bin.0 += estimate;
            bin.1.push(item);
        }
    }
    // Each spawned bin sits in a slot the thread empties, so that a bin whose thread the OS
    // refuses is still there to be applied on this thread.
    let mut bins = bins.into_iter().map(|(_, bin)| bin);
    let own = bins.next().unwrap_or_default();
    let slots: Vec<Mutex<Option<Bin<'_, '_, '_>>>> =
        bins.map(|bin| Mutex::new(Some(bin))).collect();
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(slots.len());
        let mut refused = Vec::new();
        for slot in &slots {
            let spawned = std::thread::Builder::new()
                .name("tresor-redb-apply".into())
                .spawn_scoped(s, || take(slot).map_or(Ok(Vec::new()), apply_bin));
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(_) => refused.push(slot),
            }
        }
        let mut took = Vec::new();
        let mut result = Ok(());
        let mut fold = |outcome: Result<Vec<Took<'a>>, BackendError>| match outcome {
            Ok(t) => took.extend(t),
            // The first error is reported, as `Result::and` would.
            Err(e) => {
                if result.is_ok() {
                    result = Err(e);
                }
            }
        };
        fold(apply_bin(own));
        for slot in refused {
            if let Some(bin) = take(slot) {
                fold(apply_bin(bin));
            }
        }
        for handle in handles {
            fold(
                handle.join().unwrap_or_else(|_| {
                    Err(BackendError::Engine("a writer thread panicked".into()))
                }),
            );
        }
        for t in took {
            costs.record(t);
        }
        result
    })
}

/// Tables with their operations, applied by one thread.
type Bin<'t, 'txn, 'a> = Vec<(&'t mut WriteTable<'txn>, TableOps<'a>)>;

/// What one table's operations took: table name, operations, time.
type Took<'a> = (&'a str, usize, std::time::Duration);

/// Nanoseconds per operation assumed for a table not measured yet, per unit of
/// [`TableOps`]' byte weight (about 2.4 µs for a 350-byte record put, as measured).
const UNMEASURED_NS_PER_WEIGHT: f64 = 200.0;

/// Weight of the newest measurement in a table's moving average.
const COST_SMOOTHING: f64 = 0.25;

/// The measured cost of an operation per table (nanoseconds, an exponential moving average
/// over the groups spread over threads), which [`run`] balances the threads by.
#[derive(Debug, Default)]
pub(crate) struct Costs {
    ns_per_op: HashMap<String, f64>,
}

impl Costs {
    /// The estimated time of `t`'s operations, nanoseconds.
    fn estimate(&self, t: &TableOps<'_>) -> u64 {
        match self.ns_per_op.get(t.name) {
            Some(ns) => (ns * t.ops.len() as f64) as u64,
            None => (UNMEASURED_NS_PER_WEIGHT * t.weight as f64) as u64,
        }
    }

    /// Folds what one table took into its average (the name is copied on first sight only).
    fn record(&mut self, (name, ops, took): Took<'_>) {
        if ops == 0 {
            return;
        }
        let ns = took.as_nanos() as f64 / ops as f64;
        match self.ns_per_op.get_mut(name) {
            Some(avg) => *avg += COST_SMOOTHING * (ns - *avg),
            None => {
                self.ns_per_op.insert(name.to_owned(), ns);
            }
        }
    }
}

/// Takes the bin out of `slot` (a poisoned slot still gives its bin).
fn take<'t, 'txn, 'a>(slot: &Mutex<Option<Bin<'t, 'txn, 'a>>>) -> Option<Bin<'t, 'txn, 'a>> {
    match slot.lock() {
        Ok(mut bin) => bin.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    }
}

/// Applies the operations of every table of `bin`, in order, on the calling thread.
fn apply_bin<'a>(bin: Bin<'_, '_, 'a>) -> Result<Vec<Took<'a>>, BackendError> {
    let mut took = Vec::with_capacity(bin.len());
    for (table, t) in bin {
        let started = std::time::Instant::now();
        apply_table(table, &t.ops)?;
        took.push((t.name, t.ops.len(), started.elapsed()));
    }
    Ok(took)
}

/// Failed run probes, beyond the successful ones, after which the rest of a table's operations
/// in a group go through `Table::insert` without probing (see [`apply_table`]): a probe costs
/// a descent of the tree, and a table keyed by random tokens (`message_ids`) or written one
/// key per conversation never forms runs.
const PROBE_MISSES: u32 = 8;

/// Applies one table's operations, sorted by key (stably: one key's operations in batch
/// order), with the same result as applying each in turn with `Table::insert` and
/// `Table::remove`.
///
/// New keys that fall into the same gap between the table's stored keys (a conversation's
/// new records after its last one, say) are inserted as one **run** through a redb cursor
/// (`CursorMut::insert_before`, redb 4.6), which packs the run and the leaf it lands in into
/// full leaves with one update of the parent branch. `Table::insert` splits a full leaf in the
/// middle instead, so a B-tree grown by appends at many places keeps its leaves about half full
/// (the chitchat import: `messages` 53% full, 83% with runs; docs/BENCHMARKS.md, session 13).
///
/// A put starts a run only when the next operation is a put that sorts before the stored key
/// after this put's gap: a cursor is opened at the gap and the stored key after it peeked (the
/// probe). A lone insert goes through `Table::insert`, since a cursor would splice it like a
/// run and redb packs the parent branch greedily, which for inserts at random places leaves
/// many small branch pages (measured: `message_ids` 65 → 281 branch pages and one more level).
/// So where no run forms, the tree is the one `Table::insert` builds. Once failed probes
/// outnumber successful ones by [`PROBE_MISSES`], the table's remaining operations in the
/// group skip the probe. Puts of stored keys (overwrites) and deletes go through
/// `Table::insert` and `Table::remove`.
fn apply_table(table: &mut WriteTable<'_>, ops: &[&Op]) -> Result<(), BackendError> {
    // Failed probes minus successful ones.
    let mut misses: u32 = 0;
    let mut i = 0;
    while let Some(op) = ops.get(i) {
        i += 1;
        let (key, value) = match op {
            Op::Put { key, value, .. } => (key.as_slice(), value.as_slice()),
            Op::Delete { key, .. } => {
                table.remove(key.as_slice()).map_err(map_err)?;
                continue;
            }
        };
        let next_put = match ops.get(i) {
            Some(Op::Put { key: next, .. }) if misses < PROBE_MISSES && next.as_slice() > key => {
                next.as_slice()
            }
            _ => {
                table.insert(key, value).map_err(map_err)?;
                continue;
            }
        };
        let mut cursor = table
            .lower_bound_mut(Bound::Included(key))
            .map_err(map_err)?;
        // The gap is just before the first stored key ≥ `key`: a run forms when that key is
        // above the next put too (or there is none). Then it is not `key`, which is new.
        let run = match cursor.peek_next().map_err(map_err)? {
            None => true,
            Some((stored, _)) => stored.value() > next_put,
        };
        if !run {
            // Nothing was inserted through the cursor: dropping it changes nothing.
            drop(cursor);
            misses = misses.saturating_add(1);
            table.insert(key, value).map_err(map_err)?;
            continue;
        }
        misses = misses.saturating_sub(1);
        if !insert_before(&mut cursor, key, value)? {
            // Unreachable by the peek above; if redb disagrees, the plain insert is correct.
            cursor.close().map_err(map_err)?;
            table.insert(key, value).map_err(map_err)?;
            continue;
        }
        // Later puts join the run while they sort before the stored key after the gap (and
        // after the run's last key: a repeated key leaves the run and is then an overwrite).
        while let Some(Op::Put { key, value, .. }) = ops.get(i) {
            if !insert_before(&mut cursor, key, value)? {
                break;
            }
            i += 1;
        }
        // `close` reports an error of applying the run (`drop` would only poison the
        // transaction, which then refuses to commit).
        cursor.close().map_err(map_err)?;
    }
    Ok(())
}

/// Inserts `key` and `value` into the gap of `cursor`: `Ok(false)` (nothing changed) when
/// `key` does not sort strictly between the gap's neighbours.
fn insert_before(
    cursor: &mut redb::CursorMut<'_, &'static [u8], &'static [u8]>,
    key: &[u8],
    value: &[u8],
) -> Result<bool, BackendError> {
    match cursor.insert_before(key, value) {
        Ok(()) => Ok(true),
        Err(redb::CursorError::UnorderedKey) => Ok(false),
        Err(e) => Err(map_err(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn put(table: &str, key: &[u8], value: &[u8]) -> Op {
        Op::Put {
            table: table.into(),
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    fn delete(table: &str, key: &[u8]) -> Op {
        Op::Delete {
            table: table.into(),
            key: key.to_vec(),
        }
    }

    #[test]
    fn partition_sorts_by_key_and_keeps_the_order_of_one_keys_operations() {
        let a = [
            put("t", b"b", b"1"),
            delete("u", b"x"),
            put("t", b"a", b"2"),
        ];
        let b = [
            delete("t", b"b"),
            put("t", b"b", b"3"),
            put("t", b"a", b"4"),
        ];
        let tables = partition(&[&a, &b]);
        let names: Vec<&str> = tables.iter().map(|t| t.name).collect();
        assert_eq!(names, ["t", "u"]);
        assert!(tables[0].has_put);
        assert!(!tables[1].has_put);
        let t: Vec<&Op> = tables[0].ops.clone();
        assert_eq!(t, [&a[2], &b[2], &a[0], &b[0], &b[1],]);
    }

    /// A table's estimate is its measured time per operation (a moving average) times its
    /// operations; before any measurement, its byte weight.
    #[test]
    fn costs_estimate_from_measurements() {
        use std::time::Duration;
        let ops = [put("small", b"k1", b"v"), put("small", b"k2", b"v")];
        let groups: [&[Op]; 1] = [&ops];
        let tables = partition(&groups);
        let mut costs = Costs::default();
        let unmeasured = costs.estimate(&tables[0]);
        assert_eq!(
            unmeasured,
            (UNMEASURED_NS_PER_WEIGHT * tables[0].weight as f64) as u64
        );
        costs.record(("small", 4, Duration::from_micros(16)));
        assert_eq!(costs.estimate(&tables[0]), 8_000, "4 µs per op, 2 ops");
        costs.record(("small", 1, Duration::from_micros(8)));
        // 4 µs + 0.25 × (8 − 4) µs = 5 µs per op.
        assert_eq!(costs.estimate(&tables[0]), 10_000);
        // No operations: nothing learnt.
        costs.record(("small", 0, Duration::from_secs(1)));
        assert_eq!(costs.estimate(&tables[0]), 10_000);
    }

    /// A fresh database with a table `t` holding `initial`.
    fn table_with(initial: &[(Vec<u8>, Vec<u8>)]) -> (tempfile::TempDir, redb::Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            for (k, v) in initial {
                t.insert(k.as_slice(), v.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        (dir, db)
    }

    const T: redb::TableDefinition<'static, &'static [u8], &'static [u8]> =
        redb::TableDefinition::new("t");

    /// Applies `ops` to table `t` of `db` in one transaction: through [`apply_table`], or with
    /// one `Table::insert`/`remove` per operation (the reference).
    fn apply(db: &redb::Database, ops: &[Op], reference: bool) {
        let groups: [&[Op]; 1] = [ops];
        let tables = partition(&groups);
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            for table in &tables {
                if reference {
                    for op in &table.ops {
                        match op {
                            Op::Put { key, value, .. } => {
                                t.insert(key.as_slice(), value.as_slice()).unwrap();
                            }
                            Op::Delete { key, .. } => {
                                t.remove(key.as_slice()).unwrap();
                            }
                        }
                    }
                } else {
                    apply_table(&mut t, &table.ops).unwrap();
                }
            }
        }
        txn.commit().unwrap();
    }

    fn contents(db: &redb::Database) -> Vec<(Vec<u8>, Vec<u8>)> {
        use redb::{ReadableDatabase, ReadableTable};
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).unwrap();
        t.iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                (k.value().to_vec(), v.value().to_vec())
            })
            .collect()
    }

    /// (leaf pages, branch pages) of table `t`.
    fn pages(db: &redb::Database) -> (u64, u64) {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let txn = db.begin_read().unwrap();
        let stats = txn.open_table(T).unwrap().stats().unwrap();
        (stats.leaf_pages(), stats.branch_pages())
    }

    /// Keys of two bytes of "prefix" and one of "suffix": operations cluster under few
    /// prefixes (runs), land between stored keys, repeat keys, overwrite and delete.
    fn arb_ops() -> impl proptest::strategy::Strategy<Value = Vec<Op>> {
        use proptest::prelude::*;
        let key = (0u8..4, 0u8..3, any::<u8>()).prop_map(|(a, b, c)| vec![a, b, c]);
        let op = (
            key,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        )
            .prop_map(|(k, v)| match v {
                Some(v) => put("t", &k, &v),
                None => delete("t", &k),
            });
        proptest::collection::vec(op, 0..400)
    }

    fn arb_initial() -> impl proptest::strategy::Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        use proptest::prelude::*;
        proptest::collection::btree_map(
            (0u8..4, 0u8..3, any::<u8>()).prop_map(|(a, b, c)| vec![a, b, c]),
            proptest::collection::vec(any::<u8>(), 0..300),
            0..300,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Runs, overwrites, repeated keys and deletes end in the table that applying each
        /// operation in batch order with `Table::insert`/`remove` gives.
        #[test]
        fn runs_apply_like_one_operation_at_a_time(
            initial in arb_initial(),
            ops in arb_ops(),
            more in arb_ops(),
        ) {
            let (_a, by_runs) = table_with(&initial);
            let (_b, reference) = table_with(&initial);
            for ops in [&ops, &more] {
                apply(&by_runs, ops, false);
                apply(&reference, ops, true);
            }
            proptest::prop_assert_eq!(contents(&by_runs), contents(&reference));
        }
    }

    /// `n` records appended to each of `prefixes` conversations per transaction, `rounds`
    /// times: the pattern of an import grouped by conversation, where each conversation's
    /// records land after its last one, between other conversations' records.
    fn appends(prefixes: u64, n: u64, round: u64) -> Vec<Op> {
        let mut ops = Vec::new();
        for c in 0..prefixes {
            // Conversations at scattered places in key order.
            let prefix = c.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes();
            for i in 0..n {
                let mut key = prefix.to_vec();
                key.extend_from_slice(&(round * n + i).to_be_bytes());
                ops.push(put("t", &key, &[c as u8; 200]));
            }
        }
        ops
    }

    /// Appending runs at many places through cursors fills leaves that `Table::insert`, which
    /// splits full leaves in the middle, leaves about half full.
    #[test]
    fn appended_runs_fill_leaves() {
        let (_a, by_runs) = table_with(&[]);
        let (_b, reference) = table_with(&[]);
        // Runs of 36 records, as the chitchat corpus' conversations (258,145 messages in 7,168).
        for round in 0..4 {
            let ops = appends(200, 36, round);
            apply(&by_runs, &ops, false);
            apply(&reference, &ops, true);
        }
        assert_eq!(contents(&by_runs), contents(&reference));
        let (runs_leaves, _) = pages(&by_runs);
        let (reference_leaves, _) = pages(&reference);
        // 28,800 records of 216 bytes: about 1,600 leaves at 100%.
        assert!(
            runs_leaves * 4 <= reference_leaves * 3,
            "{runs_leaves} leaves with runs, {reference_leaves} without"
        );
    }

    /// Keys at random places form no runs: the tree is the one `Table::insert` builds, leaf
    /// for leaf and branch for branch (no cursor splices a lone key).
    #[test]
    fn keys_at_random_places_build_the_tree_table_insert_builds() {
        let (_a, by_runs) = table_with(&[]);
        let (_b, reference) = table_with(&[]);
        let mut x = 0x2545_F491_4F6C_DD1D_u64;
        for _ in 0..20 {
            let ops: Vec<Op> = (0..500)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    put("t", &x.to_be_bytes(), &[7; 40])
                })
                .collect();
            apply(&by_runs, &ops, false);
            apply(&reference, &ops, true);
        }
        assert_eq!(contents(&by_runs), contents(&reference));
        assert_eq!(pages(&by_runs), pages(&reference));
    }
}
