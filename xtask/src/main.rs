//! `cargo xtask`: developer tasks for the tresor workspace, with few dependencies.
//!
//! - `cargo xtask ci`: formatting check, clippy with `-D warnings`, the whole test suite, and
//!   the docs with `-D warnings` (what `.ci/run` runs).
//! - `cargo xtask demo [FILE] [--full] [--release]`: the main job. Builds the CLI, imports the
//!   bundled chitchat sample (or FILE, or with `--full` the whole corpus in `../shared/data`)
//!   into a fresh encrypted store in `target/demo/`, queries it, backs it up, verifies and
//!   restores the backup, printing every command and its output.
//! - `cargo xtask crash [--iterations N]`: the crash-consistency test (writer SIGKILLed at
//!   random moments, store reopened and checked) with N iterations (default 1,000), release.
//! - `cargo xtask bench-backup`: backup and restore throughput, peak RSS and incremental bytes
//!   on the full chitchat corpus (release build), against `tar | zstd` of the store file and
//!   restic when installed (`bench_backup.rs`); prints the tables of docs/BENCHMARKS.md
//!   ("Backups").
//! - `cargo xtask proptest`: the model-based property tests at 100 times the default cases.
//! - `cargo xtask faults`: the fault-injection test at every n (the default run takes every 4th).
//! - `cargo xtask fuzz [--seconds S]`: every cargo-fuzz target for S seconds each (default 60),
//!   installing cargo-fuzz if missing; the fuzz crate builds on stable via `RUSTC_BOOTSTRAP=1`.
//! - `cargo xtask vectors [--write]`: with `--write`, regenerates
//!   `crates/tresor-crypto/tests/vectors.json` with our code (`examples/gen_vectors.rs`);
//!   then checks it with the independent Python verifier `xtask/vectors/verify.py`
//!   (installing `cryptography`, `argon2-cffi` and `blake3` with pip if they are missing) and
//!   with the Rust vector tests.
//! - `cargo xtask bench-backend`: the backend layer's benchmark (`RedbBackend` through the
//!   trait against raw redb, on the chitchat corpus), printing a Markdown table for
//!   `docs/BENCHMARKS.md` ("Backend layer").
//! - `cargo xtask bench [--runs N] [--quick] [--systems …] [--data FILE] [--scale 1m|10m]
//!   [--no-matrix]`: tresor vs raw redb vs SQLCipher vs SQLite on the chitchat corpus (see
//!   `bench.rs` and docs/BENCHMARKS.md), then `bench-matrix` (unless `--no-matrix`). Builds
//!   SQLCipher and OpenSSL the first time: minutes.
//! - `cargo xtask bench-matrix [--runs N] [--quick] [--members N]`: tresor-matrix vs
//!   matrix-sdk-sqlite on matrix-sdk's typical state-store operations (`bench_matrix.rs`;
//!   `benches/matrix-bench` is its own workspace).
//! - `cargo xtask media-1gib`: a 1 GiB encrypted media blob streamed into a redb store and
//!   back (release), printing throughput and peak RSS (VmHWM).

