//! The conversation repository, built on the typed-table API ([`crate::Table`]).

use std::collections::BTreeMap;

use tresor_backend::WriteBatch;
use tresor_crypto::StoreKeys;
use tresor_schema::Message;
use tresor_schema::records::{BY_ACTIVITY, CONVERSATIONS, Conversation};

use crate::store::Inner;
use crate::table::TypedBatch;
use crate::{Error, Order, Table, Tresor};

/// The conversations of a [`Tresor`]: who is in each and when it was last active.
///
/// Message writes keep them up to date in the same atomic batch: saving a message creates its
/// conversation if needed, adds its sender and recipient to the participants (a third
/// participant makes it a group) and moves its last activity forward. Deleting messages does
/// not shrink a conversation. The application may set the kind, title and participants
/// itself with [`Conversations::save`]; later messages only add to them.
#[derive(Debug, Clone, Copy)]
pub struct Conversations<'a> {
    table: Table<'a, Conversation>,
}

impl Tresor {
    /// The conversation repository.
    pub fn conversations(&self) -> Conversations<'_> {
        Conversations {
            table: self.table(&CONVERSATIONS),
        }
    }
}

impl Conversations<'_> {
    pub(crate) fn store(&self) -> &Tresor {
        self.table.store()
    }

    /// The conversation `id`.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub async fn get(&self, id: &str) -> Result<Option<Conversation>, Error> {
        self.table.get(id).await
    }

    /// Inserts or replaces a conversation.
    ///
    /// # Errors
    /// As [`Table::put`].
    pub async fn save(&self, conversation: &Conversation) -> Result<(), Error> {
        self.table.put(conversation).await
    }

    /// Deletes a conversation record (not its messages). Returns whether it existed.
    ///
    /// # Errors
    /// As [`Table::delete`].
    pub async fn delete(&self, id: &str) -> Result<bool, Error> {
        self.table.delete(id).await
    }

    /// Up to `limit` conversations by last activity, most recent first, after the
    /// conversation `before` if given (a cursor: the last id of the previous page).
    ///
    /// # Errors
    /// [`Error::CursorNotFound`] if `before` names no conversation; as [`Table::scan`].
    pub async fn recent(
        &self,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Conversation>, Error> {
        self.table
            .scan(
                BY_ACTIVITY,
                &[],
                Order::Descending,
                limit,
                before.map(str::as_bytes),
            )
            .await
    }
}

/// Folds `messages` into their conversations, adding the writes to `ops` (writer lock held,
/// typed tables under `keys`).
pub(crate) async fn fold_messages(
    inner: &Inner,
    keys: &StoreKeys,
    typed: &mut TypedBatch,
    messages: &[&Message],
    ops: &mut WriteBatch,
) -> Result<(), Error> {
    let mut by_conversation: BTreeMap<&str, Vec<&Message>> = BTreeMap::new();
    for m in messages {
        by_conversation
            .entry(m.conversation_id.as_str())
            .or_default()
            .push(m);
    }
    // One read for every conversation of the batch, not one per conversation.
    let rks: Vec<Vec<u8>> = by_conversation
        .keys()
        .map(|id| tresor_schema::typed::record_key(keys, CONVERSATIONS.name, id.as_bytes()))
        .collect();
    typed.preload(inner, keys, &rks).await?;
    for (ms, rk) in by_conversation.into_values().zip(rks) {
        let stored = typed.load(inner, keys, &rk).await?;
        let (mut c, mut changed) = match &stored {
            Some(env) => (env.decode::<Conversation>()?, false),
            None => (Conversation::from_message(ms[0]), true),
        };
        for m in ms {
            changed |= c.absorb(m);
        }
        if changed {
            typed.put(inner, keys, &CONVERSATIONS, &c, ops).await?;
        }
    }
    Ok(())
}
