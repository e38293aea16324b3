//! registries.d parsing and lookaside signature storage, read against the in-test HTTP server
//! (which misbehaves on purpose) and `file://` directories.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry::internal::config::registries_d as lookaside;

use ferry::Digest;
use ferry::internal::config::registries_d::{RegistriesConfig, RegistriesDError, signature_url};
use ferry::internal::transport::docker::lookaside::{
    LookasideError, MAX_CONSECUTIVE_FAILURES, read_signatures, write_signatures,
};
use ferry::internal::transport::http::TlsPolicy;

fn http_client(tls_verify: bool, timeout: Duration) -> reqwest::Client {
    let tls = if tls_verify {
        TlsPolicy::verified()
    } else {
        TlsPolicy::insecure()
    };
    ferry::internal::transport::http::lookaside_client(&tls, timeout).unwrap()
}
use ferry::DockerReference;
use ferry::signatures::{MAX_SIGNATURE_SIZE, MAX_SLOTS, SignatureSlot, SlotReadErrorKind};
use support::http::{HttpServer, Reply, Route};
use url::Url;

fn r(s: &str) -> DockerReference {
    DockerReference::parse(s).unwrap()
}

/// A registries.d directory holding `files` (name, contents).
fn registries_d(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

fn load(files: &[(&str, &str)]) -> RegistriesConfig {
    let d = registries_d(files);
    RegistriesConfig::load(d.path()).unwrap()
}

fn load_err(files: &[(&str, &str)]) -> (String, tempfile::TempDir) {
    let d = registries_d(files);
    let e = RegistriesConfig::load(d.path()).unwrap_err();
    (e.to_string(), d)
}

/// Where `image`'s signatures are read from, with containers/image's built-in default when
/// nothing is configured (what the session supplies).
fn read(c: &RegistriesConfig, image: &str) -> String {
    c.read_base(&r(image))
        .unwrap()
        .unwrap_or_else(|| lookaside::builtin_default_base().unwrap())
        .to_string()
}

fn write(c: &RegistriesConfig, image: &str) -> Option<String> {
    c.write_base(&r(image)).unwrap().map(|u| u.to_string())
}

/// Real signature bytes (OpenPGP), so the slots look like what a lookaside serves.
fn real_signature(n: usize) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/demo/hello-dir")
        .join(format!("signature-{n}"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn manifest_digest() -> Digest {
    Digest::sha256_of(b"a manifest")
}

const IMAGE: &str = "registry.example.com/ns/app:v1";

/// The path of `signature-N` of IMAGE under the server's `/sigs` base.
fn slot_path(n: usize) -> String {
    format!(
        "/sigs/ns/app@sha256={}/signature-{n}",
        manifest_digest().hex()
    )
}

fn base(server: &HttpServer) -> Url {
    Url::parse(&format!("{}/sigs", server.url())).unwrap()
}

async fn read_from(server: &HttpServer, timeout: Duration) -> Vec<SignatureSlot> {
    read_signatures(
        &http_client(true, timeout),
        &base(server),
        &r(IMAGE),
        &manifest_digest(),
    )
    .await
}

fn err_kind(slot: &SignatureSlot) -> SlotReadErrorKind {
    slot.content
        .as_ref()
        .expect_err(&format!("{} should have failed", slot.name()))
        .kind
}

fn err_msg(slot: &SignatureSlot) -> String {
    slot.content.as_ref().unwrap_err().message.clone()
}

// ---------------------------------------------------------------------------------------------
// registries.d

#[test]
fn every_key_including_the_legacy_names() {
    let c = load(&[(
        "all.yaml",
        r#"
default-docker:
  lookaside: https://default.example/read
  lookaside-staging: file:///srv/default-staging
docker:
  new.example.com:
    lookaside: https://new.example/read
    lookaside-staging: file:///srv/new-staging
    use-sigstore-attachments: true
  old.example.com:
    sigstore: https://old.example/read
    sigstore-staging: file:///srv/old-staging
  both.example.com:
    lookaside: https://both.example/new-name-wins
    sigstore: https://both.example/old-name
    lookaside-staging: file:///srv/both-new
    sigstore-staging: file:///srv/both-old
  read-only.example.com:
    sigstore: file:///srv/read-and-write
    use-sigstore-attachments: false
"#,
    )]);
    assert_eq!(read(&c, "new.example.com/a:1"), "https://new.example/read");
    assert_eq!(
        write(&c, "new.example.com/a:1").unwrap(),
        "file:///srv/new-staging"
    );
    assert!(c.use_sigstore_attachments(&r("new.example.com/a:1")));

    assert_eq!(read(&c, "old.example.com/a:1"), "https://old.example/read");
    assert_eq!(
        write(&c, "old.example.com/a:1").unwrap(),
        "file:///srv/old-staging"
    );

    assert_eq!(
        read(&c, "both.example.com/a:1"),
        "https://both.example/new-name-wins"
    );
    assert_eq!(
        write(&c, "both.example.com/a:1").unwrap(),
        "file:///srv/both-new"
    );

    // Without a staging location, writing goes to the reading one.
    assert_eq!(
        write(&c, "read-only.example.com/a:1").unwrap(),
        "file:///srv/read-and-write"
    );
    assert!(!c.use_sigstore_attachments(&r("read-only.example.com/a:1")));

    assert_eq!(read(&c, "elsewhere.io/a:1"), "https://default.example/read");
    assert_eq!(
        write(&c, "elsewhere.io/a:1").unwrap(),
        "file:///srv/default-staging"
    );
    assert!(!c.use_sigstore_attachments(&r("elsewhere.io/a:1")));
}

#[test]
fn the_most_specific_scope_wins() {
    let c = load(&[(
        "scopes.yaml",
        r#"
default-docker:
  lookaside: https://s/default
docker:
  "*.com":
    lookaside: https://s/star-com
  "*.example.com":
    lookaside: https://s/star-example-com
  "*.eu.example.com":
    lookaside: https://s/star-eu
  reg.eu.example.com:
    lookaside: https://s/host
  reg.eu.example.com/team:
    lookaside: https://s/team
  reg.eu.example.com/team/app:
    lookaside: https://s/repo
  reg.eu.example.com/team/app:v1:
    lookaside: https://s/tag
  reg.eu.example.com/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000:
    lookaside: https://s/digest
  localhost:5000:
    lookaside: https://s/localhost-port
  docker.io/library:
    lookaside: https://s/docker-library
"#,
    )]);
    let zero = "0".repeat(64);
    for (image, want) in [
        ("reg.eu.example.com/team/app:v1", "https://s/tag"),
        (
            &format!("reg.eu.example.com/team/app@sha256:{zero}") as &str,
            "https://s/digest",
        ),
        ("reg.eu.example.com/team/app:v2", "https://s/repo"),
        ("reg.eu.example.com/team/app/sub:v1", "https://s/repo"),
        ("reg.eu.example.com/team/other:v1", "https://s/team"),
        ("reg.eu.example.com/solo:v1", "https://s/host"),
        ("other.eu.example.com/a:1", "https://s/star-eu"),
        ("deep.other.eu.example.com/a:1", "https://s/star-eu"),
        ("us.example.com/a:1", "https://s/star-example-com"),
        ("example.com/a:1", "https://s/star-com"),
        ("localhost:5000/a/b:1", "https://s/localhost-port"),
        ("busybox", "https://s/docker-library"),
        ("docker.io/someone/app:1", "https://s/default"),
        ("quay.io/a/b:1", "https://s/default"),
    ] {
        assert_eq!(read(&c, image), want, "{image}");
    }
}

#[test]
fn sections_without_a_url_for_the_direction_fall_through() {
    let c = load(&[(
        "fall.yaml",
        r#"
default-docker:
  lookaside-staging: file:///srv/default-staging
docker:
  example.com:
    lookaside: https://host.example/read
    use-sigstore-attachments: true
  example.com/ns:
    lookaside-staging: file:///srv/ns-staging
  example.com/ns/app:
    use-sigstore-attachments: false
  example.com/empty:
    lookaside: ""
    sigstore: ""
"#,
    )]);
    // Reading skips the namespace that only knows where to write, and the repository that
    // only sets attachments.
    assert_eq!(
        read(&c, "example.com/ns/app:1"),
        "https://host.example/read"
    );
    assert_eq!(
        write(&c, "example.com/ns/app:1").unwrap(),
        "file:///srv/ns-staging"
    );
    // The most specific explicit value of use-sigstore-attachments wins, even `false`.
    assert!(!c.use_sigstore_attachments(&r("example.com/ns/app:1")));
    assert!(c.use_sigstore_attachments(&r("example.com/ns/other:1")));
    // Empty strings count as unset.
    assert_eq!(
        read(&c, "example.com/empty/x:1"),
        "https://host.example/read"
    );
    // The default-docker section only knows where to write: reading an unconfigured registry
    // ends at the built-in default.
    assert_eq!(
        read(&c, "quay.io/a/b:1"),
        lookaside::builtin_default_base().unwrap().to_string()
    );
    assert_eq!(
        write(&c, "quay.io/a/b:1").unwrap(),
        "file:///srv/default-staging"
    );
}

#[test]
fn nothing_configured_reads_the_builtin_default_and_writes_nowhere() {
    let d = tempfile::tempdir().unwrap();
    for dir in [d.path().join("missing"), d.path().to_path_buf()] {
        let c = RegistriesConfig::load(&dir).unwrap();
        assert_eq!(c.read_base(&r(IMAGE)).unwrap(), None);
        let base = lookaside::builtin_default_base().unwrap();
        assert_eq!(base.scheme(), "file");
        assert!(
            base.path() == "/var/lib/containers/sigstore"
                || base.path().ends_with("/.local/share/containers/sigstore"),
            "{base}"
        );
        assert!(c.write_base(&r(IMAGE)).unwrap().is_none());
        assert!(!c.use_sigstore_attachments(&r(IMAGE)));
    }
}

#[test]
fn files_merge_and_only_yaml_files_count() {
    let c = load(&[
        (
            "a.yaml",
            "docker:\n  a.example:\n    lookaside: https://a/\n",
        ),
        (
            "b.yaml",
            "docker:\n  b.example:\n    lookaside: https://b/\n",
        ),
        ("c.yaml", "default-docker:\n  lookaside: https://c/\n"),
        ("d.yml", "default-docker:\n  lookaside: https://not-read/\n"),
        ("e.yaml.bak", "this is: [not yaml"),
        ("README", "default-docker: {}"),
    ]);
    assert_eq!(read(&c, "a.example/x:1"), "https://a/");
    assert_eq!(read(&c, "b.example/x:1"), "https://b/");
    assert_eq!(read(&c, "z.example/x:1"), "https://c/");
}

#[test]
fn a_scope_in_two_files_is_an_error_naming_both() {
    let (e, d) = load_err(&[
        (
            "10-a.yaml",
            "docker:\n  example.com/ns:\n    lookaside: https://a/\n",
        ),
        (
            "20-b.yaml",
            "docker:\n  example.com/ns:\n    sigstore: https://b/\n",
        ),
    ]);
    let a = d.path().join("10-a.yaml");
    let b = d.path().join("20-b.yaml");
    assert_eq!(
        e,
        format!(
            "Error parsing signature storage configuration: \"docker\" namespace \"example.com/ns\" defined both in {a:?} and {b:?}; keep one of them"
        )
    );
}

#[test]
fn default_docker_in_two_files_is_an_error_naming_both() {
    // Even an empty section counts as defined, as in containers/image.
    let (e, d) = load_err(&[
        ("a.yaml", "default-docker:\n  lookaside: https://a/\n"),
        ("b.yaml", "default-docker: {}\n"),
    ]);
    assert!(e.contains("\"default-docker\" defined both in"), "{e}");
    assert!(
        e.contains(&d.path().join("a.yaml").display().to_string())
            && e.contains(&d.path().join("b.yaml").display().to_string()),
        "{e}"
    );
}

#[test]
fn a_yaml_error_names_the_file_and_line() {
    let (e, d) = load_err(&[
        (
            "good.yaml",
            "docker:\n  a.example:\n    lookaside: https://a/\n",
        ),
        (
            "broken.yaml",
            "docker:\n  a.example:\n    lookaside: [unclosed\n",
        ),
    ]);
    let broken = d.path().join("broken.yaml").display().to_string();
    assert!(e.starts_with(&format!("parsing {broken}: ")), "{e}");
    assert!(e.contains("line "), "{e}");

    let (e, _d) = load_err(&[(
        "types.yaml",
        "default-docker:\n  use-sigstore-attachments: [yes]\n",
    )]);
    assert!(
        e.contains("types.yaml") && e.contains("use-sigstore-attachments"),
        "{e}"
    );
}

#[test]
fn a_registries_d_that_is_not_a_directory_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("registries.d");
    std::fs::write(&file, "default-docker: {}\n").unwrap();
    let e = RegistriesConfig::load(&file).unwrap_err();
    assert!(matches!(e, RegistriesDError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
}

#[test]
fn files_as_shipped_by_containers_common_and_older_installs() {
    // containers-common's default.yaml (Fedora, RHEL, podman installs): everything commented
    // out but default-docker's staging location.
    let current = load(&[
        (
            "default.yaml",
            r#"# This is a default registries.d configuration file.  You may
# add to this file or create additional files in registries.d/.
#
# lookaside: for reading/writing simple signing signatures
# lookaside-staging: for writing simple signing signatures, preferred over lookaside
#
# lookaside and lookaside-staging take a value of the following:
#   lookaside:  {schema}://location
#
# For reading signatures, schema may be http, https, or file.
# For writing signatures, schema may only be file.

# The default locations for all registries.
# This is the default signature write location for docker registries.
default-docker:
#  lookaside: file:///var/lib/containers/sigstore
  lookaside-staging: file:///var/lib/containers/sigstore

# The 'docker' indicator here is the start of the configuration
# for docker registries.
#
# docker:
#
#   privateregistry.com:
#    lookaside: http://privateregistry.com/sigstore/
#    lookaside-staging: /mnt/nfs/privateregistry/sigstore
"#,
        ),
        (
            "registry.access.redhat.com.yaml",
            "docker:\n     registry.access.redhat.com:\n         sigstore: https://access.redhat.com/webassets/docker/content/sigstore\n",
        ),
        (
            "registry.redhat.io.yaml",
            "docker:\n     registry.redhat.io:\n         sigstore: https://registry.redhat.io/containers/sigstore\n",
        ),
    ]);
    assert_eq!(
        read(
            &current,
            "registry.access.redhat.com/ubi8/ubi-minimal:latest"
        ),
        "https://access.redhat.com/webassets/docker/content/sigstore"
    );
    assert_eq!(
        read(&current, "registry.redhat.io/ubi9:latest"),
        "https://registry.redhat.io/containers/sigstore"
    );
    assert_eq!(
        write(&current, "quay.io/a/b:1").unwrap(),
        "file:///var/lib/containers/sigstore"
    );
    assert_eq!(
        write(&current, "registry.redhat.io/ubi9:latest").unwrap(),
        "https://registry.redhat.io/containers/sigstore"
    );

    // The atomic-era default.yaml used the legacy names, and a docker: key with nothing under
    // it.
    let older = load(&[(
        "default.yaml",
        "# older default\ndefault-docker:\n#  sigstore: file:///var/lib/atomic/sigstore\n  sigstore-staging: file:///var/lib/atomic/sigstore\ndocker:\n",
    )]);
    assert_eq!(
        write(&older, "docker.io/library/busybox:latest").unwrap(),
        "file:///var/lib/atomic/sigstore"
    );
    // A file of comments only is an empty configuration.
    let comments = load(&[("empty.yaml", "# nothing here\n#docker:\n")]);
    assert!(comments.write_base(&r(IMAGE)).unwrap().is_none());
}

#[test]
fn invalid_or_unreadable_urls_are_errors_naming_them() {
    let c = load(&[(
        "bad.yaml",
        r#"
docker:
  a.example:
    lookaside: "http://[::1"
  b.example:
    lookaside: ftp://b.example/sigs
  c.example:
    lookaside: file://var/lib/sigs
  d.example:
    lookaside-staging: "not a url"
"#,
    )]);
    for (image, url) in [
        ("a.example/x:1", "http://[::1"),
        ("b.example/x:1", "ftp://b.example/sigs"),
        ("c.example/x:1", "file://var/lib/sigs"),
    ] {
        let e = c.read_base(&r(image)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("Invalid signature storage URL {url}: ")),
            "{e}"
        );
    }
    let e = c.write_base(&r("d.example/x:1")).unwrap_err().to_string();
    assert!(e.contains("not a url"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// URLs

#[test]
fn signature_urls_have_the_containers_image_form() {
    let d = manifest_digest();
    let hex = d.hex();
    for (base, image, index, want) in [
        (
            "https://example.com/lookaside",
            "busybox:latest",
            1,
            format!("https://example.com/lookaside/library/busybox@sha256={hex}/signature-1"),
        ),
        (
            "https://example.com/lookaside/",
            "registry.example.com/ns/sub/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            12,
            format!("https://example.com/lookaside/ns/sub/app@sha256={hex}/signature-12"),
        ),
        (
            "https://example.com",
            "localhost:5000/app:1",
            2,
            format!("https://example.com/app@sha256={hex}/signature-2"),
        ),
        (
            "http://127.0.0.1:8080/a/b?token=x",
            "quay.io/org/app:1",
            3,
            format!("http://127.0.0.1:8080/a/b/org/app@sha256={hex}/signature-3?token=x"),
        ),
        (
            "file:///var/lib/containers/sigstore",
            "example.com/ns/app:1",
            1,
            format!("file:///var/lib/containers/sigstore/ns/app@sha256={hex}/signature-1"),
        ),
    ] {
        let u = signature_url(&Url::parse(base).unwrap(), &r(image), &d, index);
        assert_eq!(u.as_str(), want);
    }
    let sha512 = Digest::parse(&format!("sha512:{}", "ab".repeat(64))).unwrap();
    let u = signature_url(
        &Url::parse("https://x/s").unwrap(),
        &r("x.example/a:1"),
        &sha512,
        1,
    );
    assert_eq!(
        u.as_str(),
        format!("https://x/s/a@sha512={}/signature-1", "ab".repeat(64))
    );
}

#[test]
fn digests_are_validated_before_they_can_reach_a_path() {
    // signature_url takes a parsed Digest, and these never parse, so no "../" or "/" from a
    // hostile manifest digest can end up in a lookaside path.
    for bad in [
        "sha256:../../../../etc/passwd",
        "sha256:/etc/passwd",
        &format!("sha256:{}/..", "a".repeat(61)),
        &format!("sha256:{}", "A".repeat(64)),
        &format!("sha256:{}", "a".repeat(63)),
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256",
    ] {
        assert!(Digest::parse(bad).is_err(), "{bad} parsed");
    }
}

// ---------------------------------------------------------------------------------------------
// Reading over HTTP

const SHORT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn one_signature_then_404() {
    let sig = real_signature(1);
    let server = HttpServer::with_routes([(slot_path(1), Route::signature(sig.clone()))]);
    let slots = read_from(&server, SHORT).await;
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].index, 1);
    assert_eq!(slots[0].content.as_ref().unwrap(), &sig);
    assert_eq!(
        slots[0].location,
        format!("{}{}", server.url(), slot_path(1))
    );
    assert_eq!(server.hits(&slot_path(1)), 1);
    assert_eq!(server.hits(&slot_path(2)), 1, "the 404 ends the list");
    assert_eq!(server.hits(&slot_path(3)), 0);
}

#[tokio::test]
async fn no_signatures_at_all() {
    let server = HttpServer::with_routes([]);
    assert!(read_from(&server, SHORT).await.is_empty());
    assert_eq!(server.hits(&slot_path(1)), 1);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_html_page_in_the_middle_is_returned_and_the_next_slot_still_read() {
    let (s1, s3) = (real_signature(1), real_signature(2));
    let server = HttpServer::with_routes([
        (slot_path(1), Route::signature(s1.clone())),
        (slot_path(2), Route::html()),
        (slot_path(3), Route::signature(s3.clone())),
    ]);
    let slots = read_from(&server, SHORT).await;
    assert_eq!(slots.len(), 3);
    assert_eq!(slots[0].content.as_ref().unwrap(), &s1);
    let html = slots[1].content.as_ref().unwrap();
    assert!(html.starts_with(b"<!DOCTYPE html>"));
    // Format sniffing is what rejects it, naming the first byte as containers/image does.
    let e = ferry::signatures::sniff(html).unwrap_err().to_string();
    assert!(e.contains("0x3c"), "{e}");
    assert_eq!(slots[2].content.as_ref().unwrap(), &s3);
    assert_eq!(server.hits(&slot_path(4)), 1);
}

#[tokio::test]
async fn error_statuses_are_slot_errors_naming_status_type_and_body() {
    let good = real_signature(1);
    let server = HttpServer::with_routes([
        (slot_path(1), Route::signature(good.clone())),
        (
            slot_path(2),
            Route::bytes(500, "application/json", "{\"error\":\"database down\"}"),
        ),
        (slot_path(3), Route::signature(good.clone())),
        (slot_path(4), Route::status(403)),
        (slot_path(5), Route::too_many_requests(7)),
        (slot_path(6), Route::signature(good.clone())),
        (slot_path(7), Route::bytes(204, "text/plain", "")),
        (slot_path(8), Route::signature(good.clone())),
    ]);
    let slots = read_from(&server, SHORT).await;
    assert_eq!(slots.len(), 8);
    for i in [0, 2, 5, 7] {
        assert_eq!(slots[i].content.as_ref().unwrap(), &good, "slot {}", i + 1);
    }
    assert_eq!(err_kind(&slots[1]), SlotReadErrorKind::HttpStatus);
    assert_eq!(
        err_msg(&slots[1]),
        "received unexpected HTTP status: 500 Internal Server Error, Content-Type \"application/json\", body starts \"{\\\"error\\\":\\\"database down\\\"}\""
    );
    assert_eq!(err_kind(&slots[3]), SlotReadErrorKind::HttpStatus);
    assert!(
        err_msg(&slots[3]).starts_with("received unexpected HTTP status: 403 Forbidden"),
        "{}",
        err_msg(&slots[3])
    );
    assert_eq!(err_kind(&slots[4]), SlotReadErrorKind::HttpStatus);
    let m = err_msg(&slots[4]);
    assert!(
        m.contains("429 Too Many Requests") && m.contains("Retry-After \"7\""),
        "{m}"
    );
    // containers/image accepts exactly 200.
    assert!(err_msg(&slots[6]).contains("204 No Content"));
}

#[tokio::test]
async fn an_error_status_body_is_not_read_whole() {
    let server = HttpServer::with_routes([(slot_path(1), Route::Endless { declared: None })]);
    server.set_route(
        &slot_path(1),
        Reply::Bytes {
            status: 503,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: vec![b'x'; 1024 * 1024],
        },
    );
    let slots = read_from(&server, SHORT).await;
    let m = err_msg(&slots[0]);
    assert!(m.contains("503 Service Unavailable"), "{m}");
    assert!(
        m.len() < 600,
        "only the start of the body: {} bytes",
        m.len()
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_the_next_slot_is_read() {
    let good = real_signature(1);
    let server = HttpServer::with_routes([
        (slot_path(1), Route::Hang),
        (slot_path(2), Route::signature(good.clone())),
    ]);
    let started = Instant::now();
    let slots = read_from(&server, Duration::from_millis(700)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(slots.len(), 2);
    assert_eq!(err_kind(&slots[0]), SlotReadErrorKind::Timeout);
    assert!(err_msg(&slots[0]).contains("no answer in time"));
    assert_eq!(slots[1].content.as_ref().unwrap(), &good);
}

#[tokio::test]
async fn a_body_that_stalls_midway_times_out() {
    let server = HttpServer::with_routes([(
        slot_path(1),
        Route::Stalled {
            body: vec![0xa3; 100],
            declared: 1000,
        },
    )]);
    let slots = read_from(&server, Duration::from_millis(700)).await;
    assert_eq!(slots.len(), 1, "the 404 of signature-2 is not a slot");
    assert_eq!(err_kind(&slots[0]), SlotReadErrorKind::Timeout);
    assert!(
        err_msg(&slots[0]).contains("after 100 of 1000 bytes"),
        "{}",
        err_msg(&slots[0])
    );
    assert_eq!(
        server.hits(&slot_path(2)),
        1,
        "the timeout did not end the list"
    );
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_truncated() {
    let good = real_signature(1);
    let server = HttpServer::with_routes([
        (
            slot_path(1),
            Route::Truncated {
                body: good[..10].to_vec(),
                declared: good.len(),
            },
        ),
        (slot_path(2), Route::signature(good.clone())),
    ]);
    let slots = read_from(&server, SHORT).await;
    assert_eq!(slots.len(), 2);
    assert_eq!(err_kind(&slots[0]), SlotReadErrorKind::Truncated);
    let m = err_msg(&slots[0]);
    assert!(
        m.contains(&format!("after 10 of {} bytes", good.len())),
        "{m}"
    );
    assert_eq!(slots[1].content.as_ref().unwrap(), &good);
}

#[tokio::test]
async fn a_connection_reset_midway_is_an_io_error() {
    let good = real_signature(1);
    let server = HttpServer::with_routes([
        (
            slot_path(1),
            Route::Reset {
                body: good[..10].to_vec(),
                declared: good.len(),
            },
        ),
        (slot_path(2), Route::signature(good.clone())),
    ]);
    let slots = read_from(&server, SHORT).await;
    assert_eq!(slots.len(), 2);
    let m = err_msg(&slots[0]);
    assert_eq!(err_kind(&slots[0]), SlotReadErrorKind::Io, "{m}");
    assert!(m.contains("reset"), "{m}");
    assert_eq!(slots[1].content.as_ref().unwrap(), &good);
}

#[tokio::test]
async fn an_endless_body_stops_at_the_cap() {
    let good = real_signature(1);
    let server = HttpServer::with_routes([
        (slot_path(1), Route::endless()),
        (slot_path(2), Route::signature(good.clone())),
    ]);
    let slots = read_from(&server, Duration::from_secs(30)).await;
    assert_eq!(slots.len(), 2);
    assert_eq!(err_kind(&slots[0]), SlotReadErrorKind::TooLarge);
    assert!(
        err_msg(&slots[0]).contains(&format!(
            "exceeded maximum allowed size of {MAX_SIGNATURE_SIZE} bytes"
        )),
        "{}",
        err_msg(&slots[0])
    );
    assert_eq!(slots[1].content.as_ref().unwrap(), &good);
    // The client hung up near the cap: what the server managed to write is the cap plus what
    // socket buffers hold, not an unbounded stream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = server.bytes_sent(&slot_path(1));
    assert!(sent >= MAX_SIGNATURE_SIZE as u64, "{sent}");
    assert!(
        sent < MAX_SIGNATURE_SIZE as u64 + 16 * 1024 * 1024,
        "{sent} bytes sent"
    );
    let after = server.bytes_sent(&slot_path(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.bytes_sent(&slot_path(1)),
        after,
        "nobody reads anymore"
    );
}

#[tokio::test]
async fn an_announced_size_over_the_cap_is_refused_unread() {
    let server = HttpServer::with_routes([(
        slot_path(1),
        Route::Endless {
            declared: Some(1 << 40),
        },
    )]);
    let slots = read_from(&server, SHORT).await;
    assert_eq!(err_kind(&slots[0]), SlotReadErrorKind::TooLarge);
    assert!(
        err_msg(&slots[0]).contains(&format!("announced {} bytes", 1u64 << 40)),
        "{}",
        err_msg(&slots[0])
    );
}

#[tokio::test]
async fn the_cap_is_exact() {
    let at_cap = vec![0xa3u8; MAX_SIGNATURE_SIZE];
    let over = vec![0xa3u8; MAX_SIGNATURE_SIZE + 1];
    let server = HttpServer::with_routes([
        (slot_path(1), Route::signature(at_cap.clone())),
        (slot_path(2), Route::signature(over)),
    ]);
    let slots = read_from(&server, Duration::from_secs(30)).await;
    assert_eq!(slots[0].content.as_ref().unwrap().len(), MAX_SIGNATURE_SIZE);
    assert_eq!(err_kind(&slots[1]), SlotReadErrorKind::TooLarge);
}

#[tokio::test]
async fn three_failures_in_a_row_end_the_list() {
    let good = real_signature(1);
    let server = HttpServer::with_routes((1..=10).map(|n| (slot_path(n), Route::status(500))));
    server.set_route(&slot_path(1), Route::signature(good.clone()));
    let slots = read_from(&server, SHORT).await;
    assert_eq!(slots.len(), 1 + MAX_CONSECUTIVE_FAILURES);
    assert!(
        slots[1..]
            .iter()
            .all(|s| err_kind(s) == SlotReadErrorKind::HttpStatus)
    );
    assert_eq!(server.hits(&slot_path(4)), 1);
    assert_eq!(
        server.hits(&slot_path(5)),
        0,
        "nothing asked after the third failure"
    );

    // Failures that are not consecutive do not stop the reading; routes change at runtime.
    server.set_route(&slot_path(3), Route::signature(good.clone()));
    server.set_route(&slot_path(6), Route::signature(good.clone()));
    server.set_route(&slot_path(7), Route::not_found());
    let slots = read_from(&server, SHORT).await;
    let ok: Vec<bool> = slots.iter().map(|s| s.content.is_ok()).collect();
    assert_eq!(ok, [true, false, true, false, false, true]);
}

#[tokio::test]
async fn reading_stops_at_128_slots() {
    let good = real_signature(1);
    let server = HttpServer::start(
        Arc::new(move |_: &support::http::Request| Reply::signature(good.clone())),
        None,
    );
    let slots = read_from(&server, SHORT).await;
    assert_eq!(slots.len(), MAX_SLOTS);
    assert_eq!(slots.last().unwrap().index, 128);
    assert_eq!(server.hits(&slot_path(128)), 1);
    assert_eq!(server.hits(&slot_path(129)), 0);
}

#[tokio::test]
async fn redirects_are_followed_and_no_credentials_are_sent() {
    let good = real_signature(1);
    let auth_seen = Arc::new(Mutex::new(Vec::new()));
    let seen = auth_seen.clone();
    let sig = good.clone();
    let server = HttpServer::start(
        Arc::new(move |req: &support::http::Request| {
            seen.lock()
                .unwrap()
                .push(req.header("authorization").map(str::to_string));
            if req.path == "/cdn/signature-1" {
                Reply::signature(sig.clone())
            } else {
                Reply::not_found()
            }
        }),
        None,
    );
    server.set_route(
        &slot_path(1),
        Reply::Bytes {
            status: 302,
            headers: vec![("Location".into(), "/cdn/signature-1".into())],
            body: Vec::new(),
        },
    );
    let slots = read_from(&server, SHORT).await;
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].content.as_ref().unwrap(), &good);
    assert_eq!(
        slots[0].location,
        format!("{}{}", server.url(), slot_path(1)),
        "the location is the slot's URL, not where it was redirected"
    );
    assert_eq!(server.hits("/cdn/signature-1"), 1);
    assert!(auth_seen.lock().unwrap().iter().all(Option::is_none));
}

#[tokio::test]
async fn a_refused_connection_fails_each_slot_until_three() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = Url::parse(&format!("http://127.0.0.1:{port}/sigs")).unwrap();
    let slots = read_signatures(
        &http_client(true, SHORT),
        &base,
        &r(IMAGE),
        &manifest_digest(),
    )
    .await;
    assert_eq!(slots.len(), MAX_CONSECUTIVE_FAILURES);
    assert_eq!(err_kind(&slots[0]), SlotReadErrorKind::Io);
    let m = err_msg(&slots[0]);
    assert!(m.to_lowercase().contains("connect"), "{m}");
}

#[tokio::test]
async fn passwords_in_the_base_are_redacted_in_locations() {
    let good = real_signature(1);
    let server = HttpServer::with_routes([(slot_path(1), Route::signature(good))]);
    let base = Url::parse(&format!(
        "http://user:s3cret@127.0.0.1:{}/sigs",
        server.url().rsplit(':').next().unwrap()
    ))
    .unwrap();
    let slots = read_signatures(
        &http_client(true, SHORT),
        &base,
        &r(IMAGE),
        &manifest_digest(),
    )
    .await;
    assert_eq!(slots.len(), 1);
    assert!(
        !slots[0].location.contains("s3cret"),
        "{}",
        slots[0].location
    );
    assert!(
        slots[0].location.contains("user:xxxxx@"),
        "{}",
        slots[0].location
    );
}

#[tokio::test]
async fn registries_d_to_slots_end_to_end() {
    let (s1, s3) = (real_signature(1), real_signature(3));
    let server = HttpServer::with_routes([
        (slot_path(1), Route::signature(s1.clone())),
        (slot_path(2), Route::html()),
        (slot_path(3), Route::signature(s3.clone())),
    ]);
    let c = load(&[(
        "lookaside.yaml",
        &format!(
            "docker:\n  registry.example.com/ns:\n    lookaside: {}/sigs\n",
            server.url()
        ),
    )]);
    let base = c.read_base(&r(IMAGE)).unwrap().unwrap();
    let slots = read_signatures(
        &http_client(true, SHORT),
        &base,
        &r(IMAGE),
        &manifest_digest(),
    )
    .await;
    let names: Vec<String> = slots.iter().map(SignatureSlot::name).collect();
    assert_eq!(names, ["signature-1", "signature-2", "signature-3"]);
    assert_eq!(slots[2].content.as_ref().unwrap(), &s3);
}

// ---------------------------------------------------------------------------------------------
// file://

fn file_base(dir: &Path) -> Url {
    Url::from_directory_path(dir).unwrap()
}

fn slot_dir(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("ns/app@sha256={}", manifest_digest().hex()))
}

async fn read_dir_slots(dir: &Path) -> Vec<SignatureSlot> {
    read_signatures(
        &http_client(true, SHORT),
        &file_base(dir),
        &r(IMAGE),
        &manifest_digest(),
    )
    .await
}

#[tokio::test]
async fn file_reads_stop_at_the_first_missing_file_and_survive_bad_ones() {
    let t = tempfile::tempdir().unwrap();
    let d = slot_dir(t.path());
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("signature-1"), real_signature(1)).unwrap();
    std::fs::create_dir(d.join("signature-2")).unwrap();
    std::fs::write(d.join("signature-3"), vec![0xa3; MAX_SIGNATURE_SIZE + 1]).unwrap();
    std::fs::write(d.join("signature-4"), real_signature(2)).unwrap();
    std::fs::write(d.join("signature-6"), real_signature(3)).unwrap();
    let slots = read_dir_slots(t.path()).await;
    assert_eq!(
        slots.len(),
        4,
        "signature-5 is missing, so signature-6 is not read"
    );
    assert_eq!(slots[0].content.as_ref().unwrap(), &real_signature(1));
    assert_eq!(err_kind(&slots[1]), SlotReadErrorKind::Io);
    assert!(
        err_msg(&slots[1]).contains(&d.join("signature-2").display().to_string()),
        "{}",
        err_msg(&slots[1])
    );
    assert_eq!(err_kind(&slots[2]), SlotReadErrorKind::TooLarge);
    assert_eq!(slots[3].content.as_ref().unwrap(), &real_signature(2));
    assert_eq!(
        slots[0].location,
        Url::from_file_path(d.join("signature-1"))
            .unwrap()
            .to_string()
    );
    assert!(read_dir_slots(&t.path().join("nothing")).await.is_empty());
}

#[tokio::test]
async fn written_signatures_read_back_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let base = file_base(&t.path().join("lookaside"));
    let img = r(IMAGE);
    let d = manifest_digest();
    let set: Vec<Vec<u8>> = (1..=3).map(real_signature).collect();
    write_signatures(&base, &img, &d, &set).unwrap();
    let slots = read_dir_slots(&t.path().join("lookaside")).await;
    let got: Vec<Vec<u8>> = slots.into_iter().map(|s| s.content.unwrap()).collect();
    assert_eq!(got, set);

    // Published as containers/image does, readable by a web server's user.
    use std::os::unix::fs::PermissionsExt as _;
    let dir = slot_dir(&t.path().join("lookaside"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("signature-1")), 0o644);
    assert_eq!(mode(&dir) & 0o755, 0o755);
    // No staging leftovers beside the signatures.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["signature-1", "signature-2", "signature-3"]);

    // A shorter set replaces the longer one whole: the stale signature-3 is gone.
    let shorter = vec![real_signature(3)];
    write_signatures(&base, &img, &d, &shorter).unwrap();
    let slots = read_dir_slots(&t.path().join("lookaside")).await;
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].content.as_ref().unwrap(), &shorter[0]);
    assert!(!dir.join("signature-2").exists() && !dir.join("signature-3").exists());

    // An empty set removes them all.
    write_signatures(&base, &img, &d, &[]).unwrap();
    assert!(read_dir_slots(&t.path().join("lookaside")).await.is_empty());
}

#[test]
fn writing_to_http_is_refused_with_what_to_do() {
    let e = write_signatures(
        &Url::parse("https://sigs.example.com/lookaside").unwrap(),
        &r(IMAGE),
        &manifest_digest(),
        &[real_signature(1)],
    )
    .unwrap_err();
    assert!(
        matches!(e, LookasideError::UnsupportedWrite { .. }),
        "{e:?}"
    );
    let m = e.to_string();
    assert!(
        m.contains("https://sigs.example.com/lookaside") && m.contains("lookaside-staging"),
        "{m}"
    );
}
