//! The CLI's error type: every failure is one line on stderr and exit status 1.

use std::path::PathBuf;

use crate::chitchat::ChitchatError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// No `--db` was given to a command that needs a store.
    #[error("no store given: pass --db PATH (or set TRESOR_DB)")]
    NoDb,
    /// `TRESOR_PASSPHRASE` (or, for `passwd`, `TRESOR_NEW_PASSPHRASE`) is unset and there is no
    /// terminal to prompt on.
    #[error(
        "no passphrase: set TRESOR_PASSPHRASE (and TRESOR_NEW_PASSPHRASE for passwd), pass --key-file, or run on a terminal"
    )]
    NoPassphrase,
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// `TRESOR_PASSPHRASE` (or `TRESOR_NEW_PASSPHRASE`) is not valid UTF-8.
    #[error("the passphrase variable is not valid UTF-8")]
    NonUtf8Passphrase,
    /// The two passphrase entries differ.
    #[error("the passphrases do not match")]
    PassphraseMismatch,
    /// The `--key-file` cannot be read or does not hold a key.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// Why (never the file's contents).
        reason: String,
    },
    /// Reading the passphrase from the terminal failed.
    #[error("cannot read the passphrase: {0}")]
    Prompt(std::io::Error),
    /// `open` of a store that does not exist, outside import.
    #[error("no store at {0} (import creates one)")]
    NoStore(PathBuf),
    /// The import source failed to read or parse.
    #[error(transparent)]
    Import(#[from] ChitchatError),
    /// tresor itself failed.
    #[error(transparent)]
    Tresor(#[from] tresor::Error),
    /// Writing output failed.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// Output could not be encoded.
    #[error("cannot encode output: {0}")]
    Json(#[from] serde_json::Error),
    /// `tresor check` found problems (the report was printed).
    #[error("check found {0} issues (run `tresor repair`)")]
    CheckFailed(usize),
    /// Arguments that parse but do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// A backup target string is invalid.
    #[error(transparent)]
    Target(#[from] tresor::TargetError),
    /// A backup operation failed.
    #[error(transparent)]
    Backup(#[from] tresor::BackupError),
    /// A background task failed.
    #[error("background task failed")]
    Task,
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Output(e)
    }
}

impl CliError {
    /// Whether this is a closed standard output (`tresor … | head`): not worth an error.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
