//! The image config (`application/vnd.oci.image.config.v1+json`) made into an OCI runtime
//! `config.json` by the image-spec's `conversion.md`: Entrypoint+Cmd, Env, WorkingDir, User
//! (resolved against the unpacked root's /etc/passwd and /etc/group, read inside the root), and
//! the annotations it names. Everything conversion.md leaves to the implementation is what
//! `runc spec` (or `runc spec --rootless`) writes, so runc runs the bundle as it is.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApplyError, Rootfs};
use crate::limits::MAX_CONFIG_FILE;

/// The PATH runc's default spec sets, added when the image's Env has none (conversion.md
/// allows adding variables the image does not name).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Default, Deserialize)]
struct ImageConfig {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default, rename = "os.version")]
    os_version: Option<String>,
    #[serde(default, rename = "os.features")]
    os_features: Option<Vec<String>>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    config: Option<ExecConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExecConfig {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    stop_signal: Option<String>,
}

/// The process user `Config.User` resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeUser {
    /// `process.user.uid`.
    pub uid: u32,
    /// `process.user.gid`.
    pub gid: u32,
    /// `process.user.additionalGids` (only for a named user without a group, as
    /// conversion.md says).
    pub additional_gids: Vec<u32>,
    /// The user's home directory from /etc/passwd, if found.
    pub home: Option<String>,
}

/// The runtime config (`config.json`) for the image config `image_config`, whose layers are
/// unpacked in `rootfs`. `rootless` makes the rootless variant (a user namespace mapping the
/// caller to root, no network namespace), as `runc spec --rootless`.
pub fn runtime_config(
    image_config: &[u8],
    rootfs: &Rootfs,
    rootless: bool,
) -> Result<Value, ApplyError> {
    let image: ImageConfig = serde_json::from_slice(image_config)
        .map_err(|e| ApplyError::Config(format!("not a valid image config: {e}")))?;
    let exec = image.config.unwrap_or_default();

    let user = resolve_user(exec.user.as_deref().unwrap_or(""), rootfs)?;

    let mut args: Vec<String> = exec.entrypoint.unwrap_or_default();
    args.extend(exec.cmd.unwrap_or_default());

    let mut env = exec.env.unwrap_or_default();
    let has = |env: &[String], name: &str| {
        env.iter()
            .any(|v| v.split_once('=').map(|(k, _)| k) == Some(name))
    };
    if !has(&env, "PATH") {
        env.push(DEFAULT_PATH.to_string());
    }
    if !has(&env, "HOME")
        && let Some(home) = &user.home
    {
        env.push(format!("HOME={home}"));
    }

    let cwd = exec
        .working_dir
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string());

    let mut annotations: BTreeMap<String, String> = BTreeMap::new();
    let mut implicit = |key: &str, v: Option<String>| {
        if let Some(v) = v {
            annotations.insert(format!("org.opencontainers.image.{key}"), v);
        }
    };
    implicit("os", image.os);
    implicit("architecture", image.architecture);
    implicit("variant", image.variant);
    implicit("os.version", image.os_version);
    implicit("os.features", image.os_features.map(|f| f.join(",")));
    implicit("author", image.author);
    implicit("created", image.created);
    implicit("stopSignal", exec.stop_signal);
    implicit(
        "exposedPorts",
        exec.exposed_ports
            .filter(|p| !p.is_empty())
            .map(|p| p.keys().cloned().collect::<Vec<_>>().join(",")),
    );
    // Labels win over the implicit annotations (conversion.md "Annotations").
    annotations.extend(exec.labels.unwrap_or_default());

    let mut user_json = json!({"uid": user.uid, "gid": user.gid});
    if !user.additional_gids.is_empty()
        && let Some(obj) = user_json.as_object_mut()
    {
        obj.insert("additionalGids".to_string(), json!(user.additional_gids));
    }
    let process = json!({
        "terminal": false,
        "user": user_json,
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {
            "bounding": CAPS, "effective": CAPS, "permitted": CAPS, "ambient": CAPS,
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": true,
    });
    let mut spec = default_spec(process, rootless);
    if !annotations.is_empty()
        && let Some(obj) = spec.as_object_mut()
    {
        obj.insert("annotations".to_string(), json!(annotations));
    }
    Ok(spec)
}

