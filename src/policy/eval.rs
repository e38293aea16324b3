//! Evaluating a policy on one image: which requirements apply (the most specific scope), and
//! for each requirement and each signature slot what became of it. Pure: no IO.

use std::path::{Path, PathBuf};

use super::config::{IdentityMatch, Policy, PolicyError, Requirement};
use super::verdict::{RequirementOutcome, SignedClaims, Signer, SlotOutcome, SlotVerdict, Verdict};
use crate::digest::Digest;
use crate::reference::{DockerReference, ImageReference};
use crate::signature::SignatureSlot;
use crate::signature::simple::{self, Keyring};
use crate::signature::sniff::{self, Format};

/// The scopes of an image for policy lookup, most specific first (containers/image's
/// `PolicyConfigurationIdentity` then `PolicyConfigurationNamespaces`).
pub fn scopes(image: &ImageReference) -> Vec<String> {
    match image {
        ImageReference::Docker(r) | ImageReference::Store(r) => r.scopes(),
        ImageReference::Dir { path } | ImageReference::OciLayout { path, .. } => {
            let abs = resolve(path);
            let mut out = Vec::new();
            let mut cur: Option<&Path> = Some(&abs);
            while let Some(p) = cur {
                if p == Path::new("/") || p.as_os_str().is_empty() {
                    break;
                }
                out.push(p.display().to_string());
                cur = p.parent();
            }
            out
        }
    }
}

// The absolute, symlink-resolved path, as containers/image identifies dir: and oci: images; a
// path that does not exist (yet) is made absolute without resolving.
fn resolve(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// The requirements that apply to `image` and the name of the scope they came from.
pub fn requirements_for<'p>(
    policy: &'p Policy,
    image: &ImageReference,
) -> (String, &'p [Requirement]) {
    let transport = image.transport();
    if let Some(t) = policy.transports.get(transport) {
        for s in scopes(image) {
            if let Some(r) = t.get(&s) {
                return (format!("transports.{transport}[{s:?}]"), r);
            }
        }
        if let Some(r) = t.get("") {
            return (format!("transports.{transport}[\"\"]"), r);
        }
    }
    ("default".to_string(), &policy.default)
}

/// Whether the signed reference is acceptable for the image under `m`.
fn identity_matches(
    m: &IdentityMatch,
    image: Option<&DockerReference>,
    signed: &str,
) -> Result<(), String> {
    let signed_ref = DockerReference::parse(signed)
        .map_err(|e| format!("the signed identity {signed:?} is invalid: {e}"))?;
    let signed_has_tag_or_digest = signed_ref.tag().is_some() || signed_ref.digest().is_some();
    let no_image = || {
        "the image has no docker reference to compare the signed identity with (use exactReference or exactRepository for dir: and oci: images)".to_string()
    };
    let ok = match m {
        IdentityMatch::MatchExact => {
            let img = image.ok_or_else(no_image)?;
            signed_has_tag_or_digest
                && (img.tag().is_some() || img.digest().is_some())
                && img.to_string() == signed_ref.to_string()
        }
        IdentityMatch::MatchRepoDigestOrExact => {
            let img = image.ok_or_else(no_image)?;
            repo_digest_or_exact(img, &signed_ref)
        }
        IdentityMatch::MatchRepository => {
            let img = image.ok_or_else(no_image)?;
            img.name() == signed_ref.name()
        }
        IdentityMatch::ExactReference(r) => {
            signed_has_tag_or_digest && r.to_string() == signed_ref.to_string()
        }
        IdentityMatch::ExactRepository(r) => r.name() == signed_ref.name(),
        IdentityMatch::RemapIdentity {
            prefix,
            signed_prefix,
        } => {
            let img = image.ok_or_else(no_image)?;
            let name = img.name();
            let remapped = if name == *prefix || name.starts_with(&format!("{prefix}/")) {
                let full = img.to_string();
                let replaced = full.replacen(prefix.as_str(), signed_prefix, 1);
                match DockerReference::parse(&replaced) {
                    Ok(r) if r.to_string() == replaced => r,
                    _ => {
                        return Err(format!(
                            "the image {full} remapped to {replaced:?} is not a valid reference"
                        ));
                    }
                }
            } else {
                img.clone()
            };
            repo_digest_or_exact(&remapped, &signed_ref)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Signature for identity {signed:?} is not accepted ({})",
            m.describe()
        ))
    }
}

