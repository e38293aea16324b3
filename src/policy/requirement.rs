//! The requirement types of policy.json and what judging one produces: the leaf of the policy
//! module. Parsing (`config.rs`) makes these; each requirement type's own file judges its kind
//! (`basic.rs`, `signed_by.rs`, `sigstore_signed.rs`, with `identity.rs` for `signedIdentity`);
//! `eval.rs` runs them in order and `gate.rs` applies the signature mode. Types below, judges
//! above: nothing here imports a judge.

use std::fmt;
use std::sync::Arc;

use crate::reference::{DockerReference, ImageReference};
use crate::signature::SignatureSlot;
use crate::signature::sigstore::fulcio::{FulcioTrustRoot, PkiTrustRoot};
use crate::signature::sigstore::{PublicKey, SIGNATURE_MIME_TYPE, SigstoreSignature};
use crate::signature::simple::Keyring;
use crate::signature::sniff::Format;
use crate::verdict::{SignedClaims, Signer};

/// One requirement of a policy.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Requirement {
    /// Accept anything.
    InsecureAcceptAnything,
    /// Reject everything.
    Reject,
    /// Simple signing by one of the keys.
    SignedBy(SignedBy),
    /// Not implemented by containers/image either: rejects at evaluation.
    SignedBaseLayer,
    /// Sigstore (cosign) signatures, by a public key, or keyless through Fulcio or a PKI.
    SigstoreSigned(SigstoreSigned),
}

/// A `signedBy` requirement.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedBy {
    /// `keyType` (only `GPGKeys` verifies; the others reject at evaluation).
    pub key_type: String,
    /// The trusted keys.
    pub keys: TrustedKeys,
    /// `signedIdentity`.
    pub identity: IdentityMatch,
}

/// A `sigstoreSigned` requirement.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SigstoreSigned {
    /// The trust root, loaded with the policy.
    pub trust: SigstoreTrust,
    /// `signedIdentity`.
    pub identity: IdentityMatch,
}

impl Requirement {
    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Requirement::InsecureAcceptAnything => "insecureAcceptAnything",
            Requirement::Reject => "reject",
            Requirement::SignedBy(_) => "signedBy",
            Requirement::SignedBaseLayer => "signedBaseLayer",
            Requirement::SigstoreSigned(_) => "sigstoreSigned",
        }
    }
    /// A one-line description.
    pub fn describe(&self) -> String {
        match self {
            Requirement::SignedBy(r) => format!(
                "signedBy {} {} ({})",
                r.key_type,
                r.keys.sources.join(", "),
                r.identity.describe()
            ),
            Requirement::SigstoreSigned(r) => format!(
                "sigstoreSigned {} ({})",
                r.trust.sources.join(", "),
                r.identity.describe()
            ),
            other => other.kind().to_string(),
        }
    }
}

/// How a signature's claimed identity must relate to the image (`signedIdentity`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityMatch {
    /// Same reference, or same repository when the image is by digest (the default).
    MatchRepoDigestOrExact,
    /// Same repository; tags and digests ignored.
    MatchRepository,
    /// The same reference, both with a tag or digest.
    MatchExact,
    /// The signed reference equals this one.
    ExactReference(DockerReference),
    /// The signed reference's repository equals this one.
    ExactRepository(DockerReference),
    /// The image's name, with `prefix` replaced by `signed_prefix`, then MatchRepoDigestOrExact.
    RemapIdentity {
        /// The prefix of the image's name.
        prefix: String,
        /// What the signature says instead.
        signed_prefix: String,
    },
}

impl IdentityMatch {
    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            IdentityMatch::MatchRepoDigestOrExact => "matchRepoDigestOrExact".into(),
            IdentityMatch::MatchRepository => "matchRepository".into(),
            IdentityMatch::MatchExact => "matchExact".into(),
            IdentityMatch::ExactReference(r) => format!("exactReference {r}"),
            IdentityMatch::ExactRepository(r) => format!("exactRepository {r}"),
            IdentityMatch::RemapIdentity {
                prefix,
                signed_prefix,
            } => {
                format!("remapIdentity {prefix} -> {signed_prefix}")
            }
        }
    }
}

/// Trusted keys of a signedBy requirement: loaded when the policy is loaded, or the reason they
/// could not be (which rejects every signature this requirement examines, as containers/image
/// does when it reads the key file at evaluation).
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    /// Where they came from: the files, or `keyData`.
    pub sources: Vec<String>,
    /// The keys, or why they could not be loaded.
    pub keyring: Result<Keyring, String>,
}

/// What a `sigstoreSigned` requirement trusts.
#[non_exhaustive]
pub enum TrustRoot {
    /// Public keys, and Rekor keys when the policy requires a Rekor SET.
    Keys {
        /// The signing keys.
        keys: Vec<PublicKey>,
        /// The Rekor keys, when a SET is required.
        rekor: Option<Vec<PublicKey>>,
    },
    /// Fulcio certificates logged in Rekor.
    Fulcio {
        /// The CA and the identity certificates must name.
        root: Box<FulcioTrustRoot>,
        /// The Rekor keys.
        rekor: Vec<PublicKey>,
    },
    /// Certificates from a private PKI.
    Pki {
        /// The roots, intermediates and the identity certificates must name.
        root: Box<PkiTrustRoot>,
    },
}

/// The trust of a `sigstoreSigned` requirement: loaded when the policy is loaded, or the reason
/// it could not be (which rejects every sigstore signature this requirement examines, as
/// containers/image does when it reads the files at evaluation).
#[derive(Clone)]
pub struct SigstoreTrust {
    /// Where it came from, for messages: key files, `keyData`, `fulcio caPath …`.
    pub sources: Vec<String>,
    /// The trust root, or why it could not be loaded.
    pub root: Result<Arc<TrustRoot>, String>,
}

