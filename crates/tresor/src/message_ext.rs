//! Messages, extended (schema v3): delivery status, threads, edits, redaction, media
//! references, `delete_before`, per-conversation retention, disappearing messages and their
//! sweeper, unread counts.
//!
//! The extended state of a message is its companion typed record
//! ([`tresor_schema::message_state::MessageState`], table `message_state`), and the unread count
//! and retention policy of a conversation are a
//! [`tresor_schema::message_state::ConversationState`] (table `conversation_state`). Every
//! message write puts them in the same atomic batch as the message, its index entries and
//! counts, so they never disagree after a crash. Bulk operations (mark read, `delete_before`,
//! the sweeper) run in batches of at most [`SWEEP_BATCH`] messages, each one atomic write
//! under the writer lock, so writers never wait for more than one batch.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use serde::Serialize;
use tresor_backend::{Direction, KeyRange, WriteBatch};
use tresor_crypto::StoreKeys;
use tresor_schema::catalog::{CONVERSATIONS, MESSAGES, MSG_BY_TIME};
use tresor_schema::index::{Position, order_key};
use tresor_schema::message_state::{
    BY_EXPIRY, BY_STATUS, BY_THREAD, CONVERSATION_STATES, ConversationState, DeliveryStatus, Edit,
    MESSAGE_STATES, MediaRef, MessageState, Redaction, Retention, UNREAD, WITH_RETENTION,
};
use tresor_schema::messages::{conversation_token, indexed_record_key};
use tresor_schema::typed::{Envelope, KeyPart, record_key};
use tresor_schema::{ConversationSummary, Message, sealed};

use crate::messages::{Found, open_any_owned};
use crate::store::Inner;
use crate::table::TypedBatch;
use crate::{Error, Messages, Order, SaveSummary, Tresor};

/// Messages per atomic batch of a bulk operation (mark read, `delete_before`, a sweep).
pub const SWEEP_BATCH: usize = 256;

/// What a message carries besides its [`Message`] record, given when saving it
/// ([`Messages::save_with`]). The default is an outgoing, `Delivered` message with no
/// relation, attachment or expiry (what [`Messages::save`] stores).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageExtras {
    /// Whether the message was received (it then counts as unread until it is `Read`).
    pub incoming: bool,
    /// Its delivery status.
    pub status: DeliveryStatus,
    /// The message it replies to (its thread root).
    pub relates_to: Option<String>,
    /// Its attachments.
    pub media: Vec<MediaRef>,
    /// When it disappears, ms since the Unix epoch.
    pub expires_ms: Option<i64>,
}

impl Default for MessageExtras {
    fn default() -> Self {
        Self {
            incoming: false,
            status: DeliveryStatus::Delivered,
            relates_to: None,
            media: Vec::new(),
            expires_ms: None,
        }
    }
}

impl MessageExtras {
    /// A received message: incoming, `Delivered` (unread).
    pub fn incoming() -> Self {
        Self {
            incoming: true,
            ..Self::default()
        }
    }

    /// An outgoing message with status `status`.
    pub fn outgoing(status: DeliveryStatus) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }

    /// Sets the delivery status.
    pub fn with_status(mut self, status: DeliveryStatus) -> Self {
        self.status = status;
        self
    }

    /// Makes it a reply in the thread of message `root`.
    pub fn replying_to(mut self, root: impl Into<String>) -> Self {
        self.relates_to = Some(root.into());
        self
    }

    /// Adds an attachment.
    pub fn with_media(mut self, media: MediaRef) -> Self {
        self.media.push(media);
        self
    }

    /// Makes it disappear at `expires_ms` (ms since the Unix epoch).
    pub fn expiring_at(mut self, expires_ms: i64) -> Self {
        self.expires_ms = Some(expires_ms);
        self
    }

    fn apply_to(self, s: &mut MessageState) {
        s.incoming = self.incoming;
        s.status = self.status;
        s.relates_to = self.relates_to;
        s.media = self.media;
        s.expires_ms = self.expires_ms;
    }
}

/// What becomes of a message's extended state when the message is saved.
#[derive(Debug, Clone)]
pub(crate) enum StateChange {
    /// Kept as stored (the default state for a message that has none).
    Keep,
    /// The message's extras replaced (edits and redaction kept).
    Extras(MessageExtras),
    /// Replaced as a whole.
    Set(Box<MessageState>),
}

