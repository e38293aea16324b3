//! `ferry signatures`: the forensic view of the signatures kept with a stored image and of the
//! records of how it passed the policy.

use std::path::PathBuf;
use std::process::ExitCode;

use ferry::config::registries_d::RegistriesConfig;
use ferry::forensics::{self, Decoded, History};
use ferry::policy::BundleIdentity;
use ferry::reference::{DockerReference, ImageReference};
use ferry::transport::store::Store;
use serde_json::json;

use super::errors::RejectedError;
use super::options::{PolicyArgs, StoreArgs};

/// `ferry signatures` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SignaturesCommand {
    /// Every signature slot of this name's last copy into the store: signer, signed identity,
    /// manifest digest, creation time and the verdict at pull time (including slots that could not
    /// be read and so are not stored). Copies of the same manifest under other names are listed
    /// apart, as theirs.
    List(ListArgs),
    /// The decoded payload of each stored signature (or of one, with --slot).
    Show(ShowArgs),
    /// Copy the manifest, this name's raw stored signatures and its records into a directory.
    Export(ExportArgs),
    /// Evaluate this name's stored signatures against a policy now; exit 0 when accepted, 1
    /// when not.
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
    /// Directory of registries.d YAML files; its sigstore-bundle-identity for the image's scope
    /// says how sigstore bundles that name no image are judged. Default:
    /// ~/.config/containers/registries.d, then /etc/containers/registries.d.
    #[arg(long = "registries.d", value_name = "DIR")]
    registries_d: Option<PathBuf>,
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

fn open(image: &DockerReference, args: &StoreArgs) -> anyhow::Result<(Store, History)> {
    let session = super::options::session(None, args);
    let store = session.store(&ImageReference::Store(image.clone()))?;
    let history = forensics::history(&store, image)?;
    Ok((store, history))
}

fn print_decoded(d: &Decoded) {
    if let Some(e) = &d.error {
        outln!("  decoded:   {e}");
        return;
    }
    outln!("  format:    {}", d.format.as_deref().unwrap_or("?"));
    outln!("  signer:    {}", d.issuers.join(", "));
    if let Some(s) = &d.certificate_subject {
        outln!(
            "  cert:      {s}{}",
            d.certificate_issuer
                .as_ref()
                .map(|i| format!(" (issuer {i})"))
                .unwrap_or_default()
        );
    }
    if let Some(n) = d.rekor_log_index {
        outln!(
            "  rekor:     entry {n}{}",
            d.rekor_integrated_time
                .as_ref()
                .map(|t| format!(" at {t}"))
                .unwrap_or_default()
        );
    }
    outln!(
        "  identity:  {}",
        d.docker_reference.as_deref().unwrap_or("?")
    );
    outln!(
        "  manifest:  {}",
        d.manifest_digest.as_deref().unwrap_or("?")
    );
    outln!("  created:   {}", d.created.as_deref().unwrap_or("?"));
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (_, h) = open(&args.image, &args.store)?;
    if args.format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&h)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{}  {}", h.image, h.manifest_digest);
    if !h.in_store {
        outln!(
            "{} was removed from the store; this is the evidence kept of it",
            h.image
        );
    }
    match &h.last_copy {
        Some(c) => outln!(
            "last copy of this name: {} from {}, mode {}, policy {} ({}); {} record(s) of this name",
            c.time,
            c.source,
            c.mode,
            c.policy.as_deref().unwrap_or("-"),
            c.policy_digest.as_deref().unwrap_or("-"),
            h.records
        ),
        None => outln!("no record of how {} was copied", h.image),
    }
    for s in &h.slots {
        let slot = s
            .source_slot
            .map(|n| format!("source slot {n}"))
            .unwrap_or_else(|| "no source slot".into());
        let stored = s.stored_as.as_deref().unwrap_or("not stored");
        outln!("\n{slot} -> {stored}");
        if let Some(loc) = &s.location {
            outln!("  from:      {loc}");
        }
        match (&s.verdict, &s.note) {
            (Some(v), _) => outln!("  verdict:   {v}"),
            (None, Some(n)) => outln!("  verdict:   {n}"),
            (None, None) => outln!("  verdict:   none recorded"),
        }
        if let Some(d) = &s.decoded {
            print_decoded(d);
        }
    }
    if !h.other_names.is_empty() {
        outln!(
            "\nThe same manifest was also copied into the store under other names; these are their records, not {}'s:",
            h.image
        );
        for c in &h.other_names {
            let verdict = match c.accepted {
                Some(true) => "accepted",
                Some(false) => "rejected",
                None => "not judged (a list)",
            };
            outln!(
                "  {} at {} from {}, mode {}, {verdict} by {}",
                c.destination,
                c.time,
                c.source,
                c.mode,
                c.policy.as_deref().unwrap_or("-")
            );
        }
    }
    for u in &h.unreadable_records {
        outln!("\nunreadable record: {u}");
    }
    Ok(ExitCode::SUCCESS)
}

fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let (_, h) = open(&args.image, &args.store)?;
    let shown = h.show(args.slot)?;
    if args.format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    for s in &shown {
        outln!("{} ({} bytes, {})", s.signature, s.size, s.sha256);
        outln!("{}", serde_json::to_string_pretty(&s.payload)?);
        outln!(
            "signed by {} at {}",
            s.decoded.issuers.join(", "),
            s.decoded.created.as_deref().unwrap_or("?")
        );
    }
    if shown.is_empty() {
        outln!("{} has no stored signatures", h.image);
    }
    Ok(ExitCode::SUCCESS)
}

fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let (store, h) = open(&args.image, &args.store)?;
    let files = h.export(&store, &args.dir)?;
    if args.format == Format::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"directory": args.dir, "files": files}))?
        );
    } else {
        outln!(
            "exported {} file(s) of {} to {}",
            files.len(),
            h.image,
            args.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (store, h) = open(&args.image, &args.store)?;
    let policy = args.policy.load()?;
    let registries = RegistriesConfig::load(
        &args
            .registries_d
            .clone()
            .unwrap_or_else(ferry::config::registries_d::default_dir),
    )?;
    let bundles = match h.judged_reference().docker_reference() {
        Some(d) => registries.sigstore_bundle_identity(&d)?,
        None => BundleIdentity::Named,
    };
    let (as_pulled, verdict) = h.verify(&store, &policy, bundles)?;
    if args.format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        outln!("{as_pulled}: {verdict}");
    }
    if verdict.accepted {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(RejectedError(format!(
            "the signatures kept with {} do not satisfy {}",
            h.image, verdict.policy
        ))
        .into())
    }
}
