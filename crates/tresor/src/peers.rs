//! Peers for reconnection ([`Peers`], typed tables `peer` and `peer_totals`): upsert, touch,
//! quality, atomic attempt counting with blacklisting, queries, reconnection candidates,
//! cleanup, quotas with eviction, encrypted export/import, stats.
//!
//! Every write runs under the store's writer lock as one atomic batch that also updates the
//! running totals (`peer_totals`: count and encoded bytes), so concurrent writers never lose an
//! increment and quotas are checked against exact numbers. Time is always an argument
//! (`now_ms`, ms since the Unix epoch), so behaviour is deterministic in tests.

use std::ops::Bound;
use std::sync::Arc;

use tokio::sync::MutexGuard;
use tresor_backend::{Direction, KeyRange, WriteBatch};
use tresor_crypto::{KeyHeader, SealingKey, Secret, StoreKeys, keys::hkdf_sha256};
use tresor_schema::catalog::TYPED_INDEX;
use tresor_schema::codec;
use tresor_schema::peers::{
    ConnectionQuality, PEER_TOTALS, PEER_TOTALS_KEY, PEERS, PEERS_BY_BLACKLIST,
    PEERS_BY_LAST_CONNECTED, PEERS_BY_LAST_SEEN, PEERS_BY_QUALITY, Peer, PeerTotals, score_key,
};
use tresor_schema::typed::{index_value, prefix_key, record_key, table_token};

use crate::keys::Keyring;
use crate::store::{Inner, WriterState};
use crate::table::TypedBatch;
use crate::{Error, Order, Tresor};

/// Records read per page by scans and deleted per atomic batch by cleanups.
const PAGE: usize = 256;
/// One day in ms.
const DAY_MS: i64 = 86_400_000;

/// What to do when a write would exceed [`PeerConfig::max_peers`] or
/// [`PeerConfig::max_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EvictionPolicy {
    /// Refuse the write with [`Error::QuotaExceeded`].
    #[default]
    Reject,
    /// Delete the least recently seen peers (never the one being written) until it fits.
    LeastRecentlySeen,
    /// Delete the peers with the lowest quality score (never the one being written) until it
    /// fits.
    LowestQuality,
}

/// Behaviour of a [`Peers`] handle (not persisted: pass the same one to every handle).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PeerConfig {
    /// Failed attempts after which a peer is blacklisted. Default: 5.
    pub max_failures: u32,
    /// How long a blacklisting lasts, in ms. Default: one hour.
    pub blacklist_ms: i64,
    /// At most this many peers (`None`: no limit). Default: `None`.
    pub max_peers: Option<u64>,
    /// At most this many encoded bytes of peers (`None`: no limit). Default: `None`.
    pub max_bytes: Option<u64>,
    /// What to do when a write would exceed a limit. Default: [`EvictionPolicy::Reject`].
    pub eviction: EvictionPolicy,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            blacklist_ms: 3_600_000,
            max_peers: None,
            max_bytes: None,
            eviction: EvictionPolicy::Reject,
        }
    }
}

impl PeerConfig {
    /// Sets the failures before blacklisting and the blacklisting time (ms).
    pub fn with_blacklist(mut self, max_failures: u32, blacklist_ms: i64) -> Self {
        self.max_failures = max_failures;
        self.blacklist_ms = blacklist_ms;
        self
    }

    /// Sets the quotas and what happens when a write would exceed them.
    pub fn with_quota(
        mut self,
        max_peers: Option<u64>,
        max_bytes: Option<u64>,
        eviction: EvictionPolicy,
    ) -> Self {
        self.max_peers = max_peers;
        self.max_bytes = max_bytes;
        self.eviction = eviction;
        self
    }
}

/// The order of [`Peers::query`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PeerSort {
    /// By last seen.
    #[default]
    LastSeen,
    /// By quality score ([`ConnectionQuality::score`]).
    Quality,
    /// By last connected (peers never connected are left out).
    LastConnected,
}

