//! Record types, table catalog, index key encoding, record codec and schema versions.
//!
//! This crate decides what tresor stores where and in which bytes. It is pure: no I/O. The
//! facade (`tresor`) turns its answers into write batches for a `tresor_backend::Backend`.
//!
//! # Code map
//! - [`Message`]: the message record.
//! - [`codec`]: record ⇄ bytes (`format byte ‖ bincode 2`), versioned.
//! - [`compact`]: record format 3, the compact encoding of a message (UUIDs in 16 bytes,
//!   LEB128 integers).
//! - [`catalog`]: every table, its name and kind (plain, sealed, index).
//! - [`index`]: order keys and index keys (blinded id ‖ timestamp ‖ sequence).
//! - [`sealed`]: sealing records with AAD bound to table and key.
//! - [`messages`]: which entries one message occupies (record + index entries).
//! - [`version`]: the schema version and its check.
//! - [`typed`]: typed tables: declared record types, primary key, secondary indexes.
//! - [`matrix`]: Matrix-compatible room state tables (Matrix field names).
//! - [`media`]: encrypted media blobs: metadata and sealed fixed-size chunks.
//! - [`peers`]: peers for reconnection and their quality and reconnection scores.
//! - [`records`]: tresor's own record families, declared as typed tables.
//! - [`message_state`]: extended message state (delivery status, thread, edits, redaction,
//!   media, expiry) and per-conversation state (unread count, retention), as typed tables.
//!
//! # Architecture invariants
//! - No identifier is ever written in clear: record values are sealed, identifiers in keys are
//!   blinded tokens. Only order-carrying fields (timestamps, sequence numbers) appear in clear,
//!   in index keys, so that ranges keep their order.
//! - Every stored record starts with a format byte, so the codec can change by migration.
//! - Every sealed value's AAD names its table and key: a value moved elsewhere fails to open.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bytes;
pub mod catalog;
pub mod codec;
pub mod compact;
mod error;
pub mod index;
mod joined;
pub mod matrix;
pub mod media;
mod message;
pub mod message_state;
pub mod messages;
pub mod peers;
pub mod records;
pub mod sealed;
pub mod typed;
pub mod version;

pub use error::SchemaError;
pub use message::Message;
pub use messages::{ConversationSummary, PeerSummary};
