//! `ferry store`: the store's lifecycle (list, rm, prune, check, df). The work is in the
//! library (`ferry::store::{lifecycle, check}`); this file parses and prints.

use std::process::ExitCode;

use anyhow::Context;
use ferry::store::{CheckOptions, CheckReport, PruneOptions, RemoveOptions, RepairReport, Store};
use ferry::{DockerReference, ImageReference};
use serde_json::json;

use super::errors::RejectedError;
use super::options::{CommonTransportArgs, ImageAccessArgs, StoreArgs, parse_image};

/// `ferry store` subcommands.
#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once; boxing would only obscure the clap derive
pub enum StoreCommand {
    /// List the images in the store: name, manifest digest, size, when the name was last
    /// copied in, and that copy's signature mode and verdict.
    List(ListArgs),
    /// Remove names from the store. Their blobs stay until `ferry store prune`; their
    /// signatures and records (the evidence of how they passed the policy) stay unless
    /// --purge-evidence is given, and `ferry signatures list store:NAME` still shows them.
    Rm(RmArgs),
    /// Remove the blobs and manifests no name in the store needs (and, with --keep-records,
    /// old records). Safe while copies into the store run, and safe to interrupt.
    Prune(PruneArgs),
    /// Re-hash every blob and manifest, re-read every stored signature and record, and report
    /// damage by file. Exit 0 when the store is intact, 1 when something is damaged, 3 when it
    /// could not be checked.
    #[command(
        after_help = "Exit status: 0 the store (or NAME) is intact (after --repair: was \
repaired), 1 damage found and not repaired (each damaged file is listed), 2 bad usage, 3 the \
check could not be done (no store, unreadable directory, the --repair source cannot be opened)."
    )]
    Check(CheckArgs),
    /// Show where the store's space goes: images, blobs shared between names, blobs no name
    /// needs (what prune reclaims), signatures, records and temporaries.
    Df(DfArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Text,
    /// JSON on stdout.
    Json,
}

/// A stored name: `store:NAME` or just NAME.
fn parse_name(s: &str) -> Result<DockerReference, String> {
    let with_transport = if s.starts_with("store:") {
        s.to_string()
    } else {
        format!("store:{s}")
    };
    match ImageReference::parse(&with_transport) {
        Ok(r) if r.transport() == "store" => r
            .docker_reference()
            .ok_or_else(|| format!("{r} names no image")),
        Ok(other) => Err(format!(
            "{other} is not in ferry's store: give NAME or store:NAME"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Flags of `ferry store list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

/// Flags of `ferry store rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The names to remove (NAME or store:NAME). If one is not in the store, nothing is
    /// removed.
    #[arg(value_name = "NAME", required = true, value_parser = parse_name)]
    names: Vec<DockerReference>,
    /// Also remove the records of these names and the signatures only they brought (the
    /// evidence of how they passed the policy). Without it, the evidence stays.
    #[arg(long)]
    purge_evidence: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

/// Flags of `ferry store prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Print what would be removed and how many bytes, and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also remove records (the evidence of each copy) older than DAYS days. The newest copy
    /// of every name still in the store keeps its records whatever their age. Without this
    /// flag no record is removed.
    #[arg(long, value_name = "DAYS")]
    keep_records: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

/// Flags of `ferry store check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Check only this name (NAME or store:NAME): the blobs it needs, the signatures kept
    /// with its manifests, its records. Default: the whole store.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    name: Option<DockerReference>,
    /// Fetch damaged or missing blobs and manifests again from this image (docker://, oci:,
    /// dir: holding the same content), verify them, and replace the damaged files. Signatures
    /// and records cannot be fetched again; they are only reported.
    #[arg(long, value_name = "FROM-REFERENCE", value_parser = parse_image)]
    repair: Option<ImageReference>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    access: ImageAccessArgs,
}

/// Flags of `ferry store df`.
#[derive(Debug, clap::Args)]
pub struct DfArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

/// Runs `ferry store ...`.
pub async fn run(cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        StoreCommand::List(a) => list(a).await,
        StoreCommand::Rm(a) => rm(a).await,
        StoreCommand::Prune(a) => prune(a).await,
        StoreCommand::Check(a) => check(a).await,
        StoreCommand::Df(a) => df(a).await,
    }
}

fn open(args: &StoreArgs, common: Option<&CommonTransportArgs>) -> anyhow::Result<Store> {
    let session = super::options::session(common, args);
    let root = session
        .config()
        .store_root
        .clone()
        .context("no store: give --store DIR, or set $FERRY_STORE, $XDG_DATA_HOME or $HOME")?;
    Ok(Store::open(&root)?)
}

/// Runs blocking store work off the async threads, so a signal can still end the command.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("the store operation's thread failed")?
}

/// Bytes as people read them (decimal units, as docker and podman print sizes).
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {name}")
    }
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Rows as aligned columns, the last one unpadded.
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let w = widths.get(c).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        outln!("{}", line.trim_end());
    }
}

fn short(d: &ferry::Digest) -> String {
    format!(
        "{}:{}",
        d.algorithm().name(),
        d.hex().get(..12).unwrap_or(d.hex())
    )
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.store, None)?;
    let images = blocking(move || Ok(store.list()?)).await?;
    if args.format == Format::Json {
        print_json(&images)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        ["NAME", "DIGEST", "SIZE", "LAST COPY", "MODE", "VERDICT"]
            .map(String::from)
            .to_vec(),
    ];
    for i in &images {
        rows.push(vec![
            i.name.clone(),
            short(&i.digest),
            human(i.size),
            i.last_copy.clone().unwrap_or_else(|| "-".into()),
            i.mode.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            format!(
                "{}{}",
                i.verdict.name(),
                if i.complete {
                    ""
                } else {
                    " (incomplete: run ferry store check)"
                }
            ),
        ]);
    }
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