/// A query of [`Peers::query`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PeerQuery {
    /// The order. Default: last seen.
    pub sort: PeerSort,
    /// Direction. Default: descending (newest, best first).
    pub order: Order,
    /// At most this many peers. Default: 100.
    pub limit: usize,
    /// Start after this peer (the last peer id of the previous page).
    pub after: Option<String>,
    /// Only peers with a quality score of at least this.
    pub min_quality: Option<f64>,
    /// Only peers last active (seen or connected) at most this many ms before `now_ms`.
    pub max_age_ms: Option<i64>,
    /// Leave out peers blacklisted at `now_ms`. Default: false.
    pub exclude_blacklisted: bool,
    /// The current time (for `max_age_ms` and `exclude_blacklisted`), ms since the Unix epoch.
    pub now_ms: i64,
}

impl PeerQuery {
    /// Every peer by last seen, newest first, at most `limit`, at time `now_ms`.
    pub fn new(now_ms: i64, limit: usize) -> Self {
        Self {
            sort: PeerSort::LastSeen,
            order: Order::Descending,
            limit,
            after: None,
            min_quality: None,
            max_age_ms: None,
            exclude_blacklisted: false,
            now_ms,
        }
    }

    /// Sets the order.
    pub fn sorted(mut self, sort: PeerSort, order: Order) -> Self {
        self.sort = sort;
        self.order = order;
        self
    }

    /// Starts after peer `after`.
    pub fn after(mut self, after: impl Into<String>) -> Self {
        self.after = Some(after.into());
        self
    }

    /// Only peers with a quality score of at least `min`.
    pub fn min_quality(mut self, min: f64) -> Self {
        self.min_quality = Some(min);
        self
    }

    /// Only peers last active at most `max_age_ms` before `now_ms`.
    pub fn max_age(mut self, max_age_ms: i64) -> Self {
        self.max_age_ms = Some(max_age_ms);
        self
    }

    /// Leaves out blacklisted peers.
    pub fn exclude_blacklisted(mut self) -> Self {
        self.exclude_blacklisted = true;
        self
    }

    fn matches(&self, p: &Peer) -> bool {
        self.min_quality.is_none_or(|m| p.quality.score() >= m)
            && self
                .max_age_ms
                .is_none_or(|a| p.last_active_ms() >= self.now_ms.saturating_sub(a))
            && !(self.exclude_blacklisted && p.is_blacklisted(self.now_ms))
    }
}

/// Retention of [`Peers::cleanup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerRetention {
    /// Peers that ever connected are kept this many days after they were last active.
    pub active_days: u32,
    /// Peers that never connected are kept this many days after they were last seen.
    pub inactive_days: u32,
}

impl PeerRetention {
    /// Keeps connected peers `active_days`, never-connected ones `inactive_days`.
    pub fn new(active_days: u32, inactive_days: u32) -> Self {
        Self {
            active_days,
            inactive_days,
        }
    }

    fn expired(&self, p: &Peer, now_ms: i64) -> bool {
        let days = if p.last_connected_ms.is_some() {
            self.active_days
        } else {
            self.inactive_days
        };
        p.last_active_ms() < now_ms.saturating_sub(i64::from(days) * DAY_MS)
    }
}

/// What [`Peers::record_attempt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptOutcome {
    /// Failed attempts since the last success, this one included.
    pub attempts: u32,
    /// Until when the peer is blacklisted, if it is.
    pub blacklisted_until_ms: Option<i64>,
}

/// A reconnection candidate with its score ([`Peer::reconnection_score`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Candidate {
    /// The peer.
    pub peer: Peer,
    /// Its reconnection score at the query time.
    pub score: f64,
}

