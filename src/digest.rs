//! Content digests (`sha256:…`, `sha512:…`) and a stream adapter that verifies size and digest
//! while the bytes pass, so no blob is ever trusted before its last byte has been checked.

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// A digest algorithm ferry can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the default of every registry.
    Sha256,
    /// SHA-512, allowed by the OCI image spec for descriptors.
    Sha512,
}

impl Algorithm {
    /// The name used in the `ALGO:HEX` form.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated content digest: algorithm and lowercase hex. Being validated, its hex part is safe
/// to use as a file name or URL path component (no `/`, no `..`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestError {
    /// No `:` separates algorithm and hex.
    #[error("invalid digest {0:?}: expected ALGORITHM:HEX, e.g. sha256:<64 hex digits>")]
    Format(String),
    /// The algorithm is not one ferry supports.
    #[error("invalid digest {0:?}: unsupported algorithm (ferry supports sha256 and sha512)")]
    Algorithm(String),
    /// The hex part has the wrong length or characters.
    #[error("invalid digest {digest:?}: {algorithm} needs {len} lowercase hex digits")]
    Hex {
        /// The digest as given.
        digest: String,
        /// Its algorithm.
        algorithm: &'static str,
        /// The number of hex digits it needs.
        len: usize,
    },
}

impl Digest {
    /// Parses `ALGO:HEX`, checking the algorithm and the hex length and alphabet.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Format(s.to_string()))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(DigestError::Algorithm(s.to_string())),
        };
        let ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(DigestError::Hex {
                digest: s.to_string(),
                algorithm: algorithm.name(),
                len: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The sha256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(sha2::Sha256::digest(data)),
        }
    }

    /// The digest of `data` with this digest's algorithm.
    pub fn of_same_algorithm(&self, data: &[u8]) -> Digest {
        let mut d = Digester::new(self.algorithm);
        d.update(data);
        d.finish()
    }

    /// Whether `data` hashes to this digest.
    pub fn matches(&self, data: &[u8]) -> bool {
        &self.of_same_algorithm(data) == self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex part, lowercase.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher for one algorithm.
pub enum Digester {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl Digester {
    /// A new hasher.
    pub fn new(algorithm: Algorithm) -> Digester {
        match algorithm {
            Algorithm::Sha256 => Digester::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Digester::Sha512(sha2::Sha512::new()),
        }
    }
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Digester::Sha256(h) => h.update(data),
            Digester::Sha512(h) => h.update(data),
        }
    }
    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        match self {
            Digester::Sha256(h) => Digest {
                algorithm: Algorithm::Sha256,
                hex: hex::encode(h.finalize()),
            },
            Digester::Sha512(h) => Digest {
                algorithm: Algorithm::Sha512,
                hex: hex::encode(h.finalize()),
            },
        }
    }
}

/// A blob whose bytes did not match what its descriptor promised.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The content hashed to another digest.
    #[error(
        "blob {expected}: content does not match its digest (it hashes to {actual}); the source is corrupt or was changed in transit"
    )]
    Digest {
        /// The digest the descriptor names.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// More or fewer bytes than the descriptor's size.
    #[error("blob {expected}: size mismatch: the descriptor says {expected_size} bytes, the source gave {actual_size}{more}", more = if *.truncated { " (the stream ended early)" } else { " or more" })]
    Size {
        /// The digest the descriptor names.
        expected: Digest,
        /// The size the descriptor names.
        expected_size: u64,
        /// Bytes seen before the check failed.
        actual_size: u64,
        /// Whether the stream ended short (otherwise it ran long).
        truncated: bool,
    },
}

/// A stream of blob bytes: the one type every transport produces and consumes.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Wraps a byte stream; passes the bytes through while hashing them, and turns the end of the
/// stream into an error if the size or digest is not what was expected. A consumer that writes
/// the bytes somewhere must therefore not commit them until the stream has ended with no error.
pub struct VerifyingStream {
    inner: ByteStream,
    expected: Digest,
    expected_size: Option<u64>,
    digester: Option<Digester>,
    seen: u64,
    done: bool,
}

impl VerifyingStream {
    /// Verifies `inner` against `expected` (and `expected_size` when known).
    pub fn new(inner: ByteStream, expected: Digest, expected_size: Option<u64>) -> VerifyingStream {
        VerifyingStream {
            digester: Some(Digester::new(expected.algorithm())),
            inner,
            expected,
            expected_size,
            seen: 0,
            done: false,
        }
    }

    /// Checks only the size of `inner`, not its digest: for bytes this process made and hashed
    /// against `expected` as it made them (a recompressed layer read back from its spool), where
    /// a second SHA-256 pass would find what the first already found. Its errors name `expected`.
    pub fn size_only(inner: ByteStream, expected: Digest, expected_size: u64) -> VerifyingStream {
        VerifyingStream {
            digester: None,
            inner,
            expected,
            expected_size: Some(expected_size),
            seen: 0,
            done: false,
        }
    }

