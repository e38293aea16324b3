//! `signedIdentity`: whether the reference a signature claims is acceptable for the image, by
//! containers/image's rules (`policy_reference_match.go`).

use super::requirement::{IdentityMatch, Judgement};
use crate::digest::Digest;
use crate::reference::DockerReference;
use crate::verdict::{SignedClaims, Signer};

/// Whether the signed reference `signed` is acceptable for `image` under `m`; the error says
/// why not, naming the identity the signature claims and what the policy accepts.
pub fn identity_matches(
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
            repo_digest_or_exact(&remap(img, prefix, signed_prefix)?, &signed_ref)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Signature for identity {signed:?} is not accepted: the policy accepts {}",
            accepted_text(m, image)
        ))
    }
}

/// The checks every kind of signature gets once its cryptography verified: the payload names
/// this manifest (`payload_digest`, computed with its own algorithm over `manifest`, as
/// containers/image's `manifest.Digest` does, which refuses what it cannot compute) and an
/// identity (`payload_reference`) that `m` accepts for `image`.
pub(crate) fn judge_claims(
    manifest: &[u8],
    payload_digest: &str,
    payload_reference: &str,
    m: &IdentityMatch,
    image: Option<&DockerReference>,
    signer: Signer,
    claims: SignedClaims,
) -> Judgement {
    let digest_ok = match Digest::parse(payload_digest) {
        Ok(d) => crate::manifest::matches_digest(manifest, &d),
        Err(e) => Err(e.to_string()),
    };
    match digest_ok {
        Ok(true) => {}
        Ok(false) => {
            return Judgement::Rejected(
                format!(
                    "Signature for digest {payload_digest} does not match (the image's manifest is {})",
                    Digest::sha256_of(manifest)
                ),
                signer,
                claims,
            );
        }
        Err(e) => return Judgement::Rejected(e, signer, claims),
    }
    if let Err(e) = identity_matches(m, image, payload_reference) {
        return Judgement::Rejected(e, signer, claims);
    }
    Judgement::Accepted(signer, claims)
}

/// The image's reference with `prefix` replaced by `signed_prefix` when its name starts with it.
fn remap(
    img: &DockerReference,
    prefix: &str,
    signed_prefix: &str,
) -> Result<DockerReference, String> {
    let name = img.name();
    if !(name == prefix || name.starts_with(&format!("{prefix}/"))) {
        return Ok(img.clone());
    }
    let full = img.to_string();
    let replaced = full.replacen(prefix, signed_prefix, 1);
    match DockerReference::parse(&replaced) {
        Ok(r) if r.to_string() == replaced => Ok(r),
        _ => Err(format!(
            "the image {full} remapped to {replaced:?} is not a valid reference"
        )),
    }
}

/// What `m` would have accepted for `image`, for rejection messages (containers/image#985).
fn accepted_text(m: &IdentityMatch, image: Option<&DockerReference>) -> String {
    let img = image.map(|i| i.to_string()).unwrap_or_else(|| "?".into());
    match m {
        IdentityMatch::MatchExact => format!("exactly {img} (matchExact)"),
        IdentityMatch::MatchRepoDigestOrExact => match image {
            Some(i) if i.digest().is_some() => format!(
                "any tag or digest of {} (matchRepoDigestOrExact, the image is pulled by digest)",
                i.name()
            ),
            _ => format!("exactly {img} (matchRepoDigestOrExact)"),
        },
        IdentityMatch::MatchRepository => format!(
            "any reference in the repository {} (matchRepository)",
            image.map(|i| i.name()).unwrap_or_else(|| "?".into())
        ),
        IdentityMatch::ExactReference(r) => format!("exactly {r} (exactReference)"),
        IdentityMatch::ExactRepository(r) => {
            format!(
                "any reference in the repository {} (exactRepository)",
                r.name()
            )
        }
        IdentityMatch::RemapIdentity {
            prefix,
            signed_prefix,
        } => match image.map(|i| remap(i, prefix, signed_prefix)) {
            Some(Ok(r)) => format!("{r} (remapIdentity {prefix} -> {signed_prefix})"),
            _ => format!("remapIdentity {prefix} -> {signed_prefix}"),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DockerReference {
        DockerReference::parse(s).unwrap()
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
        let e = identity_matches(&MatchRepoDigestOrExact, Some(&tagged), "example.com/app:2")
            .unwrap_err();
        assert!(
            e.contains("\"example.com/app:2\"") && e.contains("exactly example.com/app:1"),
            "names both the claimed identity and what would be accepted: {e}"
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
        let e = identity_matches(
            &remap,
            Some(&d("mirror.local/ns/app:1")),
            "mirror.local/ns/app:1",
        )
        .unwrap_err();
        assert!(e.contains("example.com/app:1"), "{e}");
        assert!(
            identity_matches(&remap, Some(&d("other.local/app:1")), "other.local/app:1").is_ok()
        );
        assert!(identity_matches(&MatchRepoDigestOrExact, Some(&tagged), "Not Valid").is_err());
    }
}
