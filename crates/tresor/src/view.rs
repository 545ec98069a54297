//! Message reads through one backend [`ReadView`]: the synchronous core of every message query.
//!
//! A query (the cursor lookup, the index scan and the record reads) runs against one
//! consistent view, so it costs one thread hop from async code ([`read`]) and none from a
//! blocking context ([`BlockingView`]).

use std::sync::Arc;

use tresor_backend::{Direction, KeyRange, ReadView};
use tresor_crypto::StoreKeys;
use tresor_schema::Message;
use tresor_schema::catalog::{MESSAGE_IDS, MESSAGES, MSG_BY_PEER, MSG_BY_TIME};
use tresor_schema::index::order_key;
use tresor_schema::messages::{
    conversation_token, indexed_record_key, message_token, open_message, peer_token, position,
    record_key, tokens,
};

use crate::Error;
use crate::keys::Keyring;
use crate::messages::{Found, open_any_lent, open_any_owned};
use crate::store::Inner;

/// How many times a view is retaken when a key rotation swaps the keys while it is taken.
const VIEW_ATTEMPTS: usize = 16;

/// Takes a view and the keys that read it consistently: the keyring did not change while the
/// view was taken, so every record the view holds is under the ring's current or previous
/// keys (a rotation publishes its new keys before moving any record, and drops the previous
/// ones only after the last record moved).
pub(crate) fn consistent_view(inner: &Inner) -> Result<(Box<dyn ReadView>, Arc<Keyring>), Error> {
    let mut ring = inner.keyring();
    for _ in 0..VIEW_ATTEMPTS {
        let view = inner.backend.read_view()?;
        let after = inner.keyring();
        if after.epoch == ring.epoch {
            return Ok((view, ring));
        }
        ring = after;
    }
    Err(Error::Backend(tresor_backend::BackendError::Busy(
        "the keys kept changing while taking a read view".into(),
    )))
}

