//! matrix-bench: tresor-matrix's `StateStore` vs matrix-sdk-sqlite's `SqliteStateStore` on the
//! operations matrix-sdk's state store suite exercises most: saving one `StateChanges` that
//! carries a room's member events (and their profiles), loading the members, point reads of
//! state events, loading room infos, reopening.
//!
//! One process measures one store (`--system tresor|sqlite`) and prints one JSON object on
//! stdout; `cargo xtask bench-matrix` runs both systems alternately, several runs each, and
//! prints the table of medians (docs/BENCHMARKS.md, "Matrix stores").
//!
//! ```text
//! matrix-bench --system tresor|sqlite --dir DIR [--members N] [--saves K] [--reps R]
//! ```
//!
//! Both stores are opened with a passphrase, so both seal every value (tresor: AES-256-GCM
//! under an Argon2id-derived key; matrix-sdk-sqlite: ChaCha20-Poly1305 under a PBKDF2-derived
//! key, keys hashed), and both commit every `save_changes` durably (tresor:
//! `Durability::Immediate`; SQLite: WAL with its default `synchronous = FULL`).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use matrix_sdk_base::store::{DynStateStore, IntoStateStore, RoomLoadSettings, StateChanges};
use matrix_sdk_base::{RoomInfo, RoomMemberships, RoomState};
use matrix_sdk_test::event_factory::EventFactory;
use ruma::events::room::member::{MembershipState, SyncRoomMemberEvent};
use ruma::events::{AnySyncStateEvent, StateEventType};
use ruma::serde::Raw;
use ruma::{OwnedMxcUri, OwnedUserId, RoomId, UserId, room_id, user_id};

const PASSPHRASE: &str = "matrix-bench passphrase";

struct Args {
    system: String,
    dir: PathBuf,
    members: usize,
    saves: usize,
    reps: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        system: String::new(),
        dir: PathBuf::new(),
        members: 1000,
        saves: 5,
        reps: 15,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--system" => a.system = value()?,
            "--dir" => a.dir = PathBuf::from(value()?),
            "--members" => a.members = value()?.parse().map_err(|e| format!("--members: {e}"))?,
            "--saves" => a.saves = value()?.parse().map_err(|e| format!("--saves: {e}"))?,
            "--reps" => a.reps = value()?.parse().map_err(|e| format!("--reps: {e}"))?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !matches!(a.system.as_str(), "tresor" | "sqlite") {
        return Err("--system tresor|sqlite is required".into());
    }
    if a.dir.as_os_str().is_empty() {
        return Err("--dir DIR is required".into());
    }
    if a.members == 0 || a.saves == 0 || a.reps == 0 {
        return Err("--members, --saves and --reps must be at least 1".into());
    }
    Ok(a)
}

/// Opens (creating if missing) the store of `system` in directory `dir`: both keep their
/// files inside it, so its size is the store's size.
async fn open(system: &str, dir: &Path) -> Result<Arc<DynStateStore>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    match system {
        "tresor" => {
            let store =
                tresor_matrix::TresorMatrixStore::open(dir.join("matrix.redb"), PASSPHRASE.into())
                    .await
                    .map_err(|e| format!("open tresor-matrix: {e}"))?;
            Ok(store.state_store().into_state_store())
        }
        _ => {
            let store = matrix_sdk_sqlite::SqliteStateStore::open(dir, Some(PASSPHRASE))
                .await
                .map_err(|e| format!("open matrix-sdk-sqlite: {e}"))?;
            Ok(store.into_state_store())
        }
    }
}

fn room() -> &'static RoomId {
    room_id!("!bench:example.org")
}

fn member(i: usize) -> OwnedUserId {
    UserId::parse(format!("@member{i:05}:example.org")).expect("a valid user id")
}

