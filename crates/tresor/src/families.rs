//! Record-family repositories on the typed-table API: contacts, sessions, proofs, relay queue.

use tresor_schema::records::{
    CONTACTS, Contact, KEY_VALUES, MetaEntry, PROOFS, PROOFS_BY_CIRCUIT, PROOFS_BY_MESSAGE,
    PROOFS_BY_TIME, Proof, RELAY_BY_DUE, RELAY_QUEUE, RelayItem, SESSIONS, SESSIONS_BY_ACTIVITY,
    SESSIONS_BY_KEY, SESSIONS_BY_PEER, Session,
};
use tresor_schema::typed::KeyPart;

use crate::{Error, Order, Table, Tresor};

/// Pages read by [`Proofs::delete_before`].
const DELETE_PAGE: usize = 256;

/// The contacts of a [`Tresor`] (typed table `contact`).
#[derive(Debug, Clone, Copy)]
pub struct Contacts<'a> {
    table: Table<'a, Contact>,
}

/// The ratchet sessions of a [`Tresor`] (typed table `session`), one per peer device.
#[derive(Debug, Clone, Copy)]
pub struct Sessions<'a> {
    table: Table<'a, Session>,
}

/// The zero-knowledge proofs of a [`Tresor`] (typed table `proof`), at most one per message.
#[derive(Debug, Clone, Copy)]
pub struct Proofs<'a> {
    table: Table<'a, Proof>,
}

impl Tresor {
    /// The contact repository.
    pub fn contacts(&self) -> Contacts<'_> {
        Contacts {
            table: self.table(&CONTACTS),
        }
    }

    /// The session repository.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions {
            table: self.table(&SESSIONS),
        }
    }

    /// The proof repository.
    pub fn proofs(&self) -> Proofs<'_> {
        Proofs {
            table: self.table(&PROOFS),
        }
    }
}

impl Contacts<'_> {
    /// The contact `peer_id`.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub async fn get(&self, peer_id: &str) -> Result<Option<Contact>, Error> {
        self.table.get(peer_id).await
    }

    /// Inserts or replaces a contact.
    ///
    /// # Errors
    /// As [`Table::put`].
    pub async fn save(&self, contact: &Contact) -> Result<(), Error> {
        self.table.put(contact).await
    }

    /// Deletes a contact. Returns whether it existed.
    ///
    /// # Errors
    /// As [`Table::delete`].
    pub async fn delete(&self, peer_id: &str) -> Result<bool, Error> {
        self.table.delete(peer_id).await
    }

    /// Up to `limit` contacts after `after` (a peer id), in an order that reveals nothing.
    ///
    /// # Errors
    /// As [`Table::list`].
    pub async fn list(&self, limit: usize, after: Option<&str>) -> Result<Vec<Contact>, Error> {
        self.table.list(limit, after.map(str::as_bytes)).await
    }
}

impl Sessions<'_> {
    /// The session of `peer_id`'s device `device_id`.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub async fn get(&self, peer_id: &str, device_id: &str) -> Result<Option<Session>, Error> {
        self.table.get(Session::key(peer_id, device_id)).await
    }

    /// Inserts or replaces a session.
    ///
    /// # Errors
    /// As [`Table::put`].
    pub async fn save(&self, session: &Session) -> Result<(), Error> {
        self.table.put(session).await
    }

    /// Deletes a session. Returns whether it existed.
    ///
    /// # Errors
    /// As [`Table::delete`].
    pub async fn delete(&self, peer_id: &str, device_id: &str) -> Result<bool, Error> {
        self.table.delete(Session::key(peer_id, device_id)).await
    }

    /// Up to `limit` sessions of `peer_id`, most recently active first.
    ///
    /// # Errors
    /// As [`Table::scan`].
    pub async fn by_peer(&self, peer_id: &str, limit: usize) -> Result<Vec<Session>, Error> {
        self.table
            .scan(
                SESSIONS_BY_PEER,
                &[KeyPart::id(peer_id)],
                Order::Descending,
                limit,
                None,
            )
            .await
    }

    /// Up to `limit` sessions established with key `key_id`.
    ///
    /// # Errors
    /// As [`Table::scan`].
    pub async fn by_key(&self, key_id: &str, limit: usize) -> Result<Vec<Session>, Error> {
        self.table
            .scan(
                SESSIONS_BY_KEY,
                &[KeyPart::id(key_id)],
                Order::Ascending,
                limit,
                None,
            )
            .await
    }

    /// Up to `limit` sessions, most recently active first, after the session `after`
    /// (`(peer id, device id)` of the previous page's last one).
    ///
    /// # Errors
    /// As [`Table::scan`].
    pub async fn recent(
        &self,
        limit: usize,
        after: Option<(&str, &str)>,
    ) -> Result<Vec<Session>, Error> {
        let after = after.map(|(p, d)| Session::key(p, d));
        self.table
            .scan(
                SESSIONS_BY_ACTIVITY,
                &[],
                Order::Descending,
                limit,
                after.as_deref(),
            )
            .await
    }
}

