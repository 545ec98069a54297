//! The subcommands, each a function from parsed arguments to output.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tresor::{KdfParams, Message, Options, Secret, Tresor};

use crate::cli::{Backup, Cli, Command, Import, MessagesArgs};
use crate::{CliError, chitchat, passphrase};

/// Runs one parsed command line, writing results to `out`.
///
/// # Errors
/// Any [`CliError`]; the binary prints it as one line and exits with status 1.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let _ = KEY_FILE.set(cli.key_file.clone());
    let key = cli.key_file.as_deref();
    // The engine of a store this command creates; an existing store's comes from its file.
    let options = Options::default().with_backend_kind(cli.backend.into());
    match cli.command {
        Command::Import(Import::Chitchat {
            file,
            batch_size,
            pad_records,
        }) => {
            let options = options.with_padding(pad_records);
            import_chitchat(&db(&cli.db)?, key, file, batch_size as usize, options, out).await
        }
        Command::Messages(args) => messages(&db(&cli.db)?, key, args, out).await,
        Command::Stats { json } => stats(&db(&cli.db)?, key, json, out).await,
        Command::Backup(Backup::Create {
            target,
            out: dir,
            description,
            json,
        }) => {
            let target = match (target, dir) {
                (Some(t), _) => t,
                (None, Some(d)) => format!("dir:{}", d.display()),
                (None, None) => {
                    return Err(CliError::Usage(
                        "backup create needs --target URL or --out DIR".into(),
                    ));
                }
            };
            backup_create(&db(&cli.db)?, &target, description, json, out).await
        }
        Command::Backup(Backup::List { target, json }) => {
            backup_list(&target.target, json, out).await
        }
        Command::Backup(Backup::Verify {
            backup,
            target,
            subset,
            json,
        }) => backup_verify(backup, target, subset, json, out).await,
        Command::Backup(Backup::Forget {
            target,
            keep_last,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            keep_within,
            dry_run,
            json,
        }) => {
            let mut policy = tresor::RetentionPolicy::default();
            policy.last = keep_last.unwrap_or(0);
            policy.hourly = keep_hourly.unwrap_or(0);
            policy.daily = keep_daily.unwrap_or(0);
            policy.weekly = keep_weekly.unwrap_or(0);
            policy.monthly = keep_monthly.unwrap_or(0);
            policy.yearly = keep_yearly.unwrap_or(0);
            policy.within = keep_within
                .as_deref()
                .map(tresor::Span::parse)
                .transpose()?;
            backup_forget(&target.target, &policy, dry_run, json, out).await
        }
        Command::Backup(Backup::Prune { target, json }) => {
            backup_prune(&target.target, json, out).await
        }
        Command::Backup(Backup::Repair { target, json }) => {
            backup_repair(&target.target, json, out).await
        }
        Command::Restore {
            backup,
            target,
            json,
        } => restore(&db(&cli.db)?, &backup, target, options, json, out).await,
        Command::Info { json } => info(&db(&cli.db)?, key, json, out).await,
        Command::Passwd { new_key_file } => {
            passwd(&db(&cli.db)?, key, new_key_file.as_deref(), out).await
        }
        Command::Rekey { batch_size } => rekey(&db(&cli.db)?, key, batch_size as usize, out).await,
        Command::Check { json } => check(&db(&cli.db)?, key, json, out).await,
        Command::Conversations { limit, json } => {
            list_records(&db(&cli.db)?, key, Family::Conversations, limit, json, out).await
        }
        Command::Sessions { limit, json } => {
            list_records(&db(&cli.db)?, key, Family::Sessions, limit, json, out).await
        }
        Command::Proofs { limit, json } => {
            list_records(&db(&cli.db)?, key, Family::Proofs, limit, json, out).await
        }
        Command::Thread { root, limit, json } => {
            let store = open_existing(&db(&cli.db)?, key).await?;
            crate::extended::thread(&store, &root, limit, json, out).await
        }
        Command::Peers(cmd) => crate::p2p::peers(&db(&cli.db)?, key, cmd, out).await,
        Command::Media(cmd) => crate::p2p::media(&db(&cli.db)?, key, cmd, out).await,
        Command::Compact { json } => {
            crate::maintenance::compact(&db(&cli.db)?, key, json, out).await
        }
        Command::Migrate { dry_run } => migrate(&db(&cli.db)?, key, dry_run, out).await,
        Command::Repair { into, json } => {
            repair(&db(&cli.db)?, key, into.as_deref(), json, out).await
        }
    }
}

