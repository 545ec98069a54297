//! Tidy checks on the workspace, run as ordinary tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn metadata() -> serde_json::Value {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// The layering rule of docs/ARCHITECTURE.md: arrows point down only.
fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let mut m = BTreeMap::new();
    m.insert("tresor-backend", BTreeSet::new());
    m.insert("tresor-redb", ["tresor-backend"].into());
    m.insert("tresor-sqlite", ["tresor-backend"].into());
    m.insert("tresor-crypto", BTreeSet::new());
    m.insert("tresor-schema", ["tresor-backend", "tresor-crypto"].into());
    m.insert(
        "tresor-backup",
        ["tresor-backend", "tresor-crypto", "tresor-schema"].into(),
    );
    m.insert(
        "tresor",
        [
            "tresor-backend",
            "tresor-redb",
            "tresor-sqlite",
            "tresor-crypto",
            "tresor-schema",
            "tresor-backup",
        ]
        .into(),
    );
    m.insert("tresor-cli", ["tresor"].into());
    // matrix-sdk's stores on the facade (never the CLI).
    m.insert("tresor-matrix", ["tresor"].into());
    // The benchmark harness sits on top: it drives the facade and reads the store file raw.
    m.insert(
        "tresor-bench",
        ["tresor", "tresor-cli", "tresor-crypto", "tresor-schema"].into(),
    );
    m
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let meta = metadata();
    let allowed = allowed();
    let mut checked = 0;
    for pkg in meta["packages"].as_array().unwrap() {
        let name = pkg["name"].as_str().unwrap();
        if name == "xtask" {
            continue;
        }
        let allow = allowed
            .get(name)
            .unwrap_or_else(|| panic!("crate {name} is not in the layering table of tidy.rs"));
        for dep in pkg["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            let is_dev = dep["kind"].as_str() == Some("dev");
            if dep_name.starts_with("tresor") && !is_dev {
                assert!(
                    allow.contains(dep_name),
                    "{name} must not depend on {dep_name}"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(
        checked,
        allowed.len(),
        "every layered crate is in the workspace"
    );
}

#[test]
fn library_crates_forbid_unsafe_and_deny_missing_docs() {
    let meta = metadata();
    for pkg in meta["packages"].as_array().unwrap() {
        for target in pkg["targets"].as_array().unwrap() {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap())
                .collect();
            if !kinds.contains(&"lib") {
                continue;
            }
            let src = std::fs::read_to_string(target["src_path"].as_str().unwrap()).unwrap();
            for attr in ["#![forbid(unsafe_code)]", "#![deny(missing_docs)]"] {
                assert!(src.contains(attr), "{} lacks {attr}", pkg["name"]);
            }
        }
    }
}

#[test]
fn ci_script_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        readme.contains("cargo xtask ci"),
        "README names the test command"
    );
    assert!(
        ci.contains("cargo xtask ci"),
        ".ci/run runs the README's test command"
    );
}

#[test]
fn format_doc_contains_the_backup_format_verbatim() {
    let doc = std::fs::read_to_string(root().join("docs/FORMAT.md")).unwrap();
    let backup = std::fs::read_to_string(root().join("crates/tresor-backup/FORMAT.md")).unwrap();
    assert!(
        doc.contains(&backup),
        "copy crates/tresor-backup/FORMAT.md into docs/FORMAT.md section 2"
    );
}

/// The schema version the code writes (`tresor_schema::SCHEMA_VERSION`), read from its source.
fn schema_version() -> u32 {
    let src = std::fs::read_to_string(root().join("crates/tresor-schema/src/version.rs")).unwrap();
    let line = src
        .lines()
        .find(|l| l.starts_with("pub const SCHEMA_VERSION: u32 = "))
        .expect("version.rs defines SCHEMA_VERSION");
    line.trim_start_matches("pub const SCHEMA_VERSION: u32 = ")
        .trim_end_matches(';')
        .parse()
        .expect("SCHEMA_VERSION is a number")
}

#[test]
fn format_doc_names_the_schema_version_the_code_writes() {
    let v = schema_version();
    let doc = std::fs::read_to_string(root().join("docs/FORMAT.md")).unwrap();
    let meta_row = format!("this code writes `{v}`, migrates `1`–`{}` at open", v - 1);
    assert!(
        doc.contains(&meta_row),
        "docs/FORMAT.md 1.2 (`meta`'s `schema_version` row) should say: {meta_row}"
    );
    let backup = std::fs::read_to_string(root().join("crates/tresor-backup/FORMAT.md")).unwrap();
    let header_row = format!(
        "the tresor schema version of the entries ({v}; backups of schemas 1–{}",
        v - 1
    );
    assert!(
        backup.contains(&header_row),
        "crates/tresor-backup/FORMAT.md (the header's `schema_version`) should say: {header_row}"
    );
}
