//! Every parser that reads bytes from outside — references, digests, manifests, policy files,
//! registries.d YAML, signature blobs and payloads — gets garbage and mutated valid input and
//! must answer with an error, never a panic. A deterministic mutation loop in the spirit of a
//! fuzz target (cargo fuzz needs a nightly toolchain this project does not assume).

mod support;

use ferry::Digest;
use ferry::Policy;
use ferry::internal::config::registries_d::RegistriesConfig;
use ferry::internal::signature::simple;
use ferry::manifest;

use ferry::{DockerReference, ImageReference};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flips, inserts, deletes and duplicates bytes of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, b"{}[]\":,\\@/.-_0aZ\x00\xff<"[rng.below(19)]);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let j = (i + rng.below(16)).min(v.len());
                let chunk = v[i..j].to_vec();
                v.splice(i..i, chunk);
            }
            _ => {
                let n = rng.below(8);
                v.truncate(v.len().saturating_sub(n));
            }
        }
    }
    v
}

const ITERATIONS: usize = 4000;

fn each(seeds: &[&[u8]], mut f: impl FnMut(&[u8])) {
    let mut rng = Rng(0x5eed_f0e2_1234_5678);
    for s in seeds {
        f(s);
    }
    for i in 0..ITERATIONS {
        let seed = seeds[i % seeds.len()];
        let input = if i % 10 == 0 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            mutate(&mut rng, seed)
        };
        f(&input);
    }
}

#[test]
fn references_and_digests() {
    let seeds: &[&[u8]] = &[
        b"docker://registry.example.com:5000/ns/app:v1",
        b"docker://busybox@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        b"oci:/tmp/layout:name",
        b"dir:/tmp/d",
        b"store:localhost/a_b/c-d:1.0",
        b"sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    ];
    let mut ok = 0;
    each(seeds, |b| {
        let s = String::from_utf8_lossy(b);
        ok += usize::from(ImageReference::parse(&s).is_ok());
        let _ = DockerReference::parse(&s).map(|r| (r.scopes(), r.familiar(), r.to_string()));
        let _ = Digest::parse(&s);
    });
    assert!(
        ok > 0,
        "some mutations stay valid, so the loop reaches deep into the parser"
    );
}

#[test]
fn manifests() {
    let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[{"mediaType":"x","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":1,"urls":["u"]}]}"#;
    let list = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":2,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
    let s1 = br#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
    each(&[image, list, s1], |b| {
        if let Ok(manifest::Manifest::List(_, l)) = manifest::parse(b, None) {
            let _ = manifest::PlatformSpec::current().choose(&l);
        }
        let _ = manifest::detect(
            b,
            Some("application/vnd.docker.distribution.manifest.v2+json"),
        );
    });
}

#[test]
fn policies_and_registries_d() {
    let policy = br#"{"default":[{"type":"reject"}],"transports":{"docker":{"example.com/a":[{"type":"signedBy","keyType":"GPGKeys","keyData":"bm90IGEga2V5","signedIdentity":{"type":"remapIdentity","prefix":"example.com","signedPrefix":"mirror.example.org/x"}}],"*.example.org":[{"type":"sigstoreSigned","keyData":"eA==","signedIdentity":{"type":"matchRepository"}}]},"dir":{"/srv":[{"type":"insecureAcceptAnything"}]}}}"#;
    each(&[policy], |b| {
        if let Ok(p) = Policy::from_bytes(b, "fuzz") {
            let img = ImageReference::parse("docker://example.com/a:1").unwrap();
            let _ = ferry::internal::policy::evaluate(
                &p,
                &img,
                b"{}",
                &[],
                ferry::BundleIdentity::Named,
            );
        }
    });
    let yaml = b"default-docker:\n  lookaside: https://a.example/s\ndocker:\n  example.com/ns:\n    lookaside-staging: file:///tmp/x\n    use-sigstore-attachments: true\n";
    each(&[yaml], |b| {
        if let Ok(c) = RegistriesConfig::from_yaml(
            &String::from_utf8_lossy(b),
            std::path::Path::new("/fuzz.yaml"),
        ) {
            let r = DockerReference::parse("example.com/ns/app:1").unwrap();
            let _ = (
                c.read_base(&r),
                c.write_base(&r),
                c.use_sigstore_attachments(&r),
            );
        }
    });
}

#[test]
fn signature_blobs_and_payloads() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo");
    let sig = std::fs::read(demo.join("hello-dir/signature-1")).unwrap();
    let keys = simple::Keyring::from_bytes(&std::fs::read(demo.join("keys/release.asc")).unwrap())
        .unwrap();
    assert!(simple::verify(&sig, &keys).is_ok(), "the seed verifies");
    let payload = br#"{"critical":{"identity":{"docker-reference":"a/b:c"},"image":{"docker-manifest-digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},"type":"atomic container signature"},"optional":{"creator":"x","timestamp":1}}"#;
    let tagged = b"\x00sigstore-json\n{\"mimeType\":\"x\"}";
    let original = simple::verify(&sig, &keys).unwrap().payload;
    let mut forged = Vec::new();
    each(&[&sig, payload, tagged], |b| {
        let _ = ferry::signatures::sniff(b);
        let _ = simple::parse_payload(b);
        let _ = simple::inspect(b);
        // OpenPGP leaves some bytes outside the signature (the literal packet's file name and
        // date, unhashed subpackets), so a mutant may still verify; it must then claim exactly
        // what the original signed.
        if let Ok(v) = simple::verify(b, &keys)
            && v.payload != original
        {
            forged.push(b.to_vec());
        }
        let _ = simple::Keyring::from_bytes(b);
    });
    assert!(
        forged.is_empty(),
        "{} mutated signatures verified with a different payload",
        forged.len()
    );
}
