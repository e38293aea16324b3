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
    ("tar_index", tar_index),
    ("tarsplit", tarsplit),
    ("proxy_request", proxy_request),
    ("unpack_tar", unpack_tar),
    ("storage_json", storage_json),
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

// ---------------------------------------------------------------------------------------------
// Shared by the targets that need files: a scratch directory and a runtime for async readers.

static SCRATCH: OnceLock<tempfile::TempDir> = OnceLock::new();

/// A directory for the inputs that must be files (archives, unpack roots, stores), under the
/// system's temporary directory. Statics are never dropped: the replay removes it with
/// [`remove_scratch`]; a fuzzing run leaves it behind.
pub fn scratch() -> &'static Path {
    SCRATCH
        .get_or_init(|| {
            tempfile::Builder::new()
                .prefix("ferry-fuzz-")
                .tempdir()
                .expect("a scratch directory")
        })
        .path()
}

/// Removes the scratch directory, if one was made.
pub fn remove_scratch() {
    if let Some(d) = SCRATCH.get() {
        let _ = std::fs::remove_dir_all(d.path());
    }
}

/// A current-thread runtime for the async readers (the archive readers use `spawn_blocking`).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
    .block_on(f)
}

// ---------------------------------------------------------------------------------------------
// tar_index

/// The archive transports' tar reader: every 512-byte block through the header codec
/// (`header::decode`, `parse_pax`), whose decoded fields must encode and decode back to the same
/// fields; the input as a file through `TarIndex::build`, whose entries must be normalised,
/// unique names with data inside the file, in order, and whose links resolve only to regular
/// files of the index; then `DockerArchive::from_tar` (manifest.json, `repositories`,
/// `select`, `image`) and `OciArchive::from_tar` (oci-layout, index.json, `select`,
/// `read_manifest`), whose generated manifests and configs must match their own digests and name
/// only entries of the archive.
pub fn tar_index(data: &[u8]) {
    use ferry::internal::tarfile::header;

    for (i, chunk) in data.chunks_exact(512).take(64).enumerate() {
        let block: &[u8; 512] = chunk.try_into().expect("512 bytes");
        if header::is_zero(block) {
            continue;
        }
        if let Ok(h) = header::decode(block) {
            tar_header_round_trip(&h);
        }
        if i == 0 {
            // The input as PAX records too (what follows an 'x' header).
            if let Ok(p) = header::parse_pax(data) {
                pax_round_trip(&p);
            }
        }
    }
    let path = scratch().join("tar_index.tar");
    std::fs::write(&path, data).expect("writing the scratch archive");
    let file = std::fs::File::open(&path).expect("the scratch archive");
    if let Ok(index) = ferry::internal::tarfile::TarIndex::build(&file, &path) {
        check_tar_index(&index, data.len() as u64, &path);
    }
    drop(file);
    block_on(archives(&path));
}

fn tar_header_round_trip(h: &ferry::internal::tarfile::header::RawHeader) {
    use ferry::internal::tarfile::header;
    let (Some(name), Some(link)) = (text(&h.name), text(&h.linkname)) else {
        return;
    };
    let Some((prefix, rest)) = header::split_ustar_name(name) else {
        return;
    };
    if link.len() > 100 {
        return;
    }
    let again = header::decode(&header::encode(prefix, rest, h.typeflag, h.size, link))
        .unwrap_or_else(|e| panic!("an encoded header does not decode: {e}"));
    assert_eq!(&again, h, "a header changed on its way through encode");
}

fn pax_round_trip(p: &ferry::internal::tarfile::header::Pax) {
    use ferry::internal::tarfile::header;
    let mut records = Vec::new();
    if let Some(v) = &p.path {
        let Some(v) = text(v) else { return };
        records.extend(header::pax_record("path", v));
    }
    if let Some(v) = &p.linkpath {
        let Some(v) = text(v) else { return };
        records.extend(header::pax_record("linkpath", v));
    }
    if let Some(v) = p.size {
        records.extend(header::pax_record("size", &v.to_string()));
    }
    let again = header::parse_pax(&records).expect("written PAX records parse");
    assert_eq!(
        &again, p,
        "PAX records changed on their way through pax_record"
    );
}