/// Runs the blocking read `f` from async code: directly when the backend's reads do not block
/// (memory); in place through `block_in_place` with [`crate::Options::reads_in_place`] on a
/// multi-threaded runtime; else on tokio's blocking pool (one thread hop).
pub(crate) async fn read<T, F>(inner: &Arc<Inner>, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(&Inner) -> Result<T, Error> + Send + 'static,
{
    if !inner.backend.reads_block() {
        return f(inner);
    }
    if inner.options.reads_in_place && in_place_allowed() {
        return tokio::task::block_in_place(|| f(inner));
    }
    let inner = Arc::clone(inner);
    tokio::task::spawn_blocking(move || f(&inner)).await?
}

/// Whether `tokio::task::block_in_place` may run here: on a multi-threaded runtime (it panics
/// on a current-thread one).
fn in_place_allowed() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// A stored message record as read: its record key and sealed bytes.
pub(crate) type Stored = Option<(Vec<u8>, Vec<u8>)>;

/// Reads, in `view`, the records that `message_ids` maps the message tokens `ids` to (in
/// order; `None` where a token has no entry).
///
/// # Errors
/// [`Error::Corrupted`] if an entry points at a missing record; [`Error::Backend`].
pub(crate) fn stored_records(view: &dyn ReadView, ids: &[Vec<u8>]) -> Result<Vec<Stored>, Error> {
    let keys = view.get_many(MESSAGE_IDS, ids)?;
    let present: Vec<Vec<u8>> = keys.iter().flatten().cloned().collect();
    if present.is_empty() {
        return Ok(vec![None; ids.len()]);
    }
    let mut records = view.get_many(MESSAGES, &present)?.into_iter();
    keys.into_iter()
        .map(|key| match key {
            None => Ok(None),
            Some(key) => match records.next().flatten() {
                Some(bytes) => Ok(Some((key, bytes))),
                None => Err(missing_record()),
            },
        })
        .collect()
}

/// [`stored_records`] for one message token: two point reads, without the lists a batch
/// needs (a `get(id)` allocates about half as much).
///
/// # Errors
/// As [`stored_records`].
fn stored_record(view: &dyn ReadView, id: &[u8]) -> Result<Stored, Error> {
    let Some(key) = view.get(MESSAGE_IDS, id)? else {
        return Ok(None);
    };
    match view.get(MESSAGES, &key)? {
        Some(bytes) => Ok(Some((key, bytes))),
        None => Err(missing_record()),
    }
}

/// A `message_ids` entry whose record is missing (in a consistent view: damage).
fn missing_record() -> Error {
    Error::Corrupted("message_ids points at a missing message".into())
}

/// Checks that a record reached through `message_ids` under message `id` is that message's
/// (index values are not authenticated; the record is, by its AAD).
fn check_id(m: &Message, id: &str) -> Result<(), Error> {
    if m.id == id {
        Ok(())
    } else {
        Err(Error::Corrupted(
            "message_ids entry does not match its record".into(),
        ))
    }
}

/// Opens a record read by [`stored_records`] for message `id` under `keys`, checking that it
/// is that message's.
///
/// # Errors
/// [`Error::Corrupted`] if it does not open under `keys` or is another message's record.
pub(crate) fn open_stored(
    keys: &StoreKeys,
    id: &str,
    (key, bytes): &(Vec<u8>, Vec<u8>),
) -> Result<Message, Error> {
    let m = open_message(keys, key, bytes)?;
    check_id(&m, id)?;
    Ok(m)
}

/// Looks `id` up under the current token, then (during a rotation) the previous one:
/// `message_ids` gives the record key, `messages` the record.
///
/// # Errors
/// [`Error::Corrupted`] if the `message_ids` entry points at a missing record or at another
/// message's record.
pub(crate) fn get_in(
    view: &dyn ReadView,
    ring: &Keyring,
    id: &str,
) -> Result<Option<Found>, Error> {
    let generations = std::iter::once(&ring.current).chain(ring.previous.as_ref());
    for keys in generations {
        let Some((key, bytes)) = stored_record(view, &message_token(keys, id))? else {
            continue;
        };
        let found = open_any_owned(ring, &key, bytes)?;
        check_id(&found.0, id)?;
        return Ok(Some(found));
    }
    Ok(None)
}

/// The record key of a message found under the keys it was found with (`previous`: the
/// rotation's previous keys).
pub(crate) fn found_key(ring: &Keyring, (m, previous): &Found) -> Vec<u8> {
    record_key(m, &tokens(ring.generation(*previous), m))
}

/// Which table a page walks, and the id whose token prefixes its keys.
#[derive(Debug, Clone)]
pub(crate) enum Walk {
    /// `messages` itself under a conversation id (record keys are conversation token ‖ order
    /// key).
    Conversation(String),
    /// `msg_by_peer` under a peer id.
    Peer(String),
    /// `msg_by_time`: every message.
    Time,
}

impl Walk {
    fn table(&self) -> &'static str {
        match self {
            Walk::Conversation(_) => MESSAGES,
            Walk::Peer(_) => MSG_BY_PEER,
            Walk::Time => MSG_BY_TIME,
        }
    }

    /// Whether message `m` has an entry in this walk's table under its id.
    fn holds(&self, m: &Message) -> bool {
        match self {
            Walk::Conversation(id) => m.conversation_id == *id,
            Walk::Peer(id) => m.sender == *id || m.recipient.as_deref() == Some(id.as_str()),
            Walk::Time => true,
        }
    }

    fn prefix(&self, keys: &StoreKeys) -> Vec<u8> {
        match self {
            Walk::Conversation(id) => conversation_token(keys, id).to_vec(),
            Walk::Peer(id) => peer_token(keys, id).to_vec(),
            Walk::Time => Vec::new(),
        }
    }
}

