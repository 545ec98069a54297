//! Schema versions.
//!
//! - Version 1: the first seven tables of [`crate::catalog::TABLES`], records in codec
//!   format 1.
//! - Version 2: the typed tables (`typed_records`, `typed_index`) and the `conversation`
//!   typed table ([`crate::records::CONVERSATIONS`]), populated from the messages by the
//!   v1 → v2 migration (`crates/tresor-schema/migrations/NOTES.md`).
//! - Version 3: extended messages: every message has a companion
//!   [`crate::message_state::MessageState`] record (typed table `message_state`, with status,
//!   thread, expiry and unread indexes) and conversations a `conversation_state` (unread
//!   count, retention); the v2 → v3 migration gives every stored message its default state.
//! - Version 4: message records are keyed by conversation token ‖ order key (a
//!   conversation's messages are neighbours in time order), with the `message_ids` table
//!   (message token → record key) for lookups by id; `msg_by_conversation` is no longer
//!   written (the record key replaces it) and `msg_by_peer` / `msg_by_time` hold the
//!   conversation token (with their order key, the record key). The v3 → v4 migration moves
//!   every record.
//! - Version 5: message records are written in record format 3 ([`crate::compact`]: UUIDs in
//!   16 bytes, LEB128 integers) unless the store pads its records; records of formats 1 and 2
//!   stay readable, so the v4 → v5 migration only writes the version. The version exists so
//!   that a v4 reader refuses the store instead of failing on format-3 records.

use crate::SchemaError;

/// The schema version this code writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 5;

/// Checks a store's schema version against this code.
///
/// # Errors
/// [`SchemaError::UnsupportedVersion`] if `found` is 0 or newer than [`SCHEMA_VERSION`].
pub fn check(found: u32) -> Result<(), SchemaError> {
    if found == 0 || found > SCHEMA_VERSION {
        Err(SchemaError::UnsupportedVersion {
            found,
            supported: SCHEMA_VERSION,
        })
    } else {
        Ok(())
    }
}

/// Encodes a version for the meta table (`u32` little-endian).
pub fn encode(version: u32) -> [u8; 4] {
    version.to_le_bytes()
}

/// Decodes a version from the meta table.
///
/// # Errors
/// [`SchemaError::MalformedMeta`] if `bytes` is not 4 bytes long.
pub fn decode(bytes: &[u8]) -> Result<u32, SchemaError> {
    let b: [u8; 4] = bytes.try_into().map_err(|_| SchemaError::MalformedMeta {
        key: crate::catalog::meta_keys::SCHEMA_VERSION,
    })?;
    Ok(u32::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_are_refused() {
        assert!(check(SCHEMA_VERSION).is_ok());
        assert!(matches!(
            check(SCHEMA_VERSION + 1),
            Err(SchemaError::UnsupportedVersion { found, supported })
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ));
        assert!(check(0).is_err());
        assert_eq!(decode(&encode(7)).unwrap(), 7);
        assert!(decode(&[1, 2]).is_err());
    }
}
