//! ferry as a drop-in for skopeo's commands (issue 14): the same command lines run with skopeo
//! and with ferry against the real distribution registry, and the results compared — inspect
//! with each flag, list-tags, delete, login and copies with the stored credentials,
//! manifest-digest, copy --digestfile — and format conversion checked by skopeo.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::registry::Registry;
use support::*;

/// `{REG}` in every argument replaced by the registry's host.
fn args_for(template: &[&str], host: &str) -> Vec<String> {
    template.iter().map(|a| a.replace("{REG}", host)).collect()
}

fn both(template: &[&str], host: &str) -> (Run, Run) {
    let args = args_for(template, host);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    (skopeo(&a), ferry(&a))
}

/// How a row's outputs must agree.
#[derive(Clone, Copy, Debug)]
enum Same {
    /// Byte for byte.
    Bytes,
    /// As JSON: every field skopeo prints has the same value in ferry's output (ferry may print
    /// fields newer skopeo versions print, such as LayersData).
    JsonFields,
}

fn run_with_stdin(bin: &Path, args: &[&str], stdin: &str) -> Run {
    run_with_stdin_env(bin, args, stdin, &[("NO_COLOR", "1")])
}

#[test]
fn the_same_command_lines_give_the_same_results_as_skopeo() {
    let reg = Registry::start();
    let host = reg.host();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    // An image with labels and a creation time, so every field has something to compare.
    let layers = vec![pseudo_random(151, 3000), pseudo_random(152, 2000)];
    let config = serde_json::to_vec(&serde_json::json!({
        "created": "2026-01-02T03:04:05Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin", "A=<b&c>"], "Labels": {"org.example.team": "ferry", "version": "1.2"}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha256(l)).collect::<Vec<_>>()},
    }))
    .unwrap();
    let mut image = build_image("amd64", layers);
    let mut m: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    m["config"]["digest"] = sha256(&config).into();
    m["config"]["size"] = config.len().into();
    image.manifest = serde_json::to_vec_pretty(&m).unwrap();
    image.digest = sha256(&image.manifest);
    image.config = config;
    write_oci_image(&src, "v1", &image);
    for tag in ["v1", "v2", "latest"] {
        ferry(&[
            "copy",
            "-q",
            "--policy",
            policy.to_str().unwrap(),
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", src.display()),
            &format!("docker://{host}/ns/app:{tag}"),
        ])
        .ok();
    }

    let table: &[(&[&str], Same)] = &[
        (
            &["inspect", "--tls-verify=false", "docker://{REG}/ns/app:v1"],
            Same::JsonFields,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--no-tags",
                "docker://{REG}/ns/app:v1",
            ],
            Same::JsonFields,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "-n",
                "docker://{REG}/ns/app:v1",
            ],
            Same::JsonFields,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--creds",
                "any:thing",
                "docker://{REG}/ns/app:v1",
            ],
            Same::JsonFields,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--no-creds",
                "docker://{REG}/ns/app:v1",
            ],
            Same::JsonFields,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--registry-token",
                "tok",
                "docker://{REG}/ns/app:v1",
            ],
            Same::JsonFields,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--username",
                "u",
                "--password",
                "p",
                "docker://{REG}/ns/app:v1",
            ],
            Same::JsonFields,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--retry-times",
                "1",
                "docker://{REG}/ns/app:v1",
            ],
            Same::JsonFields,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--raw",
                "docker://{REG}/ns/app:v1",
            ],
            Same::Bytes,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--config",
                "--raw",
                "docker://{REG}/ns/app:v1",
            ],
            Same::Bytes,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--config",
                "docker://{REG}/ns/app:v1",
            ],
            Same::Bytes,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Digest}}",
                "docker://{REG}/ns/app:v1",
            ],
            Same::Bytes,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Name}}",
                "docker://{REG}/ns/app:v1",
            ],
            Same::Bytes,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "-f",
                "{{.Architecture}}/{{.Os}}",
                "docker://{REG}/ns/app:v1",
            ],
            Same::Bytes,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Created}}",
                "docker://{REG}/ns/app:v1",
            ],
            Same::Bytes,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Labels}}",
                "docker://{REG}/ns/app:v1",
            ],
            Same::Bytes,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Labels.version}} {{.Labels.missing}}",
                "docker://{REG}/ns/app:v1",
            ],
            Same::Bytes,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.RepoTags}} {{.Layers}} {{.Env}}",
                "docker://{REG}/ns/app:v1",
            ],
            Same::Bytes,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{range .RepoTags}}{{.}},{{end}}",
                "docker://{REG}/ns/app:v1",
            ],
            Same::Bytes,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{json .}}",
                "docker://{REG}/ns/app:v1",
            ],
            Same::JsonFields,
        ),
        (
            &[
                "inspect",
                "--tls-verify=false",
                "--format",
                "json",
                "docker://{REG}/ns/app:v1",
            ],
            Same::JsonFields,
        ),
        (
            &["list-tags", "--tls-verify=false", "docker://{REG}/ns/app"],
            Same::Bytes,
        ),
        (
            &[
                "list-tags",
                "--tls-verify=false",
                "--no-creds",
                "docker://{REG}/ns/app",
            ],
            Same::Bytes,
        ),
    ];
    for (template, same) in table {
        let (s, f) = both(template, &host);
        let line = args_for(template, &host).join(" ");
        assert_eq!(s.code, 0, "skopeo {line}: {}", s.stderr);
        assert_eq!(f.code, 0, "ferry {line}: {}", f.stderr);
        match same {
            Same::Bytes => assert_eq!(f.stdout, s.stdout, "{line}"),
            Same::JsonFields => {
                let sv: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
                let fv: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
                for (k, v) in sv.as_object().unwrap() {
                    assert_eq!(fv.get(k), Some(v), "{line}: field {k}");
                }
            }
        }
    }

    // Errors agree on failing: a missing tag, a repository with a tag for list-tags.
    for template in [
        &[
            "inspect",
            "--tls-verify=false",
            "docker://{REG}/ns/app:nope",
        ][..],
        &[
            "list-tags",
            "--tls-verify=false",
            "docker://{REG}/ns/app:v1",
        ][..],
        &["list-tags", "--tls-verify=false", "docker://{REG}/ns/none"][..],
    ] {
        let (s, f) = both(template, &host);
        assert_ne!(s.code, 0, "{template:?}");
        assert_ne!(f.code, 0, "{template:?}");
    }

    // manifest-digest of the same file.
    let manifest = t.path().join("manifest.json");
    std::fs::write(&manifest, &image.manifest).unwrap();
    let (s, f) = both(&["manifest-digest", manifest.to_str().unwrap()], &host);
    assert_eq!((s.code, f.code), (0, 0));
    assert_eq!(f.stdout, s.stdout);
    assert_eq!(f.stdout.trim(), image.digest);

    // copy --digestfile: the same contents.
    let (sd, fd) = (t.path().join("s.digest"), t.path().join("f.digest"));
    skopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--src-tls-verify=false",
        "--digestfile",
        sd.to_str().unwrap(),
        &format!("docker://{host}/ns/app:v1"),
        &format!("dir:{}", t.path().join("sdir").display()),
    ])
    .ok();
    ferry(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--src-tls-verify=false",
        "--digestfile",
        fd.to_str().unwrap(),
        &format!("docker://{host}/ns/app:v1"),
        &format!("dir:{}", t.path().join("fdir").display()),
    ])
    .ok();
    assert_eq!(std::fs::read(&fd).unwrap(), std::fs::read(&sd).unwrap());
    assert_eq!(std::fs::read_to_string(&fd).unwrap(), image.digest);

    // delete, then inspect fails with both tools; skopeo deletes one tag, ferry another (of a
    // second image each, so the first delete does not take the other's manifest).
    for (tool, seed) in [("skopeo", 153), ("ferry", 154)] {
        let other = t.path().join(format!("other-{tool}"));
        make_oci_image(&other, "v1", seed, 1, 500);
        ferry(&[
            "copy",
            "-q",
            "--policy",
            policy.to_str().unwrap(),
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", other.display()),
            &format!("docker://{host}/ns/del-{tool}:v1"),
        ])
        .ok();
        let target = format!("docker://{host}/ns/del-{tool}:v1");
        let args = ["delete", "--tls-verify=false", target.as_str()];
        if tool == "skopeo" {
            skopeo(&args).ok();
        } else {
            ferry(&args).ok();
        }
        let (s, f) = both(&["inspect", "--tls-verify=false", &target], &host);
        assert_ne!(s.code, 0, "skopeo still sees {target}");
        assert_ne!(f.code, 0, "ferry still sees {target}");
    }
    // Deleting what is not there fails with both.
    let (s, f) = both(
        &[
            "delete",
            "--tls-verify=false",
            "docker://{REG}/ns/del-ferry:v1",
        ],
        &host,
    );
    assert_ne!(s.code, 0);
    assert_ne!(f.code, 0);
    assert!(f.stderr.contains("del-ferry"), "{}", f.stderr);
}