fn check_tar_index(index: &ferry::internal::tarfile::TarIndex, len: u64, path: &Path) {
    use ferry::internal::tarfile::{EntryKind, normalize_name};
    assert_eq!(index.archive_len(), len);
    let mut names = std::collections::HashSet::new();
    let mut previous_end = 0u64;
    for e in index.entries() {
        assert!(!e.name.is_empty(), "an entry with an empty name");
        assert_eq!(
            normalize_name(&e.name).as_deref(),
            Ok(e.name.as_str()),
            "an entry name is not normalised (absolute, `..`, `.` or empty components)"
        );
        assert!(names.insert(e.name.clone()), "{:?} indexed twice", e.name);
        assert!(
            e.header_offset >= previous_end,
            "{:?} overlaps the entry before it",
            e.name
        );
        assert!(
            e.data_offset >= e.header_offset + 512 && e.data_offset % 512 == 0,
            "{:?}: data at {} for a header at {}",
            e.name,
            e.data_offset,
            e.header_offset
        );
        assert!(
            e.data_offset + e.size <= len,
            "{:?}: {} bytes at {} run past the end ({len})",
            e.name,
            e.size,
            e.data_offset
        );
        if matches!(
            e.kind,
            EntryKind::Directory | EntryKind::Symlink | EntryKind::Hardlink
        ) {
            assert_eq!(e.size, 0, "{:?}: a {:?} with content", e.name, e.kind);
        }
        previous_end = e.data_offset + e.size;
        assert_eq!(index.get(&e.name), Some(e));
        if let Ok(target) = index.resolve(path, &e.name) {
            assert_eq!(target.kind, EntryKind::File, "resolved to a non-file");
            assert_eq!(
                index.get(&target.name),
                Some(target),
                "resolved outside the index"
            );
        }
    }
}

