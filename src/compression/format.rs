//! Which compression a layer has (from its media type or its first bytes) and which one to
//! write (skopeo's `--dest-compress-format` names and `--dest-compress-level` ranges).

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use super::CompressionError;

/// How a blob's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// A plain tar.
    Uncompressed,
    /// gzip (one or more members).
    Gzip,
    /// zstd (zstd:chunked layers are zstd too: their metadata is in skippable frames).
    Zstd,
    /// bzip2: recognised so the error can name it; ferry does not decompress it.
    Bzip2,
    /// xz: recognised so the error can name it; ferry does not decompress it.
    Xz,
}

impl Compression {
    /// The compression a layer media type declares; `None` for a type that is not a layer
    /// type ferry knows (then the bytes decide, see [`Compression::sniff`]).
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        let mt = media_type.trim();
        if mt.ends_with("+gzip") || mt.ends_with(".tar.gzip") {
            Some(Compression::Gzip)
        } else if mt.ends_with("+zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") || mt.ends_with("v1.tar") {
            Some(Compression::Uncompressed)
        } else {
            None
        }
    }

    /// The compression the first bytes of a blob show (`Uncompressed` when no known magic).
    /// Six bytes are enough to tell.
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            // A zstd stream may begin with a skippable frame (0x184D2A50..=0x184D2A5F).
            [b, 0x2a, 0x4d, 0x18, ..] if b & 0xf0 == 0x50 => Compression::Zstd,
            [b'B', b'Z', b'h', ..] => Compression::Bzip2,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
            _ => Compression::Uncompressed,
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Uncompressed => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The compression to write a layer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutputFormat {
    /// A plain tar (skopeo's `--dest-decompress`).
    Uncompressed,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// zstd:chunked: zstd with per-file frames, a TOC and the tar-split (see `chunked`).
    ZstdChunked,
}

/// zstd:chunked's default level. containers/image asks its Go zstd encoder for level 10, which
/// that encoder maps to its "best" speed class; libzstd's 10 is several times slower on the
/// small per-chunk frames for a few percent of size, so ferry uses libzstd's default here too.
const ZSTD_CHUNKED_DEFAULT_LEVEL: i32 = 3;

impl OutputFormat {
    /// The name skopeo's `--dest-compress-format` uses.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Uncompressed => "uncompressed",
            OutputFormat::Gzip => "gzip",
            OutputFormat::Zstd => "zstd",
            OutputFormat::ZstdChunked => "zstd:chunked",
        }
    }

    /// The compression of the bytes written.
    pub fn compression(self) -> Compression {
        match self {
            OutputFormat::Uncompressed => Compression::Uncompressed,
            OutputFormat::Gzip => Compression::Gzip,
            OutputFormat::Zstd | OutputFormat::ZstdChunked => Compression::Zstd,
        }
    }

    /// The OCI layer media type for this output.
    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            OutputFormat::Uncompressed => "application/vnd.oci.image.layer.v1.tar",
            OutputFormat::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            OutputFormat::Zstd | OutputFormat::ZstdChunked => {
                "application/vnd.oci.image.layer.v1.tar+zstd"
            }
        }
    }

    /// The Docker schema 2 layer media type, when Docker images can hold this output (they
    /// have no zstd layers).
    pub fn docker_layer_media_type(self) -> Option<&'static str> {
        match self {
            OutputFormat::Uncompressed => Some("application/vnd.docker.image.rootfs.diff.tar"),
            OutputFormat::Gzip => Some("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            OutputFormat::Zstd | OutputFormat::ZstdChunked => None,
        }
    }

    /// The format a source layer already has, from its descriptor: zstd:chunked when a zstd
    /// layer carries the TOC annotation. `None` for a media type that is not a layer's. For
    /// deciding whether a layer must be recompressed (`--force-compression` recompresses even
    /// when this equals the requested format).
    pub fn of_layer(
        media_type: &str,
        annotations: Option<&std::collections::BTreeMap<String, String>>,
    ) -> Option<OutputFormat> {
        Some(match Compression::from_media_type(media_type)? {
            Compression::Uncompressed => OutputFormat::Uncompressed,
            Compression::Gzip => OutputFormat::Gzip,
            Compression::Zstd
                if annotations.is_some_and(|a| a.contains_key(super::MANIFEST_CHECKSUM_KEY)) =>
            {
                OutputFormat::ZstdChunked
            }
            Compression::Zstd => OutputFormat::Zstd,
            Compression::Bzip2 | Compression::Xz => return None,
        })
    }

    /// The levels this format accepts.
    pub fn level_range(self) -> RangeInclusive<i32> {
        match self {
            OutputFormat::Uncompressed => 0..=0,
            OutputFormat::Gzip => 0..=9,
            OutputFormat::Zstd | OutputFormat::ZstdChunked => zstd::compression_level_range(),
        }
    }

    /// The level used when none is given.
    pub fn default_level(self) -> i32 {
        match self {
            OutputFormat::Uncompressed => 0,
            OutputFormat::Gzip => 6,
            OutputFormat::Zstd => zstd::DEFAULT_COMPRESSION_LEVEL,
            OutputFormat::ZstdChunked => ZSTD_CHUNKED_DEFAULT_LEVEL,
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OutputFormat {
    type Err = CompressionError;
    /// Parses skopeo's `--dest-compress-format` values: `gzip`, `zstd`, `zstd:chunked`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gzip" => Ok(OutputFormat::Gzip),
            "zstd" => Ok(OutputFormat::Zstd),
            "zstd:chunked" => Ok(OutputFormat::ZstdChunked),
            other => Err(CompressionError::UnknownFormat(other.to_string())),
        }
    }
}