async fn rm(args: RmArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.store, None)?;
    let options = RemoveOptions::new().purge_evidence(args.purge_evidence);
    let names = args.names.clone();
    let report = blocking(move || Ok(store.remove(&names, &options)?)).await?;
    if args.format == Format::Json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &report.removed {
        outln!("removed {} ({})", r.name, r.digest);
    }
    if args.purge_evidence {
        outln!("purged {} evidence file(s)", report.purged.len());
    } else if !report.removed.is_empty() {
        outln!(
            "their signatures and records stay (ferry signatures list store:NAME shows them); blobs are reclaimed by ferry store prune"
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn prune(args: PruneArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.store, None)?;
    let options = PruneOptions::new().dry_run(args.dry_run).keep_records(
        args.keep_records
            .map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400)),
    );
    let report = blocking(move || Ok(store.prune(&options)?)).await?;
    if args.format == Format::Json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for b in &report.blobs {
        outln!("{verb} blob {} ({})", b.digest, human(b.size));
    }
    for r in &report.records {
        outln!(
            "{verb} record {} of {} at {}",
            r.path.display(),
            r.name,
            r.time
        );
    }
    outln!(
        "{verb} {} blob(s), {}; {} record(s), {}; kept {} blob(s) that names need{}",
        report.blobs.len(),
        human(report.blob_bytes),
        report.records.len(),
        human(report.record_bytes),
        report.kept_blobs,
        if report.held_blobs > 0 {
            format!(" and {} that copies in flight hold", report.held_blobs)
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn print_check(report: &CheckReport) {
    let what = match &report.name {
        Some(n) => n.clone(),
        None => report.store.display().to_string(),
    };
    outln!(
        "checked {what}: {} blob(s) ({}) re-hashed, {} manifest(s) followed, {} signature(s), {} record(s)",
        report.blobs,
        human(report.bytes),
        report.manifests,
        report.signatures,
        report.records
    );
    for p in &report.problems {
        outln!("{p}");
    }
}

fn print_repair(r: &RepairReport) {
    for b in &r.repaired {
        outln!("repaired {} ({})", b.path.display(), human(b.size));
    }
    for b in &r.removed {
        outln!(
            "removed {}: damaged, and no name needs it",
            b.path.display()
        );
    }
    for f in &r.failed {
        outln!("could not repair {}: {}", f.path.display(), f.reason);
    }
}

async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.access.store, Some(&args.access.common))?;
    let options = CheckOptions::new().name(args.name.clone());
    let run_check =
        |store: Store, options: CheckOptions| blocking(move || Ok(store.check(&options)?));
    let mut report = run_check(store.clone(), options.clone()).await?;
    let mut repairs = Vec::new();
    if let Some(from) = &args.repair {
        let session = args.access.session();
        let transport = args.access.options();
        let mut source = None;
        // A repaired manifest can lead to blobs the check before could not see: repeat while
        // repairs make progress (lists of lists are at most a few levels deep).
        for _ in 0..4 {
            if report.repairable().next().is_none() {
                break;
            }
            if source.is_none() {
                source = Some(
                    session
                        .open_source(from, &transport)
                        .await
                        .with_context(|| format!("opening {from} to repair from"))?,
                );
            }
            let Some(src) = source.as_deref() else { break };
            let r = store.repair(&report, src).await?;
            let progress = !r.repaired.is_empty() || !r.removed.is_empty();
            if args.format == Format::Text {
                print_repair(&r);
            }
            repairs.push(r);
            report = run_check(store.clone(), options.clone()).await?;
            if !progress {
                break;
            }
        }
    }
    if args.format == Format::Json {
        print_json(&json!({"check": report, "repairs": repairs}))?;
    } else {
        print_check(&report);
    }
    if report.is_clean() {
        return Ok(ExitCode::SUCCESS);
    }
    let repairable = report.repairable().count();
    let hint = if repairable > 0 && args.repair.is_none() {
        format!(
            "; {repairable} of them can be fetched again with --repair FROM-REFERENCE (an image holding the same content)"
        )
    } else {
        String::new()
    };
    Err(RejectedError(format!(
        "{} problem(s) found in {}{hint}",
        report.problems.len(),
        report
            .name
            .clone()
            .unwrap_or_else(|| report.store.display().to_string())
    ))
    .into())
}

async fn df(args: DfArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.store, None)?;
    let usage = blocking(move || Ok(store.disk_usage()?)).await?;
    if args.format == Format::Json {
        print_json(&usage)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        ["IMAGE", "DIGEST", "SIZE", "UNIQUE"]
            .map(String::from)
            .to_vec(),
    ];
    for i in &usage.images {
        rows.push(vec![
            i.name.clone(),
            short(&i.digest),
            human(i.size),
            human(i.unique),
        ]);
    }
    print_table(&rows);
    outln!();
    let b = &usage.blobs;
    let mut rows = vec![["", "FILES", "SIZE"].map(String::from).to_vec()];
    for (what, u) in [
        ("blobs", b.all),
        ("  needed by a name", b.referenced),
        ("  shared by names", b.shared),
        ("  needed by none (prune)", b.unreferenced),
        ("signatures", usage.signatures),
        ("records", usage.records),
        ("temporaries", usage.temporaries),
    ] {
        rows.push(vec![what.to_string(), u.count.to_string(), human(u.bytes)]);
    }
    rows.push(vec![
        "total".into(),
        String::new(),
        human(usage.total_bytes),
    ]);
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}
