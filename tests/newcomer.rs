//! What a newcomer trips on (issue 16): every network and TLS failure said in words with only
//! the advice that applies; a missing tag or repository named as such; no log noise or terminal
//! colours in a pipe.

mod support;

use support::pki;
use support::registry::Registry;
use support::*;

fn copy_from(policy: &std::path::Path, extra: &[&str], src: &str, dst: &std::path::Path) -> Run {
    let mut a = vec![
        "copy",
        "-q",
        "--retry-times",
        "0",
        "--policy",
        policy.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    let d = format!("dir:{}", dst.display());
    a.extend([src, d.as_str()]);
    ferry(&a)
}

/// No tracing/rustls log lines and no terminal escapes in what a pipe gets.
fn quiet_stderr(r: &Run) {
    assert!(
        !r.stderr.contains("ERROR"),
        "no raw log lines: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains('\u{1b}'),
        "no colours in a pipe: {:?}",
        r.stderr
    );
}

#[test]
fn each_tls_failure_is_said_in_words_with_the_advice_that_applies() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let out = t.path().join("out");

    // Plain http where https was expected.
    let http = Registry::start();
    let r = copy_from(
        &policy,
        &[],
        &format!("docker://{}/a/b:1", http.host()),
        &out,
    )
    .code(3);
    assert!(
        r.stderr.contains("answered in plain http")
            && r.stderr.contains("--src-tls-verify=false")
            && !r.stderr.contains("--dest-tls-verify"),
        "the hint names the source, which failed, and only it: {}",
        r.stderr
    );
    quiet_stderr(&r);
    // The same registry as the destination: the hint names the destination's flag only.
    let image = t.path().join("image");
    make_oci_image(&image, "v1", 73, 1, 1000);
    let r = ferry(&[
        "copy",
        "-q",
        "--retry-times",
        "0",
        "--policy",
        policy.to_str().unwrap(),
        &format!("oci:{}:v1", image.display()),
        &format!("docker://{}/a/b:1", http.host()),
    ])
    .code(3);
    assert!(
        r.stderr.contains("answered in plain http")
            && r.stderr.contains("--dest-tls-verify=false")
            && !r.stderr.contains("--src-tls-verify"),
        "the hint names the destination, which failed, and only it: {}",
        r.stderr
    );
    quiet_stderr(&r);

    // A certificate from a CA the system does not know.
    let ca = pki::ca(t.path(), "private-ca");
    let server = pki::leaf(t.path(), &ca, "server", "IP:127.0.0.1", "serverAuth");
    let private = Registry::start_tls_with(&server, None);
    let r = copy_from(
        &policy,
        &[],
        &format!("docker://{}/a/b:1", private.host()),
        &out,
    )
    .code(3);
    assert!(
        r.stderr.contains("unknown authority") && r.stderr.contains("Trust the registry's CA"),
        "{}",
        r.stderr
    );
    quiet_stderr(&r);

    // A self-signed CA certificate used as the server's own.
    let selfsigned = Registry::start_tls();
    let r = copy_from(
        &policy,
        &[],
        &format!("docker://{}/a/b:1", selfsigned.host()),
        &out,
    )
    .code(3);
    // Trusting that very certificate is accepted as Go's clients accept it (tests/
    // skopeo_compat.rs), so that is the advice.
    assert!(
        r.stderr.contains("presents a CA certificate")
            && r.stderr.contains("Trust the registry's CA"),
        "{}",
        r.stderr
    );
    quiet_stderr(&r);

    // Nothing listening: refused, and no TLS advice for a registry that is down.
    let r = copy_from(&policy, &[], "docker://127.0.0.1:1/a/b:1", &out).code(3);
    assert!(
        r.stderr.contains("connection refused") && !r.stderr.contains("tls-verify"),
        "{}",
        r.stderr
    );
    // The single-image commands name their own flag.
    let r = ferry(&[
        "inspect",
        "--retry-times",
        "0",
        &format!("docker://{}/a/b:1", http.host()),
    ])
    .code(3);
    assert!(
        r.stderr.contains("--tls-verify=false") && !r.stderr.contains("--src-tls-verify"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
}

#[test]
fn a_missing_tag_or_repository_is_named_as_such() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 71, 1, 1000);
    for tag in ["v1", "v2"] {
        ferry(&[
            "copy",
            "-q",
            "--policy",
            policy.to_str().unwrap(),
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", src.display()),
            &format!("docker://{}/ns/app:{tag}", reg.host()),
        ])
        .ok();
    }
    let out = t.path().join("out");
    let r = copy_from(
        &policy,
        &["--src-tls-verify=false"],
        &format!("docker://{}/ns/app:v3", reg.host()),
        &out,
    )
    .code(3);
    assert!(
        r.stderr.contains("no tag \"v3\"") && r.stderr.contains("v1, v2"),
        "{}",
        r.stderr
    );
    let r = copy_from(
        &policy,
        &["--src-tls-verify=false"],
        &format!("docker://{}/ns/nothing:v1", reg.host()),
        &out,
    )
    .code(3);
    assert!(r.stderr.contains("no such repository"), "{}", r.stderr);
    assert!(!out.exists());
}

