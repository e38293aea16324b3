//! Splitting one sync across machines: shard `INDEX` of `COUNT` takes the repositories whose
//! stable hash falls to it, so `COUNT` processes given the same config (a Kubernetes Indexed Job,
//! a CI matrix, a Slurm array) cover every image exactly once between them, without talking to
//! each other. All tags of a repository go to one shard, so shared layers stay together and
//! each repository's tags are listed by one process only.
//!
//! The hash is fixed forever (changing it would move repositories between shards of a running
//! mirror): the first 8 bytes, big-endian, of the SHA-256 of the repository's full name
//! (`registry.example.com/ns/app`, as normalised by docker references), modulo `COUNT`.

use sha2::{Digest as _, Sha256};

/// One shard of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u32,
    /// How many shards there are.
    pub count: u32,
}

/// A `--shard` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// Not `INDEX/COUNT` with numbers.
    #[error("{0:?} is not INDEX/COUNT (two whole numbers, e.g. 0/4)")]
    Format(String),
    /// COUNT is 0.
    #[error("a sync cannot be split into 0 shards")]
    NoShards,
    /// INDEX is not below COUNT.
    #[error("shard index {index} is out of range for {count} shards (indexes run from 0 to {})", count - 1)]
    OutOfRange {
        /// The index given.
        index: u32,
        /// The count given.
        count: u32,
    },
}

impl Shard {
    /// Shard `index` of `count`, checked.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards);
        }
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// Parses `INDEX/COUNT`.
    pub fn parse(s: &str) -> Result<Shard, ShardError> {
        let (i, c) = s
            .split_once('/')
            .ok_or_else(|| ShardError::Format(s.to_string()))?;
        let num = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| ShardError::Format(s.to_string()))
        };
        Shard::new(num(i)?, num(c)?)
    }

    /// Which shard of `count` a repository belongs to.
    pub fn of(repository: &str, count: u32) -> u32 {
        let h = Sha256::digest(repository.as_bytes());
        let mut first = [0u8; 8];
        for (f, b) in first.iter_mut().zip(h.iter()) {
            *f = *b;
        }
        (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
    }

    /// Whether this shard takes `repository`.
    pub fn takes(&self, repository: &str) -> bool {
        Shard::of(repository, self.count) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(Shard::parse("0/1"), Ok(Shard { index: 0, count: 1 }));
        assert_eq!(
            Shard::parse("4/4"),
            Err(ShardError::OutOfRange { index: 4, count: 4 })
        );
        assert_eq!(Shard::parse("0/0"), Err(ShardError::NoShards));
        for bad in ["", "1", "a/4", "1/b", "-1/4", "1/4/5"] {
            assert!(
                matches!(Shard::parse(bad), Err(ShardError::Format(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_repository_has_exactly_one_shard_and_the_hash_is_fixed() {
        let repos: Vec<String> = (0..200).map(|i| format!("r.example/ns/app{i}")).collect();
        let shards: Vec<Shard> = (0..4).map(|i| Shard::new(i, 4).expect("shard")).collect();
        let mut per = [0usize; 4];
        for r in &repos {
            let takers: Vec<_> = shards.iter().filter(|s| s.takes(r)).collect();
            assert_eq!(takers.len(), 1, "{r}");
            per[takers[0].index as usize] += 1;
        }
        assert!(per.iter().all(|n| *n > 25), "{per:?}");
        // Pinned (computed with Python's hashlib): docs/sync.md documents the function, and a
        // change would move repositories between the shards of a running mirror.
        assert_eq!(Shard::of("registry.example.com/ns/app", 1000), 517);
        assert_eq!(Shard::of("docker.io/library/busybox", 4), 0);
    }
}
