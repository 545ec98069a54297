//! [`TresorCryptoStore`]: matrix-sdk's `CryptoStore` on the `matrix` typed table.
//!
//! Olm and Megolm state is stored as vodozemac pickles (JSON), sealed by tresor like every
//! other entry; devices, identities, key requests and the rest as their serde form.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use matrix_sdk_common::cross_process_lock::{
    CrossProcessLockGeneration, FIRST_CROSS_PROCESS_LOCK_GENERATION,
};
use matrix_sdk_crypto::olm::{
    Account, InboundGroupSession, OlmMessageHash, OutboundGroupSession, PickledAccount,
    PickledCrossSigningIdentity, PickledInboundGroupSession, PickledOutboundGroupSession,
    PickledSession, PrivateCrossSigningIdentity, SenderDataType, Session, StaticAccountData,
};
use matrix_sdk_crypto::store::types::{
    BackupDecryptionKey, BackupKeys, Changes, DehydratedDeviceKey, PendingChanges, RoomKeyCounts,
    RoomKeyWithheldEntry, RoomPendingKeyBundleDetails, RoomSettings, StoredRoomKeyBundleData,
    TrackedUser,
};
use matrix_sdk_crypto::store::{CryptoStore, CryptoStoreError};
use matrix_sdk_crypto::vodozemac::Curve25519PublicKey;
use matrix_sdk_crypto::{DeviceData, GossipRequest, SecretInfo, UserIdentityData};
use ruma::events::secret::request::SecretName;
use ruma::{DeviceId, OwnedDeviceId, RoomId, TransactionId, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tresor::Tresor;
use zeroize::Zeroizing;

use crate::Error;
use crate::kv::{Kv, Txn};

const ACCOUNT: &str = "c.account";
const PRIVATE_IDENTITY: &str = "c.private_identity";
const SESSION: &str = "c.session";
const INBOUND: &str = "c.inbound";
const OUTBOUND: &str = "c.outbound";
const DEVICE: &str = "c.device";
const IDENTITY: &str = "c.identity";
const TRACKED: &str = "c.tracked";
const OLM_HASH: &str = "c.olm_hash";
const KEY_REQUEST: &str = "c.key_request";
const KEY_REQUEST_INFO: &str = "c.key_request_info";
const BACKUP: &str = "c.backup";
const DEHYDRATED: &str = "c.dehydrated";
const SECRET: &str = "c.secret";
const WITHHELD: &str = "c.withheld";
const ROOM_SETTINGS: &str = "c.room_settings";
const BUNDLE: &str = "c.bundle";
const BACKUP_DOWNLOADED: &str = "c.backup_downloaded";
const PENDING_BUNDLE: &str = "c.pending_bundle";
const CUSTOM: &str = "c.custom";
const LEASE: &str = "c.lease";
const NEXT_BATCH: &str = "c.next_batch";

type Result<T> = std::result::Result<T, CryptoStoreError>;

/// matrix-sdk's `CryptoStore` on a tresor store. Cheap to clone (shares the store).
#[derive(Debug, Clone)]
pub struct TresorCryptoStore {
    store: Arc<Tresor>,
    /// The account's static data, once saved or loaded.
    static_account: Arc<RwLock<Option<StaticAccountData>>>,
    /// Serializes read-modify-write steps.
    write: Arc<Mutex<()>>,
}

/// An inbound group session and the backup it is stored in.
#[derive(Serialize, Deserialize)]
struct StoredInbound {
    pickle: PickledInboundGroupSession,
    backed_up_to: Option<String>,
}

/// A secret of the inbox, with its arrival order.
#[derive(Serialize, Deserialize)]
struct StoredSecret {
    seq: u64,
    secret: String,
}

/// A cross-process lease.
#[derive(Serialize, Deserialize)]
struct StoredLease {
    holder: String,
    /// Microseconds since the Unix epoch.
    expires_us: u64,
    generation: CrossProcessLockGeneration,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> CryptoStoreError {
    CryptoStoreError::backend(e)
}

/// The key of a secret request's info (its JSON: fields in declaration order).
fn info_key(info: &SecretInfo) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(info)?)
}