#[test]
fn skopeos_root_flags_before_the_command_work_as_in_skopeo() {
    // skopeo takes --policy, --insecure-policy, --registries.d, --override-* and
    // --command-timeout before the command; the same command lines work with ferry.
    let reg = Registry::start();
    let host = reg.host();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    let (index, _, images) = make_oci_index(&src, "v1", 7, &["amd64", "arm64", "s390x"]);
    ferry(&[
        "copy",
        "-q",
        "--all",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{host}/ns/multi:v1"),
    ])
    .ok();

    // inspect chooses the image of the overridden platform, as skopeo does.
    for line in [
        &[
            "--override-arch",
            "arm64",
            "inspect",
            "--tls-verify=false",
            "docker://{REG}/ns/multi:v1",
        ][..],
        &[
            "--override-os",
            "linux",
            "--override-arch=arm64",
            "--debug",
            "--command-timeout",
            "60s",
            "inspect",
            "--tls-verify=false",
            "docker://{REG}/ns/multi:v1",
        ],
        &[
            "--policy",
            "/nonexistent/ignored-by-inspect.json",
            "--override-arch",
            "arm64",
            "inspect",
            "--tls-verify=false",
            "docker://{REG}/ns/multi:v1",
        ],
    ] {
        let (s, f) = both(line, &host);
        let (s, f) = (s.ok(), f.ok());
        let (sv, fv): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&s.stdout).unwrap(),
            serde_json::from_str(&f.stdout).unwrap(),
        );
        // skopeo prints the list's digest with the chosen image's fields.
        assert_eq!(sv["Architecture"], "arm64", "{line:?}: skopeo");
        for field in ["Digest", "Architecture", "Os", "Layers"] {
            assert_eq!(fv[field], sv[field], "{line:?}: {field}");
        }
    }

    // copy with the policy (and the platform) before the command: the same image lands.
    for (i, root) in [
        vec!["--insecure-policy", "--override-arch", "s390x"],
        vec![
            "--policy",
            policy.to_str().unwrap(),
            "--override-arch",
            "s390x",
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let (sd, fd) = (
            t.path().join(format!("s{i}")),
            t.path().join(format!("f{i}")),
        );
        let copy = |out: &Path| {
            let mut a: Vec<String> = root.iter().map(|x| x.to_string()).collect();
            a.extend([
                "copy".into(),
                "--src-tls-verify=false".into(),
                format!("docker://{host}/ns/multi:v1"),
                format!("dir:{}", out.display()),
            ]);
            a
        };
        let (sa, fa) = (copy(&sd), copy(&fd));
        skopeo(&sa.iter().map(String::as_str).collect::<Vec<_>>()).ok();
        ferry(&fa.iter().map(String::as_str).collect::<Vec<_>>()).ok();
        let manifest = std::fs::read(fd.join("manifest.json")).unwrap();
        assert_eq!(manifest, std::fs::read(sd.join("manifest.json")).unwrap());
        assert_eq!(
            sha256(&manifest),
            images[2].digest,
            "{root:?}: the s390x image"
        );
    }

    // skopeo's --multi-arch all is --all: the list and every image in it.
    let all = t.path().join("all");
    ferry(&[
        "--insecure-policy",
        "copy",
        "-q",
        "--multi-arch",
        "all",
        "--src-tls-verify=false",
        &format!("docker://{host}/ns/multi:v1"),
        &format!("dir:{}", all.display()),
    ])
    .ok();
    assert_eq!(std::fs::read(all.join("manifest.json")).unwrap(), index);
    for img in &images {
        let hex = &img.digest["sha256:".len()..];
        assert!(all.join(format!("{hex}.manifest.json")).exists(), "{hex}");
    }

    // Without any policy, both refuse the same way: not an unknown flag, a missing policy.
    let (s, f) = both(
        &[
            "--policy",
            "/nonexistent/policy.json",
            "copy",
            "--src-tls-verify=false",
            "docker://{REG}/ns/multi:v1",
            "dir:/nonexistent/out",
        ],
        &host,
    );
    assert_ne!(s.code, 0);
    assert_eq!(f.code, 3, "{}", f.stderr);
    assert!(
        f.stderr.contains("/nonexistent/policy.json"),
        "{}",
        f.stderr
    );
}

