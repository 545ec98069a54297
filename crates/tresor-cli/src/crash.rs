//! Shared pieces of the crash-consistency harness: the deterministic message of an id, a small
//! seeded PRNG, and the checker that replays a writer's log against a reopened store.

use std::collections::{BTreeMap, BTreeSet};

use tresor::{Message, Tresor};

/// The message the crash writer saves under `id`: every field a pure function of the id.
pub fn message(id: &str) -> Message {
    let h = blake3_like(id);
    Message::new(
        id,
        format!("conv-{}", h % 17),
        format!("peer-{}", h % 11),
        Some(format!("peer-{}", (h / 11) % 11)),
        (h % 1_000_000) as i64,
        format!("body of {id} {}", "z".repeat((h % 300) as usize)),
    )
}

/// FNV-1a of the id: any fixed function will do, it only spreads content.
fn blake3_like(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The other passphrase of the pair the crash writer switches between: `P` ⇄ `P-alt`.
pub fn alternate(passphrase: &str) -> String {
    match passphrase.strip_suffix("-alt") {
        Some(base) => base.to_owned(),
        None => format!("{passphrase}-alt"),
    }
}

/// xorshift64*: a deterministic PRNG, so a failing seed reproduces.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What the writers' logs say the store must hold.
#[derive(Debug, Default)]
pub struct Model {
    /// Ids whose save was acknowledged and not deleted by an acknowledged delete.
    pub present: BTreeSet<String>,
    /// Ids whose delete was acknowledged.
    pub deleted: BTreeSet<String>,
    /// Batches begun but not acknowledged: each must be all-or-nothing.
    pub in_doubt: Vec<(bool, Vec<String>)>,
    /// The passphrase the store must open with, when known (`None`: a change is in doubt,
    /// either the old or the new one may open it, never both, never neither).
    pub passphrase: Option<String>,
    /// Passphrase changes and key rotations acknowledged.
    pub key_changes: u64,
}

impl Model {
    /// Folds one writer's stdout into the model.
    pub fn apply_log(&mut self, log: &str) {
        let mut begun: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
        for line in log.lines() {
            let mut parts = line.split_whitespace();
            match parts.next() {
                Some("begin") => {
                    if let Some(b) = parts.next() {
                        begun.insert(b.to_owned(), (false, parts.map(str::to_owned).collect()));
                    }
                }
                Some("begin-passwd") => {
                    if let (Some(b), Some(p)) = (parts.next(), parts.next()) {
                        begun.insert(b.to_owned(), (false, vec![format!("passwd:{p}")]));
                    }
                }
                Some("begin-rekey") => {
                    if let Some(b) = parts.next() {
                        begun.insert(b.to_owned(), (false, vec!["rekey".to_owned()]));
                    }
                }
                Some("begin-delete") => {
                    if let Some(b) = parts.next() {
                        begun.insert(b.to_owned(), (true, parts.map(str::to_owned).collect()));
                    }
                }
                Some("ack") => {
                    if let Some((delete, ids)) = parts.next().and_then(|b| begun.remove(b)) {
                        if let Some(p) = ids.first().and_then(|i| i.strip_prefix("passwd:")) {
                            self.passphrase = Some(p.to_owned());
                            self.key_changes += 1;
                            continue;
                        }
                        if ids.first().is_some_and(|i| i == "rekey") {
                            self.key_changes += 1;
                            continue;
                        }
                        for id in ids {
                            if delete {
                                self.present.remove(&id);
                                self.deleted.insert(id);
                            } else {
                                self.present.insert(id);
                            }
                        }
                    }
                }
                _ => {} // a line cut by the kill
            }
        }
        for (delete, ids) in begun.into_values() {
            if ids.first().is_some_and(|i| i.starts_with("passwd:")) {
                self.passphrase = None; // in doubt: settled by whichever opens
            } else if ids.first().is_some_and(|i| i == "rekey") {
                // An interrupted rotation resumes at the next open; nothing to settle.
            } else {
                self.in_doubt.push((delete, ids));
            }
        }
    }

    /// Checks the reopened store against the model; returns a description of each violation.
    /// Resolves in-doubt batches to what the store shows (all present or all absent), so later
    /// runs check them as settled.
    ///
    /// # Errors
    /// A [`tresor::Error`] from reading the store.
    pub async fn verify(&mut self, store: &Tresor) -> Result<Vec<String>, tresor::Error> {
        let mut problems = Vec::new();
        let m = store.messages();
        // An unacknowledged delete may or may not have happened: settled below.
        let doubtful: BTreeSet<&String> = self
            .in_doubt
            .iter()
            .filter(|(delete, _)| *delete)
            .flat_map(|(_, ids)| ids)
            .collect();
        for id in self.present.iter().filter(|id| !doubtful.contains(id)) {
            match m.get(id).await? {
                Some(got) if got.same_content(&message(id)) => {}
                Some(_) => problems.push(format!("{id}: content differs")),
                None => problems.push(format!("{id}: acknowledged save lost")),
            }
        }
        for id in &self.deleted {
            if m.get(id).await?.is_some() {
                problems.push(format!("{id}: acknowledged delete undone"));
            }
        }
        for (delete, ids) in std::mem::take(&mut self.in_doubt) {
            let mut there = Vec::new();
            for id in &ids {
                let got = m.get(id).await?;
                if let Some(g) = &got
                    && !g.same_content(&message(id))
                {
                    problems.push(format!("{id}: content differs (in-doubt batch)"));
                }
                there.push(got.is_some());
            }
            if delete {
                // A single-id delete: either outcome is fine; settle it.
                for (id, present) in ids.iter().zip(&there) {
                    if *present {
                        self.present.insert(id.clone());
                    } else {
                        self.present.remove(id);
                        self.deleted.insert(id.clone());
                    }
                }
            } else if there.iter().all(|p| *p) {
                self.present.extend(ids);
            } else if there.iter().any(|p| *p) {
                problems.push(format!("batch {ids:?} is half visible: {there:?}"));
            }
        }
        Ok(problems)
    }
}
