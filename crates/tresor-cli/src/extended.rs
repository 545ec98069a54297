//! CLI commands on extended messages: `tresor thread`, `tresor messages --status`.

use std::io::Write;

use serde::Serialize;
use tresor::{DeliveryStatus, Message, Tresor};

use crate::CliError;

/// One message with its extended state, as `--json` prints it.
#[derive(Serialize)]
struct JsonExtended<'a> {
    id: &'a str,
    conversation_id: &'a str,
    sender: &'a str,
    recipient: Option<&'a str>,
    timestamp_ms: i64,
    body: &'a str,
    status: &'static str,
    incoming: bool,
    relates_to: Option<&'a str>,
    edited_ms: Option<i64>,
    redacted: bool,
    media: usize,
    expires_ms: Option<i64>,
}

/// Parses a delivery status name (`pending`, `sent`, `delivered`, `read`, `failed`).
///
/// # Errors
/// [`CliError::Usage`] for any other name.
pub fn parse_status(name: &str) -> Result<DeliveryStatus, CliError> {
    DeliveryStatus::from_name(name).ok_or_else(|| {
        CliError::Usage(format!(
            "unknown status {name:?}: use pending, sent, delivered, read or failed"
        ))
    })
}

/// Prints `messages` with their extended state, one per line (JSON with `json`).
async fn print(
    store: &Tresor,
    messages: &[Message],
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    for m in messages {
        let Some(s) = store.messages().state(&m.id).await? else {
            continue;
        };
        if json {
            serde_json::to_writer(
                &mut *out,
                &JsonExtended {
                    id: &m.id,
                    conversation_id: &m.conversation_id,
                    sender: &m.sender,
                    recipient: m.recipient.as_deref(),
                    timestamp_ms: m.timestamp_ms,
                    body: &m.body,
                    status: s.status.name(),
                    incoming: s.incoming,
                    relates_to: s.relates_to.as_deref(),
                    edited_ms: s.edited_ms,
                    redacted: s.redaction.is_some(),
                    media: s.media.len(),
                    expires_ms: s.expires_ms,
                },
            )?;
            writeln!(out)?;
        } else {
            let body = if s.redaction.is_some() {
                "[redacted]"
            } else {
                m.body.as_str()
            };
            writeln!(
                out,
                "{}  {}  {}  {}{}: {}",
                crate::commands::format_time(m.timestamp_ms),
                m.id,
                s.status.name(),
                m.sender,
                if s.edited_ms.is_some() {
                    " (edited)"
                } else {
                    ""
                },
                body
            )?;
        }
    }
    Ok(())
}

/// `tresor thread ROOT`: the replies to message `root`, oldest first.
///
/// # Errors
/// Opening the store or reading it.
pub async fn thread(
    store: &Tresor,
    root: &str,
    limit: usize,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let replies = store.messages().thread(root, limit, None).await?;
    print(store, &replies, json, out).await
}

/// `tresor messages --conversation C --status S`: messages of `conversation` with `status`,
/// newest first.
///
/// # Errors
/// An unknown status; opening the store or reading it.
pub async fn by_status(
    store: &Tresor,
    conversation: &str,
    status: &str,
    limit: usize,
    before: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let status = parse_status(status)?;
    let found = store
        .messages()
        .by_status(conversation, status, limit, before)
        .await?;
    print(store, &found, json, out).await
}
