//! Salvage: copy every readable message of a damaged store into a new store.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tresor_backend::{Backend, Direction, KeyRange};
use tresor_crypto::KeyHeader;
use tresor_redb::RedbBackend;
use tresor_schema::catalog::{
    MESSAGE_IDS, MESSAGES, META, MSG_BY_CONVERSATION, MSG_BY_PEER, MSG_BY_TIME, meta_keys,
};
use tresor_schema::messages::open_message;

use crate::{Error, Options, Secret, Tresor};

/// What [`salvage`] recovered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SalvageReport {
    /// Distinct message keys found (in the records table or referenced by an index).
    pub candidates: u64,
    /// Messages read, authenticated and copied into the new store.
    pub recovered: u64,
    /// Messages that could not be read or did not authenticate: lost.
    pub lost: u64,
    /// Tables (or parts of them) that could not be scanned to the end.
    pub unreadable_tables: Vec<String>,
}

const PAGE: usize = 1024;

/// Copies every readable message of the (possibly damaged) store at `damaged` into a new store
/// at `target`, protected by the same passphrase (or raw key) and KDF parameters, rebuilding indexes and
/// counters from the records. Message keys are gathered from the records table and from every
/// index, so a damaged records page still lets the others be found. `damaged` is only read.
///
/// # Errors
/// [`Error::AlreadyExists`] if `target` exists; [`Error::WrongPassphrase`]; [`Error::NotAStore`]
/// or [`Error::Backend`] if the damaged file cannot be opened at all (nothing can be salvaged).
pub async fn salvage(
    damaged: impl AsRef<Path>,
    target: impl AsRef<Path>,
    secret: Secret,
) -> Result<(Tresor, SalvageReport), Error> {
    let target = target.as_ref();
    if target.exists() {
        return Err(Error::AlreadyExists(target.to_path_buf()));
    }
    let p = damaged.as_ref().to_path_buf();
    // Without the commit log, the open writes nothing to the damaged file unless a log left by
    // a crash must be replayed (then its acknowledged commits are salvaged too).
    let config = tresor_redb::RedbConfig::default().with_commit_log(false);
    let source: Arc<dyn Backend> = Arc::new(
        tokio::task::spawn_blocking(move || RedbBackend::open_existing_with_config(p, config))
            .await??,
    );
    let header_bytes = source
        .get(META, meta_keys::KEY_HEADER.as_bytes())
        .await?
        .ok_or(Error::NotAStore)?;
    let header = KeyHeader::decode(&header_bytes)?;
    let kdf = header.kdf();
    let pass = secret.clone();
    let keys = tokio::task::spawn_blocking(move || header.unlock(&pass))
        .await??
        .store_keys();

    // The layout of the index values; an unreadable version is taken as this code's.
    let v4 = source
        .get(META, meta_keys::SCHEMA_VERSION.as_bytes())
        .await
        .ok()
        .flatten()
        .and_then(|b| tresor_schema::version::decode(&b).ok())
        .is_none_or(|v| v >= 4);
    let mut report = SalvageReport::default();
    let mut candidates = BTreeSet::new();
    for (table, from_values) in [
        (MESSAGES, false),
        (MESSAGE_IDS, true),
        (MSG_BY_CONVERSATION, true),
        (MSG_BY_PEER, true),
        (MSG_BY_TIME, true),
    ] {
        let mut start = Bound::Unbounded;
        loop {
            let range = KeyRange {
                start,
                end: Bound::Unbounded,
            };
            let page = match source.scan(table, range, Direction::Forward, PAGE).await {
                Ok(p) => p,
                Err(_) => {
                    report.unreadable_tables.push(table.to_owned());
                    break;
                }
            };
            let full = page.len() == PAGE;
            let Some(last) = page.last().map(|(k, _)| k.clone()) else {
                break;
            };
            for (k, v) in page {
                // An index entry names its record by its value: the message token (v1–v3), the
                // record key (`message_ids`), or, since v4, the conversation token that the
                // entry's order key completes (`msg_by_peer`, `msg_by_time`).
                if from_values {
                    let pointed = if v4 && (table == MSG_BY_PEER || table == MSG_BY_TIME) {
                        tresor_schema::messages::indexed_record_key(table, &k, &v)
                    } else {
                        Some(v)
                    };
                    candidates.extend(pointed);
                } else {
                    candidates.insert(k);
                }
            }
            if !full {
                break;
            }
            start = Bound::Excluded(last);
        }
    }
    report.candidates = candidates.len() as u64;

    let store = Tresor::create_with(target, secret, Options::default().with_kdf(kdf)).await?;
    let mut messages = Vec::new();
    for key in candidates {
        let found = source.get(MESSAGES, &key).await.ok().flatten();
        match found.map(|v| open_message(&keys, &key, &v)) {
            // A record lives under its record key (schema v4) or, in an older store, under
            // its message token: either way its AAD names the key it was read under.
            Some(Ok(m)) if lives_under(&keys, &m, &key) => messages.push(m),
            _ => report.lost += 1,
        }
    }
    // Keep the original insertion order (and so the order of equal timestamps).
    messages.sort_by_key(|m| m.seq);
    report.recovered = messages.len() as u64;
    for chunk in messages.chunks(1000) {
        store.messages().save_batch(chunk).await?;
    }
    tokio::task::spawn_blocking(move || drop(source)).await?;
    Ok((store, report))
}

/// Whether `key` is where message `m` belongs: its record key (schema v4) or its message
/// token (schema v1–v3).
fn lives_under(keys: &tresor_crypto::StoreKeys, m: &tresor_schema::Message, key: &[u8]) -> bool {
    let t = tresor_schema::messages::tokens(keys, m);
    t.id.as_slice() == key || tresor_schema::messages::record_key(m, &t) == key
}
