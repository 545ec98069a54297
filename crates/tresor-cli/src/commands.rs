//! The subcommands, each a function from parsed arguments to output.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tresor::{Message, Options, Tresor};

use crate::cli::{Backup, Cli, Command, Import, MessagesArgs};
use crate::{CliError, chitchat, passphrase};

/// Runs one parsed command line, writing results to `out`.
///
/// # Errors
/// Any [`CliError`]; the binary prints it as one line and exits with status 1.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let options = Options::default().with_backend_kind(cli.backend.into());
    match cli.command {
        Command::Import(Import::Chitchat { file, batch_size }) => {
            import_chitchat(&db(&cli.db)?, options, file, batch_size as usize, out).await
        }
        Command::Messages(args) => messages(&db(&cli.db)?, options, args, out).await,
        Command::Stats { json } => stats(&db(&cli.db)?, options, json, out).await,
        Command::Backup(Backup::Create { out: dir }) => {
            backup_create(&db(&cli.db)?, options, &dir, out).await
        }
        Command::Backup(Backup::Verify { file }) => backup_verify(&file, out).await,
        Command::Restore { file } => restore(&db(&cli.db)?, options, &file, out).await,
    }
}

fn db(db: &Option<PathBuf>) -> Result<PathBuf, CliError> {
    db.clone().ok_or(CliError::NoDb)
}

async fn open_existing(path: &Path, options: Options) -> Result<Tresor, CliError> {
    if !path.exists() {
        return Err(CliError::NoStore(path.to_path_buf()));
    }
    Ok(Tresor::open_with(path, passphrase::obtain(false)?, options).await?)
}

async fn import_chitchat(
    db: &Path,
    options: Options,
    file: Option<PathBuf>,
    batch_size: usize,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let started = Instant::now();
    let source = file
        .as_ref()
        .map_or_else(|| "bundled sample".to_owned(), |f| f.display().to_string());
    // Parse first: a malformed file must not leave a new, empty store behind.
    let conversations = tokio::task::spawn_blocking(move || match file {
        Some(f) => chitchat::read_file(f),
        None => chitchat::bundled_sample(),
    })
    .await
    .map_err(|_| CliError::Task)??;
    let parsed = started.elapsed();
    let store = if db.exists() {
        Tresor::open_with(db, passphrase::obtain(false)?, options).await?
    } else {
        Tresor::create_with(db, passphrase::obtain(true)?, options).await?
    };
    let messages: Vec<Message> = conversations.into_iter().flat_map(|c| c.messages).collect();
    let total = messages.len() as u64;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} messages ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let repo = store.messages();
    let (mut inserted, mut updated, mut unchanged) = (0u64, 0u64, 0u64);
    for chunk in messages.chunks(batch_size) {
        let s = repo.save_batch(chunk).await?;
        inserted += s.inserted;
        updated += s.updated;
        unchanged += s.unchanged;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let stats = store.stats().await?;
    writeln!(
        out,
        "imported {total} messages from {source}: {inserted} new, {updated} updated, {unchanged} unchanged"
    )?;
    writeln!(
        out,
        "store: {} messages, {} conversations, {} peers, {} bytes",
        stats.messages,
        stats.conversations,
        stats.peers,
        stats.file_bytes.unwrap_or(0)
    )?;
    writeln!(
        out,
        "elapsed: {elapsed:.2} s (parse {:.2} s), {:.0} messages/s",
        parsed.as_secs_f64(),
        total as f64 / elapsed.max(1e-9)
    )?;
    Ok(())
}

/// One message as `--json` prints it.
#[derive(Serialize)]
struct JsonMessage<'a> {
    id: &'a str,
    conversation_id: &'a str,
    sender: &'a str,
    recipient: Option<&'a str>,
    timestamp_ms: i64,
    body: &'a str,
}

fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

async fn messages(
    db: &Path,
    options: Options,
    args: MessagesArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let store = open_existing(db, options).await?;
    let repo = store.messages();
    let before = args.before_id.as_deref();
    let sel = args.selector;
    let found = if let Some(c) = &sel.conversation {
        repo.by_conversation(c, args.limit, before).await?
    } else if let Some(p) = &sel.peer {
        repo.by_peer(p, args.limit, before).await?
    } else {
        repo.recent(args.limit, before).await?
    };
    for m in &found {
        if args.json {
            serde_json::to_writer(
                &mut *out,
                &JsonMessage {
                    id: &m.id,
                    conversation_id: &m.conversation_id,
                    sender: &m.sender,
                    recipient: m.recipient.as_deref(),
                    timestamp_ms: m.timestamp_ms,
                    body: &m.body,
                },
            )?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{}  {}  {} -> {}: {}",
                format_time(m.timestamp_ms),
                m.id,
                m.sender,
                m.recipient.as_deref().unwrap_or("-"),
                m.body
            )?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonStats {
    messages: u64,
    conversations: u64,
    peers: u64,
    file_bytes: u64,
    schema_version: u32,
}

async fn stats(
    db: &Path,
    options: Options,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let store = open_existing(db, options).await?;
    let s = store.stats().await?;
    let stats = JsonStats {
        messages: s.messages,
        conversations: s.conversations,
        peers: s.peers,
        file_bytes: s.file_bytes.unwrap_or(0),
        schema_version: s.schema_version,
    };
    if json {
        serde_json::to_writer(&mut *out, &stats)?;
        writeln!(out)?;
    } else {
        writeln!(out, "messages:       {}", stats.messages)?;
        writeln!(out, "conversations:  {}", stats.conversations)?;
        writeln!(out, "peers:          {}", stats.peers)?;
        writeln!(out, "file_bytes:     {}", stats.file_bytes)?;
        writeln!(out, "schema_version: {}", stats.schema_version)?;
    }
    Ok(())
}

fn describe(s: &tresor::BackupSummary) -> String {
    let tables: Vec<String> = s.tables.iter().map(|(t, n)| format!("{t}={n}")).collect();
    format!(
        "{} entries ({}), {} bytes, schema version {}, created {}",
        s.entries,
        tables.join(" "),
        s.bytes,
        s.schema_version,
        format_time(s.created_ms)
    )
}

async fn backup_create(
    db: &Path,
    options: Options,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let store = open_existing(db, options).await?;
    let started = Instant::now();
    let backup = store.backup_to_dir(dir).await?;
    writeln!(out, "backup written: {}", backup.path.display())?;
    writeln!(
        out,
        "{} in {:.2} s",
        describe(&backup.summary),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

async fn backup_verify(file: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let summary = tresor::verify_backup(file, passphrase::obtain(false)?).await?;
    writeln!(out, "backup ok: {}", describe(&summary))?;
    Ok(())
}

async fn restore(
    db: &Path,
    options: Options,
    file: &Path,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (store, summary) =
        tresor::restore_backup_with(file, db, passphrase::obtain(false)?, options).await?;
    let stats = store.stats().await?;
    writeln!(out, "restored {} into {}", describe(&summary), db.display())?;
    writeln!(
        out,
        "store: {} messages, {} conversations, {} peers",
        stats.messages, stats.conversations, stats.peers
    )?;
    Ok(())
}