async fn archives(path: &Path) {
    use ferry::internal::tarfile::docker::DockerArchive;
    use ferry::internal::tarfile::oci::OciArchive;
    use ferry::internal::tarfile::reference::{DockerSelector, OciSelector, RepoTag};
    use ferry::internal::tarfile::{EntryKind, OpenOptions, TarArchive};

    let options = OpenOptions::default().temp_dir(scratch());
    let Ok(tar) = TarArchive::open_with(path, &options).await else {
        return;
    };
    let index = tar.index().clone();
    check_tar_index(&index, index.archive_len(), path);

    if let Ok(docker) = DockerArchive::from_tar(tar.clone()).await {
        let _ = docker.repositories().await;
        let items = docker.items();
        assert_eq!(
            docker.select(&DockerSelector::Only).is_ok(),
            items.len() == 1
        );
        for (i, item) in items.iter().enumerate().take(4) {
            assert_eq!(
                docker.select(&DockerSelector::Index(i)).ok(),
                Some((i, None))
            );
            for (t, tag) in item.repo_tags.iter().enumerate().take(4) {
                let Ok(wanted) = RepoTag::parse(tag) else {
                    continue;
                };
                if let Ok((j, Some(u))) = docker.select(&DockerSelector::Tag(wanted.clone())) {
                    assert!(j < i || (j == i && u <= t), "select skipped a match");
                    let found = RepoTag::parse(&items[j].repo_tags[u]).expect("parsed before");
                    assert_eq!(found, wanted, "select chose another tag");
                }
            }
            let Ok(image) = docker.image(i).await else {
                continue;
            };
            assert_eq!(image.config_digest, Digest::sha256_of(&image.config));
            assert_eq!(image.manifest_digest, Digest::sha256_of(&image.manifest));
            let m = manifest::parse(&image.manifest, None).expect("a generated manifest parses");
            let Manifest::Image(_, m) = m else {
                panic!("a generated manifest is not an image manifest")
            };
            assert_eq!(m.blobs().len(), item.layers.len() + 1);
            for l in &image.layers {
                let e = docker.tar().entry(&l.entry).expect("a layer's entry");
                assert_eq!(e.kind, EntryKind::File);
                assert_eq!(index.get(&l.entry), Some(e), "a layer outside the index");
                if l.compression.is_none() {
                    assert_eq!(l.size, e.size);
                }
            }
        }
    }

    if let Ok(oci) = OciArchive::from_tar(tar).await {
        let list = oci.list();
        assert_eq!(oci.select(&OciSelector::Only).is_ok(), list.len() == 1);
        for e in list.iter().take(4) {
            let d = oci
                .select(&OciSelector::Index(e.position))
                .expect("a listed position");
            assert_eq!(d, &e.descriptor);
            if let Some(name) = &e.name
                && let Ok(d) = oci.select(&OciSelector::Name(name.clone()))
            {
                assert_eq!(
                    d.annotations
                        .as_ref()
                        .and_then(|a| a.get("org.opencontainers.image.ref.name")),
                    Some(name),
                    "select by name chose another entry"
                );
            }
            if let Ok(bytes) = oci.read_manifest(&e.descriptor).await {
                assert_eq!(
                    e.descriptor.digest.of_same_algorithm(&bytes),
                    e.descriptor.digest,
                    "a manifest read from the archive does not match its digest"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tarsplit

/// The base64 payload's decoded length (standard alphabet, padded), without decoding it.
fn base64_len(s: &str) -> u64 {
    let pad = s.bytes().rev().take_while(|&b| b == b'=').count() as u64;
    (s.len() as u64 / 4 * 3).saturating_sub(pad)
}

/// A [`FileSource`](ferry::internal::compression::FileSource) that gives each file the tar-split
/// names, in order, the bytes of `tar` where that file's content must be, by the sizes the
/// tar-split recorded: so `assemble` gives back `tar` only if the tar-split's segments and sizes
/// are right, and its CRC-64 check passes only if the recorded checksums are.
struct InPlace<'a> {
    tar: &'a [u8],
    files: std::collections::VecDeque<(u64, u64)>,
}

impl ferry::internal::compression::FileSource for InPlace<'_> {
    fn open(&mut self, _name: &[u8]) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        let (at, size) = self
            .files
            .pop_front()
            .ok_or_else(|| std::io::Error::other("more files than the tar-split lists"))?;
        Ok(Box::new(&self.tar[at as usize..(at + size) as usize]))
    }
}

/// Where the files of a tar-split are in its tar: (offset, size) in order. `None` when a
/// header-only entry (a link, device, directory or FIFO, as Go's `isHeaderOnlyType`) declares
/// a size: tar-split records that size as vbatts/tar-split does (`Size: hdr.Size`) although no
/// content follows in the tar, so such a tar-split cannot assemble its tar, here as upstream.
fn tar_split_files(tar: &[u8], tar_split: &[u8]) -> Option<std::collections::VecDeque<(u64, u64)>> {
    let mut out = std::collections::VecDeque::new();
    let mut pos = 0u64;
    for line in tar_split.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).expect("a written tar-split line");
        match v["type"].as_i64() {
            Some(2) => pos += base64_len(v["payload"].as_str().expect("a segment's payload")),
            Some(1) => {
                let size = v["size"].as_i64().unwrap_or(0);
                if size > 0 {
                    // The entry's header block is the 512 bytes before its content.
                    let typeflag = pos.checked_sub(512).and_then(|h| tar.get(h as usize + 156));
                    if matches!(typeflag, Some(b'1'..=b'6')) {
                        return None;
                    }
                    out.push_back((pos, size as u64));
                    pos += size as u64;
                }
            }
            other => panic!("tar-split wrote an entry of type {other:?}"),
        }
    }
    Some(out)
}

/// A file outside the layer directory that `assemble` over `DirectoryFiles` must never read.
const OUTSIDE: &[u8] = b"ferry-fuzz: outside the layer directory, 5c1e0b7a";

