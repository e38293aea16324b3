//! The host's registry configuration (issue 14), against the real distribution registry on
//! 127.0.0.1: certs.d and --cert-dir for a registry with its own CA, client certificates the
//! server requires, and registries.conf (mirrors tried first and the primary as fallback,
//! blocked registries, a mirror serving other content for a digest, signatures judged against
//! the primary identity, insecure registries, short names).

mod support;

use std::path::{Path, PathBuf};

use support::gpg::Gpg;
use support::http::{HttpServer, Reply};
use support::pki;
use support::registry::Registry;
use support::*;

/// Runs ferry with HOME set (so ~/.config/containers/... is the test's), nothing else inherited
/// from the machine's user configuration.
fn ferry_home(home: &Path, args: &[&str]) -> Run {
    ferry_in(
        args,
        &[
            ("HOME", home.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", home.to_str().unwrap()),
        ],
    )
}

fn push(policy: &Path, layout: &Path, tag: &str, dst: &str, extra: &[&str]) {
    let mut a = vec![
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
    ];
    a.extend_from_slice(extra);
    let src = format!("oci:{}:{tag}", layout.display());
    a.extend([src.as_str(), dst]);
    ferry(&a).ok();
}

#[test]
fn a_private_ca_is_refused_with_where_to_put_it_and_trusted_from_certs_d_or_cert_dir() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let ca = pki::ca(t.path(), "private-ca");
    let server = pki::leaf(t.path(), &ca, "server", "IP:127.0.0.1", "serverAuth");
    let reg = Registry::start_tls_with(&server, None);
    let host = reg.host();
    let certs = t.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(&ca.cert, certs.join("ca.crt")).unwrap();
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 141, 1, 2000);

    // Pushing with --dest-cert-dir: verified TLS, no --dest-tls-verify=false.
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-cert-dir",
        certs.to_str().unwrap(),
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{host}/ns/app:v1"),
    ])
    .ok();

    let home = t.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let image_ref = format!("docker://{host}/ns/app:v1");
    // Without the CA: refused, and the hint says where the CA goes.
    let r = ferry_home(&home, &["inspect", "--retry-times", "0", &image_ref]).code(3);
    assert!(
        r.stderr.contains("unknown authority")
            && r.stderr
                .contains(&format!("/etc/containers/certs.d/{host}/ca.crt"))
            && r.stderr.contains("--cert-dir"),
        "{}",
        r.stderr
    );
    let r = ferry_home(
        &home,
        &[
            "copy",
            "--retry-times",
            "0",
            "--insecure-policy",
            &image_ref,
            &format!("dir:{}", t.path().join("x").display()),
        ],
    )
    .code(3);
    assert!(r.stderr.contains("--src-cert-dir"), "{}", r.stderr);

    // --cert-dir, and its --src- spelling.
    for flag in ["--cert-dir", "--src-cert-dir"] {
        let r = ferry_home(
            &home,
            &["inspect", flag, certs.to_str().unwrap(), &image_ref],
        )
        .ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["Digest"], image.digest.as_str());
    }

    // The user's certs.d: ~/.config/containers/certs.d/HOST:PORT/ca.crt.
    let user_certs = home.join(".config/containers/certs.d").join(&host);
    std::fs::create_dir_all(&user_certs).unwrap();
    std::fs::copy(&ca.cert, user_certs.join("ca.crt")).unwrap();
    ferry_home(&home, &["inspect", &image_ref]).ok();
    let out = t.path().join("out");
    ferry_home(
        &home,
        &[
            "copy",
            "-q",
            "--insecure-policy",
            &image_ref,
            &format!("dir:{}", out.display()),
        ],
    )
    .ok();
    assert_eq!(
        std::fs::read(out.join("manifest.json")).unwrap(),
        image.manifest
    );

    // skopeo reads the same directory the same way.
    let s = skopeo(&["inspect", "--cert-dir", certs.to_str().unwrap(), &image_ref]).ok();
    assert!(s.stdout.contains(&image.digest), "{}", s.stdout);

    // `store check --repair` reaches the registry with --cert-dir as every other single-image
    // command does (it once passed only --tls-verify and --creds on).
    let bare_home = t.path().join("bare-home");
    std::fs::create_dir(&bare_home).unwrap();
    let store = t.path().join("store");
    let store_arg = store.to_str().unwrap();
    ferry_home(
        &bare_home,
        &[
            "copy",
            "-q",
            "--insecure-policy",
            "--store",
            store_arg,
            "--src-cert-dir",
            certs.to_str().unwrap(),
            &image_ref,
            "store:example.com/ca/app:v1",
        ],
    )
    .ok();
    let layer = store
        .join("blobs/sha256")
        .join(sha256(&image.layers[0]).trim_start_matches("sha256:"));
    std::fs::write(&layer, b"damaged").unwrap();
    let repair = |extra: &[&str]| {
        let mut a = vec!["store", "check", "--store", store_arg, "--retry-times", "0"];
        a.extend_from_slice(extra);
        a.extend(["--repair", image_ref.as_str()]);
        ferry_home(&bare_home, &a)
    };
    let r = repair(&[]).code(3);
    assert!(r.stderr.contains("unknown authority"), "{}", r.stderr);
    let r = repair(&["--cert-dir", certs.to_str().unwrap()]).ok();
    assert!(
        r.stdout.contains(&format!("repaired {}", layer.display())),
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read(&layer).unwrap(), image.layers[0]);

    // sync's YAML: a registry's `cert-dir`, as skopeo sync reads it (without it: refused).
    let yaml = t.path().join("sync.yaml");
    let sync = |yaml_text: String, to: &Path| {
        std::fs::write(&yaml, yaml_text).unwrap();
        ferry_home(
            &bare_home,
            &[
                "sync",
                "--insecure-policy",
                "--retry-times",
                "0",
                "--src",
                "yaml",
                "--dest",
                "dir",
                yaml.to_str().unwrap(),
                to.to_str().unwrap(),
            ],
        )
    };
    let entry = format!("{host}:\n  images:\n    ns/app: [v1]\n");
    let r = sync(entry.clone(), &t.path().join("mirror-refused")).code(3);
    assert!(r.stderr.contains("unknown authority"), "{}", r.stderr);
    let mirror = t.path().join("mirror");
    sync(format!("{entry}  cert-dir: {}\n", certs.display()), &mirror).ok();
    assert_eq!(
        std::fs::read(mirror.join("app:v1/manifest.json")).unwrap(),
        image.manifest
    );
}