/// A progress bar of `total` `unit`s on stderr when it is a terminal, else a hidden one.
fn progress_bar(total: u64, unit: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let template = format!(
        "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}})"
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The `--key-file` of this invocation, for commands that unlock more than one thing.
static KEY_FILE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

fn key_file() -> Option<&'static Path> {
    KEY_FILE.get().and_then(|k| k.as_deref())
}

/// The secret that unlocks existing stores, backups and repositories: `--key-file`, else the
/// passphrase.
fn unlock_secret() -> Result<Secret, CliError> {
    passphrase::secret(key_file(), false)
}

fn db(db: &Option<PathBuf>) -> Result<PathBuf, CliError> {
    db.clone().ok_or(CliError::NoDb)
}

pub(crate) async fn open_existing(path: &Path, key: Option<&Path>) -> Result<Tresor, CliError> {
    if !path.exists() {
        return Err(CliError::NoStore(path.to_path_buf()));
    }
    Ok(Tresor::open(path, passphrase::secret(key, false)?).await?)
}

/// Streams the conversations of `file` (or of the bundled sample) through `f`.
fn each_conversation(
    file: &Option<PathBuf>,
    f: &mut dyn FnMut(chitchat::Conversation) -> Result<(), chitchat::ChitchatError>,
) -> Result<(), chitchat::ChitchatError> {
    match file {
        Some(path) => chitchat::for_each_in_file(path, f),
        None => chitchat::for_each_in_bundled_sample(f),
    }
}

async fn import_chitchat(
    db: &Path,
    key: Option<&Path>,
    file: Option<PathBuf>,
    batch_size: usize,
    options: Options,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let started = Instant::now();
    let source = file
        .as_ref()
        .map_or_else(|| "bundled sample".to_owned(), |f| f.display().to_string());
    // Pass 1 validates and counts, keeping nothing: a malformed file must leave neither a
    // new, empty store nor half an import behind.
    let counted = file.clone();
    let total = tokio::task::spawn_blocking(move || {
        let mut total = 0u64;
        each_conversation(&counted, &mut |c| {
            total += c.messages.len() as u64;
            Ok(())
        })?;
        Ok::<_, chitchat::ChitchatError>(total)
    })
    .await
    .map_err(|_| CliError::Task)??;
    let parsed = started.elapsed();
    let store = if db.exists() {
        Tresor::open(db, passphrase::secret(key, false)?).await?
    } else {
        Tresor::create_with(db, passphrase::secret(key, true)?, options).await?
    };
    // Pass 2 streams batches from a parser thread: memory holds a few batches, never the
    // corpus.
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Message>>(2);
    let parser = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(batch_size);
        let stopped = || chitchat::ChitchatError::Io {
            path: None,
            source: std::io::Error::other("the import stopped"),
        };
        each_conversation(&file, &mut |c| {
            for m in c.messages {
                batch.push(m);
                if batch.len() >= batch_size {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                    tx.blocking_send(full).map_err(|_| stopped())?;
                }
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            tx.blocking_send(batch).map_err(|_| stopped())?;
        }
        Ok::<_, chitchat::ChitchatError>(())
    });
    let bar = progress_bar(total, "messages");
    // Each batch is prepared while the one before it commits (`Messages::save_batches`).
    let batches = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|batch| (batch, rx))
    });
    let repo = store.messages();
    let saved = repo.save_batches(batches, |s| {
        bar.inc(s.inserted + s.updated + s.unchanged);
    });
    let summary = match saved.await {
        Ok(s) => s,
        Err(err) => {
            // The stream (and with it the receiver) is dropped: the parser's next send fails
            // and it stops.
            let _ = parser.await;
            return Err(err.into());
        }
    };
    let (inserted, updated, unchanged) = (summary.inserted, summary.updated, summary.unchanged);
    // The file changed between the passes, or could not be read again.
    parser.await.map_err(|_| CliError::Task)??;
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

pub(crate) fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