#[test]
fn login_stores_credentials_that_copies_use_and_skopeo_reads() {
    let reg = Registry::start_with_password("alice", "s3cret");
    let host = reg.host();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 155, 1, 1000);
    let (fauth, sauth) = (
        t.path().join("ferry-auth.json"),
        t.path().join("skopeo-auth.json"),
    );

    // A wrong password is refused, and nothing is stored.
    let r = run_with_stdin(
        &ferry_bin(),
        &[
            "login",
            "--tls-verify=false",
            "--authfile",
            fauth.to_str().unwrap(),
            "-u",
            "alice",
            "--password-stdin",
            &host,
        ],
        "wrong\n",
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("401"), "{}", r.stderr);
    assert!(!fauth.exists());

    let r = run_with_stdin(
        &ferry_bin(),
        &[
            "login",
            "--tls-verify=false",
            "--authfile",
            fauth.to_str().unwrap(),
            "-u",
            "alice",
            "--password-stdin",
            &host,
        ],
        "s3cret\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = run_with_stdin(
        &require_tool("skopeo", "skopeo"),
        &[
            "login",
            "--tls-verify=false",
            "--authfile",
            sauth.to_str().unwrap(),
            "-u",
            "alice",
            "--password-stdin",
            &host,
        ],
        "s3cret\n",
    );
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(r.stdout, s.stdout);
    // The same entry as skopeo writes.
    let fj: serde_json::Value = serde_json::from_slice(&std::fs::read(&fauth).unwrap()).unwrap();
    let sj: serde_json::Value = serde_json::from_slice(&std::fs::read(&sauth).unwrap()).unwrap();
    assert_eq!(fj["auths"][&host]["auth"], sj["auths"][&host]["auth"]);

    // --get-login, from either tool's file.
    for file in [&fauth, &sauth] {
        let (s, f) = both(
            &[
                "login",
                "--get-login",
                "--authfile",
                file.to_str().unwrap(),
                "{REG}",
            ],
            &host,
        );
        assert_eq!((s.code, f.code), (0, 0), "{}", f.stderr);
        assert_eq!(f.stdout, s.stdout);
        assert_eq!(f.stdout.trim(), "alice");
    }

    // A copy with the stored credentials (ferry's file), and inspects by each tool with the
    // other's file.
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
        "--authfile",
        fauth.to_str().unwrap(),
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{host}/ns/app:v1"),
    ])
    .ok();
    let s = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--authfile",
        fauth.to_str().unwrap(),
        &format!("docker://{host}/ns/app:v1"),
    ])
    .ok();
    assert!(s.stdout.contains(&image.digest), "{}", s.stdout);
    let f = ferry(&[
        "inspect",
        "--tls-verify=false",
        "--authfile",
        sauth.to_str().unwrap(),
        &format!("docker://{host}/ns/app:v1"),
    ])
    .ok();
    assert!(f.stdout.contains(&image.digest), "{}", f.stdout);
    // Without credentials the registry refuses.
    let f = ferry(&[
        "inspect",
        "--tls-verify=false",
        "--no-creds",
        "--authfile",
        fauth.to_str().unwrap(),
        &format!("docker://{host}/ns/app:v1"),
    ])
    .code(3);
    assert!(f.stderr.contains("401"), "{}", f.stderr);

    // Per-side auth files (--src-authfile, --dest-authfile) win over --authfile, in copy as in
    // skopeo copy, and in sync as in skopeo sync.
    let empty = t.path().join("empty-auth.json");
    std::fs::write(&empty, r#"{"auths":{}}"#).unwrap();
    let side_auth = |src_auth: &Path, dest_auth: &Path, to: &str| {
        vec![
            "--src-tls-verify=false".to_string(),
            "--dest-tls-verify=false".to_string(),
            "--authfile".to_string(),
            empty.display().to_string(),
            "--src-authfile".to_string(),
            src_auth.display().to_string(),
            "--dest-authfile".to_string(),
            dest_auth.display().to_string(),
            format!("docker://{host}/ns/app:v1"),
            format!("docker://{host}/{to}"),
        ]
    };
    for (tool, bin) in [
        ("ferry", ferry_bin()),
        ("skopeo", require_tool("skopeo", "skopeo")),
    ] {
        let copy = |a: Vec<String>| {
            let mut args = vec!["copy".to_string(), "--retry-times".into(), "0".into()];
            args.extend(["--policy".into(), policy.display().to_string()]);
            args.extend(a);
            run_with_stdin(
                &bin,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
                "",
            )
        };
        let r = copy(side_auth(&sauth, &fauth, &format!("{tool}/side:v1")));
        assert_eq!(r.code, 0, "{tool}: {}", r.stderr);
        let r = copy(side_auth(&sauth, &empty, &format!("{tool}/side:v2")));
        assert_ne!(
            r.code, 0,
            "{tool}: the destination's empty auth file is used"
        );
        let r = copy(side_auth(&empty, &fauth, &format!("{tool}/side:v3")));
        assert_ne!(r.code, 0, "{tool}: the source's empty auth file is used");
    }
    let r = ferry(&[
        "sync",
        "--policy",
        policy.to_str().unwrap(),
        "--src",
        "docker",
        "--dest",
        "docker",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--authfile",
        empty.to_str().unwrap(),
        "--src-authfile",
        sauth.to_str().unwrap(),
        "--dest-authfile",
        fauth.to_str().unwrap(),
        &format!("{host}/ns/app:v1"),
        &format!("{host}/mirror"),
    ])
    .ok();
    assert!(r.stderr.contains("1 copied"), "{}", r.stderr);

    // The single-image commands' credentials flags, against this registry that needs them:
    // the same command lines work with both, and wrong or no credentials fail with both.
    for line in [
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "alice:s3cret",
            "docker://{REG}/ns/app:v1",
        ][..],
        &[
            "inspect",
            "--tls-verify=false",
            "--username",
            "alice",
            "--password",
            "s3cret",
            "docker://{REG}/ns/app:v1",
        ],
        &[
            "list-tags",
            "--tls-verify=false",
            "--creds",
            "alice:s3cret",
            "docker://{REG}/ns/app",
        ],
    ] {
        let (s, f) = both(line, &host);
        let (s, f) = (s.ok(), f.ok());
        let (sv, fv): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&s.stdout).unwrap(),
            serde_json::from_str(&f.stdout).unwrap(),
        );
        for field in ["Digest", "Tags", "Repository"] {
            assert_eq!(fv.get(field), sv.get(field), "{line:?}: {field}");
        }
    }
    for line in [
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "alice:wrong",
            "docker://{REG}/ns/app:v1",
        ][..],
        &[
            "inspect",
            "--tls-verify=false",
            "--no-creds",
            "docker://{REG}/ns/app:v1",
        ],
        &[
            "list-tags",
            "--tls-verify=false",
            "--creds",
            "bob:s3cret",
            "docker://{REG}/ns/app",
        ],
    ] {
        let (s, f) = both(line, &host);
        assert_ne!(s.code, 0, "{line:?}: skopeo");
        assert_eq!(f.code, 3, "{line:?}: {}", f.stderr);
        assert!(f.stderr.contains("401"), "{line:?}: {}", f.stderr);
    }

    // logout: the same words from each on its own file, and a second logout fails with both.
    let s = skopeo(&["logout", "--authfile", sauth.to_str().unwrap(), &host]).ok();
    let f = ferry(&["logout", "--authfile", fauth.to_str().unwrap(), &host]).ok();
    assert_eq!(f.stdout, s.stdout);
    assert_eq!(f.stdout, format!("Removed login credentials for {host}\n"));
    let s = skopeo(&["logout", "--authfile", sauth.to_str().unwrap(), &host]);
    let f = ferry(&["logout", "--authfile", fauth.to_str().unwrap(), &host]).code(3);
    assert_ne!(s.code, 0, "{}", s.stderr);
    assert!(
        s.stderr.contains("not logged in") && f.stderr.contains("not logged in"),
        "skopeo: {}\nferry: {}",
        s.stderr,
        f.stderr
    );
    let r = ferry(&[
        "copy",
        "--retry-times",
        "0",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
        "--authfile",
        fauth.to_str().unwrap(),
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{host}/ns/app:v2"),
    ])
    .code(3);
    assert!(r.stderr.contains("401"), "{}", r.stderr);
}

#[test]
fn oci_to_v2s2_and_back_is_accepted_by_skopeo_and_matches_its_conversion() {
    let reg = Registry::start();
    let host = reg.host();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 156, 2, 2000);
    let oci = format!("oci:{}:v1", src.display());

    // OCI -> v2s2 into the registry; skopeo inspects it and sees a Docker manifest.
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &oci,
        &format!("docker://{host}/ns/app:v2s2"),
    ])
    .ok();
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{host}/ns/app:v2s2"),
    ])
    .ok();
    let m: serde_json::Value = serde_json::from_str(&raw.stdout).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar"
    );
    assert_eq!(m["config"]["digest"], sha256(&image.config));
    skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/ns/app:v2s2"),
    ])
    .ok();
    // skopeo's own conversion gives the same bytes.
    let sdir = t.path().join("skopeo-v2s2");
    skopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--format",
        "v2s2",
        &oci,
        &format!("dir:{}", sdir.display()),
    ])
    .ok();
    assert_eq!(
        std::fs::read(sdir.join("manifest.json")).unwrap(),
        raw.stdout.as_bytes()
    );

    // And back to OCI (a new config blob, as containers/image makes it), into another repo.
    let report = t.path().join("report.json");
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--format",
        "oci",
        "--report",
        report.to_str().unwrap(),
        &format!("docker://{host}/ns/app:v2s2"),
        &format!("docker://{host}/ns/back:oci"),
    ])
    .ok();
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{host}/ns/back:oci"),
    ])
    .ok();
    let m: serde_json::Value = serde_json::from_str(&raw.stdout).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    let inspected = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/ns/back:oci"),
    ])
    .ok();
    let iv: serde_json::Value = serde_json::from_str(&inspected.stdout).unwrap();
    assert_eq!(iv["Layers"], serde_json::json!(image.layers_digests()));
    let sdir2 = t.path().join("skopeo-oci");
    skopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--format",
        "oci",
        &format!("dir:{}", sdir.display()),
        &format!("dir:{}", sdir2.display()),
    ])
    .ok();
    assert_eq!(
        std::fs::read(sdir2.join("manifest.json")).unwrap(),
        raw.stdout.as_bytes()
    );
    // The report names the source manifest the verdict is about and the blob the conversion made.
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let man = &r["manifests"][0];
    assert_eq!(man["digest"], sha256(raw.stdout.as_bytes()));
    assert_ne!(man["converted_from"], man["digest"]);
    assert!(man["converted_from"].is_string(), "{r}");
    assert!(
        man["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["from"].as_str().is_some_and(|f| f.contains("conversion"))),
        "{r}"
    );
}