/// A layer directory with files, and links out of it, beside [`OUTSIDE`].
fn layer_dir() -> &'static Path {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let base = scratch().join("tarsplit");
        let root = base.join("layer");
        std::fs::create_dir_all(root.join("etc")).expect("the layer directory");
        std::fs::write(base.join("secret"), OUTSIDE).expect("the outside file");
        std::fs::write(root.join("etc/hostname"), b"ferry\n").expect("a layer file");
        std::fs::write(root.join("a"), b"a").expect("a layer file");
        std::os::unix::fs::symlink("../secret", root.join("link")).expect("a link");
        std::os::unix::fs::symlink("..", root.join("up")).expect("a link");
        std::os::unix::fs::symlink("/", root.join("abs")).expect("a link");
        root
    })
}

/// `DirectoryFiles` over [`layer_dir`], checking that every file it opens is one of the
/// directory's own.
struct Inside(ferry::internal::compression::DirectoryFiles);

impl ferry::internal::compression::FileSource for Inside {
    fn open(&mut self, name: &[u8]) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        use std::io::Read as _;
        let mut content = Vec::new();
        self.0.open(name)?.take(4096).read_to_end(&mut content)?;
        assert!(
            content == b"a" || content == b"ferry\n",
            "{:?} opened a file outside the layer directory",
            String::from_utf8_lossy(name)
        );
        Ok(Box::new(std::io::Cursor::new(content)))
    }
}

/// tar-split both ways and the zstd:chunked metadata. The input as a tar: `tar_split` must
/// give a tar-split from which `assemble` rebuilds the input byte for byte (the files' content
/// cut from the input at the sizes the tar-split recorded, their CRC-64s checked), and a
/// `ChunkedWriter` blob of it must decompress to the input and give back, through
/// `read_metadata`, the same tar-split and footer fields its annotations name. The input as a
/// tar-split: `assemble` over a layer directory with links out of it never reads the file
/// beside it (nor anything but the directory's own files). The input as a zstd:chunked blob: `read_metadata` returns parts of the sizes its
/// footer declares.
pub fn tarsplit(data: &[u8]) {
    use ferry::internal::compression::{self, ChunkedWriter, DirectoryFiles};

    // As a tar.
    let mut ts = Vec::new();
    if let Ok(summary) = compression::tar_split(data, &mut ts) {
        assert_eq!(summary.tar_split_size, ts.len() as u64);
        assert_eq!(
            summary.tar_size,
            data.len() as u64,
            "tar-split did not read the whole tar"
        );
        if let Some(files) = tar_split_files(data, &ts) {
            let mut files = InPlace { tar: data, files };
            let mut out = Vec::new();
            let n = compression::assemble(&ts[..], &mut files, &mut out)
                .unwrap_or_else(|e| panic!("a tar-split does not assemble its own tar: {e}"));
            assert_eq!(n, out.len() as u64);
            assert!(
                out == data,
                "assemble rebuilt another tar from its tar-split"
            );
            assert!(files.files.is_empty(), "assemble skipped files");
        }

        let mut w = ChunkedWriter::new(Vec::new(), 1).expect("a zstd encoder");
        use std::io::Write as _;
        if w.write_all(data).is_ok()
            && let Ok((blob, summary)) = w.finish()
        {
            assert_eq!(summary.tar_size, data.len() as u64);
            let plain = zstd::stream::decode_all(&blob[..]).expect("a zstd:chunked blob decodes");
            assert!(plain == data, "zstd:chunked changed the tar");
            let m = compression::read_metadata(std::io::Cursor::new(&blob))
                .expect("reading the metadata back")
                .expect("a zstd:chunked blob has a footer");
            assert!(m.tar_split == ts, "zstd:chunked carries another tar-split");
            assert_eq!(m.toc_digest, summary.toc_digest);
            let [toc_off, toc_len, toc_ulen, kind, ts_off, ts_len, ts_ulen] = m.footer;
            assert_eq!(
                summary.annotations[compression::MANIFEST_POSITION_KEY],
                format!("{toc_off}:{toc_len}:{toc_ulen}:{kind}")
            );
            assert_eq!(
                summary.annotations[compression::TARSPLIT_POSITION_KEY],
                format!("{ts_off}:{ts_len}:{ts_ulen}")
            );
            let toc: serde_json::Value = serde_json::from_slice(&m.toc).expect("the TOC is JSON");
            let _ = toc;
        }
    }

    // As a tar-split, over a directory.
    let mut files = Inside(DirectoryFiles::open(layer_dir()).expect("the layer directory"));
    let mut out = Vec::new();
    if let Ok(n) = compression::assemble(data, &mut files, &mut out) {
        assert_eq!(n, out.len() as u64);
    }

    // As a zstd:chunked blob.
    if let Ok(Some(m)) = compression::read_metadata(std::io::Cursor::new(data)) {
        assert_eq!(m.toc.len() as u64, m.footer[2]);
        assert_eq!(m.tar_split.len() as u64, m.footer[6]);
    }
}

