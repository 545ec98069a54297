//! The message repository.

use std::collections::HashMap;
use std::sync::Arc;

use tresor_backend::WriteBatch;
use tresor_crypto::{TOKEN_LEN, Token};
use tresor_schema::catalog::{CONVERSATIONS, MESSAGES, META, meta_keys};
use tresor_schema::messages::{
    conversation_token, index_entries, message_token, open_message, peer_ids, peer_token,
    record_key, seal_message_with, tokens,
};
use tresor_schema::{ConversationSummary, Message, PeerSummary, sealed};

use crate::keys::Keyring;
use crate::message_ext::StateChange;
use crate::pending::{Pending, Reads};
use crate::store::{Inner, WriterState};
use crate::view::Walk;
use crate::{Error, Tresor};

/// Summaries read ahead by a save: table → token → value (`None`: known to be absent).
#[derive(Default)]
pub(crate) struct Prefetched(HashMap<&'static str, HashMap<Vec<u8>, Option<Vec<u8>>>>);

impl Prefetched {
    /// The values of `keys` in `table` if every one of them was read ahead.
    fn all(&self, table: &str, keys: &[Vec<u8>]) -> Option<Vec<Option<Vec<u8>>>> {
        let read = self.0.get(table)?;
        keys.iter().map(|k| read.get(k).cloned()).collect()
    }
}

/// A stored message and whether it lives under the previous key (during a rotation).
pub(crate) type Found = (Message, bool);

/// Opens a message record stored under `key`: with the current keys, or, during a rotation,
/// the previous ones. Returns the message and whether it was under the previous keys.
pub(crate) fn open_any(ring: &Keyring, key: &[u8], bytes: &[u8]) -> Result<Found, Error> {
    match open_message(&ring.current, key, bytes) {
        Ok(m) => Ok((m, false)),
        Err(e) => match &ring.previous {
            Some(prev) => Ok((open_message(prev, key, bytes)?, true)),
            None => Err(e.into()),
        },
    }
}

/// [`open_any`] for record bytes the caller owns and will not read again: decrypted in place
/// (no copy) when there is one key generation; during a rotation, when a failed attempt under
/// the current keys must leave the bytes for the previous ones, as [`open_any`].
pub(crate) fn open_any_owned(
    ring: &Keyring,
    key: &[u8],
    mut bytes: Vec<u8>,
) -> Result<Found, Error> {
    if ring.previous.is_some() {
        return open_any(ring, key, &bytes);
    }
    Ok((
        tresor_schema::messages::open_message_in_place(&ring.current, key, &mut bytes)?,
        false,
    ))
}

/// [`open_any`] for record bytes lent by the backend ([`tresor_backend::ReadView::scan_each`]):
/// copied into `buf` (reused from record to record) and decrypted there, when there is one
/// key generation; during a rotation, as [`open_any`].
pub(crate) fn open_any_lent(
    ring: &Keyring,
    key: &[u8],
    bytes: &[u8],
    buf: &mut Vec<u8>,
) -> Result<Found, Error> {
    if ring.previous.is_some() {
        return open_any(ring, key, bytes);
    }
    buf.clear();
    buf.extend_from_slice(bytes);
    Ok((
        tresor_schema::messages::open_message_in_place(&ring.current, key, buf)?,
        false,
    ))
}

/// What [`Messages::save_batch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaveSummary {
    /// Messages that were not in the store.
    pub inserted: u64,
    /// Messages that were in the store with different content and were replaced.
    pub updated: u64,
    /// Messages that were already in the store with the same content (nothing written).
    pub unchanged: u64,
}

/// The message repository of a [`Tresor`]: save, get, query and delete messages.
///
/// Every query returns messages **newest first**: by timestamp descending, and among messages
/// with equal timestamps in insertion order (the order they were first saved). A query's
/// `before` cursor is a message id; the page holds the messages that come after that message in
/// this order. Walking pages with the last id of each page as the next cursor returns every
/// message exactly once.
#[derive(Debug, Clone, Copy)]
pub struct Messages<'a> {
    store: &'a Tresor,
}

