//! `ferry signatures`: the forensic view of the signatures kept with a stored image and of the
//! records of how it passed the policy; for an image outside the store (a registry, a layout,
//! a directory), the signatures its source serves now.

use std::path::PathBuf;
use std::process::ExitCode;

use ferry::signatures::Decoded;
use ferry::store::Store;
use ferry::store::{History, Served, SlotView};
use ferry::{DockerReference, ImageReference};
use serde_json::json;

use super::errors::RejectedError;
use super::options::{ImageAccessArgs, PolicyArgs};

/// `ferry signatures` subcommands. Each takes a stored image (`store:NAME`: what was kept
/// with it and the records of its pulls) or any other image (`docker://`, `oci:`, `dir:`: the
/// signatures its source serves now, with skopeo's registry flags).
#[derive(Debug, clap::Subcommand)]
pub enum SignaturesCommand {
    /// Every signature slot of this name's last copy into the store: signer, signed identity,
    /// manifest digest, creation time and the verdict at pull time (including slots that could not
    /// be read and so are not stored). Copies of the same manifest under other names are listed
    /// apart, as theirs. For an image outside the store: every slot its source serves, read or
    /// not, and what each says.
    List(ListArgs),
    /// The decoded payload of each stored signature (or of one, with --slot); outside the
    /// store, of each signature the source serves.
    Show(ShowArgs),
    /// Copy the manifest, this name's raw stored signatures and its records into a directory;
    /// outside the store, the manifest and the signatures byte for byte as served.
    Export(ExportArgs),
    /// Evaluate this name's stored signatures against a policy now; exit 0 when accepted, 1
    /// when not. Outside the store, the signatures the source serves, as a copy-all copy would
    /// judge them (as `ferry policy check`).
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

/// The image a `signatures` command is about.
#[derive(Debug, Clone)]
pub enum Subject {
    /// In ferry's store: the forensic view of what was kept.
    Stored(DockerReference),
    /// Anywhere else: what its source serves now.
    Served(ImageReference),
}

fn parse_subject(s: &str) -> Result<Subject, String> {
    match ImageReference::parse(s) {
        Ok(r) => match super::options::named_in(&r, "store") {
            Some(name) => Ok(Subject::Stored(name)),
            None => Ok(Subject::Served(r)),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// Flags of `ferry signatures list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The image: store:NAME, or docker://, oci:, dir:.
    #[arg(value_name = "IMAGE", value_parser = parse_subject)]
    image: Subject,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    access: ImageAccessArgs,
}

/// Flags of `ferry signatures show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The image: store:NAME, or docker://, oci:, dir:.
    #[arg(value_name = "IMAGE", value_parser = parse_subject)]
    image: Subject,
    /// Only this signature (`signature-N` in the store; slot N at another source).
    #[arg(long, value_name = "N")]
    slot: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    access: ImageAccessArgs,
}

/// Flags of `ferry signatures export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The image: store:NAME, or docker://, oci:, dir:.
    #[arg(value_name = "IMAGE", value_parser = parse_subject)]
    image: Subject,
    /// The directory to write into (created; must be empty if it exists).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    access: ImageAccessArgs,
}

/// Flags of `ferry signatures verify`. For a stored image, the registries.d directory's
/// sigstore-bundle-identity for the image's scope says how sigstore bundles that name no image
/// are judged.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The image: store:NAME, or docker://, oci:, dir:.
    #[arg(value_name = "IMAGE", value_parser = parse_subject)]
    image: Subject,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    access: ImageAccessArgs,
}

/// Runs `ferry signatures ...`.
pub async fn run(cmd: SignaturesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SignaturesCommand::List(a) => list(a).await,
        SignaturesCommand::Show(a) => show(a).await,
        SignaturesCommand::Export(a) => export(a).await,
        SignaturesCommand::Verify(a) => verify(a).await,
    }
}

fn open(image: &DockerReference, access: &ImageAccessArgs) -> anyhow::Result<(Store, History)> {
    let session = access.session();
    let store = session.store(&ImageReference::parse(&format!("store:{image}"))?)?;
    let history = ferry::store::history(&store, image)?;
    Ok((store, history))
}