/// runc's default capabilities.
const CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The spec `runc spec` (1.1) writes around `process`, with a writable root as umoci makes it
/// (an image's processes expect to write where they run). `rootless` makes what
/// `runc spec --rootless` changes: a user namespace mapping the caller to root, no network
/// namespace and no cgroup device rules (an unprivileged runc cannot set them), /sys bound from
/// the host (sysfs cannot be mounted without a network namespace), and devpts without the
/// host's tty group.
fn default_spec(process: Value, rootless: bool) -> Value {
    let devpts_options = if rootless {
        json!([
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620"
        ])
    } else {
        json!([
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5"
        ])
    };
    let sys = if rootless {
        json!({"destination": "/sys", "type": "none", "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    } else {
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"]})
    };
    let masked = json!([
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
    ]);
    let readonly = json!([
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger"
    ]);
    let linux = if rootless {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        json!({
            "uidMappings": [{"containerID": 0, "hostID": uid, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": gid, "size": 1}],
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                {"type": "user"},
            ],
            "maskedPaths": masked,
            "readonlyPaths": readonly,
        })
    } else {
        json!({
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": masked,
            "readonlyPaths": readonly,
        })
    };
    json!({
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "ferry",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": devpts_options},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            sys,
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": linux,
    })
}

/// Reads a small file of the image (e.g. /etc/passwd), inside the root; missing is empty.
fn read_inside(rootfs: &Rootfs, path: &str) -> Result<String, ApplyError> {
    let io = |e: std::io::Error| ApplyError::Io {
        path: rootfs.path().join(path.trim_start_matches('/')),
        op: "read the image's user database",
        source: e,
    };
    let Some(f) = rootfs.open_inside(path).map_err(io)? else {
        return Ok(String::new());
    };
    let mut bytes = Vec::new();
    f.take(MAX_CONFIG_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE {
        return Err(ApplyError::Config(format!(
            "{path} in the image is larger than {MAX_CONFIG_FILE} bytes"
        )));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: (*f.first()?).to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn groups(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: (*f.first()?).to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// `Config.User` (`user`, `uid`, `user:group`, `uid:gid`, ...) resolved in the root.
fn resolve_user(spec: &str, rootfs: &Rootfs) -> Result<RuntimeUser, ApplyError> {
    let err = |reason: String| ApplyError::User {
        user: spec.to_string(),
        reason,
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let users = passwd(&read_inside(rootfs, "/etc/passwd")?);
    let (uid, mut gid, home, named) = match user.parse::<u32>() {
        Ok(uid) => {
            let entry = users.iter().find(|u| u.uid == uid);
            (
                uid,
                entry.map(|e| e.gid).unwrap_or(0),
                entry.map(|e| e.home.clone()),
                None,
            )
        }
        Err(_) => {
            let entry = users.iter().find(|u| u.name == user).ok_or_else(|| {
                err(format!(
                    "no user {user:?} in the image's /etc/passwd (conversion.md: a user that does not exist is an error)"
                ))
            })?;
            (entry.uid, entry.gid, Some(entry.home.clone()), Some(user))
        }
    };
    let mut additional_gids = Vec::new();
    if group.is_some() || named.is_some() {
        let all = groups(&read_inside(rootfs, "/etc/group")?);
        match group {
            Some(g) if !g.is_empty() => {
                gid = match g.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => {
                        all.iter()
                            .find(|e| e.name == g)
                            .ok_or_else(|| {
                                err(format!("no group {g:?} in the image's /etc/group"))
                            })?
                            .gid
                    }
                };
            }
            Some(_) => return Err(err("the group after ':' is empty".to_string())),
            None => {
                if let Some(name) = named {
                    for g in &all {
                        if g.members.iter().any(|m| m == name) && !additional_gids.contains(&g.gid)
                        {
                            additional_gids.push(g.gid);
                        }
                    }
                }
            }
        }
    }
    Ok(RuntimeUser {
        uid,
        gid,
        additional_gids,
        home: home.filter(|h| !h.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::ApplyOptions;

    fn rootfs_with(passwd: &str, group: &str) -> (tempfile::TempDir, Rootfs) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("usr/etc")).unwrap();
        std::fs::write(t.path().join("usr/etc/passwd"), passwd).unwrap();
        // /etc is a symlink with an absolute target: resolved inside the root.
        std::os::unix::fs::symlink("/usr/etc", t.path().join("etc")).unwrap();
        // /etc/group is a chain of relative links in different directories:
        // usr/etc/group -> ../share/x/group -> ../../lib/group-file (in usr/).
        std::fs::create_dir_all(t.path().join("usr/share/x")).unwrap();
        std::fs::create_dir_all(t.path().join("usr/lib")).unwrap();
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(target, t.path().join(at)).unwrap();
        };
        link("../share/x/group", "usr/etc/group");
        link("../../lib/group-file", "usr/share/x/group");
        std::fs::write(t.path().join("usr/lib/group-file"), group).unwrap();
        let o = ApplyOptions {
            rootless: true,
            ..ApplyOptions::default()
        };
        let r = Rootfs::open(t.path(), o, admitted().admission()).unwrap();
        (t, r)
    }

    /// The gate's answer on an image under a policy that accepts anything: the proof a root
    /// needs.
    fn admitted() -> crate::policy::Admitted {
        use crate::policy::{BundleIdentity, GateInput, ManifestRole, Policy, SignatureMode};
        let policy = Policy::from_bytes(
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
            "/p.json",
        )
        .unwrap();
        let image =
            crate::reference::ImageReference::parse("docker://registry.example/app:1").unwrap();
        let digest = crate::digest::Digest::sha256_of(b"{}");
        let input = GateInput {
            digest: &digest,
            manifest: b"{}",
            slots: &[],
            role: ManifestRole::Image,
            platform: None,
            searched: &[],
            bundles: BundleIdentity::Named,
            attached_unreadable: &[],
        };
        crate::policy::gate(&policy, &image, SignatureMode::CopyAll, &[input]).unwrap()
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nwheel:x:10:alice,bob\naudio:x:29:alice\n";

    #[test]
    fn users_resolve_in_the_root() {
        let (_t, r) = rootfs_with(PASSWD, GROUP);
        let u = resolve_user("alice", &r).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![10, 29])
        );
        assert_eq!(u.home.as_deref(), Some("/home/alice"));
        let u = resolve_user("alice:wheel", &r).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids.len()), (1000, 10, 0));
        let u = resolve_user("1000", &r).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids.len()), (1000, 1000, 0));
        let u = resolve_user("4242:77", &r).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 77));
        let u = resolve_user("", &r).unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert!(matches!(
            resolve_user("mallory", &r),
            Err(ApplyError::User { .. })
        ));
        assert!(matches!(
            resolve_user("alice:nogroup", &r),
            Err(ApplyError::User { .. })
        ));
    }

    #[test]
    fn converts_by_conversion_md() {
        let (_t, r) = rootfs_with(PASSWD, GROUP);
        let cfg = br#"{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
            "config":{"User":"alice","Env":["FOO=bar","PATH=/bin"],"Entrypoint":["/bin/sh","-c"],
            "Cmd":["echo hi"],"WorkingDir":"/work","StopSignal":"SIGTERM",
            "ExposedPorts":{"80/tcp":{},"53/udp":{}},
            "Labels":{"org.opencontainers.image.os":"from-label","x":"y"}}}"#;
        let spec = runtime_config(cfg, &r, false).unwrap();
        assert_eq!(spec["process"]["args"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(
            spec["process"]["env"],
            json!(["FOO=bar", "PATH=/bin", "HOME=/home/alice"])
        );
        assert_eq!(spec["process"]["cwd"], "/work");
        assert_eq!(spec["process"]["user"]["uid"], 1000);
        assert_eq!(spec["process"]["user"]["additionalGids"], json!([10, 29]));
        let a = &spec["annotations"];
        assert_eq!(a["org.opencontainers.image.os"], "from-label");
        assert_eq!(a["org.opencontainers.image.architecture"], "amd64");
        assert_eq!(a["org.opencontainers.image.stopSignal"], "SIGTERM");
        assert_eq!(a["org.opencontainers.image.exposedPorts"], "53/udp,80/tcp");
        assert_eq!(a["x"], "y");
        assert_eq!(spec["root"]["path"], "rootfs");
        let rl = runtime_config(cfg, &r, true).unwrap();
        assert!(rl["linux"]["uidMappings"].is_array());
        assert!(
            !rl["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .contains(&json!({"type": "network"}))
        );
        assert!(matches!(
            runtime_config(b"[1]", &r, false),
            Err(ApplyError::Config(_))
        ));
    }
}
