//! Peers for reconnection (typed table `peer`): what a P2P client needs to find a peer again
//! after a restart, an IP change or a network loss, and the scoring that orders reconnection
//! attempts.
//!
//! # Quality score
//!
//! [`ConnectionQuality::score`] is a number in `[0, 1]` that depends on the quality fields
//! only (so it can be an index key):
//!
//! ```text
//! score = 0.4 · success + 0.3 · latency + 0.2 · type + 0.1 · uptime
//!   success = success_rate (clamped to [0, 1]; unknown → 0.5)
//!   latency = 100 / (100 + latency_ms)   (unknown → 0.5; 0 ms → 1, 100 ms → 0.5, 300 ms → 0.25)
//!   type    = host 1.0, srflx 0.8, relay 0.5 (unknown → 0.5)
//!   uptime  = min(avg_uptime_s / 3600, 1) (unknown → 0)
//! ```
//!
//! # Reconnection score
//!
//! [`Peer::reconnection_score`] adds how recently the peer was around and how often the last
//! attempts failed:
//!
//! ```text
//! reconnection = score · 2^(−age_h / 24) / (1 + reconnection_attempts)
//!   age_h = hours since max(last_seen_ms, last_connected_ms) (0 if in the future)
//! ```
//!
//! so a peer seen a day ago counts half as much as one seen now, and each failed attempt since
//! the last success divides the score further.

use serde::{Deserialize, Serialize};

use crate::typed::{IndexDef, KeyPart, TableDef};

/// How a connection to a peer went through (ICE candidate type of the selected pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConnectionType {
    /// A direct connection to a host candidate.
    Host,
    /// Through a NAT, via a server-reflexive (STUN) candidate.
    Srflx,
    /// Through a TURN relay.
    Relay,
}

impl ConnectionType {
    /// `"host"`, `"srflx"` or `"relay"` (ICE's names).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Srflx => "srflx",
            Self::Relay => "relay",
        }
    }
}

/// An ICE server (STUN or TURN), as WebRTC's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// Its URLs (`stun:…`, `turn:…`, `turns:…`).
    pub urls: Vec<String>,
    /// The TURN user name, if any.
    pub username: Option<String>,
    /// The TURN credential, if any (sealed like every value).
    pub credential: Option<String>,
}

/// Measured quality of the connections to a peer. Every field may be unknown.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ConnectionQuality {
    /// Round-trip latency in ms.
    pub latency_ms: Option<u32>,
    /// Share of connection attempts that succeeded, in `[0, 1]`.
    pub success_rate: Option<f64>,
    /// The type of the last connection.
    pub connection_type: Option<ConnectionType>,
    /// Average connection uptime in seconds.
    pub avg_uptime_s: Option<u64>,
}

impl ConnectionQuality {
    /// The quality score in `[0, 1]` (formula in the module docs).
    pub fn score(&self) -> f64 {
        let success = self
            .success_rate
            .filter(|s| s.is_finite())
            .map_or(0.5, |s| s.clamp(0.0, 1.0));
        let latency = self
            .latency_ms
            .map_or(0.5, |l| 100.0 / (100.0 + f64::from(l)));
        let kind = match self.connection_type {
            Some(ConnectionType::Host) => 1.0,
            Some(ConnectionType::Srflx) => 0.8,
            Some(ConnectionType::Relay) | None => 0.5,
        };
        let uptime = self
            .avg_uptime_s
            .map_or(0.0, |u| (u as f64 / 3600.0).min(1.0));
        0.4 * success + 0.3 * latency + 0.2 * kind + 0.1 * uptime
    }

    /// Copies every field `update` knows into `self` (fields it leaves `None` stay).
    pub fn merge(&mut self, update: &ConnectionQuality) {
        if update.latency_ms.is_some() {
            self.latency_ms = update.latency_ms;
        }
        if update.success_rate.is_some() {
            self.success_rate = update.success_rate;
        }
        if update.connection_type.is_some() {
            self.connection_type = update.connection_type;
        }
        if update.avg_uptime_s.is_some() {
            self.avg_uptime_s = update.avg_uptime_s;
        }
    }
}

