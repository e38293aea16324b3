//! What earlier recompressions gave: source layer digest and output settings -> the layer they
//! made (digest, size, diff_id, annotations). A copy that recompresses asks here first, so a
//! second copy of the same image builds the same manifest without recompressing anything, and
//! the destination's reuse check finds the converted blobs (containers/image keeps the same
//! kind of knowledge in its blob-info cache).
//!
//! An entry is a fact about a conversion, not about any destination: recompression with the
//! same settings by the same ferry and libzstd gives the same bytes, so a copy that finds an
//! entry but not the blob at its destination recompresses again and checks that the bytes hash
//! to the digest the entry promised. The key therefore names the engine (ferry's and libzstd's
//! versions), the format, the level and whether libzstd's worker threads were used. The file is
//! JSON, replaced atomically; a missing, unreadable or foreign file is an empty cache (it is
//! only ever a shortcut).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::format::OutputSpec;
use crate::digest::Digest;

/// The cache file's format version.
const VERSION: u32 = 1;
/// Entries kept in the file; the oldest go first.
const MAX_ENTRIES: usize = 100_000;

/// One conversion remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// The layer the conversion made.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// The uncompressed tar's digest (the config's diff_id).
    pub diff_id: Digest,
    /// The annotations its descriptor carries (zstd:chunked's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// libzstd worker threads used (0 or more: the output differs between 0 and any other).
    #[serde(default)]
    pub threads: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Key {
    source: Digest,
    format: String,
    level: i32,
    engine: String,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    key: Key,
    #[serde(flatten)]
    layer: CachedLayer,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    entries: Vec<Entry>,
}

/// Remembered conversions, in memory and (when opened on a file) on disk. Shared by the copies
/// of one command (a sync's many images).
#[derive(Debug)]
pub struct ConversionCache {
    path: Option<PathBuf>,
    entries: Mutex<HashMap<Key, (u64, CachedLayer)>>,
}

/// What produced a layer's bytes: ferry's version and libzstd's.
fn engine() -> String {
    format!(
        "ferry {} libzstd {}",
        env!("CARGO_PKG_VERSION"),
        zstd::zstd_safe::version_string()
    )
}

fn key(source: &Digest, spec: &OutputSpec) -> Key {
    Key {
        source: source.clone(),
        format: spec.format.name().to_string(),
        level: spec.effective_level(),
        engine: engine(),
    }
}

impl ConversionCache {
    /// A cache that lives as long as the process (a library caller that keeps no files).
    pub fn in_memory() -> ConversionCache {
        ConversionCache {
            path: None,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cache kept in `path` (read now if it exists; written after each recompression).
    pub fn open(path: impl Into<PathBuf>) -> ConversionCache {
        let path = path.into();
        let entries = read(&path)
            .into_iter()
            .enumerate()
            .map(|(i, e)| (e.key, (i as u64, e.layer)))
            .collect();
        ConversionCache {
            path: Some(path),
            entries: Mutex::new(entries),
        }
    }

    /// The file it is kept in, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What recompressing `source` with `spec` gave before, if this cache knows.
    pub fn get(&self, source: &Digest, spec: &OutputSpec) -> Option<CachedLayer> {
        let entries = self.entries.lock().ok()?;
        entries.get(&key(source, spec)).map(|(_, l)| l.clone())
    }

    /// Remembers conversions and writes the file. A failure to write is returned for the
    /// caller to warn about: the copy itself does not depend on the cache.
    pub fn insert_all(
        &self,
        layers: impl IntoIterator<Item = (Digest, OutputSpec, CachedLayer)>,
    ) -> std::io::Result<()> {
        {
            let Ok(mut entries) = self.entries.lock() else {
                return Ok(());
            };
            let first = entries.values().map(|(n, _)| *n + 1).max().unwrap_or(0);
            for (n, (source, spec, layer)) in (first..).zip(layers) {
                entries.insert(key(&source, &spec), (n, layer));
            }
        }
        self.save()
    }

    /// Forgets what it knew of `source` with `spec` (its promise was not kept).
    pub fn forget(&self, source: &Digest, spec: &OutputSpec) -> std::io::Result<()> {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&key(source, spec));
        }
        self.save_merging(false)
    }

