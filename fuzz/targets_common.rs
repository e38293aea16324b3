//! What each fuzz target does with its input, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, nightly) and the corpus replay (`tests/fuzz_corpus.rs`, stable),
//! which both include this file with `#[path]`, so what is fuzzed and what is replayed on every
//! `cargo test` cannot drift apart.
//!
//! Every function takes raw bytes and must not panic on any of them; where a type has a
//! `Display` (references, digests) the displayed form must parse back to the same value, and a
//! signature that verifies must claim exactly what some real signature claimed. A failed
//! assertion here is a bug in ferry (or in this oracle), never in the input.
//!
//! Targets that need several inputs (policy and signature slots, a declared media type and a
//! manifest) split the bytes at [`SEP`]; the committed seeds show the layout.

#![allow(dead_code)]

use std::path::Path;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use ferry::SlotOutcome;
use ferry::internal::config::registries_d::{self, RegistriesConfig};
use ferry::internal::digest::{self, Algorithm, Digest, VerifyingStream};
use ferry::internal::policy::{self, Policy};
use ferry::internal::record::Record;
use ferry::internal::reference::{self, DockerReference, ImageReference};
use ferry::internal::signature::simple::{self, Keyring, Payload};
use ferry::internal::signature::sniff::{self, Format};
use ferry::internal::signature::{SignatureSlot, SlotReadError, SlotReadErrorKind};
use ferry::manifest::{self, Manifest};

/// Separates the parts of a multi-part input.
pub const SEP: &[u8] = b"\n==part==\n";

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// Every target by name: the name of its `fuzz/fuzz_targets/NAME.rs` and `fuzz/corpus/NAME/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("reference", reference),
    ("digest", digest),
    ("manifest", manifest),
    ("policy", policy),
    ("registries_d", registries_d),
    ("sniff", sniff),
    ("simple_payload", simple_payload),
    ("record", record),
    ("sigstore", sigstore),
    ("bundle", bundle),
    ("referrers", referrers),
];

/// Splits `data` at every [`SEP`].
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        parts.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    parts.push(rest);
    parts
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

// ---------------------------------------------------------------------------------------------
// reference

/// `ImageReference::parse`, `DockerReference::parse`, `is_remap_prefix` on the input as text;
/// every reference that parses displays as a string that parses back to it.
pub fn reference(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(r) = ImageReference::parse(s) {
        let shown = r.to_string();
        let again = ImageReference::parse(&shown)
            .unwrap_or_else(|e| panic!("{s:?} parsed, its display {shown:?} does not: {e}"));
        assert_eq!(r, again, "{s:?} -> {shown:?} parses to something else");
        assert_eq!(again.to_string(), shown, "display is not stable for {s:?}");
        let _ = (r.transport(), r.docker_reference());
        if let Some(d) = r.docker_reference() {
            let _ = d.scopes();
        }
    }
    if let Ok(r) = DockerReference::parse(s) {
        let shown = r.to_string();
        let again = DockerReference::parse(&shown)
            .unwrap_or_else(|e| panic!("{s:?} parsed, its display {shown:?} does not: {e}"));
        assert_eq!(r, again, "{s:?} -> {shown:?} parses to something else");
        // The familiar form is what people type; it must name the same image, except where
        // docker/distribution's own familiar form is ambiguous too: a docker.io repository
        // whose first path component looks like a host (`docker.io/foo.com/bar`).
        let familiar = r.familiar();
        let back = DockerReference::parse(&familiar)
            .unwrap_or_else(|e| panic!("{s:?}: familiar form {familiar:?} does not parse: {e}"));
        let first = familiar.split('/').next().unwrap_or_default();
        let looks_like_host = familiar.contains('/')
            && (first.contains(['.', ':'])
                || first == "localhost"
                || first != first.to_lowercase());
        assert!(
            r == back || looks_like_host,
            "{s:?}: familiar form {familiar:?} names another image"
        );
        let _ = (r.scopes(), r.namespaces(), r.name(), r.repository());
        let _ = r.clone().with_default_tag();
        if let Some(t) = r.tag() {
            let retagged = r.with_tag(t).expect("a parsed tag is a valid tag");
            assert_eq!(retagged.tag(), Some(t));
        }
    }
    let _ = reference::is_remap_prefix(s);
}