impl TresorCryptoStore {
    /// The crypto store on `store` (its entries live in the typed table `matrix`). Clone it to
    /// share it: two stores made by `new` on one tresor store have separate write locks, so
    /// their read-modify-write calls could interleave.
    pub fn new(store: Arc<Tresor>) -> Self {
        Self {
            store,
            static_account: Arc::new(RwLock::new(None)),
            write: Arc::new(Mutex::new(())),
        }
    }

    /// The account's static data (user id, device id, identity keys), once the account was
    /// saved to or loaded from this store.
    pub fn get_static_account(&self) -> Option<StaticAccountData> {
        // A poisoned lock only means a panic elsewhere; the value is still whole.
        self.static_account
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_static_account(&self, data: StaticAccountData) {
        *self
            .static_account
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(data);
    }

    fn kv(&self) -> Kv<'_> {
        Kv::new(&self.store)
    }

    /// The static account data, loading the account if this store has not seen it yet.
    async fn static_account(&self) -> Result<StaticAccountData> {
        if let Some(a) = self.get_static_account() {
            return Ok(a);
        }
        self.load_account().await?;
        self.get_static_account()
            .ok_or(CryptoStoreError::AccountUnset)
    }

    fn open_inbound(stored: StoredInbound) -> Result<InboundGroupSession> {
        let session = InboundGroupSession::from_pickle(stored.pickle)?;
        Ok(session)
    }

    async fn all_inbound(&self) -> Result<Vec<(InboundGroupSession, Option<String>)>> {
        let mut out = Vec::new();
        for e in self
            .kv()
            .scan(INBOUND, &[])
            .await
            .map_err(CryptoStoreError::from)?
        {
            let stored: StoredInbound = e.decode()?;
            let backed_up_to = stored.backed_up_to.clone();
            out.push((Self::open_inbound(stored)?, backed_up_to));
        }
        Ok(out)
    }

    async fn put_inbound(
        txn: &mut Txn<'_>,
        session: &InboundGroupSession,
        backed_up_to: Option<&str>,
    ) -> Result<()> {
        let parts = [
            session.room_id().as_bytes(),
            session.session_id().as_bytes(),
        ];
        let backed_up_to = match backed_up_to {
            Some(v) => Some(v.to_owned()),
            // Saving without a version keeps the backup the session is known to be in.
            None => txn
                .get_json::<StoredInbound>(INBOUND, &parts)
                .await?
                .and_then(|s| s.backed_up_to),
        };
        let stored = StoredInbound {
            pickle: session.pickle().await,
            backed_up_to,
        };
        txn.put(INBOUND, &parts, &stored)?;
        Ok(())
    }