/// What the source of `image` serves now.
async fn open_served(image: &ImageReference, access: &ImageAccessArgs) -> anyhow::Result<Served> {
    let session = access.session();
    let source = session.open_source(image, &access.options()).await?;
    Ok(ferry::store::served(source.as_ref()).await?)
}

fn print_slot(s: &SlotView) {
    let slot = s
        .source_slot
        .map(|n| format!("source slot {n}"))
        .unwrap_or_else(|| "no source slot".into());
    match &s.stored_as {
        Some(stored) => outln!("\n{slot} -> {stored}"),
        None => outln!("\n{slot}"),
    }
    if let Some(loc) = &s.location {
        outln!("  from:      {loc}");
    }
    match (&s.verdict, &s.note) {
        (Some(v), _) => outln!("  verdict:   {v}"),
        (None, Some(n)) => outln!("  verdict:   {n}"),
        (None, None) if s.stored_as.is_none() => {}
        (None, None) => outln!("  verdict:   none recorded"),
    }
    if let Some(d) = &s.decoded {
        print_decoded(d);
    }
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

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let image = match &args.image {
        Subject::Stored(image) => image,
        Subject::Served(image) => {
            let served = open_served(image, &args.access).await?;
            if args.format == Format::Json {
                outln!("{}", serde_json::to_string_pretty(&served)?);
                return Ok(ExitCode::SUCCESS);
            }
            let what = if served.is_list { " (a list)" } else { "" };
            outln!("{}  {}{what}", served.image, served.manifest_digest);
            outln!(
                "{} signature slot(s) served now; not judged (ferry policy check or signatures verify judge them)",
                served.slots.len()
            );
            if served.slots.is_empty() {
                for place in &served.searched {
                    outln!("  looked for in: {place}");
                }
            }
            served.slots.iter().for_each(print_slot);
            return Ok(ExitCode::SUCCESS);
        }
    };
    let (_, h) = open(image, &args.access)?;
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
    h.slots.iter().for_each(print_slot);
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
    if !h.unpacks.is_empty() {
        outln!("\nUnpacked into runtime bundles (ferry unpack):");
        for u in &h.unpacks {
            let verdict = match u.verdict.as_ref().map(|v| v.accepted) {
                Some(true) => "accepted",
                Some(false) => "rejected",
                None => "no verdict",
            };
            outln!(
                "  {} at {}{}, mode {}, {verdict} by {} ({})",
                u.bundle,
                u.time,
                if u.rootfs_only { " (rootfs only)" } else { "" },
                u.mode,
                u.policy.as_deref().unwrap_or("-"),
                u.policy_digest.as_deref().unwrap_or("-")
            );
        }
    }
    for u in &h.unreadable_records {
        outln!("\nunreadable record: {u}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let (image, shown) = match &args.image {
        Subject::Stored(image) => {
            let (_, h) = open(image, &args.access)?;
            let shown = h.show(args.slot)?;
            (h.image, shown)
        }
        Subject::Served(image) => {
            let served = open_served(image, &args.access).await?;
            let shown = served.show(args.slot)?;
            (served.image, shown)
        }
    };
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
        outln!("{image} has no signatures");
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let (image, files) = match &args.image {
        Subject::Stored(image) => {
            let (store, h) = open(image, &args.access)?;
            let files = h.export(&store, &args.dir)?;
            (h.image, files)
        }
        Subject::Served(image) => {
            let served = open_served(image, &args.access).await?;
            let files = served.export(&args.dir)?;
            (served.image, files)
        }
    };
    if args.format == Format::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"directory": args.dir, "files": files}))?
        );
    } else {
        outln!(
            "exported {} file(s) of {image} to {}",
            files.len(),
            args.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let image = match &args.image {
        Subject::Stored(image) => image,
        Subject::Served(image) => {
            // What a copy-all copy would decide, through the same gate as `ferry policy check`.
            let mut options = ferry::GateOptions::new(args.policy.load()?);
            options.source = args.access.options();
            let format = match args.format {
                Format::Text => super::policy::Format::Text,
                Format::Json => super::policy::Format::Json,
            };
            let image = super::options::SourceArg::Reference(image.clone());
            return super::policy::check(&image, options, &args.access, format).await;
        }
    };
    let (store, h) = open(image, &args.access)?;
    let policy = args.policy.load()?;
    let bundles = args
        .access
        .session()
        .bundle_identity(&h.judged_reference())
        .await?;
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
