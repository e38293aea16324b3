//! `ferry sync`: skopeo sync's command line over the library's [`ferry::sync`].

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use ferry::sync as library;
use ferry::sync::Shard;
use ferry::sync::{DestinationKind, PlanError, PlanRequest, SourceKind, TagFilter};
use ferry::sync::{ImageResult, ImageStatus, PruneStatus, PrunedTag};
use ferry::sync::{SyncOptions, SyncProgress, SyncReport};
use ferry::{CopyOptions, ManifestFormat, SignOptions, SignatureMode};

use super::errors::UsageError;
use super::options::{EndsArgs, PolicyArgs};
use super::{EXIT_FAILURE, EXIT_REJECTED};

/// The environment variable a Kubernetes Indexed Job sets to the pod's index.
pub const JOB_INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

/// Copy every image of SOURCE to DESTINATION, as skopeo sync does, through the policy gate, many
/// images at once, skipping those already there.
///
/// SOURCE is a registry repository or image (--src docker: registry.example.com/ns/app[:tag]), a
/// directory of dir: images (--src dir), a YAML file in skopeo sync's format (--src yaml), or an
/// archive file whose every named image is copied under its name (--src oci-archive,
/// --src docker-archive: what a sync into an archive carried across an air gap).
/// DESTINATION is a registry and repository prefix (--dest docker: mirror.example.com/ns), a
/// directory (--dest dir: one dir: image per image; --dest oci: one OCI layout per repository),
/// a name prefix in ferry's store (--dest store), or one archive file that receives every image
/// under its name, with its signatures (--dest oci-archive; --dest docker-archive keeps no
/// signatures); the file appears when the sync ends, and only if every image was copied (or
/// with --keep-going, holding those that were).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Images already at the destination with the same manifest digest and their \
signatures are skipped after one manifest request per side; a sync that was killed finishes the \
rest when run again, and an image a killed sync left half-written in a dir: or oci: destination is \
copied again whole.

--prune makes the destination a true mirror: after the copies, the destination's tags that the \
source no longer lists (within the same tag filters, and named as this sync names them) are \
deleted with their signatures, sigstore attachments and referrers; what other tags still need \
stays. A repository whose source listing failed, came back empty, or whose images did not all \
copy, is not pruned, and the report says why. With --dry-run, the tags that would go are listed.

Exit status: 0 every image copied or up to date, 1 some image rejected by the signature policy \
and nothing else failed, 2 bad usage, 3 any other failure (a repository that could not be \
listed, an image that could not be copied). --report FILE says which and why.

