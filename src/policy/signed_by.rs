//! `signedBy`: simple-signing (OpenPGP) signatures by trusted keys, as containers/image's
//! `policy_eval_signedby.go` judges them.

use super::identity::judge_claims;
use super::requirement::{
    Context, IdentityMatch, Judge, Judgement, Readable, SignedBy, Slot, SlotState, TrustedKeys,
    satisfied_by_signatures,
};
use crate::reference::DockerReference;
use crate::signature::simple::{self, Keyring};
use crate::verdict::{SignedClaims, Signer};

impl Judge for SignedBy {
    /// Every simple-signing signature is judged; sigstore signatures are not this
    /// requirement's kind and are skipped.
    fn judge(
        &self,
        number: usize,
        ctx: &Context<'_>,
        slots: &[Slot<'_>],
        state: &mut [SlotState],
    ) -> (bool, String) {
        let mut examined = 0;
        let mut reasons = Vec::new();
        let mut any = false;
        for (slot, st) in slots.iter().zip(state.iter_mut()) {
            let Ok(Readable::Simple(data)) = &slot.readable else {
                continue;
            };
            examined += 1;
            let judgement = judge(
                &self.key_type,
                &self.keys,
                &self.identity,
                ctx.docker_reference,
                ctx.manifest,
                data,
            );
            any |= st.record(number, &slot.name, judgement, &mut reasons);
        }
        satisfied_by_signatures(any, examined, reasons)
    }
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

/// Judges one simple-signing signature (the OpenPGP message `data`) for a `signedBy`
/// requirement: the key, the signed manifest digest, then the signed identity.
fn judge(
    key_type: &str,
    keys: &TrustedKeys,
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
    let keyring = match &keys.keyring {
        Ok(k) => k,
        Err(e) => {
            return Judgement::Rejected(e.clone(), Signer::default(), SignedClaims::default());
        }
    };
    let v = match simple::verify(data, keyring) {
        Ok(v) => v,
        Err(e) => {
            let (signer, claims) = match simple::inspect(data) {
                Ok(u) => {
                    let signer = Signer {
                        fingerprint: u
                            .issuers
                            .iter()
                            .find(|i| i.len() > 16)
                            .or(u.issuers.first())
                            .cloned(),
                        ..Signer::default()
                    };
                    let claims = u
                        .payload
                        .as_ref()
                        .map(|p| claims_of(p, u.created))
                        .unwrap_or_default();
                    (signer, claims)
                }
                Err(_) => (Signer::default(), SignedClaims::default()),
            };
            let reason = match e {
                simple::SignatureError::UnknownSigner { issuers } => format!(
                    "signed by key {}, which is not trusted by this requirement: it trusts {}",
                    issuers.join(", "),
                    trusted_keys_text(&keys.sources, keyring)
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
        key_file: Some(keys.sources.join(", ")),
        ..Signer::default()
    };
    let claims = claims_of(&v.payload, v.created);
    judge_claims(
        manifest,
        &v.payload.manifest_digest,
        &v.payload.docker_reference,
        identity,
        image,
        signer,
        claims,
    )
}
