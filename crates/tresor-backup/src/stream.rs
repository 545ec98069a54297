//! The logical entry stream of a repository backup: validation, content-defined chunking on
//! write, and reassembly across chunk boundaries on read.

use tresor_crypto::{StoreKeys, Token};
use tresor_schema::catalog::{
    CONVERSATIONS, MESSAGE_IDS, MSG_BY_CONVERSATION, MSG_BY_PEER, MSG_BY_TIME, PEERS, TABLES,
    TableSpec,
};
use tresor_schema::index::order_key;
use tresor_schema::messages::{message_token, position};
use tresor_schema::{Message, codec};
use zeroize::Zeroizing;

use crate::BackupError;
use crate::check::{Expect, Invalid, Tally};
use crate::format::MAX_CHUNK_PLAINTEXT;
use crate::repo_format::Chunking;

/// Table index of `meta` in the stream (its catalog index).
pub(crate) const STREAM_META: u8 = 0;
/// Table index of `messages` in the stream (its catalog index).
pub(crate) const STREAM_MESSAGES: u8 = 1;
/// Largest entry (table index, lengths, key, value) in a stream: 64 MiB.
pub(crate) const MAX_ENTRY: usize = MAX_CHUNK_PLAINTEXT;

const _: () = assert!(matches!(TABLES[0].name.as_bytes(), b"meta"));
const _: () = assert!(matches!(TABLES[1].name.as_bytes(), b"messages"));

/// The catalog tables a restore derives from the `messages` records, hence left out of the
/// stream. Every other catalog table is carried (see [`carried`]). `msg_by_conversation` is
/// empty since schema v4 (the record keys replace it) but stays listed: streams of v1–v3
/// stores never carried it, and a restore leaves it empty.
pub(crate) const DERIVED_FROM_MESSAGES: [&str; 6] = [
    CONVERSATIONS,
    PEERS,
    MSG_BY_CONVERSATION,
    MSG_BY_PEER,
    MSG_BY_TIME,
    MESSAGE_IDS,
];

/// Whether catalog table `index` follows `meta` and `messages` in the stream: every catalog
/// table except those two and [`DERIVED_FROM_MESSAGES`] (so a table added to the catalog is
/// backed up without any change here).
pub(crate) fn carried(index: usize) -> bool {
    index > usize::from(STREAM_MESSAGES)
        && TABLES
            .get(index)
            .is_some_and(|spec| !DERIVED_FROM_MESSAGES.contains(&spec.name))
}

/// Catalog indexes of the carried tables, ascending.
pub(crate) fn carried_tables() -> impl Iterator<Item = (u8, &'static TableSpec)> {
    // Invariant: the catalog has at most 255 tables (asserted in `format`).
    TABLES
        .iter()
        .enumerate()
        .filter(|(i, _)| carried(*i))
        .map(|(i, spec)| (i as u8, spec))
}

/// The carried tables are cut into chunks 16 times smaller than the messages (within fastcdc's
/// limits): their records change or arrive at random key positions (keys are random tokens),
/// so small chunks keep a backup after a few changes small. Only the writer cares: readers
/// concatenate chunks whatever their sizes.
pub(crate) fn carried_chunking(c: Chunking) -> Chunking {
    use fastcdc::v2020::{AVERAGE_MIN, MAXIMUM_MIN, MINIMUM_MIN};
    Chunking {
        min: (c.min / 16).max(MINIMUM_MIN),
        avg: (c.avg / 16).max(AVERAGE_MIN),
        max: (c.max / 16).max(MAXIMUM_MIN),
    }
}

/// Checks the entries of a stream in order and counts them. Used by the writer on what it
/// writes and by the readers on what they read, so `create` never writes a stream that
/// `verify` rejects.
pub(crate) struct StreamCheck<'a> {
    keys: &'a StoreKeys,
    key_header: &'a [u8],
    schema_version: u32,
    meta: Tally,
    in_messages: bool,
    last_order: Option<[u8; 16]>,
    pub messages: u64,
    /// The carried tables after the messages (order, contents, counts per table).
    rest: Tally,
    in_rest: bool,
}

fn malformed(reason: &'static str) -> BackupError {
    BackupError::MalformedStream { reason }
}

impl<'a> StreamCheck<'a> {
    pub fn new(keys: &'a StoreKeys, key_header: &'a [u8], schema_version: u32) -> Self {
        Self {
            keys,
            key_header,
            schema_version,
            meta: Tally::new(),
            in_messages: false,
            last_order: None,
            messages: 0,
            rest: Tally::new(),
            in_rest: false,
        }
    }