See docs/sync.md for the YAML, sharding (--shard, Kubernetes Indexed Jobs) and the report."
)]
pub struct SyncArgs {
    /// SOURCE's transport: docker, dir, yaml, oci-archive or docker-archive.
    #[arg(short = 's', long = "src", value_name = "TRANSPORT")]
    pub source_kind: SourceKind,
    /// DESTINATION's transport: docker, dir, oci, store, oci-archive or docker-archive.
    #[arg(short = 'd', long = "dest", value_name = "TRANSPORT")]
    pub destination_kind: DestinationKind,
    /// Where the images come from.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// Where they go.
    #[arg(value_name = "DESTINATION")]
    pub destination: String,
    /// Keep the whole source name under DESTINATION (registry.example.com/ns/app:v1), not only
    /// its last element (app:v1).
    #[arg(long)]
    scoped: bool,
    /// Append this to every destination name (after the tag, for registries): `--append-suffix
    /// -mirror` makes app:v1 app:v1-mirror.
    // A suffix usually starts with '-', which skopeo's flag parser takes as the value.
    #[arg(
        long,
        value_name = "SUFFIX",
        default_value = "",
        allow_hyphen_values = true
    )]
    append_suffix: String,
    /// Copy the whole list of images and every image in it, not only the one for this platform.
    #[arg(short = 'a', long, conflicts_with = "platform")]
    all: bool,
    #[command(flatten)]
    platform: super::options::PlatformArgs,
    /// Copy nothing: check every image and say which would be copied, skipped or rejected.
    #[arg(long)]
    dry_run: bool,
    /// Go on after an image fails or is rejected (the exit status still says so).
    #[arg(long)]
    keep_going: bool,
    /// Write "DIGEST DESTINATION" for every image copied or up to date, one per line.
    #[arg(long, value_name = "FILE")]
    digestfile: Option<PathBuf>,
    /// Fail rather than change a digest, as skopeo's: only --format can change one in ferry,
    /// so the two together are refused.
    #[arg(long)]
    preserve_digests: bool,
    /// Write a JSON report: every image copied, skipped, rejected or failed, with the reason and
    /// the signature verdict.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Only the repositories of this shard: INDEX/COUNT, or COUNT alone with the index from
    /// $JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job). Indexes run from 0.
    #[arg(long, value_name = "[INDEX/]COUNT")]
    shard: Option<String>,
    /// How many images are copied at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallel_images: u16,
    /// How many blobs are copied at once, across all images.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallel_blobs: u16,
    /// How many requests may be in flight to one registry at once (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 32)]
    registry_requests: usize,
    /// Copy images even when the destination already has them (immutable tags too).
    #[arg(long)]
    force: bool,
    /// After the copies, delete the destination's tags that the source no longer lists, within
    /// the same tag filters (docker and yaml sources), with their signatures, sigstore
    /// attachments and referrers; signatures of images that stay are never deleted. With
    /// --dry-run, list what would go. Registry, dir, oci and store destinations.
    #[arg(long)]
    prune: bool,
    /// With --prune into a store: also remove a deleted name's records and the signatures only
    /// they wrote (the store keeps them as evidence by default, as `ferry store rm`).
    #[arg(long, requires = "prune")]
    purge_evidence: bool,
    /// Take only the listed tags this regular expression matches (anywhere in the tag, as the
    /// YAML's images-by-tag-regex; anchor with ^…$). Repeatable: a tag any of them matches.
    /// Combined with the YAML's own selection; docker and yaml sources.
    #[arg(long, value_name = "REGEX", allow_hyphen_values = true)]
    include_tag_regex: Vec<String>,
    /// Leave out the tags this regular expression matches (after --include-tag-regex).
    /// Repeatable; docker and yaml sources.
    #[arg(long, value_name = "REGEX", allow_hyphen_values = true)]
    exclude_tag_regex: Vec<String>,
    /// Tags never change once published: a tag already at the destination, whole and with its
    /// signatures, is skipped without reading the source at all (for sources that rate-limit
    /// manifest reads). A YAML registry's `immutable-tags: true|false` overrides this for its
    /// images. The report marks the images skipped this way.
    #[arg(long)]
    immutable_tags: bool,
    /// What to do with the source's signatures: copy-all, remove-signatures or
    /// sufficient-subset.
    #[arg(long = "signatures", value_name = "MODE", default_value = "copy-all")]
    mode: SignatureMode,
    /// Copy no signatures (same as --signatures remove-signatures).
    #[arg(long, conflicts_with = "mode")]
    remove_signatures: bool,
    /// What is attached to each image (OCI 1.1 referrers, cosign's .att and .sbom tags) is
    /// copied: signatures (the default, where registries.d enables use-sigstore-referrers), all
    /// (also attestations, SBOMs and any other referrer), or none. As `ferry copy --referrers`.
    /// An image already at the destination is skipped without looking at its referrers.
    #[arg(long, value_name = "WHAT", default_value = "signatures")]
    referrers: ferry::Referrers,
    #[command(flatten)]
    sign: super::copy::SignArgs,
    /// The manifest format the destination must get (oci or v2s2), converted as `ferry copy
    /// --format` converts it: refused for an image whose source signatures would be kept.
    #[arg(short = 'f', long, value_name = "FORMAT")]
    format: Option<ManifestFormat>,
    #[command(flatten)]
    compress: super::copy::CompressArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    ends: EndsArgs,
    /// Print only failures and warnings, not a line per image and the total.
    #[arg(short, long)]
    quiet: bool,
    /// When to print a line per image as it ends: auto (on a terminal; in a pipe only
    /// failures, rejections, warnings and the total, with --report FILE for the rest), always
    /// (a CI log that should keep every image), never.
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    progress: ProgressWhen,
}