// ---------------------------------------------------------------------------------------------
// proxy_request

/// Whether two JSON values are the same, numbers compared by value (a float that went through
/// text may come back a unit in the last place off: serde_json parses fast, not exactly).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return x == y;
            }
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return x == y;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// The image proxy's wire format: a request as the handler parses it (`wire::Request`), its
/// arguments through `expect_args`, `uint` and `string`, and replies carrying them. A request
/// that parses says what a generic JSON parse of the same bytes says; an id `uint` accepts is a
/// whole number within JavaScript's safe range equal to the argument; `string` accepts exactly
/// the strings; a reply (and the error pipe's object) serialises with skopeo's fields and reads
/// back with the same values.
pub fn proxy_request(data: &[u8]) {
    use ferry::internal::proxy::wire::{self, ErrorCode, PipeError, Reply, Request};
    use serde_json::Value;

    let Ok(request) = serde_json::from_slice::<Request>(data) else {
        return;
    };
    if let Ok(Value::Object(generic)) = serde_json::from_slice::<Value>(data) {
        assert_eq!(
            generic.get("method"),
            Some(&Value::String(request.method.clone())),
            "the request's method is not the JSON's"
        );
        match generic.get("args") {
            Some(Value::Array(args)) => assert_eq!(args, &request.args),
            None => assert!(request.args.is_empty()),
            Some(other) => panic!("args {other} parsed as an array"),
        }
    }
    for n in 0..4 {
        assert_eq!(
            wire::expect_args(&request.args, n, "n").is_ok(),
            request.args.len() == n
        );
    }
    assert!(wire::uint(None).is_err() && wire::string(None, "x").is_err());
    let mut pipeid = 0u32;
    for arg in &request.args {
        if let Ok(n) = wire::uint(Some(arg)) {
            assert!(n <= wire::MAX_SAFE_INTEGER, "an id beyond 2^53: {n}");
            let Value::Number(v) = arg else {
                panic!("uint accepted {arg}")
            };
            assert!(
                v.as_u64() == Some(n) || v.as_f64() == Some(n as f64),
                "uint read {n} from {v}"
            );
            pipeid = u32::try_from(n).unwrap_or(pipeid);
        }
        match wire::string(Some(arg), "x") {
            Ok(s) => assert_eq!(arg, &Value::String(s.to_string())),
            Err(_) => assert!(!arg.is_string()),
        }
    }

    let value = Value::Array(request.args.clone());
    let ok = serde_json::to_vec(&Reply::ok(value.clone(), pipeid)).expect("a reply serialises");
    let back: Value = serde_json::from_slice(&ok).expect("a written reply parses");
    let fields: Vec<&str> = back
        .as_object()
        .expect("a reply is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields.len(),
        5,
        "a reply has skopeo's five fields: {fields:?}"
    );
    assert_eq!(back["success"], Value::Bool(true));
    assert!(
        same_json(&back["value"], &value),
        "the reply's value changed"
    );
    assert_eq!(back["pipeid"], Value::from(pipeid));
    assert_eq!(back["error_code"], Value::from(""));
    assert_eq!(back["error"], Value::from(""));

    let failed = Reply::failed(request.method.clone(), ErrorCode::Retryable);
    let back: Value =
        serde_json::from_slice(&serde_json::to_vec(&failed).expect("serialises")).expect("parses");
    assert_eq!(back["success"], Value::Bool(false));
    assert_eq!(back["error"], Value::String(request.method.clone()));
    assert_eq!(back["error_code"], Value::from("retryable"));
    assert_eq!(back["value"], Value::Null);

    let pipe = PipeError {
        code: ErrorCode::Pipe,
        message: &request.method,
    };
    let back: Value =
        serde_json::from_slice(&serde_json::to_vec(&pipe).expect("serialises")).expect("parses");
    assert_eq!(back["code"], Value::from("EPIPE"));
    assert_eq!(back["message"], Value::String(request.method.clone()));
}