/// How many messages one `Messages::delete_page` may delete.
#[derive(Debug, Clone, Copy)]
enum Limit<'a> {
    /// At most this many.
    Fixed(usize),
    /// As many as conversation `conversation` holds beyond `max` (at most [`SWEEP_BATCH`]),
    /// counted under the writer lock.
    Excess { conversation: &'a str, max: u64 },
}

/// What one sweep ([`Messages::sweep`]) deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SweepReport {
    /// Disappearing messages whose expiry had passed.
    pub expired: u64,
    /// Messages beyond a conversation's retention policy (too old or too many).
    pub retention: u64,
    /// Whether the sweep was skipped because a key rotation is in progress (the next one
    /// sweeps).
    pub skipped: bool,
}

fn decode_state(env: &Envelope) -> Result<MessageState, Error> {
    if env.table != MESSAGE_STATES.name {
        return Err(Error::Corrupted(
            "message state holds another record".into(),
        ));
    }
    Ok(env.decode()?)
}

async fn load_state(
    inner: &Inner,
    keys: &StoreKeys,
    typed: &mut TypedBatch,
    id: &str,
) -> Result<Option<MessageState>, Error> {
    let rk = record_key(keys, MESSAGE_STATES.name, id.as_bytes());
    match typed.load(inner, keys, &rk).await? {
        Some(env) => Ok(Some(decode_state(&env)?)),
        None => Ok(None),
    }
}

/// Adds to `ops` the extended state of every saved message (`states`: the message as stored
/// and what becomes of its state) and the unread counts that follow (writer lock held, typed
/// tables under `keys`).
pub(crate) async fn apply_states(
    inner: &Inner,
    keys: &StoreKeys,
    typed: &mut TypedBatch,
    states: Vec<(&Message, StateChange)>,
    ops: &mut WriteBatch,
) -> Result<(), Error> {
    if states.is_empty() {
        return Ok(());
    }
    let rks: Vec<Vec<u8>> = states
        .iter()
        .map(|(m, _)| record_key(keys, MESSAGE_STATES.name, m.id.as_bytes()))
        .collect();
    typed.preload(inner, keys, &rks).await?;
    let mut unread: BTreeMap<String, i64> = BTreeMap::new();
    for ((m, change), rk) in states.into_iter().zip(&rks) {
        let old = match typed.load(inner, keys, rk).await? {
            Some(env) => Some(decode_state(&env)?),
            None => None,
        };
        // A message kept as it is with no state record keeps none: its state is the default,
        // which is not unread (`default_state_is_read`), so nothing to write or count. (The
        // common case of a save: an import writes no state record.)
        if old.is_none() && matches!(change, StateChange::Keep) {
            continue;
        }
        let default = MessageState::default_for(m);
        let mut s = match change {
            StateChange::Keep => old.clone().unwrap_or_else(|| default.clone()),
            StateChange::Extras(x) => {
                let mut s = old.clone().unwrap_or_else(|| default.clone());
                x.apply_to(&mut s);
                s
            }
            StateChange::Set(s) => *s,
        };
        s.message_id.clone_from(&m.id);
        s.follow(m);
        if let Some(o) = &old
            && o.is_unread()
        {
            *unread.entry(o.conversation_id.clone()).or_default() -= 1;
        }
        if s.is_unread() {
            *unread.entry(s.conversation_id.clone()).or_default() += 1;
        }
        // States are sparse: a message whose state is the default has no record (it reads as
        // `MessageState::default_for`), which keeps a plain message at one sealed record.
        if s == default {
            if old.is_some() {
                typed
                    .delete(inner, keys, MESSAGE_STATES.name, m.id.as_bytes(), ops)
                    .await?;
            }
        } else {
            typed.put(inner, keys, &MESSAGE_STATES, &s, ops).await?;
        }
    }
    apply_unread(inner, keys, typed, unread, ops).await
}

/// Adds to `ops` the deletion of the extended states of messages `ids` and the unread counts
/// that follow.
pub(crate) async fn delete_states(
    inner: &Inner,
    keys: &StoreKeys,
    typed: &mut TypedBatch,
    ids: &[&str],
    ops: &mut WriteBatch,
) -> Result<(), Error> {
    let rks: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| record_key(keys, MESSAGE_STATES.name, id.as_bytes()))
        .collect();
    typed.preload(inner, keys, &rks).await?;
    let mut unread: BTreeMap<String, i64> = BTreeMap::new();
    for id in ids {
        if let Some(s) = load_state(inner, keys, typed, id).await? {
            if s.is_unread() {
                *unread.entry(s.conversation_id.clone()).or_default() -= 1;
            }
            typed
                .delete(inner, keys, MESSAGE_STATES.name, id.as_bytes(), ops)
                .await?;
        }
    }
    apply_unread(inner, keys, typed, unread, ops).await
}

