//! `cargo xtask bench-backup`: backup and restore of the full chitchat corpus through the
//! release CLI (repository on a `dir:` target), against `tar | zstd` of the store file and,
//! when the `restic` binary is installed, restic on the same store file (skipped cleanly when
//! it is not). Prints the Markdown tables of docs/BENCHMARKS.md ("Backups").

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{cargo, run, workspace_root};

/// Runs the release CLI with `args`, returning its stdout; fails on a non-zero exit.
fn cli(bin: &Path, db: Option<&Path>, args: &[&str], pass: &str) -> Result<String, String> {
    let mut cmd = Command::new(bin);
    if let Some(db) = db {
        cmd.arg("--db").arg(db);
    }
    let out = cmd
        .args(args)
        .env("TRESOR_PASSPHRASE", pass)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "tresor {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json_of(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s.lines().last().unwrap_or("")).map_err(|e| format!("bad JSON: {e}"))
}

fn mb(bytes: f64) -> f64 {
    bytes / 1e6
}

/// Writes the corpus without the conversations selected by `drop`, returning the number of
/// messages left out.
fn write_subset(
    corpus: &serde_json::Map<String, serde_json::Value>,
    drop: &std::collections::HashSet<String>,
    path: &Path,
) -> Result<u64, String> {
    let mut kept = serde_json::Map::new();
    let mut left_out = 0;
    for (k, v) in corpus {
        if drop.contains(k) {
            left_out += message_count(v);
        } else {
            kept.insert(k.clone(), v.clone());
        }
    }
    let bytes = serde_json::to_vec(&serde_json::Value::Object(kept)).map_err(|e| e.to_string())?;
    std::fs::write(path, bytes).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(left_out)
}

fn message_count(conversation: &serde_json::Value) -> u64 {
    conversation["messages"].as_array().map_or(0, |turns| {
        turns
            .iter()
            .map(|t| t.as_array().map_or(0, Vec::len) as u64)
            .sum()
    })
}

fn newest_timestamp(conversation: &serde_json::Value) -> String {
    conversation["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_array())
        .flatten()
        .filter_map(|m| m["timestamp"].as_str())
        .max()
        .unwrap_or("")
        .to_owned()
}

/// Wall time and peak RSS of one external command.
struct Timed {
    seconds: f64,
    /// Peak RSS in bytes (`/usr/bin/time -f %M`; 0 when `/usr/bin/time` is missing).
    peak_rss: f64,
}

/// Runs `program args` (with `envs`) under `/usr/bin/time` when present, for its peak RSS.
fn timed(program: &str, args: &[&str], envs: &[(&str, &str)], dir: &Path) -> Result<Timed, String> {
    let rss_file = dir.join("rss.txt");
    let gnu_time = Path::new("/usr/bin/time").exists();
    let mut cmd = if gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let peak_kib: f64 = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0.0);
    Ok(Timed {
        seconds,
        peak_rss: peak_kib * 1024.0,
    })
}

/// Whether `restic` runs here.
fn restic_installed() -> bool {
    Command::new("restic")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// restic's measurements of one scenario: two backups of the store file and a restore.
struct Restic {
    first: Timed,
    first_added: f64,
    second: Timed,
    second_added: f64,
    restore: Timed,
}

/// Bytes of the files under `dir` (a restic repository: what a backup really wrote, after
/// compression; restic 0.14's `data_added` counts bytes before compression).
fn dir_bytes(dir: &Path) -> f64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total as f64
}

const RESTIC_PASSWORD: &str = "bench passphrase";

fn restic_backup(repo: &Path, file: &Path, dir: &Path) -> Result<(Timed, f64), String> {
    let repo = repo.to_string_lossy();
    let file = file.to_string_lossy();
    let before = dir_bytes(Path::new(&*repo));
    let t = timed(
        "restic",
        &["-r", &repo, "backup", "--json", &file],
        &[("RESTIC_PASSWORD", RESTIC_PASSWORD)],
        dir,
    )?;
    let added = dir_bytes(Path::new(&*repo)) - before;
    Ok((t, added))
}