/// A record a page walk found: the key the walk found it under, its record key, the record
/// (`None`: the index points at a missing record).
type WalkedRecord = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// One page of `walk`, newest first, after the message `before` if given: the cursor lookup,
/// the range scans (one per key generation, merged) and, for an index walk, one batched
/// record read, all in `view`. A conversation's page is one range of `messages` itself.
///
/// # Errors
/// [`Error::CursorNotFound`] if `before` names no message; [`Error::Corrupted`] if an index
/// entry points at a missing record or does not match its record.
pub(crate) fn page_in(
    view: &dyn ReadView,
    ring: &Keyring,
    walk: &Walk,
    limit: usize,
    before: Option<&str>,
) -> Result<Vec<Message>, Error> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let cursor = match before {
        None => None,
        Some(id) => Some(get_in(view, ring, id)?.ok_or(Error::CursorNotFound)?.0),
    };
    let table = walk.table();
    let mut prefixes = vec![walk.prefix(&ring.current)];
    if let Some(prev) = &ring.previous
        && table != MSG_BY_TIME
    {
        prefixes.push(walk.prefix(prev));
    }
    let range_below = |p: &Vec<u8>| match &cursor {
        None => KeyRange::prefix(p),
        Some(c) => {
            let mut upper = p.clone();
            upper.extend_from_slice(&order_key(position(c)));
            KeyRange::prefix_below(p, upper)
        }
    };
    if table == MESSAGES && prefixes.len() == 1 {
        // A conversation's page outside a rotation (the common case): one range of the
        // records themselves, each lent by the backend and opened in one reused buffer.
        let prefix = &prefixes[0];
        return open_lent(
            view,
            ring,
            range_below(prefix),
            Direction::Reverse,
            limit,
            |key, m| walked_entry_matches(walk, key, prefix, m),
        );
    }
    // (order key, full key, value), from every generation.
    let mut entries: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = Vec::new();
    for p in &prefixes {
        for (key, value) in view.scan(table, range_below(p), Direction::Reverse, limit)? {
            let order = key.get(p.len()..).unwrap_or_default().to_vec();
            entries.push((order, key, value));
        }
    }
    if prefixes.len() > 1 {
        entries.sort_by(|a, b| b.0.cmp(&a.0));
        entries.truncate(limit);
    }
    let records: Vec<WalkedRecord> = if table == MESSAGES {
        entries
            .into_iter()
            .map(|(_, key, record)| (key.clone(), key, Some(record)))
            .collect()
    } else {
        let (found, record_keys): (Vec<Vec<u8>>, Vec<Vec<u8>>) = entries
            .into_iter()
            .map(|(_, key, value)| {
                let rk = indexed_record_key(table, &key, &value)
                    .ok_or_else(|| Error::Corrupted(format!("malformed entry in index {table}")))?;
                Ok((key, rk))
            })
            .collect::<Result<Vec<_>, Error>>()?
            .into_iter()
            .unzip();
        let records = view.get_many(MESSAGES, &record_keys)?;
        found
            .into_iter()
            .zip(record_keys)
            .zip(records)
            .map(|((key, rk), record)| (key, rk, record))
            .collect()
    };
    // The walk's prefix under the previous keys, for records not yet moved by a rotation.
    let previous_prefix = ring.previous.as_ref().map(|prev| walk.prefix(prev));
    let mut out = Vec::with_capacity(records.len());
    for (walk_key, record_key, record) in records {
        let Some(bytes) = record else {
            return Err(Error::Corrupted(format!(
                "index {table} points at a missing message"
            )));
        };
        let (m, previous) = open_any_owned(ring, &record_key, bytes)?;
        let prefix = match (&previous_prefix, previous) {
            (Some(prev), true) => prev,
            _ => &prefixes[0],
        };
        let m = walked_entry_matches(walk, &walk_key, prefix, m)?;
        out.push(m);
    }
    Ok(out)
}

/// `m`, found by `walk` under `walk_key`, if that is the entry `m` has in the walk's table under
/// `prefix` (the walk's prefix under the keys that opened `m`).
///
/// Index entries are not authenticated: the record belongs to the walked conversation or peer
/// and the key is its prefix and position, or the entry was altered, and that is an error,
/// never a wrong answer. (The record itself is bound by its AAD to the key it was read under.)
///
/// # Errors
/// [`Error::Corrupted`] if the entry does not match.
fn walked_entry_matches(
    walk: &Walk,
    walk_key: &[u8],
    prefix: &[u8],
    m: Message,
) -> Result<Message, Error> {
    if walk.holds(&m) && is_prefixed_by(walk_key, prefix, &order_key(position(&m))) {
        Ok(m)
    } else {
        Err(Error::Corrupted(format!(
            "index {} entry does not match its record",
            walk.table()
        )))
    }
}

/// Whether `key` is exactly `prefix ‖ rest`.
fn is_prefixed_by(key: &[u8], prefix: &[u8], rest: &[u8]) -> bool {
    key.len() == prefix.len() + rest.len() && key.starts_with(prefix) && key.ends_with(rest)
}

/// Up to `limit` messages in storage order (record key order: by blinded conversation token,
/// a conversation's messages oldest first), after the message `after` if given.
///
/// # Errors
/// [`Error::CursorNotFound`] if `after` names no message; [`Error::Corrupted`] if a record does
/// not open.
pub(crate) fn scan_in(
    view: &dyn ReadView,
    ring: &Keyring,
    limit: usize,
    after: Option<&str>,
) -> Result<Vec<Message>, Error> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let range = match after {
        None => KeyRange::all(),
        Some(id) => {
            let found = get_in(view, ring, id)?.ok_or(Error::CursorNotFound)?;
            KeyRange {
                start: std::ops::Bound::Excluded(found_key(ring, &found)),
                end: std::ops::Bound::Unbounded,
            }
        }
    };
    open_lent(view, ring, range, Direction::Forward, limit, |_, m| Ok(m))
}

