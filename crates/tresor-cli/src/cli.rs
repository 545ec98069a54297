//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// tresor: an encrypted, indexed store for chat history.
///
/// The passphrase comes from the environment variable TRESOR_PASSPHRASE, else from a prompt
/// on a terminal.
#[derive(Debug, Parser)]
#[command(name = "tresor", version, about, long_about = None)]
pub struct Cli {
    /// Path of the store file (a redb or SQLite database).
    #[arg(long, global = true, value_name = "PATH", env = "TRESOR_DB")]
    pub db: Option<PathBuf>,
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
    /// Restore a backup into a new store at --db (which must not exist).
    Restore {
        /// The backup file.
        file: PathBuf,
    },
}

/// Import sources.
#[derive(Debug, Subcommand)]
pub enum Import {
    /// The chitchat corpus JSON (plain or .gz); without FILE, the sample bundled in the binary.
    Chitchat {
        /// Corpus file; omit to import the bundled sample (300 conversations).
        file: Option<PathBuf>,
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
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Backup subcommands.
#[derive(Debug, Subcommand)]
pub enum Backup {
    /// Write a backup of the store at --db into directory DIR.
    Create {
        /// Directory to write the backup file into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Read a backup file completely and check every tag and digest; writes nothing.
    Verify {
        /// The backup file.
        file: PathBuf,
    },
}