/// `--progress`: when a line per image is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProgressWhen {
    /// On a terminal, not in a pipe.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ProgressWhen {
    /// Whether lines per image are printed, given whether stderr is a terminal.
    fn lines(self, terminal: bool) -> bool {
        match self {
            ProgressWhen::Auto => terminal,
            ProgressWhen::Always => true,
            ProgressWhen::Never => false,
        }
    }
}

/// `--shard`: INDEX/COUNT, or COUNT with the index from the Job's environment.
fn shard(value: &str, job_index: Option<String>) -> Result<Shard, UsageError> {
    let usage = |e: ferry::sync::ShardError| UsageError(format!("--shard {value}: {e}"));
    if value.contains('/') {
        return Shard::parse(value).map_err(usage);
    }
    let Some(index) = job_index.filter(|v| !v.is_empty()) else {
        return Err(UsageError(format!(
            "--shard {value} gives no index and ${JOB_INDEX_VARIABLE} is not set: give INDEX/{value}"
        )));
    };
    Shard::parse(&format!("{index}/{value}")).map_err(|e| {
        UsageError(format!(
            "--shard {value} with ${JOB_INDEX_VARIABLE}={index}: {e}"
        ))
    })
}

/// One line per image on stderr (failures and warnings only when `quiet`: with --quiet, and
/// in a pipe unless --progress always).
struct Lines {
    quiet: bool,
}

impl SyncProgress for Lines {
    fn image_done(&self, r: &ImageResult, done: usize, total: usize) {
        let failed = matches!(r.status, ImageStatus::Failed | ImageStatus::Rejected);
        if self.quiet && !failed {
            return;
        }
        let to = r
            .destination
            .as_deref()
            .map(|d| format!(" -> {d}"))
            .unwrap_or_default();
        let detail = match r.status {
            ImageStatus::Copied => format!(
                " ({}, {} blob(s) copied, {} reused, {} signature(s), {:.1} s)",
                r.digest.as_ref().map(|d| d.to_string()).unwrap_or_default(),
                r.blobs_copied,
                r.blobs_reused,
                r.signatures_written,
                r.seconds
            ),
            ImageStatus::Skipped if r.immutable => " (immutable tag: source not read)".to_string(),
            ImageStatus::Skipped => " (up to date)".to_string(),
            _ => r
                .reason
                .as_deref()
                .map(|w| format!(": {w}"))
                .unwrap_or_default(),
        };
        eprintln!(
            "[{done}/{total}] {} {}{to}{detail}",
            r.status.name(),
            r.source
        );
    }

    fn warning(&self, message: &str) {
        eprintln!("ferry: warning: {message}");
    }

    fn pruned(&self, t: &PrunedTag) {
        let failed = matches!(t.status, PruneStatus::Failed | PruneStatus::Kept);
        if self.quiet && !failed {
            return;
        }
        let detail = t
            .detail
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        eprintln!(
            "[prune] {} {} ({}){detail}",
            t.status.name(),
            t.destination,
            t.reason
        );
    }
}

/// The tag filters, or a usage error naming the flag.
fn tag_filter(args: &SyncArgs) -> Result<TagFilter, UsageError> {
    let filtered = !args.include_tag_regex.is_empty() || !args.exclude_tag_regex.is_empty();
    if filtered && args.source_kind == SourceKind::Dir {
        return Err(UsageError(
            "--include-tag-regex and --exclude-tag-regex filter the tags a registry lists: use them with --src docker or --src yaml".into(),
        ));
    }
    TagFilter::new(&args.include_tag_regex, &args.exclude_tag_regex).map_err(|e| {
        let flag = match e.side {
            ferry::sync::FilterSide::Include => "--include-tag-regex",
            _ => "--exclude-tag-regex",
        };
        UsageError(format!("{flag} {:?}: {e}", e.pattern))
    })
}

