//! [`Db`]: the open redb database, closed without letting a panic of redb escape.
//!
//! Dropping a `redb::Database` commits its allocator state; on a damaged file (a page the
//! store never read before) redb 4.6 may panic there, and a panic in a destructor would take
//! down the thread that dropped the last handle — often the caller's. The close is run under
//! `catch_unwind`: the damage was or will be reported by the reads that reach it, and the
//! file is left as redb left it (a crash at that moment would leave the same).

use std::ops::{Deref, DerefMut};
use std::panic::AssertUnwindSafe;

use redb::Database;

/// An open database; derefs to it.
pub(crate) struct Db(Option<Database>);

impl Db {
    /// Wraps `db`.
    pub(crate) fn new(db: Database) -> Self {
        Self(Some(db))
    }
}

impl Deref for Db {
    type Target = Database;
    fn deref(&self) -> &Database {
        // Invariant: the option is `Some` from `new` until `drop`, which nothing can outlive.
        self.0.as_ref().expect("the database is open until dropped")
    }
}

impl DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Database {
        // Invariant: as in `deref`.
        self.0.as_mut().expect("the database is open until dropped")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            // A panic of redb while closing a damaged file: nothing left to do but not to
            // propagate it (see the module docs).
            let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(db)));
        }
    }
}