    async fn save_changes_in(&self, txn: &mut Txn<'_>, changes: Changes) -> Result<()> {
        for session in changes.sessions {
            let pickle: PickledSession = session.pickle().await;
            let sender = pickle.sender_key.to_base64();
            txn.put(
                SESSION,
                &[sender.as_bytes(), session.session_id().as_bytes()],
                &pickle,
            )?;
        }
        for session in &changes.inbound_group_sessions {
            Self::put_inbound(txn, session, None).await?;
        }
        for session in &changes.outbound_group_sessions {
            let pickle: PickledOutboundGroupSession = session.pickle().await;
            txn.put(OUTBOUND, &[session.room_id().as_bytes()], &pickle)?;
        }
        if let Some(identity) = changes.private_identity {
            let pickle: PickledCrossSigningIdentity = identity.pickle().await;
            txn.put(PRIVATE_IDENTITY, &[], &pickle)?;
        }
        for device in changes.devices.new.iter().chain(&changes.devices.changed) {
            txn.put(
                DEVICE,
                &[device.user_id().as_bytes(), device.device_id().as_bytes()],
                device,
            )?;
        }
        for device in &changes.devices.deleted {
            txn.delete(
                DEVICE,
                &[device.user_id().as_bytes(), device.device_id().as_bytes()],
            );
        }
        for identity in changes
            .identities
            .new
            .iter()
            .chain(&changes.identities.changed)
        {
            txn.put(IDENTITY, &[identity.user_id().as_bytes()], identity)?;
        }
        for hash in &changes.message_hashes {
            txn.put(
                OLM_HASH,
                &[hash.sender_key.as_bytes(), hash.hash.as_bytes()],
                &(),
            )?;
        }
        for request in &changes.key_requests {
            let id = request.request_id.as_bytes();
            txn.put(KEY_REQUEST, &[id], request)?;
            txn.put_raw(KEY_REQUEST_INFO, &[&info_key(&request.info)?], id.to_vec());
        }
        if let Some(key) = &changes.backup_decryption_key {
            txn.put(BACKUP, &[b"decryption_key"], key)?;
        }
        if let Some(version) = &changes.backup_version {
            txn.put(BACKUP, &[b"backup_version"], version)?;
        }
        if let Some(key) = &changes.dehydrated_device_pickle_key {
            txn.put(DEHYDRATED, &[], key)?;
        }
        for secret in changes.secrets {
            let name = secret.secret_name.to_string();
            let mut seq = 0;
            for e in txn.scan(SECRET, &[name.as_bytes()]).await? {
                seq = seq.max(e.decode::<StoredSecret>()?.seq + 1);
            }
            let stored = StoredSecret {
                seq,
                secret: secret.secret.to_string(),
            };
            txn.put(SECRET, &[name.as_bytes(), &seq.to_be_bytes()], &stored)?;
        }
        for (room, data) in &changes.withheld_session_info {
            for (session_id, entry) in data {
                txn.put(WITHHELD, &[room.as_bytes(), session_id.as_bytes()], entry)?;
            }
        }
        if let Some(token) = &changes.next_batch_token {
            txn.put(NEXT_BATCH, &[], token)?;
        }
        for (room, settings) in &changes.room_settings {
            txn.put(ROOM_SETTINGS, &[room.as_bytes()], settings)?;
        }
        for bundle in &changes.received_room_key_bundles {
            txn.put(
                BUNDLE,
                &[
                    bundle.bundle_data.room_id.as_bytes(),
                    bundle.sender_user.as_bytes(),
                ],
                bundle,
            )?;
        }
        for room in &changes.room_key_backups_fully_downloaded {
            txn.put(BACKUP_DOWNLOADED, &[room.as_bytes()], &true)?;
        }
        for (room, details) in &changes.rooms_pending_key_bundle {
            match details {
                Some(d) => txn.put(PENDING_BUNDLE, &[room.as_bytes()], d)?,
                None => txn.delete(PENDING_BUNDLE, &[room.as_bytes()]),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl CryptoStore for TresorCryptoStore {
    type Error = CryptoStoreError;

    async fn load_account(&self) -> Result<Option<Account>> {
        let Some(pickle) = self.kv().get_json::<PickledAccount>(ACCOUNT, &[]).await? else {
            return Ok(None);
        };
        let account = Account::from_pickle(pickle)?;
        self.set_static_account(account.static_data().clone());
        Ok(Some(account))
    }

    async fn load_identity(&self) -> Result<Option<PrivateCrossSigningIdentity>> {
        let Some(pickle) = self
            .kv()
            .get_json::<PickledCrossSigningIdentity>(PRIVATE_IDENTITY, &[])
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(
            PrivateCrossSigningIdentity::from_pickle(pickle).map_err(backend)?,
        ))
    }

    async fn save_changes(&self, changes: Changes) -> Result<()> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        self.save_changes_in(&mut txn, changes).await?;
        Ok(txn.commit().await?)
    }

    async fn save_pending_changes(&self, changes: PendingChanges) -> Result<()> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        if let Some(account) = changes.account {
            self.set_static_account(account.static_data().clone());
            txn.put(ACCOUNT, &[], &account.pickle())?;
        }
        Ok(txn.commit().await?)
    }

    async fn save_inbound_group_sessions(
        &self,
        sessions: Vec<InboundGroupSession>,
        backed_up_to_version: Option<&str>,
    ) -> Result<()> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        for session in &sessions {
            Self::put_inbound(&mut txn, session, backed_up_to_version).await?;
        }
        Ok(txn.commit().await?)
    }

    async fn get_sessions(&self, sender_key: &str) -> Result<Option<Vec<Session>>> {
        let entries = self.kv().scan(SESSION, &[sender_key.as_bytes()]).await?;
        if entries.is_empty() {
            return Ok(None);
        }
        let device_keys = self.get_own_device().await?.as_device_keys().clone();
        let mut sessions = Vec::with_capacity(entries.len());
        for e in entries {
            let pickle: PickledSession = e.decode()?;
            sessions.push(Session::from_pickle(device_keys.clone(), pickle).map_err(backend)?);
        }
        Ok(Some(sessions))
    }

