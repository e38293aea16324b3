//! What is attached to an image beside its own manifest: OCI 1.1 referrers (artifacts whose
//! manifest names the image as its `subject`, listed by `GET /v2/NAME/referrers/DIGEST` or, where
//! a registry lacks that API, by the fallback index tagged `sha256-HEX`), and cosign's
//! attestation and SBOM tags (`sha256-HEX.att`, `sha256-HEX.sbom`).
//!
//! Reading turns each signature among them (a sigstore bundle whose statement is cosign's
//! signing predicate or a message signature; cosign 2's `application/vnd.dev.cosign.artifact.sig.v1+json`
//! artifact) into signature slots for the gate, and keeps every artifact read as an
//! [`Attached`]: its manifest bytes and blob descriptors, so that a copy writes it byte for byte.
//! Which artifacts are read is [`Referrers`] (`--referrers`). This module holds the formats
//! and the reading logic shared by every transport; the IO is given as closures.

use std::collections::BTreeMap;
use std::future::Future;

use serde_json::{Value, json};

use super::RawManifest;
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Manifest};
use crate::signature::sigstore::SigstoreSignature;
use crate::signature::sigstore::bundle::{
    Bundle, BundleKind, COSIGN_SIGN_PREDICATE, is_bundle_media_type,
};
use crate::signature::{MAX_SIGNATURE_SIZE, SignatureSlot, SlotReadError, SlotReadErrorKind};

/// The artifact type of cosign 2's signatures stored as OCI 1.1 referrers.
pub const COSIGN_SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The annotation in which cosign names a bundle's predicate type on the referrer manifest.
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// The media type of the empty JSON blob `{}` artifacts use as their config.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The most referrers read for one image before assuming the server is broken.
pub const MAX_REFERRERS: usize = 256;

/// Which attached artifacts a copy reads and carries (`--referrers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Referrers {
    /// None: referrers are not read (only the signatures registries.d points at, as
    /// containers/image).
    None,
    /// Signatures among the referrers, where registries.d enables them
    /// (`use-sigstore-referrers`), judged and copied with the others (the default).
    #[default]
    Signatures,
    /// Every referrer (attestations, SBOMs, any artifact) and cosign's `.att` and `.sbom` tags,
    /// whatever registries.d says; signatures among them are judged, the rest copied as they are.
    All,
}

impl Referrers {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Referrers::None => "none",
            Referrers::Signatures => "signatures",
            Referrers::All => "all",
        }
    }
}

impl std::str::FromStr for Referrers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Referrers::None),
            "signatures" => Ok(Referrers::Signatures),
            "all" => Ok(Referrers::All),
            _ => Err(format!(
                "unknown --referrers value {s:?}: use all, signatures or none"
            )),
        }
    }
}

/// The fallback tag of the referrers of `d`: `sha256-HEX`.
pub fn fallback_tag(d: &Digest) -> String {
    format!("{}-{}", d.algorithm().name(), d.hex())
}

/// The tag cosign gives an attachment of `d` with `suffix` (`att`, `sbom`).
pub fn cosign_tag(d: &Digest, suffix: &str) -> String {
    format!("{}-{}.{suffix}", d.algorithm().name(), d.hex())
}

/// What an attached artifact is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachedKind {
    /// A signature of the image (its slots went to the gate).
    Signature,
    /// An attestation (an in-toto statement about the image), with its predicate type when
    /// known.
    Attestation(Option<String>),
    /// A software bill of materials.
    Sbom,
    /// Anything else, by its artifact type.
    Other,
}

impl std::fmt::Display for AttachedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttachedKind::Signature => f.write_str("signature"),
            AttachedKind::Attestation(Some(p)) => write!(f, "attestation ({p})"),
            AttachedKind::Attestation(None) => f.write_str("attestation"),
            AttachedKind::Sbom => f.write_str("SBOM"),
            AttachedKind::Other => f.write_str("artifact"),
        }
    }
}