impl Proofs<'_> {
    /// The proof `id`.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub async fn get(&self, id: &str) -> Result<Option<Proof>, Error> {
        self.table.get(id).await
    }

    /// Inserts or replaces a proof.
    ///
    /// # Errors
    /// [`Error::UniqueViolation`] if another proof is stored for the same message; as
    /// [`Table::put`].
    pub async fn save(&self, proof: &Proof) -> Result<(), Error> {
        self.table.put(proof).await
    }

    /// Deletes a proof. Returns whether it existed.
    ///
    /// # Errors
    /// As [`Table::delete`].
    pub async fn delete(&self, id: &str) -> Result<bool, Error> {
        self.table.delete(id).await
    }

    /// The proof of message `message_id`, if any.
    ///
    /// # Errors
    /// As [`Table::scan`].
    pub async fn by_message(&self, message_id: &str) -> Result<Option<Proof>, Error> {
        let mut found = self
            .table
            .scan(
                PROOFS_BY_MESSAGE,
                &[KeyPart::id(message_id)],
                Order::Ascending,
                1,
                None,
            )
            .await?;
        Ok(found.pop())
    }

    /// Up to `limit` proofs of circuit `circuit_id`, newest first, after proof `after`.
    ///
    /// # Errors
    /// As [`Table::scan`].
    pub async fn by_circuit(
        &self,
        circuit_id: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<Proof>, Error> {
        self.table
            .scan(
                PROOFS_BY_CIRCUIT,
                &[KeyPart::id(circuit_id)],
                Order::Descending,
                limit,
                after.map(str::as_bytes),
            )
            .await
    }

    /// Up to `limit` proofs, newest first, after proof `after`.
    ///
    /// # Errors
    /// As [`Table::scan`].
    pub async fn recent(&self, limit: usize, after: Option<&str>) -> Result<Vec<Proof>, Error> {
        self.table
            .scan(
                PROOFS_BY_TIME,
                &[],
                Order::Descending,
                limit,
                after.map(str::as_bytes),
            )
            .await
    }

    /// Deletes every proof generated before `before_ms` (ms since the Unix epoch), oldest
    /// first, in atomic batches of up to 256. Returns how many were deleted.
    ///
    /// # Errors
    /// As [`Table::delete_many`]; proofs deleted by earlier batches stay deleted.
    pub async fn delete_before(&self, before_ms: i64) -> Result<u64, Error> {
        let mut deleted = 0;
        loop {
            let page = self
                .table
                .scan(PROOFS_BY_TIME, &[], Order::Ascending, DELETE_PAGE, None)
                .await?;
            let old: Vec<Vec<u8>> = page
                .iter()
                .take_while(|p| p.generated_ms < before_ms)
                .map(|p| p.id.as_bytes().to_vec())
                .collect();
            if old.is_empty() {
                return Ok(deleted);
            }
            deleted += self.table.delete_many(&old).await?;
        }
    }
}

