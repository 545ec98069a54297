//! `tresor peers list|candidates|cleanup` and `tresor media put|get|ls`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use tresor::{MediaInfo, NewMedia, Order, Peer, PeerQuery, PeerRetention, PeerSort};

use crate::CliError;
use crate::commands::{format_time, json_line, open_existing};

const DAY_MS: i64 = 86_400_000;

/// `tresor peers` subcommands.
#[derive(Debug, Subcommand)]
pub enum PeersCmd {
    /// List peers (shared secrets are never shown).
    List {
        /// Order: last seen, quality score or last connected (best or newest first).
        #[arg(long, value_enum, default_value_t = SortBy::Seen)]
        sort: SortBy,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// The best peers to reconnect to now, with their reconnection scores.
    Candidates {
        /// At most this many.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Only peers active within this many days.
        #[arg(long, default_value_t = 7)]
        max_age_days: u32,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Delete stale peers, lift expired blacklistings, optionally keep only the best N.
    Cleanup {
        /// Keep peers that ever connected this many days after they were last active.
        #[arg(long, default_value_t = 90)]
        active_days: u32,
        /// Keep peers that never connected this many days after they were last seen.
        #[arg(long, default_value_t = 14)]
        inactive_days: u32,
        /// Then keep only the N most recently seen peers.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Orders of `tresor peers list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    /// Last seen, newest first.
    Seen,
    /// Quality score, best first.
    Quality,
    /// Last connected, newest first (never-connected peers are left out).
    Connected,
}

/// `tresor media` subcommands.
#[derive(Debug, Subcommand)]
pub enum MediaCmd {
    /// Store a file as an encrypted blob (streamed in chunks).
    Put {
        /// The file.
        file: PathBuf,
        /// Blob id (default: the file name).
        #[arg(long)]
        id: Option<String>,
        /// MIME type (default: from the file extension, else application/octet-stream).
        #[arg(long)]
        mime: Option<String>,
        /// The room it belongs to.
        #[arg(long)]
        room: Option<String>,
        /// Expire it (a sweep deletes it) after this many days.
        #[arg(long)]
        expires_days: Option<u32>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Write a blob's bytes to a file (streamed chunk by chunk).
    Get {
        /// Blob id.
        id: String,
        /// Output file (`-`: standard output).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// List blobs, newest first (after sweeping expired ones).
    Ls {
        /// Only blobs of this room.
        #[arg(long)]
        room: Option<String>,
        /// Only blobs of this MIME type.
        #[arg(long)]
        mime: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A peer as printed: everything but the shared secret and ICE credentials.
#[derive(Serialize)]
struct JsonPeer<'a> {
    peer_id: &'a str,
    display_name: Option<&'a str>,
    first_seen_ms: i64,
    last_seen_ms: i64,
    last_connected_ms: Option<i64>,
    last_address: Option<&'a str>,
    ice_candidates: usize,
    latency_ms: Option<u32>,
    success_rate: Option<f64>,
    connection_type: Option<&'static str>,
    avg_uptime_s: Option<u64>,
    quality_score: f64,
    reconnection_attempts: u32,
    blacklisted_until_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reconnection_score: Option<f64>,
}

impl<'a> JsonPeer<'a> {
    fn new(p: &'a Peer, reconnection_score: Option<f64>) -> Self {
        Self {
            peer_id: &p.peer_id,
            display_name: p.display_name.as_deref(),
            first_seen_ms: p.first_seen_ms,
            last_seen_ms: p.last_seen_ms,
            last_connected_ms: p.last_connected_ms,
            last_address: p.last_address.as_deref(),
            ice_candidates: p.ice_candidates.len(),
            latency_ms: p.quality.latency_ms,
            success_rate: p.quality.success_rate,
            connection_type: p.quality.connection_type.map(|t| t.as_str()),
            avg_uptime_s: p.quality.avg_uptime_s,
            quality_score: p.quality.score(),
            reconnection_attempts: p.reconnection_attempts,
            blacklisted_until_ms: p.blacklisted_until_ms,
            reconnection_score,
        }
    }

    fn print(&self, out: &mut dyn Write, json: bool) -> Result<(), CliError> {
        if json {
            return json_line(out, self);
        }
        write!(
            out,
            "{}  {}  quality {:.3}  {}",
            format_time(self.last_seen_ms),
            self.peer_id,
            self.quality_score,
            self.connection_type.unwrap_or("-"),
        )?;
        if let Some(s) = self.reconnection_score {
            write!(out, "  score {s:.4}")?;
        }
        if let Some(t) = self.blacklisted_until_ms {
            write!(out, "  blacklisted until {}", format_time(t))?;
        }
        writeln!(out)?;
        Ok(())
    }
}

/// Runs a `tresor peers` subcommand.
///
/// # Errors
/// [`CliError::NoStore`] without a store; [`CliError::Tresor`]; [`CliError::Output`].
pub async fn peers(
    db: &Path,
    key: Option<&Path>,
    cmd: PeersCmd,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let store = open_existing(db, key).await?;
    let peers = store.peers();
    let now = now_ms();
    match cmd {
        PeersCmd::List { sort, limit, json } => {
            let sort = match sort {
                SortBy::Seen => PeerSort::LastSeen,
                SortBy::Quality => PeerSort::Quality,
                SortBy::Connected => PeerSort::LastConnected,
            };
            let q = PeerQuery::new(now, limit).sorted(sort, Order::Descending);
            for p in peers.query(&q).await? {
                JsonPeer::new(&p, None).print(out, json)?;
            }
        }
        PeersCmd::Candidates {
            limit,
            max_age_days,
            json,
        } => {
            let max_age = i64::from(max_age_days) * DAY_MS;
            for c in peers.reconnection_candidates(now, limit, max_age).await? {
                JsonPeer::new(&c.peer, Some(c.score)).print(out, json)?;
            }
        }
        PeersCmd::Cleanup {
            active_days,
            inactive_days,
            keep,
            json,
        } => {
            let stale = peers
                .cleanup(now, PeerRetention::new(active_days, inactive_days))
                .await?;
            let unblocked = peers.clear_expired_blacklists(now).await?;
            let trimmed = match keep {
                Some(n) => peers.keep_best(n, PeerSort::LastSeen).await?,
                None => 0,
            };
            let left = peers.stats().await?;
            #[derive(Serialize)]
            struct Report {
                stale_deleted: u64,
                blacklists_cleared: u64,
                trimmed: u64,
                peers: u64,
                bytes: u64,
            }
            let r = Report {
                stale_deleted: stale,
                blacklists_cleared: unblocked,
                trimmed,
                peers: left.count,
                bytes: left.bytes,
            };
            if json {
                json_line(out, &r)?;
            } else {
                writeln!(
                    out,
                    "deleted {} stale and {} surplus peers, lifted {} blacklistings; {} peers ({} bytes) left",
                    r.stale_deleted, r.trimmed, r.blacklists_cleared, r.peers, r.bytes
                )?;
            }
        }
    }
    Ok(())
}

/// Metadata of a blob as printed (the thumbnail as its size only).
#[derive(Serialize)]
struct JsonMedia<'a> {
    id: &'a str,
    room_id: Option<&'a str>,
    mime_type: &'a str,
    size: u64,
    chunks: u64,
    thumbnail_bytes: Option<usize>,
    created_ms: i64,
    expires_ms: Option<i64>,
}

impl<'a> From<&'a MediaInfo> for JsonMedia<'a> {
    fn from(m: &'a MediaInfo) -> Self {
        Self {
            id: &m.id,
            room_id: m.room_id.as_deref(),
            mime_type: &m.mime_type,
            size: m.size,
            chunks: m.chunks,
            thumbnail_bytes: m.thumbnail.as_ref().map(Vec::len),
            created_ms: m.created_ms,
            expires_ms: m.expires_ms,
        }
    }
}

fn print_media(out: &mut dyn Write, m: &MediaInfo, json: bool) -> Result<(), CliError> {
    if json {
        return json_line(out, &JsonMedia::from(m));
    }
    writeln!(
        out,
        "{}  {}  {}  {} bytes  {}",
        format_time(m.created_ms),
        m.id,
        m.mime_type,
        m.size,
        m.room_id.as_deref().unwrap_or("-")
    )?;
    Ok(())
}

/// A MIME type from a file extension (the common ones), else `application/octet-stream`.
pub fn guess_mime(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "opus") => "audio/ogg",
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Runs a `tresor media` subcommand.
///
/// # Errors
/// [`CliError::NoStore`] without a store; [`CliError::Usage`] for a missing blob or an
/// unreadable file; [`CliError::Tresor`]; [`CliError::Output`].
pub async fn media(
    db: &Path,
    key: Option<&Path>,
    cmd: MediaCmd,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let store = open_existing(db, key).await?;
    let media = store.media();
    let now = now_ms();
    match cmd {
        MediaCmd::Put {
            file,
            id,
            mime,
            room,
            expires_days,
            json,
        } => {
            let id = match id {
                Some(id) => id,
                None => file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_owned)
                    .ok_or_else(|| CliError::Usage("pass --id for this file name".into()))?,
            };
            let mime = mime.unwrap_or_else(|| guess_mime(&file).to_owned());
            let mut new = NewMedia::new(id, mime, now);
            if let Some(room) = room {
                new = new.in_room(room);
            }
            if let Some(days) = expires_days {
                new = new.expires_at(now.saturating_add(i64::from(days) * DAY_MS));
            }
            let mut f = std::fs::File::open(&file)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let mut up = media.upload(new).await?;
            let mut buf = vec![0u8; tresor::DEFAULT_CHUNK_SIZE as usize];
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
                if n == 0 {
                    break;
                }
                up.write(&buf[..n]).await?;
            }
            let info = up.finish().await?;
            print_media(out, &info, json)?;
        }
        MediaCmd::Get { id, out: path } => {
            let mut down = media
                .open(&id)
                .await?
                .ok_or_else(|| CliError::Usage(format!("no media {id}")))?;
            let mut sink: Box<dyn Write + '_> = if path.as_os_str() == "-" {
                Box::new(&mut *out)
            } else {
                Box::new(std::fs::File::create(&path).map_err(|e| {
                    CliError::Usage(format!("cannot write {}: {e}", path.display()))
                })?)
            };
            while let Some(chunk) = down.next_chunk().await? {
                sink.write_all(&chunk)?;
            }
            sink.flush()?;
        }
        MediaCmd::Ls {
            room,
            mime,
            limit,
            json,
        } => {
            media.sweep(now).await?;
            let found = match (room, mime) {
                (Some(r), m) => {
                    let mut v = media.by_room(&r, limit, None).await?;
                    if let Some(m) = m {
                        v.retain(|i| i.mime_type == m);
                    }
                    v
                }
                (None, Some(m)) => media.by_mime(&m, limit, None).await?,
                (None, None) => media.recent(limit, None).await?,
            };
            for m in &found {
                print_media(out, m, json)?;
            }
        }
    }
    Ok(())
}