#[test]
fn conversion_that_would_keep_signatures_is_refused_and_signing_the_converted_image_works() {
    let t = tempfile::tempdir().unwrap();
    let gpg = support::gpg::Gpg::new();
    let key = gpg.gen_key("Convert Test <convert@ferry.test>");
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 157, 1, 1000);
    // A signed dir: image.
    let signed = t.path().join("signed");
    let policy_any = insecure_policy(t.path());
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy_any.to_str().unwrap(),
        "--sign-by",
        &key.fpr,
        "--sign-key",
        key.secret.to_str().unwrap(),
        "--sign-identity",
        "registry.example/app:1",
        &format!("oci:{}:v1", src.display()),
        &format!("dir:{}", signed.display()),
    ])
    .ok();
    assert!(signed.join("signature-1").exists());
    let policy = t.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key.public,
            "signedIdentity": {"type": "exactReference", "dockerReference": "registry.example/app:1"}}]})
        .to_string(),
    )
    .unwrap();
    let out = t.path().join("out");
    let r = ferry(&[
        "copy",
        "--policy",
        policy.to_str().unwrap(),
        "--format",
        "v2s2",
        &format!("dir:{}", signed.display()),
        &format!("dir:{}", out.display()),
    ])
    .code(3);
    assert!(
        r.stderr.contains("invalidate the 1 source signature")
            && r.stderr.contains("--signatures remove-signatures")
            && r.stderr.contains("--sign-by"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    // The gate still judges the source (a rejected image is not converted either).
    let other = gpg.gen_key("Other <other@ferry.test>");
    let wrong = t.path().join("wrong.json");
    std::fs::write(
        &wrong,
        serde_json::json!({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": other.public}]}).to_string(),
    )
    .unwrap();
    ferry(&[
        "copy",
        "--policy",
        wrong.to_str().unwrap(),
        "--remove-signatures",
        "--format",
        "v2s2",
        &format!("dir:{}", signed.display()),
        &format!("dir:{}", out.display()),
    ])
    .code(1);
    // Without the source signatures, and signed again: the new signature is over the new digest.
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--remove-signatures",
        "--format",
        "v2s2",
        "--sign-by",
        &key.fpr,
        "--sign-key",
        key.secret.to_str().unwrap(),
        "--sign-identity",
        "registry.example/app:1",
        &format!("dir:{}", signed.display()),
        &format!("dir:{}", out.display()),
    ])
    .ok();
    let converted = std::fs::read(out.join("manifest.json")).unwrap();
    assert_ne!(sha256(&converted), image.digest);
    let r = gpg
        .skopeo_verify(
            &out.join("manifest.json"),
            "registry.example/app:1",
            &key.fpr,
            &out.join("signature-1"),
        )
        .ok();
    assert!(r.stdout.contains(&sha256(&converted)), "{}", r.stdout);
    // And the converted image passes the same policy when read back.
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--format",
        "v2s2",
        &format!("dir:{}", out.display()),
        &format!("dir:{}", t.path().join("again").display()),
    ])
    .ok();
}

#[test]
fn a_registry_token_is_sent_as_the_bearer_token_instead_of_asking_the_token_service() {
    use support::http::{HttpServer, Reply, counting};
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 158, 1, 1000);
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/ns/app:v1", reg.host()),
    ])
    .ok();
    // In front of the registry: only "Bearer given-token" passes; the token service refuses
    // everyone, so only a token given on the command line can work.
    let port_cell = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let pc = port_cell.clone();
    let proxy = HttpServer::start(
        counting(move |req, _| {
            if req.path.starts_with("/token") {
                return Reply::status(401);
            }
            if req.header("authorization") == Some("Bearer given-token") {
                return Reply::forward();
            }
            Reply::Bytes {
                status: 401,
                headers: vec![(
                    "WWW-Authenticate".into(),
                    format!(
                        r#"Bearer realm="http://{}/token",service="ferry-test""#,
                        pc.get().unwrap()
                    ),
                )],
                body:
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                        .to_vec(),
            }
        }),
        Some(reg.host()),
    );
    port_cell.set(proxy.host()).unwrap();
    let image_ref = format!("docker://{}/ns/app:v1", proxy.host());
    let (s, f) = both(
        &[
            "inspect",
            "--tls-verify=false",
            "--registry-token",
            "given-token",
            "--no-tags",
            &image_ref,
        ],
        &proxy.host(),
    );
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(f.code, 0, "{}", f.stderr);
    assert!(f.stdout.contains(&image.digest), "{}", f.stdout);
    assert_eq!(proxy.count("GET", "/token"), 0);
    // Without it, the token service is asked and refuses.
    let r = ferry(&[
        "inspect",
        "--tls-verify=false",
        "--retry-times",
        "0",
        &image_ref,
    ])
    .code(3);
    assert!(r.stderr.contains("token"), "{}", r.stderr);
    // On copy: --src-registry-token.
    ferry(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--src-tls-verify=false",
        "--src-registry-token",
        "given-token",
        &image_ref,
        &format!("dir:{}", t.path().join("out").display()),
    ])
    .ok();
}

#[test]
fn a_list_converted_with_all_is_the_list_skopeo_makes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    make_oci_index(&src, "v1", 159, &["amd64", "arm64/v8"]);
    let oci = format!("oci:{}:v1", src.display());
    let (f1, s1) = (t.path().join("f1"), t.path().join("s1"));
    ferry(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--all",
        "--format",
        "v2s2",
        &oci,
        &format!("dir:{}", f1.display()),
    ])
    .ok();
    skopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--all",
        "--format",
        "v2s2",
        &oci,
        &format!("dir:{}", s1.display()),
    ])
    .ok();
    let list = std::fs::read(f1.join("manifest.json")).unwrap();
    assert_eq!(list, std::fs::read(s1.join("manifest.json")).unwrap());
    let v: serde_json::Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(
        v["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    for entry in v["manifests"].as_array().unwrap() {
        let hex = &entry["digest"].as_str().unwrap()["sha256:".len()..];
        let instance = std::fs::read(f1.join(format!("{hex}.manifest.json"))).unwrap();
        assert_eq!(sha256(&instance), entry["digest"].as_str().unwrap());
        assert_eq!(
            instance,
            std::fs::read(s1.join(format!("{hex}.manifest.json"))).unwrap()
        );
    }
    // And back: the OCI index skopeo makes from the same Docker list.
    let (f2, s2) = (t.path().join("f2"), t.path().join("s2"));
    ferry(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--all",
        "--format",
        "oci",
        &format!("dir:{}", s1.display()),
        &format!("dir:{}", f2.display()),
    ])
    .ok();
    skopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--all",
        "--format",
        "oci",
        &format!("dir:{}", s1.display()),
        &format!("dir:{}", s2.display()),
    ])
    .ok();
    assert_eq!(
        std::fs::read(f2.join("manifest.json")).unwrap(),
        std::fs::read(s2.join("manifest.json")).unwrap()
    );
    // skopeo reads ferry's converted list as a list.
    let r = skopeo(&["inspect", "--raw", &format!("dir:{}", f2.display())]).ok();
    assert!(
        r.stdout.contains("application/vnd.oci.image.index.v1+json"),
        "{}",
        r.stdout
    );
}