    fn fail(&mut self, e: VerifyError) -> Poll<Option<std::io::Result<Bytes>>> {
        self.done = true;
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e,
        ))))
    }
}

impl Stream for VerifyingStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                if let Some(size) = self.expected_size
                    && self.seen > size
                {
                    let e = VerifyError::Size {
                        expected: self.expected.clone(),
                        expected_size: size,
                        actual_size: self.seen,
                        truncated: false,
                    };
                    return self.fail(e);
                }
                if let Some(d) = self.digester.as_mut() {
                    d.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                if let Some(size) = self.expected_size
                    && self.seen != size
                {
                    let e = VerifyError::Size {
                        expected: self.expected.clone(),
                        expected_size: size,
                        actual_size: self.seen,
                        truncated: true,
                    };
                    return self.fail(e);
                }
                let actual = match self.digester.take() {
                    Some(d) => d.finish(),
                    None => return Poll::Ready(None),
                };
                if actual != self.expected {
                    let e = VerifyError::Digest {
                        expected: self.expected.clone(),
                        actual,
                    };
                    return self.fail(e);
                }
                self.done = true;
                Poll::Ready(None)
            }
        }
    }
}

/// Finds a [`VerifyError`] inside an IO error produced by a [`VerifyingStream`].
pub fn verify_error(e: &std::io::Error) -> Option<&VerifyError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<VerifyError>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_rejects() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, Digest::sha256_of(b""));
        assert!(matches!(
            Digest::parse("sha256"),
            Err(DigestError::Format(_))
        ));
        assert!(matches!(
            Digest::parse("md5:abcd"),
            Err(DigestError::Algorithm(_))
        ));
        assert!(matches!(
            Digest::parse("sha256:ABC"),
            Err(DigestError::Hex { .. })
        ));
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        assert!(Digest::parse(&upper).is_err());
        assert!(Digest::parse("sha256:../../etc/passwd").is_err());
        let d512 = Digest::of_same_algorithm(
            &Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap(),
            b"abc",
        );
        assert!(d512.to_string().starts_with("sha512:ddaf35a1"));
    }

    fn stream_of(chunks: Vec<&'static [u8]>) -> ByteStream {
        Box::pin(futures::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
        ))
    }

    async fn drain(s: VerifyingStream) -> Result<Vec<u8>, std::io::Error> {
        let mut out = Vec::new();
        let mut s = Box::pin(s);
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    /// Streams `chunks` through a check for "hello world" (11 bytes): the bytes, or the
    /// verification error.
    async fn verify_hello_world(chunks: Vec<&'static [u8]>) -> Result<Vec<u8>, std::io::Error> {
        drain(VerifyingStream::new(
            stream_of(chunks),
            Digest::sha256_of(b"hello world"),
            Some(11),
        ))
        .await
    }

    #[tokio::test]
    async fn verifying_stream_passes_good_and_fails_bad() {
        let out = verify_hello_world(vec![b"hello ", b"world"]).await.unwrap();
        assert_eq!(out, b"hello world");

        let e = verify_hello_world(vec![b"hello there"]).await.unwrap_err();
        assert!(
            matches!(verify_error(&e), Some(VerifyError::Digest { .. })),
            "{e}"
        );

        let e = verify_hello_world(vec![b"hello"]).await.unwrap_err();
        assert!(
            matches!(
                verify_error(&e),
                Some(VerifyError::Size {
                    truncated: true,
                    ..
                })
            ),
            "{e}"
        );

        let e = verify_hello_world(vec![b"hello world!!"])
            .await
            .unwrap_err();
        assert!(
            matches!(
                verify_error(&e),
                Some(VerifyError::Size {
                    truncated: false,
                    ..
                })
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_size_only_stream_counts_and_does_not_hash() {
        let size_only = |chunks| {
            drain(VerifyingStream::size_only(
                stream_of(chunks),
                Digest::sha256_of(b"hello world"),
                11,
            ))
        };
        // Same size, other bytes: passes, since the digest was checked when they were made.
        assert_eq!(
            size_only(vec![b"hello there"]).await.unwrap(),
            b"hello there"
        );
        for (chunks, short) in [
            (vec![&b"hello"[..]], true),
            (vec![&b"hello world!"[..]], false),
        ] {
            let e = size_only(chunks).await.unwrap_err();
            assert!(
                matches!(verify_error(&e), Some(VerifyError::Size { truncated, .. }) if *truncated == short),
                "{e}"
            );
        }
    }
}