/// How to compress an output: format, level and threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputSpec {
    /// The format.
    pub format: OutputFormat,
    /// The level ([`OutputFormat::default_level`] when `None`).
    pub level: Option<i32>,
    /// libzstd worker threads for zstd (0: compress in the calling thread). zstd:chunked
    /// ignores it: its frames are too small. On 2 cores 0 is fastest when the input is
    /// compressed, since decompression already takes the other core (docs/compression.md).
    pub threads: u32,
}

impl OutputSpec {
    /// `format` at its default level, single-threaded.
    pub fn new(format: OutputFormat) -> OutputSpec {
        OutputSpec {
            format,
            level: None,
            threads: 0,
        }
    }

    /// Sets the level, refusing one the format does not accept.
    pub fn with_level(mut self, level: i32) -> Result<OutputSpec, CompressionError> {
        let range = self.format.level_range();
        if !range.contains(&level) {
            return Err(CompressionError::Level {
                format: self.format,
                level,
                min: *range.start(),
                max: *range.end(),
            });
        }
        self.level = Some(level);
        Ok(self)
    }

    /// Sets the number of libzstd worker threads.
    pub fn with_threads(mut self, threads: u32) -> OutputSpec {
        self.threads = threads;
        self
    }

    /// The level that will be used.
    pub fn effective_level(&self) -> i32 {
        self.level.unwrap_or(self.format.default_level())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_and_magic() {
        use Compression::*;
        for (mt, c) in [
            ("application/vnd.oci.image.layer.v1.tar", Some(Uncompressed)),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Some(Gzip)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Some(Zstd)),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
                Some(Zstd),
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                Some(Gzip),
            ),
            ("application/octet-stream", None),
        ] {
            assert_eq!(Compression::from_media_type(mt), c, "{mt}");
        }
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Gzip);
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Zstd);
        assert_eq!(Compression::sniff(&[0x50, 0x2a, 0x4d, 0x18]), Zstd);
        assert_eq!(Compression::sniff(b"BZh9"), Bzip2);
        assert_eq!(Compression::sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Xz);
        assert_eq!(Compression::sniff(b"etc/"), Uncompressed);
        assert_eq!(Compression::sniff(b""), Uncompressed);
    }

    #[test]
    fn formats_and_levels() {
        assert_eq!(
            "zstd:chunked".parse::<OutputFormat>().unwrap(),
            OutputFormat::ZstdChunked
        );
        let e = "lz4".parse::<OutputFormat>().unwrap_err().to_string();
        assert!(e.contains("gzip, zstd or zstd:chunked"), "{e}");
        assert!(OutputSpec::new(OutputFormat::Gzip).with_level(10).is_err());
        let zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
        let mut a = std::collections::BTreeMap::new();
        assert_eq!(
            OutputFormat::of_layer(zstd, Some(&a)),
            Some(OutputFormat::Zstd)
        );
        a.insert(
            super::super::MANIFEST_CHECKSUM_KEY.to_string(),
            "sha256:x".to_string(),
        );
        assert_eq!(
            OutputFormat::of_layer(zstd, Some(&a)),
            Some(OutputFormat::ZstdChunked)
        );
        assert_eq!(OutputFormat::of_layer("application/json", None), None);
        assert_eq!(
            OutputSpec::new(OutputFormat::Zstd)
                .with_level(19)
                .unwrap()
                .effective_level(),
            19
        );
    }
}
