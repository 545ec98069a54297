//! Matrix-compatible room state ([`Matrix`], typed tables `mx_*` declared in
//! `tresor_schema::matrix`): applying room events, rooms, state, members, device and one-time
//! keys, invitations, presence, account data, receipts, typing, transactions, aliases.
//!
//! Every write that must be exactly-once or all-or-nothing (applying an event with everything
//! it derives, claiming a one-time key, starting a transaction, taking an alias) runs under the
//! store's writer lock as one atomic batch.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tresor_schema::matrix::{
    ACCOUNT_DATA, ACCOUNT_DATA_BY_USER, ALIASES_BY_ROOM, AccountData, DEVICE_KEYS,
    DEVICE_KEYS_BY_USER, DeviceKeys, INVITES, INVITES_BY_USER, Invite, MEMBERS,
    MEMBERS_BY_MEMBERSHIP, MEMBERS_BY_ROOM, MEMBERS_BY_USER, ONE_TIME_KEYS,
    OTK_BY_DEVICE_ALGORITHM, OneTimeKey, PRESENCE, Presence, RECEIPTS, RECEIPTS_BY_EVENT,
    ROOM_ALIASES, ROOMS, ROOMS_BY_ALIAS, ROOMS_BY_LAST_EVENT, ROOMS_BY_MEMBERSHIP, Receipt, Room,
    RoomAlias, RoomMember, STATE_BY_EVENT_ID, STATE_BY_ROOM_TYPE, STATE_EVENTS, StateEvent,
    TRANSACTIONS, TYPING, TYPING_BY_EXPIRY, TYPING_BY_ROOM, Transaction, TxnStatus, Typing,
    compound_key,
};
use tresor_schema::typed::KeyPart;

use crate::locked::Locked;
use crate::{Error, Order, Tresor};

/// Records read per page by the sweeps.
const PAGE: usize = 256;

/// A Matrix room event as a client receives it (`/sync` timeline or state, `/messages`), in
/// Matrix's own JSON shape: deserialize one with `serde_json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MatrixEvent {
    /// The event id.
    pub event_id: String,
    /// The room id (absent in `/sync` room timelines: [`Matrix::apply`] takes it apart).
    #[serde(default)]
    pub room_id: String,
    /// Who sent it.
    pub sender: String,
    /// The event type (Matrix's `type`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The state key: present for state events only.
    #[serde(default)]
    pub state_key: Option<String>,
    /// When its origin server received it, ms since the Unix epoch.
    pub origin_server_ts: i64,
    /// The content.
    #[serde(default)]
    pub content: Value,
    /// For `m.room.redaction` (room versions 1 to 10): the redacted event.
    #[serde(default)]
    pub redacts: Option<String>,
}

impl MatrixEvent {
    /// An event with empty content.
    pub fn new(
        event_id: impl Into<String>,
        event_type: impl Into<String>,
        sender: impl Into<String>,
        origin_server_ts: i64,
    ) -> Self {
        Self {
            event_id: event_id.into(),
            room_id: String::new(),
            sender: sender.into(),
            event_type: event_type.into(),
            state_key: None,
            origin_server_ts,
            content: Value::Object(Map::new()),
            redacts: None,
        }
    }

    /// Makes it a state event with key `state_key`.
    pub fn with_state_key(mut self, state_key: impl Into<String>) -> Self {
        self.state_key = Some(state_key.into());
        self
    }

    /// Sets the content.
    pub fn with_content(mut self, content: Value) -> Self {
        self.content = content;
        self
    }
}

/// The content keys a redaction keeps, per event type (room version 11 rules; `None`: keep
/// every key).
fn kept_keys(event_type: &str) -> Option<&'static [&'static str]> {
    Some(match event_type {
        "m.room.create" => return None,
        "m.room.member" => &[
            "membership",
            "join_authorised_via_users_server",
            "third_party_invite",
        ],
        "m.room.join_rules" => &["join_rule", "allow"],
        "m.room.power_levels" => &[
            "ban",
            "events",
            "events_default",
            "invite",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        ],
        "m.room.history_visibility" => &["history_visibility"],
        "m.room.redaction" => &["redacts"],
        _ => &[],
    })
}

