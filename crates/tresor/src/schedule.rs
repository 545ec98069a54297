//! Automatic backups: [`Tresor::schedule_backups`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tresor_backup::{BackupInfo, BackupOptions, BackupTarget, NoProgress, RetentionPolicy};

use crate::{Error, Tresor};

/// When and where [`Tresor::schedule_backups`] backs up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupPolicy {
    /// The repository's target.
    pub target: Arc<dyn BackupTarget>,
    /// Time between backups (the first runs one interval after scheduling).
    pub interval: Duration,
    /// Also back up as soon as this many messages were written or deleted since the last
    /// backup (`None`: by time only).
    pub after_writes: Option<u64>,
    /// Run a last backup when [`BackupSchedule::close`] is called.
    pub at_close: bool,
    /// Applied with `forget` after each successful backup (`None`: keep everything).
    pub retention: Option<RetentionPolicy>,
    /// Also `prune` after applying the retention policy.
    pub prune: bool,
    /// Retries of a failed backup before waiting for the next trigger.
    pub retries: u32,
    /// Delay before the first retry; doubled after each failure (at most the interval).
    pub backoff: Duration,
    /// Description recorded in every backup.
    pub description: String,
}

impl BackupPolicy {
    /// Backups to `target` every `interval`, with 3 retries starting at 1 s, no write trigger,
    /// no backup at close, no retention.
    pub fn every(target: Arc<dyn BackupTarget>, interval: Duration) -> Self {
        Self {
            target,
            interval,
            after_writes: None,
            at_close: false,
            retention: None,
            prune: false,
            retries: 3,
            backoff: Duration::from_secs(1),
            description: "scheduled".into(),
        }
    }
}

/// The outcome of one scheduled backup.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupRun {
    /// The backup written.
    pub backup: BackupInfo,
    /// Attempts it took (1 = no retry).
    pub attempts: u32,
    /// Backups forgotten by the retention policy afterwards.
    pub forgotten: u64,
    /// Chunks deleted by the prune afterwards.
    pub pruned_chunks: u64,
}

/// The latest result: `None` before the first run; `Err` with the last error's message.
pub type LatestBackup = Option<Result<BackupRun, String>>;

/// Handle of the task started by [`Tresor::schedule_backups`]. Dropping it stops the
/// schedule (a backup in progress is abandoned; its chunks are removed by a later prune).
#[derive(Debug)]
pub struct BackupSchedule {
    task: Option<tokio::task::JoinHandle<()>>,
    latest: watch::Receiver<LatestBackup>,
    close: Option<oneshot::Sender<()>>,
}

impl BackupSchedule {
    /// The most recent result.
    pub fn latest(&self) -> LatestBackup {
        self.latest.borrow().clone()
    }

    /// A receiver that observes every result (a tokio watch channel).
    pub fn subscribe(&self) -> watch::Receiver<LatestBackup> {
        self.latest.clone()
    }

    /// Waits for the next result.
    ///
    /// # Errors
    /// The error's message if that backup failed after its retries, or if the schedule
    /// stopped.
    pub async fn next(&mut self) -> Result<BackupRun, String> {
        self.latest
            .changed()
            .await
            .map_err(|_| "backup schedule stopped".to_owned())?;
        self.latest
            .borrow_and_update()
            .clone()
            .unwrap_or_else(|| Err("no backup result".to_owned()))
    }

    /// Stops the schedule; with [`BackupPolicy::at_close`], runs a last backup first and
    /// waits for it. Returns the latest result.
    pub async fn close(mut self) -> LatestBackup {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.latest.borrow().clone()
    }
}

impl Drop for BackupSchedule {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Tresor {
    /// Backs the store up into the repository of `policy.target` in a background task: every
    /// `interval`, after `after_writes` written messages if set, and at
    /// [`BackupSchedule::close`] if `at_close`. A failed backup is retried `retries` times
    /// with exponential backoff; after each success the retention policy is applied (and
    /// `prune` run if asked). Results are published on a watch channel
    /// ([`BackupSchedule::latest`], [`BackupSchedule::subscribe`]).
    ///
    /// Each backup reads a snapshot taken under the writer lock, which is released at once:
    /// writers and readers never wait for a backup. Each attempt is also reported as
    /// [`crate::BackupEvent`]s on [`Tresor::backup_events`] and kept in
    /// [`crate::Stats::last_backup`].
    ///
    /// # Panics
    /// Never; must be called within a tokio runtime (it spawns a task).
    pub fn schedule_backups(&self, policy: BackupPolicy) -> BackupSchedule {
        let (tx, rx) = watch::channel(None);
        let (close_tx, mut close_rx) = oneshot::channel();
        let store = self.clone();
        // Counted from the call, not from the task's first poll: writes made before the task
        // first runs count toward `after_writes`.
        let mut writes_at_last = store.inner.writes.load(Ordering::Relaxed);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(policy.interval);
            ticker.tick().await; // the first tick is immediate
            loop {
                let closing = tokio::select! {
                    _ = ticker.tick() => false,
                    _ = wait_for_writes(&store, policy.after_writes, writes_at_last) => false,
                    _ = &mut close_rx => true,
                };
                if closing && !policy.at_close {
                    return;
                }
                writes_at_last = store.inner.writes.load(Ordering::Relaxed);
                let result = run_with_retries(&store, &policy).await;
                let failed = tx.send(Some(result)).is_err();
                if closing || failed {
                    return;
                }
                ticker.reset();
            }
        });
        BackupSchedule {
            task: Some(task),
            latest: rx,
            close: Some(close_tx),
        }
    }
}

/// Resolves once `threshold` messages were written since `since` (never without a threshold).
async fn wait_for_writes(store: &Tresor, threshold: Option<u64>, since: u64) {
    let Some(threshold) = threshold else {
        return std::future::pending().await;
    };
    loop {
        let notified = store.inner.wrote.notified();
        tokio::pin!(notified);
        // Registered before the count is read, so a write in between is not missed.
        notified.as_mut().enable();
        let writes = store.inner.writes.load(Ordering::Relaxed);
        if writes.saturating_sub(since) >= threshold.max(1) {
            return;
        }
        notified.await;
    }
}

async fn run_with_retries(store: &Tresor, policy: &BackupPolicy) -> Result<BackupRun, String> {
    let mut delay = policy.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match run_once(store, policy).await {
            Ok(mut run) => {
                run.attempts = attempt;
                return Ok(run);
            }
            Err(e) if attempt > policy.retries => return Err(e.to_string()),
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.interval.max(policy.backoff));
            }
        }
    }
}

async fn run_once(store: &Tresor, policy: &BackupPolicy) -> Result<BackupRun, Error> {
    let options = BackupOptions::with_description(policy.description.clone());
    let (repository, report) = store
        .backup_into(Arc::clone(&policy.target), &options, &NoProgress)
        .await?;
    let mut run = BackupRun {
        backup: report.info,
        attempts: 1,
        forgotten: 0,
        pruned_chunks: 0,
    };
    if let Some(retention) = &policy.retention {
        let forgotten = repository.forget(retention, false).await?;
        run.forgotten = forgotten.decisions.iter().filter(|d| !d.keep).count() as u64;
        if policy.prune {
            run.pruned_chunks = repository.prune().await?.chunks_deleted;
        }
    }
    Ok(run)
}