/// A peer to reconnect to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    /// The peer id (primary key).
    pub peer_id: String,
    /// The name to show, if known.
    pub display_name: Option<String>,
    /// The peer's public key, as the application encodes it.
    pub public_key: Vec<u8>,
    /// A secret shared with the peer (sealed like every value), if any.
    pub shared_secret: Option<Vec<u8>>,
    /// When the peer was first seen, ms since the Unix epoch.
    pub first_seen_ms: i64,
    /// When the peer was last seen (any sign of life), ms since the Unix epoch.
    pub last_seen_ms: i64,
    /// When a connection to the peer last succeeded, ms since the Unix epoch.
    pub last_connected_ms: Option<i64>,
    /// ICE servers to use for this peer.
    pub ice_servers: Vec<IceServer>,
    /// Cached ICE candidates (SDP `candidate:` lines) from the last connection.
    pub ice_candidates: Vec<String>,
    /// The peer's last known address (`ip:port` or a multiaddr), if any.
    pub last_address: Option<String>,
    /// Connection quality.
    pub quality: ConnectionQuality,
    /// Failed reconnection attempts since the last success.
    pub reconnection_attempts: u32,
    /// Until when no reconnection should be tried, ms since the Unix epoch (`None`: not
    /// blacklisted).
    pub blacklisted_until_ms: Option<i64>,
}

impl Peer {
    /// A peer first and last seen at `now_ms`, with nothing else known.
    pub fn new(peer_id: impl Into<String>, public_key: Vec<u8>, now_ms: i64) -> Self {
        Self {
            peer_id: peer_id.into(),
            display_name: None,
            public_key,
            shared_secret: None,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            last_connected_ms: None,
            ice_servers: Vec::new(),
            ice_candidates: Vec::new(),
            last_address: None,
            quality: ConnectionQuality::default(),
            reconnection_attempts: 0,
            blacklisted_until_ms: None,
        }
    }

    /// Whether the peer is blacklisted at `now_ms`.
    pub fn is_blacklisted(&self, now_ms: i64) -> bool {
        self.blacklisted_until_ms.is_some_and(|t| t > now_ms)
    }

    /// When the peer was last around: the later of last seen and last connected.
    pub fn last_active_ms(&self) -> i64 {
        self.last_seen_ms
            .max(self.last_connected_ms.unwrap_or(i64::MIN))
    }

    /// The reconnection score at `now_ms` (formula in the module docs).
    pub fn reconnection_score(&self, now_ms: i64) -> f64 {
        let age_h = (now_ms.saturating_sub(self.last_active_ms())).max(0) as f64 / 3_600_000.0;
        self.quality.score() * (-age_h / 24.0).exp2()
            / (1.0 + f64::from(self.reconnection_attempts))
    }
}

/// The index-key form of a quality score: `round(score · 10⁹)`.
pub fn score_key(score: f64) -> u64 {
    (score.clamp(0.0, 1.0) * 1e9).round() as u64
}

/// Index of [`PEERS`] by last seen (`[I64(last_seen_ms)]`, non-unique).
pub const PEERS_BY_LAST_SEEN: &str = "by_last_seen";
/// Index of [`PEERS`] by last connected (`[I64(last_connected_ms)]`; peers never connected
/// have no entry).
pub const PEERS_BY_LAST_CONNECTED: &str = "by_last_connected";
/// Index of [`PEERS`] by quality score (`[U64(score_key(score))]`, non-unique).
pub const PEERS_BY_QUALITY: &str = "by_quality";
/// Index of [`PEERS`] by blacklist expiry (`[I64(blacklisted_until_ms)]`; only blacklisted
/// peers have an entry).
pub const PEERS_BY_BLACKLIST: &str = "by_blacklist";