// ---------------------------------------------------------------------------------------------
// unpack_tar

/// The gate's admission for the demo manifest under a policy that accepts anything: what
/// `Rootfs::open` requires, made the only way one is made.
fn admission() -> &'static ferry::Admission {
    static A: OnceLock<ferry::Admitted> = OnceLock::new();
    A.get_or_init(|| {
        let p = Policy::from_bytes(
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
            "fuzz",
        )
        .expect("a policy");
        let image = ImageReference::parse("dir:/nonexistent/ferry-fuzz/unpack").expect("valid");
        let digest = Digest::sha256_of(DEMO_MANIFEST);
        let input = policy::GateInput {
            digest: &digest,
            manifest: DEMO_MANIFEST,
            slots: &[],
            role: policy::ManifestRole::Image,
            platform: None,
            searched: &[],
            bundles: policy::BundleIdentity::Named,
            attached_unreadable: &[],
        };
        policy::gate(&p, &image, ferry::SignatureMode::CopyAll, &[input]).expect("admitted")
    })
    .admission()
}

/// What is in a directory tree: each path (relative) with its type, permission bits and
/// content or link target. Makes every directory searchable and every file readable by its
/// owner on the way (a layer may set 000), so the tree can be read and removed.
fn tree(dir: &Path, rel: &str, out: &mut Vec<String>) {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("reading a directory of the root")
        .map(|e| e.expect("a directory entry").file_name())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = format!("{rel}/{}", name.to_string_lossy());
        let m = std::fs::symlink_metadata(&path).expect("an entry's metadata");
        let mode = m.mode() & 0o7777;
        let t = m.file_type();
        if t.is_symlink() {
            let target = std::fs::read_link(&path).expect("a link");
            out.push(format!("{rel} link {mode:o} -> {}", target.display()));
        } else if t.is_dir() {
            out.push(format!("{rel} dir {mode:o}"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode | 0o700))
                .expect("chmod");
            tree(&path, &rel, out);
        } else if t.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode | 0o600))
                .expect("chmod");
            let content = std::fs::read(&path).expect("a file's content");
            out.push(format!("{rel} file {mode:o} {content:?}"));
        } else {
            out.push(format!("{rel} other {mode:o} {:?}", t));
        }
    }
}

