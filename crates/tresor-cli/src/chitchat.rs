//! Parser for the [chitchat] corpus of real chat conversations, mapped to [`tresor::Message`].
//!
//! The corpus is a JSON object mapping a conversation UUID to a conversation:
//!
//! ```json
//! {"<conversation uuid>": {
//!     "messages": [
//!         [{"text": "Hello", "timestamp": "2018-05-02T19:38:15Z", "sender": "<uuid>"}, ...],
//!         ...
//!     ],
//!     "prompt": "...", "ratings": {...}, "start": "..."
//! }, ...}
//! ```
//!
//! `messages` is a list of *turns*; each turn is a list of consecutive messages by one sender.
//! The parser keeps the file's conversation order and the messages' order.
//!
//! # Mapping
//!
//! Each message of the file becomes one [`Message`]:
//!
//! | field             | value                                                               |
//! |-------------------|---------------------------------------------------------------------|
//! | `id`              | `"<conversation uuid>:<n>"`, `n` = index of the message in its conversation, counting from 0 across all turns |
//! | `conversation_id` | the conversation uuid (the key in the top-level object)             |
//! | `sender`          | the message's `sender`                                              |
//! | `recipient`       | the other participant when the conversation has exactly two distinct senders; `None` when it has one sender (a monologue) or three or more (a group) |
//! | `timestamp_ms`    | `timestamp` in milliseconds since the Unix epoch; the format is `YYYY-MM-DDTHH:MM:SS`, optionally with fractional seconds (`.fff`, any number of digits) and a trailing `Z`, and is always read as UTC |
//! | `body`            | the message's `text`                                                |
//! | `seq`             | `0` (the store assigns it)                                          |
//!
//! The fields `prompt`, `ratings` and `start`, and any unknown field, are ignored. A
//! conversation with an empty `messages` list yields a [`Conversation`] without messages.
//! The turn structure is not checked: every message carries its own sender.
//!
//! # Input
//!
//! [`read_file`] and [`parse`] accept the JSON either plain or gzip-compressed (detected by
//! the gzip magic bytes `1f 8b`, whatever the file name; concatenated gzip members are
//! read as one stream). [`for_each`], [`for_each_in_file`] and
//! [`for_each_in_bundled_sample`] stream the corpus one conversation at a time (memory does
//! not grow with the file); [`parse`], [`read_file`] and [`bundled_sample`] collect it.
//! [`bundled_sample`] parses a sample of the corpus (its first 300
//! conversations, unchanged) embedded in this crate. Errors are reported as
//! [`ChitchatError`]; no input makes the parser panic.
//!
//! # Example
//!
//! ```
//! let conversations = tresor_cli::chitchat::bundled_sample()?;
//! assert_eq!(conversations.len(), 300);
//! let first = &conversations[0].messages[0];
//! assert_eq!(first.id, format!("{}:0", conversations[0].id));
//! # Ok::<(), tresor_cli::chitchat::ChitchatError>(())
//! ```
//!
//! [chitchat]: https://github.com/BYU-PCCL/chitchat-dataset
//!
//! # License of the data
//!
//! The corpus and the bundled sample are © 2019 Perception, Control and Cognition Lab (BYU),
//! MIT license; see `data/LICENSE` and `data/README.md` in this crate.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};
use tresor::Message;

/// The bundled sample: the first 300 conversations of the corpus, gzip-compressed.
const SAMPLE_GZ: &[u8] = include_bytes!("../data/chitchat-sample.json.gz");

/// The gzip magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The timestamp format (after an optional trailing `Z` is removed). `%.f` also accepts no
/// fractional part at all.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// One conversation of the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The conversation's UUID (its key in the corpus), also every message's `conversation_id`.
    pub id: String,
    /// Its messages in file order (turn by turn), mapped as described in the
    /// [module documentation](self).
    pub messages: Vec<Message>,
}