/// `cargo xtask bench-backup`: see the module documentation.
pub fn bench_backup() -> Result<(), String> {
    use std::io::Read;
    let root = workspace_root();
    let corpus_path = root.join("../shared/data/chitchat/dataset.json.gz");
    if !corpus_path.exists() {
        return Err(format!("no corpus at {}", corpus_path.display()));
    }
    run(
        "build the release CLI",
        cargo().args(["build", "--quiet", "--release", "-p", "tresor-cli"]),
    )?;
    let bin = root.join("target/release/tresor");
    let dir = root.join("target/bench-backup");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let pass = "bench passphrase";
    let restic = restic_installed();
    if !restic {
        eprintln!("==> restic is not installed: its rows are skipped");
    }

    let mut json = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&corpus_path).map_err(|e| e.to_string())?)
        .read_to_end(&mut json)
        .map_err(|e| e.to_string())?;
    let corpus: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&json).map_err(|e| format!("corpus: {e}"))?;
    let total: u64 = corpus.values().map(message_count).sum();

    // Scenario A: the newest 1% of messages arrive (whole conversations, newest last message).
    let mut by_time: Vec<(String, String)> = corpus
        .iter()
        .map(|(k, v)| (newest_timestamp(v), k.clone()))
        .collect();
    by_time.sort();
    let mut newest = std::collections::HashSet::new();
    let mut n = 0;
    for (_, k) in by_time.iter().rev() {
        if n * 100 >= total {
            break;
        }
        n += message_count(&corpus[k]);
        newest.insert(k.clone());
    }
    // Scenario B: every 100th conversation (in id order) arrives: spread over time.
    let spread: std::collections::HashSet<String> = corpus.keys().step_by(100).cloned().collect();

    let mut rows = Vec::new();
    let mut restic_rows = Vec::new();
    for (name, drop) in [
        ("newest 1% of messages", &newest),
        ("every 100th conversation", &spread),
    ] {
        let sub = dir.join("base.json");
        let left_out = write_subset(&corpus, drop, &sub)?;
        let db = dir.join(format!("{}.redb", rows.len()));
        let repo = dir.join(format!("repo-{}", rows.len()));
        let target = format!("dir:{}", repo.display());
        eprintln!("==> {name}: import {} messages", total - left_out);
        cli(
            &bin,
            Some(&db),
            &["import", "chitchat", &sub.to_string_lossy()],
            pass,
        )?;
        let first = json_of(&cli(
            &bin,
            Some(&db),
            &["backup", "create", "--target", &target, "--json"],
            pass,
        )?)?;
        let restic_repo = dir.join(format!("restic-{}", rows.len()));
        let restic_first = if restic {
            eprintln!("==> {name}: restic backup of the store file");
            timed(
                "restic",
                &[
                    "-r",
                    &restic_repo.to_string_lossy(),
                    "init",
                    "--repository-version",
                    "2",
                ],
                &[("RESTIC_PASSWORD", RESTIC_PASSWORD)],
                &dir,
            )?;
            Some(restic_backup(&restic_repo, &db, &dir)?)
        } else {
            None
        };
        eprintln!("==> {name}: import the remaining {left_out} messages");
        cli(
            &bin,
            Some(&db),
            &["import", "chitchat", &corpus_path.to_string_lossy()],
            pass,
        )?;
        let second = json_of(&cli(
            &bin,
            Some(&db),
            &["backup", "create", "--target", &target, "--json"],
            pass,
        )?)?;
        let restored = dir.join(format!("restored-{}.redb", rows.len()));
        let restore = json_of(&cli(
            &bin,
            Some(&restored),
            &["restore", "--target", &target, "latest", "--json"],
            pass,
        )?)?;
        if let Some((first, first_added)) = restic_first {
            let (second, second_added) = restic_backup(&restic_repo, &db, &dir)?;
            let out = dir.join(format!("restic-restored-{}", rows.len()));
            let restore = timed(
                "restic",
                &[
                    "-r",
                    &restic_repo.to_string_lossy(),
                    "restore",
                    "latest",
                    "--target",
                    &out.to_string_lossy(),
                ],
                &[("RESTIC_PASSWORD", RESTIC_PASSWORD)],
                &dir,
            )?;
            restic_rows.push((
                name,
                Restic {
                    first,
                    first_added,
                    second,
                    second_added,
                    restore,
                },
            ));
        }
        rows.push((name, left_out, first, second, restore, db));
    }

    // tar | zstd of the full store file, and back.
    let (_, _, _, _, _, full_db) = &rows[0];
    let parent = full_db
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let file_name = full_db
        .file_name()
        .map_or(String::new(), |f| f.to_string_lossy().into_owned());
    let archive = dir.join("store.tar.zst");
    let tar = timed(
        "sh",
        &[
            "-c",
            &format!(
                "tar -cf - -C '{}' '{file_name}' | zstd -q -3 -c > '{}'",
                parent.display(),
                archive.display()
            ),
        ],
        &[],
        &dir,
    )?;
    let tar_bytes = std::fs::metadata(&archive).map_or(0, |m| m.len()) as f64;
    let untar_dir = dir.join("untar");
    std::fs::create_dir_all(&untar_dir).map_err(|e| e.to_string())?;
    let untar = timed(
        "sh",
        &[
            "-c",
            &format!(
                "zstd -q -d -c '{}' | tar -xf - -C '{}'",
                archive.display(),
                untar_dir.display()
            ),
        ],
        &[],
        &dir,
    )?;

    let g = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    println!(
        "Corpus: {total} messages (chitchat), store file of the full corpus; release build, `dir:` target on the same disk.\n"
    );
    println!(
        "| scenario | store MB | 1st backup: s | MB/s | written MB | peak RSS MB | +1%: new messages | 2nd backup: s | written MB | % of 1st | restore: s | MB/s | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, left_out, first, second, restore, _) in &rows {
        let store = g(second, "store_bytes");
        let written1 = g(first, "added_bytes") + g(first, "manifest_bytes");
        let written2 = g(second, "added_bytes") + g(second, "manifest_bytes");
        println!(
            "| {name} | {:.1} | {:.2} | {:.1} | {:.2} | {:.0} | {left_out} | {:.2} | {:.3} | {:.2}% | {:.2} | {:.1} | {:.0} |",
            mb(store),
            g(first, "seconds"),
            mb(g(first, "store_bytes")) / g(first, "seconds").max(1e-9),
            mb(written1),
            mb(g(first, "peak_rss_bytes")),
            g(second, "seconds"),
            mb(written2),
            100.0 * written2 / written1.max(1.0),
            g(restore, "seconds"),
            mb(g(restore, "store_bytes")) / g(restore, "seconds").max(1e-9),
            mb(g(restore, "peak_rss_bytes")),
        );
    }
    let store = g(&rows[0].3, "store_bytes");
    println!(
        "\n`tar -cf - STORE | zstd -3` of the same store file: {:.2} MB in {:.2} s ({:.1} MB/s, peak RSS {:.0} MB); back with `zstd -d | tar -x` in {:.2} s ({:.1} MB/s); every run rewrites it whole.",
        mb(tar_bytes),
        tar.seconds,
        mb(store) / tar.seconds.max(1e-9),
        mb(tar.peak_rss),
        untar.seconds,
        mb(store) / untar.seconds.max(1e-9),
    );
    if restic_rows.is_empty() {
        println!("\nrestic: not installed on this machine (skipped).");
        return Ok(());
    }
    let version = Command::new("restic")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "\n{version}, repository version 2 (zstd), backing up the same store file (written = growth of the repository directory):\n"
    );
    println!(
        "| scenario | 1st backup: s | MB/s | written MB | peak RSS MB | 2nd backup: s | written MB | % of 1st | restore: s | MB/s | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for ((name, r), (_, _, first, second, _, _)) in restic_rows.iter().zip(&rows) {
        println!(
            "| {name} | {:.2} | {:.1} | {:.2} | {:.0} | {:.2} | {:.3} | {:.2}% | {:.2} | {:.1} | {:.0} |",
            r.first.seconds,
            mb(g(first, "store_bytes")) / r.first.seconds.max(1e-9),
            mb(r.first_added),
            mb(r.first.peak_rss),
            r.second.seconds,
            mb(r.second_added),
            100.0 * r.second_added / r.first_added.max(1.0),
            r.restore.seconds,
            mb(g(second, "store_bytes")) / r.restore.seconds.max(1e-9),
            mb(r.restore.peak_rss),
        );
    }
    Ok(())
}