/// What a save did to one message, with the message's sequence number after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It was not in the store.
    Inserted(u64),
    /// It was, with other content, and was replaced (keeping its sequence number).
    Updated(u64),
    /// It was, with the same content: nothing written.
    Unchanged(u64),
}

impl Outcome {
    /// The message's sequence number.
    pub(crate) fn seq(self) -> u64 {
        match self {
            Outcome::Inserted(s) | Outcome::Updated(s) | Outcome::Unchanged(s) => s,
        }
    }
}

/// Counts outcomes into a summary.
pub(crate) fn summarize(outcomes: &[Outcome]) -> SaveSummary {
    let mut s = SaveSummary::default();
    for o in outcomes {
        match o {
            Outcome::Inserted(_) => s.inserted += 1,
            Outcome::Updated(_) => s.updated += 1,
            Outcome::Unchanged(_) => s.unchanged += 1,
        }
    }
    s
}

/// The next non-empty batch of `batches`; `None` at its end.
async fn next_batch<S>(batches: &mut std::pin::Pin<&mut S>) -> Option<Vec<Message>>
where
    S: futures_util::Stream<Item = Vec<Message>>,
{
    loop {
        match std::future::poll_fn(|cx| batches.as_mut().poll_next(cx)).await {
            Some(batch) if batch.is_empty() => continue,
            next => return next,
        }
    }
}

/// A write batch built by `Messages::build`, not yet committed.
struct Built {
    ops: WriteBatch,
    /// What becomes of each message, in batch order.
    outcomes: Vec<Outcome>,
    summary: SaveSummary,
    /// The next sequence number once the batch is committed.
    next_seq: u64,
}

/// Per-id accumulated change of a conversation's or peer's message count within one batch.
type Deltas = HashMap<Token, (String, i64)>;

fn bump(deltas: &mut Deltas, token: Token, id: &str, by: i64) {
    deltas.entry(token).or_insert_with(|| (id.to_owned(), 0)).1 += by;
}

impl<'a> Messages<'a> {
    pub(crate) fn new(store: &'a Tresor) -> Self {
        Self { store }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.store.inner
    }

