//! Write batches and durability.

use std::sync::Arc;

/// How durable a commit must be before [`crate::Backend::commit`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Durability {
    /// The batch is on stable storage (fsync) before the commit returns: it survives a crash or
    /// power loss from then on.
    #[default]
    Immediate,
    /// The batch is visible to readers when the commit returns but may be lost by a crash until
    /// a later `Immediate` commit (or a clean close) makes it durable. Never torn: after a crash
    /// the store holds a prefix of the committed batches.
    Eventual,
}

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert or overwrite `key` in `table` with `value`.
    Put {
        /// Table name (shared by the operations of a batch that name the same table).
        table: Arc<str>,
        /// Key bytes.
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Remove `key` from `table`; removing an absent key is not an error.
    Delete {
        /// Table name (shared by the operations of a batch that name the same table).
        table: Arc<str>,
        /// Key bytes.
        key: Vec<u8>,
    },
}

impl Op {
    /// The table this operation writes to.
    pub fn table(&self) -> &str {
        match self {
            Op::Put { table, .. } | Op::Delete { table, .. } => table,
        }
    }
}

/// What a [`Condition`] expects of the value stored under its key when the batch commits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expect {
    /// The key is absent (never written, or deleted).
    Absent,
    /// The key is present, whatever its value.
    Present,
    /// The key is present and holds exactly these bytes.
    Value(Vec<u8>),
}

impl Expect {
    /// Whether `current` (the stored value, `None` when absent) satisfies this expectation.
    pub fn holds(&self, current: Option<&[u8]>) -> bool {
        match (self, current) {
            (Expect::Absent, None) => true,
            (Expect::Present, Some(_)) => true,
            (Expect::Value(want), Some(have)) => want.as_slice() == have,
            _ => false,
        }
    }
}

/// A precondition of a [`WriteBatch`]: the state `key` of `table` must be in when the batch
/// commits, checked inside the batch's own write transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Table name.
    pub table: String,
    /// Key bytes.
    pub key: Vec<u8>,
    /// The expected state.
    pub expect: Expect,
}

/// An ordered list of puts and deletes, possibly across several tables, committed atomically,
/// with optional [`Condition`]s.
///
/// # Read-modify-write
/// Conditions make a batch a *conditional write* (compare-and-set over any number of keys): a
/// caller reads values (from the backend or a snapshot), builds the new values, and adds one
/// condition per value read. At commit every condition is checked against the committed state,
/// inside the same write transaction that applies the operations and before any of them; if one
/// fails, the whole batch is rejected with [`crate::BackendError::ConditionFailed`] and nothing
/// is written. The caller then re-reads and retries.
///
/// Isolation: backends have a single writer (one write transaction at a time, batches in a
/// group applied one after the other), so committed conditional batches are **serializable**:
/// the outcome equals running them one at a time in commit order, and a batch whose conditions
/// cover every key it read acts as if its reads and writes were one atomic step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<Op>,
    conditions: Vec<Condition>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a put of `value` under `key` in `table`.
    pub fn put(&mut self, table: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let table = self.table_name(table);
        self.ops.push(Op::Put {
            table,
            key: key.into(),
            value: value.into(),
        });
    }

    /// Appends a delete of `key` in `table`.
    pub fn delete(&mut self, table: &str, key: impl Into<Vec<u8>>) {
        let table = self.table_name(table);
        self.ops.push(Op::Delete {
            table,
            key: key.into(),
        });
    }

    /// `table` as an operation holds it: the name a recent operation already holds (writes
    /// cycle through a few tables: a message, then its index entries), else a new one — so
    /// that a batch allocates a table name once per run of tables rather than per operation.
    fn table_name(&self, table: &str) -> Arc<str> {
        const RECENT: usize = 8;
        for op in self.ops.iter().rev().take(RECENT) {
            let (Op::Put { table: name, .. } | Op::Delete { table: name, .. }) = op;
            if &**name == table {
                return Arc::clone(name);
            }
        }
        Arc::from(table)
    }

    /// Adds a condition: at commit, `key` of `table` must be as `expect` says, or the whole
    /// batch is rejected with [`crate::BackendError::ConditionFailed`] whose `index` is the
    /// position of this condition among the batch's conditions (0 for the first `expect`).
    pub fn expect(&mut self, table: &str, key: impl Into<Vec<u8>>, expect: Expect) {
        self.conditions.push(Condition {
            table: table.to_owned(),
            key: key.into(),
            expect,
        });
    }

    /// Appends every operation and condition of `other`, after this batch's own.
    pub fn extend(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
        self.conditions.extend(other.conditions);
    }

    /// The conditions, in the order they were added.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Every table name the batch names, in operations and conditions.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.ops
            .iter()
            .map(Op::table)
            .chain(self.conditions.iter().map(|c| c.table.as_str()))
    }

    /// Consumes the batch, returning its conditions and operations.
    pub fn into_parts(self) -> (Vec<Condition>, Vec<Op>) {
        (self.conditions, self.ops)
    }

    /// The operations, in the order they will be applied.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Consumes the batch, returning its operations.
    pub fn into_ops(self) -> Vec<Op> {
        self.ops
    }

    /// Number of operations (conditions not counted).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has neither operation nor condition (committing it does nothing).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.conditions.is_empty()
    }

    /// Checks every table name of the batch, then every condition against `current`, which
    /// reads the committed value of a key (`None` when absent).
    ///
    /// # Errors
    /// [`crate::BackendError::InvalidTableName`] for a bad name (checked first, for all),
    /// [`crate::BackendError::ConditionFailed`] for the first failing condition, or the error
    /// of `current`.
    pub fn check<F>(&self, mut current: F) -> Result<(), crate::BackendError>
    where
        F: FnMut(&str, &[u8], &Expect) -> Result<bool, crate::BackendError>,
    {
        self.validate()?;
        for (index, c) in self.conditions.iter().enumerate() {
            if !current(&c.table, &c.key, &c.expect)? {
                return Err(crate::BackendError::ConditionFailed {
                    table: c.table.clone(),
                    index,
                });
            }
        }
        Ok(())
    }

    /// Checks every table name the batch names.
    ///
    /// # Errors
    /// [`crate::BackendError::InvalidTableName`] for the first bad name.
    pub fn validate(&self) -> Result<(), crate::BackendError> {
        self.table_names().try_for_each(crate::validate_table_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(op: &Op) -> &Arc<str> {
        match op {
            Op::Put { table, .. } | Op::Delete { table, .. } => table,
        }
    }

    /// Operations cycling through a few tables share each table's name; every operation still
    /// names its own table.
    #[test]
    fn operations_share_table_names() {
        let tables = [
            "messages",
            "message_ids",
            "msg_by_peer",
            "msg_by_time",
            "conversations",
        ];
        let mut batch = WriteBatch::new();
        for i in 0u32..200 {
            let table = tables[i as usize % tables.len()];
            if i % 7 == 0 {
                batch.delete(table, i.to_be_bytes());
            } else {
                batch.put(table, i.to_be_bytes(), [1]);
            }
        }
        let (_, ops) = batch.into_parts();
        for (i, op) in ops.iter().enumerate() {
            assert_eq!(op.table(), tables[i % tables.len()]);
        }
        let mut distinct: Vec<&Arc<str>> = Vec::new();
        for op in &ops {
            if !distinct.iter().any(|d| Arc::ptr_eq(d, name(op))) {
                distinct.push(name(op));
            }
        }
        assert_eq!(distinct.len(), tables.len());
    }
}
