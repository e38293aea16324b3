//! The answer to `GetSignatureVerdict`, ferry's own method: who signed the opened image and
//! why the policy admitted it, as JSON (bootc#1636 asks for exactly this). skopeo's proxy has
//! no such method; a client that does not know it never calls it, so protocol 0.2.x clients
//! are unaffected.
//!
//! The document (version 1):
//! ```json
//! {
//!   "version": 1,
//!   "reference": "docker://registry.example/app:1",
//!   "pulled_from": null,
//!   "digest": "sha256:…",          // the image read (for a list, the chosen instance)
//!   "mode": "copy-all",
//!   "verdict": { … },               // the policy's verdict on that image (ferry's Verdict)
//!   "manifests": [ { "digest", "platform", "list", "verdict", "unreadable", "warnings" } ],
//!   "warnings": [ … ]               // what the mode let the image go without
//! }
//! ```

use serde::Serialize;

use super::MethodError;
use super::image::ProxyImage;
use crate::copy::SignatureMode;
use crate::digest::Digest;
use crate::verdict::{UnreadableSlot, Verdict};

/// The version of the document's shape.
pub const VERDICT_DOCUMENT_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    version: u32,
    reference: String,
    pulled_from: Option<String>,
    digest: &'a Digest,
    mode: SignatureMode,
    verdict: Option<&'a Verdict>,
    manifests: Vec<ManifestEntry<'a>>,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct ManifestEntry<'a> {
    digest: &'a Digest,
    platform: Option<&'a str>,
    list: bool,
    verdict: Option<&'a Verdict>,
    unreadable: &'a [UnreadableSlot],
    warnings: &'a [UnreadableSlot],
}

/// The verdict document of an opened image, as JSON.
pub(crate) fn document(image: &ProxyImage, mode: SignatureMode) -> Result<Vec<u8>, MethodError> {
    let admitted = image.admitted();
    let manifests = admitted
        .judgements()
        .iter()
        .map(|j| ManifestEntry {
            digest: &j.digest,
            platform: j.platform.as_deref(),
            list: j.is_list,
            verdict: j.verdict.as_ref(),
            unreadable: &j.unreadable,
            warnings: &j.warnings,
        })
        .collect();
    let doc = Document {
        version: VERDICT_DOCUMENT_VERSION,
        reference: admitted.reference().to_string(),
        pulled_from: admitted.pulled_from(),
        digest: image.digest(),
        mode,
        verdict: admitted.verdict(),
        manifests,
        warnings: admitted.warnings(),
    };
    Ok(serde_json::to_vec(&doc)?)
}
