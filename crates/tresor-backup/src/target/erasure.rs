//! An erasure-coded set of targets: every object is split into `k` data shards plus `m` parity
//! shards (Reed-Solomon, `reed-solomon-simd`), shard `i` stored on target `i` under the
//! object's name. Any `k` intact shards rebuild the object, so it survives `m` targets lost or
//! corrupted. The codec does not detect corrupt shards, so each shard carries a BLAKE3 checksum.
//!
//! Shard object layout (all integers little-endian), 84-byte header then the shard:
//!
//! | offset | len | field |
//! |---|---|---|
//! | 0 | 8 | magic `TRESORSH` |
//! | 8 | 1 | shard format version = 1 |
//! | 9 | 1 | `k` (data shards) |
//! | 10 | 1 | `m` (parity shards) |
//! | 11 | 1 | shard index: `0..k` data, `k..k+m` parity |
//! | 12 | 8 | object length `u64` |
//! | 20 | 32 | BLAKE3 of the whole object |
//! | 52 | 32 | BLAKE3 of this shard's bytes |
//! | 84 | `s` | the shard: `s` = ⌈len / k⌉ rounded up to even, at least 2 |

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::future::join_all;

use super::{BackupTarget, ObjectInfo, check_name};
use crate::TargetError;

const SHARD_MAGIC: [u8; 8] = *b"TRESORSH";
const SHARD_VERSION: u8 = 1;
const SHARD_HEADER_LEN: usize = 84;

/// `k` data + `m` parity shards over `k + m` targets. Writes need every target; reads need any
/// `k` intact shards. See the module documentation for the shard layout.
#[derive(Debug, Clone)]
pub struct ErasureTarget {
    k: usize,
    m: usize,
    targets: Vec<Arc<dyn BackupTarget>>,
}

/// The result of [`ErasureTarget::repair`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErasureRepair {
    /// Objects examined.
    pub objects: u64,
    /// Shards that were missing, corrupt or stale and have been rewritten.
    pub shards_rewritten: u64,
    /// Objects with fewer than `k` intact shards: lost, not repairable.
    pub unrecoverable: Vec<String>,
}

/// A parsed, checksum-verified shard.
struct Shard {
    k: usize,
    m: usize,
    index: usize,
    len: u64,
    digest: [u8; 32],
    data: Vec<u8>,
}

fn shard_bytes(len: usize, k: usize) -> usize {
    let s = len.div_ceil(k).max(2);
    s + (s % 2)
}

fn parse_shard(bytes: &[u8]) -> Option<Shard> {
    let header = bytes.get(..SHARD_HEADER_LEN)?;
    if header[..8] != SHARD_MAGIC || header[8] != SHARD_VERSION {
        return None;
    }
    let (k, m, index) = (
        usize::from(header[9]),
        usize::from(header[10]),
        usize::from(header[11]),
    );
    let len = u64::from_le_bytes(header[12..20].try_into().ok()?);
    let digest: [u8; 32] = header[20..52].try_into().ok()?;
    let shard_digest: [u8; 32] = header[52..84].try_into().ok()?;
    let data = &bytes[SHARD_HEADER_LEN..];
    let expected = shard_bytes(usize::try_from(len).ok()?, k.max(1));
    if k == 0 || m == 0 || index >= k + m || data.len() != expected {
        return None;
    }
    if *blake3::hash(data).as_bytes() != shard_digest {
        return None;
    }
    Some(Shard {
        k,
        m,
        index,
        len,
        digest,
        data: data.to_vec(),
    })
}

impl ErasureTarget {
    /// A set of `k` data and `m` parity shards over `targets` (exactly `k + m` of them).
    ///
    /// # Errors
    /// [`TargetError::Erasure`] if `k` or `m` is 0, `k + m` exceeds 255, the number of targets
    /// differs from `k + m`, or the codec does not support the shape.
    pub fn new(
        k: usize,
        m: usize,
        targets: Vec<Arc<dyn BackupTarget>>,
    ) -> Result<Self, TargetError> {
        let bad = |reason: String| TargetError::Erasure {
            name: String::new(),
            reason,
        };
        if k == 0 || m == 0 || k + m > 255 {
            return Err(bad(format!(
                "need k >= 1, m >= 1, k + m <= 255 (got {k}+{m})"
            )));
        }
        if targets.len() != k + m {
            return Err(bad(format!(
                "{k}+{m} needs {} targets, got {}",
                k + m,
                targets.len()
            )));
        }
        if !reed_solomon_simd::ReedSolomonEncoder::supports(k, m) {
            return Err(bad(format!("shape {k}+{m} is not supported by the codec")));
        }
        Ok(Self { k, m, targets })
    }

