//! `cargo xtask bench`: builds the benchmark harness (`benches/tresor-bench`) three times in
//! release (plain, with SQLite, with SQLCipher: the two SQLite flavours cannot share one
//! binary), runs every system in its own process (so each has its own peak RSS), several runs
//! each, and prints one table of medians with ratios against raw redb and SQLCipher measured in
//! the same invocation. See docs/BENCHMARKS.md.
//!
//! ```text
//! cargo xtask bench [--runs N] [--quick] [--systems tresor,redb,sqlite,sqlcipher]
//!                   [--data FILE] [--scale 1m|10m] [--no-matrix]
//! ```
//!
//! At its end it runs `cargo xtask bench-matrix` (tresor-matrix vs matrix-sdk-sqlite,
//! `bench_matrix.rs`) with the same `--quick`, unless `--no-matrix`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, run, workspace_root};

/// Every system, in the order of the table columns.
/// `tresor` runs with its defaults (redb's commit log on); `tresor-nolog` with
/// `Options::commit_log` off (every durable save a durable redb commit).
const SYSTEMS: [&str; 5] = ["tresor", "tresor-nolog", "redb", "sqlcipher", "sqlite"];

/// A row of the table: JSON field, label, unit, and whether higher is better.
const ROWS: [(&str, &str, bool); 18] = [
    ("w1_per_s", "W1 bulk import, msg/s", true),
    ("w2_per_s", "W2 single durable writes, writes/s", true),
    (
        "w3_per_s",
        "W3 random point gets, gets/s (tresor: async, a hop each)",
        true,
    ),
    (
        "w3_view_per_s",
        "W3 … blocking reads (tresor: `BlockingView`)",
        true,
    ),
    (
        "w4_per_s",
        "W4 newest 50 of a conversation, pages/s (async)",
        true,
    ),
    ("w4_view_per_s", "W4 … blocking reads", true),
    (
        "w5_per_s",
        "W5 full scan, msg/s (async, pages of 1,000)",
        true,
    ),
    ("w5_view_per_s", "W5 … blocking reads (one view)", true),
    (
        "w6_per_s",
        "W6 64 concurrent durable writers, writes/s",
        true,
    ),
    ("create_ms", "create (with key), ms", false),
    ("open_ms", "open + unlock, ms", false),
    ("unlock_ms", "unlock (KDF) alone, ms", false),
    ("file_after_w1", "file after W1, MB", false),
    ("file_end", "file after all writes, MB", false),
    ("file_compacted", "file after compaction, MB", false),
    (
        "rss_base_kib",
        "RSS before W1 (data set loaded), MiB",
        false,
    ),
    ("rss_w1_peak_kib", "peak RSS during W1, MiB", false),
    ("rss_rest_peak_kib", "peak RSS W2–W6, MiB", false),
];

struct Args {
    runs: usize,
    quick: bool,
    systems: Vec<String>,
    data: Option<PathBuf>,
    scale: Option<String>,
    matrix: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        runs: 3,
        quick: false,
        systems: SYSTEMS.iter().map(|s| s.to_string()).collect(),
        data: None,
        scale: None,
        matrix: true,
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
            "--no-matrix" => a.matrix = false,
            "--runs" => {
                a.runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--systems" => a.systems = value("--systems")?.split(',').map(str::to_owned).collect(),
            "--data" => a.data = Some(PathBuf::from(value("--data")?)),
            "--scale" => a.scale = Some(value("--scale")?),
            other => return Err(format!("bench: unknown argument {other:?}")),
        }
    }
    if a.quick && !args.iter().any(|x| x == "--runs") {
        a.runs = 1;
    }
    for s in &a.systems {
        if !SYSTEMS.contains(&s.as_str()) {
            return Err(format!("bench: unknown system {s:?}"));
        }
    }
    Ok(a)
}