    async fn get_inbound_group_session(
        &self,
        room_id: &RoomId,
        session_id: &str,
    ) -> Result<Option<InboundGroupSession>> {
        self.kv()
            .get_json::<StoredInbound>(INBOUND, &[room_id.as_bytes(), session_id.as_bytes()])
            .await?
            .map(Self::open_inbound)
            .transpose()
    }

    async fn get_withheld_info(
        &self,
        room_id: &RoomId,
        session_id: &str,
    ) -> Result<Option<RoomKeyWithheldEntry>> {
        Ok(self
            .kv()
            .get_json(WITHHELD, &[room_id.as_bytes(), session_id.as_bytes()])
            .await?)
    }

    async fn get_withheld_sessions_by_room_id(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<RoomKeyWithheldEntry>> {
        self.kv()
            .scan(WITHHELD, &[room_id.as_bytes()])
            .await?
            .iter()
            .map(|e| Ok(e.decode()?))
            .collect()
    }

    async fn get_inbound_group_sessions(&self) -> Result<Vec<InboundGroupSession>> {
        Ok(self
            .all_inbound()
            .await?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    async fn inbound_group_session_counts(
        &self,
        backup_version: Option<&str>,
    ) -> Result<RoomKeyCounts> {
        let mut total = 0;
        let mut backed_up = 0;
        for e in self.kv().scan(INBOUND, &[]).await? {
            let stored: StoredInbound = e.decode()?;
            total += 1;
            if backup_version.is_some() && stored.backed_up_to.as_deref() == backup_version {
                backed_up += 1;
            }
        }
        Ok(RoomKeyCounts { total, backed_up })
    }

    async fn get_inbound_group_sessions_by_room_id(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<InboundGroupSession>> {
        let mut out = Vec::new();
        for e in self.kv().scan(INBOUND, &[room_id.as_bytes()]).await? {
            out.push(Self::open_inbound(e.decode()?)?);
        }
        Ok(out)
    }

    async fn get_inbound_group_sessions_for_device_batch(
        &self,
        sender_key: Curve25519PublicKey,
        sender_data_type: SenderDataType,
        after_session_id: Option<String>,
        limit: usize,
    ) -> Result<Vec<InboundGroupSession>> {
        let mut sessions: Vec<InboundGroupSession> = self
            .get_inbound_group_sessions()
            .await?
            .into_iter()
            .filter(|s| s.sender_key() == sender_key && s.sender_data.to_type() == sender_data_type)
            .collect();
        sessions.sort_by(|a, b| a.session_id().cmp(b.session_id()));
        Ok(sessions
            .into_iter()
            .filter(|s| {
                after_session_id
                    .as_deref()
                    .is_none_or(|after| s.session_id() > after)
            })
            .take(limit)
            .collect())
    }

    async fn inbound_group_sessions_for_backup(
        &self,
        backup_version: &str,
        limit: usize,
    ) -> Result<Vec<InboundGroupSession>> {
        Ok(self
            .all_inbound()
            .await?
            .into_iter()
            .filter(|(_, v)| v.as_deref() != Some(backup_version))
            .map(|(s, _)| s)
            .take(limit)
            .collect())
    }

    async fn mark_inbound_group_sessions_as_backed_up(
        &self,
        backup_version: &str,
        room_and_session_ids: &[(&RoomId, &str)],
    ) -> Result<()> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        for &(room_id, session_id) in room_and_session_ids {
            let parts = [room_id.as_bytes(), session_id.as_bytes()];
            let Some(stored) = txn.get_json::<StoredInbound>(INBOUND, &parts).await? else {
                continue;
            };
            let session = Self::open_inbound(stored)?;
            session.mark_as_backed_up();
            Self::put_inbound(&mut txn, &session, Some(backup_version)).await?;
        }
        Ok(txn.commit().await?)
    }

    async fn reset_backup_state(&self) -> Result<()> {
        // Backups are told apart by version (`backed_up_to`): nothing to reset.
        Ok(())
    }

    async fn load_backup_keys(&self) -> Result<BackupKeys> {
        let decryption_key: Option<BackupDecryptionKey> =
            self.kv().get_json(BACKUP, &[b"decryption_key"]).await?;
        let backup_version: Option<String> =
            self.kv().get_json(BACKUP, &[b"backup_version"]).await?;
        Ok(BackupKeys {
            decryption_key,
            backup_version,
        })
    }

    async fn load_dehydrated_device_pickle_key(&self) -> Result<Option<DehydratedDeviceKey>> {
        Ok(self.kv().get_json(DEHYDRATED, &[]).await?)
    }

    async fn delete_dehydrated_device_pickle_key(&self) -> Result<()> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        txn.delete(DEHYDRATED, &[]);
        Ok(txn.commit().await?)
    }

    async fn get_outbound_group_session(
        &self,
        room_id: &RoomId,
    ) -> Result<Option<OutboundGroupSession>> {
        let Some(pickle) = self
            .kv()
            .get_json::<PickledOutboundGroupSession>(OUTBOUND, &[room_id.as_bytes()])
            .await?
        else {
            return Ok(None);
        };
        let account = self.static_account().await?;
        Ok(Some(OutboundGroupSession::from_pickle(
            account.device_id,
            account.identity_keys,
            pickle,
        )?))
    }

    async fn load_tracked_users(&self) -> Result<Vec<TrackedUser>> {
        self.kv()
            .scan(TRACKED, &[])
            .await?
            .iter()
            .map(|e| Ok(e.decode()?))
            .collect()
    }

    async fn save_tracked_users(&self, users: &[(&UserId, bool)]) -> Result<()> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        for (user_id, dirty) in users {
            let user = TrackedUser {
                user_id: (*user_id).to_owned(),
                dirty: *dirty,
            };
            txn.put(TRACKED, &[user_id.as_bytes()], &user)?;
        }
        Ok(txn.commit().await?)
    }

    async fn get_device(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<Option<DeviceData>> {
        Ok(self
            .kv()
            .get_json(DEVICE, &[user_id.as_bytes(), device_id.as_bytes()])
            .await?)
    }

    async fn get_user_devices(
        &self,
        user_id: &UserId,
    ) -> Result<HashMap<OwnedDeviceId, DeviceData>> {
        let mut out = HashMap::new();
        for e in self.kv().scan(DEVICE, &[user_id.as_bytes()]).await? {
            let device: DeviceData = e.decode()?;
            out.insert(device.device_id().to_owned(), device);
        }
        Ok(out)
    }

    async fn get_own_device(&self) -> Result<DeviceData> {
        let account = self.static_account().await?;
        self.get_device(&account.user_id, &account.device_id)
            .await?
            .ok_or(CryptoStoreError::AccountUnset)
    }

    async fn get_user_identity(&self, user_id: &UserId) -> Result<Option<UserIdentityData>> {
        Ok(self.kv().get_json(IDENTITY, &[user_id.as_bytes()]).await?)
    }

    async fn is_message_known(&self, message_hash: &OlmMessageHash) -> Result<bool> {
        Ok(self
            .kv()
            .get(
                OLM_HASH,
                &[
                    message_hash.sender_key.as_bytes(),
                    message_hash.hash.as_bytes(),
                ],
            )
            .await?
            .is_some())
    }

    async fn get_outgoing_secret_requests(
        &self,
        request_id: &TransactionId,
    ) -> Result<Option<GossipRequest>> {
        Ok(self
            .kv()
            .get_json(KEY_REQUEST, &[request_id.as_bytes()])
            .await?)
    }

    async fn get_secret_request_by_info(
        &self,
        key_info: &SecretInfo,
    ) -> Result<Option<GossipRequest>> {
        let Some(id) = self
            .kv()
            .get(KEY_REQUEST_INFO, &[&info_key(key_info)?])
            .await?
        else {
            return Ok(None);
        };
        Ok(self.kv().get_json(KEY_REQUEST, &[&id.value]).await?)
    }

    async fn get_unsent_secret_requests(&self) -> Result<Vec<GossipRequest>> {
        let mut out = Vec::new();
        for e in self.kv().scan(KEY_REQUEST, &[]).await? {
            let request: GossipRequest = e.decode()?;
            if !request.sent_out {
                out.push(request);
            }
        }
        Ok(out)
    }

    async fn delete_outgoing_secret_requests(&self, request_id: &TransactionId) -> Result<()> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        if let Some(request) = txn
            .get_json::<GossipRequest>(KEY_REQUEST, &[request_id.as_bytes()])
            .await?
        {
            txn.delete(KEY_REQUEST_INFO, &[&info_key(&request.info)?]);
            txn.delete(KEY_REQUEST, &[request_id.as_bytes()]);
        }
        Ok(txn.commit().await?)
    }

    async fn get_secrets_from_inbox(
        &self,
        secret_name: &SecretName,
    ) -> Result<Vec<Zeroizing<String>>> {
        let name = secret_name.to_string();
        let mut secrets: Vec<StoredSecret> = self
            .kv()
            .scan(SECRET, &[name.as_bytes()])
            .await?
            .iter()
            .map(|e| e.decode())
            .collect::<std::result::Result<_, Error>>()?;
        secrets.sort_by_key(|s| s.seq);
        Ok(secrets
            .into_iter()
            .map(|s| Zeroizing::new(s.secret))
            .collect())
    }

    async fn delete_secrets_from_inbox(&self, secret_name: &SecretName) -> Result<()> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        txn.delete_prefix(SECRET, &[secret_name.to_string().as_bytes()])
            .await?;
        Ok(txn.commit().await?)
    }