#[test]
fn go_flag_spellings_work_and_flags_for_what_ferry_does_not_do_are_refused_with_the_reason() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 156, 1, 1000);
    let from = format!("oci:{}:v1", src.display());
    let copy = |extra: &[&str], to: &Path| {
        let mut a = vec!["copy", "-q", "--policy", policy.to_str().unwrap()];
        a.extend_from_slice(extra);
        let to = format!("dir:{}", to.display());
        a.extend([from.as_str(), to.as_str()]);
        ferry(&a)
    };
    // (--src-shared-blob-dir and --dest-shared-blob-dir work since issue 31: see
    // shared_blob_dirs_are_written_and_read_as_skopeo_does; the --dest-compress flags since issue
    // 30: tests/recompress.rs; --additional-tag is refused only for destinations other than
    // docker-archive:, tests/archives.rs.)
    let refused: [(&[&str], &str, &str); 6] = [
        (
            &["--additional-tag", "x:y"],
            "--additional-tag",
            "docker-archive",
        ),
        (
            &["--encryption-key", "jwe:/k.pem"],
            "--encryption-key",
            "does not encrypt",
        ),
        (
            &["--decryption-key", "/k.pem"],
            "--decryption-key",
            "does not encrypt",
        ),
        (
            &["--multi-arch", "index-only"],
            "index-only",
            "without its images",
        ),
        (
            &[
                "--preserve-digests",
                "--format",
                "v2s2",
                "--remove-signatures",
            ],
            "--preserve-digests with --format",
            "new digest",
        ),
        (
            &["--src-daemon-host", "unix:///run/docker.sock"],
            "daemon-host",
            "docker-daemon",
        ),
    ];
    for (i, (flags, names, why)) in refused.iter().enumerate() {
        let to = t.path().join(format!("refused-{i}"));
        let r = copy(flags, &to).code(2);
        assert!(
            r.stderr.contains(names) && r.stderr.contains(why),
            "{flags:?}: {}",
            r.stderr
        );
        assert!(!to.exists(), "{flags:?}: nothing written");
    }
    // What ferry always does is accepted and changes nothing.
    let to = t.path().join("accepted");
    copy(
        &[
            "--dest-precompute-digests",
            "--dest-oci-accept-uncompressed-layers",
            "--dest-decompress=false",
            // skopeo's list handling for a single image, and a digest that stays.
            "--multi-arch",
            "system",
            "--preserve-digests",
            "--tmpdir",
            "/nonexistent",
            // Switches take Go's `=true` and `=false`.
            "--all=false",
            "--remove-signatures=true",
            // A bool flag without `=` takes no value, as Go's flags: the next argument is the
            // source, not the flag's value.
            "--src-tls-verify",
        ],
        &to,
    )
    .ok();
    assert_eq!(
        std::fs::read(to.join("manifest.json")).unwrap(),
        image.manifest
    );
    // `=false` is the switch off, `=true` on: inspect --raw prints the manifest itself.
    let raw = ferry(&["inspect", "--raw=true", &from]).ok();
    assert_eq!(raw.stdout.as_bytes(), image.manifest.as_slice());
    let not_raw = ferry(&["inspect", "--raw=false", &from]).ok();
    let v: serde_json::Value = serde_json::from_str(&not_raw.stdout).unwrap();
    assert_eq!(v["Digest"], image.digest.as_str());
    // Another value is still refused, as by Go.
    ferry(&["inspect", "--raw=yes", &from]).code(2);
}

// ---------------------------------------------------------------------------------------------
// Issue 31: ferry installed as skopeo. Each command line runs with the real skopeo and with
// ferry through a link named `skopeo` (or FERRY_COMPAT=skopeo), and exit statuses and the lines
// scripts look for are compared.

/// A directory holding a link named `skopeo` to the ferry binary under test.
struct SkopeoLink {
    dir: tempfile::TempDir,
}

impl SkopeoLink {
    fn new() -> SkopeoLink {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(ferry_bin(), dir.path().join("skopeo")).unwrap();
        SkopeoLink { dir }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("skopeo")
    }

    /// ferry as skopeo, with `env` added.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = Command::new(self.path());
        c.args(args).env("NO_COLOR", "1");
        for (k, v) in env {
            c.env(k, v);
        }
        run(&mut c)
    }
}

/// The real skopeo with `env` added.
fn skopeo_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(require_tool("skopeo", "skopeo"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run(&mut c)
}

fn show(r: &Run) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        r.code, r.stdout, r.stderr
    )
}

/// skopeo and ferry-as-skopeo ended alike: same exit status and, for each of `lines`, both
/// outputs contain it.
fn alike(what: &str, skopeo: &Run, ferry: &Run, lines: &[&str]) {
    assert_eq!(
        skopeo.code,
        ferry.code,
        "{what}: exit status differs\n--- skopeo\n{}\n--- ferry as skopeo\n{}",
        show(skopeo),
        show(ferry)
    );
    for l in lines {
        for (who, r) in [("skopeo", skopeo), ("ferry as skopeo", ferry)] {
            assert!(
                r.stdout.contains(l) || r.stderr.contains(l),
                "{what}: {who} does not say {l:?}\n{}",
                show(r)
            );
        }
    }
}

fn push_test_image(host: &str, name: &str, seed: u64) -> TestImage {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", seed, 2, 1500);
    ferry(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{host}/{name}"),
    ])
    .ok();
    image
}

#[test]
fn invoked_as_skopeo_every_failure_exits_1_and_the_version_is_skopeos() {
    let reg = Registry::start();
    let host = reg.host();
    push_test_image(&host, "ns/app:v1", 311);
    let link = SkopeoLink::new();
    let t = tempfile::tempdir().unwrap();
    let reject = t.path().join("reject.json");
    std::fs::write(&reject, r#"{"default":[{"type":"reject"}]}"#).unwrap();
    let out = t.path().join("out");

    // The version: skopeo's line, and ferry's after it on the same line (as skopeo built from
    // git adds "commit: …"), whether asked with --version, -v (skopeo's short form) or
    // `version`; by the link or by FERRY_COMPAT.
    let real = skopeo(&["--version"]).ok();
    let real_line = real.stdout.trim().to_string();
    assert_eq!(
        real_line, "skopeo version 1.9.3",
        "the skopeo this test compares with"
    );
    for (how, r) in [
        ("--version", link.run(&["--version"], &[])),
        ("-v", link.run(&["-v"], &[])),
        ("version", link.run(&["version"], &[])),
        (
            "FERRY_COMPAT",
            ferry_in(&["--version"], &[("FERRY_COMPAT", "skopeo")]),
        ),
    ] {
        let r = r.ok();
        assert_eq!(r.stdout.lines().count(), 1, "{how}: {}", r.stdout);
        assert!(
            r.stdout.starts_with(&format!("{real_line} ferry: ")),
            "{how}: {}",
            r.stdout
        );
        // What scripts do with it: the third word is skopeo's version.
        assert_eq!(r.stdout.split_whitespace().nth(2), Some("1.9.3"), "{how}");
    }
    // Invoked as ferry, ferry's own.
    assert!(ferry(&["--version"]).ok().stdout.starts_with("ferry "));

    // Failures of every kind: skopeo exits 1 for each, ferry as skopeo too (and ferry as
    // itself keeps its 2 for usage, 3 for anything but a rejection). The lines are what
    // skopeo's system tests and scripts grep for.
    let missing = format!("docker://{host}/ns/app:nope");
    let cases: Vec<(&str, Vec<String>, i32, Vec<&str>)> = vec![
        (
            "a missing tag",
            vec![
                "inspect".into(),
                "--tls-verify=false".into(),
                missing.clone(),
            ],
            3,
            vec!["manifest unknown"],
        ),
        (
            "an unreachable registry",
            vec!["inspect".into(), "docker://127.0.0.1:1/ns/app:v1".into()],
            3,
            vec!["connection refused"],
        ),
        (
            "an unknown flag",
            vec!["inspect".into(), "--no-such-flag".into(), missing.clone()],
            2,
            vec![],
        ),
        (
            "a rejected image",
            vec![
                "copy".into(),
                "--policy".into(),
                reject.display().to_string(),
                "--src-tls-verify=false".into(),
                format!("docker://{host}/ns/app:v1"),
                format!("dir:{}", out.display()),
            ],
            1,
            vec!["Source image rejected"],
        ),
        (
            "delete of a missing tag",
            vec![
                "delete".into(),
                "--tls-verify=false".into(),
                missing.clone(),
            ],
            3,
            vec![],
        ),
        (
            "list-tags of a missing repository",
            vec![
                "list-tags".into(),
                "--tls-verify=false".into(),
                format!("docker://{host}/no/such"),
            ],
            3,
            vec![],
        ),
    ];
    for (what, args, ferry_code, lines) in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let s = skopeo(&a);
        assert_eq!(s.code, 1, "{what}: skopeo\n{}", show(&s));
        // skopeo creates a dir: destination before it checks the policy; ferry must not.
        let _ = std::fs::remove_dir_all(&out);
        let f = link.run(&a, &[]);
        alike(what, &s, &f, lines);
        // skopeo's fatal log line, which scripts grep (a usage error is clap's).
        if *ferry_code != 2 {
            assert!(
                f.stderr.contains("level=fatal msg="),
                "{what}: {}",
                show(&f)
            );
        }
        let by_variable = ferry_in(&a, &[("FERRY_COMPAT", "skopeo")]);
        assert_eq!(by_variable.code, 1, "{what}: {}", show(&by_variable));
        let own = ferry(&a);
        assert_eq!(own.code, *ferry_code, "{what}: ferry's own\n{}", show(&own));
        assert!(!out.exists(), "{what}: nothing written");
    }
    // FERRY_COMPAT=ferry keeps ferry's own statuses under the name skopeo.
    let a = ["inspect", "--tls-verify=false", missing.as_str()];
    assert_eq!(link.run(&a, &[("FERRY_COMPAT", "ferry")]).code, 3);

    // Success is 0 for both, with the same answer.
    let a = ["inspect", "--tls-verify=false", "--raw"];
    let image = format!("docker://{host}/ns/app:v1");
    let s = skopeo(&[a[0], a[1], a[2], &image]).ok();
    let f = link.run(&[a[0], a[1], a[2], &image], &[]).ok();
    assert_eq!(s.stdout, f.stdout);
}