/// Why the corpus could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChitchatError {
    /// Reading the input failed (file missing, permission denied, I/O error…).
    #[error("cannot read the chitchat corpus{}: {source}", in_path(.path))]
    Io {
        /// The file being read, when known.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The input starts like gzip but does not decompress (truncated or corrupt).
    #[error("the gzip-compressed chitchat corpus{} is truncated or corrupt: {source}", in_path(.path))]
    Gzip {
        /// The file being read, when known.
        path: Option<PathBuf>,
        /// The decompressor's error.
        #[source]
        source: io::Error,
    },
    /// The input is not JSON, or not JSON of the corpus's shape (wrong type, missing field);
    /// the message gives the line and column.
    #[error("malformed chitchat corpus{}: {source}", in_path(.path))]
    Json {
        /// The file being read, when known.
        path: Option<PathBuf>,
        /// The JSON error, with line and column ([`serde_json::Error::line`],
        /// [`serde_json::Error::column`]).
        #[source]
        source: serde_json::Error,
    },
    /// A message's timestamp is not `YYYY-MM-DDTHH:MM:SS[.fff][Z]`.
    #[error(
        "conversation {conversation}, message {index}: bad timestamp {value:?} \
         (expected YYYY-MM-DDTHH:MM:SS[.fff][Z])"
    )]
    BadTimestamp {
        /// The conversation's UUID.
        conversation: String,
        /// The message's index in the conversation (counting from 0 across all turns).
        index: usize,
        /// The timestamp as found in the file.
        value: String,
    },
    /// The same conversation UUID appears twice in the top-level object (its message ids
    /// would collide).
    #[error("conversation {id} appears more than once in the chitchat corpus")]
    DuplicateConversation {
        /// The repeated UUID.
        id: String,
    },
}

/// `" in <path>"`, or nothing.
fn in_path(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => format!(" in {}", path.display()),
        None => String::new(),
    }
}

/// Parses a corpus from `reader`: JSON, plain or gzip-compressed (detected by the magic
/// bytes). Conversations come back in the order of the input.
///
/// This collects the whole corpus; [`for_each`] streams it instead.
///
/// # Errors
///
/// [`ChitchatError::Io`] if reading fails, [`ChitchatError::Gzip`] if gzip input is
/// truncated or corrupt, [`ChitchatError::Json`] if the JSON is malformed or of the wrong
/// shape, [`ChitchatError::BadTimestamp`], [`ChitchatError::DuplicateConversation`].
pub fn parse<R: Read>(reader: R) -> Result<Vec<Conversation>, ChitchatError> {
    collect(|f| for_each(reader, None, f))
}

/// Reads and parses the corpus file at `path`: JSON, plain or gzip-compressed (detected by
/// the magic bytes `1f 8b`, not by the extension). Conversations come back in file order.
///
/// This collects the whole corpus; [`for_each_in_file`] streams it instead.
///
/// # Errors
///
/// As [`parse`]; the I/O, gzip and JSON errors name `path`.
pub fn read_file(path: impl AsRef<Path>) -> Result<Vec<Conversation>, ChitchatError> {
    collect(|f| for_each_in_file(path, f))
}

/// Parses the sample of the corpus embedded in this crate: its first 300 conversations
/// (9,511 messages), unchanged.
///
/// # Errors
///
/// None in practice (the sample is tested); the signature is [`parse`]'s.
pub fn bundled_sample() -> Result<Vec<Conversation>, ChitchatError> {
    collect(for_each_in_bundled_sample)
}

/// Streams the bundled sample (see [`bundled_sample`]) through `f`, as [`for_each`].
///
/// # Errors
///
/// As [`for_each`].
pub fn for_each_in_bundled_sample(
    f: &mut dyn FnMut(Conversation) -> Result<(), ChitchatError>,
) -> Result<(), ChitchatError> {
    for_each(SAMPLE_GZ, Some(Path::new("<bundled chitchat sample>")), f)
}