    fn encode(&self, name: &str, bytes: &[u8]) -> Result<Vec<Vec<u8>>, TargetError> {
        let codec = |e: reed_solomon_simd::Error| TargetError::Erasure {
            name: name.to_owned(),
            reason: e.to_string(),
        };
        let s = shard_bytes(bytes.len(), self.k);
        let mut originals: Vec<Vec<u8>> = (0..self.k)
            .map(|i| {
                let start = (i * s).min(bytes.len());
                let end = ((i + 1) * s).min(bytes.len());
                let mut shard = bytes[start..end].to_vec();
                shard.resize(s, 0);
                shard
            })
            .collect();
        let recovery = reed_solomon_simd::encode(self.k, self.m, &originals).map_err(codec)?;
        originals.extend(recovery);
        let digest = blake3::hash(bytes);
        Ok(originals
            .into_iter()
            .enumerate()
            .map(|(index, shard)| {
                let mut out = Vec::with_capacity(SHARD_HEADER_LEN + shard.len());
                out.extend_from_slice(&SHARD_MAGIC);
                out.push(SHARD_VERSION);
                // Invariant: k + m <= 255 (checked in `new`), so these fit a byte.
                out.push(self.k as u8);
                out.push(self.m as u8);
                out.push(index as u8);
                out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                out.extend_from_slice(digest.as_bytes());
                out.extend_from_slice(blake3::hash(&shard).as_bytes());
                out.extend_from_slice(&shard);
                out
            })
            .collect())
    }

    /// Reads every shard of `name`; returns the object (if `k` consistent, intact shards exist)
    /// and, per target, whether its shard is intact and belongs to the returned object.
    async fn read(&self, name: &str) -> Result<(Option<Vec<u8>>, Vec<bool>, usize), TargetError> {
        let reads = join_all(self.targets.iter().map(|t| t.get(name))).await;
        let mut failures = 0;
        let mut shards: Vec<Option<Shard>> = Vec::with_capacity(reads.len());
        let mut any = false;
        for (position, read) in reads.into_iter().enumerate() {
            match read {
                Ok(Some(bytes)) => {
                    any = true;
                    // A shard must sit on the target of its index and match this set's shape.
                    shards.push(
                        parse_shard(&bytes)
                            .filter(|s| s.index == position && s.k == self.k && s.m == self.m),
                    );
                }
                Ok(None) => shards.push(None),
                Err(_) => {
                    failures += 1;
                    shards.push(None);
                }
            }
        }
        if !any {
            if failures > self.m {
                return Err(TargetError::NotEnoughShards {
                    name: name.to_owned(),
                    found: 0,
                    needed: self.k,
                });
            }
            return Ok((None, vec![false; self.targets.len()], 0));
        }
        // Group intact shards by object version (length, digest); take the largest group.
        let mut groups: HashMap<(u64, [u8; 32]), usize> = HashMap::new();
        for s in shards.iter().flatten() {
            *groups.entry((s.len, s.digest)).or_default() += 1;
        }
        let Some((&(len, digest), &count)) = groups.iter().max_by_key(|(_, c)| **c) else {
            return Err(TargetError::NotEnoughShards {
                name: name.to_owned(),
                found: 0,
                needed: self.k,
            });
        };
        if count < self.k {
            return Err(TargetError::NotEnoughShards {
                name: name.to_owned(),
                found: count,
                needed: self.k,
            });
        }
        let good: Vec<bool> = shards
            .iter()
            .map(|s| {
                s.as_ref()
                    .is_some_and(|s| s.len == len && s.digest == digest)
            })
            .collect();
        let object = self.decode(name, &shards, &good, len, &digest)?;
        Ok((Some(object), good, count))
    }

