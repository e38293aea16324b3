//! Transparency-log evidence inside a sigstore bundle, checked offline with the Rekor keys a
//! policy names: the inclusion promise (a SET over the entry's fields), the inclusion proof (a
//! Merkle audit path, RFC 6962 / RFC 9162 §2.1.3) and the checkpoint that signs the tree's root
//! (a signed note in Rekor's v1 format). Pure: bytes in, values out.

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::jcs;
use super::keys::PublicKey;

/// Why a log entry's evidence was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogError {
    /// The SET (`inclusionPromise`) verifies with none of the Rekor keys.
    #[error(
        "the Rekor SET (inclusionPromise) does not verify with the Rekor key(s) of the policy over this entry (log index {log_index}, integrated time {integrated_time}): it was signed by another log or for another entry"
    )]
    SetSignature {
        /// The entry's log index.
        log_index: i64,
        /// The entry's integrated time.
        integrated_time: i64,
    },
    /// The entry names a log whose key is not one the policy trusts.
    #[error(
        "the log entry names log ID {got}, which is none of the policy's Rekor keys ({wanted})"
    )]
    UnknownLog {
        /// The entry's log ID (hex).
        got: String,
        /// The trusted keys' IDs.
        wanted: String,
    },
    /// The audit path does not lead from the entry to the proof's root hash.
    #[error("inclusion proof: {0}")]
    Proof(String),
    /// The checkpoint is malformed, unsigned by the log, or for another tree.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

/// RFC 6962's leaf hash: SHA-256(0x00 ‖ leaf).
pub fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root an inclusion proof leads to for leaf `index` of a tree of `size` leaves
/// (RFC 9162 §2.1.3.2, as transparency-dev's `RootFromInclusionProof`).
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &[u8; 32],
    proof: &[[u8; 32]],
) -> Result<[u8; 32], TlogError> {
    if index >= size {
        return Err(TlogError::Proof(format!(
            "index {index} is beyond the tree size {size}"
        )));
    }
    // The path splits into the part below the point where the leaf's path and the right
    // border of the tree meet, and the border part above it.
    let inner = (u64::BITS - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    if proof.len() != inner + border {
        return Err(TlogError::Proof(format!(
            "wrong number of hashes: {} for index {index} in a tree of {size} (want {})",
            proof.len(),
            inner + border
        )));
    }
    let mut seed = *leaf;
    for (i, h) in proof.iter().enumerate() {
        if i < inner && (index >> i) & 1 == 0 {
            seed = node_hash(&seed, h);
        } else {
            seed = node_hash(h, &seed);
        }
    }
    Ok(seed)
}

/// The inclusion proof of a bundle's log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The entry's index in the tree the proof is for.
    pub log_index: i64,
    /// That tree's root hash.
    pub root_hash: Vec<u8>,
    /// That tree's size.
    pub tree_size: i64,
    /// The audit path, leaf to root.
    pub hashes: Vec<Vec<u8>>,
    /// The signed note naming the tree's size and root.
    pub checkpoint: String,
}

impl InclusionProof {
    /// Checks that `body` (the canonicalized entry) is in the tree the proof names and that
    /// the log with key `log_key` signed that tree's checkpoint.
    pub fn verify(&self, body: &[u8], log_key: &PublicKey) -> Result<(), TlogError> {
        let index = u64::try_from(self.log_index)
            .map_err(|_| TlogError::Proof(format!("negative log index {}", self.log_index)))?;
        let size = u64::try_from(self.tree_size)
            .map_err(|_| TlogError::Proof(format!("negative tree size {}", self.tree_size)))?;
        let path: Vec<[u8; 32]> = self
            .hashes
            .iter()
            .map(|h| {
                <[u8; 32]>::try_from(h.as_slice())
                    .map_err(|_| TlogError::Proof(format!("a hash of {} bytes", h.len())))
            })
            .collect::<Result<_, _>>()?;
        let root = root_from_inclusion_proof(index, size, &leaf_hash(body), &path)?;
        if root.as_slice() != self.root_hash.as_slice() {
            return Err(TlogError::Proof(format!(
                "the audit path leads to root {}, but the proof names root {}",
                hex::encode(root),
                hex::encode(&self.root_hash)
            )));
        }
        let note = Checkpoint::parse(&self.checkpoint)?;
        note.verify(log_key)?;
        if note.size != size || note.root_hash != self.root_hash {
            return Err(TlogError::Checkpoint(format!(
                "it signs a tree of {} with root {}, not the proof's tree of {size} with root {}",
                note.size,
                hex::encode(&note.root_hash),
                hex::encode(&self.root_hash)
            )));
        }
        Ok(())
    }
}

/// A checkpoint: the note text (origin, tree size, root hash, other lines) and its signatures.
struct Checkpoint<'a> {
    /// The signed text, up to and including the newline before the blank line.
    text: &'a str,
    size: u64,
    root_hash: Vec<u8>,
    /// (key hint, signature) for each `— NAME BASE64` line.
    signatures: Vec<([u8; 4], Vec<u8>)>,
}

