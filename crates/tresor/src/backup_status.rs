//! The last backup's outcome ([`crate::Stats::last_backup`]) and backup events
//! ([`Tresor::backup_events`]).

use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::Tresor;

/// Events kept for a slow [`Tresor::backup_events`] receiver before it starts missing some
/// (it then gets [`broadcast::error::RecvError::Lagged`]).
const EVENT_CAPACITY: usize = 64;

/// Which kind of backup a [`LastBackup`] was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackupKind {
    /// A single backup file (format 1): [`Tresor::backup_to`], [`Tresor::backup_to_dir`].
    File,
    /// A backup into a repository (format 2): [`Tresor::backup_to_target`],
    /// [`Tresor::backup_to_repository`], and scheduled backups ([`Tresor::schedule_backups`]).
    Repository,
}

/// The outcome of one backup made by this store handle, as kept in [`crate::Stats`] and sent
/// to [`Tresor::backup_events`] receivers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastBackup {
    /// File or repository backup.
    pub kind: BackupKind,
    /// When it started (the snapshot was taken just after), ms since the Unix epoch.
    pub started_ms: i64,
    /// When it finished or failed, ms since the Unix epoch.
    pub finished_ms: i64,
    /// The backup id (32 hex digits); `None` if it failed.
    pub id: Option<String>,
    /// Bytes written to the destination: the file's size, or the chunk and manifest objects
    /// the repository did not hold yet; 0 if it failed.
    pub bytes: u64,
    /// Entries the backup holds; 0 if it failed.
    pub entries: u64,
    /// The error's message if it failed (`None` on success).
    pub error: Option<String>,
}

impl LastBackup {
    /// Whether the backup succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// What [`Tresor::backup_events`] receivers get.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackupEvent {
    /// A backup started (`started_ms`, ms since the Unix epoch).
    Started {
        /// File or repository backup.
        kind: BackupKind,
        /// When it started.
        started_ms: i64,
    },
    /// A backup finished, successfully or not.
    Finished(LastBackup),
}

/// The last outcome and the event channel, shared by every clone of a store handle.
#[derive(Debug)]
pub(crate) struct BackupStatus {
    last: Mutex<Option<LastBackup>>,
    events: broadcast::Sender<BackupEvent>,
}

impl BackupStatus {
    pub(crate) fn new() -> Self {
        Self {
            last: Mutex::new(None),
            events: broadcast::channel(EVENT_CAPACITY).0,
        }
    }

    pub(crate) fn last(&self) -> Option<LastBackup> {
        // A poisoned lock means a panic while replacing an Option, which cannot leave it torn.
        match self.last.lock() {
            Ok(last) => last.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn started(&self, kind: BackupKind, started_ms: i64) {
        // No receiver is not an error: nobody is listening.
        let _ = self.events.send(BackupEvent::Started { kind, started_ms });
    }

    pub(crate) fn finished(&self, outcome: LastBackup) {
        match self.last.lock() {
            Ok(mut last) => *last = Some(outcome.clone()),
            Err(poisoned) => *poisoned.into_inner() = Some(outcome.clone()),
        }
        let _ = self.events.send(BackupEvent::Finished(outcome));
    }
}

impl Tresor {
    /// Receives an event when any backup of this store starts and when it finishes (file and
    /// repository backups, manual and scheduled, each attempt of a retried scheduled backup).
    /// Only events sent after this call are received; a receiver more than 64 events behind
    /// gets [`broadcast::error::RecvError::Lagged`] and then the newer ones.
    pub fn backup_events(&self) -> broadcast::Receiver<BackupEvent> {
        self.inner.backups.events.subscribe()
    }

    /// The outcome of the last backup this store handle made (also in [`crate::Stats`]);
    /// `None` before the first.
    pub fn last_backup(&self) -> Option<LastBackup> {
        self.inner.backups.last()
    }
}
