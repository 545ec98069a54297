//! [`TresorStateStore`]: matrix-sdk's `StateStore` on the `matrix` typed table.
//!
//! Each kind of state is a namespace of the table (`docs/MATRIX.md` lists them); room-scoped
//! entries have the room id as their first key part, so a room's entries are found (and
//! removed) through the prefix index.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use matrix_sdk_base::deserialized_responses::{DisplayName, RawAnySyncOrStrippedState};
use matrix_sdk_base::store::{
    ChildTransactionId, DependentQueuedRequest, DependentQueuedRequestKind, QueueWedgeError,
    QueuedRequest, QueuedRequestKind, RoomLoadSettings, SentRequestKey, StateChanges, StateStore,
    StateStoreDataKey, StateStoreDataValue, StoredThreadSubscription, ThreadSubscriptionStatus,
    compare_thread_subscription_bump_stamps,
};
use matrix_sdk_base::{
    MinimalRoomMemberEvent, ROOM_VERSION_FALLBACK, ROOM_VERSION_RULES_FALLBACK, RoomInfo,
    RoomMemberships,
};
use ruma::canonical_json::{RedactedBecause, redact};
use ruma::events::presence::PresenceEvent;
use ruma::events::receipt::{Receipt, ReceiptThread, ReceiptType};
use ruma::events::room::member::{MembershipState, StrippedRoomMemberEvent, SyncRoomMemberEvent};
use ruma::events::{
    AnyGlobalAccountDataEvent, AnyRoomAccountDataEvent, GlobalAccountDataEventType,
    RoomAccountDataEventType, StateEventType,
};
use ruma::serde::Raw;
use ruma::{
    CanonicalJsonObject, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId,
    OwnedTransactionId, OwnedUserId, RoomId, TransactionId, UserId,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tresor::Tresor;

use crate::Error;
use crate::kv::{Kv, Txn};

// Namespaces of the state store (prefix `s.`; the crypto store's are `c.`).
const KV: &str = "s.kv";
const PROFILE: &str = "s.profile";
const DISPLAY_NAME: &str = "s.display_name";
const MEMBER: &str = "s.member";
const STRIPPED_MEMBER: &str = "s.stripped_member";
const ROOM_INFO: &str = "s.room_info";
const STATE: &str = "s.state";
const STRIPPED_STATE: &str = "s.stripped_state";
const ROOM_ACCOUNT_DATA: &str = "s.room_account_data";
const ACCOUNT_DATA: &str = "s.account_data";
const PRESENCE: &str = "s.presence";
const RECEIPT_BY_USER: &str = "s.receipt_user";
const RECEIPT_BY_EVENT: &str = "s.receipt_event";
const CUSTOM: &str = "s.custom";
const SEND_QUEUE: &str = "s.send_queue";
const DEPENDENT: &str = "s.dependent";
const THREAD_SUB: &str = "s.thread_sub";

/// Namespaces whose first key part is a room id (cleared by `remove_room`).
const ROOM_SCOPED: &[&str] = &[
    PROFILE,
    DISPLAY_NAME,
    MEMBER,
    STRIPPED_MEMBER,
    STATE,
    STRIPPED_STATE,
    ROOM_ACCOUNT_DATA,
    RECEIPT_BY_USER,
    RECEIPT_BY_EVENT,
    SEND_QUEUE,
    DEPENDENT,
    THREAD_SUB,
];

/// matrix-sdk's `StateStore` on a tresor store. Cheap to clone (shares the store).
#[derive(Debug, Clone)]
pub struct TresorStateStore {
    store: Arc<Tresor>,
    /// Serializes read-modify-write steps (transactions read, then commit).
    write: Arc<Mutex<()>>,
}

/// A queued request as stored (matrix-sdk's `QueuedRequest` is not serializable).
#[derive(Serialize, Deserialize)]
struct StoredRequest {
    seq: u64,
    kind: QueuedRequestKind,
    transaction_id: OwnedTransactionId,
    error: Option<QueueWedgeError>,
    priority: usize,
    created_at: MilliSecondsSinceUnixEpoch,
}

/// A dependent request with its insertion order.
#[derive(Serialize, Deserialize)]
struct StoredDependent {
    seq: u64,
    request: DependentQueuedRequest,
}

/// A thread subscription as stored.
#[derive(Serialize, Deserialize)]
struct StoredSub {
    status: String,
    bump_stamp: Option<u64>,
}

/// The key parts of a `StateStoreDataKey`.
fn data_key(key: &StateStoreDataKey<'_>) -> Vec<Vec<u8>> {
    let name = |n: &str| n.as_bytes().to_vec();
    match key {
        StateStoreDataKey::SyncToken => vec![name(StateStoreDataKey::SYNC_TOKEN)],
        StateStoreDataKey::SupportedVersions => vec![name(StateStoreDataKey::SUPPORTED_VERSIONS)],
        StateStoreDataKey::WellKnown => vec![name(StateStoreDataKey::WELL_KNOWN)],
        StateStoreDataKey::Filter(f) => vec![name(StateStoreDataKey::FILTER), name(f)],
        StateStoreDataKey::UserAvatarUrl(u) => {
            vec![name(StateStoreDataKey::USER_AVATAR_URL), name(u.as_str())]
        }
        StateStoreDataKey::RecentlyVisitedRooms(u) => {
            vec![
                name(StateStoreDataKey::RECENTLY_VISITED_ROOMS),
                name(u.as_str()),
            ]
        }
        StateStoreDataKey::UtdHookManagerData => {
            vec![name(StateStoreDataKey::UTD_HOOK_MANAGER_DATA)]
        }
        StateStoreDataKey::OneTimeKeyAlreadyUploaded => {
            vec![name(StateStoreDataKey::ONE_TIME_KEY_ALREADY_UPLOADED)]
        }
        StateStoreDataKey::ComposerDraft(room, thread) => vec![
            name(StateStoreDataKey::COMPOSER_DRAFT),
            name(room.as_str()),
            // No event id is empty: "" stands for "no thread".
            name(thread.map_or("", |t| t.as_str())),
        ],
        StateStoreDataKey::SeenKnockRequests(room) => {
            vec![
                name(StateStoreDataKey::SEEN_KNOCK_REQUESTS),
                name(room.as_str()),
            ]
        }
        StateStoreDataKey::ThreadSubscriptionsCatchupTokens => {
            vec![name(StateStoreDataKey::THREAD_SUBSCRIPTIONS_CATCHUP_TOKENS)]
        }
        StateStoreDataKey::HomeserverCapabilities => {
            vec![name(StateStoreDataKey::HOMESERVER_CAPABILITIES)]
        }
        #[allow(unreachable_patterns)]
        _ => vec![name("unknown")],
    }
}

fn refs(parts: &[Vec<u8>]) -> Vec<&[u8]> {
    parts.iter().map(Vec::as_slice).collect()
}

/// The stored form of a receipt type and thread.
fn receipt_kind(receipt_type: &ReceiptType, thread: &ReceiptThread) -> Vec<u8> {
    let mut k = receipt_type.to_string().into_bytes();
    k.push(0);
    match thread.as_str() {
        Some(t) => {
            k.push(1);
            k.extend_from_slice(t.as_bytes());
        }
        None => k.push(0),
    }
    k
}

/// The key of a display name (its normalized form, as matrix-sdk compares them).
fn display_name_key(name: &DisplayName) -> &str {
    name.as_normalized_str().unwrap_or(name.as_raw_str())
}

impl TresorStateStore {
    /// The state store on `store` (its entries live in the typed table `matrix`). Clone it to
    /// share it: two stores made by `new` on one tresor store have separate write locks, so
    /// their read-modify-write calls could interleave.
    pub fn new(store: Arc<Tresor>) -> Self {
        Self {
            store,
            write: Arc::new(Mutex::new(())),
        }
    }

    fn kv(&self) -> Kv<'_> {
        Kv::new(&self.store)
    }

    async fn state_events(
        &self,
        room_id: &RoomId,
        event_type: &StateEventType,
    ) -> Result<Vec<RawAnySyncOrStrippedState>, Error> {
        let room = room_id.as_bytes();
        let ty = event_type.to_string();
        let stripped = self
            .kv()
            .scan(STRIPPED_STATE, &[room, ty.as_bytes()])
            .await?;
        if !stripped.is_empty() {
            return stripped
                .iter()
                .map(|e| Ok(RawAnySyncOrStrippedState::Stripped(e.decode()?)))
                .collect();
        }
        self.kv()
            .scan(STATE, &[room, ty.as_bytes()])
            .await?
            .iter()
            .map(|e| Ok(RawAnySyncOrStrippedState::Sync(e.decode()?)))
            .collect()
    }

    async fn save_changes_in(
        &self,
        txn: &mut Txn<'_>,
        changes: &StateChanges,
    ) -> Result<(), Error> {
        if let Some(token) = &changes.sync_token {
            txn.put(KV, &[StateStoreDataKey::SYNC_TOKEN.as_bytes()], token)?;
        }
        for (room, users) in &changes.profiles_to_delete {
            for user in users {
                txn.delete(PROFILE, &[room.as_bytes(), user.as_bytes()]);
            }
        }
        for (room, users) in &changes.profiles {
            for (user, profile) in users {
                txn.put(PROFILE, &[room.as_bytes(), user.as_bytes()], profile)?;
            }
        }
        for (room, map) in &changes.ambiguity_maps {
            for (name, users) in map {
                let key = display_name_key(name);
                txn.put(DISPLAY_NAME, &[room.as_bytes(), key.as_bytes()], users)?;
            }
        }
        for (event_type, event) in &changes.account_data {
            txn.put(ACCOUNT_DATA, &[event_type.to_string().as_bytes()], event)?;
        }
        for (room, events) in &changes.room_account_data {
            for (event_type, event) in events {
                let ty = event_type.to_string();
                txn.put(ROOM_ACCOUNT_DATA, &[room.as_bytes(), ty.as_bytes()], event)?;
            }
        }
        for (room, event_types) in &changes.state {
            let room_b = room.as_bytes();
            let mut stripped_cleared = false;
            let mut stripped_members_cleared = false;
            for (event_type, events) in event_types {
                let ty = event_type.to_string();
                for (state_key, raw) in events {
                    txn.put(STATE, &[room_b, ty.as_bytes(), state_key.as_bytes()], raw)?;
                    if !stripped_cleared {
                        txn.delete_prefix(STRIPPED_STATE, &[room_b]).await?;
                        stripped_cleared = true;
                    }
                    if *event_type == StateEventType::RoomMember {
                        let Ok(event) = raw.deserialize_as_unchecked::<SyncRoomMemberEvent>()
                        else {
                            continue;
                        };
                        if !stripped_members_cleared {
                            txn.delete_prefix(STRIPPED_MEMBER, &[room_b]).await?;
                            stripped_members_cleared = true;
                        }
                        txn.put(
                            MEMBER,
                            &[room_b, event.state_key().as_bytes()],
                            event.membership(),
                        )?;
                    }
                }
            }
        }
        for (room, info) in &changes.room_infos {
            txn.put(ROOM_INFO, &[room.as_bytes()], info)?;
        }
        for (sender, event) in &changes.presence {
            txn.put(PRESENCE, &[sender.as_bytes()], event)?;
        }
        for (room, event_types) in &changes.stripped_state {
            let room_b = room.as_bytes();
            for (event_type, events) in event_types {
                let ty = event_type.to_string();
                for (state_key, raw) in events {
                    txn.put(
                        STRIPPED_STATE,
                        &[room_b, ty.as_bytes(), state_key.as_bytes()],
                        raw,
                    )?;
                    if *event_type == StateEventType::RoomMember {
                        let Ok(event) = raw.deserialize_as_unchecked::<StrippedRoomMemberEvent>()
                        else {
                            continue;
                        };
                        txn.put(
                            STRIPPED_MEMBER,
                            &[room_b, event.state_key.as_bytes()],
                            &event.content.membership,
                        )?;
                    }
                }
            }
        }
        for (room, content) in &changes.receipts {
            let room_b = room.as_bytes();
            for (event_id, receipts) in &content.0 {
                for (receipt_type, receipts) in receipts {
                    for (user_id, receipt) in receipts {
                        let kind = receipt_kind(receipt_type, &receipt.thread);
                        let user_key = [room_b, kind.as_slice(), user_id.as_bytes()];
                        if let Some((old_event, _)) = txn
                            .get_json::<(OwnedEventId, Receipt)>(RECEIPT_BY_USER, &user_key)
                            .await?
                        {
                            let old = [kind.as_slice(), old_event.as_bytes()].concat();
                            txn.delete(RECEIPT_BY_EVENT, &[room_b, &old, user_id.as_bytes()]);
                        }
                        txn.put(RECEIPT_BY_USER, &user_key, &(event_id, receipt))?;
                        let by_event = [kind.as_slice(), event_id.as_bytes()].concat();
                        txn.put(
                            RECEIPT_BY_EVENT,
                            &[room_b, &by_event, user_id.as_bytes()],
                            &(user_id, receipt),
                        )?;
                    }
                }
            }
        }
        for (room_id, redactions) in &changes.redactions {
            let mut rules = None;
            for entry in txn.scan(STATE, &[room_id.as_bytes()]).await? {
                let raw: Raw<CanonicalJsonObject> = entry.decode()?;
                let Ok(Some(event_id)) = raw.get_field::<OwnedEventId>("event_id") else {
                    continue;
                };
                let Some(redaction) = redactions.get(&event_id) else {
                    continue;
                };
                if rules.is_none() {
                    let info: Option<RoomInfo> =
                        txn.get_json(ROOM_INFO, &[room_id.as_bytes()]).await?;
                    rules = Some(
                        info.map(|i| i.room_version_rules_or_default())
                            .unwrap_or_else(|| {
                                let _ = ROOM_VERSION_FALLBACK;
                                ROOM_VERSION_RULES_FALLBACK
                            })
                            .redaction,
                    );
                }
                let Some(rules) = rules.as_ref() else {
                    continue;
                };
                let redacted = redact(
                    raw.deserialize()?,
                    rules,
                    Some(RedactedBecause::from_raw_event(redaction)?),
                )
                .map_err(Error::Redaction)?;
                txn.put(STATE, &refs(&entry.parts), &redacted)?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl StateStore for TresorStateStore {
    type Error = Error;

    async fn get_kv_data(
        &self,
        key: StateStoreDataKey<'_>,
    ) -> Result<Option<StateStoreDataValue>, Error> {
        let parts = data_key(&key);
        let Some(entry) = self.kv().get(KV, &refs(&parts)).await? else {
            return Ok(None);
        };
        Ok(Some(match key {
            StateStoreDataKey::SyncToken => StateStoreDataValue::SyncToken(entry.decode()?),
            StateStoreDataKey::SupportedVersions => {
                StateStoreDataValue::SupportedVersions(entry.decode()?)
            }
            StateStoreDataKey::WellKnown => StateStoreDataValue::WellKnown(entry.decode()?),
            StateStoreDataKey::Filter(_) => StateStoreDataValue::Filter(entry.decode()?),
            StateStoreDataKey::UserAvatarUrl(_) => {
                StateStoreDataValue::UserAvatarUrl(entry.decode()?)
            }
            StateStoreDataKey::RecentlyVisitedRooms(_) => {
                StateStoreDataValue::RecentlyVisitedRooms(entry.decode()?)
            }
            StateStoreDataKey::UtdHookManagerData => {
                StateStoreDataValue::UtdHookManagerData(entry.decode()?)
            }
            StateStoreDataKey::OneTimeKeyAlreadyUploaded => {
                StateStoreDataValue::OneTimeKeyAlreadyUploaded
            }
            StateStoreDataKey::ComposerDraft(..) => {
                StateStoreDataValue::ComposerDraft(entry.decode()?)
            }
            StateStoreDataKey::SeenKnockRequests(_) => {
                StateStoreDataValue::SeenKnockRequests(entry.decode()?)
            }
            StateStoreDataKey::ThreadSubscriptionsCatchupTokens => {
                StateStoreDataValue::ThreadSubscriptionsCatchupTokens(entry.decode()?)
            }
            StateStoreDataKey::HomeserverCapabilities => {
                StateStoreDataValue::HomeserverCapabilities(entry.decode()?)
            }
            #[allow(unreachable_patterns)]
            _ => return Ok(None),
        }))
    }

    async fn set_kv_data(
        &self,
        key: StateStoreDataKey<'_>,
        value: StateStoreDataValue,
    ) -> Result<(), Error> {
        let mismatch = || Error::WrongValue("state store data");
        let json = match (&key, value) {
            (StateStoreDataKey::SyncToken, StateStoreDataValue::SyncToken(v)) => {
                serde_json::to_vec(&v)?
            }
            (StateStoreDataKey::SupportedVersions, StateStoreDataValue::SupportedVersions(v)) => {
                serde_json::to_vec(&v)?
            }
            (StateStoreDataKey::WellKnown, StateStoreDataValue::WellKnown(v)) => {
                serde_json::to_vec(&v)?
            }
            (StateStoreDataKey::Filter(_), StateStoreDataValue::Filter(v)) => {
                serde_json::to_vec(&v)?
            }
            (StateStoreDataKey::UserAvatarUrl(_), StateStoreDataValue::UserAvatarUrl(v)) => {
                serde_json::to_vec(&v)?
            }
            (
                StateStoreDataKey::RecentlyVisitedRooms(_),
                StateStoreDataValue::RecentlyVisitedRooms(v),
            ) => serde_json::to_vec(&v)?,
            (StateStoreDataKey::UtdHookManagerData, StateStoreDataValue::UtdHookManagerData(v)) => {
                serde_json::to_vec(&v)?
            }
            (StateStoreDataKey::OneTimeKeyAlreadyUploaded, _) => serde_json::to_vec(&true)?,
            (StateStoreDataKey::ComposerDraft(..), StateStoreDataValue::ComposerDraft(v)) => {
                serde_json::to_vec(&v)?
            }
            (
                StateStoreDataKey::SeenKnockRequests(_),
                StateStoreDataValue::SeenKnockRequests(v),
            ) => serde_json::to_vec(&v)?,
            (
                StateStoreDataKey::ThreadSubscriptionsCatchupTokens,
                StateStoreDataValue::ThreadSubscriptionsCatchupTokens(v),
            ) => serde_json::to_vec(&v)?,
            (
                StateStoreDataKey::HomeserverCapabilities,
                StateStoreDataValue::HomeserverCapabilities(v),
            ) => serde_json::to_vec(&v)?,
            _ => return Err(mismatch()),
        };
        let parts = data_key(&key);
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        txn.put_raw(KV, &refs(&parts), json);
        txn.commit().await
    }

    async fn remove_kv_data(&self, key: StateStoreDataKey<'_>) -> Result<(), Error> {
        let parts = data_key(&key);
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        txn.delete(KV, &refs(&parts));
        txn.commit().await
    }

    async fn save_changes(&self, changes: &StateChanges) -> Result<(), Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        self.save_changes_in(&mut txn, changes).await?;
        txn.commit().await
    }

    async fn get_presence_event(
        &self,
        user_id: &UserId,
    ) -> Result<Option<Raw<PresenceEvent>>, Error> {
        self.kv().get_json(PRESENCE, &[user_id.as_bytes()]).await
    }

    async fn get_presence_events(
        &self,
        user_ids: &[OwnedUserId],
    ) -> Result<Vec<Raw<PresenceEvent>>, Error> {
        let mut out = Vec::new();
        for user in user_ids {
            if let Some(e) = self.get_presence_event(user).await? {
                out.push(e);
            }
        }
        Ok(out)
    }

    async fn get_state_event(
        &self,
        room_id: &RoomId,
        event_type: StateEventType,
        state_key: &str,
    ) -> Result<Option<RawAnySyncOrStrippedState>, Error> {
        Ok(self
            .get_state_events_for_keys(room_id, event_type, &[state_key])
            .await?
            .into_iter()
            .next())
    }

    async fn get_state_events(
        &self,
        room_id: &RoomId,
        event_type: StateEventType,
    ) -> Result<Vec<RawAnySyncOrStrippedState>, Error> {
        self.state_events(room_id, &event_type).await
    }

    async fn get_state_events_for_keys(
        &self,
        room_id: &RoomId,
        event_type: StateEventType,
        state_keys: &[&str],
    ) -> Result<Vec<RawAnySyncOrStrippedState>, Error> {
        let room = room_id.as_bytes();
        let ty = event_type.to_string();
        let has_stripped = !self
            .kv()
            .scan(STRIPPED_STATE, &[room, ty.as_bytes()])
            .await?
            .is_empty();
        let mut out = Vec::new();
        for key in state_keys {
            let parts = [room, ty.as_bytes(), key.as_bytes()];
            if has_stripped {
                if let Some(e) = self.kv().get(STRIPPED_STATE, &parts).await? {
                    out.push(RawAnySyncOrStrippedState::Stripped(e.decode()?));
                }
            } else if let Some(e) = self.kv().get(STATE, &parts).await? {
                out.push(RawAnySyncOrStrippedState::Sync(e.decode()?));
            }
        }
        Ok(out)
    }

    async fn get_profile(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
    ) -> Result<Option<MinimalRoomMemberEvent>, Error> {
        self.kv()
            .get_json(PROFILE, &[room_id.as_bytes(), user_id.as_bytes()])
            .await
    }

    async fn get_profiles<'a>(
        &self,
        room_id: &RoomId,
        user_ids: &'a [OwnedUserId],
    ) -> Result<BTreeMap<&'a UserId, MinimalRoomMemberEvent>, Error> {
        let mut out = BTreeMap::new();
        for user in user_ids {
            if let Some(p) = self.get_profile(room_id, user).await? {
                out.insert(&**user, p);
            }
        }
        Ok(out)
    }

    async fn get_user_ids(
        &self,
        room_id: &RoomId,
        memberships: RoomMemberships,
    ) -> Result<Vec<OwnedUserId>, Error> {
        for ns in [STRIPPED_MEMBER, MEMBER] {
            let mut ids = Vec::new();
            for e in self.kv().scan(ns, &[room_id.as_bytes()]).await? {
                let membership: MembershipState = e.decode()?;
                if memberships.matches(&membership) {
                    ids.push(UserId::parse(e.part_str(1)?)?);
                }
            }
            if !ids.is_empty() {
                return Ok(ids);
            }
        }
        Ok(Vec::new())
    }

    async fn get_room_infos(
        &self,
        room_load_settings: &RoomLoadSettings,
    ) -> Result<Vec<RoomInfo>, Error> {
        match room_load_settings {
            RoomLoadSettings::One(room_id) => Ok(self
                .kv()
                .get_json(ROOM_INFO, &[room_id.as_bytes()])
                .await?
                .into_iter()
                .collect()),
            _ => self
                .kv()
                .scan(ROOM_INFO, &[])
                .await?
                .iter()
                .map(|e| e.decode())
                .collect(),
        }
    }

    async fn get_users_with_display_name(
        &self,
        room_id: &RoomId,
        display_name: &DisplayName,
    ) -> Result<BTreeSet<OwnedUserId>, Error> {
        let key = display_name_key(display_name);
        Ok(self
            .kv()
            .get_json(DISPLAY_NAME, &[room_id.as_bytes(), key.as_bytes()])
            .await?
            .unwrap_or_default())
    }

    async fn get_users_with_display_names<'a>(
        &self,
        room_id: &RoomId,
        display_names: &'a [DisplayName],
    ) -> Result<HashMap<&'a DisplayName, BTreeSet<OwnedUserId>>, Error> {
        let mut out = HashMap::new();
        for name in display_names {
            let key = display_name_key(name);
            if let Some(users) = self
                .kv()
                .get_json(DISPLAY_NAME, &[room_id.as_bytes(), key.as_bytes()])
                .await?
            {
                out.insert(name, users);
            }
        }
        Ok(out)
    }

    async fn get_account_data_event(
        &self,
        event_type: GlobalAccountDataEventType,
    ) -> Result<Option<Raw<AnyGlobalAccountDataEvent>>, Error> {
        self.kv()
            .get_json(ACCOUNT_DATA, &[event_type.to_string().as_bytes()])
            .await
    }

    async fn get_room_account_data_event(
        &self,
        room_id: &RoomId,
        event_type: RoomAccountDataEventType,
    ) -> Result<Option<Raw<AnyRoomAccountDataEvent>>, Error> {
        let ty = event_type.to_string();
        self.kv()
            .get_json(ROOM_ACCOUNT_DATA, &[room_id.as_bytes(), ty.as_bytes()])
            .await
    }

    async fn get_user_room_receipt_event(
        &self,
        room_id: &RoomId,
        receipt_type: ReceiptType,
        thread: ReceiptThread,
        user_id: &UserId,
    ) -> Result<Option<(OwnedEventId, Receipt)>, Error> {
        let kind = receipt_kind(&receipt_type, &thread);
        self.kv()
            .get_json(
                RECEIPT_BY_USER,
                &[room_id.as_bytes(), &kind, user_id.as_bytes()],
            )
            .await
    }

    async fn get_event_room_receipt_events(
        &self,
        room_id: &RoomId,
        receipt_type: ReceiptType,
        thread: ReceiptThread,
        event_id: &EventId,
    ) -> Result<Vec<(OwnedUserId, Receipt)>, Error> {
        let kind = receipt_kind(&receipt_type, &thread);
        let by_event = [kind.as_slice(), event_id.as_bytes()].concat();
        self.kv()
            .scan(RECEIPT_BY_EVENT, &[room_id.as_bytes(), &by_event])
            .await?
            .iter()
            .map(|e| e.decode())
            .collect()
    }

    async fn get_custom_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.kv().get(CUSTOM, &[key]).await?.map(|e| e.value))
    }

    async fn set_custom_value(&self, key: &[u8], value: Vec<u8>) -> Result<Option<Vec<u8>>, Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let old = txn.get(CUSTOM, &[key]).await?.map(|e| e.value);
        txn.put_raw(CUSTOM, &[key], value);
        txn.commit().await?;
        Ok(old)
    }

    async fn remove_custom_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let old = txn.get(CUSTOM, &[key]).await?.map(|e| e.value);
        txn.delete(CUSTOM, &[key]);
        txn.commit().await?;
        Ok(old)
    }

    async fn remove_room(&self, room_id: &RoomId) -> Result<(), Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let room = room_id.as_bytes();
        for ns in ROOM_SCOPED {
            txn.delete_prefix(ns, &[room]).await?;
        }
        txn.delete(ROOM_INFO, &[room]);
        txn.commit().await
    }

    async fn save_send_queue_request(
        &self,
        room_id: &RoomId,
        transaction_id: OwnedTransactionId,
        created_at: MilliSecondsSinceUnixEpoch,
        kind: QueuedRequestKind,
        priority: usize,
    ) -> Result<(), Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let room = room_id.as_bytes();
        let mut seq = 0;
        for e in txn.scan(SEND_QUEUE, &[room]).await? {
            seq = seq.max(e.decode::<StoredRequest>()?.seq + 1);
        }
        let stored = StoredRequest {
            seq,
            kind,
            transaction_id: transaction_id.clone(),
            error: None,
            priority,
            created_at,
        };
        txn.put(SEND_QUEUE, &[room, transaction_id.as_bytes()], &stored)?;
        txn.commit().await
    }

    async fn update_send_queue_request(
        &self,
        room_id: &RoomId,
        transaction_id: &TransactionId,
        kind: QueuedRequestKind,
    ) -> Result<bool, Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let parts = [room_id.as_bytes(), transaction_id.as_bytes()];
        let Some(mut stored) = txn.get_json::<StoredRequest>(SEND_QUEUE, &parts).await? else {
            return Ok(false);
        };
        stored.kind = kind;
        stored.error = None;
        txn.put(SEND_QUEUE, &parts, &stored)?;
        txn.commit().await?;
        Ok(true)
    }

    async fn remove_send_queue_request(
        &self,
        room_id: &RoomId,
        transaction_id: &TransactionId,
    ) -> Result<bool, Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let parts = [room_id.as_bytes(), transaction_id.as_bytes()];
        if txn.get(SEND_QUEUE, &parts).await?.is_none() {
            return Ok(false);
        }
        txn.delete(SEND_QUEUE, &parts);
        txn.commit().await?;
        Ok(true)
    }

    async fn load_send_queue_requests(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<QueuedRequest>, Error> {
        let mut stored: Vec<StoredRequest> = self
            .kv()
            .scan(SEND_QUEUE, &[room_id.as_bytes()])
            .await?
            .iter()
            .map(|e| e.decode())
            .collect::<Result<_, _>>()?;
        // Highest priority first; insertion order within a priority.
        stored.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.seq));
        Ok(stored
            .into_iter()
            .map(|r| QueuedRequest {
                kind: r.kind,
                transaction_id: r.transaction_id,
                error: r.error,
                priority: r.priority,
                created_at: r.created_at,
            })
            .collect())
    }

    async fn update_send_queue_request_status(
        &self,
        room_id: &RoomId,
        transaction_id: &TransactionId,
        error: Option<QueueWedgeError>,
    ) -> Result<(), Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let parts = [room_id.as_bytes(), transaction_id.as_bytes()];
        if let Some(mut stored) = txn.get_json::<StoredRequest>(SEND_QUEUE, &parts).await? {
            stored.error = error;
            txn.put(SEND_QUEUE, &parts, &stored)?;
        }
        txn.commit().await
    }

    async fn load_rooms_with_unsent_requests(&self) -> Result<Vec<OwnedRoomId>, Error> {
        let mut rooms = BTreeSet::new();
        for e in self.kv().scan(SEND_QUEUE, &[]).await? {
            rooms.insert(RoomId::parse(e.part_str(0)?)?);
        }
        Ok(rooms.into_iter().collect())
    }

    async fn save_dependent_queued_request(
        &self,
        room_id: &RoomId,
        parent_txn_id: &TransactionId,
        own_txn_id: ChildTransactionId,
        created_at: MilliSecondsSinceUnixEpoch,
        content: DependentQueuedRequestKind,
    ) -> Result<(), Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let room = room_id.as_bytes();
        let mut seq = 0;
        for e in txn.scan(DEPENDENT, &[room]).await? {
            seq = seq.max(e.decode::<StoredDependent>()?.seq + 1);
        }
        let own = own_txn_id.to_string();
        let stored = StoredDependent {
            seq,
            request: DependentQueuedRequest {
                kind: content,
                parent_transaction_id: parent_txn_id.to_owned(),
                own_transaction_id: own_txn_id,
                parent_key: None,
                created_at,
            },
        };
        txn.put(DEPENDENT, &[room, own.as_bytes()], &stored)?;
        txn.commit().await
    }

    async fn mark_dependent_queued_requests_as_ready(
        &self,
        room_id: &RoomId,
        parent_txn_id: &TransactionId,
        sent_parent_key: SentRequestKey,
    ) -> Result<usize, Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let mut updated = 0;
        for e in txn.scan(DEPENDENT, &[room_id.as_bytes()]).await? {
            let mut stored: StoredDependent = e.decode()?;
            if stored.request.parent_transaction_id == parent_txn_id {
                stored.request.parent_key = Some(sent_parent_key.clone());
                txn.put(DEPENDENT, &refs(&e.parts), &stored)?;
                updated += 1;
            }
        }
        txn.commit().await?;
        Ok(updated)
    }

    async fn update_dependent_queued_request(
        &self,
        room_id: &RoomId,
        own_transaction_id: &ChildTransactionId,
        new_content: DependentQueuedRequestKind,
    ) -> Result<bool, Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let own = own_transaction_id.to_string();
        let parts = [room_id.as_bytes(), own.as_bytes()];
        let Some(mut stored) = txn.get_json::<StoredDependent>(DEPENDENT, &parts).await? else {
            return Ok(false);
        };
        stored.request.kind = new_content;
        txn.put(DEPENDENT, &parts, &stored)?;
        txn.commit().await?;
        Ok(true)
    }

    async fn remove_dependent_queued_request(
        &self,
        room: &RoomId,
        own_txn_id: &ChildTransactionId,
    ) -> Result<bool, Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let own = own_txn_id.to_string();
        let parts = [room.as_bytes(), own.as_bytes()];
        if txn.get(DEPENDENT, &parts).await?.is_none() {
            return Ok(false);
        }
        txn.delete(DEPENDENT, &parts);
        txn.commit().await?;
        Ok(true)
    }

    async fn load_dependent_queued_requests(
        &self,
        room: &RoomId,
    ) -> Result<Vec<DependentQueuedRequest>, Error> {
        let mut stored: Vec<StoredDependent> = self
            .kv()
            .scan(DEPENDENT, &[room.as_bytes()])
            .await?
            .iter()
            .map(|e| e.decode())
            .collect::<Result<_, _>>()?;
        stored.sort_by_key(|d| d.seq);
        Ok(stored.into_iter().map(|d| d.request).collect())
    }

    async fn upsert_thread_subscriptions(
        &self,
        updates: Vec<(&RoomId, &EventId, StoredThreadSubscription)>,
    ) -> Result<(), Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        for (room_id, thread_id, mut new) in updates {
            let parts = [room_id.as_bytes(), thread_id.as_bytes()];
            if let Some(previous) = txn.get_json::<StoredSub>(THREAD_SUB, &parts).await? {
                let previous = stored_sub(previous)?;
                if previous == new {
                    continue;
                }
                if !compare_thread_subscription_bump_stamps(
                    previous.bump_stamp,
                    &mut new.bump_stamp,
                ) {
                    continue;
                }
            }
            let stored = StoredSub {
                status: new.status.as_str().to_owned(),
                bump_stamp: new.bump_stamp,
            };
            txn.put(THREAD_SUB, &parts, &stored)?;
        }
        txn.commit().await
    }

    async fn remove_thread_subscription(
        &self,
        room: &RoomId,
        thread_id: &EventId,
    ) -> Result<(), Error> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        txn.delete(THREAD_SUB, &[room.as_bytes(), thread_id.as_bytes()]);
        txn.commit().await
    }

    async fn load_thread_subscription(
        &self,
        room: &RoomId,
        thread_id: &EventId,
    ) -> Result<Option<StoredThreadSubscription>, Error> {
        self.kv()
            .get_json::<StoredSub>(THREAD_SUB, &[room.as_bytes(), thread_id.as_bytes()])
            .await?
            .map(stored_sub)
            .transpose()
    }

    async fn close(&self) -> Result<(), Error> {
        Ok(())
    }

    async fn reopen(&self) -> Result<(), Error> {
        Ok(())
    }

    async fn optimize(&self) -> Result<(), Error> {
        Ok(())
    }

    async fn get_size(&self) -> Result<Option<usize>, Error> {
        Ok(None)
    }
}

fn stored_sub(s: StoredSub) -> Result<StoredThreadSubscription, Error> {
    let status: ThreadSubscriptionStatus = s
        .status
        .parse()
        .map_err(|()| Error::Malformed("thread subscription status"))?;
    Ok(StoredThreadSubscription {
        status,
        bump_stamp: s.bump_stamp,
    })
}
