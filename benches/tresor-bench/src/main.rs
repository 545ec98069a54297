//! The benchmark harness of tresor (see `docs/BENCHMARKS.md`): one binary per SQLite flavour,
//! driven by `cargo xtask bench`, which runs every system in its own process and prints one
//! table.
//!
//! ```text
//! tresor-bench run --system tresor|redb|sqlite|sqlcipher --data corpus:PATH|sample:N --dir DIR
//! tresor-bench scale --system tresor|redb --data ... --dir DIR --points 258145,1000000
//! tresor-bench facade --data ...   (tresor over the in-memory backend: the facade's own cost)
//! tresor-bench tables FILE         (a redb file's bytes, table by table)
//! tresor-bench plan --dir DIR        (sqlite builds: the query plans of W3 and W4)
//! ```
//!
//! `run` prints one JSON object (a `RunResult`); `scale` one JSON object per checkpoint.
//! A bench harness: failures panic with a message (`expect`), which fails the child process.

#[cfg(all(feature = "sqlite", feature = "sqlcipher"))]
compile_error!("features `sqlite` and `sqlcipher` are exclusive: build the crate once for each");

mod common;
mod scale;
mod sys_redb;
#[cfg(any(feature = "sqlite", feature = "sqlcipher"))]
mod sys_sqlite;
mod sys_tresor;
mod tables;

use std::path::PathBuf;
use std::process::ExitCode;

use common::{Source, load};

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tresor-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The value following `--name` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn real_main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("");
    let dir = PathBuf::from(flag(&args, "--dir").unwrap_or("target/bench/tmp"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let data = || -> Result<common::Data, String> {
        load(&Source::parse(flag(&args, "--data").unwrap_or("sample:0"))?)
    };
    match command {
        "run" => {
            let system = flag(&args, "--system").ok_or("run: --system is required")?;
            let data = data()?;
            let result = match system {
                "tresor" => sys_tresor::run(&data, &dir, true),
                "tresor-nolog" => sys_tresor::run(&data, &dir, false),
                "redb" => sys_redb::run(&data, &dir),
                #[cfg(any(feature = "sqlite", feature = "sqlcipher"))]
                s if s == sys_sqlite::NAME => sys_sqlite::run(&data, &dir),
                other => return Err(format!("this build cannot run system {other:?}")),
            };
            println!(
                "{}",
                serde_json::to_string(&result).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        "facade" => {
            let data = data()?;
            let result = sys_tresor::facade(&data);
            println!(
                "{}",
                serde_json::to_string(&result).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        "scale" => {
            let system = flag(&args, "--system").ok_or("scale: --system is required")?;
            let points = flag(&args, "--points")
                .ok_or("scale: --points is required")?
                .split(',')
                .map(|p| {
                    p.parse::<usize>()
                        .map_err(|e| format!("bad point {p:?}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            scale::run(system, &data()?, &dir, &points)
        }
        "tables" => {
            let file = args.get(1).ok_or("tables: FILE is required")?;
            tables::run(std::path::Path::new(file))
        }
        #[cfg(any(feature = "sqlite", feature = "sqlcipher"))]
        "plan" => {
            for line in sys_sqlite::plan(&dir) {
                println!("{line}");
            }
            Ok(())
        }
        _ => {
            Err("usage: tresor-bench run|scale|facade|tables|plan ... (see the crate docs)".into())
        }
    }
}