/// Docker's and skopeo's documented way to make a private registry's certificate: a
/// self-signed certificate that openssl marks as a CA.
fn docker_docs_certificate(dir: &Path, name: &str) -> support::pki::CertPair {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let r = run(Command::new(require_tool("openssl", "openssl"))
        .args(["req", "-x509", "-newkey", "rsa:4096", "-nodes", "-sha256"])
        .args(["-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert))
    .ok();
    let text = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert))
    .ok();
    assert!(
        text.stdout.contains("CA:TRUE"),
        "openssl marks the certificate as a CA, as the issue describes: {}\n{}",
        text.stdout,
        r.stderr
    );
    support::pki::CertPair { cert, key }
}

#[test]
fn a_trusted_certificate_presented_as_the_servers_own_is_accepted_as_skopeo_accepts_it() {
    let t = tempfile::tempdir().unwrap();
    let server = docker_docs_certificate(t.path(), "registry");
    let reg = Registry::start_tls_with(&server, None);
    let port = reg.host().rsplit(':').next().unwrap().to_string();
    let host = format!("localhost:{port}");
    let link = SkopeoLink::new();
    let empty_home = t.path().join("empty-home");
    std::fs::create_dir_all(&empty_home).unwrap();
    let home = empty_home.to_str().unwrap();

    // --cert-dir with the certificate as ca.crt, as Docker's documentation says.
    let cert_dir = t.path().join("cert-dir");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(&server.cert, cert_dir.join("ca.crt")).unwrap();
    let cert_dir = cert_dir.to_str().unwrap();

    // Pushed through the destination side's verifier.
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 312, 1, 2000);
    link.run(
        &[
            "copy",
            "--insecure-policy",
            "--dest-cert-dir",
            cert_dir,
            &format!("oci:{}:v1", src.display()),
            &format!("docker://{host}/ns/app:v1"),
        ],
        &[("HOME", home)],
    )
    .ok();
    let image_ref = format!("docker://{host}/ns/app:v1");

    // certs.d in the user's configuration, as containers-certs.d(5) says.
    let user_home = t.path().join("user-home");
    let certs_d = user_home.join(".config/containers/certs.d").join(&host);
    std::fs::create_dir_all(&certs_d).unwrap();
    std::fs::copy(&server.cert, certs_d.join("ca.crt")).unwrap();
    let user_home = user_home.to_str().unwrap();

    // A different self-signed certificate, trusted instead.
    let other = docker_docs_certificate(t.path(), "other");
    let other_dir = t.path().join("other-dir");
    std::fs::create_dir_all(&other_dir).unwrap();
    std::fs::copy(&other.cert, other_dir.join("ca.crt")).unwrap();
    let other_dir = other_dir.to_str().unwrap();
    let cert_file = server.cert.to_str().unwrap();
    let by_ip = format!("docker://{}/ns/app:v1", reg.host());

    // (what, command line, environment, accepted)
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, bool);
    let cases: Vec<Case> = vec![
        (
            "--cert-dir",
            vec!["inspect", "--cert-dir", cert_dir, &image_ref],
            vec![("HOME", home)],
            true,
        ),
        (
            "certs.d",
            vec!["inspect", &image_ref],
            vec![("HOME", user_home)],
            true,
        ),
        (
            "the system's store (SSL_CERT_FILE)",
            vec!["inspect", &image_ref],
            vec![("HOME", home), ("SSL_CERT_FILE", cert_file)],
            true,
        ),
        (
            "not trusted",
            vec!["inspect", &image_ref],
            vec![("HOME", home)],
            false,
        ),
        (
            "another certificate trusted",
            vec!["inspect", "--cert-dir", other_dir, &image_ref],
            vec![("HOME", home)],
            false,
        ),
        (
            "trusted, but not for the name used (127.0.0.1)",
            vec!["inspect", "--cert-dir", cert_dir, &by_ip],
            vec![("HOME", home)],
            false,
        ),
    ];
    for (what, args, env, accepted) in &cases {
        let s = skopeo_env(args, env);
        let f = link.run(args, env);
        alike(what, &s, &f, &[]);
        assert_eq!(s.code == 0, *accepted, "{what}\n{}", show(&s));
        if *accepted {
            let digest = |r: &Run| {
                serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["Digest"].clone()
            };
            assert_eq!(digest(&s), digest(&f), "{what}");
            assert_eq!(digest(&f), image.digest.as_str(), "{what}");
        }
    }
    // The refusals say why, in words.
    let f = link.run(&["inspect", &image_ref], &[("HOME", home)]);
    assert!(
        f.stderr.contains("presents a CA certificate")
            && f.stderr.contains("Trust the registry's CA"),
        "{}",
        show(&f)
    );
    let f = link.run(
        &["inspect", "--cert-dir", cert_dir, &by_ip],
        &[("HOME", home)],
    );
    assert!(f.stderr.contains("is not for 127.0.0.1"), "{}", show(&f));

    // Nothing else is loosened: a CA that is not the presented certificate. The server
    // presents a certificate marked as a CA, signed by a CA that is trusted; webpki (and
    // ferry) refuse a CA certificate as a server's own unless it is itself trusted, where Go
    // would take it: ferry stays stricter here, on purpose.
    let ca = support::pki::ca(t.path(), "issuing-ca");
    let ca_leaf = support::pki::signed_by(
        t.path(),
        &ca,
        "ca-leaf",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign\nsubjectAltName=DNS:localhost\n",
    );
    let reg2 = Registry::start_tls_with(&ca_leaf, None);
    let port2 = reg2.host().rsplit(':').next().unwrap().to_string();
    let ca_dir = t.path().join("issuing-ca-dir");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::copy(&ca.cert, ca_dir.join("ca.crt")).unwrap();
    let args = [
        "list-tags",
        "--cert-dir",
        ca_dir.to_str().unwrap(),
        &format!("docker://localhost:{port2}/ns/app"),
    ]
    .map(str::to_string);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let f = link.run(&a, &[("HOME", home)]);
    assert_eq!(f.code, 1, "{}", show(&f));
    assert!(
        f.stderr.contains("presents a CA certificate"),
        "{}",
        show(&f)
    );
    let own = ferry_in(&a, &[("HOME", home)]);
    assert_eq!(own.code, 3, "{}", show(&own));
    // The presented CA certificate itself trusted: accepted, as in the first cases.
    std::fs::copy(&ca_leaf.cert, ca_dir.join("server.crt")).unwrap();
    let f = link.run(&a, &[("HOME", home)]);
    assert!(
        !f.stderr.contains("presents a CA certificate") && f.stderr.contains("404"),
        "trusted itself, the handshake passes (the repository is empty: 404)\n{}",
        show(&f)
    );
}

/// A GnuPG home made as skopeo's system test (050-signing.bats) makes it: RSA keys for alice
/// and bob protected by a passphrase, generated by gpg.
struct GnupgHome {
    dir: tempfile::TempDir,
    passphrase_file: std::path::PathBuf,
}

