//! Simple signing ("atomic container signature"): the payload format, and its OpenPGP
//! verification and signing with sequoia-openpgp's pure-Rust backend (no gpg, no GPGME, no
//! system crypto library). Pure: bytes in, values out.
//!
//! - [`payload`]: the JSON payload, parsed as strictly as containers/image;
//! - [`keyring`]: trusted certificates;
//! - [`verify`](mod@verify): verification and unverified inspection (forensics);
//! - [`sign`](mod@sign): signing with a secret key;
//! - [`gnupg`]: finding a key in the user's GnuPG home and signing through gpg-agent (the
//!   one part that does IO: that is where such a key lives).

pub mod gnupg;
pub mod keyring;
pub mod payload;
pub mod sign;
pub mod verify;

pub use keyring::Keyring;
pub use payload::{Payload, SIGNATURE_TYPE, parse_payload, payload_json};
pub use sign::{SigningKey, sign};
pub use verify::{Unverified, Verified, inspect, verify};

/// Why a signature was not accepted, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The keyring or key file could not be parsed.
    #[error("invalid OpenPGP key data: {0}")]
    Keys(String),
    /// No certificate in the keyring made this signature.
    #[error("signed by key {}, which is not among the trusted keys", issuers.join(", "))]
    UnknownSigner {
        /// Fingerprints or key IDs named by the signature.
        issuers: Vec<String>,
    },
    /// The cryptographic check failed: a changed payload or a broken signature.
    #[error("invalid signature by key {key}: {reason}")]
    BadSignature {
        /// The key that supposedly made it.
        key: String,
        /// What sequoia reported.
        reason: String,
    },
    /// The certificate's primary key has expired. Like GPGME, ferry does not accept a signature by
    /// an expired key even if it was made before the key expired.
    #[error(
        "the key {} has expired ({reason}): renew it (gpg --quick-set-expire) and re-export it, or trust another key",
        named(primary, user_id)
    )]
    KeyExpired {
        /// The primary key's fingerprint.
        primary: String,
        /// The certificate's primary user ID.
        user_id: Option<String>,
        /// Details.
        reason: String,
    },
    /// The certificate (its primary key) is revoked.
    #[error("the key {} is revoked{}", named(primary, user_id), because(reason))]
    KeyRevoked {
        /// The primary key's fingerprint.
        primary: String,
        /// The certificate's primary user ID.
        user_id: Option<String>,
        /// The reason the revocation gives, if any.
        reason: Option<String>,
    },
    /// The signature was made by a signing subkey that has expired.
    #[error(
        "the signature was made by the signing subkey {subkey} of the key {}, and that subkey has expired ({reason})",
        named(primary, user_id)
    )]
    SubkeyExpired {
        /// The subkey's fingerprint.
        subkey: String,
        /// The primary key's fingerprint.
        primary: String,
        /// The certificate's primary user ID.
        user_id: Option<String>,
        /// Details.
        reason: String,
    },
    /// The signature was made by a signing subkey that is revoked (its primary key may be fine).
    #[error(
        "the signature was made by the signing subkey {subkey} of the key {}, and that subkey is revoked{}",
        named(primary, user_id),
        because(reason)
    )]
    SubkeyRevoked {
        /// The subkey's fingerprint.
        subkey: String,
        /// The primary key's fingerprint.
        primary: String,
        /// The certificate's primary user ID.
        user_id: Option<String>,
        /// The reason the revocation gives, if any.
        reason: Option<String>,
    },
    /// The key that made the signature is in the keyring but cannot be used to verify: not bound
    /// by a signature the policy accepts (e.g. SHA-1), not signing-capable, or not valid now.
    #[error(
        "the signing key {key} of the key {} cannot be used: {reason}",
        named(primary, user_id)
    )]
    KeyUnusable {
        /// The signing key's fingerprint (the primary's or a subkey's).
        key: String,
        /// The primary key's fingerprint.
        primary: String,
        /// The certificate's primary user ID.
        user_id: Option<String>,
        /// What sequoia reported.
        reason: String,
    },
    /// The message is compressed with an algorithm ferry is not built with (BZip2: gpg writes it
    /// only when told to, with `--compress-algo bzip2` or a key preference).
    #[error(
        "the signed message is compressed with {algorithm}, which ferry cannot read (it reads uncompressed, ZIP and ZLIB messages, gpg's defaults); sign again with `gpg --compress-algo zlib`"
    )]
    UnsupportedCompression {
        /// The algorithm's name, as sequoia gives it.
        algorithm: String,
    },
    /// Not an OpenPGP signed message of the expected shape.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The payload is not a valid simple signing payload.
    #[error("invalid signature payload: {0}")]
    InvalidPayload(String),
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Signing(String),
    /// No key of the GnuPG home's keyring is the one named (`--sign-by ID` without a key file).
    #[error(
        "no key matches {id:?} in the keyring of the GnuPG home {} (gpg --list-secret-keys shows what is there)",
        home.display()
    )]
    KeyNotFound {
        /// The key's name as given: a fingerprint, a key ID or a user ID.
        id: String,
        /// The GnuPG home.
        home: std::path::PathBuf,
    },
    /// The named keys are in the keyring, but gpg-agent holds no secret signing key for them.
    #[error(
        "gpg-agent holds no secret signing key for {} (named by {id:?}): import the secret key into the GnuPG home {} (gpg --import), or sign with a secret key file",
        keys.join(", "),
        home.display()
    )]
    NoSecretKey {
        /// The key's name as given.
        id: String,
        /// The GnuPG home.
        home: std::path::PathBuf,
        /// The keys it names, `FPR ("user ID")`.
        keys: Vec<String>,
    },
    /// The name matches several keys whose secret keys gpg-agent holds.
    #[error(
        "{id:?} names several keys with secret keys: {}; give one's fingerprint",
        keys.join(", ")
    )]
    AmbiguousKey {
        /// The key's name as given.
        id: String,
        /// The keys it names, `FPR ("user ID")`.
        keys: Vec<String>,
    },
    /// No gpg-agent serves the GnuPG home.
    #[error(
        "no gpg-agent is running for the GnuPG home {} (no socket at {}): start it (gpgconf --launch gpg-agent, with GNUPGHOME set to that home), or sign with a secret key file",
        home.display(),
        sockets.iter().map(|s| s.display().to_string()).collect::<Vec<_>>().join(" or ")
    )]
    NoAgent {
        /// The GnuPG home.
        home: std::path::PathBuf,
        /// Where its socket was looked for.
        sockets: Vec<std::path::PathBuf>,
    },
}