/// `content` with only the keys a redaction of an `event_type` event keeps.
pub fn redact_content(event_type: &str, content: &Value) -> Value {
    let Some(keep) = kept_keys(event_type) else {
        return content.clone();
    };
    let mut out = Map::new();
    if let Value::Object(map) = content {
        for (k, v) in map {
            if keep.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn text(content: &Value, key: &str) -> Option<String> {
    content
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn parse(json: &str) -> Result<Value, Error> {
    serde_json::from_str(json).map_err(|e| Error::Corrupted(format!("stored event content: {e}")))
}

/// The Matrix room state of a [`Tresor`] for local user `user_id`, from [`Tresor::matrix`].
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    store: &'a Tresor,
    user_id: &'a str,
}

impl Tresor {
    /// The Matrix room state, seen by local user `user_id` (whose `m.room.member` events set
    /// [`Room::membership`]).
    pub fn matrix<'a>(&'a self, user_id: &'a str) -> Matrix<'a> {
        Matrix {
            store: self,
            user_id,
        }
    }
}

/// Derives room, member and invite rows from state event `e` (content `content`) in `tx`.
async fn derive(
    tx: &mut Locked<'_>,
    me: &str,
    room: &mut Room,
    e: &StateEvent,
    content: &Value,
) -> Result<(), Error> {
    match e.event_type.as_str() {
        "m.room.create" => {
            room.creator = text(content, "creator").or_else(|| Some(e.sender.clone()));
            room.room_version = text(content, "room_version").or_else(|| Some("1".into()));
        }
        "m.room.name" => room.name = text(content, "name"),
        "m.room.topic" => room.topic = text(content, "topic"),
        "m.room.canonical_alias" => {
            room.canonical_alias = text(content, "alias");
            room.alt_aliases = content
                .get("alt_aliases")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
        }
        "m.room.member" => {
            let membership = text(content, "membership").unwrap_or_else(|| "leave".into());
            let member = RoomMember {
                room_id: e.room_id.clone(),
                user_id: e.state_key.clone(),
                membership: membership.clone(),
                displayname: text(content, "displayname"),
                avatar_url: text(content, "avatar_url"),
                event_id: e.event_id.clone(),
                origin_server_ts: e.origin_server_ts,
            };
            tx.put(&MEMBERS, &member).await?;
            let invite_key = compound_key(&[&e.room_id, &e.state_key]);
            if membership == "invite" {
                tx.put(
                    &INVITES,
                    &Invite {
                        room_id: e.room_id.clone(),
                        user_id: e.state_key.clone(),
                        sender: e.sender.clone(),
                        event_id: e.event_id.clone(),
                        origin_server_ts: e.origin_server_ts,
                    },
                )
                .await?;
            } else {
                tx.delete(&INVITES, &invite_key).await?;
            }
            if e.state_key == me {
                room.membership = membership;
            }
        }
        _ => {}
    }
    Ok(())
}

impl<'a> Matrix<'a> {
    /// The local user.
    pub fn user_id(&self) -> &str {
        self.user_id
    }

    /// Applies room event `event` of room `room_id`, atomically with everything it derives:
    /// a state event replaces the room's state for its `(type, state_key)` and updates the
    /// room (`m.room.create`, `m.room.name`, `m.room.topic`, `m.room.canonical_alias`), its
    /// members and invitations (`m.room.member`; the local user's own membership becomes the
    /// room's); an `m.room.redaction` strips the redacted state event's content to the keys
    /// room version 11 keeps and undoes what it derived (a redacted name or topic is unset).
    /// Every event advances the room's last event.
    ///
    /// # Errors
    /// [`Error::UniqueViolation`] if an `m.room.canonical_alias` names an alias another room
    /// holds (nothing is written); [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn apply(&self, room_id: &str, event: &MatrixEvent) -> Result<(), Error> {
        let mut tx = Locked::begin(&self.store.inner).await?;
        let mut room = tx
            .get(&ROOMS, room_id.as_bytes())
            .await?
            .unwrap_or_else(|| Room::new(room_id, "leave"));
        if event.origin_server_ts >= room.last_event_ts || room.last_event_id.is_none() {
            room.last_event_ts = event.origin_server_ts;
            room.last_event_id = Some(event.event_id.clone());
        }
        if event.event_type == "m.room.redaction" {
            let target = event
                .redacts
                .clone()
                .or_else(|| text(&event.content, "redacts"));
            let found = match &target {
                Some(t) => {
                    tx.first(&STATE_EVENTS, STATE_BY_EVENT_ID, &[KeyPart::id(t)], |_| {
                        true
                    })
                    .await?
                }
                None => None,
            };
            if let Some(mut state) = found.filter(|s| s.room_id == room_id) {
                let content = redact_content(&state.event_type, &parse(&state.content)?);
                state.content = content.to_string();
                state.redacted_because = Some(event.event_id.clone());
                tx.put(&STATE_EVENTS, &state).await?;
                derive(&mut tx, self.user_id, &mut room, &state, &content).await?;
            }
        } else if let Some(state_key) = &event.state_key {
            let state = StateEvent {
                room_id: room_id.to_owned(),
                event_type: event.event_type.clone(),
                state_key: state_key.clone(),
                event_id: event.event_id.clone(),
                sender: event.sender.clone(),
                origin_server_ts: event.origin_server_ts,
                content: event.content.to_string(),
                redacted_because: None,
            };
            tx.put(&STATE_EVENTS, &state).await?;
            derive(&mut tx, self.user_id, &mut room, &state, &event.content).await?;
        }
        tx.put(&ROOMS, &room).await?;
        tx.commit().await
    }

    /// Applies `events` of room `room_id` in order (each atomically).
    ///
    /// # Errors
    /// As [`Matrix::apply`]; events before the failing one stay applied.
    pub async fn apply_all(&self, room_id: &str, events: &[MatrixEvent]) -> Result<(), Error> {
        for e in events {
            self.apply(room_id, e).await?;
        }
        Ok(())
    }

    /// The room `room_id`.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn room(&self, room_id: &str) -> Result<Option<Room>, Error> {
        self.store.table(&ROOMS).get(room_id).await
    }

    /// Up to `limit` rooms where the local user's membership is `membership`, most recent
    /// event first.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn rooms_by_membership(
        &self,
        membership: &str,
        limit: usize,
    ) -> Result<Vec<Room>, Error> {
        self.store
            .table(&ROOMS)
            .scan(
                ROOMS_BY_MEMBERSHIP,
                &[KeyPart::id(membership)],
                Order::Descending,
                limit,
                None,
            )
            .await
    }

    /// Up to `limit` rooms, most recent event first, after room `after`.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn recent_rooms(
        &self,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<Room>, Error> {
        self.store
            .table(&ROOMS)
            .scan(
                ROOMS_BY_LAST_EVENT,
                &[],
                Order::Descending,
                limit,
                after.map(str::as_bytes),
            )
            .await
    }

    /// The room whose canonical or alternative alias is `alias`.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn room_by_alias(&self, alias: &str) -> Result<Option<Room>, Error> {
        let mut found = self
            .store
            .table(&ROOMS)
            .scan(
                ROOMS_BY_ALIAS,
                &[KeyPart::id(alias)],
                Order::Ascending,
                1,
                None,
            )
            .await?;
        Ok(found.pop())
    }

    /// The current state event `(type, state_key)` of room `room_id`.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn state(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<StateEvent>, Error> {
        self.store
            .table(&STATE_EVENTS)
            .get(StateEvent::key(room_id, event_type, state_key))
            .await
    }

    /// The content of state event `(type, state_key)` of room `room_id`, parsed.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the stored content is not JSON; as [`crate::Table::get`].
    pub async fn state_content(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Value>, Error> {
        match self.state(room_id, event_type, state_key).await? {
            Some(e) => Ok(Some(parse(&e.content)?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` current state events of type `event_type` in room `room_id` (in an order
    /// that reveals nothing).
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn state_of_type(
        &self,
        room_id: &str,
        event_type: &str,
        limit: usize,
    ) -> Result<Vec<StateEvent>, Error> {
        self.store
            .table(&STATE_EVENTS)
            .scan(
                STATE_BY_ROOM_TYPE,
                &[KeyPart::id(room_id), KeyPart::id(event_type)],
                Order::Ascending,
                limit,
                None,
            )
            .await
    }

    /// The power level of `user_id` in room `room_id`: `m.room.power_levels` content
    /// `users[user_id]`, else `users_default` (default 0); without a power levels event, 100
    /// for the room's creator and 0 for everyone else.
    ///
    /// # Errors
    /// As [`Matrix::state_content`].
    pub async fn power_level(&self, room_id: &str, user_id: &str) -> Result<i64, Error> {
        match self
            .state_content(room_id, "m.room.power_levels", "")
            .await?
        {
            Some(pl) => Ok(pl
                .get("users")
                .and_then(|u| u.get(user_id))
                .and_then(Value::as_i64)
                .or_else(|| pl.get("users_default").and_then(Value::as_i64))
                .unwrap_or(0)),
            None => {
                let creator = self.room(room_id).await?.and_then(|r| r.creator);
                Ok(if creator.as_deref() == Some(user_id) {
                    100
                } else {
                    0
                })
            }
        }
    }

    /// The member `user_id` of room `room_id`.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn member(&self, room_id: &str, user_id: &str) -> Result<Option<RoomMember>, Error> {
        self.store
            .table(&MEMBERS)
            .get(compound_key(&[room_id, user_id]))
            .await
    }

    /// Up to `limit` members of room `room_id`, only those with `membership` if given.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn members(
        &self,
        room_id: &str,
        membership: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RoomMember>, Error> {
        let table = self.store.table(&MEMBERS);
        match membership {
            Some(m) => {
                table
                    .scan(
                        MEMBERS_BY_MEMBERSHIP,
                        &[KeyPart::id(room_id), KeyPart::id(m)],
                        Order::Ascending,
                        limit,
                        None,
                    )
                    .await
            }
            None => {
                table
                    .scan(
                        MEMBERS_BY_ROOM,
                        &[KeyPart::id(room_id)],
                        Order::Ascending,
                        limit,
                        None,
                    )
                    .await
            }
        }
    }

    /// Up to `limit` room memberships of `user_id` (one per room).
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn memberships_of(
        &self,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<RoomMember>, Error> {
        self.store
            .table(&MEMBERS)
            .scan(
                MEMBERS_BY_USER,
                &[KeyPart::id(user_id)],
                Order::Ascending,
                limit,
                None,
            )
            .await
    }

    /// Up to `limit` pending invitations of `user_id`, newest first.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn invites(&self, user_id: &str, limit: usize) -> Result<Vec<Invite>, Error> {
        self.store
            .table(&INVITES)
            .scan(
                INVITES_BY_USER,
                &[KeyPart::id(user_id)],
                Order::Descending,
                limit,
                None,
            )
            .await
    }

    /// Stores (replaces) a device's keys.
    ///
    /// # Errors
    /// As [`crate::Table::put`].
    pub async fn set_device_keys(&self, keys: &DeviceKeys) -> Result<(), Error> {
        self.store.table(&DEVICE_KEYS).put(keys).await
    }

    /// The keys of `user_id`'s device `device_id`.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn device_keys(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Option<DeviceKeys>, Error> {
        self.store
            .table(&DEVICE_KEYS)
            .get(compound_key(&[user_id, device_id]))
            .await
    }

    /// Up to `limit` devices of `user_id`.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn devices_of(&self, user_id: &str, limit: usize) -> Result<Vec<DeviceKeys>, Error> {
        self.store
            .table(&DEVICE_KEYS)
            .scan(
                DEVICE_KEYS_BY_USER,
                &[KeyPart::id(user_id)],
                Order::Ascending,
                limit,
                None,
            )
            .await
    }

    /// Deletes a device's keys. Returns whether they existed.
    ///
    /// # Errors
    /// As [`crate::Table::delete`].
    pub async fn remove_device_keys(&self, user_id: &str, device_id: &str) -> Result<bool, Error> {
        self.store
            .table(&DEVICE_KEYS)
            .delete(compound_key(&[user_id, device_id]))
            .await
    }

    /// Stores one-time keys (one atomic batch).
    ///
    /// # Errors
    /// As [`crate::Table::put_many`].
    pub async fn add_one_time_keys(&self, keys: &[OneTimeKey]) -> Result<(), Error> {
        self.store.table(&ONE_TIME_KEYS).put_many(keys).await
    }

    /// Claims a one-time key of `user_id`'s device `device_id` for `algorithm` (e.g.
    /// `signed_curve25519`): reads and deletes it in one atomic batch under the writer lock,
    /// so each key is handed out exactly once however many claim at the same time. `None`
    /// when none is left.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn claim_one_time_key(
        &self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<OneTimeKey>, Error> {
        let mut tx = Locked::begin(&self.store.inner).await?;
        let prefix = [
            KeyPart::id(user_id),
            KeyPart::id(device_id),
            KeyPart::id(algorithm),
        ];
        let Some(key) = tx
            .first(&ONE_TIME_KEYS, OTK_BY_DEVICE_ALGORITHM, &prefix, |_| true)
            .await?
        else {
            return Ok(None);
        };
        tx.delete(
            &ONE_TIME_KEYS,
            &compound_key(&[&key.user_id, &key.device_id, &key.key_id]),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(key))
    }

    /// How many one-time keys of `algorithm` `user_id`'s device `device_id` has left (at most
    /// `limit` counted).
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn count_one_time_keys(
        &self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
        limit: usize,
    ) -> Result<usize, Error> {
        Ok(self
            .store
            .table(&ONE_TIME_KEYS)
            .scan(
                OTK_BY_DEVICE_ALGORITHM,
                &[
                    KeyPart::id(user_id),
                    KeyPart::id(device_id),
                    KeyPart::id(algorithm),
                ],
                Order::Ascending,
                limit,
                None,
            )
            .await?
            .len())
    }

    /// Stores a user's presence.
    ///
    /// # Errors
    /// As [`crate::Table::put`].
    pub async fn set_presence(&self, presence: &Presence) -> Result<(), Error> {
        self.store.table(&PRESENCE).put(presence).await
    }

    /// The presence of `user_id`.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn presence(&self, user_id: &str) -> Result<Option<Presence>, Error> {
        self.store.table(&PRESENCE).get(user_id).await
    }

    /// Sets account data `event_type` of `user_id` to `content`.
    ///
    /// # Errors
    /// As [`crate::Table::put`].
    pub async fn set_account_data(
        &self,
        user_id: &str,
        event_type: &str,
        content: &Value,
    ) -> Result<(), Error> {
        self.store
            .table(&ACCOUNT_DATA)
            .put(&AccountData {
                user_id: user_id.to_owned(),
                event_type: event_type.to_owned(),
                content: content.to_string(),
            })
            .await
    }

    /// Account data `event_type` of `user_id`, parsed.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the stored content is not JSON; as [`crate::Table::get`].
    pub async fn account_data(
        &self,
        user_id: &str,
        event_type: &str,
    ) -> Result<Option<Value>, Error> {
        match self
            .store
            .table(&ACCOUNT_DATA)
            .get(compound_key(&[user_id, event_type]))
            .await?
        {
            Some(a) => Ok(Some(parse(&a.content)?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` account data events of `user_id`.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn all_account_data(
        &self,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<AccountData>, Error> {
        self.store
            .table(&ACCOUNT_DATA)
            .scan(
                ACCOUNT_DATA_BY_USER,
                &[KeyPart::id(user_id)],
                Order::Ascending,
                limit,
                None,
            )
            .await
    }

    /// Stores a receipt, replacing the user's previous one of that type in that room.
    ///
    /// # Errors
    /// As [`crate::Table::put`].
    pub async fn set_receipt(&self, receipt: &Receipt) -> Result<(), Error> {
        self.store.table(&RECEIPTS).put(receipt).await
    }

    /// The receipt of `receipt_type` of `user_id` in room `room_id`.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn receipt(
        &self,
        room_id: &str,
        user_id: &str,
        receipt_type: &str,
    ) -> Result<Option<Receipt>, Error> {
        self.store
            .table(&RECEIPTS)
            .get(compound_key(&[room_id, user_id, receipt_type]))
            .await
    }

    /// Up to `limit` receipts on event `event_id` of room `room_id`.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn receipts_for_event(
        &self,
        room_id: &str,
        event_id: &str,
        limit: usize,
    ) -> Result<Vec<Receipt>, Error> {
        self.store
            .table(&RECEIPTS)
            .scan(
                RECEIPTS_BY_EVENT,
                &[KeyPart::id(room_id), KeyPart::id(event_id)],
                Order::Ascending,
                limit,
                None,
            )
            .await
    }

    /// Records that `user_id` is typing in room `room_id` until `now_ms + timeout_ms`, or
    /// (with `typing` false) stopped.
    ///
    /// # Errors
    /// As [`crate::Table::put`].
    pub async fn set_typing(
        &self,
        room_id: &str,
        user_id: &str,
        typing: bool,
        timeout_ms: i64,
        now_ms: i64,
    ) -> Result<(), Error> {
        let table = self.store.table(&TYPING);
        if typing {
            table
                .put(&Typing {
                    room_id: room_id.to_owned(),
                    user_id: user_id.to_owned(),
                    expires_ms: now_ms.saturating_add(timeout_ms),
                })
                .await
        } else {
            table
                .delete(compound_key(&[room_id, user_id]))
                .await
                .map(drop)
        }
    }

    /// The users typing in room `room_id` at `now_ms` (expired notifications never count,
    /// swept or not, across restarts), soonest to expire last.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn typing(&self, room_id: &str, now_ms: i64) -> Result<Vec<String>, Error> {
        let found = self
            .store
            .table(&TYPING)
            .scan(
                TYPING_BY_ROOM,
                &[KeyPart::id(room_id)],
                Order::Descending,
                PAGE,
                None,
            )
            .await?;
        Ok(found
            .into_iter()
            .take_while(|t| t.expires_ms > now_ms)
            .map(|t| t.user_id)
            .collect())
    }

    /// Deletes every typing notification expired at `now_ms`. Returns how many.
    ///
    /// # Errors
    /// As [`crate::Table::delete_many`].
    pub async fn sweep_typing(&self, now_ms: i64) -> Result<u64, Error> {
        let table = self.store.table(&TYPING);
        let mut deleted = 0;
        loop {
            let page = table
                .scan(TYPING_BY_EXPIRY, &[], Order::Ascending, PAGE, None)
                .await?;
            let old: Vec<Vec<u8>> = page
                .iter()
                .take_while(|t| t.expires_ms <= now_ms)
                .map(|t| compound_key(&[&t.room_id, &t.user_id]))
                .collect();
            if old.is_empty() {
                return Ok(deleted);
            }
            deleted += table.delete_many(&old).await?;
        }
    }

    /// Starts transaction `txn_id` (room `room_id`, at `now_ms`) unless it exists: returns it
    /// and whether this call created it. Atomic: of concurrent calls with one id, exactly one
    /// creates it, so a send is never duplicated.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn begin_transaction(
        &self,
        txn_id: &str,
        room_id: &str,
        now_ms: i64,
    ) -> Result<(Transaction, bool), Error> {
        let mut tx = Locked::begin(&self.store.inner).await?;
        if let Some(t) = tx.get(&TRANSACTIONS, txn_id.as_bytes()).await? {
            return Ok((t, false));
        }
        let t = Transaction {
            txn_id: txn_id.to_owned(),
            room_id: room_id.to_owned(),
            status: TxnStatus::Pending,
            created_ms: now_ms,
        };
        tx.put(&TRANSACTIONS, &t).await?;
        tx.commit().await?;
        Ok((t, true))
    }

    /// Sets the status of transaction `txn_id`. Returns it, `None` if unknown.
    ///
    /// # Errors
    /// As [`crate::Table::update`].
    pub async fn set_transaction_status(
        &self,
        txn_id: &str,
        status: TxnStatus,
    ) -> Result<Option<Transaction>, Error> {
        self.store
            .table(&TRANSACTIONS)
            .update(txn_id, |t| t.status = status)
            .await
    }

    /// Transaction `txn_id`.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn transaction(&self, txn_id: &str) -> Result<Option<Transaction>, Error> {
        self.store.table(&TRANSACTIONS).get(txn_id).await
    }

    /// Maps `alias.alias` to `alias.room_id` unless another room holds it (setting it again
    /// for the same room replaces its servers).
    ///
    /// # Errors
    /// [`Error::UniqueViolation`] (`mx_alias`, `alias`) if another room holds the alias;
    /// [`Error::Backend`]; [`Error::Corrupted`].
    pub async fn set_alias(&self, alias: &RoomAlias) -> Result<(), Error> {
        let mut tx = Locked::begin(&self.store.inner).await?;
        if let Some(old) = tx.get(&ROOM_ALIASES, alias.alias.as_bytes()).await?
            && old.room_id != alias.room_id
        {
            return Err(Error::UniqueViolation {
                table: ROOM_ALIASES.name,
                index: "alias",
            });
        }
        tx.put(&ROOM_ALIASES, alias).await?;
        tx.commit().await
    }

    /// The room alias `alias` names.
    ///
    /// # Errors
    /// As [`crate::Table::get`].
    pub async fn resolve_alias(&self, alias: &str) -> Result<Option<RoomAlias>, Error> {
        self.store.table(&ROOM_ALIASES).get(alias).await
    }

    /// Up to `limit` aliases of room `room_id`.
    ///
    /// # Errors
    /// As [`crate::Table::scan`].
    pub async fn aliases_of(&self, room_id: &str, limit: usize) -> Result<Vec<RoomAlias>, Error> {
        self.store
            .table(&ROOM_ALIASES)
            .scan(
                ALIASES_BY_ROOM,
                &[KeyPart::id(room_id)],
                Order::Ascending,
                limit,
                None,
            )
            .await
    }

    /// Removes alias `alias`. Returns whether it existed.
    ///
    /// # Errors
    /// As [`crate::Table::delete`].
    pub async fn remove_alias(&self, alias: &str) -> Result<bool, Error> {
        self.store.table(&ROOM_ALIASES).delete(alias).await
    }
}
