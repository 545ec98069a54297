//! Write batches and durability.

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
        /// Table name.
        table: String,
        /// Key bytes.
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Remove `key` from `table`; removing an absent key is not an error.
    Delete {
        /// Table name.
        table: String,
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

/// An ordered list of puts and deletes, possibly across several tables, committed atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<Op>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a put of `value` under `key` in `table`.
    pub fn put(&mut self, table: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put {
            table: table.to_owned(),
            key: key.into(),
            value: value.into(),
        });
    }

    /// Appends a delete of `key` in `table`.
    pub fn delete(&mut self, table: &str, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete {
            table: table.to_owned(),
            key: key.into(),
        });
    }

    /// Appends every operation of `other`, after this batch's own.
    pub fn extend(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
    }

    /// The operations, in the order they will be applied.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Consumes the batch, returning its operations.
    pub fn into_ops(self) -> Vec<Op> {
        self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