    fn decode(
        &self,
        name: &str,
        shards: &[Option<Shard>],
        good: &[bool],
        len: u64,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, TargetError> {
        let err = |reason: String| TargetError::Erasure {
            name: name.to_owned(),
            reason,
        };
        let len = usize::try_from(len).map_err(|_| err("object too large".into()))?;
        let s = shard_bytes(len, self.k);
        let mut originals: Vec<Option<&[u8]>> = (0..self.k)
            .map(|i| {
                if good[i] {
                    shards[i].as_ref().map(|s| s.data.as_slice())
                } else {
                    None
                }
            })
            .collect();
        let restored;
        if originals.iter().any(Option::is_none) {
            let mut decoder = reed_solomon_simd::ReedSolomonDecoder::new(self.k, self.m, s)
                .map_err(|e| err(e.to_string()))?;
            for (i, shard) in shards.iter().enumerate() {
                let Some(shard) = shard.as_ref().filter(|_| good[i]) else {
                    continue;
                };
                if i < self.k {
                    decoder.add_original_shard(i, &shard.data)
                } else {
                    decoder.add_recovery_shard(i - self.k, &shard.data)
                }
                .map_err(|e| err(e.to_string()))?;
            }
            let result = decoder.decode().map_err(|e| err(e.to_string()))?;
            restored = result
                .restored_original_iter()
                .map(|(i, d)| (i, d.to_vec()))
                .collect::<Vec<_>>();
            for (i, d) in &restored {
                if let Some(slot) = originals.get_mut(*i) {
                    *slot = Some(d.as_slice());
                }
            }
        }
        let mut object = Vec::with_capacity(s * self.k);
        for shard in &originals {
            object.extend_from_slice(shard.ok_or_else(|| err("shard not restored".into()))?);
        }
        object.truncate(len);
        if blake3::hash(&object).as_bytes() != digest {
            return Err(err("rebuilt object fails its checksum".into()));
        }
        Ok(object)
    }

    /// Rewrites every missing, corrupt or stale shard of every object under `prefixes` that
    /// still has `k` intact shards. Objects with fewer are reported, not changed.
    ///
    /// # Errors
    /// [`TargetError`] if listing fails on more than `m` targets or a rewrite fails.
    pub async fn repair(&self, prefixes: &[&str]) -> Result<ErasureRepair, TargetError> {
        let mut report = ErasureRepair::default();
        for prefix in prefixes {
            for name in self.union(prefix).await? {
                report.objects += 1;
                match self.read(&name).await {
                    Ok((Some(object), good, _)) => {
                        if good.iter().all(|g| *g) {
                            continue;
                        }
                        let shards = self.encode(&name, &object)?;
                        for (i, shard) in shards.into_iter().enumerate() {
                            if !good[i] {
                                self.targets[i].put(&name, shard).await?;
                                report.shards_rewritten += 1;
                            }
                        }
                    }
                    Ok((None, _, _)) => {}
                    Err(_) => report.unrecoverable.push(name),
                }
            }
        }
        Ok(report)
    }

    /// Names under `prefix` on any target (tolerating up to `m` failing listings).
    async fn union(&self, prefix: &str) -> Result<BTreeSet<String>, TargetError> {
        let lists = join_all(self.targets.iter().map(|t| t.list(prefix))).await;
        let mut names = BTreeSet::new();
        let mut failures = Vec::new();
        for list in lists {
            match list {
                Ok(list) => names.extend(list.into_iter().map(|o| o.name)),
                Err(e) => failures.push(e),
            }
        }
        if failures.len() > self.m {
            return Err(failures.remove(0));
        }
        Ok(names)
    }
}

#[async_trait::async_trait]
impl BackupTarget for ErasureTarget {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), TargetError> {
        check_name(name)?;
        let shards = self.encode(name, &bytes)?;
        let writes = join_all(
            self.targets
                .iter()
                .zip(shards)
                .map(|(t, shard)| t.put(name, shard)),
        )
        .await;
        writes.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, TargetError> {
        check_name(name)?;
        Ok(self.read(name).await?.0)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, TargetError> {
        Ok(self
            .union(prefix)
            .await?
            .into_iter()
            .map(|name| ObjectInfo::new(name, None))
            .collect())
    }

    async fn delete(&self, name: &str) -> Result<(), TargetError> {
        check_name(name)?;
        let deletes = join_all(self.targets.iter().map(|t| t.delete(name))).await;
        deletes.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self.targets.iter().map(|t| t.describe()).collect();
        format!("ec:{}+{}:{}", self.k, self.m, parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::target::DirTarget;

    fn set(dir: &std::path::Path, k: usize, m: usize) -> (ErasureTarget, Vec<DirTarget>) {
        let dirs: Vec<DirTarget> = (0..k + m)
            .map(|i| DirTarget::new(dir.join(format!("t{i}"))))
            .collect();
        let targets = dirs
            .iter()
            .map(|d| Arc::new(d.clone()) as Arc<dyn BackupTarget>)
            .collect();
        (ErasureTarget::new(k, m, targets).unwrap(), dirs)
    }

    #[tokio::test]
    async fn survives_m_lost_or_corrupt_targets_and_repairs() {
        let dir = tempfile::tempdir().unwrap();
        let (ec, dirs) = set(dir.path(), 3, 2);
        let object: Vec<u8> = (0..10_001u32).map(|i| (i * 7 % 251) as u8).collect();
        ec.put("chunks/x", object.clone()).await.unwrap();
        ec.put("empty", Vec::new()).await.unwrap();
        assert_eq!(ec.get("empty").await.unwrap().unwrap(), Vec::<u8>::new());
        assert_eq!(ec.get("chunks/x").await.unwrap().unwrap(), object);
        assert_eq!(ec.get("chunks/none").await.unwrap(), None);
        // Lose one target, corrupt another (a flipped bit in the shard body).
        std::fs::remove_dir_all(dirs[0].root()).unwrap();
        let p = dirs[3].root().join("chunks/x");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[SHARD_HEADER_LEN + 5] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(ec.get("chunks/x").await.unwrap().unwrap(), object);
        assert_eq!(ec.list("chunks/").await.unwrap().len(), 1);
        // A third damaged shard is one too many.
        let p2 = dirs[4].root().join("chunks/x");
        std::fs::remove_file(&p2).unwrap();
        assert!(matches!(
            ec.get("chunks/x").await,
            Err(TargetError::NotEnoughShards {
                found: 2,
                needed: 3,
                ..
            })
        ));
        // Put the shard back by repairing from a healthy state.
        let (ec2, dirs2) = set(&dir.path().join("b"), 3, 2);
        ec2.put("chunks/y", object.clone()).await.unwrap();
        std::fs::remove_file(dirs2[1].root().join("chunks/y")).unwrap();
        std::fs::write(dirs2[4].root().join("chunks/y"), b"garbage").unwrap();
        let report = ec2.repair(&["chunks/"]).await.unwrap();
        assert_eq!(report.shards_rewritten, 2);
        assert!(report.unrecoverable.is_empty());
        let report = ec2.repair(&["chunks/"]).await.unwrap();
        assert_eq!(report.shards_rewritten, 0);
        // Every shard is now intact: any 3 rebuild the object.
        std::fs::remove_file(dirs2[0].root().join("chunks/y")).unwrap();
        std::fs::remove_file(dirs2[2].root().join("chunks/y")).unwrap();
        assert_eq!(ec2.get("chunks/y").await.unwrap().unwrap(), object);
    }

    #[test]
    fn shapes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let t = |n: usize| -> Vec<Arc<dyn BackupTarget>> {
            (0..n)
                .map(|i| Arc::new(DirTarget::new(dir.path().join(i.to_string()))) as _)
                .collect()
        };
        assert!(ErasureTarget::new(2, 1, t(3)).is_ok());
        assert!(ErasureTarget::new(2, 1, t(4)).is_err());
        assert!(ErasureTarget::new(0, 1, t(1)).is_err());
        assert!(ErasureTarget::new(1, 0, t(1)).is_err());
    }
}