async fn messages(
    db: &Path,
    key: Option<&Path>,
    args: MessagesArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let store = open_existing(db, key).await?;
    let repo = store.messages();
    let before = args.before_id.as_deref();
    let sel = args.selector;
    if let Some(status) = &args.status {
        let Some(c) = &sel.conversation else {
            return Err(CliError::Usage("--status needs --conversation".into()));
        };
        return crate::extended::by_status(&store, c, status, args.limit, before, args.json, out)
            .await;
    }
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
    key: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let store = open_existing(db, key).await?;
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

/// A progress bar on stderr when it is a terminal and the output is not JSON.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(json: bool, what: &str) -> Self {
        let bar = if !json && std::io::stderr().is_terminal() {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{bytes}}/{{total_bytes}} {what} ({{bytes_per_sec}})"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Self(bar)
    }
}

impl tresor::Progress for Bar {
    fn total(&self, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Peak resident set size of this process in bytes (Linux: VmHWM), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

async fn open_repo(url: &str) -> Result<tresor::Repository, CliError> {
    let target = tresor::open_url(url)?;
    Ok(tresor::open_repository(target, &unlock_secret()?).await?)
}

#[derive(Serialize)]
struct JsonBackup<'a> {
    id: &'a str,
    created_ms: i64,
    created: String,
    description: &'a str,
    tresor_version: &'a str,
    schema_version: u32,
    tables: std::collections::BTreeMap<&'a str, u64>,
    entries: u64,
    stream_bytes: u64,
    chunks: u64,
    added_chunks: u64,
    added_bytes: u64,
    manifest_bytes: u64,
}

fn json_backup(b: &tresor::BackupInfo) -> JsonBackup<'_> {
    JsonBackup {
        id: &b.id,
        created_ms: b.created_ms,
        created: format_time(b.created_ms),
        description: &b.description,
        tresor_version: &b.tresor_version,
        schema_version: b.schema_version,
        tables: b.tables.iter().map(|(t, n)| (t.as_str(), *n)).collect(),
        entries: b.entries,
        stream_bytes: b.stream_bytes,
        chunks: b.chunks,
        added_chunks: b.added_chunks,
        added_bytes: b.added_bytes,
        manifest_bytes: b.manifest_bytes,
    }
}

fn describe_info(b: &tresor::BackupInfo) -> String {
    format!(
        "{}  {}  {} messages, {} stream bytes in {} chunks ({} new, {} bytes written){}",
        b.id,
        format_time(b.created_ms),
        b.tables
            .iter()
            .find(|(t, _)| t == "messages")
            .map_or(0, |(_, n)| *n),
        b.stream_bytes,
        b.chunks,
        b.added_chunks,
        b.added_bytes + b.manifest_bytes,
        if b.description.is_empty() {
            String::new()
        } else {
            format!("  \"{}\"", b.description)
        }
    )
}

async fn backup_create(
    db: &Path,
    url: &str,
    description: String,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let target = tresor::open_url(url)?;
    let store = open_existing(db, key_file()).await?;
    let started = Instant::now();
    let bar = Bar::new(json, "stream");
    let report = store
        .backup_to_target(
            target.clone(),
            &tresor::BackupOptions::with_description(description),
            &bar,
        )
        .await?;
    drop(bar);
    let seconds = started.elapsed().as_secs_f64();
    let info = &report.info;
    if json {
        #[derive(Serialize)]
        struct Created<'a> {
            target: String,
            #[serde(flatten)]
            backup: JsonBackup<'a>,
            existing_chunks: u64,
            store_bytes: u64,
            seconds: f64,
            peak_rss_bytes: Option<u64>,
        }
        serde_json::to_writer(
            &mut *out,
            &Created {
                target: target.describe(),
                backup: json_backup(info),
                existing_chunks: report.existing_chunks,
                store_bytes: store.stats().await?.file_bytes.unwrap_or(0),
                seconds,
                peak_rss_bytes: peak_rss_bytes(),
            },
        )?;
        writeln!(out)?;
    } else {
        writeln!(out, "backup written: {} to {}", info.id, target.describe())?;
        writeln!(out, "{} in {seconds:.2} s", describe_info(info))?;
    }
    Ok(())
}

