//! `cargo xtask bench-matrix`: tresor-matrix vs matrix-sdk-sqlite on matrix-sdk's typical
//! `StateStore` operations (save 1,000 room members, load members, state-event reads, room
//! infos, reopen), same machine, same invocation. Also run at the end of `cargo xtask bench`
//! (unless `--no-matrix`).
//!
//! The harness (`benches/matrix-bench`) is its own cargo workspace: matrix-sdk-sqlite 0.18 links
//! rusqlite 0.37's SQLite and tresor-sqlite rusqlite 0.41's, and cargo allows one `links =
//! "sqlite3"` per dependency graph; the harness uses tresor without its `sqlite` feature. It is
//! built in release into `target/matrix-bench`, and each run of each system is its own process.
//!
//! ```text
//! cargo xtask bench-matrix [--runs N] [--quick] [--members N]
//! ```

use std::collections::BTreeMap;
use std::process::Command;

use crate::bench::{machine, median};
use crate::{cargo, run, workspace_root};

/// The systems, in the order of the table columns.
const SYSTEMS: [&str; 2] = ["tresor", "sqlite"];

/// A row of the table: JSON field and label; every metric is lower-is-better.
const ROWS: [(&str, &str); 11] = [
    (
        "save_ms",
        "save_changes: {n} members + profiles, fresh store, ms",
    ),
    ("resave_ms", "save_changes: the {n} members rewritten, ms"),
    ("user_ids_ms", "get_user_ids(JOIN), ms"),
    (
        "member_events_ms",
        "get_state_events(m.room.member): all, ms",
    ),
    (
        "for_keys_ms",
        "get_state_events_for_keys(m.room.member, {n} keys), ms",
    ),
    ("profiles_ms", "get_profiles({n} users), ms"),
    ("point_us", "get_state_event(m.room.member, random key), µs"),
    ("room_infos_ms", "get_room_infos(All), ms"),
    ("create_ms", "create a store (with passphrase), ms"),
    ("reopen_ms", "reopen (passphrase) + get_room_infos, ms"),
    ("file_bytes", "store size after the reads, KB"),
];

struct Args {
    runs: usize,
    quick: bool,
    members: usize,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        runs: 3,
        quick: false,
        members: 1000,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--runs" => {
                a.runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--members" => {
                a.members = value("--members")?
                    .parse()
                    .map_err(|e| format!("--members: {e}"))?
            }
            other => return Err(format!("bench-matrix: unknown argument {other:?}")),
        }
    }
    if a.quick && !args.iter().any(|x| x == "--runs") {
        a.runs = 1;
    }
    if a.runs == 0 || a.members == 0 {
        return Err("bench-matrix: --runs and --members must be at least 1".into());
    }
    Ok(a)
}

/// Builds and runs the harness, prints the table and writes it to
/// `target/matrix-bench/report.md` (raw runs: `results.json`).
pub(crate) fn bench_matrix(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    let root = workspace_root();
    let target = root.join("target/matrix-bench");
    run(
        "build benches/matrix-bench (own workspace)",
        cargo()
            .args(["build", "--release", "--manifest-path"])
            .arg(root.join("benches/matrix-bench/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target),
    )?;
    let bin = target.join("release/matrix-bench");
    let machine = machine();
    for line in &machine {
        eprintln!("{line}");
    }
    let members = a.members.to_string();
    let (saves, reps) = if a.quick { ("2", "3") } else { ("5", "15") };
    let mut results: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for i in 1..=a.runs {
        for system in SYSTEMS {
            let dir = target.join(format!("tmp/{system}-{i}"));
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!("==> matrix-bench --system {system} (run {i}/{})", a.runs);
            let out = Command::new(&bin)
                .args(["--system", system, "--members", &members])
                .args(["--saves", saves, "--reps", reps, "--dir"])
                .arg(&dir)
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
            let _ = std::fs::remove_dir_all(&dir);
            if !out.status.success() {
                return Err(format!(
                    "matrix-bench --system {system} failed ({})",
                    out.status
                ));
            }
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("{system}: bad JSON from matrix-bench: {e}"))?;
            eprintln!(
                "    {system}: save {:.1} ms, members {:.2} ms, point {:.1} µs",
                v["save_ms"].as_f64().unwrap_or(0.0),
                v["member_events_ms"].as_f64().unwrap_or(0.0),
                v["point_us"].as_f64().unwrap_or(0.0)
            );
            results.entry(system.to_owned()).or_default().push(v);
        }
    }
    let report = table(&a, &machine, &results);
    println!("{report}");
    std::fs::write(target.join("report.md"), &report).map_err(|e| e.to_string())?;
    std::fs::write(
        target.join("results.json"),
        serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}

fn table(
    a: &Args,
    machine: &[String],
    results: &BTreeMap<String, Vec<serde_json::Value>>,
) -> String {
    let med = |system: &str, field: &str| -> f64 {
        median(
            results
                .get(system)
                .map(|runs| runs.iter().filter_map(|r| r[field].as_f64()).collect())
                .unwrap_or_default(),
        )
    };
    let mut s = format!(
        "N = {} room members (every tenth invited) in one room; medians of {} run(s) per \
         system, each run its own process, each value itself a median within the run.\n",
        a.members, a.runs
    );
    for m in machine {
        s.push_str(&format!("{m}  \n"));
    }
    s.push_str(
        "\nRatio: tresor-matrix / matrix-sdk-sqlite (time or size): < 1× means tresor-matrix is \
         faster or smaller.\n\n\
         | operation | tresor-matrix | matrix-sdk-sqlite | ratio |\n|---|---:|---:|---:|\n",
    );
    for (field, label) in ROWS {
        let label = label.replace("{n}", &a.members.to_string());
        let (t, q) = (med("tresor", field), med("sqlite", field));
        let shown = |v: f64| {
            let v = if field == "file_bytes" { v / 1e3 } else { v };
            if v.is_nan() {
                "–".to_owned()
            } else if v >= 100.0 {
                format!("{v:.0}")
            } else if v >= 10.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.2}")
            }
        };
        let ratio = if t > 0.0 && q > 0.0 {
            format!("{:.2}×", t / q)
        } else {
            "–".into()
        };
        s.push_str(&format!(
            "| {label} | {} | {} | {ratio} |\n",
            shown(t),
            shown(q)
        ));
    }
    let checks: Vec<String> = SYSTEMS
        .iter()
        .filter_map(|sys| {
            let c = results.get(*sys)?.first()?;
            Some(format!("{sys} {}", c["check"]))
        })
        .collect();
    s.push_str(&format!(
        "\nChecks (must agree: same work done): {}\n",
        checks.join("; ")
    ));
    s
}