#[test]
fn client_certificates_required_by_the_server() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let ca = pki::ca(t.path(), "ca");
    let clients = pki::ca(t.path(), "client-ca");
    let server = pki::leaf(t.path(), &ca, "server", "IP:127.0.0.1", "serverAuth");
    let client = pki::leaf(t.path(), &clients, "client", "DNS:ferry.test", "clientAuth");
    let reg = Registry::start_tls_with(&server, Some(&clients.cert));
    let host = reg.host();
    let certs = t.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(&ca.cert, certs.join("ca.crt")).unwrap();
    let image_ref = format!("docker://{host}/ns/app:v1");

    // The CA alone: the server refuses the handshake.
    let r = ferry(&[
        "inspect",
        "--retry-times",
        "0",
        "--cert-dir",
        certs.to_str().unwrap(),
        &image_ref,
    ])
    .code(3);
    assert!(
        r.stderr
            .contains(&format!("{host} refused the TLS handshake"))
            && r.stderr.contains("client certificate")
            && r.stderr.contains("NAME.cert and NAME.key"),
        "{}",
        r.stderr
    );

    // A .cert without its .key: containers/image's message.
    std::fs::copy(&client.cert, certs.join("client.cert")).unwrap();
    let r = ferry(&["inspect", "--cert-dir", certs.to_str().unwrap(), &image_ref]).code(3);
    assert!(
        r.stderr
            .contains("missing key client.key for client certificate client.cert"),
        "{}",
        r.stderr
    );

    // With the pair: pushes and pulls work.
    std::fs::copy(&client.key, certs.join("client.key")).unwrap();
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 142, 1, 1500);
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-cert-dir",
        certs.to_str().unwrap(),
        &format!("oci:{}:v1", src.display()),
        &image_ref,
    ])
    .ok();
    let r = ferry(&["inspect", "--cert-dir", certs.to_str().unwrap(), &image_ref]).ok();
    assert!(r.stdout.contains(&image.digest), "{}", r.stdout);
    // skopeo with the same directory agrees.
    let s = skopeo(&["inspect", "--cert-dir", certs.to_str().unwrap(), &image_ref]).ok();
    assert!(s.stdout.contains(&image.digest), "{}", s.stdout);
}

