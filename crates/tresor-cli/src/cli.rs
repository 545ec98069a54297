//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// tresor: an encrypted, indexed store for chat history.
///
/// The passphrase comes from the environment variable TRESOR_PASSPHRASE, else from a prompt
/// on a terminal; with --key-file the store is unlocked by a raw 32-byte key instead.
#[derive(Debug, Parser)]
#[command(name = "tresor", version, about, long_about = None)]
pub struct Cli {
    /// Path of the store file (a redb or SQLite database).
    #[arg(long, global = true, value_name = "PATH", env = "TRESOR_DB")]
    pub db: Option<PathBuf>,
    /// Unlock with the raw key in this file (32 bytes, or 64 hex digits) instead of a
    /// passphrase. A store created with a key file opens only with it (or after `passwd`).
    #[arg(long, global = true, value_name = "PATH", env = "TRESOR_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Storage engine of a store created by this command (import, restore). An existing
    /// store is opened with the engine its file header names.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = Engine::Redb,
        env = "TRESOR_BACKEND"
    )]
    pub backend: Engine,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The storage engines `--backend` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// One redb file.
    Redb,
    /// One SQLite file (WAL mode).
    Sqlite,
}

impl From<Engine> for tresor::BackendKind {
    fn from(engine: Engine) -> Self {
        match engine {
            Engine::Redb => tresor::BackendKind::Redb,
            Engine::Sqlite => tresor::BackendKind::Sqlite,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import chat history into the store (created if missing).
    #[command(subcommand)]
    Import(Import),
    /// List messages, newest first.
    Messages(MessagesArgs),
    /// Show counts and sizes.
    Stats {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Create or verify backups.
    #[command(subcommand)]
    Backup(Backup),
    /// Restore a backup into a new store at --db (which must not exist): ID (or `latest`) of
    /// the repository at --target, or a single backup FILE (format 1).
    Restore {
        /// Backup id, unique id prefix or `latest` (with --target); or a backup file.
        backup: String,
        /// The repository (dir:PATH, s3://BUCKET/PREFIX, ec:K+M:T1,T2,…).
        #[arg(long, value_name = "URL", env = "TRESOR_TARGET")]
        target: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check every record, index entry and counter; exit status 1 if anything is wrong.
    Check {
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild indexes and counters from the records and drop what is unreadable; with
    /// --into, copy every readable message of a damaged store into a new store instead.
    Repair {
        /// Salvage into a new store at this path (the damaged store is only read).
        #[arg(long, value_name = "NEW")]
        into: Option<PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show how the store is keyed: header version, KDF and parameters, key age, seals under
    /// the current key, padding, rotation in progress.
    Info {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Change the passphrase (new one from TRESOR_NEW_PASSPHRASE or a confirmed prompt), or
    /// switch to a raw key with --new-key-file. Re-wraps the data key: instant, atomic.
    Passwd {
        /// Switch to the raw key in this file (32 bytes, or 64 hex digits).
        #[arg(long, value_name = "PATH")]
        new_key_file: Option<PathBuf>,
    },
    /// List conversations, most recently active first.
    Conversations {
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// List ratchet sessions, most recently active first (state bytes are not shown).
    Sessions {
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// List proofs, newest first (proof bytes are not shown).
    Proofs {
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// List the replies in the thread of a message, oldest first, with their status.
    Thread {
        /// The id of the thread's root message.
        root: String,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Peers for reconnection: list, reconnection candidates, cleanup.
    #[command(subcommand)]
    Peers(crate::p2p::PeersCmd),
    /// Encrypted media blobs: put, get, ls.
    #[command(subcommand)]
    Media(crate::p2p::MediaCmd),
    /// Compact the store: rewrite its file with full pages and give free space back (redb:
    /// every table copied in key order into a new file that replaces the old one; SQLite:
    /// VACUUM). Needs free disk space about the size of the compacted store.
    Compact {
        /// Print one JSON object (`bytes_before`, `bytes_after`, `bytes_reclaimed`).
        #[arg(long)]
        json: bool,
    },
    /// Migrate the store to this tresor's schema version (opening a store does it too).
    Migrate {
        /// Only show the store's version and the steps a migration would run.
        #[arg(long)]
        dry_run: bool,
    },
    /// Replace the data key: re-encrypt every record and re-blind every index entry, online,
    /// in atomic batches (resumable after a crash).
    Rekey {
        /// Entries per atomic batch (larger is faster; the store is exclusive to this process).
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        batch_size: u32,
    },
}

/// Import sources.
#[derive(Debug, Subcommand)]
pub enum Import {
    /// The chitchat corpus JSON (plain or .gz); without FILE, the sample bundled in the binary.
    Chitchat {
        /// Corpus file; omit to import the bundled sample (300 conversations).
        file: Option<PathBuf>,
        /// When this creates the store: pad records to Padmé lengths (hides record sizes
        /// better, costs space).
        #[arg(long)]
        pad_records: bool,
        /// Messages per atomic, durable write batch.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        batch_size: u32,
    },
}

/// Which messages to list.
#[derive(Debug, Args)]
#[group(id = "selector", required = true, multiple = false)]
pub struct Selector {
    /// Messages of this conversation.
    #[arg(long, value_name = "ID", group = "selector")]
    pub conversation: Option<String>,
    /// Messages sent or received by this peer.
    #[arg(long, value_name = "ID", group = "selector")]
    pub peer: Option<String>,
    /// The newest messages of the whole store.
    #[arg(long, group = "selector")]
    pub recent: bool,
}

/// Arguments of `tresor messages`.
#[derive(Debug, Args)]
pub struct MessagesArgs {
    /// Which messages.
    #[command(flatten)]
    pub selector: Selector,
    /// At most this many messages.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Only messages after this message id in newest-first order (the next page).
    #[arg(long, value_name = "ID")]
    pub before_id: Option<String>,
    /// Only messages with this delivery status (pending, sent, delivered, read, failed);
    /// needs --conversation. Lines then show each message's status.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Where a repository lives.
#[derive(Debug, Args)]
pub struct TargetArg {
    /// The repository: dir:PATH, s3://BUCKET/PREFIX (endpoint and credentials from the AWS_*
    /// environment variables), or ec:K+M:T1,T2,… (erasure-coded over K+M targets).
    #[arg(long, value_name = "URL", env = "TRESOR_TARGET")]
    pub target: String,
}

/// Backup subcommands.
#[derive(Debug, Subcommand)]
pub enum Backup {
    /// Back up the store at --db into a repository (created if missing); only new chunks are
    /// written.
    Create {
        /// The repository (dir:PATH, s3://BUCKET/PREFIX, ec:K+M:T1,T2,…).
        #[arg(
            long,
            value_name = "URL",
            env = "TRESOR_TARGET",
            conflicts_with = "out"
        )]
        target: Option<String>,
        /// Shorthand for --target dir:DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Free text stored (encrypted) with the backup.
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the backups of a repository, oldest first.
    List {
        /// The repository.
        #[command(flatten)]
        target: TargetArg,
        /// Print one JSON object per backup.
        #[arg(long)]
        json: bool,
    },
    /// Read backups completely and check every tag, digest and entry; writes nothing. With
    /// --target: BACKUP is an id, prefix or `latest` (default: every backup). Without: BACKUP
    /// is a backup file (format 1).
    Verify {
        /// Backup id / prefix / `latest`, or a backup file.
        backup: Option<String>,
        /// The repository.
        #[arg(long, value_name = "URL", env = "TRESOR_TARGET")]
        target: Option<String>,
        /// Read only this random fraction of the chunks (0 < F <= 1) instead of every stream.
        #[arg(long, value_name = "F")]
        subset: Option<f64>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Forget backups by restic's retention rules: a backup is kept if any rule keeps it.
    Forget {
        /// The repository.
        #[command(flatten)]
        target: TargetArg,
        /// Keep the N newest backups.
        #[arg(long, value_name = "N", value_parser = parse_count)]
        keep_last: Option<u32>,
        /// Keep the newest backup of each of the last N hours with backups.
        #[arg(long, value_name = "N", value_parser = parse_count)]
        keep_hourly: Option<u32>,
        /// … of each of the last N days.
        #[arg(long, value_name = "N", value_parser = parse_count)]
        keep_daily: Option<u32>,
        /// … of each of the last N ISO weeks.
        #[arg(long, value_name = "N", value_parser = parse_count)]
        keep_weekly: Option<u32>,
        /// … of each of the last N months.
        #[arg(long, value_name = "N", value_parser = parse_count)]
        keep_monthly: Option<u32>,
        /// … of each of the last N years.
        #[arg(long, value_name = "N", value_parser = parse_count)]
        keep_yearly: Option<u32>,
        /// Keep every backup within this span of the newest (e.g. 1y5m7d2h).
        #[arg(long, value_name = "SPAN")]
        keep_within: Option<String>,
        /// Show the decision, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Delete the chunks no backup references (refused while a backup holds the lock).
    Prune {
        /// The repository.
        #[command(flatten)]
        target: TargetArg,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the missing or corrupt shards of an erasure-coded repository (ec:K+M:…).
    Repair {
        /// The repository.
        #[command(flatten)]
        target: TargetArg,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// A retention count: a number, or `unlimited`.
fn parse_count(s: &str) -> Result<u32, String> {
    if s == "unlimited" {
        return Ok(tresor::UNLIMITED);
    }
    s.parse::<u32>()
        .map_err(|_| format!("{s:?} is not a count (a number or `unlimited`)"))
}