/// Counts, sizes and quota use of the peers table.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PeerStats {
    /// Number of peers.
    pub count: u64,
    /// Sum of their encoded sizes, in bytes.
    pub bytes: u64,
    /// The count limit, if any.
    pub max_peers: Option<u64>,
    /// The byte limit, if any.
    pub max_bytes: Option<u64>,
    /// The larger of `count / max_peers` and `bytes / max_bytes` (0 without limits).
    pub utilization: f64,
}

/// The peers of a [`Tresor`], from [`Tresor::peers`] or [`Tresor::peers_with`].
#[derive(Debug, Clone, Copy)]
pub struct Peers<'a> {
    store: &'a Tresor,
    config: PeerConfig,
}

impl Tresor {
    /// The peer repository with the default [`PeerConfig`] (no quota).
    pub fn peers(&self) -> Peers<'_> {
        self.peers_with(PeerConfig::default())
    }

    /// The peer repository with `config`.
    pub fn peers_with(&self, config: PeerConfig) -> Peers<'_> {
        Peers {
            store: self,
            config,
        }
    }
}

/// One atomic peer write in progress (writer lock held): the typed batch overlay plus the
/// totals it will leave.
struct Tx<'a> {
    inner: &'a Inner,
    keys: &'a StoreKeys,
    batch: TypedBatch,
    ops: WriteBatch,
    totals: PeerTotals,
    before: PeerTotals,
}

impl<'a> Tx<'a> {
    async fn begin(inner: &'a Inner, keys: &'a StoreKeys) -> Result<Self, Error> {
        let mut batch = TypedBatch::default();
        let rk = record_key(keys, PEER_TOTALS.name, PEER_TOTALS_KEY);
        let totals = match batch.load(inner, keys, &rk).await? {
            Some(env) => env.decode()?,
            None => PeerTotals::default(),
        };
        Ok(Self {
            inner,
            keys,
            batch,
            ops: WriteBatch::new(),
            totals,
            before: totals,
        })
    }

    /// The peer and its encoded size, as this batch leaves it.
    async fn get(&mut self, peer_id: &str) -> Result<Option<(Peer, u64)>, Error> {
        let rk = record_key(self.keys, PEERS.name, peer_id.as_bytes());
        Ok(match self.batch.load(self.inner, self.keys, &rk).await? {
            Some(env) if env.table == PEERS.name && env.pk == peer_id.as_bytes() => {
                Some((env.decode()?, env.value.len() as u64))
            }
            Some(_) => return Err(Error::Corrupted("peer record holds another record".into())),
            None => None,
        })
    }

    /// Stores `peer` without checking quotas; returns whether it grew the table.
    async fn put_unchecked(&mut self, peer: &Peer) -> Result<bool, Error> {
        let old = self.get(&peer.peer_id).await?;
        self.batch
            .put(self.inner, self.keys, &PEERS, peer, &mut self.ops)
            .await?;
        let new = codec::encode(peer)?.len() as u64;
        let old_size = old.as_ref().map_or(0, |(_, s)| *s);
        if old.is_none() {
            self.totals.count += 1;
        }
        self.totals.bytes = (self.totals.bytes + new).saturating_sub(old_size);
        Ok(old.is_none() || new > old_size)
    }

    /// Stores `peer`, enforcing the quotas of `config`.
    async fn put(&mut self, config: &PeerConfig, peer: &Peer) -> Result<(), Error> {
        if !self.put_unchecked(peer).await? {
            return Ok(());
        }
        loop {
            let over = if config.max_peers.is_some_and(|m| self.totals.count > m) {
                Some(("peers", config.max_peers.unwrap_or(0)))
            } else if config.max_bytes.is_some_and(|m| self.totals.bytes > m) {
                Some(("peer bytes", config.max_bytes.unwrap_or(0)))
            } else {
                None
            };
            let Some((what, limit)) = over else {
                return Ok(());
            };
            let index = match config.eviction {
                EvictionPolicy::Reject => None,
                EvictionPolicy::LeastRecentlySeen => Some(PEERS_BY_LAST_SEEN),
                EvictionPolicy::LowestQuality => Some(PEERS_BY_QUALITY),
            };
            let victim = match index {
                Some(index) => self.first_other(index, &peer.peer_id).await?,
                None => None,
            };
            match victim {
                Some(v) => {
                    self.delete(&v).await?;
                }
                None => return Err(Error::QuotaExceeded { what, limit }),
            }
        }
    }