async fn backup_list(url: &str, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let repo = open_repo(url).await?;
    for b in repo.list().await? {
        if json {
            serde_json::to_writer(&mut *out, &json_backup(&b))?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", describe_info(&b))?;
        }
    }
    Ok(())
}

async fn backup_verify(
    backup: Option<String>,
    target: Option<String>,
    subset: Option<f64>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let url = match (&target, &backup) {
        (Some(url), _) => url.clone(),
        (None, Some(path)) if Path::new(path).is_file() => {
            if subset.is_some() {
                return Err(CliError::Usage(
                    "--subset applies to repositories, not backup files".into(),
                ));
            }
            let summary = tresor::verify_backup(path, unlock_secret()?).await?;
            if json {
                serde_json::to_writer(
                    &mut *out,
                    &serde_json::json!({"ok": true, "format": 1, "entries": summary.entries, "bytes": summary.bytes}),
                )?;
                writeln!(out)?;
            } else {
                writeln!(out, "backup ok: {}", describe(&summary))?;
            }
            return Ok(());
        }
        (None, Some(path)) if Path::new(path).is_dir() => format!("dir:{path}"),
        _ => {
            return Err(CliError::Usage(
                "backup verify needs --target URL (or a backup file)".into(),
            ));
        }
    };
    let which = if target.is_some() { backup } else { None };
    let repo = open_repo(&url).await?;
    let bar = Bar::new(json, "checked");
    let report = repo.verify(which.as_deref(), subset, &bar).await?;
    drop(bar);
    if json {
        serde_json::to_writer(
            &mut *out,
            &serde_json::json!({
                "ok": true,
                "format": 2,
                "backups": report.backups,
                "streams_checked": report.streams_checked,
                "chunks_referenced": report.chunks_referenced,
                "chunks_read": report.chunks_read,
                "bytes_read": report.bytes_read,
                "unreferenced_chunks": report.unreferenced_chunks,
            }),
        )?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "backup ok: {} backups, {} streams checked, {} of {} chunks read ({} bytes), {} unreferenced chunks",
            report.backups,
            report.streams_checked,
            report.chunks_read,
            report.chunks_referenced,
            report.bytes_read,
            report.unreferenced_chunks
        )?;
    }
    Ok(())
}

async fn backup_forget(
    url: &str,
    policy: &tresor::RetentionPolicy,
    dry_run: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let repo = open_repo(url).await?;
    let report = repo.forget(policy, dry_run).await?;
    for d in &report.decisions {
        if json {
            serde_json::to_writer(
                &mut *out,
                &serde_json::json!({
                    "id": d.id,
                    "created_ms": d.created_ms,
                    "keep": d.keep,
                    "reasons": d.reasons,
                    "dry_run": dry_run,
                }),
            )?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{}  {}  {}{}",
                if d.keep { "keep  " } else { "forget" },
                d.id,
                format_time(d.created_ms),
                if d.reasons.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", d.reasons.join(", "))
                }
            )?;
        }
    }
    if !json {
        let forgotten = report.decisions.iter().filter(|d| !d.keep).count();
        if dry_run {
            writeln!(out, "dry run: would forget {forgotten} backups")?;
        } else {
            writeln!(
                out,
                "forgot {forgotten} backups (run `backup prune` to free their chunks)"
            )?;
        }
    }
    Ok(())
}

async fn backup_prune(url: &str, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let repo = open_repo(url).await?;
    let r = repo.prune().await?;
    if json {
        serde_json::to_writer(
            &mut *out,
            &serde_json::json!({
                "backups": r.backups,
                "chunks": r.chunks,
                "chunks_deleted": r.chunks_deleted,
                "bytes_deleted": r.bytes_deleted,
            }),
        )?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "pruned {} of {} chunks ({} bytes); {} backups kept",
            r.chunks_deleted, r.chunks, r.bytes_deleted, r.backups
        )?;
    }
    Ok(())
}