/// How an artifact is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// As an OCI 1.1 referrer (its manifest's `subject` is the image).
    Referrer,
    /// By cosign's tag, `sha256-HEX.SUFFIX` (the suffix is kept: `att`, `sbom`).
    Tag(String),
}

/// One artifact attached to an image, as read: enough to write it byte for byte elsewhere.
#[derive(Debug, Clone)]
pub struct Attached {
    /// Its manifest's digest.
    pub digest: Digest,
    /// Its manifest, exactly as read.
    pub manifest: RawManifest,
    /// Its artifact type (the manifest's `artifactType`, else its config's media type).
    pub artifact_type: Option<String>,
    /// Its manifest's annotations (which a referrers index repeats).
    pub annotations: BTreeMap<String, String>,
    /// The blobs its manifest names (config, then layers).
    pub blobs: Vec<Descriptor>,
    /// What it is.
    pub kind: AttachedKind,
    /// How it is attached.
    pub via: Via,
    /// The signature slots reading it produced (for a signature), by slot index.
    pub slots: Vec<usize>,
}

/// The string members of `v`'s object member `key` (annotations), others left out.
fn string_members(v: &Value, key: &str) -> BTreeMap<String, String> {
    v.get(key)
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// cosign's tag-attached artifacts other than signatures, by tag suffix: attestations
/// (`sha256-<hex>.att`) and SBOMs (`.sbom`).
pub fn cosign_artifact_tags() -> [(&'static str, AttachedKind); 2] {
    [
        ("att", AttachedKind::Attestation(None)),
        ("sbom", AttachedKind::Sbom),
    ]
}

impl Attached {
    /// Reads the manifest of cosign's `.<suffix>` tag attachment, of the `kind` the suffix
    /// names (see [`cosign_artifact_tags`]).
    pub fn from_cosign_tag(
        bytes: &[u8],
        media_type: Option<&str>,
        suffix: &str,
        kind: AttachedKind,
    ) -> Result<Attached, String> {
        let mut a = Self::from_manifest(bytes, media_type, Via::Tag(suffix.to_string()))?;
        a.kind = kind;
        Ok(a)
    }

    /// Reads an artifact manifest (`bytes`, with the media type it was served as).
    pub fn from_manifest(
        bytes: &[u8],
        media_type: Option<&str>,
        via: Via,
    ) -> Result<Attached, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let parsed = manifest::parse(bytes, media_type).map_err(|e| e.to_string())?;
        let Manifest::Image(kind, img) = parsed else {
            return Err("an attached artifact is a manifest, not a list".into());
        };
        let artifact_type = v
            .get("artifactType")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| Some(img.config.media_type.clone()));
        let annotations = string_members(&v, "annotations");
        let mut blobs = vec![img.config.clone()];
        blobs.extend(img.layers.iter().cloned());
        Ok(Attached {
            digest: Digest::sha256_of(bytes),
            manifest: RawManifest {
                bytes: bytes.to_vec().into(),
                media_type: Some(
                    media_type
                        .map(str::to_string)
                        .unwrap_or_else(|| kind.media_type().to_string()),
                ),
            },
            artifact_type,
            annotations,
            blobs,
            kind: AttachedKind::Other,
            via,
            slots: Vec::new(),
        })
    }

    /// The digest its manifest names as `subject`, if any.
    pub fn subject(&self) -> Option<Digest> {
        let v: Value = serde_json::from_slice(&self.manifest.bytes).ok()?;
        Digest::parse(v.pointer("/subject/digest")?.as_str()?).ok()
    }

    /// Its descriptor as a referrers index lists it: media type, digest, size, artifact type
    /// and the manifest's annotations.
    pub fn index_entry(&self) -> ReferrerEntry {
        ReferrerEntry {
            media_type: self
                .manifest
                .media_type
                .clone()
                .unwrap_or_else(|| manifest::OCI_MANIFEST.to_string()),
            digest: self.digest.clone(),
            size: self.manifest.bytes.len() as u64,
            artifact_type: self.artifact_type.clone(),
            annotations: self.annotations.clone(),
        }
    }

    /// What it is, guessed from its artifact type (signatures are known by reading them).
    fn kind_from_type(&self) -> AttachedKind {
        let t = self.artifact_type.as_deref().unwrap_or_default();
        if is_bundle_media_type(t) || t.contains("in-toto") || t.contains("dsse") {
            AttachedKind::Attestation(self.annotations.get(PREDICATE_ANNOTATION).cloned())
        } else if t.contains("spdx") || t.contains("cyclonedx") || t.contains("sbom") {
            AttachedKind::Sbom
        } else {
            AttachedKind::Other
        }
    }
}