    async fn delete(&mut self, peer_id: &str) -> Result<bool, Error> {
        let Some((_, size)) = self.get(peer_id).await? else {
            return Ok(false);
        };
        self.batch
            .delete(
                self.inner,
                self.keys,
                PEERS.name,
                peer_id.as_bytes(),
                &mut self.ops,
            )
            .await?;
        self.totals.count = self.totals.count.saturating_sub(1);
        self.totals.bytes = self.totals.bytes.saturating_sub(size);
        Ok(true)
    }

    /// The peer id of the first entry of `index` (ascending) other than `except`, as this
    /// batch leaves the table. Reads the backend directly: the writer lock is held, so the
    /// typed-table scan (which may take it) cannot be used.
    async fn first_other(&mut self, index: &str, except: &str) -> Result<Option<String>, Error> {
        let prefix = prefix_key(self.keys, PEERS.name, index, &[]);
        let table = table_token(self.keys, PEERS.name);
        let mut range = KeyRange::prefix(&prefix);
        loop {
            let page = self
                .inner
                .backend
                .scan(TYPED_INDEX, range.clone(), Direction::Forward, 32)
                .await?;
            let Some((last, _)) = page.last() else {
                return Ok(None);
            };
            range.start = Bound::Excluded(last.clone());
            for (_, v) in &page {
                let rk = [table.as_slice(), &index_value(v)?].concat();
                if let Some(env) = self.batch.load(self.inner, self.keys, &rk).await? {
                    let id = String::from_utf8(env.pk.clone())
                        .map_err(|_| Error::Corrupted("peer id is not UTF-8".into()))?;
                    if id != except {
                        return Ok(Some(id));
                    }
                }
            }
        }
    }

    async fn commit(mut self, w: &mut WriterState) -> Result<(), Error> {
        if self.totals != self.before {
            self.batch
                .put(
                    self.inner,
                    self.keys,
                    &PEER_TOTALS,
                    &self.totals,
                    &mut self.ops,
                )
                .await?;
        }
        if !self.ops.ops().is_empty() {
            self.inner.commit_locked(w, self.ops).await?;
        }
        Ok(())
    }
}

