//! Test support for crash-consistency testing (`tests/crash.rs`, `cargo xtask crash`): writes
//! to a store until killed, reporting on stdout every batch it *begins* (before the commit) and
//! every batch that was *acknowledged* (after the commit returned).
//!
//! Usage: `tresor-crash-writer DB SEED` with `TRESOR_PASSPHRASE` (no spaces) set to the store's
//! passphrase or its alternate (see [`tresor_cli::crash::alternate`]); the writer opens with
//! whichever works. Lines: `begin B ID…` / `ack B` for saves, `begin-delete B ID` / `ack B` for
//! deletes, `begin-passwd B P` / `ack B` for a passphrase change to `P`, `begin-rekey B` /
//! `ack B` for a key rotation, where `B` is `SEED-N`. Message content is a pure function of the id ([`tresor_cli::crash::message`]), so
//! the checker can verify it exactly.

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use tresor::Tresor;
use tresor_cli::crash::{Rng, message};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(db), Some(seed)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: tresor-crash-writer DB SEED");
        return ExitCode::from(2);
    };
    let Ok(pass) = std::env::var("TRESOR_PASSPHRASE") else {
        eprintln!("TRESOR_PASSPHRASE is not set");
        return ExitCode::from(2);
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(run(db, seed, pass)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash writer: {e}");
            ExitCode::FAILURE
        }
    }
}

type Out = Arc<Mutex<std::io::Stdout>>;

fn say(out: &Out, line: &str) {
    // One line, flushed at once: the parent may kill us right after.
    if let Ok(mut o) = out.lock() {
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    }
}

async fn run(db: &str, seed: u64, pass: String) -> Result<(), tresor::Error> {
    let alt = tresor_cli::crash::alternate(&pass);
    // `TRESOR_CRASH_COMMIT_LOG=1`: durable commits through redb's commit log.
    let options = tresor::Options::default()
        .with_commit_log(std::env::var("TRESOR_CRASH_COMMIT_LOG").is_ok_and(|v| v == "1"));
    // The previous handle's background key rotation may hold the file for one more batch.
    let mut attempts = 0;
    let first = loop {
        match Tresor::open_or_create_with(db, pass.as_str().into(), options).await {
            Err(tresor::Error::Backend(tresor::BackendError::Locked)) if attempts < 400 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            other => break other,
        }
    };
    let (store, mut current) = match first {
        Ok(s) => (s, pass),
        Err(tresor::Error::WrongPassphrase) => (
            Tresor::open_with(db, alt.as_str().into(), options).await?,
            alt,
        ),
        Err(e) => return Err(e),
    };
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    let mut rng = Rng::new(seed);
    let mut acked: Vec<String> = Vec::new();
    let mut n = 0u64;
    loop {
        n += 1;
        let batch_id = format!("{seed}-{n}");
        match rng.below(10) {
            // A single message.
            0..=3 => {
                let id = format!("{batch_id}-0");
                say(&out, &format!("begin {batch_id} {id}"));
                store.messages().save(&message(&id)).await?;
                say(&out, &format!("ack {batch_id}"));
                acked.push(id);
            }
            // Several batches through the pipelined bulk path: each is begun up front (any
            // may be in flight when the kill comes) and acknowledged when `saved` reports it.
            6 => {
                let count = 2 + rng.below(3);
                let batches: Vec<(String, Vec<String>)> = (0..count)
                    .map(|b| {
                        let id = format!("{batch_id}b{b}");
                        let k = 1 + rng.below(40);
                        let ids = (0..k).map(|i| format!("{id}-{i}")).collect();
                        (id, ids)
                    })
                    .collect();
                for (id, ids) in &batches {
                    say(&out, &format!("begin {id} {}", ids.join(" ")));
                }
                let stream = futures_util::stream::iter(
                    batches
                        .iter()
                        .map(|(_, ids)| ids.iter().map(|i| message(i)).collect::<Vec<_>>())
                        .collect::<Vec<_>>(),
                );
                let mut next = batches.iter();
                store
                    .messages()
                    .save_batches(stream, |_| {
                        if let Some((id, ids)) = next.next() {
                            say(&out, &format!("ack {id}"));
                            acked.extend(ids.iter().cloned());
                        }
                    })
                    .await?;
            }
            // A batch.
            4..=5 => {
                let k = 2 + rng.below(60);
                let ids: Vec<String> = (0..k).map(|i| format!("{batch_id}-{i}")).collect();
                say(&out, &format!("begin {batch_id} {}", ids.join(" ")));
                let msgs: Vec<_> = ids.iter().map(|i| message(i)).collect();
                store.messages().save_batch(&msgs).await?;
                say(&out, &format!("ack {batch_id}"));
                acked.extend(ids);
            }
            // Rarely: change the passphrase to the alternate one, or rotate the data key.
            9 if rng.below(8) == 0 => {
                let next = tresor_cli::crash::alternate(&current);
                say(&out, &format!("begin-passwd {batch_id} {next}"));
                store
                    .change_passphrase(current.as_str().into(), next.as_str().into())
                    .await?;
                say(&out, &format!("ack {batch_id}"));
                current = next;
            }
            9 if rng.below(8) == 0 => {
                say(&out, &format!("begin-rekey {batch_id}"));
                store.rotate_key_with(64, |_| {}).await?;
                say(&out, &format!("ack {batch_id}"));
            }
            // A delete of something this run acknowledged.
            7 if !acked.is_empty() => {
                let id = acked.swap_remove(rng.below(acked.len() as u64) as usize);
                say(&out, &format!("begin-delete {batch_id} {id}"));
                store.messages().delete(&id).await?;
                say(&out, &format!("ack {batch_id}"));
            }
            // Concurrent writers, one message each.
            _ => {
                let mut tasks = Vec::new();
                for w in 0..4 {
                    let store = store.clone();
                    let out = out.clone();
                    let b = format!("{batch_id}w{w}");
                    tasks.push(tokio::spawn(async move {
                        let id = format!("{b}-0");
                        say(&out, &format!("begin {b} {id}"));
                        store.messages().save(&message(&id)).await?;
                        say(&out, &format!("ack {b}"));
                        Ok::<_, tresor::Error>(id)
                    }));
                }
                for t in tasks {
                    if let Ok(r) = t.await {
                        acked.push(r?);
                    }
                }
            }
        }
    }
}