async fn backup_repair(url: &str, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let ec = tresor::open_erasure_url(url)?;
    let r = ec.repair(&["config", "manifests/", "chunks/"]).await?;
    if json {
        serde_json::to_writer(
            &mut *out,
            &serde_json::json!({
                "objects": r.objects,
                "shards_rewritten": r.shards_rewritten,
                "unrecoverable": r.unrecoverable,
            }),
        )?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "repaired: {} objects checked, {} shards rewritten, {} unrecoverable",
            r.objects,
            r.shards_rewritten,
            r.unrecoverable.len()
        )?;
        for name in &r.unrecoverable {
            writeln!(out, "unrecoverable: {name}")?;
        }
    }
    if r.unrecoverable.is_empty() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{} objects have fewer than K intact shards",
            r.unrecoverable.len()
        )))
    }
}

async fn restore(
    db: &Path,
    backup: &str,
    target: Option<String>,
    options: Options,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let started = Instant::now();
    let from_repo = |url: String, which: String| async move {
        let repo = open_repo(&url).await?;
        let bar = Bar::new(json, "restored");
        let restored = tresor::restore_from_repository_with(
            &repo,
            &which,
            db,
            unlock_secret()?,
            options,
            &bar,
        )
        .await?;
        drop(bar);
        Ok::<_, CliError>(restored)
    };
    let (store, summary) = match target {
        Some(url) => from_repo(url, backup.to_owned()).await?,
        None if Path::new(backup).is_dir() => {
            from_repo(format!("dir:{backup}"), "latest".to_owned()).await?
        }
        None => tresor::restore_backup_with(backup, db, unlock_secret()?, options).await?,
    };
    let seconds = started.elapsed().as_secs_f64();
    let stats = store.stats().await?;
    if json {
        serde_json::to_writer(
            &mut *out,
            &serde_json::json!({
                "backup": summary.backup_id.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                "messages": stats.messages,
                "conversations": stats.conversations,
                "peers": stats.peers,
                "store_bytes": stats.file_bytes.unwrap_or(0),
                "seconds": seconds,
                "peak_rss_bytes": peak_rss_bytes(),
            }),
        )?;
        writeln!(out)?;
    } else {
        writeln!(out, "restored {} into {}", describe(&summary), db.display())?;
        writeln!(
            out,
            "store: {} messages, {} conversations, {} peers",
            stats.messages, stats.conversations, stats.peers
        )?;
    }
    Ok(())
}

fn print_issues(report: &tresor::CheckReport, out: &mut dyn Write) -> Result<(), CliError> {
    for i in &report.issues {
        writeln!(
            out,
            "{:?}\t{}\t{:?}\t{}",
            i.severity, i.table, i.kind, i.key
        )?;
    }
    writeln!(
        out,
        "checked {} records, {} index entries, {} counters: {} issues",
        report.records,
        report.index_entries,
        report.counters,
        report.issues.len()
    )?;
    Ok(())
}

#[derive(Serialize)]
struct JsonInfo {
    header_version: u8,
    kdf: &'static str,
    kdf_params: serde_json::Value,
    key_created_ms: Option<i64>,
    key_age_days: Option<f64>,
    seals: u64,
    seal_limit: u64,
    padded: bool,
    rotation_in_progress: Option<&'static str>,
    unlock_ms: f64,
    schema_version: u32,
}

/// The record families `list_records` prints.
#[derive(Debug, Clone, Copy)]
enum Family {
    Conversations,
    Sessions,
    Proofs,
}

/// A session as printed: the opaque ratchet state is left out.
#[derive(Serialize)]
struct JsonSession<'a> {
    peer_id: &'a str,
    device_id: &'a str,
    key_id: &'a str,
    state_bytes: usize,
    last_activity_ms: i64,
}

/// A proof as printed: sizes instead of bytes.
#[derive(Serialize)]
struct JsonProof<'a> {
    id: &'a str,
    message_id: &'a str,
    circuit_id: &'a str,
    proof_bytes: usize,
    public_signals: usize,
    generated_ms: i64,
    prover: &'a str,
}

/// A conversation with its unread count, as `tresor conversations --json` prints it.
#[derive(Serialize)]
struct JsonConversation<'a> {
    #[serde(flatten)]
    conversation: &'a tresor::Conversation,
    unread: u64,
}

pub(crate) fn json_line(out: &mut dyn Write, value: &impl Serialize) -> Result<(), CliError> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