impl<'a> Peers<'a> {
    fn inner(&self) -> &'a Inner {
        &self.store.inner
    }

    /// The configuration of this handle.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    async fn lock(&self) -> Result<(MutexGuard<'a, WriterState>, Arc<Keyring>), Error> {
        let inner = self.inner();
        let mut w = inner.writer.lock().await;
        w.refresh(&*inner.backend).await?;
        inner.finish_typed_rotation_locked(&mut w).await?;
        Ok((w, inner.keyring()))
    }

    /// Changes peer `peer_id` with `change` in one atomic batch (writer lock held). Returns
    /// the new value, `None` if there is no such peer.
    async fn modify(
        &self,
        peer_id: &str,
        change: impl FnOnce(&mut Peer) + Send,
    ) -> Result<Option<Peer>, Error> {
        let (mut w, ring) = self.lock().await?;
        let mut tx = Tx::begin(self.inner(), &ring.current).await?;
        let Some((mut peer, _)) = tx.get(peer_id).await? else {
            return Ok(None);
        };
        change(&mut peer);
        peer.peer_id = peer_id.to_owned();
        tx.put(&self.config, &peer).await?;
        tx.commit(&mut w).await?;
        Ok(Some(peer))
    }

    /// Inserts or replaces `peer`, with the quota of the config enforced.
    ///
    /// # Errors
    /// [`Error::QuotaExceeded`] if the write would exceed a quota and the policy is
    /// [`EvictionPolicy::Reject`] (or nothing is left to evict; nothing is written);
    /// [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn upsert(&self, peer: &Peer) -> Result<(), Error> {
        let (mut w, ring) = self.lock().await?;
        let mut tx = Tx::begin(self.inner(), &ring.current).await?;
        tx.put(&self.config, peer).await?;
        tx.commit(&mut w).await
    }

    /// The peer `peer_id`.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn get(&self, peer_id: &str) -> Result<Option<Peer>, Error> {
        self.store.table(&PEERS).get(peer_id).await
    }

    /// Removes peer `peer_id`. Returns whether it existed.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn remove(&self, peer_id: &str) -> Result<bool, Error> {
        let (mut w, ring) = self.lock().await?;
        let mut tx = Tx::begin(self.inner(), &ring.current).await?;
        let existed = tx.delete(peer_id).await?;
        tx.commit(&mut w).await?;
        Ok(existed)
    }

    /// Marks peer `peer_id` seen at `now_ms` (last seen never moves back). Returns the peer,
    /// `None` if unknown.
    ///
    /// # Errors
    /// As [`Peers::upsert`].
    pub async fn touch(&self, peer_id: &str, now_ms: i64) -> Result<Option<Peer>, Error> {
        self.modify(peer_id, |p| p.last_seen_ms = p.last_seen_ms.max(now_ms))
            .await
    }

    /// Merges `update` into the quality of peer `peer_id` (fields `update` leaves `None` are
    /// kept). Returns the peer, `None` if unknown.
    ///
    /// # Errors
    /// As [`Peers::upsert`].
    pub async fn update_quality(
        &self,
        peer_id: &str,
        update: &ConnectionQuality,
    ) -> Result<Option<Peer>, Error> {
        self.modify(peer_id, |p| p.quality.merge(update)).await
    }

    /// Records a failed connection attempt to `peer_id` at `now_ms`, atomically (concurrent
    /// calls each count once): one more attempt; at [`PeerConfig::max_failures`] attempts or
    /// more the peer is blacklisted until `now_ms + blacklist_ms`. `None` if unknown.
    ///
    /// # Errors
    /// As [`Peers::upsert`].
    pub async fn record_attempt(
        &self,
        peer_id: &str,
        now_ms: i64,
    ) -> Result<Option<AttemptOutcome>, Error> {
        let config = self.config;
        let peer = self
            .modify(peer_id, |p| {
                p.reconnection_attempts = p.reconnection_attempts.saturating_add(1);
                if p.reconnection_attempts >= config.max_failures {
                    p.blacklisted_until_ms = Some(now_ms.saturating_add(config.blacklist_ms));
                }
            })
            .await?;
        Ok(peer.map(|p| AttemptOutcome {
            attempts: p.reconnection_attempts,
            blacklisted_until_ms: p.blacklisted_until_ms,
        }))
    }

    /// Records a successful connection to `peer_id` at `now_ms`: attempts reset, blacklisting
    /// lifted, last connected and last seen set. `None` if unknown.
    ///
    /// # Errors
    /// As [`Peers::upsert`].
    pub async fn record_success(&self, peer_id: &str, now_ms: i64) -> Result<Option<Peer>, Error> {
        self.modify(peer_id, |p| {
            p.reconnection_attempts = 0;
            p.blacklisted_until_ms = None;
            p.last_connected_ms = Some(p.last_connected_ms.unwrap_or(i64::MIN).max(now_ms));
            p.last_seen_ms = p.last_seen_ms.max(now_ms);
        })
        .await
    }

    /// Peers in the order of `q`, filtered by it, at most `q.limit`. Walk pages with
    /// `after` = the last peer id returned.
    ///
    /// # Errors
    /// [`Error::CursorNotFound`] if `after` names no peer (or, for
    /// [`PeerSort::LastConnected`], a peer never connected); as [`crate::Table::scan`].
    pub async fn query(&self, q: &PeerQuery) -> Result<Vec<Peer>, Error> {
        let table = self.store.table(&PEERS);
        let index = match q.sort {
            PeerSort::LastSeen => PEERS_BY_LAST_SEEN,
            PeerSort::Quality => PEERS_BY_QUALITY,
            PeerSort::LastConnected => PEERS_BY_LAST_CONNECTED,
        };
        let mut out = Vec::new();
        let mut after = q.after.clone();
        let page = q.limit.clamp(1, PAGE);
        while out.len() < q.limit {
            let found = table
                .scan(
                    index,
                    &[],
                    q.order,
                    page,
                    after.as_deref().map(str::as_bytes),
                )
                .await?;
            let Some(last) = found.last() else { break };
            after = Some(last.peer_id.clone());
            let done = found.len() < page || past_end(q, last);
            out.extend(found.into_iter().filter(|p| q.matches(p)));
            if done {
                break;
            }
        }
        out.truncate(q.limit);
        Ok(out)
    }

    /// Up to `limit` peers to reconnect to at `now_ms`, best first: not blacklisted, active
    /// within `max_age_ms`, ordered by [`Peer::reconnection_score`] (ties by peer id). Reads
    /// every peer once (a peer's age is the later of two timestamps, so no index bounds it):
    /// O(peers), which quotas keep small.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn reconnection_candidates(
        &self,
        now_ms: i64,
        limit: usize,
        max_age_ms: i64,
    ) -> Result<Vec<Candidate>, Error> {
        let q = PeerQuery::new(now_ms, usize::MAX)
            .max_age(max_age_ms)
            .exclude_blacklisted();
        let found = self.query(&q).await?;
        let mut out: Vec<Candidate> = found
            .into_iter()
            .map(|peer| Candidate {
                score: peer.reconnection_score(now_ms),
                peer,
            })
            .collect();
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.peer.peer_id.cmp(&b.peer.peer_id))
        });
        out.truncate(limit);
        Ok(out)
    }

    /// Deletes the peers `pick` selects among those read in `index` order, re-checking each
    /// one with `pick` under the writer lock before deleting it. Returns how many were
    /// deleted.
    async fn delete_where(
        &self,
        ids: Vec<String>,
        pick: impl Fn(&Peer) -> bool + Send + Sync,
    ) -> Result<u64, Error> {
        let mut deleted = 0;
        for chunk in ids.chunks(PAGE) {
            let (mut w, ring) = self.lock().await?;
            let mut tx = Tx::begin(self.inner(), &ring.current).await?;
            for id in chunk {
                if let Some((p, _)) = tx.get(id).await?
                    && pick(&p)
                    && tx.delete(id).await?
                {
                    deleted += 1;
                }
            }
            tx.commit(&mut w).await?;
        }
        Ok(deleted)
    }

    /// Deletes stale peers at `now_ms`: those that ever connected when last active more than
    /// `retention.active_days` ago, the others when last active more than
    /// `retention.inactive_days` ago. Returns how many were deleted.
    ///
    /// # Errors
    /// As [`Peers::remove`]; batches deleted before an error stay deleted.
    pub async fn cleanup(&self, now_ms: i64, retention: PeerRetention) -> Result<u64, Error> {
        let oldest_kept = now_ms
            .saturating_sub(i64::from(retention.active_days.min(retention.inactive_days)) * DAY_MS);
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .table(&PEERS)
                .scan(
                    PEERS_BY_LAST_SEEN,
                    &[],
                    Order::Ascending,
                    PAGE,
                    after.as_deref().map(str::as_bytes),
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.peer_id.clone());
            let end = page.len() < PAGE || last.last_seen_ms >= oldest_kept;
            ids.extend(
                page.into_iter()
                    .filter(|p| retention.expired(p, now_ms))
                    .map(|p| p.peer_id),
            );
            if end {
                break;
            }
        }
        self.delete_where(ids, |p| retention.expired(p, now_ms))
            .await
    }

    /// Keeps the `keep` best peers in the order of `sort` (most recent, best quality) and
    /// deletes the rest. Returns how many were deleted.
    ///
    /// # Errors
    /// As [`Peers::cleanup`].
    pub async fn keep_best(&self, keep: usize, sort: PeerSort) -> Result<u64, Error> {
        let mut all = self.list_all().await?;
        // Best first; peers never connected rank below every connected one (None < Some).
        all.sort_by(|a, b| {
            match sort {
                PeerSort::LastSeen => b.last_seen_ms.cmp(&a.last_seen_ms),
                PeerSort::Quality => b.quality.score().total_cmp(&a.quality.score()),
                PeerSort::LastConnected => b.last_connected_ms.cmp(&a.last_connected_ms),
            }
            .then_with(|| a.peer_id.cmp(&b.peer_id))
        });
        let ids = all.into_iter().skip(keep).map(|p| p.peer_id).collect();
        self.delete_where(ids, |_| true).await
    }

    /// Lifts every blacklisting that ended at `now_ms` (and resets those peers' attempts).
    /// Returns how many were lifted.
    ///
    /// # Errors
    /// As [`Peers::upsert`].
    pub async fn clear_expired_blacklists(&self, now_ms: i64) -> Result<u64, Error> {
        let mut cleared = 0;
        loop {
            let page = self
                .store
                .table(&PEERS)
                .scan(PEERS_BY_BLACKLIST, &[], Order::Ascending, PAGE, None)
                .await?;
            let ids: Vec<String> = page
                .iter()
                .take_while(|p| p.blacklisted_until_ms.is_some_and(|t| t <= now_ms))
                .map(|p| p.peer_id.clone())
                .collect();
            if ids.is_empty() {
                return Ok(cleared);
            }
            let (mut w, ring) = self.lock().await?;
            let mut tx = Tx::begin(self.inner(), &ring.current).await?;
            for id in &ids {
                if let Some((mut p, _)) = tx.get(id).await?
                    && p.blacklisted_until_ms.is_some_and(|t| t <= now_ms)
                {
                    p.blacklisted_until_ms = None;
                    p.reconnection_attempts = 0;
                    tx.put_unchecked(&p).await?;
                    cleared += 1;
                }
            }
            tx.commit(&mut w).await?;
        }
    }

    /// Every peer, in an order that reveals nothing.
    async fn list_all(&self) -> Result<Vec<Peer>, Error> {
        let table = self.store.table(&PEERS);
        let mut out: Vec<Peer> = Vec::new();
        loop {
            let after = out.last().map(|p| p.peer_id.clone());
            let page = table
                .list(PAGE, after.as_deref().map(str::as_bytes))
                .await?;
            let n = page.len();
            out.extend(page);
            if n < PAGE {
                return Ok(out);
            }
        }
    }

    /// Deletes every peer. Returns how many there were.
    ///
    /// # Errors
    /// As [`Peers::cleanup`].
    pub async fn clear(&self) -> Result<u64, Error> {
        let ids = self
            .list_all()
            .await?
            .into_iter()
            .map(|p| p.peer_id)
            .collect();
        self.delete_where(ids, |_| true).await
    }

    /// Count, bytes and quota use.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn stats(&self) -> Result<PeerStats, Error> {
        let t = self
            .store
            .table(&PEER_TOTALS)
            .get(PEER_TOTALS_KEY)
            .await?
            .unwrap_or_default();
        let ratio = |n: u64, m: Option<u64>| match m {
            Some(0) => 1.0,
            Some(m) => n as f64 / m as f64,
            None => 0.0,
        };
        Ok(PeerStats {
            count: t.count,
            bytes: t.bytes,
            max_peers: self.config.max_peers,
            max_bytes: self.config.max_bytes,
            utilization: ratio(t.count, self.config.max_peers)
                .max(ratio(t.bytes, self.config.max_bytes)),
        })
    }

    /// Every peer as an encrypted export file (layout in `docs/FORMAT.md`, "Peer export"),
    /// sealed under a key derived from `secret` (a passphrase, stretched with the store's
    /// [`crate::Options::kdf`], or a raw key).
    ///
    /// # Errors
    /// [`Error::Crypto`] if the KDF or sealing fails; as [`crate::Table::list`].
    pub async fn export(&self, secret: &Secret) -> Result<Vec<u8>, Error> {
        let peers = self.list_all().await?;
        let payload = codec::encode(&peers)?;
        let secret = secret.clone();
        let kdf = self.inner().options.kdf;
        tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Error> {
            let (header, dek) = KeyHeader::create(&secret, kdf)?;
            let header = header.encode();
            let key = export_key(dek.expose());
            let mut out = EXPORT_MAGIC.to_vec();
            out.extend_from_slice(&header);
            out.extend_from_slice(&key.seal(&export_aad(&header), &payload)?);
            Ok(out)
        })
        .await?
    }

    /// Imports the peers of an export file made by [`Peers::export`], replacing peers with
    /// the same id, in atomic batches of 256 (quotas enforced). Returns how many were read.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `file` is not a peer export; [`Error::WrongPassphrase`] if
    /// `secret` does not open it; [`Error::Corrupted`] if it was altered; as
    /// [`Peers::upsert`] (batches before the failing one stay imported).
    pub async fn import(&self, file: &[u8], secret: &Secret) -> Result<u64, Error> {
        let Some(rest) = file.strip_prefix(EXPORT_MAGIC) else {
            return Err(Error::InvalidInput("not a tresor peer export".into()));
        };
        if rest.len() < tresor_crypto::header::HEADER_LEN {
            return Err(Error::InvalidInput("truncated peer export".into()));
        }
        let (header, sealed) = rest.split_at(tresor_crypto::header::HEADER_LEN);
        let (header, sealed) = (header.to_vec(), sealed.to_vec());
        let secret = secret.clone();
        let payload = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Error> {
            let dek = KeyHeader::decode(&header)?.unlock(&secret)?;
            export_key(dek.expose())
                .open(&export_aad(&header), &sealed)
                .map_err(|_| Error::Corrupted("peer export does not authenticate".into()))
        })
        .await??;
        let peers: Vec<Peer> = codec::decode(&payload)?;
        for chunk in peers.chunks(PAGE) {
            let (mut w, ring) = self.lock().await?;
            let mut tx = Tx::begin(self.inner(), &ring.current).await?;
            for p in chunk {
                tx.put(&self.config, p).await?;
            }
            tx.commit(&mut w).await?;
        }
        Ok(peers.len() as u64)
    }
}

/// Whether a scan page ending at `last` is past every peer `q` can still match. Only the
/// quality order allows stopping early: a peer's age is the later of two timestamps, so an
/// old last-seen (or last-connected) value says nothing about the next peer's age.
fn past_end(q: &PeerQuery, last: &Peer) -> bool {
    q.order == Order::Descending
        && q.sort == PeerSort::Quality
        && q.min_quality
            .is_some_and(|m| score_key(last.quality.score()) < score_key(m))
}

/// Magic of a peer export file (8 bytes).
pub const EXPORT_MAGIC: &[u8; 8] = b"TRPEERS1";
/// Label of the export key derivation and of the export AAD.
const EXPORT_LABEL: &[u8] = b"tresor/v1/peers-export";

fn export_key(dek: &[u8; 32]) -> SealingKey {
    SealingKey::new(&hkdf_sha256(&[], dek, EXPORT_LABEL))
}

fn export_aad(header: &[u8]) -> Vec<u8> {
    [EXPORT_LABEL, EXPORT_MAGIC.as_slice(), header].concat()
}