    async fn get_room_settings(&self, room_id: &RoomId) -> Result<Option<RoomSettings>> {
        Ok(self
            .kv()
            .get_json(ROOM_SETTINGS, &[room_id.as_bytes()])
            .await?)
    }

    async fn get_received_room_key_bundle_data(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
    ) -> Result<Option<StoredRoomKeyBundleData>> {
        Ok(self
            .kv()
            .get_json(BUNDLE, &[room_id.as_bytes(), user_id.as_bytes()])
            .await?)
    }

    async fn get_pending_key_bundle_details_for_room(
        &self,
        room_id: &RoomId,
    ) -> Result<Option<RoomPendingKeyBundleDetails>> {
        Ok(self
            .kv()
            .get_json(PENDING_BUNDLE, &[room_id.as_bytes()])
            .await?)
    }

    async fn get_all_rooms_pending_key_bundles(&self) -> Result<Vec<RoomPendingKeyBundleDetails>> {
        self.kv()
            .scan(PENDING_BUNDLE, &[])
            .await?
            .iter()
            .map(|e| Ok(e.decode()?))
            .collect()
    }

    async fn has_downloaded_all_room_keys(&self, room_id: &RoomId) -> Result<bool> {
        Ok(self
            .kv()
            .get(BACKUP_DOWNLOADED, &[room_id.as_bytes()])
            .await?
            .is_some())
    }

