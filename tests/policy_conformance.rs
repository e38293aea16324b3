//! A conformance table: policies × signature sets, each case judged by ferry (`ferry policy
//! check`) and by real skopeo (`skopeo copy --policy`) in the same test, and both compared with
//! the expected answer written in the table.

mod support;

use std::path::{Path, PathBuf};

use support::gpg::{Gpg, Key, payload};
use support::*;

const IDENTITY: &str = "registry.ferry.test/app:1";

struct World {
    t: tempfile::TempDir,
    trusted: Key,
    other: Key,
    gpg: Gpg,
}

#[derive(Clone, Copy, Debug)]
enum Sig {
    Trusted,
    Other,
    TrustedForOtherIdentity,
    TrustedForOtherDigest,
}

fn make_image(w: &World, name: &str, sigs: &[Sig]) -> PathBuf {
    let dir = w.t.path().join(name);
    dir_image(&dir, 77, 500);
    let manifest = dir.join("manifest.json");
    for (i, s) in sigs.iter().enumerate() {
        let out = dir.join(format!("signature-{}", i + 1));
        match s {
            Sig::Trusted => w.gpg.skopeo_sign(&manifest, IDENTITY, &w.trusted.fpr, &out),
            Sig::Other => w.gpg.skopeo_sign(&manifest, IDENTITY, &w.other.fpr, &out),
            Sig::TrustedForOtherIdentity => w.gpg.skopeo_sign(
                &manifest,
                "registry.ferry.test/else:1",
                &w.trusted.fpr,
                &out,
            ),
            Sig::TrustedForOtherDigest => {
                let d = format!("sha256:{}", "1".repeat(64));
                w.gpg
                    .sign_payload(&payload(&d, IDENTITY), &w.trusted.fpr, None, &out)
            }
        }
    }
    dir
}

fn write_policy(w: &World, name: &str, text: &str) -> PathBuf {
    let p = w.t.path().join(format!("{name}.json"));
    std::fs::write(&p, text).unwrap();
    p
}

fn signed_by(key_source: &str, identity: &str) -> String {
    format!(r#"{{"type":"signedBy","keyType":"GPGKeys",{key_source},"signedIdentity":{identity}}}"#)
}

fn judge(w: &World, policy: &Path, dir: &Path) -> (bool, bool) {
    let f = ferry(&[
        "policy",
        "check",
        "--policy",
        policy.to_str().unwrap(),
        &format!("dir:{}", dir.display()),
    ]);
    assert!(
        f.code == 0 || f.code == 1,
        "ferry failed oddly: {} {}",
        f.stdout,
        f.stderr
    );
    let dst = w.t.path().join(format!("skopeo-out-{}", rand_suffix()));
    let s = skopeo(&[
        "copy",
        "--policy",
        policy.to_str().unwrap(),
        &format!("dir:{}", dir.display()),
        &format!("dir:{}", dst.display()),
    ]);
    (f.code == 0, s.code == 0)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn ferry_and_skopeo_agree_on_every_case() {
    let gpg = Gpg::new();
    let trusted = gpg.gen_key("Trusted Signer");
    let other = gpg.gen_key("Other Signer");
    let w = World {
        t: tempfile::tempdir().unwrap(),
        trusted,
        other,
        gpg,
    };
    let key_path = format!(r#""keyPath":"{}""#, w.trusted.public.display());
    let key_paths = format!(
        r#""keyPaths":["{}","{}"]"#,
        w.other.public.display(),
        w.trusted.public.display()
    );
    let key_data = {
        use base64::Engine;
        format!(
            r#""keyData":"{}""#,
            base64::engine::general_purpose::STANDARD
                .encode(std::fs::read(&w.trusted.public).unwrap())
        )
    };
    let exact = format!(r#"{{"type":"exactReference","dockerReference":"{IDENTITY}"}}"#);
    let exact_repo =
        r#"{"type":"exactRepository","dockerRepository":"registry.ferry.test/app"}"#.to_string();
    let default_ident = r#"{"type":"matchRepoDigestOrExact"}"#.to_string();

    let images = [
        ("none", vec![]),
        ("trusted", vec![Sig::Trusted]),
        ("other", vec![Sig::Other]),
        ("other-then-trusted", vec![Sig::Other, Sig::Trusted]),
        ("trusted-then-other", vec![Sig::Trusted, Sig::Other]),
        ("wrong-identity", vec![Sig::TrustedForOtherIdentity]),
        ("wrong-digest", vec![Sig::TrustedForOtherDigest]),
    ];
    let dirs: Vec<(&str, PathBuf)> = images
        .iter()
        .map(|(n, s)| (*n, make_image(&w, n, s)))
        .collect();
    let parent = dirs[0].1.parent().unwrap().display().to_string();

    let dir_scope = |req: &str| {
        format!(r#"{{"default":[{{"type":"reject"}}],"transports":{{"dir":{{"":[{req}]}}}}}}"#)
    };
    let policies: Vec<(&str, String)> = vec![
        (
            "accept",
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#.into(),
        ),
        ("reject", r#"{"default":[{"type":"reject"}]}"#.into()),
        ("keyPath-exact", dir_scope(&signed_by(&key_path, &exact))),
        ("keyPaths-exact", dir_scope(&signed_by(&key_paths, &exact))),
        (
            "keyData-exactRepository",
            dir_scope(&signed_by(&key_data, &exact_repo)),
        ),
        (
            "default-identity-on-dir",
            dir_scope(&signed_by(&key_path, &default_ident)),
        ),
        (
            "path-scope-beats-transport-default",
            format!(
                r#"{{"default":[{{"type":"reject"}}],"transports":{{"dir":{{"":[{{"type":"reject"}}],"{parent}":[{}]}}}}}}"#,
                signed_by(&key_path, &exact)
            ),
        ),
        (
            "other-transport-falls-to-default",
            format!(
                r#"{{"default":[{}],"transports":{{"docker":{{"":[{{"type":"reject"}}]}}}}}}"#,
                signed_by(&key_path, &exact)
            ),
        ),
        (
            "two-requirements",
            dir_scope(&format!(
                "{},{{\"type\":\"insecureAcceptAnything\"}}",
                signed_by(&key_path, &exact)
            )),
        ),
        (
            "signed-base-layer",
            dir_scope(
                r#"{"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchRepository"}}"#,
            ),
        ),
    ];
    // Expected answers: (policy, image) -> accepted.
    let signed_ok =
        |img: &str| matches!(img, "trusted" | "other-then-trusted" | "trusted-then-other");
    let expected = |policy: &str, img: &str| -> bool {
        match policy {
            "accept" => true,
            "reject" | "default-identity-on-dir" | "signed-base-layer" => false,
            // keyPaths trusts both keys.
            "keyPaths-exact" => signed_ok(img) || img == "other",
            _ => signed_ok(img),
        }
    };
    let mut table = Vec::new();
    for (pname, text) in &policies {
        let p = write_policy(&w, pname, text);
        for (iname, dir) in &dirs {
            let (ours, theirs) = judge(&w, &p, dir);
            let want = expected(pname, iname);
            table.push(format!(
                "{pname:40} {iname:20} expected={want} ferry={ours} skopeo={theirs}"
            ));
            assert_eq!(
                ours,
                theirs,
                "ferry and skopeo disagree on {pname} × {iname}:\n{}",
                table.join("\n")
            );
            assert_eq!(
                ours,
                want,
                "unexpected answer for {pname} × {iname}:\n{}",
                table.join("\n")
            );
        }
    }
    assert_eq!(table.len(), policies.len() * dirs.len());
}