/// Streams the corpus file at `path` through `f`, as [`for_each`]; errors name `path`.
///
/// # Errors
///
/// As [`for_each`].
pub fn for_each_in_file(
    path: impl AsRef<Path>,
    f: &mut dyn FnMut(Conversation) -> Result<(), ChitchatError>,
) -> Result<(), ChitchatError> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| ChitchatError::Io {
        path: Some(path.to_path_buf()),
        source,
    })?;
    for_each(file, Some(path), f)
}

/// Streams a corpus from `reader` (JSON, plain or gzip-compressed, detected by the magic
/// bytes) through `f`, one conversation at a time in input order, holding only the
/// conversation being parsed (plus the ids seen, to reject duplicates) — memory does not grow
/// with the corpus. `path` only names the input in errors.
///
/// Conversations before an error have already been passed to `f`: to accept a corpus only if
/// it is entirely valid, run a first pass with an `f` that keeps nothing (the CLI's import
/// does).
///
/// # Errors
///
/// As [`parse`], and whatever `f` returns (parsing stops at `f`'s first error).
pub fn for_each<R: Read>(
    reader: R,
    path: Option<&Path>,
    f: &mut dyn FnMut(Conversation) -> Result<(), ChitchatError>,
) -> Result<(), ChitchatError> {
    let path_buf = || path.map(Path::to_path_buf);
    let mut input = BufReader::new(reader);
    let head = input.fill_buf().map_err(|source| ChitchatError::Io {
        path: path_buf(),
        source,
    })?;
    let gzip = head.starts_with(&GZIP_MAGIC);
    let mut json: Box<dyn Read> = if gzip {
        Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(input)))
    } else {
        Box::new(input)
    };
    let mut each = Each {
        f,
        seen: HashSet::new(),
        failed: None,
    };
    let mut de = serde_json::Deserializer::from_reader(&mut json);
    let result = (&mut each).deserialize(&mut de).and_then(|()| de.end());
    drop(de);
    if let Some(err) = each.failed {
        return Err(err);
    }
    result.map_err(|source| {
        // A corrupt gzip stream may decompress to garbage before the decoder notices: when
        // the JSON fails, read the rest of the stream to tell a gzip error from a JSON one.
        let damaged = gzip && !source.is_io() && io::copy(&mut json, &mut io::sink()).is_err();
        if damaged {
            return ChitchatError::Gzip {
                path: path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidData, source),
            };
        }
        if source.is_io() {
            let source = io::Error::from(source);
            if gzip {
                ChitchatError::Gzip {
                    path: path_buf(),
                    source,
                }
            } else {
                ChitchatError::Io {
                    path: path_buf(),
                    source,
                }
            }
        } else {
            ChitchatError::Json {
                path: path_buf(),
                source,
            }
        }
    })
}

/// Runs a streaming parse, collecting every conversation.
fn collect(
    run: impl FnOnce(
        &mut dyn FnMut(Conversation) -> Result<(), ChitchatError>,
    ) -> Result<(), ChitchatError>,
) -> Result<Vec<Conversation>, ChitchatError> {
    let mut out = Vec::new();
    run(&mut |c| {
        out.push(c);
        Ok(())
    })?;
    Ok(out)
}

/// The streaming visitor of the top-level object: converts each entry and hands it to `f`,
/// in file order. An error of its own (a duplicate, a bad timestamp, `f`'s) is kept in
/// `failed` and stops the parse with a placeholder JSON error.
struct Each<'f> {
    f: &'f mut dyn FnMut(Conversation) -> Result<(), ChitchatError>,
    seen: HashSet<String>,
    failed: Option<ChitchatError>,
}

impl<'de> DeserializeSeed<'de> for &mut Each<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut Each<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object mapping conversation ids to conversations")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(id) = map.next_key::<String>()? {
            let raw = map.next_value::<RawConversation<'de>>()?;
            let outcome = if self.seen.insert(id.clone()) {
                convert(id, raw).and_then(|c| (self.f)(c))
            } else {
                Err(ChitchatError::DuplicateConversation { id })
            };
            if let Err(err) = outcome {
                self.failed = Some(err);
                return Err(A::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// A conversation as in the file (only the fields used).
#[derive(Deserialize)]
struct RawConversation<'a> {
    /// Turns of messages.
    #[serde(borrow)]
    messages: Vec<Vec<RawMessage<'a>>>,
}

/// A message as in the file.
#[derive(Deserialize)]
struct RawMessage<'a> {
    text: String,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    sender: String,
}