/// The peers table (typed table `peer`, primary key the peer id).
pub static PEERS: TableDef<Peer> = TableDef {
    name: "peer",
    primary_key: |p| p.peer_id.as_bytes().to_vec(),
    indexes: &[
        IndexDef {
            name: PEERS_BY_LAST_SEEN,
            unique: false,
            keys: |p| vec![vec![KeyPart::I64(p.last_seen_ms)]],
        },
        IndexDef {
            name: PEERS_BY_LAST_CONNECTED,
            unique: false,
            keys: |p| {
                p.last_connected_ms
                    .map(|t| vec![KeyPart::I64(t)])
                    .into_iter()
                    .collect()
            },
        },
        IndexDef {
            name: PEERS_BY_QUALITY,
            unique: false,
            keys: |p| vec![vec![KeyPart::U64(score_key(p.quality.score()))]],
        },
        IndexDef {
            name: PEERS_BY_BLACKLIST,
            unique: false,
            keys: |p| {
                p.blacklisted_until_ms
                    .map(|t| vec![KeyPart::I64(t)])
                    .into_iter()
                    .collect()
            },
        },
    ],
};

/// Running totals of the peers table, kept in the same batch as every peer write (typed table
/// `peer_totals`, one record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PeerTotals {
    /// Number of peers.
    pub count: u64,
    /// Sum of the encoded sizes of the peers ([`crate::codec::encode`] length), in bytes.
    pub bytes: u64,
}

/// Primary key of the one [`PeerTotals`] record.
pub const PEER_TOTALS_KEY: &[u8] = b"totals";

/// The peer totals table (typed table `peer_totals`, one record under [`PEER_TOTALS_KEY`]).
pub static PEER_TOTALS: TableDef<PeerTotals> = TableDef {
    name: "peer_totals",
    primary_key: |_| PEER_TOTALS_KEY.to_vec(),
    indexes: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_follows_the_documented_formula() {
        let unknown = ConnectionQuality::default();
        assert!((unknown.score() - (0.4 * 0.5 + 0.3 * 0.5 + 0.2 * 0.5)).abs() < 1e-12);
        let best = ConnectionQuality {
            latency_ms: Some(0),
            success_rate: Some(1.0),
            connection_type: Some(ConnectionType::Host),
            avg_uptime_s: Some(7200),
        };
        assert!((best.score() - 1.0).abs() < 1e-12);
        let relay = ConnectionQuality {
            latency_ms: Some(300),
            success_rate: Some(0.5),
            connection_type: Some(ConnectionType::Relay),
            avg_uptime_s: Some(1800),
        };
        let want = 0.4 * 0.5 + 0.3 * 0.25 + 0.2 * 0.5 + 0.1 * 0.5;
        assert!((relay.score() - want).abs() < 1e-12);
        assert!(score_key(best.score()) > score_key(relay.score()));
        let nan = ConnectionQuality {
            success_rate: Some(f64::NAN),
            ..unknown
        };
        assert_eq!(nan.score(), unknown.score());
    }

    #[test]
    fn reconnection_score_halves_per_day_and_divides_by_attempts() {
        let mut p = Peer::new("p", vec![], 0);
        let q = p.quality.score();
        assert!((p.reconnection_score(0) - q).abs() < 1e-12);
        assert!((p.reconnection_score(86_400_000) - q / 2.0).abs() < 1e-12);
        p.reconnection_attempts = 3;
        assert!((p.reconnection_score(0) - q / 4.0).abs() < 1e-12);
        p.last_connected_ms = Some(86_400_000);
        assert!((p.reconnection_score(86_400_000) - q / 4.0).abs() < 1e-12);
    }

    #[test]
    fn merge_keeps_unknown_fields() {
        let mut q = ConnectionQuality {
            latency_ms: Some(10),
            success_rate: Some(0.9),
            connection_type: Some(ConnectionType::Host),
            avg_uptime_s: Some(5),
        };
        q.merge(&ConnectionQuality {
            latency_ms: Some(50),
            ..Default::default()
        });
        assert_eq!(q.latency_ms, Some(50));
        assert_eq!(q.success_rate, Some(0.9));
        assert_eq!(q.connection_type, Some(ConnectionType::Host));
    }
}