mod bench;
mod bench_backup;
mod bench_matrix;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("demo") => demo(&args[1..]),
        Some("crash") => crash(&args[1..]),
        Some("bench-backup") => bench_backup::bench_backup(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("proptest") => run(
            "model-based property tests at 100x cases",
            cargo()
                .args([
                    "test",
                    "--release",
                    "-p",
                    "tresor",
                    "--test",
                    "model",
                    "--test",
                    "messages",
                ])
                .env("TRESOR_PROPTEST_MULTIPLIER", "100"),
        ),
        Some("faults") => run(
            "fault injection at every n",
            cargo()
                .args([
                    "test",
                    "--release",
                    "-p",
                    "tresor",
                    "--test",
                    "faults",
                    "--",
                    "--nocapture",
                ])
                .env("TRESOR_FAULT_STRIDE", "1"),
        ),
        Some("vectors") => vectors(args.iter().any(|a| a == "--write")),
        Some("bench-backend") => run(
            "bench-backend",
            cargo().args(["bench", "-p", "tresor-redb", "--bench", "backend"]),
        ),
        Some("bench") => bench::bench(&args[1..]),
        Some("bench-matrix") => bench_matrix::bench_matrix(&args[1..]),
        Some("media-1gib") => run(
            "1 GiB media blob round trip (peak RSS)",
            cargo().args([
                "run",
                "--release",
                "-p",
                "tresor",
                "--example",
                "media_1gib",
            ]),
        ),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | demo [FILE] [--full] [--release] | crash [--iterations N] | fuzz [--seconds S] | faults | proptest | vectors [--write] | bench-backend | bench-backup | media-1gib | bench [--quick] [--runs N] [--systems LIST] [--data FILE] [--scale 1m|10m] [--no-matrix] | bench-matrix [--quick] [--runs N] [--members N]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    // xtask/ is one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn run(step: &str, cmd: &mut Command) -> Result<(), String> {
    eprintln!("==> {step}");
    let started = Instant::now();
    if cmd.get_current_dir().is_none() {
        cmd.current_dir(workspace_root());
    }
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: cannot start: {e}"))?;
    eprintln!("    {step}: {:.1} s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn ci() -> Result<(), String> {
    run("fmt", cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(
        "clippy",
        // Default members only: the benchmark harness (SQLCipher, OpenSSL) is built by
        // `cargo xtask bench`, not by CI.
        cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]),
    )?;
    run("test", cargo().args(["test"]))?;
    run(
        "doc",
        cargo()
            .args(["doc", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    Ok(())
}

/// Regenerates (with `write`) and checks the known-answer vectors, in Rust and in Python.
fn vectors(write: bool) -> Result<(), String> {
    if write {
        run(
            "generate vectors",
            cargo().args([
                "run",
                "--quiet",
                "-p",
                "tresor-crypto",
                "--example",
                "gen_vectors",
            ]),
        )?;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import cryptography, argon2, blake3"])
        .status()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !probe.success() {
        run(
            "pip install the verifier's dependencies",
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "cryptography",
                "argon2-cffi",
                "blake3",
            ]),
        )?;
    }
    run(
        "independent verifier (Python)",
        Command::new(&python).arg("xtask/vectors/verify.py"),
    )?;
    run(
        "vector tests (Rust)",
        cargo().args([
            "test",
            "--quiet",
            "-p",
            "tresor-crypto",
            "-p",
            "tresor-schema",
            "--test",
            "vectors",
        ]),
    )
}

/// Runs the main job: import chitchat data into a fresh encrypted store, then query it, back it
/// up, verify and restore the backup. The store stays in `target/demo/` for further use.
fn demo(args: &[String]) -> Result<(), String> {
    let root = workspace_root();
    let full = args.iter().any(|a| a == "--full");
    let file = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from);
    let file = if full {
        let corpus = root.join("../shared/data/chitchat/dataset.json.gz");
        if !corpus.exists() {
            return Err(format!("--full: no corpus at {}", corpus.display()));
        }
        Some(corpus)
    } else {
        file
    };
    let release = full || args.iter().any(|a| a == "--release");
    let mut build = cargo();
    build.args(["build", "--quiet", "-p", "tresor-cli"]);
    if release {
        build.arg("--release");
    }
    run("build the tresor CLI", &mut build)?;
    let bin = root
        .join("target")
        .join(if release { "release" } else { "debug" })
        .join("tresor");
    let dir = root.join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let db = dir.join("chat.redb");
    let pass = std::env::var("TRESOR_PASSPHRASE").unwrap_or_else(|_| "demo passphrase".into());
    let tresor = |args: &[&str]| -> Result<String, String> {
        let shown: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        println!("\n$ tresor --db {} {}", db.display(), shown.join(" "));
        let out = Command::new(&bin)
            .arg("--db")
            .arg(&db)
            .args(args)
            .env("TRESOR_PASSPHRASE", &pass)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "tresor {} failed ({})",
                shown.join(" "),
                out.status
            ))
        }
    };
    let file_arg = file.as_ref().map(|f| f.to_string_lossy().into_owned());
    let mut import = vec!["import", "chitchat"];
    if let Some(f) = &file_arg {
        import.push(f);
    }
    tresor(&import)?;
    tresor(&["stats"])?;
    let recent = tresor(&["messages", "--recent", "--limit", "3", "--json"])?;
    let first = recent
        .lines()
        .next()
        .ok_or("the store returned no message")?;
    let value: serde_json::Value =
        serde_json::from_str(first).map_err(|e| format!("bad JSON from the CLI: {e}"))?;
    let conversation = value["conversation_id"]
        .as_str()
        .ok_or("no conversation_id")?;
    let sender = value["sender"].as_str().ok_or("no sender")?;
    tresor(&["messages", "--conversation", conversation, "--limit", "5"])?;
    tresor(&["messages", "--peer", sender, "--limit", "3"])?;
    let backups = dir.join("backups");
    let target = format!("dir:{}", backups.display());
    let created = tresor(&[
        "backup",
        "create",
        "--target",
        &target,
        "--description",
        "demo",
    ])?;
    if !created.starts_with("backup written: ") {
        return Err("backup create printed no id".into());
    }
    tresor(&["backup", "list", "--target", &target])?;
    tresor(&["backup", "verify", "--target", &target])?;
    let restored = dir.join("restored.redb");
    let restore_out = Command::new(&bin)
        .arg("--db")
        .arg(&restored)
        .args(["restore", "--target", &target, "latest"])
        .env("TRESOR_PASSPHRASE", &pass)
        .output()
        .map_err(|e| e.to_string())?;
    println!(
        "\n$ tresor --db {} restore --target {target} latest",
        restored.display()
    );
    print!("{}", String::from_utf8_lossy(&restore_out.stdout));
    eprint!("{}", String::from_utf8_lossy(&restore_out.stderr));
    if !restore_out.status.success() {
        return Err("restore failed".into());
    }
    println!(
        "\nThe encrypted store is at {} (passphrase: $TRESOR_PASSPHRASE or \"demo passphrase\").",
        db.display()
    );
    Ok(())
}