async fn list_records(
    db: &Path,
    key: Option<&Path>,
    family: Family,
    limit: usize,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let store = open_existing(db, key).await?;
    match family {
        Family::Conversations => {
            for c in store.conversations().recent(limit, None).await? {
                let unread = store.conversations().unread(&c.id).await?;
                if json {
                    json_line(
                        out,
                        &JsonConversation {
                            conversation: &c,
                            unread,
                        },
                    )?;
                } else {
                    writeln!(
                        out,
                        "{}  {}  {:?}  {}  unread {}  {}",
                        format_time(c.last_activity_ms),
                        c.id,
                        c.kind,
                        c.participants.join(","),
                        unread,
                        c.title.as_deref().unwrap_or("")
                    )?;
                }
            }
        }
        Family::Sessions => {
            for s in store.sessions().recent(limit, None).await? {
                let j = JsonSession {
                    peer_id: &s.peer_id,
                    device_id: &s.device_id,
                    key_id: &s.key_id,
                    state_bytes: s.state.len(),
                    last_activity_ms: s.last_activity_ms,
                };
                if json {
                    json_line(out, &j)?;
                } else {
                    writeln!(
                        out,
                        "{}  {}/{}  key {}  {} state bytes",
                        format_time(j.last_activity_ms),
                        j.peer_id,
                        j.device_id,
                        j.key_id,
                        j.state_bytes
                    )?;
                }
            }
        }
        Family::Proofs => {
            for p in store.proofs().recent(limit, None).await? {
                let j = JsonProof {
                    id: &p.id,
                    message_id: &p.message_id,
                    circuit_id: &p.circuit_id,
                    proof_bytes: p.proof.len(),
                    public_signals: p.public_signals.len(),
                    generated_ms: p.generated_ms,
                    prover: &p.prover,
                };
                if json {
                    json_line(out, &j)?;
                } else {
                    writeln!(
                        out,
                        "{}  {}  message {}  circuit {}  by {}",
                        format_time(j.generated_ms),
                        j.id,
                        j.message_id,
                        j.circuit_id,
                        j.prover
                    )?;
                }
            }
        }
    }
    Ok(())
}

async fn migrate(
    db: &Path,
    key: Option<&Path>,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if !db.exists() {
        return Err(CliError::NoStore(db.to_path_buf()));
    }
    let found = Tresor::schema_version_at(db).await?;
    let steps = Tresor::pending_migrations(found);
    if dry_run {
        writeln!(
            out,
            "schema version {found}; this tresor writes {}",
            tresor::SCHEMA_VERSION
        )?;
        if steps.is_empty() {
            writeln!(out, "nothing to migrate")?;
        }
        for s in &steps {
            writeln!(out, "step v{} -> v{}: {}", s.to - 1, s.to, s.description)?;
        }
        return Ok(());
    }
    // Opening migrates.
    let store = open_existing(db, key).await?;
    let now = store.stats().await?.schema_version;
    if steps.is_empty() {
        writeln!(out, "schema version {now}: nothing to migrate")?;
    } else {
        writeln!(out, "migrated from schema version {found} to {now}")?;
    }
    Ok(())
}

fn kdf_description(kdf: KdfParams) -> (&'static str, serde_json::Value) {
    match kdf {
        KdfParams::Argon2id {
            memory_kib,
            iterations,
            parallelism,
        } => (
            "argon2id",
            serde_json::json!({"memory_kib": memory_kib, "iterations": iterations, "parallelism": parallelism}),
        ),
        KdfParams::Pbkdf2Sha512 { iterations } => (
            "pbkdf2-hmac-sha512",
            serde_json::json!({ "iterations": iterations }),
        ),
        KdfParams::RawKey => ("raw-key-hkdf-sha256", serde_json::json!({})),
        _ => ("unknown", serde_json::json!({})),
    }
}