fn write_conf(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("registries.conf");
    std::fs::write(&p, text).unwrap();
    p
}

fn report_of(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn mirrors_are_tried_first_and_a_mirror_that_is_down_falls_back_to_the_primary() {
    let primary = Registry::start();
    let mirror = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 143, 2, 3000);
    push(
        &policy,
        &src,
        "v1",
        &format!("docker://{}/ns/app:v1", primary.host()),
        &[],
    );

    // The mirror is down: the primary serves, and the report says so. `insecure` comes from
    // registries.conf: no --src-tls-verify=false is given.
    let conf = write_conf(
        t.path(),
        &format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"127.0.0.1:1\"\ninsecure = true\n",
            primary.host()
        ),
    );
    let out = t.path().join("out1");
    let report = t.path().join("r1.json");
    ferry(&[
        "copy",
        "-q",
        "--retry-times",
        "0",
        "--policy",
        policy.to_str().unwrap(),
        "--registries-conf",
        conf.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        &format!("docker://{}/ns/app:v1", primary.host()),
        &format!("dir:{}", out.display()),
    ])
    .ok();
    assert_eq!(
        std::fs::read(out.join("manifest.json")).unwrap(),
        image.manifest
    );
    let r = report_of(&report);
    assert_eq!(
        r["pulled_from"],
        format!("docker://{}/ns/app:v1", primary.host())
    );
    // skopeo reads the same file the same way, and ferry takes the same command line (the
    // file named before the command, as skopeo's root flag).
    let line = [
        "--registries-conf",
        conf.to_str().unwrap(),
        "inspect",
        "--retry-times",
        "0",
        &format!("docker://{}/ns/app:v1", primary.host()),
    ];
    for run in [skopeo(&line).ok(), ferry(&line).ok()] {
        assert!(run.stdout.contains(&image.digest), "{}", run.stdout);
    }

    // A mirror that is up, under another namespace (location rewrites the prefix): it serves,
    // the primary is not asked for a blob, and each copied blob names the mirror.
    push(
        &policy,
        &src,
        "v1",
        &format!("docker://{}/cache/ns/app:v1", mirror.host()),
        &[],
    );
    let conf = write_conf(
        t.path(),
        &format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"{}/cache\"\ninsecure = true\n",
            primary.host(),
            mirror.host()
        ),
    );
    let before = primary.log().matches("/blobs/").count();
    let out = t.path().join("out2");
    let report = t.path().join("r2.json");
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--registries-conf",
        conf.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        &format!("docker://{}/ns/app:v1", primary.host()),
        &format!("dir:{}", out.display()),
    ])
    .ok();
    let r = report_of(&report);
    let from = format!("docker://{}/cache/ns/app:v1 (mirror)", mirror.host());
    assert_eq!(r["pulled_from"], from.as_str());
    let blobs = r["manifests"][0]["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 3);
    assert!(blobs.iter().all(|b| b["from"] == from.as_str()), "{r}");
    assert_eq!(primary.log().matches("/blobs/").count(), before);
    assert!(mirror.log().contains("GET /v2/cache/ns/app/blobs/"));
    // The source is still the primary reference.
    assert_eq!(
        r["source"],
        format!("docker://{}/ns/app:v1", primary.host())
    );
}