impl AttachedKind {
    /// Reads back [`AttachedKind`]'s text (as a record keeps it).
    pub fn from_text(s: &str) -> AttachedKind {
        match s {
            "signature" => AttachedKind::Signature,
            "SBOM" => AttachedKind::Sbom,
            "attestation" => AttachedKind::Attestation(None),
            _ => match s
                .strip_prefix("attestation (")
                .and_then(|r| r.strip_suffix(')'))
            {
                Some(p) => AttachedKind::Attestation(Some(p.to_string())),
                None => AttachedKind::Other,
            },
        }
    }
}

impl Via {
    /// `referrer`, or the tag suffix.
    pub fn text(&self) -> &str {
        match self {
            Via::Referrer => "referrer",
            Via::Tag(t) => t,
        }
    }

    /// Reads back [`Via::text`].
    pub fn from_text(s: &str) -> Via {
        match s {
            "referrer" => Via::Referrer,
            t => Via::Tag(t.to_string()),
        }
    }
}

/// The signature blobs (containers/image's sigstore-json form) a signature artifact gives, as
/// [`read`] makes them: one for a bundle (with the manifest's annotations), one per layer for
/// cosign 2's signature artifact. `blob` reads a blob of the artifact.
pub fn signature_blobs(
    a: &Attached,
    blob: impl Fn(&Descriptor) -> Result<Vec<u8>, String>,
) -> Result<Vec<Vec<u8>>, String> {
    let layers = a.blobs.iter().skip(1);
    if a.artifact_type.as_deref() == Some(COSIGN_SIGNATURE_ARTIFACT) {
        return layers
            .map(|l| {
                Ok(SigstoreSignature {
                    mime_type: l.media_type.clone(),
                    payload: blob(l)?,
                    annotations: l.annotations.clone().unwrap_or_default(),
                }
                .to_blob())
            })
            .collect();
    }
    layers
        .filter(|l| is_bundle_media_type(&l.media_type))
        .map(|l| {
            Ok(SigstoreSignature {
                mime_type: l.media_type.clone(),
                payload: blob(l)?,
                annotations: a.annotations.clone(),
            }
            .to_blob())
        })
        .collect()
}

/// One entry of a referrers index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerEntry {
    /// The referrer manifest's media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its artifact type.
    pub artifact_type: Option<String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

impl ReferrerEntry {
    fn to_json(&self) -> Value {
        let mut o = json!({
            "mediaType": self.media_type,
            "digest": self.digest.to_string(),
            "size": self.size,
        });
        if let Some(t) = &self.artifact_type
            && let Some(m) = o.as_object_mut()
        {
            m.insert("artifactType".into(), json!(t));
        }
        if !self.annotations.is_empty()
            && let Some(m) = o.as_object_mut()
        {
            m.insert("annotations".into(), json!(self.annotations));
        }
        o
    }

    /// Whether it may be a signature, before reading it: a bundle whose annotation does not
    /// name another predicate, or a cosign signature artifact.
    pub fn may_be_signature(&self) -> bool {
        match self.artifact_type.as_deref() {
            Some(t) if is_bundle_media_type(t) => self
                .annotations
                .get(PREDICATE_ANNOTATION)
                .is_none_or(|p| p == COSIGN_SIGN_PREDICATE),
            Some(COSIGN_SIGNATURE_ARTIFACT) => true,
            _ => false,
        }
    }
}

