//! `ferry signatures`: the forensic view of the signatures kept with a stored image and of the
//! records of how it passed the policy.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ferry::copy::Record;
use ferry::digest::Digest;
use ferry::policy::{self, SlotOutcome};
use ferry::reference::{DockerReference, ImageReference};
use ferry::signature::SignatureSlot;
use ferry::signature::simple;
use ferry::transport::TransportOptions;
use ferry::transport::store::Store;
use serde_json::json;

use super::options::{PolicyArgs, StoreArgs};

/// `ferry signatures` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SignaturesCommand {
    /// Every signature slot of the image's last copy into the store: signer, signed identity,
    /// manifest digest, creation time and the verdict at pull time (including slots that could not
    /// be read and so are not stored).
    List(ListArgs),
    /// The decoded payload of each stored signature (or of one, with --slot).
    Show(ShowArgs),
    /// Copy the raw stored signatures, the manifest and every record into a directory.
    Export(ExportArgs),
    /// Evaluate the stored signatures against a policy now; exit 0 when accepted, 1 when not.
    Verify(VerifyArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Text,
    /// JSON on stdout.
    Json,
}

fn parse_store_image(s: &str) -> Result<DockerReference, String> {
    match ImageReference::parse(s) {
        Ok(ImageReference::Store(r)) => Ok(r),
        Ok(other) => Err(format!("{other} is not in ferry's store: give store:NAME")),
        Err(e) => Err(e.to_string()),
    }
}

/// Flags of `ferry signatures list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The stored image: store:NAME.
    #[arg(value_name = "IMAGE", value_parser = parse_store_image)]
    image: DockerReference,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

/// Flags of `ferry signatures show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The stored image: store:NAME.
    #[arg(value_name = "IMAGE", value_parser = parse_store_image)]
    image: DockerReference,
    /// Only this stored signature (`signature-N` in the store).
    #[arg(long, value_name = "N")]
    slot: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

/// Flags of `ferry signatures export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The stored image: store:NAME.
    #[arg(value_name = "IMAGE", value_parser = parse_store_image)]
    image: DockerReference,
    /// The directory to write into (created; must be empty if it exists).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

/// Flags of `ferry signatures verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The stored image: store:NAME.
    #[arg(value_name = "IMAGE", value_parser = parse_store_image)]
    image: DockerReference,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

/// Runs `ferry signatures ...`.
pub async fn run(cmd: SignaturesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SignaturesCommand::List(a) => list(a),
        SignaturesCommand::Show(a) => show(a),
        SignaturesCommand::Export(a) => export(a),
        SignaturesCommand::Verify(a) => verify(a),
    }
}

struct Opened {
    store: Store,
    digest: Digest,
    signatures: Vec<(usize, Vec<u8>)>,
    records: Vec<(PathBuf, serde_json::Value)>,
}

fn open(image: &DockerReference, store: &StoreArgs) -> anyhow::Result<Opened> {
    let options = TransportOptions {
        store_root: store.store.clone(),
        ..Default::default()
    };
    let root = Store::root(&options)?;
    let store = Store::open(&root)
        .with_context(|| format!("opening ferry's store at {}", root.display()))?;
    let stored = store.resolve(image)?;
    let digest = stored.digest.clone();
    let signatures = store.signatures(&digest)?;
    let records = store.records(&digest)?;
    Ok(Opened {
        store,
        digest,
        signatures,
        records,
    })
}

fn newest_record(records: &[(PathBuf, serde_json::Value)]) -> Option<Record> {
    records
        .iter()
        .filter_map(|(_, v)| serde_json::from_value::<Record>(v.clone()).ok())
        .max_by(|a, b| a.time.cmp(&b.time))
}