#[test]
fn a_blocked_registry_is_refused_for_pulls_and_pushes() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 144, 1, 1000);
    push(
        &policy,
        &src,
        "v1",
        &format!("docker://{}/ns/app:v1", reg.host()),
        &[],
    );
    let conf = write_conf(
        t.path(),
        &format!(
            "[[registry]]\nprefix = \"{}/ns\"\nlocation = \"{}/ns\"\nblocked = true\ninsecure = true\n",
            reg.host(),
            reg.host()
        ),
    );
    let c = conf.to_str().unwrap();
    let r = ferry(&[
        "copy",
        "--insecure-policy",
        "--registries-conf",
        c,
        &format!("docker://{}/ns/app:v1", reg.host()),
        &format!("dir:{}", t.path().join("out").display()),
    ])
    .code(3);
    assert!(
        r.stderr.contains("blocked")
            && r.stderr.contains(&format!("{}/ns", reg.host()))
            && r.stderr.contains(c),
        "{}",
        r.stderr
    );
    let r = ferry(&[
        "copy",
        "--insecure-policy",
        "--registries-conf",
        c,
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/ns/other:v1", reg.host()),
    ])
    .code(3);
    assert!(r.stderr.contains("blocked"), "{}", r.stderr);
    let r = ferry(&[
        "inspect",
        "--registries-conf",
        c,
        &format!("docker://{}/ns/app:v1", reg.host()),
    ])
    .code(3);
    assert!(r.stderr.contains("blocked"), "{}", r.stderr);
    // Outside the blocked prefix: fine.
    ferry(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--registries-conf",
        c,
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/open/app:v1", reg.host()),
    ])
    .ok();
    // skopeo refuses it too, and ferry refuses the same command line.
    let line = [
        "--registries-conf",
        c,
        "inspect",
        &format!("docker://{}/ns/app:v1", reg.host()),
    ];
    for run in [skopeo(&line), ferry(&line)] {
        assert_ne!(run.code, 0);
        assert!(run.stderr.contains("blocked"), "{}", run.stderr);
    }
    // A registries.conf error names the file and the line.
    let bad = write_conf(
        t.path(),
        "[[registry]]\nlocation = \"a.io\"\n\n[[registry.mirror]]\nlocation = \"https://m.io\"\n",
    );
    let r = ferry(&[
        "inspect",
        "--registries-conf",
        bad.to_str().unwrap(),
        &format!("docker://{}/ns/app:v1", reg.host()),
    ])
    .code(3);
    assert!(
        r.stderr
            .contains(&format!("{}:5: invalid location", bad.display())),
        "{}",
        r.stderr
    );
}

#[test]
fn a_mirror_serving_another_manifest_for_a_digest_is_refused() {
    let primary = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 145, 1, 1000);
    let other = build_image("amd64", vec![pseudo_random(146, 500)]);
    push(
        &policy,
        &src,
        "v1",
        &format!("docker://{}/ns/app:v1", primary.host()),
        &[],
    );
    let mirror = HttpServer::with_routes([
        ("/v2/".to_string(), Reply::ok("application/json", "{}")),
        (
            format!("/v2/ns/app/manifests/{}", image.digest),
            Reply::ok(
                "application/vnd.oci.image.manifest.v1+json",
                other.manifest.clone(),
            ),
        ),
    ]);
    let conf = write_conf(
        t.path(),
        &format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\npull-from-mirror = \"digest-only\"\n",
            primary.host(),
            mirror.host()
        ),
    );
    let out = t.path().join("out");
    let r = ferry(&[
        "copy",
        "--retry-times",
        "0",
        "--policy",
        policy.to_str().unwrap(),
        "--registries-conf",
        conf.to_str().unwrap(),
        &format!("docker://{}/ns/app@{}", primary.host(), image.digest),
        &format!("dir:{}", out.display()),
    ])
    .code(3);
    assert!(
        r.stderr.contains("does not match its digest")
            && r.stderr.contains(&mirror.host())
            && r.stderr.contains("mirror"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    // The primary was never asked: a mismatch is not a missing image.
    assert!(
        !primary
            .log()
            .contains(&format!("/manifests/{}", image.digest)),
        "{}",
        primary.log()
    );
    // By tag, the digest-only mirror is skipped and the primary serves.
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--registries-conf",
        conf.to_str().unwrap(),
        &format!("docker://{}/ns/app:v1", primary.host()),
        &format!("dir:{}", out.display()),
    ])
    .ok();
    assert_eq!(mirror.count("GET", "/manifests/v1"), 0);
}

