//! The store's lifecycle through the library, as a runtime calls it (issue 15): list, remove
//! (evidence kept unless purged), prune (dry run, then for real; shared blobs kept), disk
//! usage and check, on a store filled by `copy::copy`.

mod support;

use std::path::Path;
use std::sync::Arc;

use ferry::Policy;
use ferry::store::{CheckOptions, PruneOptions, RemoveOptions, Store};
use ferry::{CopyOptions, SignatureMode, copy};
use ferry::{DockerReference, ImageReference};
use ferry::{Session, SessionConfig};
use support::{build_image, pseudo_random, write_oci_image};

fn blob(root: &Path, digest: &str) -> std::path::PathBuf {
    root.join("blobs/sha256").join(&digest["sha256:".len()..])
}

#[tokio::test]
async fn a_runtime_lists_removes_prunes_and_checks_its_store() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    // Two images sharing a base layer, each with a layer of its own.
    let base = pseudo_random(1, 30_000);
    let one = build_image("amd64", vec![base.clone(), pseudo_random(2, 20_000)]);
    let two = build_image("amd64", vec![base.clone(), pseudo_random(3, 25_000)]);
    let layout = t.path().join("src");
    write_oci_image(&layout, "one", &one);
    write_oci_image(&layout, "two", &two);

    let mut config = SessionConfig::default();
    config.store_root = Some(root.clone());
    let session = Session::new(config);
    let policy = Arc::new(
        Policy::from_bytes(
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
            "inline",
        )
        .unwrap(),
    );
    let mut options = CopyOptions::new(policy);
    options.gate.mode = SignatureMode::RemoveSignatures;
    for tag in ["one", "two"] {
        let src = ImageReference::parse(&format!("oci:{}:{tag}", layout.display())).unwrap();
        let dst = ImageReference::parse(&format!("store:example.com/app:{tag}")).unwrap();
        copy(&session, &src, &dst, &options).await.unwrap();
    }

    let store = Store::open(&root).unwrap();
    let listed = store.list().unwrap();
    let names: Vec<&str> = listed.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["example.com/app:one", "example.com/app:two"]);
    assert_eq!(listed[0].digest.to_string(), one.digest);
    assert!(listed[0].complete);
    assert_eq!(listed[0].mode, Some(SignatureMode::RemoveSignatures));
    assert_eq!(listed[0].verdict.name(), "accepted");
    let size_one = (one.manifest.len() + one.config.len()) as u64
        + one.layers.iter().map(|l| l.len() as u64).sum::<u64>();
    assert_eq!(listed[0].size, size_one);

    let usage = store.disk_usage().unwrap();
    assert_eq!(usage.images.len(), 2);
    assert_eq!(usage.records.count, 2, "one record per copy");
    assert_eq!(usage.blobs.shared.count, 1, "the base layer");
    assert_eq!(usage.blobs.shared.bytes, base.len() as u64);
    assert_eq!(usage.blobs.unreferenced.count, 0);

    // Remove one name: the index forgets it, its evidence stays.
    let name_one = DockerReference::parse("example.com/app:one").unwrap();
    let removed = store
        .remove(std::slice::from_ref(&name_one), &RemoveOptions::new())
        .unwrap();
    assert_eq!(removed.removed.len(), 1);
    assert!(removed.purged.is_empty());
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(store.disk_usage().unwrap().records.count, 2);

    // A dry run says what a prune would take (image one's own layer, config and manifest)
    // and takes nothing.
    let own = &one.layers_digests()[1];
    let dry = store.prune(&PruneOptions::new().dry_run(true)).unwrap();
    assert!(dry.dry_run);
    let would: Vec<String> = dry.blobs.iter().map(|b| b.digest.to_string()).collect();
    assert_eq!(would.len(), 3, "{would:?}");
    assert!(
        would.contains(own) && would.contains(&one.digest),
        "{would:?}"
    );
    assert_eq!(
        dry.blob_bytes,
        size_one - base.len() as u64,
        "everything of image one but the shared base"
    );
    assert!(blob(&root, own).exists());

    let pruned = store.prune(&PruneOptions::new()).unwrap();
    let took: Vec<String> = pruned.blobs.iter().map(|b| b.digest.to_string()).collect();
    assert_eq!(took, would);
    assert!(!blob(&root, own).exists());
    assert!(
        blob(&root, &support::sha256(&base)).exists(),
        "the shared base stays"
    );
    assert!(store.check(&CheckOptions::new()).unwrap().is_clean());

    // A flipped byte in the base layer: check names the file and the image that needs it.
    let base_file = blob(&root, &support::sha256(&base));
    let mut bytes = std::fs::read(&base_file).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&base_file, bytes).unwrap();
    let report = store.check(&CheckOptions::new()).unwrap();
    assert!(!report.is_clean());
    let p = &report.problems[0];
    assert_eq!(p.path, base_file);
    assert_eq!(p.used_by, ["example.com/app:two"]);
    assert_eq!(report.repairable().count(), 1);

    // Purging the evidence of the removed name removes its record.
    let purged = store
        .remove(&[name_one], &RemoveOptions::new().purge_evidence(true))
        .unwrap();
    assert!(!purged.purged.is_empty(), "{purged:?}");
    assert_eq!(store.disk_usage().unwrap().records.count, 1);
}