impl fmt::Debug for SigstoreTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigstoreTrust")
            .field("sources", &self.sources)
            .field("loaded", &self.root.as_ref().map(|_| ()))
            .finish()
    }
}

/// How a sigstore bundle whose statement names no image (cosign 3 signs the digest only) meets
/// `signedIdentity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BundleIdentity {
    /// A bundle claims only what it names: one that names no image satisfies no
    /// `signedIdentity`, because nothing signed ties it to a repository (the default).
    #[default]
    Named,
    /// A bundle that names no image is taken to claim the image it is attached to, as cosign 3
    /// itself treats it (registries.d `sigstore-bundle-identity: attached-image` for the scope).
    /// This trusts the registry not to move a signed image and its bundle to another repository.
    AttachedImage,
}

/// What a requirement is judged against: the image and its manifest.
pub(crate) struct Context<'a> {
    /// The source reference (its transport and identity chose the requirements).
    pub(crate) image: &'a ImageReference,
    /// Its docker reference, where it has one: what `signedIdentity` matches.
    pub(crate) docker_reference: Option<&'a DockerReference>,
    /// The manifest's exact bytes.
    pub(crate) manifest: &'a [u8],
    /// How sigstore bundles that name no image meet `signedIdentity`.
    pub(crate) bundles: BundleIdentity,
}

/// One signature slot as the requirements see it: its name for messages, and what it holds.
pub(crate) struct Slot<'a> {
    /// `signature-N` and where it was read.
    pub(crate) name: String,
    /// The signature, or why it is unreadable.
    pub(crate) readable: Result<Readable<'a>, String>,
}

impl<'a> Slot<'a> {
    /// Reads a slot's bytes as a signature format ferry knows.
    pub(crate) fn read(s: &'a SignatureSlot) -> Slot<'a> {
        let readable = match &s.content {
            Err(e) => Err(e.message.clone()),
            Ok(bytes) => match crate::signature::sniff::sniff(bytes) {
                Err(e) => Err(e.to_string()),
                Ok((Format::SimpleSigning, data)) => Ok(Readable::Simple(data)),
                Ok((Format::SigstoreJson, data)) => SigstoreSignature::from_json(data)
                    .map(Readable::Sigstore)
                    .map_err(|e| e.to_string()),
            },
        };
        Slot {
            name: s.name(),
            readable,
        }
    }
}

/// A requirement type that looks at signatures: its file judges every slot of its kind,
/// records each judgement in the slot's state, and says whether the requirement is satisfied
/// and why. A new requirement type is a new file implementing this.
pub(crate) trait Judge {
    /// Judges `slots` for requirement `number` (1-based) of the scope.
    fn judge(
        &self,
        number: usize,
        ctx: &Context<'_>,
        slots: &[Slot<'_>],
        state: &mut [SlotState],
    ) -> (bool, String);
}

/// A slot that could be read: a simple-signing message, or a sigstore signature.
pub(crate) enum Readable<'a> {
    Simple(&'a [u8]),
    Sigstore(SigstoreSignature),
}

impl Readable<'_> {
    pub(crate) fn format_name(&self) -> String {
        match self {
            Readable::Simple(_) => Format::SimpleSigning.name().to_string(),
            Readable::Sigstore(s) if s.mime_type == SIGNATURE_MIME_TYPE => {
                Format::SigstoreJson.name().to_string()
            }
            Readable::Sigstore(s) => format!("{} ({})", Format::SigstoreJson.name(), s.mime_type),
        }
    }
}

/// What one requirement made of one readable slot.
pub(crate) enum Judgement {
    /// Accepted: who signed, and what the signature claims.
    Accepted(Signer, SignedClaims),
    /// Rejected: why, and what could be learnt of the signer and the claims anyway.
    Rejected(String, Signer, SignedClaims),
}

/// Per slot, what the requirements found so far.
#[derive(Default, Clone)]
pub(crate) struct SlotState {
    pub(crate) accepted_by: Option<(usize, Signer, SignedClaims)>,
    pub(crate) rejections: Vec<String>,
    pub(crate) rejected_info: Option<(Signer, SignedClaims)>,
}

impl SlotState {
    /// Takes requirement `number`'s judgement of this slot (named `slot`): the first acceptance
    /// is kept, every rejection is added to the slot's and the requirement's (`reasons`)
    /// lists. Returns whether the slot was accepted.
    pub(crate) fn record(
        &mut self,
        number: usize,
        slot: &str,
        judgement: Judgement,
        reasons: &mut Vec<String>,
    ) -> bool {
        match judgement {
            Judgement::Accepted(signer, claims) => {
                if self.accepted_by.is_none() {
                    self.accepted_by = Some((number, signer, claims));
                }
                true
            }
            Judgement::Rejected(reason, signer, claims) => {
                reasons.push(format!("{slot}: {reason}"));
                self.rejections
                    .push(format!("requirement {number}: {reason}"));
                if self.rejected_info.is_none() {
                    self.rejected_info = Some((signer, claims));
                }
                false
            }
        }
    }
}

/// A signature requirement is satisfied when at least one signature was accepted; otherwise
/// the reason is containers/image's.
pub(crate) fn satisfied_by_signatures(
    any: bool,
    examined: usize,
    mut reasons: Vec<String>,
) -> (bool, String) {
    if any {
        (
            true,
            "accepted: at least one signature is valid for this requirement".to_string(),
        )
    } else if examined == 0 {
        (
            false,
            "A signature was required, but no signature exists".to_string(),
        )
    } else if reasons.len() == 1 {
        (false, reasons.remove(0))
    } else {
        (
            false,
            format!(
                "None of the signatures were accepted, reasons: {}",
                reasons.join("; ")
            ),
        )
    }
}