/// The value after `flag` in `args`, parsed.
fn flag_value<T: std::str::FromStr>(args: &[String], flag: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == flag) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a number")),
    }
}

fn crash(args: &[String]) -> Result<(), String> {
    let iterations: u64 = flag_value(args, "--iterations", 1000)?;
    run(
        &format!("crash test, {iterations} iterations"),
        cargo()
            .args([
                "test",
                "--release",
                "-p",
                "tresor-cli",
                "--test",
                "crash",
                "--",
                "--nocapture",
            ])
            .env("TRESOR_CRASH_ITERATIONS", iterations.to_string()),
    )
}

fn fuzz(args: &[String]) -> Result<(), String> {
    let seconds: u64 = flag_value(args, "--seconds", 60)?;
    let has_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_fuzz {
        run(
            "install cargo-fuzz",
            cargo().args(["install", "cargo-fuzz", "--locked"]),
        )?;
    }
    let root = workspace_root();
    let list = Command::new("cargo")
        .args(["fuzz", "list"])
        .current_dir(root.join("fuzz"))
        .output()
        .map_err(|e| format!("cargo fuzz list: {e}"))?;
    let targets = String::from_utf8_lossy(&list.stdout).into_owned();
    for target in targets.lines().map(str::trim).filter(|t| !t.is_empty()) {
        let seeds = root.join("fuzz/seeds").join(target);
        let corpus = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("cargo");
        cmd.args(["fuzz", "run", "-O", target])
            .arg(&corpus)
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(root.join("fuzz"));
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        cmd.arg("--").arg(format!("-max_total_time={seconds}"));
        run(&format!("fuzz {target} for {seconds} s"), &mut cmd)?;
    }
    Ok(())
}
