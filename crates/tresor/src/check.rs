//! Integrity check and repair: every record opened and decoded, every index entry checked
//! against its record in both directions, counters recomputed.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;

use serde::Serialize;
use tresor_backend::{Direction, Entry, KeyRange, WriteBatch};
use tresor_crypto::{StoreKeys, Token};
use tresor_schema::catalog::{
    CONVERSATIONS, MESSAGE_IDS, MESSAGES, META, MSG_BY_CONVERSATION, MSG_BY_PEER, MSG_BY_TIME,
    PEERS, TYPED_INDEX, TYPED_RECORDS, meta_keys,
};
use tresor_schema::messages::{
    conversation_token, index_entries, indexed_record_key, message_token, open_message, peer_ids,
    peer_token, record_key, tokens,
};
use tresor_schema::{ConversationSummary, Message, PeerSummary, sealed, version};

use crate::store::Inner;
use crate::{Error, Tresor};

/// Entries read per scan page.
const PAGE: usize = 1024;
/// Operations per repair batch.
const REPAIR_BATCH: usize = 4096;

/// How bad an [`Issue`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Data is lost or unreadable (a record that does not open or decode).
    Error,
    /// Derived data (index entries, counters) disagrees with the records; `repair` fixes it
    /// without loss.
    Warning,
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IssueKind {
    /// A sealed value fails authentication (modified, moved, or sealed under another key).
    UnreadableRecord,
    /// A sealed value opens but does not decode as its record type.
    UndecodableRecord,
    /// A record is stored under a key that is not its id's token.
    RecordKeyMismatch,
    /// An index entry points at a record that does not exist (dangling reference).
    OrphanIndexEntry,
    /// An index entry points at an existing record but is not where that record's index
    /// entry belongs (stale or altered key).
    StaleIndexEntry,
    /// A record lacks one of its index entries.
    MissingIndexEntry,
    /// A conversation or peer counter differs from the number of records.
    CounterMismatch,
    /// A conversation or peer with records has no counter entry.
    MissingCounter,
    /// A counter entry exists for a conversation or peer without records.
    OrphanCounter,
    /// Two records share a sequence number.
    DuplicateSequence,
    /// `next_seq` is not above every record's sequence number, or is missing.
    NextSequence,
    /// The schema version is missing or unreadable.
    SchemaVersion,
    /// A message state (typed table `message_state`) whose message does not exist.
    OrphanState,
    /// A conversation's unread count differs from its unread message states.
    UnreadMismatch,
}

/// One problem found by [`Tresor::check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Issue {
    /// The table it was found in.
    pub table: &'static str,
    /// The entry's key, hex-encoded (blinded tokens and order fields: no identifier).
    pub key: String,
    /// What is wrong.
    pub kind: IssueKind,
    /// How bad it is.
    pub severity: Severity,
}

/// The result of [`Tresor::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CheckReport {
    /// Message records read.
    pub records: u64,
    /// Index entries read.
    pub index_entries: u64,
    /// Counter entries read.
    pub counters: u64,
    /// Typed records read (every typed table, `typed_records`).
    pub typed_records: u64,
    /// Every problem found.
    pub issues: Vec<Issue>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.issues.is_empty()
    }
}

