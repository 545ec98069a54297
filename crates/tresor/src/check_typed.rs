//! The typed-table part of [`crate::Tresor::check`]: every `typed_records` entry opens, is
//! stored under its own record key and (for tresor's own tables) decodes as its record type;
//! its index entries join the expected set that `check.rs` compares `typed_index` with (orphan,
//! stale, missing); message states must belong to a stored message, and every conversation's
//! unread count must equal its unread message states.

use std::collections::HashMap;

use tresor_crypto::StoreKeys;
use tresor_schema::catalog::TYPED_RECORDS;
use tresor_schema::message_state::{
    CONVERSATION_STATES, ConversationState, MESSAGE_STATES, MessageState,
};
use tresor_schema::messages::message_token;
use tresor_schema::records::{
    CONTACTS, CONVERSATIONS, Contact, Conversation, KEY_VALUES, MetaEntry, PROOFS, Proof,
    RELAY_QUEUE, RelayItem, SESSIONS, Session,
};
use tresor_schema::typed::{Envelope, open_envelope, pk_token, record_key};
use tresor_schema::{SchemaError, codec};

use crate::Error;
use crate::check::{CheckReport, Derived, Issue, IssueKind, Severity, for_each_entry, hex};
use crate::store::Inner;

/// Decodes the value of an envelope of one of tresor's own tables as its type (other tables'
/// values are only checked to be codec records of some format).
fn decode_known(env: &Envelope) -> Result<(), SchemaError> {
    fn as_<V: serde::de::DeserializeOwned>(env: &Envelope) -> Result<(), SchemaError> {
        env.decode::<V>().map(|_| ())
    }
    match env.table.as_str() {
        t if t == CONVERSATIONS.name => as_::<Conversation>(env),
        t if t == CONTACTS.name => as_::<Contact>(env),
        t if t == SESSIONS.name => as_::<Session>(env),
        t if t == PROOFS.name => as_::<Proof>(env),
        t if t == RELAY_QUEUE.name => as_::<RelayItem>(env),
        t if t == KEY_VALUES.name => as_::<MetaEntry>(env),
        t if t == MESSAGE_STATES.name => as_::<MessageState>(env),
        t if t == CONVERSATION_STATES.name => as_::<ConversationState>(env),
        _ => match env.value.first() {
            Some(&codec::RECORD_FORMAT | &codec::PADDED_FORMAT) => Ok(()),
            Some(&other) => Err(SchemaError::UnknownFormat(other)),
            None => Err(SchemaError::EmptyRecord),
        },
    }
}

/// Checks every typed record (see the module docs), adding issues to `report` and expected
/// index entries and repairs to `d`. Returns the typed records read.
pub(crate) async fn check_typed(
    inner: &Inner,
    keys: &StoreKeys,
    report: &mut CheckReport,
    d: &mut Derived,
) -> Result<u64, Error> {
    let issue = |table: &'static str, key: &[u8], kind: IssueKind, severity: Severity| Issue {
        table,
        key: hex(key),
        kind,
        severity,
    };
    let mut issues = Vec::new();
    // Unread message states per conversation; every conversation state by id.
    let mut unread: HashMap<String, u64> = HashMap::new();
    let mut conversations: HashMap<String, (Vec<u8>, ConversationState)> = HashMap::new();
    let mut index = Vec::new();
    let n = for_each_entry(inner, TYPED_RECORDS, |(k, v)| {
        let env = match open_envelope(keys, &k, &v) {
            Ok(env) => env,
            Err(e) => {
                let kind = if matches!(e, SchemaError::Open { .. }) {
                    IssueKind::UnreadableRecord
                } else {
                    IssueKind::UndecodableRecord
                };
                issues.push(issue(TYPED_RECORDS, &k, kind, Severity::Error));
                d.bad_typed.push(k);
                return;
            }
        };
        if env.record_key(keys) != k {
            issues.push(issue(
                TYPED_RECORDS,
                &k,
                IssueKind::RecordKeyMismatch,
                Severity::Error,
            ));
            d.bad_typed.push(k);
            return;
        }
        if decode_known(&env).is_err() {
            issues.push(issue(
                TYPED_RECORDS,
                &k,
                IssueKind::UndecodableRecord,
                Severity::Error,
            ));
            d.bad_typed.push(k);
            return;
        }
        let keys_of: Vec<Vec<u8>> = env.index_keys(keys).into_iter().map(|(_, k)| k).collect();
        if env.table == MESSAGE_STATES.name
            && let Ok(s) = env.decode::<MessageState>()
        {
            if !d
                .message_tokens
                .contains(message_token(keys, &s.message_id).as_slice())
            {
                // Its index entries are not expected: the check reports them as orphans.
                issues.push(issue(
                    TYPED_RECORDS,
                    &k,
                    IssueKind::OrphanState,
                    Severity::Warning,
                ));
                d.orphan_states.insert(k, keys_of);
                return;
            }
            if s.is_unread() {
                *unread.entry(s.conversation_id).or_default() += 1;
            }
        } else if env.table == CONVERSATION_STATES.name
            && let Ok(c) = env.decode::<ConversationState>()
        {
            conversations.insert(c.conversation_id.clone(), (k, c));
        }
        let pk = pk_token(keys, &env.table, &env.pk).to_vec();
        for ik in keys_of {
            index.push((ik, pk.clone()));
        }
    })
    .await?;
    for (ik, pk) in index {
        d.index
            .insert((tresor_schema::catalog::TYPED_INDEX, ik), pk);
    }
    // Unread counts equal the unread states of existing messages.
    let mut ids: Vec<&String> = unread.keys().chain(conversations.keys()).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let want = unread.get(id).copied().unwrap_or(0);
        let (rk, mut c) = match conversations.get(id) {
            Some((rk, c)) => (rk.clone(), c.clone()),
            None => (
                record_key(keys, CONVERSATION_STATES.name, id.as_bytes()),
                ConversationState::empty(id),
            ),
        };
        if c.unread != want {
            issues.push(issue(
                TYPED_RECORDS,
                &rk,
                IssueKind::UnreadMismatch,
                Severity::Warning,
            ));
            c.unread = want;
            d.unread_fixes.insert(rk, c);
        }
    }
    report.issues.extend(issues);
    Ok(n)
}