// ---------------------------------------------------------------------------------------------
// digest

/// Input: `DIGEST\nSIZE\nCHUNKS\nBODY`. DIGEST is `ALGO:HEX`, or a bare `sha256`/`sha512` for
/// the body's own digest; SIZE is the expected size or anything else for none; CHUNKS is a
/// comma-separated list of chunk lengths (`e` for an IO error at that point). The first line is
/// also given to `Digest::parse` on its own. The verifying stream must pass exactly the body's
/// bytes and end cleanly exactly when size and digest match.
pub fn digest(data: &[u8]) {
    let mut lines = data.splitn(4, |&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    if let Some(s) = text(first) {
        digest_text(s);
    }
    let size_line = lines.next().unwrap_or_default();
    let chunks_line = lines.next().unwrap_or_default();
    let body = lines.next().unwrap_or_default();

    let expected = match first {
        b"sha256" => Digest::sha256_of(body),
        b"sha512" => {
            let mut d = digest::Digester::new(Algorithm::Sha512);
            d.update(body);
            d.finish()
        }
        _ => match text(first).map(Digest::parse) {
            Some(Ok(d)) => d,
            _ => return,
        },
    };
    let size = text(size_line).and_then(|s| s.trim().parse::<u64>().ok());

    // Cut the body as CHUNKS says; what is left is one last chunk.
    let mut items: Vec<std::io::Result<Bytes>> = Vec::new();
    let mut rest = body;
    let mut injected_error = false;
    for c in text(chunks_line).unwrap_or_default().split(',').take(64) {
        if c == "e" {
            items.push(Err(std::io::Error::other("injected")));
            injected_error = true;
            break;
        }
        let Ok(n) = c.trim().parse::<usize>() else {
            continue;
        };
        let n = n.min(rest.len());
        items.push(Ok(Bytes::copy_from_slice(&rest[..n])));
        rest = &rest[n..];
    }
    if !injected_error && !rest.is_empty() {
        items.push(Ok(Bytes::copy_from_slice(rest)));
    }
    let passed_in: usize = items
        .iter()
        .map(|i| i.as_ref().map_or(0, |b| b.len()))
        .sum();
    let fed = &body[..passed_in];

    let inner: digest::ByteStream = Box::pin(futures::stream::iter(items));
    let mut stream = VerifyingStream::new(inner, expected.clone(), size);
    let mut out = Vec::new();
    let mut error = None;
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut polls = 0;
    loop {
        polls += 1;
        assert!(polls < 10_000, "the verifying stream never ends");
        match Pin::new(&mut stream).poll_next(&mut cx) {
            Poll::Pending => panic!("a ready stream is never pending"),
            Poll::Ready(None) => break,
            Poll::Ready(Some(Ok(b))) => {
                assert!(error.is_none(), "bytes after an error");
                out.extend_from_slice(&b);
            }
            Poll::Ready(Some(Err(e))) => {
                assert!(error.is_none(), "two errors");
                error = Some(e);
            }
        }
    }
    assert!(fed.starts_with(&out), "the stream changed the bytes");
    let should_pass =
        !injected_error && size.is_none_or(|s| s == fed.len() as u64) && expected.matches(fed);
    match error {
        None => {
            assert!(
                should_pass,
                "accepted a blob that is not {expected} ({size:?} bytes)"
            );
            assert_eq!(out, fed, "accepted but not every byte passed");
        }
        Some(e) => {
            assert!(!should_pass, "refused a good blob: {e}");
            let verify = digest::verify_error(&e);
            assert_eq!(
                verify.is_none(),
                injected_error && size.is_none_or(|s| s >= fed.len() as u64),
                "wrong kind of error: {e}"
            );
        }
    }
}

fn digest_text(s: &str) {
    if let Ok(d) = Digest::parse(s) {
        let shown = d.to_string();
        // The parser takes only the canonical form, so the display is the input itself.
        assert_eq!(
            shown, s,
            "a digest displays differently from how it was written"
        );
        assert_eq!(Digest::parse(&shown).as_ref(), Ok(&d));
        let json = serde_json::to_string(&d).expect("a digest serialises");
        let back: Digest = serde_json::from_str(&json).expect("a serialised digest parses");
        assert_eq!(back, d);
        assert_eq!(
            d.algorithm().name(),
            s.split(':').next().unwrap_or_default()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// manifest

/// Input: `MANIFEST` or `DECLARED-MEDIA-TYPE SEP MANIFEST`. `parse`, `detect` and
/// `matches_digest` must agree with each other, and a manifest always matches its own digest
/// unless it is signed schema 1 (refused).
pub fn manifest(data: &[u8]) {
    let parts = split(data);
    let (declared, bytes) = match parts.as_slice() {
        [m] => (None, *m),
        [d, m, ..] => (text(d), *m),
        [] => return,
    };
    let detected = manifest::detect(bytes, declared);
    if let Ok(m) = manifest::parse(bytes, declared) {
        let kind = detected
            .as_ref()
            .expect("parse succeeded where detect failed");
        assert_eq!(*kind, m.kind(), "parse and detect disagree");
        match &m {
            Manifest::Image(_, i) => {
                let _ = i.blobs();
            }
            Manifest::List(_, l) => {
                let _ = manifest::PlatformSpec::current().choose(l);
                for spec in ["linux/arm64/v8", "windows/amd64", "linux/arm"] {
                    let _ = manifest::PlatformSpec::parse(spec)
                        .expect("a valid platform")
                        .choose(l);
                }
            }
        }
    }
    if let Some(d) = declared {
        let _ = manifest::PlatformSpec::parse(d).map(|p| p.to_string());
    }
    let own = Digest::sha256_of(bytes);
    match manifest::matches_digest(bytes, &own) {
        Ok(m) => assert!(m, "a manifest does not match its own digest"),
        // serde_json (like Go's encoding/json) does not check the UTF-8 of values it skips, so
        // "JSON enough to see the shape" is IgnoredAny, not Value.
        Err(_) => assert!(
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok(),
            "refused to judge something that is not even JSON"
        ),
    }
    let other = Digest::sha256_of(b"not this manifest");
    if bytes != b"not this manifest" {
        assert_ne!(manifest::matches_digest(bytes, &other), Ok(true));
    }
}

// ---------------------------------------------------------------------------------------------
// policy

/// The demo manifest, which every signature in testdata signs.
pub const DEMO_MANIFEST: &[u8] = include_bytes!("../testdata/demo/hello-dir/manifest.json");

/// Input: `POLICY.JSON SEP SLOT SEP SLOT …`; an empty slot is one that could not be read.
/// The policy is evaluated on fixed images (docker, dir) with the demo manifest; any
/// slot it accepts must be a real signature: one that verifies against every key in testdata
/// and claims what a real signature claims.
pub fn policy(data: &[u8]) {
    let parts = split(data);
    let Some((policy_bytes, slot_parts)) = parts.split_first() else {
        return;
    };
    // keyPath makes the parser read a file; a fuzzer that finds `/dev/zero` would only be
    // measuring the machine. Key data is fuzzed through keyData.
    if names_key_files(policy_bytes) {
        return;
    }
    let Ok(p) = Policy::from_bytes(policy_bytes, "fuzz") else {
        return;
    };
    let slots: Vec<SignatureSlot> = slot_parts
        .iter()
        .take(ferry::internal::signature::MAX_SLOTS)
        .enumerate()
        .map(|(i, b)| SignatureSlot {
            index: i + 1,
            location: format!("fuzz slot {}", i + 1),
            content: if b.is_empty() {
                Err(SlotReadError::new(SlotReadErrorKind::Io, "unreadable"))
            } else {
                Ok(b.to_vec())
            },
        })
        .collect();
    // The store transport differs from docker only in its scope names; judging every signature
    // once more for it would cost a third of the fuzzer's speed for no new path.
    let store = ImageReference::parse("store:registry.ferry.test/app:1").expect("valid");
    let _ = policy::requirements_for(&p, &store);
    for image in [
        "docker://registry.demo.ferry.invalid/hello:1",
        "dir:/nonexistent/ferry-fuzz/hello",
    ] {
        let image = ImageReference::parse(image).expect("a fixed, valid reference");
        let verdict = policy::evaluate(
            &p,
            &image,
            DEMO_MANIFEST,
            &slots,
            policy::BundleIdentity::Named,
        );
        assert_eq!(verdict.slots.len(), slots.len(), "a slot went missing");
        for s in verdict.slots.iter() {
            if let SlotOutcome::Accepted { requirement, .. } = &s.outcome {
                assert!(*requirement >= 1 && *requirement <= verdict.requirements.len());
            }
        }
        for (slot, v) in slots.iter().zip(verdict.slots.iter()) {
            if matches!(v.outcome, SlotOutcome::Accepted { .. }) {
                let bytes = slot
                    .content
                    .as_ref()
                    .expect("an unreadable slot was accepted");
                let (format, inner) = sniff::sniff(bytes).expect("an accepted slot sniffs");
                if format == Format::SimpleSigning {
                    let v = simple::verify(inner, all_keys()).unwrap_or_else(|e| {
                        panic!("accepted a signature that does not verify: {e}")
                    });
                    assert!(
                        known_payloads().contains(&v.payload),
                        "accepted a signature claiming {:?}",
                        v.payload
                    );
                }
            }
        }
    }
}

fn names_key_files(policy: &[u8]) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(o) => o
                .iter()
                .any(|(k, v)| k == "keyPath" || k == "keyPaths" || walk(v)),
            serde_json::Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    match serde_json::from_slice::<serde_json::Value>(policy) {
        Ok(v) => walk(&v),
        // Not JSON for serde_json: the policy parser refuses it too, unless it is laxer; be safe.
        Err(_) => memmem(policy, b"key"),
    }
}

fn memmem(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// registries.d

/// Input: `REFERENCE\nYAML`. The YAML is parsed as one registries.d file, then asked for the
/// lookaside URLs of the reference (or of a fixed one when the first line does not parse);
/// every URL answered builds a signature URL that ends in the slot's name.
pub fn registries_d(data: &[u8]) {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let Some(yaml) = text(rest) else { return };
    let Ok(c) = RegistriesConfig::from_yaml(yaml, Path::new("/fuzz.yaml")) else {
        return;
    };
    let mut images = vec![DockerReference::parse("example.com/ns/app:1").expect("valid")];
    if let Some(r) = text(first).and_then(|s| DockerReference::parse(s).ok()) {
        images.push(r);
    }
    let d = Digest::sha256_of(DEMO_MANIFEST);
    for image in &images {
        let _ = (c.read_source(image), c.use_sigstore_attachments(image));
        let read = c.read_base(image);
        let write = c.write_base(image);
        for base in [read, write].into_iter().flatten().flatten() {
            for index in [1, 2, usize::MAX] {
                let u = registries_d::signature_url(&base, image, &d, index);
                let tail = format!("signature-{index}");
                assert!(
                    u.path().ends_with(&tail) || base.cannot_be_a_base(),
                    "{u} for base {base} does not end in {tail}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sniff

/// `sniff` classifies; the data it returns is the whole blob for a bare OpenPGP message, and
/// the tail after `0x00 NAME '\n'` for the tagged form (which sigstore always uses).
pub fn sniff(data: &[u8]) {
    match sniff::sniff(data) {
        Ok((format, inner)) => {
            if data[0] == 0 {
                let tag = &data[1..data.len() - inner.len() - 1];
                assert_eq!(data[data.len() - inner.len() - 1], b'\n');
                assert_eq!(tag, format.name().as_bytes());
            } else {
                assert_eq!(format, Format::SimpleSigning);
                assert_eq!(inner, data);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// simple signing

/// The keyring the signature targets verify with: `testdata/keys/trusted.pub.asc` and the
/// demo's release key, so both families of seeds reach a successful verification.
pub fn keyring() -> &'static Keyring {
    static K: OnceLock<Keyring> = OnceLock::new();
    K.get_or_init(|| {
        Keyring::merge([
            Keyring::from_bytes(include_bytes!("../testdata/keys/trusted.pub.asc")).expect("key"),
            Keyring::from_bytes(include_bytes!("../testdata/demo/keys/release.asc")).expect("key"),
        ])
    })
}

/// Every public key in testdata.
pub fn all_keys() -> &'static Keyring {
    static K: OnceLock<Keyring> = OnceLock::new();
    K.get_or_init(|| {
        let keys: [&[u8]; 10] = [
            include_bytes!("../testdata/keys/trusted.pub.asc"),
            include_bytes!("../testdata/keys/untrusted.pub.asc"),
            include_bytes!("../testdata/keys/subkey.pub.asc"),
            include_bytes!("../testdata/keys/subkey-revoked.pub.asc"),
            include_bytes!("../testdata/keys/subkey-expired.pub.asc"),
            include_bytes!("../testdata/keys/expired.pub.asc"),
            include_bytes!("../testdata/keys/revoked.pub.asc"),
            include_bytes!("../testdata/keys/protected.pub.asc"),
            include_bytes!("../testdata/demo/keys/release.asc"),
            include_bytes!("../testdata/demo/keys/other.asc"),
        ];
        Keyring::merge(keys.iter().map(|k| Keyring::from_bytes(k).expect("key")))
    })
}

/// What the real signatures in testdata claim: the only payloads any signature may verify with.
pub fn known_payloads() -> &'static [Payload] {
    static P: OnceLock<Vec<Payload>> = OnceLock::new();
    P.get_or_init(|| {
        let sigs: [&[u8]; 9] = [
            include_bytes!("../testdata/keys/trusted.sig"),
            include_bytes!("../testdata/keys/untrusted.sig"),
            include_bytes!("../testdata/keys/subkey.sig"),
            include_bytes!("../testdata/keys/subkey-revoked.sig"),
            include_bytes!("../testdata/keys/subkey-expired.sig"),
            include_bytes!("../testdata/keys/expired.sig"),
            include_bytes!("../testdata/keys/revoked.sig"),
            include_bytes!("../testdata/demo/hello-dir/signature-1"),
            include_bytes!("../testdata/demo/hello-dir/signature-3"),
        ];
        sigs.iter()
            .map(|s| {
                simple::inspect(s)
                    .expect("a real signature")
                    .payload
                    .expect("a real payload")
            })
            .collect()
    })
}

/// `parse_payload` on the input; `inspect` and `verify` (with [`keyring`]) on it. A signature
/// that verifies claims exactly what a real one does, and `inspect` reads the same claims from
/// it.
pub fn simple_payload(data: &[u8]) {
    let _ = simple::parse_payload(data);
    let inspected = simple::inspect(data);
    if let Ok(v) = simple::verify(data, keyring()) {
        assert!(
            known_payloads().contains(&v.payload),
            "a signature verified with a payload no real signature has: {:?}",
            v.payload
        );
        assert!(
            keyring().fingerprints().contains(&v.primary_fingerprint),
            "verified by a key not in the keyring: {}",
            v.primary_fingerprint
        );
        match inspected {
            Ok(u) => assert_eq!(
                u.payload.as_ref(),
                Some(&v.payload),
                "inspect reads other claims than verify"
            ),
            Err(e) => panic!("verified, but inspect fails: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// record

/// `Record::from_json`; a record that parses is written and read back unchanged.
pub fn record(data: &[u8]) {
    if let Ok(r) = Record::from_json(data) {
        let json = r.to_json();
        let back = Record::from_json(&json).expect("a written record parses");
        assert_eq!(back, r, "a record changed on its way through the store");
    }
}

// ---------------------------------------------------------------------------------------------
// sigstore

/// `SigstoreSignature::from_blob`/`from_json` (containers/image's stored form), the payload, the
/// unverified signer description and a verification against cosign's golden key: a stored
/// signature that parses is written and read back unchanged, and one that verifies must carry
/// the golden payload.
pub fn sigstore(data: &[u8]) {
    use ferry::internal::signature::sigstore::{PublicKey, SigstorePayload, SigstoreSignature};
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        PublicKey::from_pem(include_bytes!("../testdata/sigstore/golden/cosign.pub"))
            .expect("the golden key")
    });
    let sig = SigstoreSignature::from_blob(data).or_else(|_| SigstoreSignature::from_json(data));
    let Ok(sig) = sig else { return };
    let back = SigstoreSignature::from_json(&sig.to_json()).expect("a written signature parses");
    assert_eq!(
        back, sig,
        "a sigstore signature changed on its way through a file"
    );
    let _ = ferry::internal::signature::sigstore::describe::describe_signer(&sig);
    let _ = SigstorePayload::from_json(&sig.payload);
    if let Ok(v) = ferry::internal::signature::sigstore::verify(&sig, std::slice::from_ref(key)) {
        let golden = include_bytes!("../testdata/sigstore/golden/dir-img-cosign-valid.signature-1");
        let g = SigstoreSignature::from_blob(golden).expect("the golden signature");
        assert_eq!(
            v.payload,
            SigstorePayload::from_json(&g.payload).expect("the golden payload"),
            "a signature verified with the golden key over another payload"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// bundle

/// `Bundle::from_json` (cosign 3's sigstore bundles), its statement and kind, the unverified
/// signer, and `verify_bundle` with a key and a Rekor key no input was signed with: nothing an
/// input holds may make it verify. Input: `BUNDLE [SEP MANIFEST]`.
pub fn bundle(data: &[u8]) {
    use ferry::internal::signature::sigstore::PublicKey;
    use ferry::internal::signature::sigstore::bundle::{Bundle, BundleSigners, verify_bundle};
    static KEYS: OnceLock<(PublicKey, PublicKey)> = OnceLock::new();
    let (key, rekor) = KEYS.get_or_init(|| {
        (
            PublicKey::from_pem(include_bytes!("../testdata/sigstore/golden/cosign2.pub"))
                .expect("a key"),
            PublicKey::from_pem(include_bytes!("../testdata/sigstore/golden/rekor.pub"))
                .expect("the Rekor key"),
        )
    });
    let parts = split(data);
    let manifest = parts.get(1).copied().unwrap_or(b"{}");
    let Ok(b) = Bundle::from_json(parts[0]) else {
        return;
    };
    let _ = b.statement();
    let _ = b.kind();
    let _ = ferry::internal::signature::sigstore::describe::describe_bundle_signer(&b);
    let keys = std::slice::from_ref(key);
    let rekors = std::slice::from_ref(rekor);
    for r in [None, Some(rekors)] {
        assert!(
            verify_bundle(&b, BundleSigners::Keys(keys), r, manifest, 0).is_err(),
            "a bundle verified with a key that never signed anything"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// referrers

/// `referrers::parse_index` and `merge_fallback` (the OCI 1.1 referrers index and its fallback
/// tag), `Attached::from_manifest` and its subject: an index that parses, merged with its own
/// entries, lists the same entries; an artifact's index entry names its own digest.
/// Input: `INDEX [SEP MANIFEST]`.
pub fn referrers(data: &[u8]) {
    use ferry::internal::transport::referrers::{self, Attached, Via};
    let parts = split(data);
    if let Ok(entries) = referrers::parse_index(parts[0]) {
        let built = referrers::build_index(&entries);
        let back = referrers::parse_index(&built).expect("a built index parses");
        assert_eq!(
            back, entries,
            "an index changed on its way through the fallback tag"
        );
        let merged = referrers::merge_fallback(Some(&built), &entries).expect("merge");
        assert!(
            merged.is_none(),
            "merging an index's own entries changed it"
        );
        for e in &entries {
            let _ = e.may_be_signature();
        }
    }
    if let Some(m) = parts.get(1)
        && let Ok(a) = Attached::from_manifest(m, None, Via::Referrer)
    {
        let _ = a.subject();
        assert_eq!(a.index_entry().digest, Digest::sha256_of(m));
    }
}