impl GnupgHome {
    fn new(passphrase: &str) -> GnupgHome {
        require_tool("gpg", "gnupg");
        require_tool("gpg-agent", "gpg-agent");
        // A short path: the agent's socket lives in it.
        let dir = tempfile::Builder::new()
            .prefix("fg")
            .tempdir_in("/tmp")
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let passphrase_file = dir.path().join("passphrase-file");
        std::fs::write(&passphrase_file, format!("{passphrase}\n")).unwrap();
        GnupgHome {
            dir,
            passphrase_file,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![("GNUPGHOME", self.dir.path().to_str().unwrap())]
    }

    fn gpg(&self, args: &[&str], stdin: &str) -> Run {
        run_with_stdin_env(Path::new("gpg"), args, stdin, &self.env())
    }

    fn gen_key(&self, name: &str, passphrase: &str) -> String {
        self.gpg(
            &["--batch", "--pinentry-mode", "loopback", "--gen-key", "--passphrase", passphrase],
            &format!(
                "Key-Type: RSA\nName-Real: Test key - {name}\nName-email: {name}@test.redhat.com\n%commit\n"
            ),
        )
        .ok();
        let colons = self
            .gpg(
                &[
                    "--with-colons",
                    "--list-keys",
                    &format!("{name}@test.redhat.com"),
                ],
                "",
            )
            .ok();
        colons
            .stdout
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap()
            .to_string()
    }

    fn export(&self, name: &str) -> std::path::PathBuf {
        let out = self.dir.path().join(format!("pubkey-{name}.gpg"));
        self.gpg(
            &[
                "--armor",
                "--output",
                out.to_str().unwrap(),
                "--export",
                &format!("{name}@test.redhat.com"),
            ],
            "",
        )
        .ok();
        out
    }

    /// gpgconf, for the agent's life (the test starts and stops the agent; signing never runs
    /// a GnuPG program).
    fn gpgconf(&self, args: &[&str]) {
        let mut c = Command::new(require_tool("gpgconf", "gpgconf"));
        c.args(args).envs(self.env());
        run(&mut c).ok();
    }

    /// A fresh agent: no passphrase cached.
    fn restart_agent(&self) {
        self.gpgconf(&["--kill", "gpg-agent"]);
        self.gpgconf(&["--launch", "gpg-agent"]);
    }
}

impl Drop for GnupgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .envs(self.env())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

fn run_with_stdin_env(bin: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn sign_by_a_gnupg_identity_signs_through_gpg_agent_and_skopeo_verifies() {
    let passphrase = "correct horse battery";
    let g = GnupgHome::new(passphrase);
    let alice = g.gen_key("alice", passphrase);
    g.gen_key("bob", passphrase);
    let (alice_pub, bob_pub) = (g.export("alice"), g.export("bob"));
    g.restart_agent();
    let link = SkopeoLink::new();
    let home = g.path().to_str().unwrap().to_string();
    let pass = g.passphrase_file.to_str().unwrap().to_string();
    // ferry runs with no PATH: it cannot start gpg, gpgconf or any other program, so whatever
    // it signs, gpg-agent signed over its socket.
    let ferry_env = [("GNUPGHOME", home.as_str()), ("PATH", "/nonexistent")];
    let skopeo_env_ = [("GNUPGHOME", home.as_str())];
    let t = tempfile::tempdir().unwrap();
    let manifest = t.path().join("manifest.json");
    std::fs::write(&manifest, br#"{"schemaVersion":2,"config":{}}"#).unwrap();
    let m = manifest.to_str().unwrap();

    // standalone-sign with each of gpg's names for the key; skopeo verifies each signature.
    for (n, id) in [
        "alice@test.redhat.com",
        alice.as_str(),
        &alice[24..],
        "<alice@test.redhat.com>",
        "Test key - alice",
    ]
    .iter()
    .enumerate()
    {
        let sig = t.path().join(format!("sig-{n}"));
        let args = [
            "standalone-sign",
            m,
            "localhost:5000/busybox",
            id,
            "-o",
            sig.to_str().unwrap(),
            "--passphrase-file",
            &pass,
        ];
        let s = skopeo_env(&args, &skopeo_env_);
        let f = link.run(&args, &ferry_env);
        alike(&format!("standalone-sign {id}"), &s, &f, &[]);
        assert_eq!(f.code, 0, "{}", show(&f));
        let v = skopeo_env(
            &[
                "standalone-verify",
                m,
                "localhost:5000/busybox",
                &alice,
                sig.to_str().unwrap(),
            ],
            &skopeo_env_,
        );
        assert_eq!(
            v.code,
            0,
            "skopeo verifies ferry's signature ({id})\n{}",
            show(&v)
        );
        assert!(v.stdout.contains("Signature verified"), "{}", show(&v));
    }

    // copy --sign-by: the signature goes to the lookaside storage registries.d names, and
    // skopeo's policy accepts it for alice's repository and rejects it for bob's (skopeo's
    // system test, 050-signing.bats).
    let reg = Registry::start();
    let host = reg.host();
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 313, 1, 1500);
    let dir_src = format!("dir:{}", t.path().join("busybox").display());
    ferry(&[
        "copy",
        "-q",
        "--insecure-policy",
        &format!("oci:{}:v1", src.display()),
        &dir_src,
    ])
    .ok();
    let registries_d = t.path().join("registries.d");
    std::fs::create_dir_all(&registries_d).unwrap();
    let sigstore = t.path().join("sigstore");
    std::fs::write(
        registries_d.join("registries.yaml"),
        format!(
            "docker:\n  {host}:\n    sigstore: file://{}\n",
            sigstore.display()
        ),
    )
    .unwrap();
    let policy = t.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {
                format!("{host}/myns/alice"): [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": alice_pub}],
                format!("{host}/myns/bob"): [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": bob_pub}],
            }}
        })
        .to_string(),
    )
    .unwrap();
    let rd = registries_d.to_str().unwrap();
    let sign_by = format!("--sign-passphrase-file={pass}");
    for (who, path) in [
        ("skopeo", "myns/alice:by-skopeo"),
        ("ferry", "myns/alice:signed"),
        ("ferry", "myns/bob:signedbyalice"),
    ] {
        let dest = format!("docker://{host}/{path}");
        let args = [
            "--registries.d",
            rd,
            "copy",
            "--dest-tls-verify=false",
            &sign_by,
            "--sign-by=alice@test.redhat.com",
            &dir_src,
            &dest,
        ];
        let r = if who == "skopeo" {
            skopeo_env(&args, &skopeo_env_)
        } else {
            link.run(&args, &ferry_env)
        };
        assert_eq!(r.code, 0, "{who} pushes {path} signed\n{}", show(&r));
    }
    for (path, expected_error) in [
        ("myns/alice:signed", None),
        ("myns/alice:by-skopeo", None),
        ("myns/bob:signedbyalice", Some("Source image rejected")),
    ] {
        let out = t
            .path()
            .join(format!("pulled-{}", path.replace([':', '/'], "-")));
        let r = skopeo_env(
            &[
                "--registries.d",
                rd,
                "--policy",
                policy.to_str().unwrap(),
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{host}/{path}"),
                &format!("dir:{}", out.display()),
            ],
            &skopeo_env_,
        );
        match expected_error {
            None => assert_eq!(r.code, 0, "skopeo accepts {path}\n{}", show(&r)),
            Some(e) => {
                assert_eq!(r.code, 1, "{}", show(&r));
                assert!(r.stderr.contains(e), "{}", show(&r));
            }
        }
    }

    // A wrong passphrase (the agent restarted, so none is cached): both fail with gpg-agent's
    // "Bad passphrase", which skopeo's system test greps.
    let wrong = t.path().join("wrong");
    std::fs::write(&wrong, "not it\n").unwrap();
    let sig = t.path().join("sig-wrong");
    let args = [
        "standalone-sign",
        m,
        "localhost:5000/busybox",
        "alice@test.redhat.com",
        "-o",
        sig.to_str().unwrap(),
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ];
    g.restart_agent();
    let f = link.run(&args, &ferry_env);
    g.restart_agent();
    let s = skopeo_env(&args, &skopeo_env_);
    alike("a wrong passphrase", &s, &f, &["Bad passphrase"]);
    assert!(!sig.exists(), "nothing written");