    pub(crate) fn store(&self) -> &'a Tresor {
        self.store
    }

    /// Saves one message (insert, or replace the message with the same id). Returns the
    /// message's sequence number.
    ///
    /// # Errors
    /// As [`Messages::save_batch`].
    pub async fn save(&self, message: &Message) -> Result<u64, Error> {
        let outcomes = self
            .save_grouped_each(vec![(message.clone(), StateChange::Keep)])
            .await?;
        outcomes
            .first()
            .map(|o| o.seq())
            .ok_or_else(|| Error::Corrupted("a save of one message gave no outcome".into()))
    }

    /// Saves messages in one atomic write batch: either all are stored or none.
    ///
    /// A message whose id is already stored with the same content is left untouched (so
    /// importing the same data twice changes nothing); with different content it is replaced
    /// and keeps its sequence number. Within the batch, a later message with the same id wins.
    /// The write is as durable as [`crate::Options::durability`] (default: fsync before
    /// returning).
    ///
    /// # Errors
    /// [`Error::Backend`] if the batch cannot be committed (then nothing of it is stored);
    /// [`Error::Corrupted`] if a stored record it replaces does not open.
    pub async fn save_batch(&self, batch: &[Message]) -> Result<SaveSummary, Error> {
        if batch.is_empty() {
            return Ok(SaveSummary::default());
        }
        let items: Vec<(Message, StateChange)> = batch
            .iter()
            .map(|m| (m.clone(), StateChange::Keep))
            .collect();
        self.save_grouped(items).await
    }

    /// Saves the batches of the stream `batches` one after the other, each as
    /// [`Messages::save_batch`] would (one atomic write batch, as durable as
    /// [`crate::Options::durability`]), preparing each batch while the one before it commits:
    /// the bulk import path (the CLI's `import` uses it). A `Vec` of batches becomes a stream
    /// with `futures_util::stream::iter`, an async channel with `futures_util::stream::unfold`.
    ///
    /// Preparing a batch (reading what it replaces, sealing its records, updating counts) and
    /// committing the one before it run at the same time, so an import keeps two cores busy
    /// where a loop of `save_batch` calls keeps about one. The result is the same as that
    /// loop's: the next batch is prepared on the store *as the previous batch leaves it*
    /// (its reads see that batch's pending writes, `pending.rs`) and is submitted only after
    /// the previous one committed. If a commit starts a key rotation, the next batch is
    /// prepared again under the new keys.
    ///
    /// `saved` is called with each batch's summary once that batch is committed, in order
    /// (progress reporting; after an error it tells what was stored). Empty batches are
    /// skipped. The writer lock is held from the first batch to the end of the stream: other
    /// writes of this store wait meanwhile, so split an import that must not delay them into
    /// several calls. Returns the sum of the batches' summaries.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use tresor::{MemoryBackend, Message, Options, Tresor};
    ///
    /// let store = Tresor::with_backend(MemoryBackend::new(), "pass".into(), Options::default())
    ///     .await?;
    /// let batches: Vec<Vec<Message>> = (0..3)
    ///     .map(|b| {
    ///         (0..100)
    ///             .map(|i| {
    ///                 let id = format!("m{b}-{i}");
    ///                 Message::new(id, "room-1", "alice", None, 1_700_000_000_000 + i, "hi")
    ///             })
    ///             .collect()
    ///     })
    ///     .collect();
    /// let mut done = 0;
    /// let total = store
    ///     .messages()
    ///     .save_batches(futures_util::stream::iter(batches), |s| done += s.inserted)
    ///     .await?;
    /// assert_eq!((total.inserted, done), (300, 300));
    /// # Ok::<(), tresor::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`Messages::save_batch`], for the first batch that fails: that batch and every later
    /// one are not stored (the stream is not read further); every earlier one is, and was
    /// reported to `saved`.
    pub async fn save_batches<S, F>(&self, batches: S, mut saved: F) -> Result<SaveSummary, Error>
    where
        S: futures_util::Stream<Item = Vec<Message>>,
        F: FnMut(&SaveSummary),
    {
        let inner = self.inner();
        let mut batches = std::pin::pin!(batches);
        let mut total = SaveSummary::default();
        let Some(mut batch) = next_batch(&mut batches).await else {
            return Ok(total);
        };
        let mut writer = inner.writer.lock().await;
        let keep = |b: &[Message]| vec![StateChange::Keep; b.len()];
        let (mut ring, mut built) = self
            .build_current(&mut writer, &batch, keep(&batch))
            .await?;
        // The effect of the batch about to be committed, which the next one is built on. Each
        // is made while the batch before it commits (only the first one here), off the path
        // from one commit to the next (about 2 ms for 1,000 messages).
        let mut pending = Pending::of(&built.ops);
        loop {
            let mut ops = built.ops;
            let held = ops.len();
            let counted = crate::keys::begin_commit(&mut writer, &mut ops);
            for op in &ops.ops()[held..] {
                pending.apply(op);
            }
            let after = Reads::after(&inner.backend, Arc::new(pending));
            let commit = inner.backend.commit(ops, inner.options.durability);
            let prepare = async {
                let next = next_batch(&mut batches).await;
                let prepared = match &next {
                    Some(b) => Some(
                        self.build(&after, &ring, built.next_seq, b, keep(b))
                            .await
                            .map(|built| {
                                let pending = Pending::of(&built.ops);
                                (built, pending)
                            }),
                    ),
                    None => None,
                };
                (next, prepared)
            };
            let (result, (next, prepared)) = tokio::join!(commit, prepare);
            inner
                .after_commit_locked(&mut writer, result, counted)
                .await?;
            writer.next_seq = built.next_seq;
            inner.note_writes(built.summary.inserted + built.summary.updated);
            total.inserted += built.summary.inserted;
            total.updated += built.summary.updated;
            total.unchanged += built.summary.unchanged;
            saved(&built.summary);
            let Some(next) = next else {
                return Ok(total);
            };
            batch = next;
            // The preparation assumed the keys it was built under stay current; a rotation
            // begun by the commit (or counters to re-read) means building again, as a lone
            // save would.
            (built, pending) = match prepared {
                Some(Ok(prepared)) if inner.keyring().epoch == ring.epoch && !writer.stale => {
                    prepared
                }
                _ => {
                    let built;
                    (ring, built) = self
                        .build_current(&mut writer, &batch, keep(&batch))
                        .await?;
                    let pending = Pending::of(&built.ops);
                    (built, pending)
                }
            };
        }
    }

    /// [`Messages::save_batch`] with the writer lock held, each message with what becomes of
    /// its extended state (`message_ext.rs`).
    pub(crate) async fn save_locked(
        &self,
        writer: &mut WriterState,
        items: Vec<(Message, StateChange)>,
    ) -> Result<SaveSummary, Error> {
        Ok(summarize(&self.save_locked_each(writer, items).await?))
    }

    /// [`Messages::save_locked`], telling what became of each item, in order.
    pub(crate) async fn save_locked_each(
        &self,
        writer: &mut WriterState,
        items: Vec<(Message, StateChange)>,
    ) -> Result<Vec<Outcome>, Error> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (batch, changes): (Vec<Message>, Vec<StateChange>) = items.into_iter().unzip();
        let inner = self.inner();
        let (_, built) = self.build_current(writer, &batch, changes).await?;
        inner.commit_locked(writer, built.ops).await?;
        writer.next_seq = built.next_seq;
        inner.note_writes(built.summary.inserted + built.summary.updated);
        Ok(built.outcomes)
    }

    /// Brings the writer state up to date (counters a commit left in doubt, a rotation of the
    /// typed tables in progress), then builds `batch` on the store itself under the current
    /// keys, which it returns with the batch. Taken under the writer lock, the keys cannot
    /// change until the batch is committed.
    async fn build_current(
        &self,
        writer: &mut WriterState,
        batch: &[Message],
        changes: Vec<StateChange>,
    ) -> Result<(Arc<Keyring>, Built), Error> {
        let inner = self.inner();
        writer.refresh(&*inner.backend).await?;
        // Conversations (typed records) are updated in the same batch: under the current keys.
        inner.finish_typed_rotation_locked(writer).await?;
        let ring = inner.keyring();
        let built = self
            .build(
                &Reads::direct(&inner.backend),
                &ring,
                writer.next_seq,
                batch,
                changes,
            )
            .await?;
        Ok((ring, built))
    }

    /// Builds the write batch that saves `batch` (each message with what becomes of its state,
    /// `changes`) on the store as `reads` sees it, under the keys of `ring`, numbering new
    /// messages from `next_seq`. Writes nothing; the caller holds the writer lock and commits.
    async fn build(
        &self,
        reads: &Reads,
        ring: &Keyring,
        next_seq: u64,
        batch: &[Message],
        changes: Vec<StateChange>,
    ) -> Result<Built, Error> {
        let mut summary = SaveSummary::default();
        let mut outcomes = Vec::with_capacity(batch.len());
        let inner = self.inner();
        let keys = &ring.current;
        let first_seq = next_seq;
        let mut next_seq = next_seq;

        let toks: Vec<_> = batch.iter().map(|m| tokens(keys, m)).collect();
        let ids: Vec<Vec<u8>> = toks.iter().map(|t| t.id.to_vec()).collect();
        let mut typed = crate::table::TypedBatch::reading(reads.clone());
        // Every read a save of new messages needs, in one read view (one thread hop instead
        // of one per table): the messages, their conversations' typed records, states and
        // conversation states, and the conversation and peer summaries. Updates may need
        // more (the old message's conversation and peers), read later as before.
        let (stored, counts) = self
            .prefetch(reads, keys, batch, &toks, ids, &mut typed)
            .await?;
        // During a rotation, a message not yet migrated lives under its previous token.
        let stored_old = match &ring.previous {
            Some(prev) => {
                let old_ids: Vec<Vec<u8>> = batch
                    .iter()
                    .map(|m| message_token(prev, &m.id).to_vec())
                    .collect();
                reads
                    .read(move |view| crate::view::stored_records(view, &old_ids))
                    .await?
            }
            None => vec![None; batch.len()],
        };

        // Every message version the loop finds or writes, in batch order; `current` (the
        // latest version of each id in this batch) and `states` point into it, so that a
        // message is cloned once, into `new`, and not again for each list it is in.
        let mut arena: Vec<Found> = Vec::with_capacity(batch.len());
        let mut current: HashMap<Token, Option<usize>> = HashMap::new();
        let mut ops = WriteBatch::new();
        let mut conversations = Deltas::new();
        let mut peers = Deltas::new();

        // (message as stored, by its place in `arena`; what becomes of its state), in batch
        // order.
        let mut states: Vec<(usize, StateChange)> = Vec::new();
        for ((((message, t), stored), stored_old), change) in batch
            .iter()
            .zip(&toks)
            .zip(stored)
            .zip(stored_old)
            .zip(changes)
        {
            let previous = match current.get(&t.id) {
                // The same id earlier in this batch (rare): its version as written then.
                Some(p) => p.map(|i| arena[i].clone()),
                None => match (stored, stored_old, &ring.previous) {
                    (Some(record), _, _) => {
                        Some((crate::view::open_stored(keys, &message.id, &record)?, false))
                    }
                    (None, Some(record), Some(prev)) => {
                        Some((crate::view::open_stored(prev, &message.id, &record)?, true))
                    }
                    _ => None,
                },
            };
            if let Some((p, _)) = &previous
                && p.same_content(message)
            {
                summary.unchanged += 1;
                outcomes.push(Outcome::Unchanged(p.seq));
                let i = arena.len();
                arena.extend(previous);
                if !matches!(change, StateChange::Keep) {
                    states.push((i, change));
                }
                current.insert(t.id, Some(i));
                continue;
            }
            let mut new = message.clone();
            match &previous {
                Some((p, old)) => {
                    new.seq = p.seq;
                    let gen_keys = ring.generation(*old);
                    // The record moves when its position changes (or its keys, in a rotation).
                    let pt = tokens(gen_keys, p);
                    ops.delete(MESSAGES, record_key(p, &pt));
                    for (table, key, _) in index_entries(p, &pt) {
                        ops.delete(table, key);
                    }
                    bump(
                        &mut conversations,
                        conversation_token(keys, &p.conversation_id),
                        &p.conversation_id,
                        -1,
                    );
                    for id in peer_ids(p) {
                        bump(&mut peers, peer_token(keys, id), id, -1);
                    }
                    summary.updated += 1;
                    outcomes.push(Outcome::Updated(p.seq));
                }
                None => {
                    new.seq = next_seq;
                    next_seq += 1;
                    summary.inserted += 1;
                    outcomes.push(Outcome::Inserted(new.seq));
                }
            }
            let key = record_key(&new, t);
            let sealed = seal_message_with(keys, &key, &new, inner.padded)?;
            ops.put(MESSAGES, key, sealed);
            for (table, key, value) in index_entries(&new, t) {
                ops.put(table, key, value);
            }
            bump(&mut conversations, t.conversation, &new.conversation_id, 1);
            for (token, id) in t.peers.iter().zip(peer_ids(&new)) {
                bump(&mut peers, *token, id, 1);
            }
            let i = arena.len();
            arena.push((new, false));
            states.push((i, change));
            current.insert(t.id, Some(i));
        }

        let written: Vec<&Message> = current
            .values()
            .filter_map(|f| f.map(|i| &arena[i].0))
            .collect();
        let states: Vec<(&Message, StateChange)> = states
            .into_iter()
            .map(|(i, change)| (&arena[i].0, change))
            .collect();
        crate::conversations::fold_messages(inner, keys, &mut typed, &written, &mut ops).await?;
        crate::message_ext::apply_states(inner, keys, &mut typed, states, &mut ops).await?;
        self.apply_count_deltas(reads, ring, &mut ops, conversations, peers, &counts)
            .await?;
        if next_seq != first_seq {
            ops.put(META, meta_keys::NEXT_SEQ, next_seq.to_le_bytes().to_vec());
        }
        Ok(Built {
            ops,
            outcomes,
            summary,
            next_seq,
        })
    }

    /// Reads, in one read view, what saving `batch` reads: the stored messages under the
    /// message tokens `ids` (returned, in order, with their record keys), the typed records of
    /// the batch's conversations, message states and conversation states (seeded into
    /// `typed`), and the conversation and peer summaries under the batch's tokens (returned by
    /// table and token). The writer lock is held, so the view sees the state the batch will be
    /// applied to.
    async fn prefetch(
        &self,
        reads: &Reads,
        keys: &tresor_crypto::StoreKeys,
        batch: &[Message],
        toks: &[tresor_schema::messages::MessageTokens],
        ids: Vec<Vec<u8>>,
        typed: &mut crate::table::TypedBatch,
    ) -> Result<(Vec<crate::view::Stored>, Prefetched), Error> {
        use tresor_schema::message_state::{CONVERSATION_STATES, MESSAGE_STATES};
        use tresor_schema::typed::record_key;
        let conversation_ids: std::collections::BTreeSet<&str> =
            batch.iter().map(|m| m.conversation_id.as_str()).collect();
        let rks: Vec<Vec<u8>> = conversation_ids
            .iter()
            .map(|c| {
                record_key(
                    keys,
                    tresor_schema::records::CONVERSATIONS.name,
                    c.as_bytes(),
                )
            })
            .chain(
                batch
                    .iter()
                    .map(|m| record_key(keys, MESSAGE_STATES.name, m.id.as_bytes())),
            )
            .chain(
                conversation_ids
                    .iter()
                    .map(|c| record_key(keys, CONVERSATION_STATES.name, c.as_bytes())),
            )
            .collect();
        let mut conversation_tokens: Vec<Vec<u8>> =
            toks.iter().map(|t| t.conversation.to_vec()).collect();
        let mut peer_tokens: Vec<Vec<u8>> = toks
            .iter()
            .flat_map(|t| t.peers.iter().map(|p| p.to_vec()))
            .collect();
        for tokens in [&mut conversation_tokens, &mut peer_tokens] {
            tokens.sort_unstable();
            tokens.dedup();
        }
        let rks_read = rks.clone();
        let (stored, found, summaries) = reads
            .read(move |view| {
                let stored = crate::view::stored_records(view, &ids)?;
                let found = view.get_many(tresor_schema::catalog::TYPED_RECORDS, &rks_read)?;
                let mut summaries = HashMap::with_capacity(2);
                for (table, tokens) in [
                    (CONVERSATIONS, conversation_tokens),
                    (tresor_schema::catalog::PEERS, peer_tokens),
                ] {
                    let values = view.get_many(table, &tokens)?;
                    summaries.insert(table, tokens.into_iter().zip(values).collect());
                }
                Ok((stored, found, summaries))
            })
            .await?;
        typed.seed(keys, rks, found)?;
        Ok((stored, Prefetched(summaries)))
    }

    /// Adds to `ops` the new sealed summaries of every conversation and peer whose message
    /// count changed, deleting those whose count drops to zero. During a rotation a summary
    /// still under its previous token is moved to its new token (it carries the whole count).
    /// Summaries in `prefetched` are not read again.
    async fn apply_count_deltas(
        &self,
        reads: &Reads,
        ring: &Keyring,
        ops: &mut WriteBatch,
        conversations: Deltas,
        peers: Deltas,
        prefetched: &Prefetched,
    ) -> Result<(), Error> {
        let keys = &ring.current;
        let padded = self.inner().padded;
        for (table, deltas) in [
            (CONVERSATIONS, conversations),
            (tresor_schema::catalog::PEERS, peers),
        ] {
            let deltas: Vec<_> = deltas.into_iter().filter(|(_, (_, d))| *d != 0).collect();
            if deltas.is_empty() {
                continue;
            }
            let tokens: Vec<Vec<u8>> = deltas.iter().map(|(t, _)| t.to_vec()).collect();
            let stored = match prefetched.all(table, &tokens) {
                Some(stored) => stored,
                None => reads.get_many(table, &tokens).await?,
            };
            let stored_old = match &ring.previous {
                Some(prev) => {
                    let old: Vec<Vec<u8>> = deltas
                        .iter()
                        .map(|(_, (id, _))| summary_token(prev, table, id).to_vec())
                        .collect();
                    reads.get_many(table, &old).await?
                }
                None => vec![None; deltas.len()],
            };
            for (((token, (id, delta)), stored), stored_old) in
                deltas.into_iter().zip(stored).zip(stored_old)
            {
                let old = match (&stored, &stored_old, &ring.previous) {
                    (Some(bytes), _, _) => open_count(keys, table, &token, bytes)?,
                    (None, Some(bytes), Some(prev)) => {
                        let old_token = summary_token(prev, table, &id);
                        ops.delete(table, old_token.to_vec());
                        open_count(prev, table, &old_token, bytes)?
                    }
                    _ => 0,
                };
                let new = old as i64 + delta;
                if new <= 0 {
                    ops.delete(table, token.to_vec());
                } else {
                    let value = if table == CONVERSATIONS {
                        sealed::seal_with(
                            keys,
                            table,
                            &token,
                            &ConversationSummary {
                                id,
                                message_count: new as u64,
                            },
                            padded,
                        )?
                    } else {
                        sealed::seal_with(
                            keys,
                            table,
                            &token,
                            &PeerSummary {
                                id,
                                message_count: new as u64,
                            },
                            padded,
                        )?
                    };
                    ops.put(table, token.to_vec(), value);
                }
            }
        }
        Ok(())
    }

    /// Reads the message with id `id`.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if its record does not authenticate; [`Error::Backend`].
    pub async fn get(&self, id: &str) -> Result<Option<Message>, Error> {
        let id = id.to_owned();
        crate::view::read(&self.store.inner, move |inner| {
            let (view, ring) = crate::view::consistent_view(inner)?;
            Ok(crate::view::get_in(&*view, &ring, &id)?.map(|(m, _)| m))
        })
        .await
    }

    /// Looks `id` up under the current token, then (during a rotation) the previous one, with
    /// the keys `ring` (the writer lock held, so that they are the store's keys).
    pub(crate) async fn get_with(
        &self,
        ring: &Arc<Keyring>,
        id: &str,
    ) -> Result<Option<Found>, Error> {
        let (ring, id) = (Arc::clone(ring), id.to_owned());
        crate::view::read(&self.store.inner, move |inner| {
            let view = inner.backend.read_view()?;
            crate::view::get_in(&*view, &ring, &id)
        })
        .await
    }

    /// The newest `limit` messages of conversation `conversation_id`, older than the message
    /// `before` if given (see the type's docs for the order).
    ///
    /// # Errors
    /// [`Error::CursorNotFound`] if `before` names no stored message; [`Error::Corrupted`];
    /// [`Error::Backend`].
    pub async fn by_conversation(
        &self,
        conversation_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Message>, Error> {
        self.query(
            Walk::Conversation(conversation_id.to_owned()),
            limit,
            before,
        )
        .await
    }

    /// The newest `limit` messages sent or received by peer `peer_id`, older than `before` if
    /// given.
    ///
    /// # Errors
    /// As [`Messages::by_conversation`].
    pub async fn by_peer(
        &self,
        peer_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Message>, Error> {
        self.query(Walk::Peer(peer_id.to_owned()), limit, before)
            .await
    }

    /// The newest `limit` messages of the whole store, older than `before` if given.
    ///
    /// # Errors
    /// As [`Messages::by_conversation`].
    pub async fn recent(&self, limit: usize, before: Option<&str>) -> Result<Vec<Message>, Error> {
        self.query(Walk::Time, limit, before).await
    }

    /// Up to `limit` messages in storage order (stable: by blinded conversation token, which is
    /// unrelated to the conversation id, and within a conversation oldest first), after the
    /// message `after` if given: the fastest way to read
    /// every message (an export, a full-text indexer). Walking pages with the last id of each
    /// page as the next cursor returns every message exactly once, except during a key
    /// rotation, which moves records between calls (walk one [`crate::BlockingView`] for an
    /// exact set then).
    ///
    /// # Errors
    /// [`Error::CursorNotFound`] if `after` names no stored message; [`Error::Corrupted`];
    /// [`Error::Backend`].
    pub async fn scan(&self, limit: usize, after: Option<&str>) -> Result<Vec<Message>, Error> {
        let after = after.map(str::to_owned);
        crate::view::read(&self.store.inner, move |inner| {
            let (view, ring) = crate::view::consistent_view(inner)?;
            crate::view::scan_in(&*view, &ring, limit, after.as_deref())
        })
        .await
    }

    /// One page of `walk`, newest first: the cursor lookup, the index scans and the record
    /// reads in one consistent view (one thread hop).
    async fn query(
        &self,
        walk: Walk,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Message>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let before = before.map(str::to_owned);
        crate::view::read(&self.store.inner, move |inner| {
            let (view, ring) = crate::view::consistent_view(inner)?;
            crate::view::page_in(&*view, &ring, &walk, limit, before.as_deref())
        })
        .await
    }

    /// Deletes the message with id `id` and its index entries. Returns whether it existed.
    ///
    /// # Errors
    /// [`Error::Backend`] if the delete cannot be committed; [`Error::Corrupted`].
    pub async fn delete(&self, id: &str) -> Result<bool, Error> {
        let inner = self.inner();
        let mut writer = inner.writer.lock().await;
        writer.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut writer).await?;
        let ring = inner.keyring();
        let Some(found) = self.get_with(&ring, id).await? else {
            return Ok(false);
        };
        let mut ops = WriteBatch::new();
        self.delete_found(&ring, vec![found], &mut ops).await?;
        inner.commit_locked(&mut writer, ops).await?;
        inner.note_writes(1);
        Ok(true)
    }

    /// Adds to `ops` the deletion of the messages `found` (writer lock held, typed tables
    /// under the current keys): records, index entries, counts, extended state and unread
    /// counts, all in the one batch.
    pub(crate) async fn delete_found(
        &self,
        ring: &Keyring,
        found: Vec<Found>,
        ops: &mut WriteBatch,
    ) -> Result<(), Error> {
        let mut conversations = Deltas::new();
        let mut peers = Deltas::new();
        for (m, old) in &found {
            let t = tokens(ring.generation(*old), m);
            ops.delete(MESSAGES, record_key(m, &t));
            for (table, key, _) in index_entries(m, &t) {
                ops.delete(table, key);
            }
            // Counts are kept under the current tokens (apply_count_deltas moves old
            // summaries).
            let t = tokens(&ring.current, m);
            bump(&mut conversations, t.conversation, &m.conversation_id, -1);
            for (token, pid) in t.peers.iter().zip(peer_ids(m)) {
                bump(&mut peers, *token, pid, -1);
            }
        }
        let ids: Vec<&str> = found.iter().map(|(m, _)| m.id.as_str()).collect();
        crate::message_ext::delete_states(
            self.inner(),
            &ring.current,
            &mut crate::table::TypedBatch::default(),
            &ids,
            ops,
        )
        .await?;
        let reads = Reads::direct(&self.inner().backend);
        self.apply_count_deltas(
            &reads,
            ring,
            ops,
            conversations,
            peers,
            &Prefetched::default(),
        )
        .await
    }
}

/// The token of a conversation (`conversations`) or peer (`peers`) summary id.
fn summary_token(keys: &tresor_crypto::StoreKeys, table: &str, id: &str) -> Token {
    if table == CONVERSATIONS {
        conversation_token(keys, id)
    } else {
        peer_token(keys, id)
    }
}

fn open_count(
    keys: &tresor_crypto::StoreKeys,
    table: &'static str,
    token: &[u8; TOKEN_LEN],
    bytes: &[u8],
) -> Result<u64, Error> {
    Ok(if table == CONVERSATIONS {
        sealed::open::<ConversationSummary>(keys, table, token, bytes)?.message_count
    } else {
        sealed::open::<PeerSummary>(keys, table, token, bytes)?.message_count
    })
}