/// Applies unread-count changes per conversation (never below zero); a conversation state
/// left empty is deleted.
async fn apply_unread(
    inner: &Inner,
    keys: &StoreKeys,
    typed: &mut TypedBatch,
    deltas: BTreeMap<String, i64>,
    ops: &mut WriteBatch,
) -> Result<(), Error> {
    let rks: Vec<Vec<u8>> = deltas
        .iter()
        .filter(|(_, d)| **d != 0)
        .map(|(id, _)| record_key(keys, CONVERSATION_STATES.name, id.as_bytes()))
        .collect();
    typed.preload(inner, keys, &rks).await?;
    for (conversation, delta) in deltas {
        if delta == 0 {
            continue;
        }
        let mut c = load_conversation_state(inner, keys, typed, &conversation)
            .await?
            .unwrap_or_else(|| ConversationState::empty(&conversation));
        c.unread = c.unread.saturating_add_signed(delta);
        put_conversation_state(inner, keys, typed, &c, ops).await?;
    }
    Ok(())
}

async fn load_conversation_state(
    inner: &Inner,
    keys: &StoreKeys,
    typed: &mut TypedBatch,
    id: &str,
) -> Result<Option<ConversationState>, Error> {
    let rk = record_key(keys, CONVERSATION_STATES.name, id.as_bytes());
    match typed.load(inner, keys, &rk).await? {
        Some(env) if env.table == CONVERSATION_STATES.name => Ok(Some(env.decode()?)),
        Some(_) => Err(Error::Corrupted(
            "conversation state holds another record".into(),
        )),
        None => Ok(None),
    }
}

async fn put_conversation_state(
    inner: &Inner,
    keys: &StoreKeys,
    typed: &mut TypedBatch,
    c: &ConversationState,
    ops: &mut WriteBatch,
) -> Result<(), Error> {
    if c.is_empty() {
        typed
            .delete(
                inner,
                keys,
                CONVERSATION_STATES.name,
                c.conversation_id.as_bytes(),
                ops,
            )
            .await?;
    } else {
        typed.put(inner, keys, &CONVERSATION_STATES, c, ops).await?;
    }
    Ok(())
}

/// The current time in ms since the Unix epoch (0 before 1970).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The order key just below every entry of `timestamp_ms` and later: an exclusive upper bound
/// selecting messages older than `timestamp_ms`.
fn older_than(timestamp_ms: i64) -> [u8; 16] {
    order_key(Position {
        timestamp_ms,
        seq: u64::MAX,
    })
}

