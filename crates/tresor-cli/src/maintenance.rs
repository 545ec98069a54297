//! `tresor compact`: give the file's free space back and refill its pages.

use std::io::Write;
use std::path::Path;

use crate::commands::open_existing;
use crate::error::CliError;

/// What `tresor compact --json` prints: the file size before and after, bytes.
#[derive(serde::Serialize)]
struct JsonCompact {
    bytes_before: u64,
    bytes_after: u64,
    bytes_reclaimed: u64,
}

/// Opens the store at `db` and compacts it ([`tresor::Tresor::compact`]).
///
/// # Errors
/// [`CliError`] when the store does not open (missing file, wrong passphrase or key, a
/// locked or damaged file) or the compaction fails ([`tresor::Tresor::compact`]: a full disk
/// leaves the store unchanged).
pub async fn compact(
    db: &Path,
    key: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let store = open_existing(db, key).await?;
    let report = store.compact().await?;
    let r = JsonCompact {
        bytes_before: report.bytes_before.unwrap_or(0),
        bytes_after: report.bytes_after.unwrap_or(0),
        bytes_reclaimed: report.bytes_reclaimed(),
    };
    if json {
        serde_json::to_writer(&mut *out, &r)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "compacted: {} -> {} bytes ({} reclaimed)",
            r.bytes_before, r.bytes_after, r.bytes_reclaimed
        )?;
    }
    Ok(())
}