impl<'a> Checkpoint<'a> {
    fn parse(envelope: &'a str) -> Result<Checkpoint<'a>, TlogError> {
        let bad = |m: &str| TlogError::Checkpoint(m.to_string());
        let (head, sigs) = envelope
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line between the note and its signatures"))?;
        if sigs.contains("\n\n") {
            return Err(bad("more than one blank line"));
        }
        let text = envelope
            .get(..head.len() + 1)
            .ok_or_else(|| bad("truncated note"))?;
        let mut lines = head.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(bad("empty origin line"));
        }
        let size = lines
            .next()
            .and_then(|l| l.parse::<u64>().ok())
            .ok_or_else(|| bad("the second line is not a tree size"))?;
        let root_hash = lines
            .next()
            .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok())
            .ok_or_else(|| bad("the third line is not a base64 root hash"))?;
        if !sigs.ends_with('\n') {
            return Err(bad("the signature block does not end with a newline"));
        }
        let mut signatures = Vec::new();
        for line in sigs.lines() {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| bad("a signature line does not start with an em dash"))?;
            let (_name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a signature line has no signature"))?;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| bad("a signature is not base64"))?;
            if raw.len() < 5 {
                return Err(bad("a signature is too short"));
            }
            let (hint, sig) = raw.split_at(4);
            let mut h = [0u8; 4];
            h.copy_from_slice(hint);
            signatures.push((h, sig.to_vec()));
        }
        Ok(Checkpoint {
            text,
            size,
            root_hash,
            signatures,
        })
    }

    /// One signature whose key hint is the log key's (the first four bytes of its ID) must
    /// verify over the note text.
    fn verify(&self, key: &PublicKey) -> Result<(), TlogError> {
        let id = hex::decode(key.id()).unwrap_or_default();
        let hint = id.get(..4).unwrap_or_default();
        let digest: [u8; 32] = Sha256::digest(self.text.as_bytes()).into();
        for (h, sig) in &self.signatures {
            if h.as_slice() == hint {
                return if key.verify_ecdsa_asn1_digest(&digest, sig) {
                    Ok(())
                } else {
                    Err(TlogError::Checkpoint(
                        "the log's signature on the checkpoint does not verify".into(),
                    ))
                };
            }
        }
        Err(TlogError::Checkpoint(format!(
            "not signed by the log with key {}",
            key.id()
        )))
    }
}

/// Checks a SET over the fields of a bundle's log entry: Rekor signs the RFC 8785 JSON of
/// `{body, integratedTime, logID, logIndex}` (body in base64, the log ID in hex). Returns the
/// position of the key that verifies.
pub fn verify_set(
    rekor_keys: &[PublicKey],
    set: &[u8],
    body: &[u8],
    integrated_time: i64,
    log_index: i64,
    log_id: &[u8],
) -> Result<usize, TlogError> {
    let payload: Value = json!({
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "integratedTime": integrated_time,
        "logID": hex::encode(log_id),
        "logIndex": log_index,
    });
    let canonical = jcs::canonicalize(&payload).map_err(|_| TlogError::SetSignature {
        log_index,
        integrated_time,
    })?;
    let digest: [u8; 32] = Sha256::digest(canonical.as_bytes()).into();
    rekor_keys
        .iter()
        .position(|k| k.verify_ecdsa_asn1_digest(&digest, set))
        .ok_or(TlogError::SetSignature {
            log_index,
            integrated_time,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree of `n` leaves "leaf-i", its root and the audit path of `index`, computed the slow
    /// way (RFC 6962's recursive definition), to check the fast verifier against.
    fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn path(index: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
        if leaves.len() <= 1 {
            return Vec::new();
        }
        let k = leaves.len().next_power_of_two() / 2;
        if index < k {
            let mut p = path(index, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(index - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    #[test]
    fn every_leaf_of_every_small_tree_proves_its_inclusion() {
        for n in 1..=17usize {
            let leaves: Vec<[u8; 32]> = (0..n)
                .map(|i| leaf_hash(format!("leaf-{i}").as_bytes()))
                .collect();
            let root = mth(&leaves);
            for i in 0..n {
                let p = path(i, &leaves);
                assert_eq!(
                    root_from_inclusion_proof(i as u64, n as u64, &leaves[i], &p).unwrap(),
                    root,
                    "leaf {i} of {n}"
                );
                // Another leaf with the same path does not reach the root.
                let other = leaf_hash(b"intruder");
                assert_ne!(
                    root_from_inclusion_proof(i as u64, n as u64, &other, &p).unwrap(),
                    root
                );
                // A path one hash short is refused.
                if !p.is_empty() {
                    assert!(
                        root_from_inclusion_proof(i as u64, n as u64, &leaves[i], &p[1..]).is_err()
                    );
                }
            }
            assert!(root_from_inclusion_proof(n as u64, n as u64, &leaves[0], &[]).is_err());
        }
    }

    #[test]
    fn checkpoints_parse_and_refuse_malformed_notes() {
        let note = "log - 1\n3\nAAAA\n\n\u{2014} log AQIDBAUG\n";
        let c = Checkpoint::parse(note).unwrap();
        assert_eq!(c.text, "log - 1\n3\nAAAA\n");
        assert_eq!(c.size, 3);
        assert_eq!(c.signatures.len(), 1);
        assert_eq!(c.signatures[0].0, [1, 2, 3, 4]);
        for bad in [
            "log - 1\n3\nAAAA\n",
            "\n3\nAAAA\n\n\u{2014} log AQIDBAUG\n",
            "log\nthree\nAAAA\n\n\u{2014} log AQIDBAUG\n",
            "log\n3\n!!\n\n\u{2014} log AQIDBAUG\n",
            "log\n3\nAAAA\n\n- log AQIDBAUG\n",
            "log\n3\nAAAA\n\n\u{2014} log AQID\n",
            "log\n3\nAAAA\n\n\u{2014} log AQIDBAUG",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
