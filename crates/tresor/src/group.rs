//! Group commit of message saves: concurrent `save`/`save_batch` calls share one write batch
//! and one fsync.
//!
//! Every write holds the store's writer lock across its commit (read-modify-write steps such
//! as sequence numbers and counts must not interleave), so without grouping, N concurrent
//! savers pay N durable commits one after the other. Here a saver queues its messages, then
//! either finds them already saved by another saver, or takes the writer lock and saves
//! everything queued meanwhile — its own and the others' — as one atomic batch, answering each
//! caller with its own outcome. If that combined batch fails, each caller's messages are saved
//! again on their own, so that one caller's failure never becomes another's. If the leader
//! stops (its caller dropped its future: a timeout, a `select!`), the saves it took and had
//! not answered go back to the queue, and the next leader saves them (again: a save is
//! idempotent, so messages its commit already stored come back as unchanged). The stopped
//! leader's own save may go back too: as with any write whose outcome was not awaited, it
//! may or may not end up stored.

use std::sync::Weak;

use tokio::sync::oneshot;
use tresor_schema::Message;

use crate::message_ext::StateChange;
use crate::messages::{Outcome, summarize};
use crate::store::{Inner, WriterState};
use crate::{Error, Messages, SaveSummary};

/// Most messages saved in one combined batch (a caller's own batch is never split).
const MAX_GROUP_MESSAGES: usize = 4096;

/// One caller's messages waiting to be saved, and where its outcome goes. Dropped without an
/// answer while its caller still waits (the leader that took it stopped), it puts itself back
/// in the queue.
pub(crate) struct QueuedSave {
    items: Vec<(Message, StateChange)>,
    /// `None` once answered.
    reply: Option<oneshot::Sender<Result<Vec<Outcome>, Error>>>,
    /// The store whose queue it goes back to.
    store: Weak<Inner>,
}

impl QueuedSave {
    /// Sends this save's outcome to its caller (who may have stopped waiting).
    fn answer(mut self, outcome: Result<Vec<Outcome>, Error>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(outcome);
        }
    }
}

impl Drop for QueuedSave {
    fn drop(&mut self) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        if reply.is_closed() {
            return;
        }
        if let Some(inner) = self.store.upgrade() {
            // The caller waits on its answer or on the writer lock, which the stopped
            // leader releases after this: it then finds its save in the queue.
            inner.save_queue.push(QueuedSave {
                items: std::mem::take(&mut self.items),
                reply: Some(reply),
                store: Weak::clone(&self.store),
            });
        }
    }
}

/// The queue of saves waiting for the writer lock (`Inner::save_queue`).
#[derive(Default)]
pub(crate) struct SaveQueue(std::sync::Mutex<Vec<QueuedSave>>);

impl SaveQueue {
    fn push(&self, save: QueuedSave) {
        // A poisoned lock means a panic while pushing or taking a Vec: the Vec is intact.
        let mut queue = self.0.lock().unwrap_or_else(|p| p.into_inner());
        queue.push(save);
    }

    /// Takes queued saves, oldest first, up to about `MAX_GROUP_MESSAGES` messages (at least
    /// one save).
    fn take_group(&self) -> Vec<QueuedSave> {
        let mut queue = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut messages = 0;
        let mut n = 0;
        while n < queue.len() && (n == 0 || messages + queue[n].items.len() <= MAX_GROUP_MESSAGES) {
            messages += queue[n].items.len();
            n += 1;
        }
        queue.drain(..n).collect()
    }
}