impl Messages<'_> {
    /// Saves `message` with its extended state `extras` (status, direction, thread, media,
    /// expiry) in one atomic batch with its index entries, counts and the unread count of its
    /// conversation. Edits and redaction of a stored message are kept. Returns its sequence
    /// number.
    ///
    /// # Errors
    /// As [`Messages::save_batch`].
    pub async fn save_with(&self, message: &Message, extras: &MessageExtras) -> Result<u64, Error> {
        self.save_batch_with(&[(message.clone(), extras.clone())])
            .await?;
        self.get(&message.id)
            .await?
            .map(|m| m.seq)
            .ok_or_else(|| Error::Corrupted("saved message not found".into()))
    }

    /// [`Messages::save_batch`] with extended state: all or nothing, in one atomic batch.
    ///
    /// # Errors
    /// As [`Messages::save_batch`].
    pub async fn save_batch_with(
        &self,
        batch: &[(Message, MessageExtras)],
    ) -> Result<SaveSummary, Error> {
        let items = batch
            .iter()
            .map(|(m, x)| (m.clone(), StateChange::Extras(x.clone())))
            .collect();
        self.save_grouped(items).await
    }

    /// The extended state of message `id` (`None` if there is no such message). A message
    /// stored without one reads as [`MessageState::default_for`].
    ///
    /// # Errors
    /// [`Error::Corrupted`]; [`Error::Backend`].
    pub async fn state(&self, id: &str) -> Result<Option<MessageState>, Error> {
        if let Some(s) = self.store().table(&MESSAGE_STATES).get(id).await? {
            return Ok(Some(s));
        }
        Ok(self.get(id).await?.map(|m| MessageState::default_for(&m)))
    }

    /// Runs `change` on the state of message `id` under the writer lock and stores the
    /// result (and its message, if `body` is given) in one atomic batch. Returns false if
    /// there is no such message or `change` declined (returned false).
    async fn change_state(
        &self,
        id: &str,
        change: impl FnOnce(&Message, &mut MessageState) -> Option<Option<String>> + Send,
    ) -> Result<bool, Error> {
        let inner = self.inner();
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        let Some((m, _)) = self.get_with(&ring, id).await? else {
            return Ok(false);
        };
        let mut typed = TypedBatch::default();
        let mut s = load_state(inner, &ring.current, &mut typed, id)
            .await?
            .unwrap_or_else(|| MessageState::default_for(&m));
        let Some(body) = change(&m, &mut s) else {
            return Ok(false);
        };
        let mut new = m;
        if let Some(body) = body {
            new.body = body;
        }
        self.save_locked(&mut w, vec![(new, StateChange::Set(Box::new(s)))])
            .await?;
        Ok(true)
    }

    /// Sets the delivery status of message `id` (and its conversation's unread count, in the
    /// same batch). Returns false if there is no such message.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn set_status(&self, id: &str, status: DeliveryStatus) -> Result<bool, Error> {
        self.change_state(id, |_, s| {
            s.status = status;
            Some(None)
        })
        .await
    }

    /// Replaces the body of message `id` with `body`, keeping the previous body in its edit
    /// history ([`MessageState::edits`]) and `edited_ms`. Returns false if there is no such
    /// message or it was redacted (a redacted message stays wiped).
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn edit(&self, id: &str, body: &str, edited_ms: i64) -> Result<bool, Error> {
        let body = body.to_owned();
        self.change_state(id, move |m, s| {
            if s.redaction.is_some() {
                return None;
            }
            s.edits.push(Edit {
                previous_body: m.body.clone(),
                edited_ms,
            });
            s.edited_ms = Some(edited_ms);
            Some(Some(body))
        })
        .await
    }

    /// Redacts message `id`: its body, edit history and attachments are wiped (the sealed
    /// record is rewritten; no index holds content, and the cached state is invalidated by the
    /// write), the reason and time are kept. Returns false if there is no such message.
    ///
    /// Like any overwrite, the old sealed bytes may remain in free pages of the file until
    /// they are reused or the store is compacted; they stay encrypted.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn redact(
        &self,
        id: &str,
        reason: Option<&str>,
        redacted_ms: i64,
    ) -> Result<bool, Error> {
        let reason = reason.map(str::to_owned);
        self.change_state(id, move |_, s| {
            s.edits.clear();
            s.media.clear();
            s.redaction = Some(Redaction {
                reason,
                redacted_ms,
            });
            Some(Some(String::new()))
        })
        .await
    }

    /// Messages fetched by id, in order, skipping any deleted meanwhile.
    async fn by_ids(&self, states: Vec<MessageState>) -> Result<Vec<Message>, Error> {
        let mut out = Vec::with_capacity(states.len());
        for s in states {
            if let Some(m) = self.get(&s.message_id).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The newest `limit` messages of conversation `conversation_id` with status `status`,
    /// newest first, after the message `before` if given (a cursor: the last id of the
    /// previous page).
    ///
    /// # Errors
    /// [`Error::CursorNotFound`] if `before` has no entry under this status; [`Error::Corrupted`];
    /// [`Error::Backend`].
    pub async fn by_status(
        &self,
        conversation_id: &str,
        status: DeliveryStatus,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Message>, Error> {
        if status == DeliveryStatus::Delivered {
            return self.delivered(conversation_id, limit, before).await;
        }
        let states = self
            .store()
            .table(&MESSAGE_STATES)
            .scan(
                BY_STATUS,
                &[KeyPart::id(conversation_id), KeyPart::U64(status.code())],
                Order::Descending,
                limit,
                before.map(str::as_bytes),
            )
            .await?;
        self.by_ids(states).await
    }

    /// `by_status(…, Delivered, …)`: states are sparse and a message without a state record is
    /// `Delivered` (the default), so this walks the conversation newest first and keeps the
    /// messages whose state is absent or `Delivered`.
    async fn delivered(
        &self,
        conversation_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Message>, Error> {
        /// Messages read per page of the walk.
        const WALK_PAGE: usize = 256;
        let table = self.store().table(&MESSAGE_STATES);
        let mut out = Vec::new();
        let mut cursor = before.map(str::to_owned);
        while out.len() < limit {
            let page = self
                .by_conversation(conversation_id, WALK_PAGE, cursor.as_deref())
                .await?;
            let full = page.len() == WALK_PAGE;
            cursor = page.last().map(|m| m.id.clone());
            for m in page {
                let delivered = match table.get(&m.id).await? {
                    None => true,
                    Some(s) => s.status == DeliveryStatus::Delivered,
                };
                if delivered {
                    out.push(m);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// The replies in the thread of message `root_id` (messages whose `relates_to` is it),
    /// oldest first, up to `limit`, after the reply `after` if given. The root itself is not
    /// included (read it with [`Messages::get`]).
    ///
    /// # Errors
    /// As [`Messages::by_status`].
    pub async fn thread(
        &self,
        root_id: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<Message>, Error> {
        let states = self
            .store()
            .table(&MESSAGE_STATES)
            .scan(
                BY_THREAD,
                &[KeyPart::id(root_id)],
                Order::Ascending,
                limit,
                after.map(str::as_bytes),
            )
            .await?;
        self.by_ids(states).await
    }

    /// Marks every unread (incoming, not `Read`) message of conversation `conversation_id`
    /// `Read` and its unread count zero, in batches of [`SWEEP_BATCH`]. Returns how many
    /// messages it marked.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`]; batches committed before an error stay.
    pub async fn mark_read(&self, conversation_id: &str) -> Result<u64, Error> {
        let mut marked = 0;
        let mut idle = 0;
        loop {
            let page = self
                .store()
                .table(&MESSAGE_STATES)
                .scan(
                    UNREAD,
                    &[KeyPart::id(conversation_id)],
                    Order::Ascending,
                    SWEEP_BATCH,
                    None,
                )
                .await?;
            if page.is_empty() {
                return Ok(marked);
            }
            let inner = self.inner();
            let mut w = inner.writer.lock().await;
            w.refresh(&*inner.backend).await?;
            inner.finish_typed_rotation_locked(&mut w).await?;
            let ring = inner.keyring();
            let mut typed = TypedBatch::default();
            let mut items = Vec::new();
            let mut orphans = Vec::new();
            for s in &page {
                let Some(mut now) =
                    load_state(inner, &ring.current, &mut typed, &s.message_id).await?
                else {
                    continue;
                };
                if !now.is_unread() {
                    continue;
                }
                match self.get_with(&ring, &s.message_id).await? {
                    Some((m, _)) => {
                        now.status = DeliveryStatus::Read;
                        items.push((m, StateChange::Set(Box::new(now))));
                    }
                    None => orphans.push((s.message_id.as_str(), now)),
                }
            }
            marked += items.len() as u64;
            if !orphans.is_empty() {
                // A state whose message is gone: removed (with its unread count).
                let ids: Vec<&str> = orphans.iter().map(|(id, _)| *id).collect();
                let mut ops = WriteBatch::new();
                delete_states(inner, &ring.current, &mut typed, &ids, &mut ops).await?;
                inner.commit_locked(&mut w, ops).await?;
            }
            if items.is_empty() && orphans.is_empty() {
                // Every entry of the page changed under us: read the index again, but an
                // entry whose record is not unread twice in a row is damage, not a race.
                idle += 1;
                if idle > 1 {
                    return Err(Error::Corrupted(
                        "unread index entry does not match its record".into(),
                    ));
                }
                continue;
            }
            idle = 0;
            self.save_locked(&mut w, items).await?;
        }
    }

    /// Deletes one page of messages whose entries in `table` (`messages` itself, keyed by
    /// conversation, or an index) fall in `range(keys)` (forward, at most `limit`), with
    /// everything that belongs to them, in one atomic batch under the writer lock. Index
    /// entries whose record is gone are deleted too. Returns
    /// (messages deleted, entries scanned); (0, 0) during a key rotation when `current_only`.
    async fn delete_page(
        &self,
        table: &'static str,
        range: impl Fn(&StoreKeys) -> KeyRange,
        limit: Limit<'_>,
        current_only: bool,
    ) -> Result<(u64, usize), Error> {
        let inner = self.inner();
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        if current_only && ring.previous.is_some() {
            return Ok((0, 0));
        }
        let limit = match limit {
            Limit::Fixed(n) => n,
            // Read under the writer lock: no concurrent delete can make this over-delete.
            Limit::Excess { conversation, max } => {
                let count = self.conversation_count(conversation).await?;
                usize::try_from(count.saturating_sub(max))
                    .unwrap_or(usize::MAX)
                    .min(SWEEP_BATCH)
            }
        };
        if limit == 0 {
            return Ok((0, 0));
        }
        let page = inner
            .backend
            .scan(table, range(&ring.current), Direction::Forward, limit)
            .await?;
        // `messages` itself (a conversation's range) holds the records; an index entry leads
        // to a record key, whose records are read in one `get_many`.
        let (record_keys, records): (Vec<Vec<u8>>, Vec<Option<Vec<u8>>>) = if table == MESSAGES {
            page.iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .unzip()
        } else {
            let record_keys: Vec<Vec<u8>> = page
                .iter()
                .map(|(key, value)| {
                    indexed_record_key(table, key, value).ok_or_else(|| {
                        Error::Corrupted(format!("malformed entry in index {table}"))
                    })
                })
                .collect::<Result<_, Error>>()?;
            let records = inner.backend.get_many(MESSAGES, &record_keys).await?;
            (record_keys, records)
        };
        let mut ops = WriteBatch::new();
        let mut found: Vec<Found> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (((key, _), record_key), record) in page.iter().zip(&record_keys).zip(records) {
            match record {
                Some(bytes) => {
                    if seen.insert(record_key.clone()) {
                        found.push(open_any_owned(&ring, record_key, bytes)?);
                    }
                }
                None => ops.delete(table, key.clone()),
            }
        }
        let deleted = found.len() as u64;
        self.delete_found(&ring, found, &mut ops).await?;
        if !ops.is_empty() {
            inner.commit_locked(&mut w, ops).await?;
            inner.note_writes(deleted);
        }
        Ok((deleted, page.len()))
    }

    /// Deletes every message older than `before_ms` (timestamp < `before_ms`, ms since the
    /// Unix epoch) in every conversation, oldest first, with its index entries, counts,
    /// extended state and unread count, in atomic batches of [`SWEEP_BATCH`] (writers wait for
    /// one batch at most). Returns how many were deleted.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`]; batches committed before an error stay.
    pub async fn delete_before(&self, before_ms: i64) -> Result<u64, Error> {
        let mut deleted = 0;
        loop {
            let (n, scanned) = self
                .delete_page(
                    MSG_BY_TIME,
                    |_| KeyRange {
                        start: Bound::Unbounded,
                        end: Bound::Excluded(older_than(before_ms).to_vec()),
                    },
                    Limit::Fixed(SWEEP_BATCH),
                    false,
                )
                .await?;
            deleted += n;
            if scanned < SWEEP_BATCH {
                return Ok(deleted);
            }
        }
    }

    /// Sets (or, with `None`, removes) the retention policy of conversation `conversation_id`.
    /// The sweeper ([`Messages::sweep`]) applies it.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn set_retention(
        &self,
        conversation_id: &str,
        retention: Option<Retention>,
    ) -> Result<(), Error> {
        let inner = self.inner();
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        let mut typed = TypedBatch::default();
        let mut c = load_conversation_state(inner, &ring.current, &mut typed, conversation_id)
            .await?
            .unwrap_or_else(|| ConversationState::empty(conversation_id));
        c.retention = retention;
        let mut ops = WriteBatch::new();
        put_conversation_state(inner, &ring.current, &mut typed, &c, &mut ops).await?;
        if !ops.is_empty() {
            inner.commit_locked(&mut w, ops).await?;
        }
        Ok(())
    }

    /// The retention policy of conversation `conversation_id`, if one is set.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn retention(&self, conversation_id: &str) -> Result<Option<Retention>, Error> {
        Ok(self
            .store()
            .table(&CONVERSATION_STATES)
            .get(conversation_id)
            .await?
            .and_then(|c| c.retention))
    }

    /// Deletes what has to go at time `now_ms` (ms since the Unix epoch): disappearing
    /// messages whose expiry is at or before it, then, for every conversation with a retention
    /// policy, messages older than its maximum age and the oldest beyond its maximum count.
    /// Runs in atomic batches of [`SWEEP_BATCH`], taking the writer lock per batch. Skipped
    /// while a key rotation is in progress (conversation indexes span two key generations
    /// then). The store runs it at open and every [`crate::Options::sweep_interval`].
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`]; batches committed before an error stay.
    pub async fn sweep(&self, now_ms: i64) -> Result<SweepReport, Error> {
        let mut report = SweepReport::default();
        if self.inner().keyring().previous.is_some() {
            report.skipped = true;
            return Ok(report);
        }
        // Disappearing messages.
        loop {
            let page = self
                .store()
                .table(&MESSAGE_STATES)
                .scan(BY_EXPIRY, &[], Order::Ascending, SWEEP_BATCH, None)
                .await?;
            let due: Vec<&MessageState> = page
                .iter()
                .take_while(|s| s.expires_ms.is_some_and(|at| at <= now_ms))
                .collect();
            if due.is_empty() {
                break;
            }
            report.expired += self.delete_expired(&due).await?;
            if due.len() < SWEEP_BATCH {
                break;
            }
        }
        // Retention policies.
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store()
                .table(&CONVERSATION_STATES)
                .scan(
                    WITH_RETENTION,
                    &[],
                    Order::Ascending,
                    SWEEP_BATCH,
                    after.as_deref().map(str::as_bytes),
                )
                .await?;
            for c in &page {
                if let Some(policy) = c.retention {
                    report.retention += self
                        .apply_retention(&c.conversation_id, policy, now_ms)
                        .await?;
                }
            }
            if page.len() < SWEEP_BATCH {
                return Ok(report);
            }
            after = page.last().map(|c| c.conversation_id.clone());
        }
    }

    /// Deletes the messages of the expired states `due` (one batch). Returns how many.
    async fn delete_expired(&self, due: &[&MessageState]) -> Result<u64, Error> {
        let inner = self.inner();
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        let ring = inner.keyring();
        let mut found = Vec::new();
        let mut orphans = Vec::new();
        for s in due {
            match self.get_with(&ring, &s.message_id).await? {
                Some(f) => found.push(f),
                None => orphans.push(s.message_id.as_str()),
            }
        }
        let mut ops = WriteBatch::new();
        let deleted = found.len() as u64;
        if !orphans.is_empty() {
            delete_states(
                inner,
                &ring.current,
                &mut TypedBatch::default(),
                &orphans,
                &mut ops,
            )
            .await?;
        }
        // Orphans' and messages' states are distinct records, but both may change one
        // conversation's unread count: commit the orphans first.
        if !ops.is_empty() {
            inner
                .commit_locked(&mut w, std::mem::take(&mut ops))
                .await?;
        }
        self.delete_found(&ring, found, &mut ops).await?;
        if !ops.is_empty() {
            inner.commit_locked(&mut w, ops).await?;
            inner.note_writes(deleted);
        }
        Ok(deleted)
    }

    /// Applies `policy` to conversation `id` at `now_ms`. Returns the messages deleted.
    async fn apply_retention(
        &self,
        id: &str,
        policy: Retention,
        now_ms: i64,
    ) -> Result<u64, Error> {
        let mut deleted = 0;
        let prefix = |k: &StoreKeys| conversation_token(k, id).to_vec();
        if let Some(age) = policy.max_age_ms {
            let cutoff = now_ms.saturating_sub(age);
            loop {
                let (n, scanned) = self
                    .delete_page(
                        MESSAGES,
                        |k| {
                            let p = prefix(k);
                            let mut end = p.clone();
                            end.extend_from_slice(&older_than(cutoff));
                            KeyRange {
                                start: Bound::Included(p),
                                end: Bound::Excluded(end),
                            }
                        },
                        Limit::Fixed(SWEEP_BATCH),
                        true,
                    )
                    .await?;
                deleted += n;
                if scanned < SWEEP_BATCH {
                    break;
                }
            }
        }
        if let Some(max) = policy.max_count {
            loop {
                let (n, scanned) = self
                    .delete_page(
                        MESSAGES,
                        |k| KeyRange::prefix(&prefix(k)),
                        Limit::Excess {
                            conversation: id,
                            max,
                        },
                        true,
                    )
                    .await?;
                deleted += n;
                if scanned == 0 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// The message count of conversation `id` (its summary, under the current keys).
    async fn conversation_count(&self, id: &str) -> Result<u64, Error> {
        let ring = self.inner().keyring();
        let token = conversation_token(&ring.current, id);
        match self.inner().backend.get(CONVERSATIONS, &token).await? {
            Some(bytes) => Ok(sealed::open::<ConversationSummary>(
                &ring.current,
                CONVERSATIONS,
                &token,
                &bytes,
            )?
            .message_count),
            None => Ok(0),
        }
    }
}

impl crate::Conversations<'_> {
    /// The number of unread (incoming, not `Read`) messages of conversation `id`, kept by
    /// message writes in the same batch.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn unread(&self, id: &str) -> Result<u64, Error> {
        Ok(self
            .store()
            .table(&CONVERSATION_STATES)
            .get(id)
            .await?
            .map_or(0, |c| c.unread))
    }

    /// Marks every unread message of conversation `id` read (as [`Messages::mark_read`]).
    ///
    /// # Errors
    /// As [`Messages::mark_read`].
    pub async fn mark_read(&self, id: &str) -> Result<u64, Error> {
        self.store().messages().mark_read(id).await
    }
}

impl Inner {
    /// Sweeps once now (the sweep at open) and starts the interval sweeper, if
    /// [`crate::Options::sweep_interval`] is set and a tokio runtime is running. The task
    /// holds the store only while it sweeps; dropping the store aborts it.
    ///
    /// # Errors
    /// [`Error::Backend`] if the sweep at open cannot read or write the store (the open then
    /// fails like any other I/O error at open); other errors (damage) are only recorded in
    /// [`Tresor::last_sweep`], so that a damaged store still opens for `check` and `repair`.
    pub(crate) async fn start_sweeper(&self) -> Result<(), Error> {
        let Some(every) = self.options.sweep_interval else {
            return Ok(());
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Ok(());
        };
        if let Some(inner) = self.me.upgrade() {
            let store = Tresor { inner };
            if let Err(Error::Backend(e)) = store.record_sweep().await {
                return Err(Error::Backend(e));
            }
        }
        let me = self.me.clone();
        let every = every.max(Duration::from_millis(1));
        let task = runtime.spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticker.tick().await;
                let Some(inner) = me.upgrade() else { return };
                // The result is kept for `last_sweep`; the next tick tries again.
                let _ = Tresor { inner }.record_sweep().await;
            }
        });
        if let Ok(mut slot) = self.sweeper.lock() {
            *slot = Some(task.abort_handle());
        }
        Ok(())
    }
}

impl Tresor {
    /// Sweeps now and keeps the result for [`Tresor::last_sweep`].
    async fn record_sweep(&self) -> Result<SweepReport, Error> {
        let result = self.messages().sweep(now_ms()).await;
        if let Ok(mut last) = self.inner.last_sweep.lock() {
            *last = Some(result.as_ref().map(|r| *r).map_err(ToString::to_string));
        }
        result
    }

    /// The result of the store's most recent automatic sweep (at open or on its interval):
    /// `None` if none ran; `Err` with the error's message if it failed.
    pub fn last_sweep(&self) -> Option<Result<SweepReport, String>> {
        self.inner.last_sweep.lock().ok().and_then(|l| l.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_than_bounds_exactly_the_older_messages() {
        let bound = older_than(100);
        for (ts, seq) in [(99, 0), (99, u64::MAX - 1), (-5, 7), (i64::MIN, 0)] {
            assert!(
                order_key(Position {
                    timestamp_ms: ts,
                    seq
                }) < bound,
                "{ts} {seq}"
            );
        }
        for (ts, seq) in [(100, 0), (100, u64::MAX - 1), (101, 3), (i64::MAX, 0)] {
            assert!(
                order_key(Position {
                    timestamp_ms: ts,
                    seq
                }) >= bound,
                "{ts} {seq}"
            );
        }
    }

    #[test]
    fn extras_replace_what_they_carry_and_keep_history() {
        let m = Message::new("m", "c", "bob", None, 1, "x");
        let mut s = MessageState::default_for(&m);
        s.edits.push(Edit {
            previous_body: "old".into(),
            edited_ms: 2,
        });
        MessageExtras::incoming()
            .replying_to("root")
            .expiring_at(9)
            .apply_to(&mut s);
        assert!(s.is_unread());
        assert_eq!(s.relates_to.as_deref(), Some("root"));
        assert_eq!(s.expires_ms, Some(9));
        assert_eq!(s.edits.len(), 1, "edits are not the extras' to change");
        MessageExtras::outgoing(DeliveryStatus::Failed).apply_to(&mut s);
        assert!(!s.incoming && s.relates_to.is_none() && s.expires_ms.is_none());
    }
}