fn unix_to_rfc3339(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A stored signature decoded without verification.
fn decode(bytes: &[u8]) -> serde_json::Value {
    match simple::inspect(bytes) {
        Ok(u) => json!({
            "issuers": u.issuers,
            "created": u.created.map(unix_to_rfc3339),
            "docker_reference": u.payload.as_ref().map(|p| p.docker_reference.clone()),
            "manifest_digest": u.payload.as_ref().map(|p| p.manifest_digest.clone()),
            "creator": u.payload.as_ref().and_then(|p| p.creator.clone()),
            "timestamp": u.payload.as_ref().and_then(|p| p.timestamp),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let o = open(&args.image, &args.store)?;
    let record = newest_record(&o.records);
    // Each source slot of the newest record, with the stored file that holds it, if any.
    let mut slots = Vec::new();
    if let Some(r) = &record
        && let Some(v) = &r.manifest.verdict
    {
        for s in &v.slots {
            let stored = r
                .manifest
                .signatures
                .written
                .iter()
                .find(|w| w.source_slot == Some(s.index))
                .map(|w| w.destination_index);
            slots.push(json!({
                "source_slot": s.index,
                "location": s.location,
                "stored_as": stored.map(|i| format!("signature-{i}")),
                "verdict": s.outcome,
                "decoded": stored
                    .and_then(|i| o.signatures.iter().find(|(n, _)| *n == i))
                    .map(|(_, b)| decode(b)),
            }));
        }
    }
    // Stored signatures no record explains (made by --sign-by, or copied in by other means).
    for (n, bytes) in &o.signatures {
        let explained = record.as_ref().is_some_and(|r| {
            r.manifest
                .signatures
                .written
                .iter()
                .any(|w| w.destination_index == *n && w.source_slot.is_some())
        });
        if !explained {
            let origin = record
                .as_ref()
                .and_then(|r| {
                    r.manifest
                        .signatures
                        .written
                        .iter()
                        .find(|w| w.destination_index == *n)
                })
                .map(|_| "signed by ferry during the copy (--sign-by)")
                .unwrap_or("no record of this signature's verdict");
            slots.push(json!({
                "source_slot": null,
                "location": null,
                "stored_as": format!("signature-{n}"),
                "verdict": null,
                "note": origin,
                "decoded": decode(bytes),
            }));
        }
    }
    let out = json!({
        "image": args.image.to_string(),
        "manifest_digest": o.digest.to_string(),
        "store": o.store.root_dir().display().to_string(),
        "records": o.records.len(),
        "last_copy": record.as_ref().map(|r| json!({
            "time": r.time, "source": r.source, "mode": r.mode,
            "policy": r.policy, "policy_digest": r.policy_digest,
            "accepted": r.manifest.verdict.as_ref().map(|v| v.accepted),
            "scope": r.manifest.verdict.as_ref().map(|v| v.scope.clone()),
        })),
        "slots": slots,
    });
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}  {}", args.image, o.digest);
    match &record {
        Some(r) => println!(
            "last copy: {} from {}, mode {}, policy {} ({}); {} record(s)",
            r.time,
            r.source,
            r.mode.name(),
            r.policy.as_deref().unwrap_or("-"),
            r.policy_digest.as_deref().unwrap_or("-"),
            o.records.len()
        ),
        None => println!("no record of how this image was copied"),
    }
    for s in out["slots"].as_array().into_iter().flatten() {
        let slot = s["source_slot"]
            .as_u64()
            .map(|n| format!("source slot {n}"))
            .unwrap_or_else(|| "no source slot".into());
        let stored = s["stored_as"].as_str().unwrap_or("not stored");
        println!("\n{slot} -> {stored}");
        if let Some(loc) = s["location"].as_str() {
            println!("  from:      {loc}");
        }
        match serde_json::from_value::<SlotOutcome>(s["verdict"].clone()) {
            Ok(SlotOutcome::Accepted {
                requirement,
                signer,
                ..
            }) => println!(
                "  verdict:   accepted by requirement {} (key {} {}{})",
                requirement + 1,
                signer.fingerprint.as_deref().unwrap_or("?"),
                signer
                    .user_id
                    .as_deref()
                    .map(|u| format!("\"{u}\""))
                    .unwrap_or_default(),
                signer
                    .key_file
                    .as_deref()
                    .map(|k| format!(", from {k}"))
                    .unwrap_or_default()
            ),
            Ok(SlotOutcome::Rejected { reasons, .. }) => {
                println!("  verdict:   rejected: {}", reasons.join("; "))
            }
            Ok(SlotOutcome::Unreadable { reason }) => println!("  verdict:   unreadable: {reason}"),
            Ok(SlotOutcome::NotExamined { format }) => {
                println!("  verdict:   not examined by the policy ({format})")
            }
            Err(_) => println!(
                "  verdict:   {}",
                s["note"].as_str().unwrap_or("none recorded")
            ),
        }
        let d = &s["decoded"];
        if let Some(e) = d["error"].as_str() {
            println!("  decoded:   {e}");
        } else if d.is_object() {
            println!(
                "  signer:    {}",
                d["issuers"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            );
            println!(
                "  identity:  {}",
                d["docker_reference"].as_str().unwrap_or("?")
            );
            println!(
                "  manifest:  {}",
                d["manifest_digest"].as_str().unwrap_or("?")
            );
            println!("  created:   {}", d["created"].as_str().unwrap_or("?"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let o = open(&args.image, &args.store)?;
    let mut out = Vec::new();
    for (n, bytes) in &o.signatures {
        if args.slot.is_some_and(|s| s != *n) {
            continue;
        }
        let payload = simple::inspect(bytes).ok().and_then(|u| u.payload);
        let raw_payload = payload.as_ref().map(|p| {
            json!({
                "critical": {
                    "type": "atomic container signature",
                    "image": {"docker-manifest-digest": p.manifest_digest},
                    "identity": {"docker-reference": p.docker_reference},
                },
                "optional": {"creator": p.creator, "timestamp": p.timestamp},
            })
        });
        out.push(json!({
            "signature": format!("signature-{n}"),
            "size": bytes.len(),
            "sha256": Digest::sha256_of(bytes).to_string(),
            "decoded": decode(bytes),
            "payload": raw_payload,
        }));
    }
    if let Some(s) = args.slot
        && out.is_empty()
    {
        anyhow::bail!(
            "{} has no stored signature-{s} (it has {})",
            args.image,
            o.signatures.len()
        );
    }
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for s in &out {
            println!(
                "{} ({} bytes, {})",
                s["signature"].as_str().unwrap_or(""),
                s["size"],
                s["sha256"].as_str().unwrap_or("")
            );
            println!("{}", serde_json::to_string_pretty(&s["payload"])?);
            println!(
                "signed by {} at {}",
                s["decoded"]["issuers"], s["decoded"]["created"]
            );
        }
        if out.is_empty() {
            println!("{} has no stored signatures", args.image);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let o = open(&args.image, &args.store)?;
    if args.dir.exists() && std::fs::read_dir(&args.dir)?.next().is_some() {
        anyhow::bail!(
            "{} exists and is not empty: export into a new or empty directory",
            args.dir.display()
        );
    }
    std::fs::create_dir_all(args.dir.join("records"))
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let manifest = o.store.manifest_bytes(&o.digest)?;
    std::fs::write(args.dir.join("manifest.json"), &manifest)?;
    let mut files = vec!["manifest.json".to_string()];
    for (n, bytes) in &o.signatures {
        let name = format!("signature-{n}");
        std::fs::write(args.dir.join(&name), bytes)?;
        files.push(name);
    }
    for (path, value) in &o.records {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "record.json".into());
        std::fs::write(
            args.dir.join("records").join(&name),
            serde_json::to_vec_pretty(value)?,
        )?;
        files.push(format!("records/{name}"));
    }
    if args.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"directory": args.dir, "files": files}))?
        );
    } else {
        println!(
            "exported {} file(s) of {} to {}",
            files.len(),
            args.image,
            args.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let o = open(&args.image, &args.store)?;
    let policy = args.policy.load()?;
    let manifest = o.store.manifest_bytes(&o.digest)?;
    let slots: Vec<SignatureSlot> = o
        .signatures
        .iter()
        .map(|(n, b)| SignatureSlot {
            index: *n,
            location: o.store.signature_path(&o.digest, *n).display().to_string(),
            content: Ok(b.clone()),
        })
        .collect();
    // Judged as it was pulled: the source of the newest record (so the policy scopes that gated
    // the pull apply), else the image's docker identity.
    let as_pulled = newest_record(&o.records)
        .and_then(|r| ImageReference::parse(&r.source).ok())
        .unwrap_or_else(|| ImageReference::Docker(args.image.clone()));
    let verdict = policy::evaluate(&policy, &as_pulled, &manifest, &slots)?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        super::policy::print_verdict(&as_pulled, &verdict);
    }
    Ok(if verdict.accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
