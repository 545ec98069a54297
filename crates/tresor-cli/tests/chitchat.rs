//! The chitchat parser through its public API only.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use tresor_cli::chitchat::{self, ChitchatError, Conversation};

#[test]
fn bundled_sample_through_the_public_api() {
    let conversations: Vec<Conversation> = chitchat::bundled_sample().unwrap();
    assert_eq!(conversations.len(), 300);
    let messages: Vec<&tresor::Message> = conversations
        .iter()
        .flat_map(|c| c.messages.iter())
        .collect();
    assert_eq!(messages.len(), 9_511);
    let ids: HashSet<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), messages.len());
    assert_eq!(conversations[0].id, "a07edb12-6b91-4138-b11e-02421888d699");
    // 2018-05-02T19:38:15Z
    assert_eq!(messages[0].timestamp_ms, 1_525_289_895_000);
    assert!(
        messages
            .iter()
            .all(|m| m.recipient.as_deref() != Some(m.sender.as_str()))
    );
}

#[test]
fn read_file_round_trip_plain_and_gzip() {
    let json = r#"{"b": {"messages": [[{"text": "one", "timestamp": "2018-05-02T19:38:15", "sender": "x"}],
                                   [{"text": "two", "timestamp": "2018-05-02T19:38:16.250Z", "sender": "y"}]],
                       "prompt": "p", "start": "2018-05-02T19:00:00Z"},
                  "a": {"messages": []}}"#;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.json");
    std::fs::write(&plain, json).unwrap();
    let conversations = chitchat::read_file(&plain).unwrap();
    assert_eq!(conversations.len(), 2);
    assert_eq!(conversations[0].id, "b");
    assert_eq!(conversations[1].id, "a");
    let m = &conversations[0].messages;
    assert_eq!(m[0].id, "b:0");
    assert_eq!(m[1].id, "b:1");
    assert_eq!(m[1].timestamp_ms - m[0].timestamp_ms, 1_250);
    assert_eq!(m[0].recipient.as_deref(), Some("y"));
    assert_eq!(m[1].recipient.as_deref(), Some("x"));

    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, json.as_bytes()).unwrap();
    let gz = dir.path().join("no-extension");
    std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
    assert_eq!(chitchat::read_file(&gz).unwrap(), conversations);
    assert_eq!(chitchat::parse(json.as_bytes()).unwrap(), conversations);
}

#[test]
fn errors_are_typed_and_readable() {
    let err = chitchat::parse(&b"{\"c\": {\"messages\": 7}}"[..]).unwrap_err();
    assert!(matches!(err, ChitchatError::Json { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("line 1 column"), "{text}");

    let err = chitchat::parse(
        &br#"{"c": {"messages": [[{"text": "t", "timestamp": "02/05/2018", "sender": "s"}]]}}"#[..],
    )
    .unwrap_err();
    assert!(
        matches!(&err, ChitchatError::BadTimestamp { conversation, index: 0, value }
            if conversation == "c" && value == "02/05/2018"),
        "{err:?}"
    );

    let err = chitchat::read_file("/nonexistent/dir/dataset.json.gz").unwrap_err();
    assert!(matches!(err, ChitchatError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/dir/dataset.json.gz"));
    assert!(std::error::Error::source(&err).is_some());
}
