//! Store locations for the integration tests: one directory per test process under cargo's
//! temporary directory for integration tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The directory of this test process's stores.
pub fn dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("tresor-matrix")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// A fresh store path, unique within the process.
pub fn fresh_path() -> PathBuf {
    dir().join(format!("s{}.redb", NEXT.fetch_add(1, Ordering::Relaxed)))
}