#[test]
fn signatures_from_a_mirror_are_judged_against_the_primary_identity() {
    let mirror = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy_any = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 147, 1, 1000);
    push(
        &policy_any,
        &src,
        "v1",
        &format!("docker://{}/ns/app:v1", mirror.host()),
        &[],
    );
    // The primary does not even run: every byte comes from the mirror.
    let primary = "127.0.0.1:1";
    let gpg = Gpg::new();
    let key = gpg.gen_key("Mirror Test <mirror@ferry.test>");
    let manifest = t.path().join("manifest.json");
    std::fs::write(&manifest, &image.manifest).unwrap();
    // The lookaside holds signatures by REPO-PATH@DIGEST, the same at the mirror and primary.
    let lookaside = t.path().join("lookaside");
    let sigdir = lookaside.join(format!(
        "ns/app@sha256={}",
        &image.digest["sha256:".len()..]
    ));
    std::fs::create_dir_all(&sigdir).unwrap();
    let sign = |identity: &str, out: &Path| {
        ferry(&[
            "standalone-sign",
            manifest.to_str().unwrap(),
            identity,
            &key.fpr,
            "--sign-key",
            key.secret.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .ok();
    };
    let registries_d = t.path().join("registries.d");
    std::fs::create_dir(&registries_d).unwrap();
    std::fs::write(
        registries_d.join("l.yaml"),
        format!(
            "default-docker:\n  lookaside: file://{}\n",
            lookaside.display()
        ),
    )
    .unwrap();
    let policy = t.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key.public}]})
            .to_string(),
    )
    .unwrap();
    let conf = write_conf(
        t.path(),
        &format!(
            "[[registry]]\nlocation = \"{primary}\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\n",
            mirror.host()
        ),
    );
    let copy = |out: &Path| {
        ferry(&[
            "copy",
            "-q",
            "--retry-times",
            "0",
            "--policy",
            policy.to_str().unwrap(),
            "--registries.d",
            registries_d.to_str().unwrap(),
            "--registries-conf",
            conf.to_str().unwrap(),
            &format!("docker://{primary}/ns/app:v1"),
            &format!("dir:{}", out.display()),
        ])
    };
    // Signed for the mirror's name only: the image is the primary's, so it is rejected.
    sign(
        &format!("{}/ns/app:v1", mirror.host()),
        &sigdir.join("signature-1"),
    );
    let r = copy(&t.path().join("rejected")).code(1);
    assert!(r.stderr.contains(primary), "{}", r.stderr);
    assert!(!t.path().join("rejected").exists());
    // Signed for the primary's name: accepted, though read from the mirror.
    sign(&format!("{primary}/ns/app:v1"), &sigdir.join("signature-1"));
    let out = t.path().join("accepted");
    copy(&out).ok();
    assert_eq!(
        std::fs::read(out.join("manifest.json")).unwrap(),
        image.manifest
    );
}

#[test]
fn short_names_resolve_through_aliases_and_search_registries_without_prompting() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 148, 1, 1000);
    push(
        &policy,
        &src,
        "v1",
        &format!("docker://{}/team/app:v1", reg.host()),
        &[],
    );
    let host = reg.host();
    // Two search registries; the first does not have the image, the second does.
    let conf = write_conf(
        t.path(),
        &format!(
            "unqualified-search-registries = [\"127.0.0.1:1\", \"{host}\"]\nshort-name-mode = \"permissive\"\n[[registry]]\nlocation = \"{host}\"\ninsecure = true\n[[registry]]\nlocation = \"127.0.0.1:1\"\ninsecure = true\n[aliases]\n\"tool\" = \"{host}/team/app\"\n"
        ),
    );
    let c = conf.to_str().unwrap();
    let out = t.path().join("out");
    let r = ferry(&[
        "copy",
        "-q",
        "--retry-times",
        "0",
        "--policy",
        policy.to_str().unwrap(),
        "--registries-conf",
        c,
        "team/app:v1",
        &format!("dir:{}", out.display()),
    ])
    .ok();
    assert!(
        r.stderr.is_empty() || !r.stderr.contains("ERROR"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(out.join("manifest.json")).unwrap(),
        image.manifest
    );
    // An alias.
    let r = ferry(&["inspect", "--registries-conf", c, "tool:v1"]).ok();
    assert!(r.stdout.contains(&image.digest), "{}", r.stdout);
    // policy check resolves the same way, and judges the resolved reference.
    let r = ferry(&[
        "policy",
        "check",
        "--retry-times",
        "0",
        "--insecure-policy",
        "--registries-conf",
        c,
        "team/app:v1",
    ])
    .ok();
    assert!(
        r.stdout.contains(&format!("docker://{host}/team/app:v1")),
        "{}",
        r.stdout
    );
    // Enforcing with two candidates and no alias: refused, never a prompt.
    let enforcing = write_conf(
        t.path(),
        &format!(
            "unqualified-search-registries = [\"127.0.0.1:1\", \"{host}\"]\nshort-name-mode = \"enforcing\"\n"
        ),
    );
    let r = ferry(&[
        "inspect",
        "--registries-conf",
        enforcing.to_str().unwrap(),
        "team/app:v1",
    ])
    .code(3);
    assert!(
        r.stderr.contains("ambiguous") && r.stderr.contains("never prompts"),
        "{}",
        r.stderr
    );
}