/// Maps one conversation to [`Message`]s.
fn convert(id: String, raw: RawConversation<'_>) -> Result<Conversation, ChitchatError> {
    // The distinct senders, in order of first appearance; three are enough to know.
    let mut senders: Vec<&str> = Vec::with_capacity(3);
    for message in raw.messages.iter().flatten() {
        if senders.len() == 3 {
            break;
        }
        if !senders.contains(&message.sender.as_str()) {
            senders.push(&message.sender);
        }
    }
    let pair = match senders[..] {
        [a, b] => Some((a.to_owned(), b.to_owned())),
        _ => None,
    };
    let count = raw.messages.iter().map(Vec::len).sum();
    let mut messages = Vec::with_capacity(count);
    for (index, message) in raw.messages.into_iter().flatten().enumerate() {
        let timestamp_ms =
            parse_timestamp(&message.timestamp).ok_or_else(|| ChitchatError::BadTimestamp {
                conversation: id.clone(),
                index,
                value: message.timestamp.clone().into_owned(),
            })?;
        let recipient = pair.as_ref().map(|(a, b)| {
            if message.sender == *a {
                b.clone()
            } else {
                a.clone()
            }
        });
        messages.push(Message::new(
            format!("{id}:{index}"),
            id.as_str(),
            message.sender,
            recipient,
            timestamp_ms,
            message.text,
        ));
    }
    Ok(Conversation { id, messages })
}