    /// Checks one entry; returns the decoded message for a `messages` entry.
    pub fn entry(
        &mut self,
        table: u8,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<Message>, BackupError> {
        match table {
            STREAM_META if !self.in_messages => {
                let expect = Expect {
                    key_header: self.key_header,
                    schema_version: self.schema_version,
                };
                self.meta
                    .entry(&expect, STREAM_META, key, value)
                    .map_err(|e| match e {
                        Invalid::KeyHeaderMismatch => BackupError::KeyHeaderMismatch,
                        Invalid::Entry(reason) => malformed(reason),
                    })?;
                Ok(None)
            }
            STREAM_MESSAGES if !self.in_rest => {
                let (token, m) = self.decode_message(value)?;
                if token.as_slice() != key {
                    return Err(malformed("message record is not under its id's token"));
                }
                self.accept_message(&m)?;
                Ok(Some(m))
            }
            STREAM_META => Err(malformed("meta entry after the messages")),
            STREAM_MESSAGES => Err(malformed("message after the other tables")),
            t if carried(usize::from(t)) => {
                self.in_messages = true;
                self.in_rest = true;
                let expect = Expect {
                    key_header: self.key_header,
                    schema_version: self.schema_version,
                };
                self.rest
                    .entry(&expect, t, key, value)
                    .map_err(|e| match e {
                        Invalid::KeyHeaderMismatch => BackupError::KeyHeaderMismatch,
                        Invalid::Entry(reason) => malformed(reason),
                    })?;
                Ok(None)
            }
            _ => Err(malformed("table not carried by the stream")),
        }
    }

    /// Decodes a `messages` entry's value (the opened record) and computes the entry's key,
    /// the message token of its id. The writer, whose records are keyed by record key in the
    /// store, learns the stream key here; it then calls [`StreamCheck::accept_message`].
    pub fn decode_message(&self, value: &[u8]) -> Result<(Token, Message), BackupError> {
        let m = codec::decode_message(value)
            .map_err(|_| malformed("message record does not decode"))?;
        Ok((message_token(self.keys, &m.id), m))
    }

    /// Checks that message `m` may follow the entries so far (after `meta`, before the
    /// carried tables, strictly after the previous message in time order) and counts it.
    pub fn accept_message(&mut self, m: &Message) -> Result<(), BackupError> {
        if self.in_rest {
            return Err(malformed("message after the other tables"));
        }
        self.in_messages = true;
        let order = order_key(position(m));
        if self.last_order.is_some_and(|last| last >= order) {
            return Err(malformed("messages out of time order or duplicated"));
        }
        self.last_order = Some(order);
        self.messages += 1;
        Ok(())
    }

    /// Entries counted so far.
    pub fn entries(&self) -> u64 {
        self.meta.entries() + self.messages + self.rest.entries()
    }

    /// Entries of catalog table `index` counted so far.
    pub fn table_entries(&self, index: usize) -> u64 {
        match index {
            0 => self.meta.entries(),
            1 => self.messages,
            i => self.rest.per_table().get(i).copied().unwrap_or(0),
        }
    }

    /// Checks that the stream held the key header.
    pub fn finish(&self) -> Result<(), BackupError> {
        self.meta.check_complete()
    }
}

/// Encodes one entry (the v1 entry layout).
pub(crate) fn push_entry(out: &mut Vec<u8>, table: u8, key: &[u8], value: &[u8]) {
    crate::format::push_entry(out, table, key, value);
}

/// Splits a byte stream into content-defined chunks with FastCDC (2020), holding at most
/// `max` plus one push of bytes. Cut points depend only on the bytes since the previous cut, so
/// streaming gives the same chunks as chunking the whole stream at once.
pub(crate) struct Chunker {
    chunking: Chunking,
    buf: Zeroizing<Vec<u8>>,
}

impl Chunker {
    pub fn new(chunking: Chunking) -> Self {
        Self {
            chunking,
            buf: Zeroizing::new(Vec::with_capacity(chunking.max as usize * 2)),
        }
    }

    /// Appends stream bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Length of the next complete chunk, if one is determined (`at_end`: the stream is over).
    fn next_cut(&self, at_end: bool) -> Option<usize> {
        if self.buf.is_empty() || (!at_end && self.buf.len() < self.chunking.max as usize) {
            return None;
        }
        let c = self.chunking;
        fastcdc::v2020::FastCDC::new(&self.buf, c.min, c.avg, c.max)
            .next()
            .map(|chunk| chunk.length)
    }