impl Messages<'_> {
    /// Saves `items` as one atomic batch, possibly together with other callers' concurrent
    /// saves (one commit, one fsync for all); the summary is this call's alone.
    pub(crate) async fn save_grouped(
        &self,
        items: Vec<(Message, StateChange)>,
    ) -> Result<SaveSummary, Error> {
        Ok(summarize(&self.save_grouped_each(items).await?))
    }

    /// [`Messages::save_grouped`], telling what became of each item, in order.
    pub(crate) async fn save_grouped_each(
        &self,
        items: Vec<(Message, StateChange)>,
    ) -> Result<Vec<Outcome>, Error> {
        let inner = self.inner();
        let (reply, mut answer) = oneshot::channel();
        inner.save_queue.push(QueuedSave {
            items,
            reply: Some(reply),
            store: Weak::clone(&inner.me),
        });
        loop {
            tokio::select! {
                biased;
                outcome = &mut answer => {
                    // A leader always answers before dropping the sender.
                    return outcome.map_err(|_| Error::Task)?;
                }
                mut writer = inner.writer.lock() => {
                    // Our save is in this group, or an earlier leader (who held the lock
                    // before us) has answered it already.
                    let group = inner.save_queue.take_group();
                    if !group.is_empty() {
                        self.save_group(&mut writer, group).await;
                    }
                }
            }
        }
    }

    /// Saves `group` (writer lock held) and answers every caller in it.
    async fn save_group(&self, writer: &mut WriterState, group: Vec<QueuedSave>) {
        if group.len() == 1 {
            for save in group {
                // The save keeps its messages until answered (it goes back to the queue if
                // this leader stops here).
                let outcome = self.save_locked_each(writer, save.items.clone()).await;
                save.answer(outcome);
            }
            return;
        }
        let lengths: Vec<usize> = group.iter().map(|s| s.items.len()).collect();
        let all: Vec<(Message, StateChange)> =
            group.iter().flat_map(|s| s.items.iter().cloned()).collect();
        match self.save_locked_each(writer, all).await {
            Ok(outcomes) => {
                let mut rest = outcomes.into_iter();
                for (save, len) in group.into_iter().zip(lengths) {
                    let mine: Vec<Outcome> = rest.by_ref().take(len).collect();
                    save.answer(Ok(mine));
                }
            }
            Err(_) => {
                // Nothing of the combined batch is stored (or, after an ambiguous sync
                // failure, all of it is and saving again changes nothing): each caller gets
                // the outcome of its own batch.
                for save in group {
                    let outcome = self.save_locked_each(writer, save.items.clone()).await;
                    save.answer(outcome);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report.

    use std::time::Duration;

    use tresor_backend::{
        Backend, Direction, Durability, Fault, FaultBackend, FaultKind, FaultPoint, KeyRange,
        MemoryBackend, WriteBatch,
    };

    use crate::{Error, Message, Options, Tresor};

    fn msg(id: &str, conv: &str, body: &str) -> Message {
        Message::new(
            id,
            conv,
            "alice",
            Some("bob".into()),
            1_700_000_000_000,
            body,
        )
    }

    /// A store over a memory backend whose commits are counted (the fault never fires).
    async fn counted() -> (Tresor, FaultBackend<MemoryBackend>) {
        let backend = FaultBackend::new(
            MemoryBackend::new(),
            Fault {
                point: FaultPoint::Write,
                nth: u64::MAX,
                kind: FaultKind::Io,
                sticky: false,
            },
        );
        let store = Tresor::with_backend(backend.clone(), "pass".into(), Options::default())
            .await
            .unwrap();
        (store, backend)
    }

    /// Saves `batches` concurrently while the writer lock is held, so that all of them queue,
    /// then releases it; returns each caller's result.
    async fn saved_together(
        store: &Tresor,
        batches: Vec<Vec<Message>>,
    ) -> Vec<Result<crate::SaveSummary, Error>> {
        let n = batches.len();
        let writer = store.inner.writer.lock().await;
        let tasks: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let store = store.clone();
                tokio::spawn(async move { store.messages().save_batch(&batch).await })
            })
            .collect();
        while store.inner.save_queue.0.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(writer);
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_saves_share_one_commit_and_keep_their_own_outcomes() {
        let (store, backend) = counted().await;
        store
            .messages()
            .save_batch(&[msg("old", "c0", "hello"), msg("old2", "c0", "there")])
            .await
            .unwrap();
        let before = backend.counted();
        let mut batches: Vec<Vec<Message>> = (0..8)
            .map(|i| {
                vec![
                    msg(&format!("m{i}a"), "c1", "x"),
                    msg(&format!("m{i}b"), "c2", "y"),
                ]
            })
            .collect();
        batches.push(vec![msg("old2", "c0", "there")]); // unchanged
        batches.push(vec![msg("old", "c0", "edited")]); // updated
        let results = saved_together(&store, batches).await;
        assert_eq!(
            backend.counted() - before,
            1,
            "one commit for the ten callers"
        );
        for r in &results[..8] {
            let s = r.as_ref().unwrap();
            assert_eq!((s.inserted, s.updated, s.unchanged), (2, 0, 0));
        }
        let s = results[8].as_ref().unwrap();
        assert_eq!((s.inserted, s.updated, s.unchanged), (0, 0, 1));
        let s = results[9].as_ref().unwrap();
        assert_eq!((s.inserted, s.updated, s.unchanged), (0, 1, 0));
        // Sequence numbers stay unique and dense; counts add up.
        let all = store.messages().recent(100, None).await.unwrap();
        assert_eq!(all.len(), 18);
        let mut seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..18).collect::<Vec<_>>());
        assert_eq!(store.stats().await.unwrap().messages, 18);
        let edited = store.messages().get("old").await.unwrap().unwrap();
        assert_eq!((edited.body.as_str(), edited.seq), ("edited", 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_caller_does_not_fail_the_others() {
        let (store, backend) = counted().await;
        store
            .messages()
            .save_batch(&[msg("bad", "c0", "hello")])
            .await
            .unwrap();
        // Damage the stored record: replacing it must open it, which now fails.
        let (key, mut value) = backend
            .scan("messages", KeyRange::all(), Direction::Forward, 1)
            .await
            .unwrap()
            .remove(0);
        let last = value.len() - 1;
        value[last] ^= 1;
        let mut damage = WriteBatch::new();
        damage.put("messages", key, value);
        backend.commit(damage, Durability::Immediate).await.unwrap();

        let results = saved_together(
            &store,
            vec![
                vec![msg("a", "c1", "x")],
                vec![msg("bad", "c0", "changed")],
                vec![msg("b", "c1", "y")],
            ],
        )
        .await;
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(
            matches!(results[1], Err(Error::Corrupted(_))),
            "{results:?}"
        );
        assert!(store.messages().get("a").await.unwrap().is_some());
        assert!(store.messages().get("b").await.unwrap().is_some());
    }
}