async fn info(
    db: &Path,
    key: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let secret = passphrase::secret(key, false)?;
    if !db.exists() {
        return Err(CliError::NoStore(db.to_path_buf()));
    }
    let started = Instant::now();
    let store = Tresor::open(db, secret).await?;
    let unlock_ms = started.elapsed().as_secs_f64() * 1000.0;
    let k = store.key_info().await?;
    let (kdf, params) = kdf_description(k.kdf);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let info = JsonInfo {
        header_version: k.header_version,
        kdf,
        kdf_params: params,
        key_created_ms: k.key_created_ms,
        key_age_days: k
            .key_created_ms
            .map(|c| (now - c).max(0) as f64 / 86_400_000.0),
        seals: k.seals,
        seal_limit: k.seal_limit,
        padded: k.padded,
        rotation_in_progress: k.rotation.as_ref().map(|r| r.table),
        unlock_ms,
        schema_version: store.stats().await?.schema_version,
    };
    if json {
        serde_json::to_writer(&mut *out, &info)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "schema version:     {}", info.schema_version)?;
    writeln!(out, "key header version: {}", info.header_version)?;
    writeln!(out, "kdf:                {kdf} {}", info.kdf_params)?;
    match info.key_created_ms {
        Some(c) => writeln!(
            out,
            "key created:        {} ({:.1} days ago)",
            format_time(c),
            info.key_age_days.unwrap_or(0.0)
        )?,
        None => writeln!(out, "key created:        unknown")?,
    }
    writeln!(
        out,
        "seals under key:    {} (rotation at {}; NIST SP 800-38D bound 2^32)",
        info.seals, info.seal_limit
    )?;
    writeln!(
        out,
        "record padding:     {}",
        if info.padded { "padme" } else { "none" }
    )?;
    match info.rotation_in_progress {
        Some(t) => writeln!(out, "rotation:           in progress (table {t})")?,
        None => writeln!(out, "rotation:           none in progress")?,
    }
    writeln!(out, "unlock time:        {unlock_ms:.0} ms")?;
    Ok(())
}

async fn passwd(
    db: &Path,
    key: Option<&Path>,
    new_key_file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if !db.exists() {
        return Err(CliError::NoStore(db.to_path_buf()));
    }
    let current: Secret = passphrase::secret(key, false)?;
    let new = passphrase::new_secret(new_key_file)?;
    let kind = new.kind();
    let store = Tresor::open(db, current.clone()).await?;
    store.change_passphrase(current, new).await?;
    writeln!(
        out,
        "{kind} changed: the store now opens only with the new {kind}; backups made before keep the old one"
    )?;
    Ok(())
}

async fn check(
    db: &Path,
    key: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let store = open_existing(db, key).await?;
    let report = store.check().await?;
    if json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        print_issues(&report, out)?;
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(CliError::CheckFailed(report.issues.len()))
    }
}

async fn repair(
    db: &Path,
    key: Option<&Path>,
    into: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if let Some(target) = into {
        if !db.exists() {
            return Err(CliError::NoStore(db.to_path_buf()));
        }
        let (_, report) = tresor::salvage(db, target, passphrase::secret(key, false)?).await?;
        if json {
            serde_json::to_writer(&mut *out, &report)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "salvaged {} of {} messages into {} ({} lost{})",
                report.recovered,
                report.candidates,
                target.display(),
                report.lost,
                if report.unreadable_tables.is_empty() {
                    String::new()
                } else {
                    format!("; unreadable: {}", report.unreadable_tables.join(", "))
                }
            )?;
        }
        return Ok(());
    }
    let store = open_existing(db, key).await?;
    let report = store.repair().await?;
    if json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        print_issues(&report.found, out)?;
        writeln!(
            out,
            "repaired: {} index entries, {} counters fixed; {} unreadable records removed (lost)",
            report.index_entries_fixed, report.counters_fixed, report.records_lost
        )?;
    }
    Ok(())
}

async fn rekey(
    db: &Path,
    key: Option<&Path>,
    batch_size: usize,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if !db.exists() {
        return Err(CliError::NoStore(db.to_path_buf()));
    }
    let secret = passphrase::secret(key, false)?;
    let store = Tresor::open_with(
        db,
        secret,
        Options::default().with_background_rotation(false),
    )
    .await?;
    let stats = store.stats().await?;
    let total = stats.messages + stats.conversations + stats.peers;
    let bar = progress_bar(total, "records");
    let started = Instant::now();
    let summary = store
        .rotate_key_with(batch_size, |step| bar.inc(step.examined))
        .await?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "{} key rotation: {} records re-encrypted in {} batches, {elapsed:.2} s ({:.0} records/s); the old key is retired",
        if summary.began { "new" } else { "resumed" },
        summary.migrated,
        summary.batches,
        summary.migrated as f64 / elapsed.max(1e-9)
    )?;
    Ok(())
}