    /// Removes and returns the next complete chunk, if one is determined.
    pub fn take(&mut self, at_end: bool) -> Option<Zeroizing<Vec<u8>>> {
        let cut = self.next_cut(at_end)?;
        let rest = self.buf.split_off(cut);
        Some(std::mem::replace(&mut self.buf, Zeroizing::new(rest)))
    }
}

/// Reassembles entries from consecutive chunk plaintexts.
pub(crate) struct StreamParser {
    carry: Zeroizing<Vec<u8>>,
}

enum Parsed<'a> {
    Entry(u8, &'a [u8], &'a [u8], usize),
    Incomplete,
}

fn parse(bytes: &[u8]) -> Result<Parsed<'_>, BackupError> {
    let len_at = |at: usize| -> Option<usize> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(key_len) = len_at(1) else {
        return Ok(Parsed::Incomplete);
    };
    if key_len > MAX_ENTRY {
        return Err(malformed("entry longer than the format allows"));
    }
    let Some(value_len) = len_at(5 + key_len) else {
        return Ok(Parsed::Incomplete);
    };
    let total = 9 + key_len + value_len;
    if total > MAX_ENTRY {
        return Err(malformed("entry longer than the format allows"));
    }
    if bytes.len() < total {
        return Ok(Parsed::Incomplete);
    }
    Ok(Parsed::Entry(
        bytes[0],
        &bytes[5..5 + key_len],
        &bytes[9 + key_len..total],
        total,
    ))
}

impl StreamParser {
    pub fn new() -> Self {
        Self {
            carry: Zeroizing::new(Vec::new()),
        }
    }

    /// Feeds the next chunk; calls `each(table, key, value)` for every entry it completes.
    pub fn feed(
        &mut self,
        data: &[u8],
        mut each: impl FnMut(u8, &[u8], &[u8]) -> Result<(), BackupError>,
    ) -> Result<(), BackupError> {
        self.carry.extend_from_slice(data);
        let mut pos = 0;
        while pos < self.carry.len() {
            match parse(&self.carry[pos..])? {
                Parsed::Entry(table, key, value, used) => {
                    each(table, key, value)?;
                    pos += used;
                }
                Parsed::Incomplete => break,
            }
        }
        self.carry.drain(..pos);
        Ok(())
    }

