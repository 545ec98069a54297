//! The message repository.

use std::collections::HashMap;

use tresor_backend::{Direction, KeyRange, WriteBatch};
use tresor_crypto::{TOKEN_LEN, Token};
use tresor_schema::catalog::{
    CONVERSATIONS, MESSAGES, META, MSG_BY_CONVERSATION, MSG_BY_PEER, MSG_BY_TIME, meta_keys,
};
use tresor_schema::index::{order_key, token_value};
use tresor_schema::messages::{
    conversation_token, index_entries, message_token, open_message, peer_ids, peer_token, position,
    seal_message, tokens,
};
use tresor_schema::{ConversationSummary, Message, PeerSummary, sealed};

use crate::store::Inner;
use crate::{Error, Tresor};

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

/// Per-id accumulated change of a conversation's or peer's message count within one batch.
type Deltas = HashMap<Token, (String, i64)>;

fn bump(deltas: &mut Deltas, token: Token, id: &str, by: i64) {
    deltas.entry(token).or_insert_with(|| (id.to_owned(), 0)).1 += by;
}

impl<'a> Messages<'a> {
    pub(crate) fn new(store: &'a Tresor) -> Self {
        Self { store }
    }

    fn inner(&self) -> &Inner {
        &self.store.inner
    }

    /// Saves one message (insert, or replace the message with the same id). Returns the
    /// message's sequence number.
    ///
    /// # Errors
    /// As [`Messages::save_batch`].
    pub async fn save(&self, message: &Message) -> Result<u64, Error> {
        self.save_batch(std::slice::from_ref(message)).await?;
        // The message now exists: read back its (possibly pre-existing) sequence number.
        self.get(&message.id)
            .await?
            .map(|m| m.seq)
            .ok_or_else(|| Error::Corrupted("saved message not found".into()))
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
        let mut summary = SaveSummary::default();
        if batch.is_empty() {
            return Ok(summary);
        }
        let inner = self.inner();
        let keys = &inner.keys;
        let mut writer = inner.writer.lock().await;
        writer.refresh(&*inner.backend).await?;
        let mut next_seq = writer.next_seq;

        let toks: Vec<_> = batch.iter().map(|m| tokens(keys, m)).collect();
        let ids: Vec<Vec<u8>> = toks.iter().map(|t| t.id.to_vec()).collect();
        let stored = inner.backend.get_many(MESSAGES, &ids).await?;

        let mut current: HashMap<Token, Option<Message>> = HashMap::new();
        let mut ops = WriteBatch::new();
        let mut conversations = Deltas::new();
        let mut peers = Deltas::new();

        for ((message, t), stored) in batch.iter().zip(&toks).zip(stored) {
            let previous = match current.get(&t.id) {
                Some(p) => p.clone(),
                None => match stored {
                    Some(bytes) => Some(open_message(keys, &t.id, &bytes)?),
                    None => None,
                },
            };
            let mut new = message.clone();
            match &previous {
                Some(p) if p.same_content(message) => {
                    summary.unchanged += 1;
                    current.insert(t.id, previous);
                    continue;
                }
                Some(p) => {
                    new.seq = p.seq;
                    for (table, key, _) in index_entries(p, &tokens(keys, p)) {
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
                }
                None => {
                    new.seq = next_seq;
                    next_seq += 1;
                    summary.inserted += 1;
                }
            }
            ops.put(MESSAGES, t.id, seal_message(keys, t, &new)?);
            for (table, key, value) in index_entries(&new, t) {
                ops.put(table, key, value);
            }
            bump(&mut conversations, t.conversation, &new.conversation_id, 1);
            for (token, id) in t.peers.iter().zip(peer_ids(&new)) {
                bump(&mut peers, *token, id, 1);
            }
            current.insert(t.id, Some(new));
        }

        self.apply_count_deltas(&mut ops, conversations, peers)
            .await?;
        if next_seq != writer.next_seq {
            ops.put(META, meta_keys::NEXT_SEQ, next_seq.to_le_bytes().to_vec());
        }
        if let Err(e) = inner.backend.commit(ops, inner.options.durability).await {
            writer.stale = true;
            return Err(e.into());
        }
        writer.next_seq = next_seq;
        inner.note_writes(summary.inserted + summary.updated);
        Ok(summary)
    }

    /// Adds to `ops` the new sealed summaries of every conversation and peer whose message
    /// count changed, deleting those whose count drops to zero.
    async fn apply_count_deltas(
        &self,
        ops: &mut WriteBatch,
        conversations: Deltas,
        peers: Deltas,
    ) -> Result<(), Error> {
        let keys = &self.inner().keys;
        for (table, deltas) in [
            (CONVERSATIONS, conversations),
            (tresor_schema::catalog::PEERS, peers),
        ] {
            let deltas: Vec<_> = deltas.into_iter().filter(|(_, (_, d))| *d != 0).collect();
            if deltas.is_empty() {
                continue;
            }
            let tokens: Vec<Vec<u8>> = deltas.iter().map(|(t, _)| t.to_vec()).collect();
            let stored = self.inner().backend.get_many(table, &tokens).await?;
            for ((token, (id, delta)), stored) in deltas.into_iter().zip(stored) {
                let old = match &stored {
                    Some(bytes) => open_count(keys, table, &token, bytes)?,
                    None => 0,
                };
                let new = old as i64 + delta;
                if new <= 0 {
                    ops.delete(table, token.to_vec());
                } else {
                    let value = if table == CONVERSATIONS {
                        sealed::seal(
                            keys,
                            table,
                            &token,
                            &ConversationSummary {
                                id,
                                message_count: new as u64,
                            },
                        )?
                    } else {
                        sealed::seal(
                            keys,
                            table,
                            &token,
                            &PeerSummary {
                                id,
                                message_count: new as u64,
                            },
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
        let keys = &self.inner().keys;
        let token = message_token(keys, id);
        match self.inner().backend.get(MESSAGES, &token).await? {
            Some(bytes) => Ok(Some(open_message(keys, &token, &bytes)?)),
            None => Ok(None),
        }
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
        let prefix = conversation_token(&self.inner().keys, conversation_id).to_vec();
        self.query(MSG_BY_CONVERSATION, prefix, limit, before).await
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
        let prefix = peer_token(&self.inner().keys, peer_id).to_vec();
        self.query(MSG_BY_PEER, prefix, limit, before).await
    }

    /// The newest `limit` messages of the whole store, older than `before` if given.
    ///
    /// # Errors
    /// As [`Messages::by_conversation`].
    pub async fn recent(&self, limit: usize, before: Option<&str>) -> Result<Vec<Message>, Error> {
        self.query(MSG_BY_TIME, Vec::new(), limit, before).await
    }

    async fn query(
        &self,
        table: &'static str,
        prefix: Vec<u8>,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Message>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let range = match before {
            None => KeyRange::prefix(&prefix),
            Some(id) => {
                let cursor = self.get(id).await?.ok_or(Error::CursorNotFound)?;
                let mut upper = prefix.clone();
                upper.extend_from_slice(&order_key(position(&cursor)));
                KeyRange::prefix_below(&prefix, upper)
            }
        };
        if let Some(found) = self.read_page(table, range.clone(), limit).await? {
            return Ok(found);
        }
        // A record vanished between the index scan and the record read: a concurrent delete.
        // Read again while holding the writer lock, which no write can interleave with.
        let _writer = self.inner().writer.lock().await;
        self.read_page(table, range, limit)
            .await?
            .ok_or_else(|| Error::Corrupted(format!("index {table} points at a missing message")))
    }

    /// One index scan and one batched record read; `None` if an index entry's record is gone.
    async fn read_page(
        &self,
        table: &'static str,
        range: KeyRange,
        limit: usize,
    ) -> Result<Option<Vec<Message>>, Error> {
        let inner = self.inner();
        let entries = inner
            .backend
            .scan(table, range, Direction::Reverse, limit)
            .await?;
        let ids = entries
            .iter()
            .map(|(_, v)| token_value(v, table).map(|t| t.to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        let records = inner.backend.get_many(MESSAGES, &ids).await?;
        let mut out = Vec::with_capacity(records.len());
        for ((id, record), (index_key, _)) in ids.iter().zip(records).zip(&entries) {
            let Some(bytes) = record else { return Ok(None) };
            let m = open_message(&inner.keys, id, &bytes)?;
            // Index keys are not authenticated: check the entry is where this (authentic)
            // record's entry belongs, so an altered index is an error, never a wrong answer.
            let t = tokens(&inner.keys, &m);
            if !index_entries(&m, &t)
                .iter()
                .any(|(tb, key, _)| *tb == table && key == index_key)
            {
                return Err(Error::Corrupted(format!(
                    "index {table} entry does not match its record"
                )));
            }
            out.push(m);
        }
        Ok(Some(out))
    }

    /// Deletes the message with id `id` and its index entries. Returns whether it existed.
    ///
    /// # Errors
    /// [`Error::Backend`] if the delete cannot be committed; [`Error::Corrupted`].
    pub async fn delete(&self, id: &str) -> Result<bool, Error> {
        let inner = self.inner();
        let keys = &inner.keys;
        let _writer = inner.writer.lock().await;
        let token = message_token(keys, id);
        let Some(bytes) = inner.backend.get(MESSAGES, &token).await? else {
            return Ok(false);
        };
        let m = open_message(keys, &token, &bytes)?;
        let t = tokens(keys, &m);
        let mut ops = WriteBatch::new();
        ops.delete(MESSAGES, token.to_vec());
        for (table, key, _) in index_entries(&m, &t) {
            ops.delete(table, key);
        }
        let mut conversations = Deltas::new();
        let mut peers = Deltas::new();
        bump(&mut conversations, t.conversation, &m.conversation_id, -1);
        for (token, pid) in t.peers.iter().zip(peer_ids(&m)) {
            bump(&mut peers, *token, pid, -1);
        }
        self.apply_count_deltas(&mut ops, conversations, peers)
            .await?;
        inner.backend.commit(ops, inner.options.durability).await?;
        inner.note_writes(1);
        Ok(true)
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