/// The unpack applier (`Rootfs::apply_tar`, through the layer reader `unpack::tar_stream`)
/// on the input as a layer (plain, gzip or zstd), rootless, into a fresh root, once with each
/// resolver (openat2 where the kernel has it, the `O_NOFOLLOW` walk): nothing may appear or
/// change outside the root (its parent holds only the root and an untouched canary directory),
/// both resolvers must agree on the outcome and on every file, link and directory they made,
/// and a layer applied reports the digest and size of the input.
pub fn unpack_tar(data: &[u8]) {
    use ferry::bundle::{ApplyOptions, Resolver, Rootfs};

    let base = tempfile::Builder::new()
        .prefix("unpack_tar")
        .tempdir_in(scratch())
        .expect("a fresh directory");
    std::fs::create_dir(base.path().join("outside")).expect("the canary directory");
    std::fs::write(base.path().join("outside/canary"), b"canary").expect("the canary");
    let mut outcomes = Vec::new();
    for (name, resolver) in [("auto", Resolver::Auto), ("walk", Resolver::Walk)] {
        let root = base.path().join(name);
        std::fs::create_dir(&root).expect("the root");
        let mut options = ApplyOptions::default();
        options.rootless = true;
        options.resolver = resolver;
        options.max_bytes = 16 << 20;
        options.max_entries = 10_000;
        let mut rootfs = Rootfs::open(&root, options, admission()).expect("opening the root");
        let result = rootfs.apply_tar(data, "fuzz layer");
        if let Ok(stats) = &result {
            assert_eq!(stats.digest, Digest::sha256_of(data), "the layer's digest");
            assert_eq!(
                stats.compressed_bytes,
                data.len() as u64,
                "the layer's size"
            );
        }
        let mut made = Vec::new();
        tree(&root, "", &mut made);
        outcomes.push((result.is_ok(), made));
    }
    let mut around: Vec<String> = std::fs::read_dir(base.path())
        .expect("the base")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    around.sort();
    assert_eq!(
        around,
        ["auto", "outside", "walk"],
        "something was made outside the root"
    );
    let outside: Vec<_> = std::fs::read_dir(base.path().join("outside"))
        .expect("the canary directory")
        .collect();
    assert_eq!(outside.len(), 1, "something was made beside the canary");
    assert_eq!(
        std::fs::read(base.path().join("outside/canary")).expect("the canary"),
        b"canary",
        "the canary changed"
    );
    let (walk, auto) = (outcomes.pop().expect("walk"), outcomes.pop().expect("auto"));
    assert_eq!(
        auto.0, walk.0,
        "the resolvers disagree on whether the layer applies"
    );
    assert_eq!(auto.1, walk.1, "the resolvers made different trees");
}

// ---------------------------------------------------------------------------------------------
// storage_json