/// One `StateChanges` with `n` `m.room.member` state events in one room (every tenth member
/// invited, the others joined), their profiles, the room's name and its `RoomInfo`: what a
/// first sync of a large room hands the store. `tag` varies the display names so that a second
/// save rewrites every value.
fn changes(n: usize, tag: &str) -> StateChanges {
    let room = room();
    let mut changes = StateChanges::default();
    let info = RoomInfo::new(room, RoomState::Joined);
    let admin = user_id!("@admin:example.org");
    let name: Raw<AnySyncStateEvent> = EventFactory::new()
        .sender(admin)
        .room(room)
        .room_name("matrix-bench")
        .into();
    changes.add_state_event(room, name.deserialize().expect("a valid event"), name);
    let mut profiles = BTreeMap::new();
    for i in 0..n {
        let user = member(i);
        let f = EventFactory::new().sender(&user).room(room);
        let avatar = OwnedMxcUri::from(format!("mxc://example.org/avatar{i}"));
        let builder = f
            .member(&user)
            .display_name(format!("Member {i} {tag}"))
            .avatar_url(&avatar);
        let builder = if i % 10 == 9 {
            builder.membership(MembershipState::Invite)
        } else {
            builder
        };
        let raw: Raw<SyncRoomMemberEvent> = builder.into();
        let event: SyncRoomMemberEvent = raw.deserialize().expect("a valid member event");
        profiles.insert(user.clone(), (&event).into());
        let raw: Raw<AnySyncStateEvent> = raw.cast_unchecked();
        changes.add_state_event(room, raw.deserialize().expect("a valid state event"), raw);
    }
    changes.profiles.insert(room.to_owned(), profiles);
    changes.add_room(info);
    changes
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A deterministic sequence of member indexes (xorshift), the same for both systems.
fn picks(n: usize, count: usize) -> Vec<usize> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        })
        .collect()
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn bench(a: &Args) -> Result<serde_json::Value, String> {
    let n = a.members;
    let room = room();
    let first = changes(n, "a");
    let second = changes(n, "b");

    // Create + save into a fresh store, `saves` times; the last store stays for the reads.
    let (mut create, mut save, mut resave) = (Vec::new(), Vec::new(), Vec::new());
    let mut store = None;
    for i in 0..a.saves {
        let dir = a.dir.join(format!("store{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        let t = Instant::now();
        let s = open(&a.system, &dir).await?;
        create.push(ms(t));
        let t = Instant::now();
        s.save_changes(&first).await.map_err(err)?;
        save.push(ms(t));
        // The same members again with new display names: every value rewritten.
        let t = Instant::now();
        s.save_changes(&second).await.map_err(err)?;
        resave.push(ms(t));
        if i + 1 < a.saves {
            drop(s);
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            store = Some(s);
        }
    }
    let store = store.ok_or("no store")?;

    let users: Vec<OwnedUserId> = (0..n).map(member).collect();
    let keys: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let points = picks(n, 1000);
    let (mut ids, mut events, mut for_keys, mut profiles, mut point, mut infos) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut check = serde_json::Map::new();
    for _ in 0..a.reps {
        let t = Instant::now();
        let joined = store
            .get_user_ids(room, RoomMemberships::JOIN)
            .await
            .map_err(err)?;
        ids.push(ms(t));
        check.insert("joined".into(), joined.len().into());

        let t = Instant::now();
        let all = store
            .get_state_events(room, StateEventType::RoomMember)
            .await
            .map_err(err)?;
        events.push(ms(t));
        check.insert("member_events".into(), all.len().into());

        let t = Instant::now();
        let some = store
            .get_state_events_for_keys(room, StateEventType::RoomMember, &key_refs)
            .await
            .map_err(err)?;
        for_keys.push(ms(t));
        check.insert("for_keys".into(), some.len().into());

        let t = Instant::now();
        let p = store.get_profiles(room, &users).await.map_err(err)?;
        profiles.push(ms(t));
        check.insert("profiles".into(), p.len().into());

        let t = Instant::now();
        let mut found = 0usize;
        for &i in &points {
            if store
                .get_state_event(room, StateEventType::RoomMember, &keys[i])
                .await
                .map_err(err)?
                .is_some()
            {
                found += 1;
            }
        }
        // Microseconds per read.
        point.push(ms(t) * 1e3 / points.len() as f64);
        check.insert("point_found".into(), found.into());

        let t = Instant::now();
        let r = store
            .get_room_infos(&RoomLoadSettings::All)
            .await
            .map_err(err)?;
        infos.push(ms(t));
        check.insert("rooms".into(), r.len().into());
    }
    drop(store);

    let dir = a.dir.join(format!("store{}", a.saves - 1));
    // Let the stores' background tasks (SQLite's connection pool) wind down.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let file_bytes = dir_bytes(&dir);
    let mut reopen = Vec::new();
    for _ in 0..a.saves {
        let t = Instant::now();
        let s = open(&a.system, &dir).await?;
        // The first read after open: what a client does at startup.
        let r = s
            .get_room_infos(&RoomLoadSettings::All)
            .await
            .map_err(err)?;
        reopen.push(ms(t));
        check.insert("rooms_after_reopen".into(), r.len().into());
        drop(s);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(&a.dir);

    Ok(serde_json::json!({
        "system": a.system,
        "members": n,
        "create_ms": median(create),
        "save_ms": median(save),
        "resave_ms": median(resave),
        "user_ids_ms": median(ids),
        "member_events_ms": median(events),
        "for_keys_ms": median(for_keys),
        "profiles_ms": median(profiles),
        "point_us": median(point),
        "room_infos_ms": median(infos),
        "reopen_ms": median(reopen),
        "file_bytes": file_bytes,
        "check": check,
    }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = match parse() {
        Ok(a) => bench(&a).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(v) => {
            println!("{v}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("matrix-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