/// `YYYY-MM-DDTHH:MM:SS[.fff][Z]`, read as UTC, to milliseconds since the Unix epoch.
fn parse_timestamp(value: &str) -> Option<i64> {
    let naive = value.strip_suffix('Z').unwrap_or(value);
    NaiveDateTime::parse_from_str(naive, TIMESTAMP_FORMAT)
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::io::Write;

    /// The first conversation of the corpus (and of the sample).
    const FIRST_ID: &str = "a07edb12-6b91-4138-b11e-02421888d699";
    const FIRST_A: &str = "720840be-e522-47ba-9e9f-143f66372673";
    const FIRST_B: &str = "549cc1d1-270e-4a53-b561-133a8d0086b4";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn parse_str(json: &str) -> Result<Vec<Conversation>, ChitchatError> {
        parse(json.as_bytes())
    }

    fn msg(text: &str, ts: &str, sender: &str) -> String {
        format!(r#"{{"text": "{text}", "timestamp": "{ts}", "sender": "{sender}"}}"#)
    }

    // ---- the bundled sample ---------------------------------------------------------------

    #[test]
    fn bundled_sample_counts_and_order() {
        let conversations = bundled_sample().unwrap();
        assert_eq!(conversations.len(), 300);
        let total: usize = conversations.iter().map(|c| c.messages.len()).sum();
        // Counted independently with Python (data/make_sample.py prints it).
        assert_eq!(total, 9_511);
        // File order: the first and last keys of the sample's JSON object.
        assert_eq!(conversations[0].id, FIRST_ID);
        assert_eq!(
            conversations[299].id,
            "6ec08be4-1f91-4d47-bb23-08c477fb6652"
        );
        assert_eq!(conversations[0].messages.len(), 63);
        assert_eq!(conversations[299].messages.len(), 4);
    }

    #[test]
    fn bundled_sample_ids_follow_the_rule_and_are_unique() {
        let conversations = bundled_sample().unwrap();
        let mut ids = HashSet::new();
        for conversation in &conversations {
            for (index, message) in conversation.messages.iter().enumerate() {
                assert_eq!(message.id, format!("{}:{index}", conversation.id));
                assert_eq!(message.conversation_id, conversation.id);
                assert_eq!(message.seq, 0);
                assert!(
                    ids.insert(message.id.clone()),
                    "duplicate id {}",
                    message.id
                );
            }
        }
        assert_eq!(ids.len(), 9_511);
    }

    #[test]
    fn bundled_sample_known_messages() {
        let conversations = bundled_sample().unwrap();
        let first = &conversations[0].messages;
        // {"text": "Hello", "timestamp": "2018-05-02T19:38:15Z", "sender": "7208…"}
        // 2018-01-01 is day 17,532 after the epoch (48 years, 12 leap days); 2018-05-02 is
        // day 17,532 + 31 + 28 + 31 + 30 + 1 = 17,653; 17,653 × 86,400 = 1,525,219,200 s;
        // 19:38:15 = 70,695 s → 1,525,289,895 s.
        assert_eq!(first[0].timestamp_ms, 1_525_289_895_000);
        assert_eq!(first[0].body, "Hello");
        assert_eq!(first[0].sender, FIRST_A);
        assert_eq!(first[0].recipient.as_deref(), Some(FIRST_B));
        assert_eq!(first[1].body, "How are you doing today?");
        assert_eq!(first[1].timestamp_ms, 1_525_289_900_000);
        // Second turn, other participant.
        assert_eq!(first[2].body, "whats up MD");
        assert_eq!(first[2].sender, FIRST_B);
        assert_eq!(first[2].recipient.as_deref(), Some(FIRST_A));
        // Last message: "2018-05-02T20:31:04Z" = 1,525,289,895 + 52 min 49 s.
        assert_eq!(first[62].body, "Hope you have a good day!");
        assert_eq!(first[62].timestamp_ms, 1_525_293_064_000);
    }

    #[test]
    fn bundled_sample_recipients() {
        let conversations = bundled_sample().unwrap();
        let (mut two_party, mut monologues) = (0, 0);
        for conversation in &conversations {
            let senders: HashSet<&str> = conversation
                .messages
                .iter()
                .map(|m| m.sender.as_str())
                .collect();
            for message in &conversation.messages {
                if senders.len() == 2 {
                    let recipient = message.recipient.as_deref().unwrap();
                    assert_ne!(recipient, message.sender);
                    assert!(senders.contains(recipient));
                } else {
                    assert_eq!(message.recipient, None);
                }
            }
            match senders.len() {
                2 => two_party += 1,
                1 => monologues += 1,
                n => panic!("unexpected {n} senders in {}", conversation.id),
            }
        }
        // Counted with Python: 170 two-party conversations, 130 with a single sender.
        assert_eq!((two_party, monologues), (170, 130));
        // A known single-sender conversation: "a8c67bac-…", 2 messages.
        let lone = conversations
            .iter()
            .find(|c| c.id == "a8c67bac-868a-43a2-bf21-58fabe339db3")
            .unwrap();
        assert_eq!(lone.messages.len(), 2);
        assert!(lone.messages.iter().all(|m| m.recipient.is_none()));
    }

    #[test]
    fn timestamps_are_monotonic_in_sample() {
        for conversation in bundled_sample().unwrap() {
            let ts: Vec<i64> = conversation
                .messages
                .iter()
                .map(|m| m.timestamp_ms)
                .collect();
            assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{}", conversation.id);
        }
    }

    // ---- the full corpus, when present ----------------------------------------------------

    #[test]
    fn full_corpus_when_present() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/chitchat/dataset.json.gz"
        );
        if !Path::new(path).exists() {
            println!("skipped: the full chitchat corpus is not at {path}");
            return;
        }
        let started = std::time::Instant::now();
        let conversations = read_file(path).unwrap();
        println!("parsed the full chitchat corpus in {:?}", started.elapsed());
        assert_eq!(conversations.len(), 7_168);
        let total: usize = conversations.iter().map(|c| c.messages.len()).sum();
        assert_eq!(total, 258_145);
        assert_eq!(conversations[0].id, FIRST_ID);
        // The sample is the corpus's prefix.
        let sample = bundled_sample().unwrap();
        assert_eq!(conversations[..300], sample[..]);
        let senders: HashSet<&str> = conversations
            .iter()
            .flat_map(|c| c.messages.iter().map(|m| m.sender.as_str()))
            .collect();
        assert_eq!(senders.len(), 1_315);
    }

    // ---- mapping rules on small inputs ----------------------------------------------------

    #[test]
    fn order_is_file_order_not_sorted() {
        let json = format!(
            r#"{{"zz": {{"messages": [[{}]]}}, "aa": {{"messages": [[{}]]}}, "mm": {{"messages": []}}}}"#,
            msg("1", "2020-01-01T00:00:00Z", "s"),
            msg("2", "2020-01-01T00:00:00Z", "s"),
        );
        let conversations = parse_str(&json).unwrap();
        let ids: Vec<&str> = conversations.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["zz", "aa", "mm"]);
        assert!(conversations[2].messages.is_empty());
    }

    #[test]
    fn index_counts_across_turns_and_unknown_fields_are_ignored() {
        let json = format!(
            r#"{{"c": {{"prompt": "p", "ratings": {{"witty": 5}}, "start": "x", "extra": [1, null],
                "messages": [[{}, {}], [], [{}]]}}}}"#,
            msg("a0", "2020-01-01T00:00:00Z", "A"),
            msg("a1", "2020-01-01T00:00:01Z", "A"),
            msg("b0", "2020-01-01T00:00:02Z", "B"),
        );
        let conversations = parse_str(&json).unwrap();
        let messages = &conversations[0].messages;
        let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["c:0", "c:1", "c:2"]);
        assert_eq!(messages[2].body, "b0");
        assert_eq!(messages[2].recipient.as_deref(), Some("A"));
        assert_eq!(messages[0].recipient.as_deref(), Some("B"));
    }

    #[test]
    fn group_conversation_has_no_recipient() {
        let json = format!(
            r#"{{"g": {{"messages": [[{}], [{}], [{}], [{}]]}}}}"#,
            msg("1", "2020-01-01T00:00:00Z", "A"),
            msg("2", "2020-01-01T00:00:01Z", "B"),
            msg("3", "2020-01-01T00:00:02Z", "A"),
            msg("4", "2020-01-01T00:00:03Z", "C"),
        );
        let conversations = parse_str(&json).unwrap();
        assert_eq!(conversations[0].messages.len(), 4);
        assert!(
            conversations[0]
                .messages
                .iter()
                .all(|m| m.recipient.is_none())
        );
    }

    #[test]
    fn one_sender_conversation_has_no_recipient() {
        let json = format!(
            r#"{{"solo": {{"messages": [[{}, {}]]}}}}"#,
            msg("hi", "2020-01-01T00:00:00Z", "A"),
            msg("anyone?", "2020-01-01T00:05:00Z", "A"),
        );
        let conversations = parse_str(&json).unwrap();
        assert!(
            conversations[0]
                .messages
                .iter()
                .all(|m| m.recipient.is_none())
        );
    }

    #[test]
    fn timestamp_formats() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("1970-01-01T00:00:00"), Some(0));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5Z"), Some(1_500));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.123"), Some(1_123));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.123456Z"), Some(1_123));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), Some(-1_000));
        assert_eq!(
            parse_timestamp("2018-05-02T19:38:15Z"),
            Some(1_525_289_895_000)
        );
        for bad in [
            "",
            "Z",
            "2018-05-02",
            "2018-05-02 19:38:15",
            "2018-05-02T19:38:15+02:00",
            "2018-05-02T19:38:15ZZ",
            "2018-13-02T19:38:15Z",
            "2018-02-30T19:38:15Z",
            "2018-05-02T24:00:00Z",
            "1525289895",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn escaped_text_is_decoded() {
        let json = r#"{"c": {"messages": [[{"text": "say \"hi\"\n\u00e9\ud83d\ude00", "timestamp": "2020-01-01T00:00:00Z", "sender": "A"}]]}}"#;
        let conversations = parse_str(json).unwrap();
        assert_eq!(conversations[0].messages[0].body, "say \"hi\"\né😀");
    }

    // ---- input handling -------------------------------------------------------------------

    #[test]
    fn gzip_is_detected_by_magic_bytes_not_extension() {
        let json = format!(
            r#"{{"c": {{"messages": [[{}]]}}}}"#,
            msg("x", "2020-01-01T00:00:00Z", "A")
        );
        let dir = tempfile::tempdir().unwrap();
        // Gzip under a .json name, plain JSON under a .gz name.
        let gz_as_json = dir.path().join("corpus.json");
        std::fs::write(&gz_as_json, gzip(json.as_bytes())).unwrap();
        let json_as_gz = dir.path().join("corpus.json.gz");
        std::fs::write(&json_as_gz, &json).unwrap();
        let a = read_file(&gz_as_json).unwrap();
        let b = read_file(&json_as_gz).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].messages[0].body, "x");
        // parse() detects it too.
        assert_eq!(parse(&gzip(json.as_bytes())[..]).unwrap(), a);
        // Concatenated gzip members are one stream.
        let whole = json.as_bytes();
        let (head, tail) = whole.split_at(whole.len() / 2);
        let mut multi = gzip(head);
        multi.extend(gzip(tail));
        assert_eq!(parse(&multi[..]).unwrap(), a);
    }

    #[test]
    fn missing_file_is_io_error_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.json.gz");
        let err = read_file(&path).unwrap_err();
        match &err {
            ChitchatError::Io {
                path: Some(p),
                source,
            } => {
                assert_eq!(p, &path);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("nope.json.gz"), "{err}");
    }

    #[test]
    fn reader_error_is_io_error() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("boom"))
            }
        }
        assert!(matches!(
            parse(Failing),
            Err(ChitchatError::Io { path: None, .. })
        ));
    }

    #[test]
    fn truncated_gzip_is_gzip_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truncated.json.gz");
        let cut = &SAMPLE_GZ[..SAMPLE_GZ.len() / 2];
        std::fs::write(&path, cut).unwrap();
        let err = read_file(&path).unwrap_err();
        assert!(
            matches!(&err, ChitchatError::Gzip { path: Some(p), .. } if p == &path),
            "{err:?}"
        );
        assert!(err.to_string().contains("truncated.json.gz"), "{err}");
        // Cut inside the header, and just the magic bytes.
        for cut in [
            &SAMPLE_GZ[..5],
            &SAMPLE_GZ[..2],
            &SAMPLE_GZ[..SAMPLE_GZ.len() - 1],
        ] {
            assert!(
                matches!(parse(cut), Err(ChitchatError::Gzip { .. })),
                "{}",
                cut.len()
            );
        }
    }

    #[test]
    fn corrupt_gzip_is_gzip_error() {
        let mut data = SAMPLE_GZ.to_vec();
        let middle = data.len() / 2;
        for byte in &mut data[middle..middle + 64] {
            *byte ^= 0x5a;
        }
        assert!(matches!(parse(&data[..]), Err(ChitchatError::Gzip { .. })));
    }

    #[test]
    fn invalid_json_is_json_error_with_position() {
        let err = parse_str("{\"c\": {\"messages\": [[\n  {\"text\": oops}]]}}").unwrap_err();
        match &err {
            ChitchatError::Json { path: None, source } => {
                assert_eq!(source.line(), 2);
                assert!(source.column() > 0);
                assert!(source.is_syntax());
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("line 2"), "{err}");
        for bad in [
            "",
            "   ",
            "{",
            "{\"c\": {\"messages\": [[]]}",
            "{} trailing",
            "\u{1f}",
        ] {
            assert!(
                matches!(parse_str(bad), Err(ChitchatError::Json { .. })),
                "{bad:?}"
            );
        }
        // Invalid UTF-8 in a string.
        let bytes = b"{\"c\": {\"messages\": [[{\"text\": \"\xff\", \"timestamp\": \"2020-01-01T00:00:00Z\", \"sender\": \"A\"}]]}}";
        assert!(matches!(parse(&bytes[..]), Err(ChitchatError::Json { .. })));
    }

    #[test]
    fn gzip_of_invalid_json_is_json_error_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.gz");
        std::fs::write(&path, gzip(b"{\"c\": [")).unwrap();
        assert!(matches!(
            read_file(&path),
            Err(ChitchatError::Json { path: Some(_), .. })
        ));
    }

    #[test]
    fn wrong_shapes_are_json_errors() {
        let ok = msg("x", "2020-01-01T00:00:00Z", "A");
        let cases = [
            "[]".to_owned(),
            "\"corpus\"".to_owned(),
            "null".to_owned(),
            r#"{"c": []}"#.to_owned(),
            r#"{"c": {}}"#.to_owned(),
            r#"{"c": {"messages": {}}}"#.to_owned(),
            r#"{"c": {"messages": "hi"}}"#.to_owned(),
            r#"{"c": {"messages": null}}"#.to_owned(),
            format!(r#"{{"c": {{"messages": [{ok}]}}}}"#),
            r#"{"c": {"messages": [["hi"]]}}"#.to_owned(),
            r#"{"c": {"messages": [[{"text": "x", "sender": "A"}]]}}"#.to_owned(),
            r#"{"c": {"messages": [[{"text": "x", "timestamp": "2020-01-01T00:00:00Z"}]]}}"#
                .to_owned(),
            r#"{"c": {"messages": [[{"timestamp": "2020-01-01T00:00:00Z", "sender": "A"}]]}}"#
                .to_owned(),
            r#"{"c": {"messages": [[{"text": 5, "timestamp": "2020-01-01T00:00:00Z", "sender": "A"}]]}}"#
                .to_owned(),
            r#"{"c": {"messages": [[{"text": "x", "timestamp": 1525289895, "sender": "A"}]]}}"#
                .to_owned(),
            r#"{"c": {"messages": [[{"text": "x", "timestamp": "2020-01-01T00:00:00Z", "sender": null}]]}}"#
                .to_owned(),
        ];
        for json in &cases {
            match parse_str(json) {
                Err(ChitchatError::Json { source, .. }) => {
                    assert!(!source.is_syntax(), "{json}: {source}");
                }
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_timestamp_names_conversation_index_and_value() {
        let json = format!(
            r#"{{"ok": {{"messages": [[{}]]}}, "bad": {{"messages": [[{}], [{}, {}]]}}}}"#,
            msg("x", "2020-01-01T00:00:00Z", "A"),
            msg("x", "2020-01-01T00:00:00Z", "A"),
            msg("x", "2020-01-01T00:00:01Z", "B"),
            msg("x", "yesterday", "B"),
        );
        let err = parse_str(&json).unwrap_err();
        match &err {
            ChitchatError::BadTimestamp {
                conversation,
                index,
                value,
            } => {
                assert_eq!(conversation, "bad");
                assert_eq!(*index, 2);
                assert_eq!(value, "yesterday");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("yesterday"), "{err}");
    }

    #[test]
    fn duplicate_conversation_is_an_error() {
        let json = format!(
            r#"{{"c": {{"messages": [[{0}]]}}, "d": {{"messages": []}}, "c": {{"messages": [[{0}]]}}}}"#,
            msg("x", "2020-01-01T00:00:00Z", "A"),
        );
        assert!(matches!(
            parse_str(&json),
            Err(ChitchatError::DuplicateConversation { id }) if id == "c"
        ));
    }

    #[test]
    fn empty_corpus_is_empty() {
        assert!(parse_str("{}").unwrap().is_empty());
        assert!(parse_str(" \n{ }\n").unwrap().is_empty());
    }
}
