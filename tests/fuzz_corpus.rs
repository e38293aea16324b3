//! Replays every committed fuzz input on stable, in every `cargo test`: each file of
//! `fuzz/corpus/TARGET/` and any crash the fuzzer saved under `fuzz/artifacts/TARGET/` (kept as
//! regression inputs) goes through the same function the cargo-fuzz target calls
//! (fuzz/targets_common.rs), so a parser change that breaks an input once found interesting
//! fails here without nightly or cargo-fuzz. Fuzzing itself: `scripts/fuzz`.

#[path = "../fuzz/targets_common.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    out.sort();
    out
}

#[test]
fn every_committed_fuzz_input_still_passes() {
    // With RUST_BACKTRACE set (as on the CI machines) every anyhow error inside sequoia captures
    // a backtrace, which makes this replay about 8 times slower (2 s become 16 s). The setting
    // is read once per process, so the replay runs in a child of this test binary without it,
    // unless RUST_LIB_BACKTRACE was chosen explicitly.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "every_committed_fuzz_input_still_passes"])
            .args(["--nocapture", "--test-threads=1"])
            .env("RUST_LIB_BACKTRACE", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the replay failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, run) in targets::TARGETS {
        let corpus = files(&fuzz.join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name}/ is empty or missing: the target's corpus must be committed"
        );
        let artifacts = files(&fuzz.join("artifacts").join(name));
        for path in corpus.iter().chain(&artifacts) {
            let data = std::fs::read(path).unwrap();
            total += 1;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&data))) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name}: {}: {why}", path.display()));
            }
        }
    }
    targets::remove_scratch();
    assert!(
        failures.is_empty(),
        "{} of {total} fuzz inputs fail (reproduce one with `cargo +nightly fuzz run TARGET FILE`):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