    async fn get_custom_value(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .kv()
            .get(CUSTOM, &[key.as_bytes()])
            .await?
            .map(|e| e.value))
    }

    async fn set_custom_value(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        txn.put_raw(CUSTOM, &[key.as_bytes()], value);
        Ok(txn.commit().await?)
    }

    async fn remove_custom_value(&self, key: &str) -> Result<()> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        txn.delete(CUSTOM, &[key.as_bytes()]);
        Ok(txn.commit().await?)
    }

    async fn try_take_leased_lock(
        &self,
        lease_duration_ms: u32,
        key: &str,
        holder: &str,
    ) -> Result<Option<CrossProcessLockGeneration>> {
        let _w = self.write.lock().await;
        let mut txn = self.kv().txn();
        let now = now_us();
        let expires_us = now.saturating_add(u64::from(lease_duration_ms) * 1000);
        let parts = [key.as_bytes()];
        let generation = match txn.get_json::<StoredLease>(LEASE, &parts).await? {
            Some(lease) if lease.holder == holder => lease.generation,
            Some(lease) if lease.expires_us < now => lease.generation + 1,
            Some(_) => return Ok(None),
            None => FIRST_CROSS_PROCESS_LOCK_GENERATION,
        };
        let lease = StoredLease {
            holder: holder.to_owned(),
            expires_us,
            generation,
        };
        txn.put(LEASE, &parts, &lease)?;
        txn.commit().await?;
        Ok(Some(generation))
    }

    async fn next_batch_token(&self) -> Result<Option<String>> {
        Ok(self.kv().get_json(NEXT_BATCH, &[]).await?)
    }

    async fn close(&self) -> Result<()> {
        Ok(())
    }

    async fn reopen(&self) -> Result<()> {
        Ok(())
    }

    async fn get_size(&self) -> Result<Option<usize>> {
        Ok(None)
    }
}