/// The entries of a referrers index (from the API or the fallback tag).
pub fn parse_index(bytes: &[u8]) -> Result<Vec<ReferrerEntry>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let list = v
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or("not an image index (no manifests array)")?;
    if list.len() > MAX_REFERRERS {
        return Err(format!(
            "it lists {} referrers, more than the {MAX_REFERRERS} ferry reads",
            list.len()
        ));
    }
    list.iter()
        .map(|d| {
            let digest = d
                .get("digest")
                .and_then(Value::as_str)
                .ok_or("an entry has no digest")?;
            Ok(ReferrerEntry {
                media_type: d
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .unwrap_or(manifest::OCI_MANIFEST)
                    .to_string(),
                digest: Digest::parse(digest).map_err(|e| e.to_string())?,
                size: d.get("size").and_then(Value::as_u64).unwrap_or(0),
                artifact_type: d
                    .get("artifactType")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                annotations: string_members(d, "annotations"),
            })
        })
        .collect()
}

/// A referrers index listing `entries` (what the fallback tag holds).
pub fn build_index(entries: &[ReferrerEntry]) -> Vec<u8> {
    let v = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": entries.iter().map(ReferrerEntry::to_json).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The fallback index after adding `add` to `existing` (keeping what it lists, as the OCI
/// distribution spec asks of clients), or `None` when it already lists every one of them.
pub fn merge_fallback(
    existing: Option<&[u8]>,
    add: &[ReferrerEntry],
) -> Result<Option<Vec<u8>>, String> {
    let mut entries = match existing {
        Some(b) => parse_index(b)?,
        None => Vec::new(),
    };
    let before = entries.len();
    for a in add {
        if !entries.iter().any(|e| e.digest == a.digest) {
            entries.push(a.clone());
        }
    }
    Ok((entries.len() != before || existing.is_none()).then(|| build_index(&entries)))
}

/// What reading the referrers of one image produced.
#[derive(Debug, Default)]
pub struct ReadReferrers {
    /// Signature slots, numbered from the first index given.
    pub slots: Vec<SignatureSlot>,
    /// Every artifact read and kept (signatures and, with [`Referrers::All`], the rest).
    pub attached: Vec<Attached>,
    /// Artifacts that could not be read (not signatures: those are unreadable slots).
    pub errors: Vec<String>,
}

fn unreadable(index: usize, location: String, message: String) -> SignatureSlot {
    SignatureSlot {
        index,
        location,
        content: Err(SlotReadError {
            kind: SlotReadErrorKind::Io,
            message,
        }),
    }
}

/// Reads the artifacts `entries` lists (the referrers of one image, `location` for messages):
/// `fetch_manifest` reads a manifest by digest (bytes and media type, checked against the
/// digest here), `fetch_blob` a small blob (capped by the caller, checked here). A signature
/// that cannot be read is an unreadable slot; another artifact that cannot be read, an error
/// in the result (with `mode` [`Referrers::All`]; otherwise it is not read at all).
pub async fn read<M, MF, B, BF>(
    entries: &[ReferrerEntry],
    location: &str,
    first_index: usize,
    mode: Referrers,
    fetch_manifest: M,
    fetch_blob: B,
) -> ReadReferrers
where
    M: Fn(Digest) -> MF,
    MF: Future<Output = Result<(Vec<u8>, Option<String>), String>>,
    B: Fn(Descriptor) -> BF,
    BF: Future<Output = Result<Vec<u8>, String>>,
{
    let mut out = ReadReferrers::default();
    for e in entries {
        let signature = e.may_be_signature();
        if !signature && mode != Referrers::All {
            continue;
        }
        let here = format!("{location}: referrer {}", e.digest);
        let index = first_index + out.slots.len();
        let fail = |out: &mut ReadReferrers, message: String| {
            if signature {
                out.slots.push(unreadable(index, here.clone(), message));
            } else {
                out.errors.push(format!("{here}: {message}"));
            }
        };
        let (bytes, media_type) = match fetch_manifest(e.digest.clone()).await {
            Ok(m) => m,
            Err(msg) => {
                fail(&mut out, msg);
                continue;
            }
        };
        if !e.digest.matches(&bytes) {
            fail(
                &mut out,
                format!(
                    "the manifest does not match its digest (it hashes to {})",
                    e.digest.of_same_algorithm(&bytes)
                ),
            );
            continue;
        }
        let mut a = match Attached::from_manifest(
            &bytes,
            media_type.as_deref().or(Some(&e.media_type)),
            Via::Referrer,
        ) {
            Ok(a) => a,
            Err(msg) => {
                fail(&mut out, format!("invalid referrer manifest: {msg}"));
                continue;
            }
        };
        match a.artifact_type.as_deref() {
            Some(COSIGN_SIGNATURE_ARTIFACT) => {
                // cosign 2's layout: one simple-signing layer per signature, as the .sig tag.
                match super::attachments::read_slots(&bytes, &here, index, &fetch_blob).await {
                    Ok(slots) => {
                        a.kind = AttachedKind::Signature;
                        a.slots = slots.iter().map(|s| s.index).collect();
                        out.slots.extend(slots);
                        out.attached.push(a);
                    }
                    Err(err) => fail(&mut out, err.to_string()),
                }
            }
            Some(t) if is_bundle_media_type(t) && signature => {
                match read_bundle(&a, &fetch_blob).await {
                    Err(msg) => fail(&mut out, msg),
                    Ok((layer, bundle_bytes)) => {
                        let kind = Bundle::from_json(&bundle_bytes)
                            .map(|b| b.kind())
                            .unwrap_or(BundleKind::Signature);
                        match kind {
                            BundleKind::Signature => {
                                let sig = SigstoreSignature {
                                    mime_type: layer.media_type.clone(),
                                    payload: bundle_bytes,
                                    annotations: a.annotations.clone(),
                                };
                                out.slots.push(SignatureSlot {
                                    index,
                                    location: here.clone(),
                                    content: Ok(sig.to_blob()),
                                });
                                a.kind = AttachedKind::Signature;
                                a.slots = vec![index];
                                out.attached.push(a);
                            }
                            BundleKind::Attestation(p) => {
                                if mode == Referrers::All {
                                    a.kind = AttachedKind::Attestation(Some(p));
                                    out.attached.push(a);
                                }
                            }
                        }
                    }
                }
            }
            _ => {
                a.kind = a.kind_from_type();
                out.attached.push(a);
            }
        }
    }
    out
}

/// The bundle layer of a bundle artifact, and its bytes.
async fn read_bundle<B, BF>(a: &Attached, fetch_blob: &B) -> Result<(Descriptor, Vec<u8>), String>
where
    B: Fn(Descriptor) -> BF,
    BF: Future<Output = Result<Vec<u8>, String>>,
{
    let layers: Vec<&Descriptor> = a
        .blobs
        .iter()
        .skip(1)
        .filter(|d| is_bundle_media_type(&d.media_type))
        .collect();
    let [layer] = layers.as_slice() else {
        return Err(format!(
            "a bundle artifact has {} bundle layers, not one",
            layers.len()
        ));
    };
    if layer.size > MAX_SIGNATURE_SIZE as u64 {
        return Err(format!(
            "the bundle claims {} bytes; exceeded maximum allowed size of {MAX_SIGNATURE_SIZE} bytes",
            layer.size
        ));
    }
    let bytes = fetch_blob((*layer).clone()).await?;
    if !layer.digest.matches(&bytes) {
        return Err(format!(
            "the bundle blob does not match its digest (it hashes to {})",
            layer.digest.of_same_algorithm(&bytes)
        ));
    }
    Ok(((*layer).clone(), bytes))
}

/// The referrer artifact ferry writes for a bundle that has no manifest of its own to copy (one
/// read from `dir:`): cosign's layout, the empty config and the bundle as the one layer.
/// Returns the manifest and the two blobs.
pub fn bundle_artifact(
    subject: &Digest,
    subject_media_type: &str,
    subject_size: u64,
    sig: &SigstoreSignature,
) -> (Vec<u8>, Vec<(Descriptor, Vec<u8>)>) {
    let empty = b"{}".to_vec();
    let config = Descriptor {
        media_type: EMPTY_MEDIA_TYPE.to_string(),
        digest: Digest::sha256_of(&empty),
        size: empty.len() as u64,
        urls: None,
        annotations: None,
        platform: None,
    };
    let layer = Descriptor {
        media_type: sig.mime_type.clone(),
        digest: Digest::sha256_of(&sig.payload),
        size: sig.payload.len() as u64,
        urls: None,
        annotations: None,
        platform: None,
    };
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "artifactType": sig.mime_type,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config.digest.to_string(), "size": 2, "data": "e30="},
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest.to_string(), "size": layer.size}],
        "subject": {"mediaType": subject_media_type, "digest": subject.to_string(), "size": subject_size},
    });
    if !sig.annotations.is_empty()
        && let Some(o) = m.as_object_mut()
    {
        o.insert("annotations".into(), json!(sig.annotations));
    }
    (
        serde_json::to_vec(&m).unwrap_or_default(),
        vec![(config, empty), (layer, sig.payload.clone())],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(d: &str, t: Option<&str>, predicate: Option<&str>) -> ReferrerEntry {
        ReferrerEntry {
            media_type: manifest::OCI_MANIFEST.into(),
            digest: Digest::sha256_of(d.as_bytes()),
            size: 10,
            artifact_type: t.map(str::to_string),
            annotations: predicate
                .map(|p| BTreeMap::from([(PREDICATE_ANNOTATION.to_string(), p.to_string())]))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn the_fallback_index_keeps_what_it_lists_and_adds_only_the_new() {
        let a = entry(
            "a",
            Some("application/vnd.dev.sigstore.bundle.v0.3+json"),
            None,
        );
        let b = entry("b", Some("application/spdx+json"), None);
        let first = merge_fallback(None, std::slice::from_ref(&a))
            .unwrap()
            .unwrap();
        assert_eq!(parse_index(&first).unwrap(), vec![a.clone()]);
        assert!(
            merge_fallback(Some(&first), std::slice::from_ref(&a))
                .unwrap()
                .is_none()
        );
        let second = merge_fallback(Some(&first), &[b.clone(), a.clone()])
            .unwrap()
            .unwrap();
        assert_eq!(parse_index(&second).unwrap(), vec![a, b]);
        assert!(parse_index(b"{}").is_err());
        assert!(parse_index(b"[").is_err());
    }

    #[test]
    fn which_referrers_may_be_signatures() {
        let bundle = "application/vnd.dev.sigstore.bundle.v0.3+json";
        assert!(entry("a", Some(bundle), None).may_be_signature());
        assert!(entry("a", Some(bundle), Some(COSIGN_SIGN_PREDICATE)).may_be_signature());
        assert!(
            !entry("a", Some(bundle), Some("https://slsa.dev/provenance/v1")).may_be_signature()
        );
        assert!(entry("a", Some(COSIGN_SIGNATURE_ARTIFACT), None).may_be_signature());
        assert!(!entry("a", Some("application/spdx+json"), None).may_be_signature());
        assert!(!entry("a", None, None).may_be_signature());
    }

    #[test]
    fn referrers_values() {
        assert_eq!("all".parse::<Referrers>().unwrap(), Referrers::All);
        assert_eq!("none".parse::<Referrers>().unwrap(), Referrers::None);
        assert!(
            "some"
                .parse::<Referrers>()
                .unwrap_err()
                .contains("all, signatures or none")
        );
        let d = Digest::sha256_of(b"x");
        assert_eq!(fallback_tag(&d), format!("sha256-{}", d.hex()));
        assert_eq!(cosign_tag(&d, "att"), format!("sha256-{}.att", d.hex()));
    }
}