#[test]
fn a_certificate_for_another_host_is_named_as_such_once_its_ca_is_trusted() {
    // The CA is trusted (certs.d through --cert-dir), so what remains is the name.
    let t = tempfile::tempdir().unwrap();
    let ca = pki::ca(t.path(), "ca");
    let server = pki::leaf(t.path(), &ca, "other", "DNS:other.example", "serverAuth");
    let reg = Registry::start_tls_with(&server, None);
    let certs = t.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(&ca.cert, certs.join("ca.crt")).unwrap();
    let r = ferry(&[
        "inspect",
        "--retry-times",
        "0",
        "--cert-dir",
        certs.to_str().unwrap(),
        &format!("docker://{}/a/b:1", reg.host()),
    ])
    .code(3);
    assert!(
        r.stderr.contains(&format!("is not for {}", reg.host())),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("Trust the registry's CA"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_reader_that_goes_away_ends_nothing_but_the_output() {
    // `ferry inspect … | head -1`: the reader closes the pipe while ferry still writes. ferry
    // drops the rest of its output and exits with its own status: no panic, no error.
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    // 1,500 layers: the manifest and the inspect output are far larger than a pipe's buffer, so
    // ferry is still writing when the reader goes away.
    make_oci_image(&layout, "v1", 177, 1500, 16);
    let image = format!("oci:{}:v1", layout.display());
    for args in [
        vec!["inspect", image.as_str()],
        vec!["inspect", "--raw", image.as_str()],
    ] {
        let mut child = std::process::Command::new(ferry_bin())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 16];
        std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: nothing on stderr: {stderr}");
    }
}

#[test]
fn no_signature_says_where_ferry_looked_or_that_nothing_told_it_where() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let lax = insecure_policy(t.path());
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 72, 1, 1000);
    ferry(&[
        "copy",
        "-q",
        "--policy",
        lax.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/ns/unsigned:v1", reg.host()),
    ])
    .ok();
    let key =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keys/trusted.pub.asc");
    let policy = t.path().join("signed.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"default":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{}"}}]}}"#,
            key.display()
        ),
    )
    .unwrap();
    let image = format!("docker://{}/ns/unsigned:v1", reg.host());
    let check = |regd: &std::path::Path| {
        ferry(&[
            "policy",
            "check",
            "--tls-verify=false",
            "--policy",
            policy.to_str().unwrap(),
            "--registries.d",
            regd.to_str().unwrap(),
            &image,
        ])
        .code(1)
    };

    // Nothing says where this registry's signatures live: the rejection says that, not only
    // that none exists.
    let empty = t.path().join("empty.d");
    std::fs::create_dir_all(&empty).unwrap();
    let r = check(&empty);
    assert!(
        r.stdout.contains("no signature exists")
            && r.stdout.contains(&format!(
                "no registries.d entry covers {}/ns/unsigned",
                reg.host()
            )),
        "{}",
        r.stdout
    );

    // A lookaside that has none for this image: the rejection names its URL and the file that
    // gave it.
    let lookaside = support::http::HttpServer::start(
        support::http::counting(|_, _| support::http::Reply::not_found()),
        None,
    );
    let regd = t.path().join("regd");
    std::fs::create_dir_all(&regd).unwrap();
    let file = regd.join("mirror.yaml");
    std::fs::write(
        &file,
        format!(
            "docker:\n  {}:\n    lookaside: {}/sigs\n",
            reg.host(),
            lookaside.url()
        ),
    )
    .unwrap();
    let r = check(&regd);
    assert!(
        r.stdout.contains("no signature exists")
            && r.stdout
                .contains(&format!("{}/sigs/ns/unsigned@sha256=", lookaside.url()))
            && r.stdout.contains(file.to_str().unwrap()),
        "{}",
        r.stdout
    );
    // The same in JSON, for tools.
    let json = ferry(&[
        "policy",
        "check",
        "--format",
        "json",
        "--tls-verify=false",
        "--policy",
        policy.to_str().unwrap(),
        "--registries.d",
        regd.to_str().unwrap(),
        &image,
    ])
    .code(1);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let searched = v["verdict"]["searched"].to_string();
    assert!(searched.contains(&lookaside.url()), "{v}");
}

#[test]
fn the_readme_asks_for_the_rust_version_cargo_toml_declares() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("Cargo.toml declares rust-version")
        .trim_matches('"');
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("Rust {version} or newer")),
        "README.md must say \"Rust {version} or newer\", as Cargo.toml's rust-version"
    );
    for other in readme.match_indices("Rust 1.") {
        let said: String = readme[other.0 + 5..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        assert_eq!(
            said.trim_end_matches('.'),
            version,
            "README.md names another Rust version"
        );
    }
}

#[test]
fn no_route_and_an_unresolvable_name_are_said_in_words_without_tls_advice() {
    // In a network namespace of its own (only a loopback that is down), nothing can leave the
    // process: a connection has no route, and a name lookup fails before any packet is sent.
    let unshare = support::require_tool("unshare", "util-linux");
    let probe = run(std::process::Command::new(&unshare).args(["-n", "true"]));
    assert_eq!(
        probe.code, 0,
        "this test runs ferry in a new network namespace (`unshare -n`, as root or with user \
         namespaces enabled): {}",
        probe.stderr
    );
    let in_no_network = |image: &str| {
        run(std::process::Command::new(&unshare)
            .arg("-n")
            .arg(support::ferry_bin())
            .args(["inspect", "--retry-times", "0", image])
            .env("NO_COLOR", "1"))
    };
    let r = in_no_network("docker://127.0.0.1:5000/a/b:1");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("no route to 127.0.0.1:5000") && !r.stderr.contains("tls-verify"),
        "{}",
        r.stderr
    );
    quiet_stderr(&r);
    let r = in_no_network("docker://registry.invalid/a/b:1");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cannot resolve the host name of registry.invalid")
            && !r.stderr.contains("tls-verify"),
        "{}",
        r.stderr
    );
    quiet_stderr(&r);
}