/// The result of [`Tresor::repair`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RepairReport {
    /// What the check before the repair found.
    pub found: CheckReport,
    /// Unreadable or misplaced records removed: their messages are lost.
    pub records_lost: u64,
    /// Index entries written or deleted.
    pub index_entries_fixed: u64,
    /// Counter entries written or deleted.
    pub counters_fixed: u64,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the records say derived data should be, collected by one pass over `messages` (and
/// one over `typed_records`, `check_typed.rs`).
#[derive(Default)]
pub(crate) struct Derived {
    /// (index table, index key) → index value (FORMAT.md 1.1; typed tables: pk token).
    pub(crate) index: HashMap<(&'static str, Vec<u8>), Vec<u8>>,
    /// Message tokens of the message records that open.
    pub(crate) message_tokens: HashSet<Vec<u8>>,
    conversations: HashMap<Token, (String, u64)>,
    peers: HashMap<Token, (String, u64)>,
    /// Record keys to delete on repair (unreadable or misplaced).
    bad_records: Vec<Vec<u8>>,
    max_seq: Option<u64>,
    /// Typed record keys to delete on repair (unreadable, undecodable or misplaced).
    pub(crate) bad_typed: Vec<Vec<u8>>,
    /// Message states without a message: record key → their index keys.
    pub(crate) orphan_states: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    /// Conversation states to rewrite with the right unread count: record key → state.
    pub(crate) unread_fixes: HashMap<Vec<u8>, tresor_schema::message_state::ConversationState>,
}

impl Tresor {
    /// Checks the whole store (after finishing a key rotation in progress, since a check reads
    /// one key generation): opens and decodes every record, checks every index entry against
    /// its record in both directions, recomputes the counters, and checks the schema version
    /// and `next_seq`. Writes wait while it runs. Memory is proportional to the number of index
    /// entries (about 80 bytes each).
    ///
    /// # Errors
    /// [`Error::Backend`] if the store cannot be read at all. Damage found in the data is
    /// reported in the [`CheckReport`], not as an error.
    pub async fn check(&self) -> Result<CheckReport, Error> {
        let inner = &self.inner;
        let mut writer = inner.writer.lock().await;
        // A check reads one key generation: a rotation in progress is finished first.
        inner.finish_rotation_locked(&mut writer).await?;
        let ring = inner.keyring();
        let (report, _) = check_locked(inner, &ring.current).await?;
        Ok(report)
    }

    /// Repairs what [`Tresor::check`] finds: rebuilds index entries and counters from the
    /// records, drops orphaned entries, removes records that do not open (their messages are
    /// lost and counted in the report), and fixes `next_seq`. Runs in bounded batches, each
    /// atomic and durable; an interrupted repair can simply be run again.
    ///
    /// # Errors
    /// [`Error::Backend`] if the store cannot be read or written.
    pub async fn repair(&self) -> Result<RepairReport, Error> {
        let inner = &self.inner;
        let mut writer = inner.writer.lock().await;
        writer.refresh(&*inner.backend).await?;
        inner.finish_rotation_locked(&mut writer).await?;
        let ring = inner.keyring();
        let keys = &ring.current;
        let (found, derived) = check_locked(inner, keys).await?;
        let mut report = RepairReport {
            found: found.clone(),
            ..RepairReport::default()
        };
        let mut ops = WriteBatch::new();
        // Typed records rewritten by the repair; those that do not open count as absent.
        let mut typed = crate::table::TypedBatch::default();
        for key in &derived.bad_typed {
            typed.assume_absent(key.clone());
        }
        for issue in &found.issues {
            let key = unhex(&issue.key);
            match issue.kind {
                IssueKind::OrphanIndexEntry | IssueKind::StaleIndexEntry => {
                    ops.delete(issue.table, key);
                    report.index_entries_fixed += 1;
                }
                IssueKind::MissingIndexEntry => {
                    if let Some(value) = derived.index.get(&(issue.table, key.clone())) {
                        ops.put(issue.table, key, value.clone());
                        report.index_entries_fixed += 1;
                    }
                }
                IssueKind::OrphanCounter => {
                    ops.delete(issue.table, key);
                    report.counters_fixed += 1;
                }
                IssueKind::CounterMismatch | IssueKind::MissingCounter => {
                    let Ok(token) = Token::try_from(key.as_slice()) else {
                        continue;
                    };
                    let value = if issue.table == CONVERSATIONS {
                        let Some((id, n)) = derived.conversations.get(&token) else {
                            continue;
                        };
                        sealed::seal(
                            keys,
                            CONVERSATIONS,
                            &token,
                            &ConversationSummary {
                                id: id.clone(),
                                message_count: *n,
                            },
                        )?
                    } else {
                        let Some((id, n)) = derived.peers.get(&token) else {
                            continue;
                        };
                        sealed::seal(
                            keys,
                            PEERS,
                            &token,
                            &PeerSummary {
                                id: id.clone(),
                                message_count: *n,
                            },
                        )?
                    };
                    ops.put(issue.table, key, value);
                    report.counters_fixed += 1;
                }
                IssueKind::UnreadableRecord
                | IssueKind::UndecodableRecord
                | IssueKind::RecordKeyMismatch => {
                    // Counted once per record; the key is in `derived.bad_records`.
                }
                IssueKind::NextSequence => {
                    let next = derived.max_seq.map_or(0, |m| m + 1).max(writer.next_seq);
                    ops.put(META, meta_keys::NEXT_SEQ, next.to_le_bytes().to_vec());
                    writer.next_seq = next;
                }
                IssueKind::DuplicateSequence | IssueKind::SchemaVersion => {
                    // Not repairable from the records alone; reported.
                }
                IssueKind::OrphanState => {
                    if let Some(index_keys) = derived.orphan_states.get(&key) {
                        for k in index_keys {
                            ops.delete(TYPED_INDEX, k.clone());
                        }
                        ops.delete(TYPED_RECORDS, key);
                        report.index_entries_fixed += index_keys.len() as u64;
                        report.records_lost += 1;
                    }
                }
                IssueKind::UnreadMismatch => {
                    if let Some(c) = derived.unread_fixes.get(&key) {
                        // Written through the typed overlay: its index entries follow.
                        if c.is_empty() {
                            typed
                                .delete(
                                    inner,
                                    keys,
                                    tresor_schema::message_state::CONVERSATION_STATES.name,
                                    c.conversation_id.as_bytes(),
                                    &mut ops,
                                )
                                .await?;
                        } else {
                            typed
                                .put(
                                    inner,
                                    keys,
                                    &tresor_schema::message_state::CONVERSATION_STATES,
                                    c,
                                    &mut ops,
                                )
                                .await?;
                        }
                        report.counters_fixed += 1;
                    }
                }
            }
            if ops.len() >= REPAIR_BATCH {
                inner
                    .backend
                    .commit(
                        std::mem::take(&mut ops),
                        tresor_backend::Durability::Immediate,
                    )
                    .await?;
            }
        }
        for key in &derived.bad_records {
            ops.delete(MESSAGES, key.clone());
            report.records_lost += 1;
        }
        for key in &derived.bad_typed {
            if derived.unread_fixes.get(key).is_some_and(|c| !c.is_empty()) {
                continue; // rewritten above
            }
            ops.delete(TYPED_RECORDS, key.clone());
            report.records_lost += 1;
        }
        if !ops.is_empty() {
            inner
                .backend
                .commit(ops, tresor_backend::Durability::Immediate)
                .await?;
        }
        // Typed records written or deleted behind the cache's back.
        let touched: Vec<&[u8]> = derived
            .bad_typed
            .iter()
            .chain(derived.orphan_states.keys())
            .chain(derived.unread_fixes.keys())
            .map(Vec::as_slice)
            .collect();
        inner.cache.invalidate(touched.into_iter());
        Ok(report)
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Reads every entry of `table`, page by page.
pub(crate) async fn for_each_entry(
    inner: &Inner,
    table: &'static str,
    mut f: impl FnMut(Entry),
) -> Result<u64, Error> {
    let mut start = Bound::Unbounded;
    let mut n = 0;
    loop {
        let range = KeyRange {
            start,
            end: Bound::Unbounded,
        };
        let page = inner
            .backend
            .scan(table, range, Direction::Forward, PAGE)
            .await?;
        let Some(last) = page.last().map(|(k, _)| k.clone()) else {
            return Ok(n);
        };
        let full = page.len() == PAGE;
        for entry in page {
            n += 1;
            f(entry);
        }
        if !full {
            return Ok(n);
        }
        start = Bound::Excluded(last);
    }
}

async fn check_locked(inner: &Inner, keys: &StoreKeys) -> Result<(CheckReport, Derived), Error> {
    let mut report = CheckReport::default();
    let mut d = Derived::default();
    let issue = |table: &'static str, key: &[u8], kind: IssueKind, severity: Severity| Issue {
        table,
        key: hex(key),
        kind,
        severity,
    };

    // Meta.
    match inner
        .backend
        .get(META, meta_keys::SCHEMA_VERSION.as_bytes())
        .await?
    {
        Some(v) if version::decode(&v).is_ok_and(|v| version::check(v).is_ok()) => {}
        _ => report.issues.push(issue(
            META,
            meta_keys::SCHEMA_VERSION.as_bytes(),
            IssueKind::SchemaVersion,
            Severity::Error,
        )),
    }
    let next_seq = inner
        .backend
        .get(META, meta_keys::NEXT_SEQ.as_bytes())
        .await?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_le_bytes);

    // Records: open, decode, derive what every other table should hold.
    let mut seqs = HashSet::new();
    let mut record_issues = Vec::new();
    report.records = for_each_entry(inner, MESSAGES, |(k, v)| {
        let m: Message = match open_message(keys, &k, &v) {
            Ok(m) => m,
            Err(tresor_schema::SchemaError::Open { .. }) => {
                record_issues.push(issue(
                    MESSAGES,
                    &k,
                    IssueKind::UnreadableRecord,
                    Severity::Error,
                ));
                d.bad_records.push(k);
                return;
            }
            Err(_) => {
                record_issues.push(issue(
                    MESSAGES,
                    &k,
                    IssueKind::UndecodableRecord,
                    Severity::Error,
                ));
                d.bad_records.push(k);
                return;
            }
        };
        let t = tokens(keys, &m);
        if record_key(&m, &t) != k {
            record_issues.push(issue(
                MESSAGES,
                &k,
                IssueKind::RecordKeyMismatch,
                Severity::Error,
            ));
            d.bad_records.push(k);
            return;
        }
        if !seqs.insert(m.seq) {
            record_issues.push(issue(
                MESSAGES,
                &k,
                IssueKind::DuplicateSequence,
                Severity::Error,
            ));
        }
        d.max_seq = Some(d.max_seq.map_or(m.seq, |s| s.max(m.seq)));
        d.message_tokens.insert(t.id.to_vec());
        for (table, key, value) in index_entries(&m, &t) {
            d.index.insert((table, key), value);
        }
        let conv = d
            .conversations
            .entry(conversation_token(keys, &m.conversation_id))
            .or_insert_with(|| (m.conversation_id.clone(), 0));
        conv.1 += 1;
        for id in peer_ids(&m) {
            let p = d
                .peers
                .entry(peer_token(keys, id))
                .or_insert_with(|| (id.to_owned(), 0));
            p.1 += 1;
        }
        debug_assert_eq!(message_token(keys, &m.id), t.id);
    })
    .await?;
    report.issues.extend(record_issues);
    let typed_records = crate::check_typed::check_typed(inner, keys, &mut report, &mut d).await?;
    report.typed_records = typed_records;
    if next_seq.is_none_or(|n| d.max_seq.is_some_and(|m| n <= m)) {
        report.issues.push(issue(
            META,
            meta_keys::NEXT_SEQ.as_bytes(),
            IssueKind::NextSequence,
            Severity::Warning,
        ));
    }

    // Index entries: each must be exactly one the records call for.
    let mut expected = d.index.clone();
    // The record each entry points at (a message record key, or a typed pk token).
    let pointed = |table: &str, k: &[u8], v: &[u8]| {
        indexed_record_key(table, k, v).unwrap_or_else(|| v.to_vec())
    };
    let record_keys: HashSet<Vec<u8>> = d
        .index
        .iter()
        .map(|((table, k), v)| pointed(table, k, v))
        .collect();
    let bad: HashSet<Vec<u8>> = d.bad_records.iter().cloned().collect();
    // `msg_by_conversation` is empty since schema v4: any entry left is an orphan.
    for table in [
        MSG_BY_CONVERSATION,
        MESSAGE_IDS,
        MSG_BY_PEER,
        MSG_BY_TIME,
        TYPED_INDEX,
    ] {
        let mut found = Vec::new();
        report.index_entries += for_each_entry(inner, table, |(k, v)| {
            let target = pointed(table, &k, &v);
            match expected.remove(&(table, k.clone())) {
                Some(want) if want == v => {}
                _ if record_keys.contains(&target) => found.push(issue(
                    table,
                    &k,
                    IssueKind::StaleIndexEntry,
                    Severity::Warning,
                )),
                _ => found.push(issue(
                    table,
                    &k,
                    IssueKind::OrphanIndexEntry,
                    if bad.contains(&target) {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                )),
            }
        })
        .await?;
        report.issues.extend(found);
    }
    let mut missing: Vec<_> = expected.into_keys().collect();
    missing.sort();
    for (table, key) in missing {
        report.issues.push(issue(
            table,
            &key,
            IssueKind::MissingIndexEntry,
            Severity::Warning,
        ));
    }

    // Counters.
    for (table, want) in [(CONVERSATIONS, &d.conversations), (PEERS, &d.peers)] {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        report.counters += for_each_entry(inner, table, |(k, v)| {
            let count = if table == CONVERSATIONS {
                sealed::open::<ConversationSummary>(keys, CONVERSATIONS, &k, &v)
                    .map(|s| s.message_count)
            } else {
                sealed::open::<PeerSummary>(keys, PEERS, &k, &v).map(|s| s.message_count)
            };
            let token = Token::try_from(k.as_slice()).ok();
            match (count, token.and_then(|t| want.get(&t))) {
                (Ok(n), Some((_, w))) if n == *w => {}
                (_, Some(_)) => found.push(issue(
                    table,
                    &k,
                    IssueKind::CounterMismatch,
                    Severity::Warning,
                )),
                (_, None) => found.push(issue(
                    table,
                    &k,
                    IssueKind::OrphanCounter,
                    Severity::Warning,
                )),
            }
            if let Some(t) = token {
                seen.insert(t);
            }
        })
        .await?;
        report.issues.extend(found);
        let mut absent: Vec<_> = want.keys().filter(|t| !seen.contains(*t)).collect();
        absent.sort();
        for t in absent {
            report.issues.push(issue(
                table,
                t,
                IssueKind::MissingCounter,
                Severity::Warning,
            ));
        }
    }
    Ok((report, d))
}

/// Integrity checks running in the background at a fixed interval, started by
/// [`Tresor::schedule_checks`]. Dropping it stops the checks.
#[derive(Debug)]
pub struct CheckSchedule {
    task: tokio::task::JoinHandle<()>,
    latest: tokio::sync::watch::Receiver<Option<Result<CheckReport, String>>>,
}

impl CheckSchedule {
    /// The most recent result: `None` before the first check finished; `Err` with the error's
    /// message when a check could not run.
    pub fn latest(&self) -> Option<Result<CheckReport, String>> {
        self.latest.borrow().clone()
    }

    /// Waits for the next check to finish and returns its result.
    ///
    /// # Errors
    /// The error's message if that check could not run, or if the schedule stopped.
    pub async fn next(&mut self) -> Result<CheckReport, String> {
        self.latest
            .changed()
            .await
            .map_err(|_| "check schedule stopped".to_owned())?;
        self.latest
            .borrow_and_update()
            .clone()
            .unwrap_or_else(|| Err("no check result".to_owned()))
    }
}

impl Drop for CheckSchedule {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tresor {
    /// Runs [`Tresor::check`] every `every` in a background task (the first after one
    /// interval) until the returned [`CheckSchedule`] is dropped. Each check holds the writer
    /// lock while it runs, so pick an interval that suits the store's size (a check of the
    /// 258,145-message chitchat corpus reads every record once).
    ///
    /// # Panics
    /// Never; must be called within a tokio runtime (it spawns a task).
    pub fn schedule_checks(&self, every: std::time::Duration) -> CheckSchedule {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let store = self.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await; // the first tick is immediate
            loop {
                ticker.tick().await;
                let result = store.check().await.map_err(|e| e.to_string());
                if tx.send(Some(result)).is_err() {
                    return;
                }
            }
        });
        CheckSchedule { task, latest: rx }
    }
}
