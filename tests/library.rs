//! ferry as a library, the way a container runtime embeds it: copy options carry the mode, the
//! result carries the verdict and the warnings, progress arrives through a callback.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ferry::ImageReference;
use ferry::{CopyError, CopyOptions, Progress, ProgressEvent, SignatureMode, copy};
use ferry::{Policy, SlotOutcome};
use ferry::{Session, SessionConfig};

struct Events(Mutex<Vec<String>>);

impl Progress for Events {
    fn event(&self, e: ProgressEvent) {
        let s = match e {
            ProgressEvent::Phase(p) => format!("phase {p}"),
            ProgressEvent::BlobStarted { .. } => "blob started".into(),
            ProgressEvent::BlobBytes { .. } => "bytes".into(),
            ProgressEvent::BlobDone { .. } => "blob done".into(),
            ProgressEvent::Warning(w) => format!("warning {w}"),
            _ => "other".into(),
        };
        self.0.lock().unwrap().push(s);
    }
}

fn demo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo")
}

#[tokio::test]
async fn a_runtime_pulls_with_sufficient_subset_and_reads_the_verdict() {
    let t = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(demo().join("policy.json.in"))
        .unwrap()
        .replace("@DEMO@", demo().to_str().unwrap());
    let policy = Arc::new(Policy::from_bytes(text.as_bytes(), "demo policy").unwrap());
    let src =
        ImageReference::parse(&format!("dir:{}", demo().join("hello-dir").display())).unwrap();
    let dst = ImageReference::parse("store:registry.demo.ferry.invalid/hello:1").unwrap();
    let mut config = SessionConfig::default();
    config.store_root = Some(t.path().join("store"));
    let session = Session::new(config);
    let mut options = CopyOptions::new(policy);
    let events = Arc::new(Events(Mutex::new(vec![])));
    options.gate.progress = Some(events.clone());

    // The default mode refuses the unreadable slot, and says which one.
    match copy(&session, &src, &dst, &options).await {
        Err(e @ CopyError::Rejected(_)) => {
            assert!(e.is_rejection());
            assert!(e.to_string().contains("0x3c"), "{e}");
            assert_eq!(e.unreadable().len(), 1);
        }
        other => panic!("expected a signature failure, got {other:?}"),
    }

    options.gate.mode = SignatureMode::SufficientSubset;
    let report = copy(&session, &src, &dst, &options).await.unwrap();
    assert_eq!(report.warnings.len(), 1);
    assert!(report.warnings[0].contains("signature-2"));
    let verdict = report.verdict().unwrap();
    assert!(verdict.accepted);
    // Requirements are numbered from 1, in the library as in text and JSON.
    assert!(matches!(
        verdict.slots[0].outcome,
        SlotOutcome::Accepted { requirement: 1, .. }
    ));
    assert_eq!(verdict.requirements[0].index, 1);
    assert!(verdict.to_string().starts_with("ACCEPTED"), "{verdict}");
    assert!(matches!(
        verdict.slots[1].outcome,
        SlotOutcome::Unreadable { .. }
    ));
    assert!(matches!(
        verdict.slots[2].outcome,
        SlotOutcome::Rejected { .. }
    ));
    let seen = events.0.lock().unwrap().clone();
    assert!(
        seen.iter().any(|e| e == "phase checking signatures"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| e.starts_with("warning")), "{seen:?}");
    assert!(seen.iter().any(|e| e == "blob done"), "{seen:?}");
}

#[tokio::test]
async fn the_library_reads_no_environment_unless_asked() {
    // A session built from SessionConfig::default() has no store, whatever $FERRY_STORE, $HOME
    // or $XDG_DATA_HOME say: a store: reference is an error that says so, not a silent write
    // into ~/.local/share.
    let t = tempfile::tempdir().unwrap();
    let policy = Arc::new(
        Policy::from_bytes(
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
            "inline",
        )
        .unwrap(),
    );
    let src =
        ImageReference::parse(&format!("dir:{}", demo().join("hello-dir").display())).unwrap();
    let dst = ImageReference::parse("store:example.com/app:1").unwrap();
    let session = Session::new(SessionConfig::default());
    let mut options = CopyOptions::new(policy);
    options.gate.mode = SignatureMode::RemoveSignatures;
    let e = copy(&session, &src, &dst, &options).await.unwrap_err();
    assert!(e.to_string().contains("no store is configured"), "{e}");
    assert!(!e.is_rejection());
    // With a store root, the same copy lands there and only there.
    let mut config = SessionConfig::default();
    config.store_root = Some(t.path().join("s"));
    let report = copy(&Session::new(config), &src, &dst, &options)
        .await
        .unwrap();
    assert!(t.path().join("s/index.json").exists());
    assert!(report.verdict().unwrap().accepted);
}

/// A recompressed layer goes to the destination as soon as it is made, in the conversion
/// (before the blob step begins), and the report still says it was copied from its source
/// layer. Fails if the uploads wait for the blob step again.
#[tokio::test]
async fn a_recompressed_layer_is_sent_before_the_blob_step() {
    let t = tempfile::tempdir().unwrap();
    let policy = Arc::new(
        Policy::from_bytes(
            br#"{"default": [{"type": "insecureAcceptAnything"}]}"#,
            "test policy",
        )
        .unwrap(),
    );
    let src =
        ImageReference::parse(&format!("dir:{}", demo().join("hello-dir").display())).unwrap();
    let dst = ImageReference::parse(&format!("dir:{}", t.path().join("out").display())).unwrap();
    let session = Session::new(SessionConfig::default());
    let mut options = CopyOptions::new(policy);
    options.gate.mode = SignatureMode::RemoveSignatures;
    let mut compression =
        ferry::LayerCompression::new(ferry::OutputSpec::new(ferry::OutputFormat::Zstd));
    compression.spool_dir = t.path().to_path_buf();
    options.compression = Some(compression);
    let events = Arc::new(Events(Mutex::new(vec![])));
    options.gate.progress = Some(events.clone());
    let report = copy(&session, &src, &dst, &options).await.unwrap();

    let layer = report.manifests[0]
        .blobs
        .iter()
        .find(|b| b.converted_from.is_some())
        .expect("a recompressed layer in the report");
    assert_eq!(layer.action, ferry::BlobAction::Copied);
    assert!(
        layer.media_type.ends_with("tar+zstd"),
        "{}",
        layer.media_type
    );
    let hex = layer.digest.to_string()["sha256:".len()..].to_string();
    assert!(t.path().join("out").join(hex).is_file());

    let seen = events.0.lock().unwrap().clone();
    let done = seen.iter().position(|e| e == "blob done");
    let blob_step = seen.iter().position(|e| e == "phase copying blobs");
    assert!(
        matches!((done, blob_step), (Some(d), Some(b)) if d < b),
        "the recompressed layer was not sent before the blob step: {seen:?}"
    );
}
