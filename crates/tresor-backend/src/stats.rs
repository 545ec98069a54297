//! Storage statistics and compaction reports.

/// Statistics a backend reports about its storage as a whole, from [`crate::Backend::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendStats {
    /// Size of the backing file(s) on disk in bytes (SQLite: database plus write-ahead log;
    /// redb: database plus commit log, including the space the log reserves ahead of its
    /// appends, up to 4 MiB); `None` for backends without a file (memory).
    pub file_bytes: Option<u64>,
    /// Every table with its number of entries, ascending by name. Counts are kept by the
    /// engine, not computed by scanning (redb: the B-tree header's length; SQLite: a count
    /// maintained in the same transaction as every write).
    pub table_entries: Vec<(String, u64)>,
}

/// What [`crate::Backend::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactReport {
    /// Size of the backing file(s) before compaction, bytes (`None` without a file).
    pub bytes_before: Option<u64>,
    /// Size after compaction, bytes (`None` without a file).
    pub bytes_after: Option<u64>,
}

impl CompactReport {
    /// A report for a compaction from `before` to `after` bytes.
    pub fn new(bytes_before: Option<u64>, bytes_after: Option<u64>) -> Self {
        Self {
            bytes_before,
            bytes_after,
        }
    }

    /// Bytes given back to the file system (0 when the file did not shrink, or without a file).
    pub fn bytes_reclaimed(&self) -> u64 {
        match (self.bytes_before, self.bytes_after) {
            (Some(before), Some(after)) => before.saturating_sub(after),
            _ => 0,
        }
    }
}