    /// Checks that the stream did not end inside an entry.
    pub fn finish(&self) -> Result<(), BackupError> {
        if self.carry.is_empty() {
            Ok(())
        } else {
            Err(malformed("stream ends inside an entry"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::repo_format::DEFAULT_CHUNKING;

    #[test]
    fn streaming_cuts_equal_whole_stream_cuts() {
        let mut data = Vec::new();
        let mut x: u64 = 1;
        for _ in 0..900_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            data.push((x >> 33) as u8);
        }
        let c = DEFAULT_CHUNKING;
        let whole: Vec<usize> = fastcdc::v2020::FastCDC::new(&data, c.min, c.avg, c.max)
            .map(|ch| ch.length)
            .collect();
        let mut chunker = Chunker::new(c);
        let mut streamed = Vec::new();
        for piece in data.chunks(7_777) {
            chunker.push(piece);
            while let Some(chunk) = chunker.take(false) {
                streamed.push(chunk.len());
            }
        }
        while let Some(chunk) = chunker.take(true) {
            streamed.push(chunk.len());
        }
        assert_eq!(streamed, whole);
        assert!(whole.len() > 3);
    }

    #[test]
    fn carried_tables_follow_the_messages_and_derived_ones_are_refused() {
        use tresor_schema::catalog::{TYPED_INDEX, TYPED_RECORDS};
        let index_of = |name: &str| TABLES.iter().position(|t| t.name == name).unwrap() as u8;
        let carried_names: Vec<&str> = carried_tables().map(|(_, s)| s.name).collect();
        assert_eq!(carried_names, [TYPED_RECORDS, TYPED_INDEX]);
        // Schema v4's message_ids is rebuilt from the messages, never carried.
        assert!(DERIVED_FROM_MESSAGES.contains(&MESSAGE_IDS));
        assert!(!carried(usize::from(index_of(MESSAGE_IDS))));
        // Every catalog table is in the stream or derived from the messages.
        for (i, spec) in TABLES.iter().enumerate() {
            assert!(
                i <= 1 || carried(i) != DERIVED_FROM_MESSAGES.contains(&spec.name),
                "{}",
                spec.name
            );
        }
        for c in [
            DEFAULT_CHUNKING,
            Chunking {
                min: 64,
                avg: 256,
                max: 1024,
            },
        ] {
            assert!(carried_chunking(c).is_valid());
        }
        assert_eq!(carried_chunking(DEFAULT_CHUNKING).avg, 4096);
        let keys = tresor_crypto::DataKey::generate().unwrap().store_keys();
        let mut check = StreamCheck::new(&keys, b"kh", 2);
        check.entry(STREAM_META, b"key_header", b"kh").unwrap();
        let typed_index = index_of(TYPED_INDEX);
        check.entry(typed_index, b"a", &[0; 16]).unwrap();
        // Order, duplicates and contents are checked as in format 1.
        assert!(check.entry(typed_index, b"a", &[0; 16]).is_err());
        assert!(check.entry(typed_index, b"b", &[0; 15]).is_err());
        assert!(check.entry(index_of(TYPED_RECORDS), b"z", b"").is_err());
        // Nothing of meta or messages after a carried table; derived tables never.
        assert!(check.entry(STREAM_META, b"next_seq", &[0; 8]).is_err());
        let m = codec::encode(&Message::new("i", "c", "s", None, 1, "b")).unwrap();
        assert!(
            check
                .entry(STREAM_MESSAGES, &message_token(&keys, "i"), &m)
                .is_err()
        );
        for derived in DERIVED_FROM_MESSAGES {
            assert!(check.entry(index_of(derived), b"zz", &[0; 16]).is_err());
        }
        assert!(check.entry(TABLES.len() as u8, b"zz", &[0; 16]).is_err());
        check.entry(typed_index, b"c", &[0; 16]).unwrap();
        assert_eq!(check.table_entries(usize::from(typed_index)), 2);
        assert_eq!(check.table_entries(0), 1);
        assert_eq!(check.entries(), 3);
    }

    #[test]
    fn messages_are_keyed_by_their_token_and_in_time_order() {
        let keys = tresor_crypto::DataKey::generate().unwrap().store_keys();
        let mut check = StreamCheck::new(&keys, b"kh", 4);
        check.entry(STREAM_META, b"key_header", b"kh").unwrap();
        let message = |id: &str, ts: i64| {
            let mut m = Message::new(id, "c", "s", None, ts, "b");
            m.seq = 1;
            codec::encode(&m).unwrap()
        };
        let (a, b, c) = (message("a", 10), message("b", 20), message("c", 5));
        // The writer learns the key from the record; the readers check it.
        let (token, m) = check.decode_message(&a).unwrap();
        assert_eq!(token, message_token(&keys, "a"));
        check.accept_message(&m).unwrap();
        assert!(check.decode_message(b"\x01garbage").is_err());
        // A record under anything but its id's token (say, a v4 record key) is refused.
        let mut record_key = vec![0u8; 16];
        record_key.extend_from_slice(&order_key(position(&m)));
        assert!(check.entry(STREAM_MESSAGES, &record_key, &b).is_err());
        assert!(
            check
                .entry(STREAM_MESSAGES, &message_token(&keys, "a"), &b)
                .is_err()
        );
        assert!(
            check
                .entry(STREAM_MESSAGES, &message_token(&keys, "b"), &b)
                .unwrap()
                .is_some()
        );
        // Time order, not key order.
        let (_, older) = check.decode_message(&c).unwrap();
        assert!(check.accept_message(&older).is_err());
        assert_eq!(check.messages, 2);
        assert_eq!(check.entries(), 3);
    }

    #[test]
    fn parser_reassembles_entries_across_chunks() {
        let mut stream = Vec::new();
        let entries: Vec<(u8, Vec<u8>, Vec<u8>)> = (0..50u8)
            .map(|i| (i % 2, vec![i; usize::from(i)], vec![i; 3 * usize::from(i)]))
            .collect();
        for (t, k, v) in &entries {
            push_entry(&mut stream, *t, k, v);
        }
        for split in [1, 2, 5, 64, 1000, stream.len()] {
            let mut p = StreamParser::new();
            let mut got = Vec::new();
            for piece in stream.chunks(split) {
                p.feed(piece, |t, k, v| {
                    got.push((t, k.to_vec(), v.to_vec()));
                    Ok(())
                })
                .unwrap();
            }
            p.finish().unwrap();
            assert_eq!(got, entries);
        }
        let mut p = StreamParser::new();
        p.feed(&stream[..stream.len() - 1], |_, _, _| Ok(()))
            .unwrap();
        assert!(p.finish().is_err());
        let mut huge = vec![0u8];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(StreamParser::new().feed(&huge, |_, _, _| Ok(())).is_err());
    }
}