/// Builds the harness with `feature` (or none) and copies the binary to `target/bench/bin`.
fn build(feature: Option<&str>) -> Result<PathBuf, String> {
    let root = workspace_root();
    let mut cmd = cargo();
    cmd.args(["build", "--release", "-p", "tresor-bench"]);
    if let Some(f) = feature {
        cmd.args(["--features", f]);
    }
    run(
        &format!("build tresor-bench ({})", feature.unwrap_or("tresor, redb")),
        &mut cmd,
    )?;
    let dir = root.join("target/bench/bin");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let to = dir.join(format!("tresor-bench-{}", feature.unwrap_or("base")));
    std::fs::copy(root.join("target/release/tresor-bench"), &to)
        .map_err(|e| format!("copy the harness to {}: {e}", to.display()))?;
    Ok(to)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// nproc, CPU model, memory, kernel, load average, date: printed with every table.
pub(crate) fn machine() -> Vec<String> {
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map_or_else(
            || "unknown".into(),
            |kib| format!("{:.1} GiB", kib as f64 / 1048576.0),
        );
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let out = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    vec![
        format!("date: {}", out("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
        format!(
            "machine: {nproc} cores ({cpu}), {mem} RAM, {}",
            out("uname", &["-sr"])
        ),
        format!("rustc: {}", out("rustc", &["--version"])),
        format!(
            "load average at start: {}",
            read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    ]
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A metric for display: sizes in MB, memory in MiB.
fn shown(field: &str, v: f64) -> String {
    if v.is_nan() {
        return "–".into();
    }
    let v = if field.starts_with("file") {
        v / 1e6
    } else if field.starts_with("rss") {
        v / 1024.0
    } else {
        v
    };
    if v == 0.0 {
        "–".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Ratio of tresor to `other`, oriented so that > 1 means tresor is better (faster, smaller).
fn ratio(t: f64, other: f64, higher_better: bool) -> String {
    if !(t > 0.0 && other > 0.0) {
        return "–".into();
    }
    let r = if higher_better { t / other } else { other / t };
    format!("{r:.2}×")
}

pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    let root = workspace_root();
    let corpus = a
        .data
        .clone()
        .unwrap_or_else(|| root.join("../shared/data/chitchat/dataset.json.gz"));
    let data = if a.quick {
        "sample:0".to_owned()
    } else if corpus.exists() {
        format!("corpus:{}", corpus.display())
    } else {
        eprintln!(
            "no corpus at {}: using the bundled sample scaled up to 258,145",
            corpus.display()
        );
        "sample:258145".to_owned()
    };
    let mut bins: BTreeMap<&str, PathBuf> = BTreeMap::new();
    if a.systems
        .iter()
        .any(|s| s == "tresor" || s == "tresor-nolog" || s == "redb")
        || a.scale.is_some()
    {
        let base = build(None)?;
        bins.insert("tresor", base.clone());
        bins.insert("tresor-nolog", base.clone());
        bins.insert("redb", base);
    }
    for flavour in ["sqlite", "sqlcipher"] {
        if a.systems.iter().any(|s| s == flavour) {
            bins.insert(flavour, build(Some(flavour))?);
        }
    }
    let tmp = root.join("target/bench/tmp");
    let machine = machine();
    for line in &machine {
        eprintln!("{line}");
    }

    // results[system] = one JSON object per run.
    let mut results: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for i in 1..=a.runs {
        for system in SYSTEMS.iter().filter(|s| a.systems.iter().any(|x| x == *s)) {
            let dir = tmp.join(format!("{system}-{i}"));
            let _ = std::fs::remove_dir_all(&dir);
            let value = child(
                &bins[system],
                &["run", "--system", system, "--data", &data],
                &dir,
            )?;
            let _ = std::fs::remove_dir_all(&dir);
            let v: serde_json::Value = serde_json::from_str(value.trim())
                .map_err(|e| format!("{system}: bad JSON from the harness: {e}"))?;
            eprintln!(
                "    run {i}/{}: {system}: W1 {:.0} msg/s, W3 {:.0} gets/s, W4 {:.0} pages/s",
                a.runs,
                v["w1_per_s"].as_f64().unwrap_or(0.0),
                v["w3_per_s"].as_f64().unwrap_or(0.0),
                v["w4_per_s"].as_f64().unwrap_or(0.0)
            );
            results.entry(system.to_string()).or_default().push(v);
        }
    }
    let report = table(&a, &data, &machine, &results);
    println!("{report}");
    let out = root.join("target/bench");
    std::fs::write(out.join("report.md"), &report).map_err(|e| e.to_string())?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;

    if let Some(scale) = &a.scale {
        let points = match scale.as_str() {
            "1m" => "258145,1000000",
            "10m" => "258145,1000000,10000000",
            other => return Err(format!("--scale {other:?}: expected 1m or 10m")),
        };
        let mut lines = Vec::new();
        for system in ["tresor", "redb"] {
            let dir = tmp.join(format!("scale-{system}"));
            let _ = std::fs::remove_dir_all(&dir);
            let out = child(
                &bins["tresor"],
                &[
                    "scale", "--system", system, "--data", &data, "--points", points,
                ],
                &dir,
            )?;
            let _ = std::fs::remove_dir_all(&dir);
            for l in out.lines() {
                let v: serde_json::Value =
                    serde_json::from_str(l).map_err(|e| format!("scale: bad JSON: {e}"))?;
                lines.push(v);
            }
        }
        let report = scale_table(&lines);
        println!("{report}");
        std::fs::write(out.join("scale.md"), &report).map_err(|e| e.to_string())?;
    }
    if a.matrix {
        let quick = if a.quick {
            vec!["--quick".to_owned()]
        } else {
            vec![]
        };
        crate::bench_matrix::bench_matrix(&quick)?;
    }
    Ok(())
}

/// Runs the harness in `dir`, returning its stdout.
fn child(bin: &Path, args: &[&str], dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    eprintln!("==> {} {}", bin.display(), args.join(" "));
    let out = Command::new(bin)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .current_dir(workspace_root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {} failed ({})",
            bin.display(),
            args.join(" "),
            out.status
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn table(
    a: &Args,
    data: &str,
    machine: &[String],
    results: &BTreeMap<String, Vec<serde_json::Value>>,
) -> String {
    let systems: Vec<&str> = SYSTEMS
        .iter()
        .copied()
        .filter(|s| results.contains_key(*s))
        .collect();
    let med = |system: &str, field: &str| -> f64 {
        median(
            results
                .get(system)
                .map(|runs| runs.iter().filter_map(|r| r[field].as_f64()).collect())
                .unwrap_or_default(),
        )
    };
    let messages = results
        .values()
        .next()
        .and_then(|r| r.first())
        .and_then(|r| r["messages"].as_u64())
        .unwrap_or(0);
    let mut s = String::new();
    s.push_str(&format!(
        "Data: {data} ({messages} messages); medians of {} run(s), each system in its own process.\n",
        a.runs
    ));
    for m in machine {
        s.push_str(&format!("{m}  \n"));
    }
    s.push_str(
        "\nRatios are tresor against the column's system, oriented so that > 1× means tresor is \
         better (faster, smaller, less memory).\n\n",
    );
    s.push_str("| metric |");
    for sys in &systems {
        s.push_str(&format!(" {sys} |"));
    }
    s.push_str(" tresor vs redb | tresor vs sqlcipher | tresor vs sqlite |");
    let with_nolog = systems.contains(&"tresor-nolog");
    if with_nolog {
        s.push_str(" tresor-nolog vs redb | tresor-nolog vs sqlcipher |");
    }
    s.push_str("\n|---|");
    for _ in &systems {
        s.push_str("---:|");
    }
    s.push_str("---:|---:|---:|");
    if with_nolog {
        s.push_str("---:|---:|");
    }
    s.push('\n');
    for (field, label, higher) in ROWS {
        s.push_str(&format!("| {label} |"));
        for sys in &systems {
            s.push_str(&format!(" {} |", shown(field, med(sys, field))));
        }
        let t = med("tresor", field);
        for other in ["redb", "sqlcipher", "sqlite"] {
            s.push_str(&format!(" {} |", ratio(t, med(other, field), higher)));
        }
        if with_nolog {
            let t = med("tresor-nolog", field);
            for other in ["redb", "sqlcipher"] {
                s.push_str(&format!(" {} |", ratio(t, med(other, field), higher)));
            }
        }
        s.push('\n');
    }
    // The check values must agree between systems: same work done.
    let checks: Vec<String> = systems
        .iter()
        .map(|sys| {
            let c = results[*sys]
                .first()
                .map(|r| r["check"].to_string())
                .unwrap_or_default();
            format!("{sys} {c}")
        })
        .collect();
    s.push_str(&format!(
        "\nChecks (W3 found, W4 rows, W5 messages): {}\n",
        checks.join(", ")
    ));
    s
}

fn scale_table(lines: &[serde_json::Value]) -> String {
    let mut s = String::from(
        "| system | messages | import msg/s (segment) | W3 mean µs | W3 p99 µs | W4 mean µs | \
         W4 p99 µs | W3 vs first | W4 vs first | file MB | peak RSS MiB |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut first: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for v in lines {
        let system = v["system"].as_str().unwrap_or("?").to_owned();
        let w3 = v["w3"]["mean_us"].as_f64().unwrap_or(f64::NAN);
        let w4 = v["w4"]["mean_us"].as_f64().unwrap_or(f64::NAN);
        let (f3, f4) = *first.entry(system.clone()).or_insert((w3, w4));
        s.push_str(&format!(
            "| {system} | {} | {:.0} | {w3:.1} | {:.1} | {w4:.1} | {:.1} | {:.2}× | {:.2}× | {:.0} | {:.0} |\n",
            v["messages"],
            v["import_per_s"].as_f64().unwrap_or(0.0),
            v["w3"]["p99_us"].as_f64().unwrap_or(0.0),
            v["w4"]["p99_us"].as_f64().unwrap_or(0.0),
            w3 / f3,
            w4 / f4,
            v["file_bytes"].as_f64().unwrap_or(0.0) / 1e6,
            v["rss_peak_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        ));
    }
    s
}