fn repo_digest_or_exact(img: &DockerReference, signed: &DockerReference) -> bool {
    if signed.tag().is_none() && signed.digest().is_none() {
        return false;
    }
    if img.digest().is_some() {
        return img.name() == signed.name();
    }
    img.tag().is_some() && img.to_string() == signed.to_string()
}

/// What one requirement made of one readable slot.
enum Judgement {
    Accepted(Signer, SignedClaims),
    Rejected(String, Signer, SignedClaims),
}

fn claims_of(p: &simple::Payload, created: Option<std::time::SystemTime>) -> SignedClaims {
    SignedClaims {
        docker_reference: Some(p.docker_reference.clone()),
        manifest_digest: Some(p.manifest_digest.clone()),
        created: created.map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }),
        creator: p.creator.clone(),
    }
}

fn trusted_keys_text(sources: &[String], keyring: &Keyring) -> String {
    let keys: Vec<String> = keyring
        .fingerprints()
        .into_iter()
        .map(|f| match keyring.user_id(&f) {
            Some(u) => format!("{f} \"{u}\""),
            None => f,
        })
        .collect();
    format!("{} ({})", sources.join(", "), keys.join(", "))
}

#[allow(clippy::too_many_arguments)]
fn judge_signed_by(
    key_type: &str,
    sources: &[String],
    keyring: &Result<Keyring, String>,
    identity: &IdentityMatch,
    image: Option<&DockerReference>,
    manifest: &[u8],
    data: &[u8],
) -> Judgement {
    if key_type != "GPGKeys" {
        return Judgement::Rejected(
            format!("Unimplemented \"keyType\" value {key_type:?}"),
            Signer::default(),
            SignedClaims::default(),
        );
    }
    let keyring = match keyring {
        Ok(k) => k,
        Err(e) => {
            return Judgement::Rejected(e.clone(), Signer::default(), SignedClaims::default());
        }
    };
    let v = match simple::verify(data, keyring) {
        Ok(v) => v,
        Err(e) => {
            let (signer, claims) = match simple::inspect(data) {
                Ok(u) => (
                    Signer {
                        fingerprint: u
                            .issuers
                            .iter()
                            .find(|i| i.len() > 16)
                            .or(u.issuers.first())
                            .cloned(),
                        ..Signer::default()
                    },
                    u.payload
                        .as_ref()
                        .map(|p| claims_of(p, u.created))
                        .unwrap_or_default(),
                ),
                Err(_) => (Signer::default(), SignedClaims::default()),
            };
            let reason = match e {
                simple::SignatureError::UnknownSigner { issuers } => format!(
                    "signed by key {}, which is not trusted by this requirement: it trusts {}",
                    issuers.join(", "),
                    trusted_keys_text(sources, keyring)
                ),
                other => other.to_string(),
            };
            return Judgement::Rejected(reason, signer, claims);
        }
    };
    let signer = Signer {
        fingerprint: Some(v.primary_fingerprint.clone()),
        signing_key: Some(v.signing_key_fingerprint.clone()),
        user_id: v.user_id.clone(),
        key_file: Some(sources.join(", ")),
    };
    let claims = claims_of(&v.payload, v.created);
    // MatchesDigest: the payload's digest, computed with its own algorithm over the manifest.
    let digest_ok = Digest::parse(&v.payload.manifest_digest)
        .map(|d| d.matches(manifest))
        .unwrap_or(false);
    if !digest_ok {
        return Judgement::Rejected(
            format!(
                "Signature for digest {} does not match (the image's manifest is {})",
                v.payload.manifest_digest,
                Digest::sha256_of(manifest)
            ),
            signer,
            claims,
        );
    }
    if let Err(e) = identity_matches(identity, image, &v.payload.docker_reference) {
        return Judgement::Rejected(e, signer, claims);
    }
    Judgement::Accepted(signer, claims)
}

