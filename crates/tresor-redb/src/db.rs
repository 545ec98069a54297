//! [`Db`]: the open redb database, closed without letting a panic of redb escape.
//!
//! Dropping a `redb::Database` commits its allocator state; on a damaged file (a page the
//! store never read before) redb 4.6 may panic there, and a panic in a destructor would take
//! down the thread that dropped the last handle — often the caller's. The close is run under
//! `catch_unwind`: the damage was or will be reported by the reads that reach it, and the
//! file is left as redb left it (a crash at that moment would leave the same).
//!
//! It also keeps the *latest view*: the read view of the latest commit, which every read that
//! begins before the next commit shares (`Db::latest_view`). The writer thread forgets it
//! after each commit, before it answers the commit's callers (`Db::forget_view`), so that a
//! read that begins after a commit was acknowledged sees it.

use std::ops::{Deref, DerefMut};
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, PoisonError};

use redb::{Database, ReadableDatabase};
use tresor_backend::BackendError;

use crate::error::map_err;
use crate::view::RedbView;

/// An open database; derefs to it.
pub(crate) struct Db {
    db: Option<Database>,
    /// The view shared by reads until the next commit; `None` after a commit, until a read
    /// needs one. A view pins the pages it sees: this one is dropped at the next commit, so it
    /// pins nothing a later commit frees (views lent out live as long as their holders).
    latest: Mutex<Option<RedbView>>,
}

impl Db {
    /// Wraps `db`.
    pub(crate) fn new(db: Database) -> Self {
        Self {
            db: Some(db),
            latest: Mutex::new(None),
        }
    }

    /// The view of the latest commit: the one already taken since that commit, else a new
    /// read transaction.
    ///
    /// # Errors
    /// When redb cannot begin a read transaction.
    pub(crate) fn latest_view(&self) -> Result<RedbView, BackendError> {
        // The slot holds a complete view or none, whatever a panic interrupted: a poisoned
        // lock is used as is. The transaction begins under the lock, so that a view begun
        // before a commit cannot be stored after `forget_view` ran for that commit.
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(view) = &*latest {
            return Ok(view.clone());
        }
        let view = RedbView::new(self.begin_read().map_err(map_err)?);
        *latest = Some(view.clone());
        Ok(view)
    }

    /// Forgets the latest view: called after every commit, before its callers are answered.
    pub(crate) fn forget_view(&self) {
        let view = self
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Dropped outside the lock (ending a read transaction takes redb's own locks).
        drop(view);
    }
}

impl Deref for Db {
    type Target = Database;
    fn deref(&self) -> &Database {
        // Invariant: the option is `Some` from `new` until `drop`, which nothing can outlive.
        self.db
            .as_ref()
            .expect("the database is open until dropped")
    }
}

impl DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Database {
        // Invariant: as in `deref`.
        self.db
            .as_mut()
            .expect("the database is open until dropped")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // The shared view's transaction ends before the database closes.
        self.forget_view();
        if let Some(db) = self.db.take() {
            // A panic of redb while closing a damaged file: nothing left to do but not to
            // propagate it (see the module docs).
            let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(db)));
        }
    }
}
