//! What the archive tests need to meet podman: a podman with its own throwaway storage, and
//! layers that are real tars (podman extracts them).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Run, pseudo_random, require_tool, run};

/// A real layer: a tar of one file of pseudo-random content, owned by root, as a build makes.
pub fn layer_tar(dir: &Path, seed: u64, size: usize) -> Vec<u8> {
    let src = dir.join(format!("layer-src-{seed}"));
    std::fs::create_dir_all(src.join("data")).expect("mkdir");
    std::fs::write(
        src.join("data").join(format!("file-{seed}")),
        pseudo_random(seed, size),
    )
    .expect("write");
    let out = dir.join(format!("layer-{seed}.tar"));
    run(Command::new(require_tool("tar", "tar"))
        .arg("-C")
        .arg(&src)
        .args(["--owner=0", "--group=0", "-cf"])
        .arg(&out)
        .arg("data"))
    .ok();
    std::fs::read(out).expect("read layer")
}

/// A podman with its own throwaway storage (vfs needs no kernel overlay support).
pub struct Podman {
    root: PathBuf,
    runroot: PathBuf,
}

impl Podman {
    /// A podman whose storage is under `dir`.
    pub fn new(dir: &Path) -> Podman {
        let p = Podman {
            root: dir.join("podman-root"),
            runroot: dir.join("podman-runroot"),
        };
        std::fs::create_dir_all(&p.root).expect("mkdir");
        std::fs::create_dir_all(&p.runroot).expect("mkdir");
        p
    }

    /// Runs `podman ARGS` on that storage.
    pub fn run(&self, args: &[&str]) -> Run {
        let bin = require_tool("podman", "podman");
        run(Command::new(bin)
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .args(args))
    }

    /// `name -> image ID` of every image in the store.
    pub fn images(&self) -> Vec<(String, String)> {
        let out = self
            .run(&[
                "images",
                "--no-trunc",
                "--format",
                "{{.Repository}}:{{.Tag}} {{.ID}}",
            ])
            .ok();
        out.stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, id)| (n.to_string(), id.trim_start_matches("sha256:").to_string()))
            .collect()
    }
}