/// The longest retry delay of the relay queue: one hour, in ms.
pub const RELAY_MAX_BACKOFF_MS: i64 = 3_600_000;
/// The first retry delay of the relay queue: one second, in ms (doubled per attempt).
pub const RELAY_FIRST_BACKOFF_MS: i64 = 1_000;

/// The outbound relay queue of a [`Tresor`] (typed table `relay`): items wait until delivered
/// (acknowledged), are retried with exponential backoff, and survive restarts in due order.
#[derive(Debug, Clone, Copy)]
pub struct RelayQueue<'a> {
    table: Table<'a, RelayItem>,
}

impl Tresor {
    /// The relay queue.
    pub fn relay_queue(&self) -> RelayQueue<'_> {
        RelayQueue {
            table: self.table(&RELAY_QUEUE),
        }
    }
}

impl RelayQueue<'_> {
    /// Enqueues `item` (or replaces the item with its id).
    ///
    /// # Errors
    /// As [`Table::put`].
    pub async fn enqueue(&self, item: &RelayItem) -> Result<(), Error> {
        self.table.put(item).await
    }

    /// Up to `limit` items due at `now_ms` (ms since the Unix epoch): `next_attempt_ms <=
    /// now_ms`, earliest due first, then in enqueue order.
    ///
    /// # Errors
    /// As [`Table::scan`].
    pub async fn peek_due(&self, now_ms: i64, limit: usize) -> Result<Vec<RelayItem>, Error> {
        let mut page = self
            .table
            .scan(RELAY_BY_DUE, &[], Order::Ascending, limit, None)
            .await?;
        page.retain(|i| i.next_attempt_ms <= now_ms);
        Ok(page)
    }

    /// Records a failed delivery attempt of item `id` at `now_ms`: one more attempt, next one
    /// due after `min(1 s × 2^(attempts − 1), 1 h)`. Returns the updated item (`None` if it is
    /// not queued, e.g. acknowledged meanwhile).
    ///
    /// # Errors
    /// As [`Table::update`].
    pub async fn mark_attempt(&self, id: &str, now_ms: i64) -> Result<Option<RelayItem>, Error> {
        self.table
            .update(id, |item| {
                item.attempts = item.attempts.saturating_add(1);
                let shift = item.attempts.saturating_sub(1).min(30);
                let delay = (RELAY_FIRST_BACKOFF_MS << shift).min(RELAY_MAX_BACKOFF_MS);
                item.next_attempt_ms = now_ms.saturating_add(delay);
            })
            .await
    }

    /// Removes item `id` after its delivery. Returns whether it was queued.
    ///
    /// # Errors
    /// As [`Table::delete`].
    pub async fn ack(&self, id: &str) -> Result<bool, Error> {
        self.table.delete(id).await
    }
}

/// A small keyed table of application key material and settings (typed table `kv`): every
/// value sealed, every name blinded.
#[derive(Debug, Clone, Copy)]
pub struct KeyValues<'a> {
    table: Table<'a, MetaEntry>,
}

impl Tresor {
    /// The keys-and-metadata table.
    pub fn key_values(&self) -> KeyValues<'_> {
        KeyValues {
            table: self.table(&KEY_VALUES),
        }
    }
}

impl KeyValues<'_> {
    /// The value of `name`.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.table.get(name).await?.map(|e| e.value))
    }

    /// Sets `name` to `value`.
    ///
    /// # Errors
    /// As [`Table::put`].
    pub async fn set(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.table
            .put(&MetaEntry {
                name: name.to_owned(),
                value: value.to_vec(),
            })
            .await
    }

    /// Removes `name`. Returns whether it was set.
    ///
    /// # Errors
    /// As [`Table::delete`].
    pub async fn remove(&self, name: &str) -> Result<bool, Error> {
        self.table.delete(name).await
    }

    /// Up to `limit` entries after `after` (a name), in an order that reveals nothing.
    ///
    /// # Errors
    /// As [`Table::list`].
    pub async fn list(&self, limit: usize, after: Option<&str>) -> Result<Vec<MetaEntry>, Error> {
        self.table.list(limit, after.map(str::as_bytes)).await
    }
}