/// containers-storage's record files and storage.conf. Input: `LAYERS.JSON [SEP IMAGES.JSON
/// [SEP STORAGE.CONF]]`, written into a fresh store (vfs, or the driver storage.conf names when
/// ferry writes it) beside a canary directory, then read as the containers-storage transport
/// reads them: `read_conf` agrees with a generic TOML parse of `[storage]`; `Layers::get`,
/// `by_digest`, `complete` and `remove_incomplete` (which removes files) find what the records
/// say and remove nothing outside the store's driver directory; `Images::get`, `by_name`,
/// `by_digest`, `add_name` likewise; records saved and loaded again are unchanged.
pub fn storage_json(data: &[u8]) {
    use ferry::internal::transport::containers_storage::StoreSpec;
    use ferry::internal::transport::containers_storage::config::read_conf;
    use ferry::internal::transport::containers_storage::store::{Images, Layers, Store};
    use serde_json::Value;

    let parts = split(data);
    let base = tempfile::Builder::new()
        .prefix("storage_json")
        .tempdir_in(scratch())
        .expect("a fresh directory");
    let mut driver = "vfs".to_string();
    if let Some(conf) = parts.get(2) {
        let path = base.path().join("storage.conf");
        std::fs::write(&path, conf).expect("writing storage.conf");
        if let Ok(c) = read_conf(&path) {
            let generic: toml::Table = toml::from_str(text(conf).expect("read_conf took UTF-8"))
                .expect("read_conf took TOML");
            let storage = generic.get("storage");
            for (key, got) in [
                ("driver", &c.driver),
                ("graphroot", &c.graphroot),
                ("runroot", &c.runroot),
                ("rootless_storage_path", &c.rootless_storage_path),
            ] {
                assert_eq!(
                    storage.and_then(|s| s.get(key)).and_then(|v| v.as_str()),
                    got.as_deref(),
                    "storage.conf's {key}"
                );
            }
            if let Some(d) = c
                .driver
                .filter(|d| ["overlay", "overlay2", "vfs"].contains(&d.as_str()))
            {
                driver = d;
            }
        }
        std::fs::remove_file(&path).expect("removing storage.conf");
    }
    std::fs::create_dir(base.path().join("outside")).expect("the canary directory");
    std::fs::write(base.path().join("outside/canary"), b"canary").expect("the canary");
    let spec = StoreSpec {
        driver,
        graph_root: base.path().join("graph"),
        run_root: base.path().join("run"),
        options: Vec::new(),
    };
    let store = Store::open(&spec).expect("a driver ferry writes");
    store.prepare().expect("making the store");
    std::fs::write(store.layers_dir().join("layers.json"), parts[0]).expect("layers.json");
    if let Some(images) = parts.get(1) {
        std::fs::write(store.images_dir().join("images.json"), images).expect("images.json");
    }
    // A layer's files, so that removing an incomplete layer has something to remove.
    std::fs::create_dir_all(store.driver_home().join("0123")).expect("a layer directory");

    let id_of = |v: &Value| v.get("id").and_then(Value::as_str).map(str::to_string);
    if let Ok(mut layers) = Layers::load(&store) {
        let ids: Vec<String> = layers.list.iter().filter_map(id_of).take(16).collect();
        for id in &ids {
            if let Some(info) = layers.get(id) {
                assert_eq!(&info.id, id, "get found another layer");
            }
        }
        for v in layers.list.iter().take(16) {
            if let Some(d) = v
                .get("diff-digest")
                .and_then(Value::as_str)
                .and_then(|d| Digest::parse(d).ok())
            {
                let complete = v
                    .get("flags")
                    .and_then(|f| f.get("incomplete"))
                    .and_then(Value::as_bool)
                    != Some(true);
                if complete && id_of(v).is_some() {
                    assert!(!layers.by_digest(&d).is_empty(), "by_digest missed {d}");
                }
            }
        }
        let before = layers.list.clone();
        let mut completed = Layers::load(&store).expect("loaded once");
        for id in &ids {
            completed.complete(id);
            assert!(
                completed.get(id).is_some(),
                "layer {id:?} is still incomplete"
            );
        }
        let _ = layers.remove_incomplete(&store);
        assert!(
            store.driver_home().is_dir(),
            "the driver's directory was removed"
        );
        assert!(
            store.layers_dir().is_dir(),
            "the layer records' directory was removed"
        );
        let lock = store.lock_layers(true).expect("the layers lock");
        layers.save(&lock).expect("saving layers.json");
        let again = Layers::load(&store).expect("a saved layers.json loads");
        assert!(
            same_json(
                &Value::Array(again.list),
                &Value::Array(layers.list.clone())
            ),
            "layers.json changed on its way through a save"
        );
        assert!(layers.list.len() <= before.len());
    }

    if let Ok(mut images) = Images::load(&store) {
        let ids: Vec<String> = images.list.iter().filter_map(id_of).take(8).collect();
        for id in &ids {
            assert_eq!(images.get(id).and_then(id_of).as_ref(), Some(id));
        }
        for v in images.list.clone().iter().take(8) {
            if let Some(d) = v
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| Digest::parse(d).ok())
            {
                assert!(!images.by_digest(&d).is_empty(), "by_digest missed {d}");
            }
        }
        for id in &ids {
            let name = "registry.ferry.test/fuzz:1";
            images.add_name(id, name);
            // add_name keeps a `names` that is not a list as it is (so the name is not given).
            let takes_names = images
                .get(id)
                .is_some_and(|v| v.is_object() && v.get("names").is_none_or(Value::is_array));
            match images.by_name(name) {
                Some(holder) => assert_eq!(
                    id_of(holder).as_ref(),
                    Some(id),
                    "the name went to another image"
                ),
                None => assert!(!takes_names, "a name just given is not found"),
            }
        }
        let lock = store.lock_images(true).expect("the images lock");
        images.save(&lock).expect("saving images.json");
        let again = Images::load(&store).expect("a saved images.json loads");
        assert!(
            same_json(
                &Value::Array(again.list),
                &Value::Array(images.list.clone())
            ),
            "images.json changed on its way through a save"
        );
    }

    let mut around: Vec<String> = std::fs::read_dir(base.path())
        .expect("the base")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    around.sort();
    assert_eq!(
        around,
        ["graph", "outside", "run"],
        "something changed outside the store"
    );
    assert_eq!(
        std::fs::read(base.path().join("outside/canary")).expect("the canary"),
        b"canary"
    );
}