/// `FPR ("user ID")`, or the fingerprint alone: how people are shown a key.
fn named(fingerprint: &str, user_id: &Option<String>) -> String {
    match user_id {
        Some(u) => format!("{fingerprint} ({u:?})"),
        None => fingerprint.to_string(),
    }
}

fn because(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use openpgp::cert::prelude::*;
    use sequoia_openpgp as openpgp;

    use super::*;
    use crate::digest::Digest;

    fn digest() -> Digest {
        Digest::sha256_of(b"manifest")
    }

    fn key(uid: &str) -> SigningKey {
        let (cert, _) = CertBuilder::new()
            .add_userid(uid)
            .add_signing_subkey()
            .generate()
            .unwrap();
        SigningKey {
            cert,
            passphrase: None,
            agent: None,
        }
    }

    fn ring(k: &SigningKey) -> Keyring {
        Keyring::from_bytes(&k.public_cert()).unwrap()
    }

    #[test]
    fn signs_and_verifies_round_trip() {
        let k = key("Release <r@example.com>");
        let sig = sign(&payload_json(&digest(), "example.com/app:1"), &k).unwrap();
        let v = verify(&sig, &ring(&k)).unwrap();
        assert_eq!(v.payload.manifest_digest, digest().to_string());
        assert_eq!(v.payload.docker_reference, "example.com/app:1");
        assert_eq!(v.primary_fingerprint, k.fingerprint());
        assert_ne!(
            v.signing_key_fingerprint,
            k.fingerprint(),
            "made by the signing subkey"
        );
        assert_eq!(v.user_id.as_deref(), Some("Release <r@example.com>"));
        assert!(v.created.is_some());
        let u = inspect(&sig).unwrap();
        assert_eq!(u.payload.unwrap().docker_reference, "example.com/app:1");
        assert!(!u.issuers.is_empty());
    }

    #[test]
    fn rejects_unknown_signers_and_tampering() {
        let k = key("A <a@example.com>");
        let other = key("B <b@example.com>");
        let sig = sign(&payload_json(&digest(), "example.com/app:1"), &k).unwrap();
        match verify(&sig, &ring(&other)) {
            Err(SignatureError::UnknownSigner { issuers }) => assert!(!issuers.is_empty()),
            other => panic!("{other:?}"),
        }
        // Flip a byte inside the literal payload.
        let pos = sig.windows(8).position(|w| w == b"atomic c").unwrap();
        let mut bad = sig.clone();
        bad[pos] ^= 1;
        assert!(verify(&bad, &ring(&k)).is_err());
        assert!(verify(b"<html>", &ring(&k)).is_err());
        let e = verify(&sig[..sig.len() / 2], &ring(&k)).unwrap_err();
        assert!(!matches!(e, SignatureError::UnknownSigner { .. }), "{e}");
    }

    #[test]
    fn rejects_revoked_keys() {
        let (cert, rev) = CertBuilder::new()
            .add_userid("R")
            .add_signing_subkey()
            .generate()
            .unwrap();
        let k = SigningKey {
            cert: cert.clone(),
            passphrase: None,
            agent: None,
        };
        let sig = sign(&payload_json(&digest(), "example.com/app:1"), &k).unwrap();
        let (revoked, _) = cert.insert_packets(rev).unwrap();
        let pubring = Keyring {
            certs: vec![revoked.strip_secret_key_material()],
        };
        assert!(
            matches!(
                verify(&sig, &pubring),
                Err(SignatureError::KeyRevoked { .. })
            ),
            "{:?}",
            verify(&sig, &pubring)
        );
    }

    /// Keys and signatures made once with real gpg and skopeo (testdata/README.md, "keys/").
    mod gpg_made {
        use super::*;

        macro_rules! fixture {
            ($name:literal) => {
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/testdata/keys/",
                    $name
                ))
                .as_slice()
            };
        }

        pub(super) fn ring(armored: &[u8]) -> Keyring {
            Keyring::from_bytes(armored).unwrap()
        }

        /// The primary and signing-subkey fingerprints gpg gave the fixture key `name`.
        fn fprs(name: &str) -> (String, Option<String>) {
            let line = include_str!("../../../testdata/keys/fingerprints.txt")
                .lines()
                .find(|l| l.split(' ').next() == Some(name))
                .unwrap();
            let mut f = line.split_whitespace().skip(1).map(str::to_string);
            (f.next().unwrap(), f.next())
        }

        fn manifest_digest() -> String {
            Digest::sha256_of(fixture!("manifest.json")).to_string()
        }

        #[test]
        fn skopeo_signatures_verify_and_are_deflate_compressed() {
            let sig = fixture!("trusted.sig");
            // gpg compresses signed messages by default: an old-format compressed data packet
            // (0xa3) with algorithm 1 (ZIP, raw deflate). Verifying it needs sequoia's
            // compression-deflate feature.
            assert_eq!(&sig[..2], &[0xa3, 0x01]);
            let v = verify(sig, &ring(fixture!("trusted.pub.asc"))).unwrap();
            let (fpr, _) = fprs("trusted");
            assert_eq!(v.primary_fingerprint, fpr);
            assert_eq!(v.signing_key_fingerprint, fpr);
            assert_eq!(v.payload.manifest_digest, manifest_digest());
            assert_eq!(v.payload.docker_reference, "registry.ferry.test/app:1");
            assert!(v.payload.creator.is_some() && v.payload.timestamp.is_some());
            assert_eq!(
                v.user_id.as_deref(),
                Some("ferry test trusted <trusted@keys.ferry.test>")
            );
            let created = v.created.unwrap();
            let ts = v.payload.timestamp.unwrap();
            let secs = created
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            assert!(
                (secs - ts).abs() < 60,
                "signed at {secs}, payload says {ts}"
            );
        }

        #[test]
        fn keyrings_hold_several_certs_armored_or_binary() {
            let mut both = fixture!("trusted.pub.asc").to_vec();
            both.extend_from_slice(fixture!("subkey.pub.asc"));
            let r = Keyring::from_bytes(&both).unwrap();
            assert_eq!(r.fingerprints(), [fprs("trusted").0, fprs("subkey").0]);
            let binary = SigningKey::from_bytes(fixture!("trusted.sec.asc"), None, None)
                .unwrap()
                .public_cert();
            assert_ne!(binary[0], b'-', "not armored");
            assert_eq!(
                Keyring::from_bytes(&binary).unwrap().fingerprints(),
                [fprs("trusted").0]
            );
            let merged = Keyring::merge([r, Keyring::default()]);
            assert!(!merged.is_empty() && Keyring::default().is_empty());
            assert!(verify(fixture!("subkey.sig"), &merged).is_ok());
            assert!(verify(fixture!("trusted.sig"), &merged).is_ok());
            assert!(matches!(
                Keyring::from_bytes(b"<html>not a key</html>"),
                Err(SignatureError::Keys(_))
            ));
        }

        #[test]
        fn a_signing_subkey_signs_for_its_key() {
            let (primary, subkey) = fprs("subkey");
            let v = verify(fixture!("subkey.sig"), &ring(fixture!("subkey.pub.asc"))).unwrap();
            assert_eq!(v.primary_fingerprint, primary);
            assert_eq!(Some(v.signing_key_fingerprint), subkey);
        }

        #[test]
        fn an_untrusted_signer_is_named() {
            let (stranger, _) = fprs("untrusted");
            let e = verify(
                fixture!("untrusted.sig"),
                &ring(fixture!("trusted.pub.asc")),
            )
            .unwrap_err();
            assert_eq!(
                e,
                SignatureError::UnknownSigner {
                    issuers: vec![stranger.clone()]
                }
            );
            assert!(e.to_string().contains(&stranger), "{e}");
            // Another keyring that knows the stranger can name it, by fingerprint and user ID.
            let known = ring(fixture!("untrusted.pub.asc"));
            assert_eq!(
                known.owner_of(&stranger),
                Some((
                    stranger.clone(),
                    Some("ferry test untrusted <untrusted@keys.ferry.test>".to_string())
                ))
            );
            assert_eq!(known.owner_of(&stranger[24..]), known.owner_of(&stranger));
            assert_eq!(ring(fixture!("trusted.pub.asc")).owner_of(&stranger), None);
            let u = inspect(fixture!("untrusted.sig")).unwrap();
            assert_eq!(u.issuers, [stranger]);
            assert_eq!(u.payload.unwrap().manifest_digest, manifest_digest());
            assert!(u.created.is_some());
            assert_eq!(u.signer_user_id, None, "skopeo adds no signer's user ID");
        }

        #[test]
        fn expired_and_revoked_keys_and_subkeys_do_not_sign() {
            let (p, _) = fprs("expired");
            let e =
                verify(fixture!("expired.sig"), &ring(fixture!("expired.pub.asc"))).unwrap_err();
            assert!(
                matches!(&e, SignatureError::KeyExpired { primary, user_id: Some(u), .. }
                    if *primary == p && u.contains("expired@keys.ferry.test")),
                "{e:?}"
            );
            assert!(e.to_string().contains("has expired"), "{e}");

            let (p, _) = fprs("revoked");
            let e =
                verify(fixture!("revoked.sig"), &ring(fixture!("revoked.pub.asc"))).unwrap_err();
            assert!(
                matches!(&e, SignatureError::KeyRevoked { primary, .. } if *primary == p),
                "{e:?}"
            );
            assert!(e.to_string().contains("is revoked"), "{e}");

            let (p, sub) = fprs("subkey-revoked");
            let e = verify(
                fixture!("subkey-revoked.sig"),
                &ring(fixture!("subkey-revoked.pub.asc")),
            )
            .unwrap_err();
            assert!(
                matches!(&e, SignatureError::SubkeyRevoked { primary, subkey, .. }
                    if *primary == p && Some(subkey) == sub.as_ref()),
                "{e:?}"
            );

            let (p, sub) = fprs("subkey-expired");
            let e = verify(
                fixture!("subkey-expired.sig"),
                &ring(fixture!("subkey-expired.pub.asc")),
            )
            .unwrap_err();
            assert!(
                matches!(&e, SignatureError::SubkeyExpired { primary, subkey, .. }
                    if *primary == p && Some(subkey) == sub.as_ref()),
                "{e:?}"
            );
            assert!(e.to_string().contains("subkey"), "{e}");
        }

        #[test]
        fn no_changed_byte_verifies_a_different_payload() {
            let sig = fixture!("trusted.sig");
            let keys = ring(fixture!("trusted.pub.asc"));
            let good = verify(sig, &keys).unwrap().payload;
            let mut rejected = 0;
            for i in 0..sig.len() {
                for bit in [0x01u8, 0x80] {
                    let mut bad = sig.to_vec();
                    bad[i] ^= bit;
                    match verify(&bad, &keys) {
                        Ok(v) => assert_eq!(v.payload, good, "byte {i} bit {bit:#x}"),
                        Err(_) => rejected += 1,
                    }
                }
            }
            // Only bytes outside the signed data (e.g. the unhashed issuer subpacket) may change
            // without the signature failing.
            assert!(
                rejected > sig.len() * 3 / 2,
                "{rejected} of {}",
                sig.len() * 2
            );
        }

        #[test]
        fn gpg_exported_secret_keys_sign_with_and_without_passphrase() {
            let (fpr, _) = fprs("trusted");
            let k = SigningKey::from_bytes(fixture!("trusted.sec.asc"), Some(&fpr), None).unwrap();
            assert_eq!(k.fingerprint(), fpr);
            let payload = payload_json(&Digest::sha256_of(b"m"), "example.com/a:1");
            let v = verify(
                &sign(&payload, &k).unwrap(),
                &ring(fixture!("trusted.pub.asc")),
            )
            .unwrap();
            assert_eq!(v.primary_fingerprint, fpr);
            assert!(matches!(
                SigningKey::from_bytes(fixture!("trusted.sec.asc"), Some("0123456789ABCDEF"), None),
                Err(SignatureError::Keys(_))
            ));
            // A public key is no signing key.
            assert!(SigningKey::from_bytes(fixture!("trusted.pub.asc"), None, None).is_err());

            let (fpr, _) = fprs("protected");
            let locked =
                SigningKey::from_bytes(fixture!("protected.sec.asc"), Some(&fpr), None).unwrap();
            let e = sign(&payload, &locked).unwrap_err();
            assert!(e.to_string().contains("passphrase"), "{e}");
            let wrong =
                SigningKey::from_bytes(fixture!("protected.sec.asc"), Some(&fpr), Some("not it"))
                    .unwrap();
            assert!(matches!(
                sign(&payload, &wrong),
                Err(SignatureError::Signing(_))
            ));
            let right = SigningKey::from_bytes(
                fixture!("protected.sec.asc"),
                Some(&fpr),
                Some("ferry test passphrase"),
            )
            .unwrap();
            let sig = sign(&payload, &right).unwrap();
            let v = verify(&sig, &ring(fixture!("protected.pub.asc"))).unwrap();
            assert_eq!(v.primary_fingerprint, fpr);
        }
    }

    #[test]
    fn payloads_are_parsed_strictly() {
        let d = digest().to_string();
        let good = format!(
            r#"{{"critical":{{"type":"atomic container signature","image":{{"docker-manifest-digest":"{d}"}},"identity":{{"docker-reference":"a/b:c"}}}},"optional":{{"creator":"x","timestamp":5,"extra":1}}}}"#
        );
        let p = parse_payload(good.as_bytes()).unwrap();
        assert_eq!(p.timestamp, Some(5));
        for bad in [
            good.replace(
                "atomic container signature",
                "cosign container image signature",
            ),
            good.replace(r#","optional":{"creator":"x","timestamp":5,"extra":1}"#, ""),
            good.replace(r#""type""#, r#""type2""#),
            good.replace(&d, "sha256:abc"),
            good.replace("\"timestamp\":5", "\"timestamp\":5.5"),
            good.replace(r#""identity":"#, r#""extra":1,"identity":"#),
            good.replace(r#"{"creator":"x","timestamp":5,"extra":1}"#, "null"),
            good.replace(r#""creator":"x""#, r#""creator":"x","creator":"y""#),
        ] {
            assert!(parse_payload(bad.as_bytes()).is_err(), "accepted {bad}");
        }
    }
}