    // No such key.
    let args_nobody = [
        "standalone-sign",
        m,
        "localhost:5000/busybox",
        "carol@test.redhat.com",
        "-o",
        sig.to_str().unwrap(),
        "--passphrase-file",
        &pass,
    ];
    let s = skopeo_env(&args_nobody, &skopeo_env_);
    let f = link.run(&args_nobody, &ferry_env);
    alike("no such key", &s, &f, &[]);
    assert!(
        f.stderr
            .contains("no key matches \\\"carol@test.redhat.com\\\""),
        "{}",
        show(&f)
    );
    assert_eq!(ferry_in(&args_nobody, &ferry_env).code, 3);

    // The key is known, but the agent holds no secret key for it: a home with alice's public
    // key only.
    let public_only = GnupgHome::new(passphrase);
    public_only
        .gpg(&["--batch", "--import", alice_pub.to_str().unwrap()], "")
        .ok();
    public_only.restart_agent();
    let po = public_only.path().to_str().unwrap();
    let args = [
        "standalone-sign",
        m,
        "localhost:5000/busybox",
        "alice@test.redhat.com",
        "-o",
        sig.to_str().unwrap(),
        "--passphrase-file",
        &pass,
    ];
    let s = skopeo_env(&args, &[("GNUPGHOME", po)]);
    let f = link.run(&args, &[("GNUPGHOME", po), ("PATH", "/nonexistent")]);
    alike("no secret key", &s, &f, &[]);
    assert!(
        f.stderr.contains("holds no secret signing key"),
        "{}",
        show(&f)
    );

    // No agent: a clear error (GPGME would start one; ferry starts no program).
    g.gpgconf(&["--kill", "gpg-agent"]);
    let f = link.run(&args, &ferry_env);
    assert_eq!(f.code, 1, "{}", show(&f));
    assert!(
        f.stderr
            .contains("no gpg-agent is running for the GnuPG home"),
        "{}",
        show(&f)
    );
    assert!(!sig.exists(), "nothing written");
}

#[test]
fn sync_dry_run_and_instance_choice_say_what_skopeo_says() {
    let reg = Registry::start();
    let host = reg.host();
    push_test_image(&host, "ns/app:v1", 314);
    let link = SkopeoLink::new();
    let t = tempfile::tempdir().unwrap();

    // sync --dry-run (skopeo's 080-sync.bats): the lines, and nothing written.
    let dir = t.path().join("dir");
    let d = dir.to_str().unwrap();
    let image = format!("{host}/ns/app:v1");
    let args = [
        "sync",
        "--dry-run",
        "--src",
        "docker",
        "--dest",
        "dir",
        "--scoped",
        "--src-tls-verify=false",
        &image,
        d,
    ];
    let s = skopeo(&args);
    // skopeo 1.9.3 creates the destination directory even in a dry run; ferry must not.
    let _ = std::fs::remove_dir_all(&dir);
    let f = link.run(&args, &[]);
    let from_to = format!("from=\"docker://{image}\" to=\"dir:{d}/{image}\"");
    alike(
        "sync --dry-run",
        &s,
        &f,
        &[
            "Would have copied image ref 1/1",
            &from_to,
            "Would have synced 1 images from 1 sources",
        ],
    );
    assert_eq!(f.code, 0);
    assert!(
        f.stderr
            .contains("level=info msg=\"Would have copied image ref 1/1\""),
        "{}",
        show(&f)
    );
    assert!(!dir.exists(), "a dry run writes nothing");
    // As ferry, the same words (without skopeo's log prefix).
    let own = ferry(&args).ok();
    assert!(
        own.stderr
            .contains(&format!("Would have copied image ref 1/1 {from_to}")),
        "{}",
        show(&own)
    );

    // inspect of a list without the wanted platform.
    // inspect of a list without the wanted platform: an OCI index, and a Docker manifest list
    // (containers/image names each its own way).
    let src = t.path().join("list");
    make_oci_index(&src, "v1", 315, &["amd64", "arm64/v8"]);
    for (name, format, list) in [
        ("oci-index", None, "image index"),
        ("docker-list", Some("v2s2"), "manifest list"),
    ] {
        let mut push = vec![
            "copy",
            "-q",
            "--insecure-policy",
            "--all",
            "--dest-tls-verify=false",
        ];
        if let Some(f) = format {
            push.extend(["--format", f]);
        }
        let (from, to) = (
            format!("oci:{}:v1", src.display()),
            format!("docker://{host}/ns/{name}:v1"),
        );
        push.extend([from.as_str(), to.as_str()]);
        ferry(&push).ok();
        let args = [
            "--override-arch",
            "s390x",
            "inspect",
            "--tls-verify=false",
            &to,
        ];
        let s = skopeo(&args);
        let f = link.run(&args, &[]);
        let words = format!(
            "choosing image instance: no image found in {list} for architecture s390x, variant \\\"\\\", OS linux"
        );
        alike(
            &format!("inspect of a {list} without the platform"),
            &s,
            &f,
            &[&words],
        );
        assert_eq!(f.code, 1);
    }
}

fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(p);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn shared_blob_dirs_are_written_and_read_as_skopeo_does() {
    let t = tempfile::tempdir().unwrap();
    let link = SkopeoLink::new();
    let raw = t.path().join("raw");
    make_oci_image(&raw, "v1", 316, 2, 3000);
    let p = |name: &str| t.path().join(name).display().to_string();
    // skopeo compresses uncompressed layers on the way to oci:, ferry copies byte for byte:
    // the source is skopeo's compressed copy, which both then copy as it is.
    let from = format!("oci:{}:v1", p("src"));
    skopeo(&[
        "--insecure-policy",
        "copy",
        &format!("oci:{}:v1", raw.display()),
        &from,
    ])
    .ok();
    let src_index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("src/index.json")).unwrap()).unwrap();
    let digest_of_src = src_index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // Written: blobs (manifests included) in the shared directory, the layout with
    // oci-layout, index.json and an empty blobs/.
    for (who, layout, shared) in [("skopeo", "l-s", "shared-s"), ("ferry", "l-f", "shared-f")] {
        let args = [
            "--insecure-policy",
            "copy",
            "--dest-shared-blob-dir",
            &p(shared),
            &from,
            &format!("oci:{}:v1", p(layout)),
        ];
        let r = if who == "skopeo" {
            skopeo(&args)
        } else {
            link.run(&args, &[])
        };
        assert_eq!(r.code, 0, "{who}\n{}", show(&r));
    }
    assert_eq!(
        tree(&t.path().join("shared-s")),
        tree(&t.path().join("shared-f"))
    );
    assert!(tree(&t.path().join("shared-f")).contains(&format!("sha256/{}", &digest_of_src[7..])));
    assert_eq!(
        tree(&t.path().join("l-f")),
        ["blobs/", "index.json", "oci-layout"]
    );
    assert_eq!(tree(&t.path().join("l-s")), tree(&t.path().join("l-f")));
    let index = |l: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(t.path().join(l).join("index.json")).unwrap())
            .unwrap()
    };
    assert_eq!(index("l-s")["manifests"], index("l-f")["manifests"]);

    // Read: each reads the other's.
    for (who, layout, shared, out) in [
        ("skopeo", "l-f", "shared-f", "d-s"),
        ("ferry", "l-s", "shared-s", "d-f"),
    ] {
        let args = [
            "--insecure-policy",
            "copy",
            "--src-shared-blob-dir",
            &p(shared),
            &format!("oci:{}:v1", p(layout)),
            &format!("dir:{}", p(out)),
        ];
        let r = if who == "skopeo" {
            skopeo(&args)
        } else {
            link.run(&args, &[])
        };
        assert_eq!(r.code, 0, "{who}\n{}", show(&r));
    }
    assert_eq!(tree(&t.path().join("d-s")), tree(&t.path().join("d-f")));
    let args = [
        "inspect",
        "--shared-blob-dir",
        &p("shared-s"),
        &format!("oci:{}:v1", p("l-s")),
    ];
    let s = skopeo(&args).ok();
    let f = link.run(&args, &[]).ok();
    let digest =
        |r: &Run| serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["Digest"].clone();
    assert_eq!(digest(&s), digest(&f));
    assert_eq!(digest(&f), digest_of_src.as_str());
    // Without the shared directory, the layout has no blobs: both fail.
    let args = ["inspect", &format!("oci:{}:v1", p("l-s"))];
    alike(
        "no shared directory",
        &skopeo(&args),
        &link.run(&args, &[]),
        &[],
    );
}