/// `--prune`'s constraints, checked before anything is read.
fn check_prune(args: &SyncArgs) -> Result<(), UsageError> {
    if args.prune && args.source_kind == SourceKind::Dir {
        return Err(UsageError(
            "--prune follows what a registry lists: use it with --src docker or --src yaml".into(),
        ));
    }
    if args.purge_evidence && args.destination_kind.name() != "store" {
        return Err(UsageError(
            "--purge-evidence is for a store destination (--dest store)".into(),
        ));
    }
    Ok(())
}

fn write_digestfile(path: &std::path::Path, report: &SyncReport) -> anyhow::Result<()> {
    let mut out = Vec::new();
    for i in &report.images {
        if let (ImageStatus::Copied | ImageStatus::Skipped, Some(d), Some(dst)) =
            (i.status, &i.digest, &i.destination)
        {
            writeln!(out, "{d} {dst}")?;
        }
    }
    std::fs::write(path, out).with_context(|| format!("writing the digest file {}", path.display()))
}

/// Runs `ferry sync`.
pub async fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let compression = args.compress.compression()?;
    super::copy::check_preserve_digests(args.preserve_digests, args.format, compression.as_ref())?;
    check_prune(&args)?;
    let tag_filter = tag_filter(&args)?;
    let shard = match &args.shard {
        Some(v) => Some(shard(v, std::env::var(JOB_INDEX_VARIABLE).ok())?),
        None => None,
    };
    let mut session_args = args.ends.session_config();
    session_args.max_requests_per_registry = Some(args.registry_requests).filter(|n| *n > 0);
    let session = Arc::new(ferry::Session::new(session_args));

    let mut copy = CopyOptions::new(args.policy.load()?);
    copy.gate.mode = if args.remove_signatures {
        SignatureMode::RemoveSignatures
    } else {
        args.mode
    };
    copy.gate.selection = args.platform.selection(args.all);
    copy.destination = args.ends.destination_options();
    copy.parallel_blobs = usize::from(args.parallel_blobs);
    copy.format = args.format;
    copy.compression = compression;
    let keys = args.sign.keys()?;
    if !keys.is_empty() {
        copy.sign = Some(SignOptions {
            keys,
            identity: None,
        });
    }

    let mut request = PlanRequest::new(
        args.source_kind,
        args.source.clone(),
        args.destination_kind,
        args.destination.clone(),
    );
    request.scoped = args.scoped;
    request.append_suffix = args.append_suffix.clone();
    request.shard = shard;
    request.source_options = args.ends.source_options();
    request.source_options.referrers = args.referrers;
    request.tag_filter = tag_filter;
    request.immutable_tags = args.immutable_tags;
    let per_image = !args.quiet
        && args
            .progress
            .lines(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let progress = Arc::new(Lines { quiet: !per_image });
    let plan = match ferry::sync::plan(&session, &request).await {
        Ok(p) => p,
        Err(e @ PlanError::DirToDir) => return Err(UsageError(e.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    for w in &plan.warnings {
        progress.warning(w);
    }
    let sources = plan.repositories;
    if args.dry_run && super::compat::is_skopeo() {
        eprintln!(
            "{}",
            super::compat::log_line("warning", "Running in dry-run mode", &[])
        );
    }
    if per_image {
        let shard_text = shard
            .map(|s| {
                format!(
                    " (shard {s}: {} of {} repositories)",
                    plan.repositories,
                    plan.repositories + plan.other_shards
                )
            })
            .unwrap_or_default();
        eprintln!(
            "{} {} image(s) from {} to {}{shard_text}",
            if args.dry_run { "Checking" } else { "Syncing" },
            plan.items.len(),
            args.source,
            args.destination
        );
    }

    let mut options = SyncOptions::new(copy);
    options.parallel_images = usize::from(args.parallel_images);
    options.parallel_checks = (usize::from(args.parallel_images) * 4).max(16);
    options.max_blobs_in_flight = usize::from(args.parallel_blobs);
    options.keep_going = args.keep_going;
    options.dry_run = args.dry_run;
    options.image_retries = args.ends.common.retry_times;
    options.force = args.force;
    options.prune = args.prune;
    options.purge_evidence = args.purge_evidence;
    options.progress = Some(progress);
    let report = library::run(&session, &request, plan, options).await;

    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing the report {}", path.display()))?;
    }
    if let Some(path) = &args.digestfile
        && !args.dry_run
    {
        write_digestfile(path, &report)?;
    }
    if args.dry_run && !args.quiet {
        for line in dry_run_lines(&report, sources) {
            eprintln!("{line}");
        }
    }
    let s = &report.summary;
    if !args.quiet || s.failed + s.rejected + s.prune_failed > 0 {
        eprintln!("{}", report.summary_line());
    }
    Ok(if s.failed + s.prune_failed > 0 {
        ExitCode::from(EXIT_FAILURE)
    } else if s.rejected > 0 {
        ExitCode::from(EXIT_REJECTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// skopeo sync's dry-run lines, which scripts and skopeo's own tests grep for: `Would have
/// copied image ref I/N` with `from="SOURCE" to="DESTINATION"` for each image a sync would
/// copy (or that is already there: skopeo's dry run does not look), numbered within its
/// repository, then `Would have synced N images from M sources`. As skopeo's log lines when
/// invoked as skopeo, else without the time and level.
fn dry_run_lines(report: &SyncReport, sources: usize) -> Vec<String> {
    let listed: Vec<&ImageResult> = report
        .images
        .iter()
        .filter(|i| matches!(i.status, ImageStatus::WouldCopy | ImageStatus::Skipped))
        .collect();
    let line = |message: &str, fields: &[(&str, &str)]| {
        if super::compat::is_skopeo() {
            super::compat::log_line("info", message, fields)
        } else {
            let mut l = message.to_string();
            for (k, v) in fields {
                l.push_str(&format!(" {k}={}", super::compat::go_quote(v)));
            }
            l
        }
    };
    let mut out = Vec::new();
    let mut counts: std::collections::HashMap<&str, (usize, usize)> = Default::default();
    for i in &listed {
        counts.entry(i.repository.as_str()).or_default().1 += 1;
    }
    for i in &listed {
        let (n, total) = counts.entry(i.repository.as_str()).or_default();
        *n += 1;
        out.push(line(
            &format!("Would have copied image ref {n}/{total}"),
            &[
                ("from", &i.source),
                ("to", i.destination.as_deref().unwrap_or_default()),
            ],
        ));
    }
    out.push(line(
        &format!(
            "Would have synced {} images from {sources} sources",
            listed.len()
        ),
        &[],
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_per_image_on_a_terminal_or_when_asked() {
        assert!(ProgressWhen::Auto.lines(true));
        assert!(!ProgressWhen::Auto.lines(false));
        assert!(ProgressWhen::Always.lines(false));
        assert!(!ProgressWhen::Never.lines(true));
    }

    #[test]
    fn shard_from_the_flag_or_the_job_index() {
        assert_eq!(shard("1/4", None).ok(), Some(Shard { index: 1, count: 4 }));
        assert_eq!(
            shard("4", Some("3".into())).ok(),
            Some(Shard { index: 3, count: 4 })
        );
        // The flag's own index wins over the environment.
        assert_eq!(
            shard("0/2", Some("1".into())).ok(),
            Some(Shard { index: 0, count: 2 })
        );
        let e = shard("4", None).expect_err("no index");
        assert!(e.0.contains("JOB_COMPLETION_INDEX"), "{e}");
        let e = shard("4", Some("4".into())).expect_err("out of range");
        assert!(e.0.contains("out of range"), "{e}");
        assert!(shard("x/4", None).is_err());
    }
}