/// Evaluates the requirements that apply to `image` (the source reference) on the signature
/// slots of the manifest `manifest` (its exact bytes). Every requirement and every slot is
/// judged, so the verdict says everything; the answer is the same as containers/image's, which
/// stops at the first accepted signature and the first unsatisfied requirement.
pub fn evaluate(
    policy: &Policy,
    image: &ImageReference,
    manifest: &[u8],
    slots: &[SignatureSlot],
) -> Result<Verdict, PolicyError> {
    let (scope, reqs) = requirements_for(policy, image);
    let docker_ref = match image {
        ImageReference::Docker(r) | ImageReference::Store(r) => Some(r),
        _ => None,
    };
    // Per slot: the readable payload and format, or why it is unreadable.
    let readable: Vec<Result<(Format, &[u8]), String>> = slots
        .iter()
        .map(|s| match &s.content {
            Err(e) => Err(e.message.clone()),
            Ok(bytes) => sniff::sniff(bytes).map_err(|e| e.to_string()),
        })
        .collect();
    let mut accepted_by: Vec<Option<(usize, Signer, SignedClaims)>> = vec![None; slots.len()];
    let mut rejections: Vec<Vec<String>> = vec![Vec::new(); slots.len()];
    let mut rejected_info: Vec<Option<(Signer, SignedClaims)>> = vec![None; slots.len()];
    let mut outcomes = Vec::new();
    for (ri, req) in reqs.iter().enumerate() {
        let (satisfied, reason) = match req {
            Requirement::InsecureAcceptAnything => (true, "accepts any image".to_string()),
            Requirement::Reject => (
                false,
                format!("Running image {image} is rejected by policy."),
            ),
            Requirement::SignedBaseLayer => {
                (false, "signedBaseLayer not implemented yet!".to_string())
            }
            Requirement::SigstoreSigned { .. } => {
                for (si, r) in readable.iter().enumerate() {
                    if let Ok((Format::SigstoreJson, _)) = r {
                        rejections[si].push(format!(
                            "requirement {}: sigstore signatures are not verified by ferry yet",
                            ri + 1
                        ));
                    }
                }
                (false, "sigstore signatures are not verified by ferry yet, so sigstoreSigned is never satisfied".to_string())
            }
            Requirement::SignedBy {
                key_type,
                keys,
                identity,
            } => {
                let mut n_simple = 0;
                let mut reasons = Vec::new();
                let mut any = false;
                for (si, r) in readable.iter().enumerate() {
                    let Ok((Format::SimpleSigning, data)) = r else {
                        continue;
                    };
                    n_simple += 1;
                    match judge_signed_by(
                        key_type,
                        &keys.sources,
                        &keys.keyring,
                        identity,
                        docker_ref,
                        manifest,
                        data,
                    ) {
                        Judgement::Accepted(signer, claims) => {
                            any = true;
                            if accepted_by[si].is_none() {
                                accepted_by[si] = Some((ri, signer, claims));
                            }
                        }
                        Judgement::Rejected(reason, signer, claims) => {
                            reasons.push(format!("{}: {reason}", slots[si].name()));
                            rejections[si].push(format!("requirement {}: {reason}", ri + 1));
                            if rejected_info[si].is_none() {
                                rejected_info[si] = Some((signer, claims));
                            }
                        }
                    }
                }
                if any {
                    (
                        true,
                        "accepted: at least one signature is valid for this requirement"
                            .to_string(),
                    )
                } else if n_simple == 0 {
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
        };
        outcomes.push(RequirementOutcome {
            index: ri,
            kind: req.kind().to_string(),
            description: req.describe(),
            satisfied,
            reason,
        });
    }
    let slot_verdicts = slots
        .iter()
        .enumerate()
        .map(|(si, s)| {
            let outcome = match (&readable[si], accepted_by[si].take()) {
                (Err(reason), _) => SlotOutcome::Unreadable {
                    reason: reason.clone(),
                },
                (Ok(_), Some((requirement, signer, claims))) => SlotOutcome::Accepted {
                    requirement,
                    signer,
                    claims,
                },
                (Ok((format, _)), None) if rejections[si].is_empty() => SlotOutcome::NotExamined {
                    format: format.name().to_string(),
                },
                (Ok(_), None) => {
                    let (signer, claims) = rejected_info[si].take().unwrap_or_default();
                    SlotOutcome::Rejected {
                        reasons: std::mem::take(&mut rejections[si]),
                        signer,
                        claims,
                    }
                }
            };
            SlotVerdict {
                index: s.index,
                location: s.location.clone(),
                outcome,
            }
        })
        .collect();
    Ok(Verdict {
        accepted: outcomes.iter().all(|o| o.satisfied),
        policy: policy.origin().to_string(),
        policy_digest: policy.digest().to_string(),
        scope,
        requirements: outcomes,
        slots: slot_verdicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DockerReference {
        DockerReference::parse(s).unwrap()
    }

    #[test]
    fn scopes_most_specific_first() {
        let img = ImageReference::parse("docker://registry.example.com:5000/ns/app:1").unwrap();
        assert_eq!(
            scopes(&img),
            vec![
                "registry.example.com:5000/ns/app:1",
                "registry.example.com:5000/ns/app",
                "registry.example.com:5000/ns",
                "registry.example.com:5000",
                "*.example.com",
                "*.com",
            ]
        );
        let dir = ImageReference::parse("dir:/nonexistent/a/b").unwrap();
        assert_eq!(
            scopes(&dir),
            vec!["/nonexistent/a/b", "/nonexistent/a", "/nonexistent"]
        );
    }

    #[test]
    fn identity_rules() {
        let tagged = d("example.com/app:1");
        let digest = format!("sha256:{}", "a".repeat(64));
        let by_digest = d(&format!("example.com/app@{digest}"));
        use IdentityMatch::*;
        assert!(
            identity_matches(&MatchRepoDigestOrExact, Some(&tagged), "example.com/app:1").is_ok()
        );
        assert!(
            identity_matches(&MatchRepoDigestOrExact, Some(&tagged), "example.com/app:2").is_err()
        );
        assert!(
            identity_matches(
                &MatchRepoDigestOrExact,
                Some(&by_digest),
                "example.com/app:2"
            )
            .is_ok()
        );
        assert!(
            identity_matches(&MatchRepoDigestOrExact, Some(&tagged), "example.com/app").is_err()
        );
        assert!(identity_matches(&MatchRepoDigestOrExact, None, "example.com/app:1").is_err());
        assert!(identity_matches(&MatchExact, Some(&by_digest), "example.com/app:2").is_err());
        assert!(identity_matches(&MatchExact, Some(&tagged), "example.com/app:1").is_ok());
        assert!(identity_matches(&MatchRepository, Some(&tagged), "example.com/app:9").is_ok());
        assert!(identity_matches(&MatchRepository, Some(&tagged), "example.com/other:1").is_err());
        assert!(
            identity_matches(
                &ExactReference(d("busybox:1")),
                None,
                "docker.io/library/busybox:1"
            )
            .is_ok()
        );
        assert!(identity_matches(&ExactReference(d("busybox:1")), None, "busybox:2").is_err());
        assert!(identity_matches(&ExactRepository(d("busybox")), None, "busybox:2").is_ok());
        let remap = RemapIdentity {
            prefix: "mirror.local/ns".into(),
            signed_prefix: "example.com".into(),
        };
        assert!(
            identity_matches(
                &remap,
                Some(&d("mirror.local/ns/app:1")),
                "example.com/app:1"
            )
            .is_ok()
        );
        assert!(
            identity_matches(
                &remap,
                Some(&d("mirror.local/ns/app:1")),
                "mirror.local/ns/app:1"
            )
            .is_err()
        );
        assert!(
            identity_matches(&remap, Some(&d("other.local/app:1")), "other.local/app:1").is_ok()
        );
        assert!(identity_matches(&MatchRepoDigestOrExact, Some(&tagged), "Not Valid").is_err());
    }
}