/// Up to `limit` messages from the records of `range` of `messages`, in `direction`, each
/// lent by the backend (`ReadView::scan_each`), opened in one reused buffer (no copy of a
/// record's key or bytes of its own) and passed through `keep` with its record key, which
/// may refuse it with an error (the first error ends the scan and is returned).
///
/// # Errors
/// [`Error::Corrupted`] if a record does not open; what `keep` returns; [`Error::Backend`].
fn open_lent(
    view: &dyn ReadView,
    ring: &Keyring,
    range: KeyRange,
    direction: Direction,
    limit: usize,
    mut keep: impl FnMut(&[u8], Message) -> Result<Message, Error>,
) -> Result<Vec<Message>, Error> {
    let mut out = Vec::with_capacity(limit.min(1_024));
    let mut buf = Vec::new();
    let mut failed = None;
    view.scan_each(
        MESSAGES,
        range,
        direction,
        limit,
        &mut |key, bytes| match open_any_lent(ring, key, bytes, &mut buf)
            .and_then(|(m, _)| keep(key, m))
        {
            Ok(m) => {
                out.push(m);
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        },
    )?;
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// A consistent, read-only view of a store's messages, read **synchronously**: see
/// [`crate::Tresor::blocking_view`].
///
/// Every read sees the store as it was when the view was taken (a backend [`ReadView`]: a
/// redb read transaction, an SQLite read transaction), whatever is written meanwhile, and
/// costs no thread hop. Reads block the calling thread: use a view from a thread of your own
/// or inside `tokio::task::spawn_blocking`, never directly in an async task. A live view pins
/// the storage of the state it sees (space freed later is reused only after it is dropped;
/// compaction reports busy): keep views short-lived.
///
/// The queries answer as their async counterparts on [`crate::Messages`] do (same order, same
/// cursors, same errors).
pub struct BlockingView {
    view: Box<dyn ReadView>,
    ring: Arc<Keyring>,
}

impl std::fmt::Debug for BlockingView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingView").finish_non_exhaustive()
    }
}

impl BlockingView {
    /// Takes a view of `inner` (blocking).
    pub(crate) fn new(inner: &Inner) -> Result<Self, Error> {
        let (view, ring) = consistent_view(inner)?;
        Ok(Self { view, ring })
    }

    /// The message with id `id`, as [`crate::Messages::get`].
    ///
    /// # Errors
    /// [`Error::Corrupted`] if its record does not authenticate; [`Error::Backend`].
    pub fn message(&self, id: &str) -> Result<Option<Message>, Error> {
        Ok(get_in(&*self.view, &self.ring, id)?.map(|(m, _)| m))
    }

    /// The newest `limit` messages of a conversation older than `before`, as
    /// [`crate::Messages::by_conversation`].
    ///
    /// # Errors
    /// [`Error::CursorNotFound`] if `before` names no stored message; [`Error::Corrupted`];
    /// [`Error::Backend`].
    pub fn by_conversation(
        &self,
        conversation_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Message>, Error> {
        let walk = Walk::Conversation(conversation_id.to_owned());
        page_in(&*self.view, &self.ring, &walk, limit, before)
    }

    /// The newest `limit` messages sent or received by a peer, as
    /// [`crate::Messages::by_peer`].
    ///
    /// # Errors
    /// As [`BlockingView::by_conversation`].
    pub fn by_peer(
        &self,
        peer_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Message>, Error> {
        let walk = Walk::Peer(peer_id.to_owned());
        page_in(&*self.view, &self.ring, &walk, limit, before)
    }

    /// The newest `limit` messages of the whole store, as [`crate::Messages::recent`].
    ///
    /// # Errors
    /// As [`BlockingView::by_conversation`].
    pub fn recent(&self, limit: usize, before: Option<&str>) -> Result<Vec<Message>, Error> {
        page_in(&*self.view, &self.ring, &Walk::Time, limit, before)
    }

    /// Up to `limit` messages in storage order after the message `after`, as
    /// [`crate::Messages::scan`]. Walking pages with the last id of each page as the next
    /// cursor, within one view, returns every message of the view exactly once — also during
    /// a key rotation.
    ///
    /// # Errors
    /// [`Error::CursorNotFound`] if `after` names no message; [`Error::Corrupted`];
    /// [`Error::Backend`].
    pub fn scan(&self, limit: usize, after: Option<&str>) -> Result<Vec<Message>, Error> {
        scan_in(&*self.view, &self.ring, limit, after)
    }

    /// Number of messages in the view.
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub fn message_count(&self) -> Result<u64, Error> {
        Ok(self.view.len(MESSAGES)?)
    }
}
