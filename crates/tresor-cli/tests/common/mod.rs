//! What the CLI tests share: the `tresor` binary run with a clean environment, and checks of
//! its output.
#![allow(dead_code)] // each test binary uses a part of it

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The environment variables the binary reads; removed so that a caller's environment never
/// leaks into a test (each test sets the ones it needs).
const TRESOR_VARS: [&str; 6] = [
    "TRESOR_DB",
    "TRESOR_PASSPHRASE",
    "TRESOR_NEW_PASSPHRASE",
    "TRESOR_KEY_FILE",
    "TRESOR_BACKEND",
    "TRESOR_TARGET",
];

/// A `tresor` command with `--db db` (when given) and `args`, stdin closed, no `TRESOR_*`
/// variable set.
pub fn command(db: Option<&Path>, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tresor"));
    if let Some(db) = db {
        c.arg("--db").arg(db);
    }
    c.args(args).stdin(Stdio::null());
    for var in TRESOR_VARS {
        c.env_remove(var);
    }
    c
}

/// Runs `c` to completion.
pub fn run(mut c: Command) -> Output {
    c.output().expect("the binary runs")
}

/// Asserts success and returns stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts a clean failure: exit status 1 (not a panic's 101), one line on stderr containing
/// `needle`.
pub fn fails_with(out: Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr:?}");
}

/// One JSON value per line of `s`.
pub fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
