//! Read views: synchronous, consistent reads for callers off the async runtime.

use crate::{BackendError, Direction, Entry, KeyRange};

/// A consistent, read-only view of every table of a backend, read **synchronously**.
///
/// It is the blocking counterpart of [`crate::Snapshot`]: it sees every batch committed
/// before it was taken and nothing committed after, in every table, and it never blocks
/// writers. Its calls run on the calling thread and may block it (a page read from disk, a
/// lock): use a view from a thread of your own or inside `tokio::task::spawn_blocking`, never
/// directly in an async task. In exchange a read costs what the engine costs, with no thread
/// hop: an upper layer runs a whole query (an index scan and the record reads it leads to)
/// in one view, on one blocking call.
///
/// A view is meant to be short-lived (one query, one batch of reads); while alive it pins the
/// storage of the state it sees, as a snapshot does.
///
/// Reads behave exactly as the same reads of [`crate::Backend`] (missing tables read as
/// empty; table names are validated), as the conformance suite checks.
pub trait ReadView: Send {
    /// Reads the value stored under `key` in `table`.
    ///
    /// # Errors
    /// [`BackendError`] on an invalid table name, an I/O failure or a corrupted file.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;

    /// Reads several keys of one table; one element per key, in request order.
    ///
    /// # Errors
    /// As [`ReadView::get`].
    fn get_many(&self, table: &str, keys: &[Vec<u8>])
    -> Result<Vec<Option<Vec<u8>>>, BackendError>;

    /// Scans `table` over `range` in `direction`, at most `limit` entries.
    ///
    /// # Errors
    /// As [`ReadView::get`].
    fn scan(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, BackendError>;

    /// Calls `visit` with each entry [`ReadView::scan`] would return, in the same order,
    /// lending the key and the value instead of returning copies; stops early when `visit`
    /// returns `false`. Returns the number of entries visited (the stopping one included).
    ///
    /// For a caller that only reads each entry once (decrypting it into a buffer of its own,
    /// say): a backend that can lend its bytes (redb lends them from its page) then copies
    /// nothing. The provided method copies, through [`ReadView::scan`].
    ///
    /// # Errors
    /// As [`ReadView::get`]; `visit` itself cannot fail (keep its error aside and return
    /// `false`).
    fn scan_each(
        &self,
        table: &str,
        range: KeyRange,
        direction: Direction,
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<usize, BackendError> {
        let mut visited = 0;
        for (key, value) in self.scan(table, range, direction, limit)? {
            visited += 1;
            if !visit(&key, &value) {
                break;
            }
        }
        Ok(visited)
    }

    /// Number of entries of `table` (0 for a table never written), without scanning it.
    ///
    /// # Errors
    /// As [`ReadView::get`].
    fn len(&self, table: &str) -> Result<u64, BackendError>;

    /// Names of the tables that hold or have held entries, ascending, as
    /// [`crate::Backend::tables`].
    ///
    /// Provided for views that cannot list their tables (so that adding it broke no view):
    /// it fails. The views of the backends of this workspace all implement it; a view served
    /// as a snapshot by [`crate::BlockingSnapshot`] must.
    ///
    /// # Errors
    /// [`BackendError::Unsupported`] unless implemented; otherwise as [`ReadView::get`].
    fn tables(&self) -> Result<Vec<String>, BackendError> {
        Err(BackendError::Unsupported(
            "listing the tables of this read view",
        ))
    }
}