    fn save(&self) -> std::io::Result<()> {
        self.save_merging(true)
    }

    /// Writes the file: what another process wrote meanwhile is merged in (unless this write
    /// forgets an entry), then replaced atomically (a temporary file renamed over it).
    fn save_merging(&self, merge: bool) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut all: Vec<(u64, Entry)> = {
            let Ok(entries) = self.entries.lock() else {
                return Ok(());
            };
            entries
                .iter()
                .map(|(k, (n, l))| {
                    (
                        *n,
                        Entry {
                            key: k.clone(),
                            layer: l.clone(),
                        },
                    )
                })
                .collect()
        };
        for e in if merge { read(path) } else { Vec::new() } {
            if !all.iter().any(|(_, mine)| mine.key == e.key) {
                // Older than anything this process wrote.
                all.push((0, e));
            }
        }
        all.sort_by_key(|(n, _)| *n);
        let skip = all.len().saturating_sub(MAX_ENTRIES);
        let file = File {
            version: VERSION,
            entries: all.into_iter().skip(skip).map(|(_, e)| e).collect(),
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut tmp, &file)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn read(path: &Path) -> Vec<Entry> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    match serde_json::from_slice::<File>(&bytes) {
        Ok(f) if f.version == VERSION => f.entries,
        _ => Vec::new(),
    }
}

impl CachedLayer {
    /// The output settings that made it (the level of `spec`, the threads it used).
    pub fn spec(&self, spec: &OutputSpec) -> OutputSpec {
        spec.with_threads(self.threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::OutputFormat;

    fn layer(n: u8) -> CachedLayer {
        CachedLayer {
            digest: Digest::sha256_of(&[n]),
            size: u64::from(n),
            diff_id: Digest::sha256_of(&[n, n]),
            annotations: BTreeMap::new(),
            threads: 0,
        }
    }

    #[test]
    fn entries_survive_a_reopen_and_merge_with_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cache.json");
        let zstd = OutputSpec::new(OutputFormat::Zstd);
        let gzip = OutputSpec::new(OutputFormat::Gzip);
        let a = ConversionCache::open(&path);
        let b = ConversionCache::open(&path);
        a.insert_all([(Digest::sha256_of(b"1"), zstd, layer(1))])
            .unwrap();
        b.insert_all([(Digest::sha256_of(b"2"), gzip, layer(2))])
            .unwrap();
        let c = ConversionCache::open(&path);
        assert_eq!(c.get(&Digest::sha256_of(b"1"), &zstd), Some(layer(1)));
        assert_eq!(c.get(&Digest::sha256_of(b"2"), &gzip), Some(layer(2)));
        // Another format or level is another conversion.
        assert_eq!(c.get(&Digest::sha256_of(b"1"), &gzip), None);
        let zstd9 = zstd.with_level(9).unwrap();
        assert_eq!(c.get(&Digest::sha256_of(b"1"), &zstd9), None);
        c.forget(&Digest::sha256_of(b"1"), &zstd).unwrap();
        assert_eq!(c.get(&Digest::sha256_of(b"1"), &zstd), None);
        // Forgotten in the file too, while the other entry stays.
        let d = ConversionCache::open(&path);
        assert_eq!(d.get(&Digest::sha256_of(b"1"), &zstd), None);
        assert_eq!(d.get(&Digest::sha256_of(b"2"), &gzip), Some(layer(2)));
        std::fs::write(&path, b"not json").unwrap();
        assert_eq!(
            ConversionCache::open(&path).get(&Digest::sha256_of(b"2"), &gzip),
            None
        );
    }
}
