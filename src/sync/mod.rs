//! Mirroring many images: `ferry sync`, skopeo sync's YAML and naming, with many copies at
//! once in one session, an incremental check before each, and a result for every image.
//!
//! - `config.rs`: skopeo sync's YAML ([`SyncConfig`]); `semver.rs`: its `images-by-semver`
//!   ranges.
//! - `plan.rs`: the work list ([`plan()`]: tags listed, filtered, destinations named, this
//!   shard's only).
//! - `shard.rs`: splitting the work between processes by a stable hash of the repository
//!   ([`Shard`]).
//! - `filter.rs`: which listed tags are taken (the YAML's selection and [`TagFilter`]).
//! - `uptodate.rs`: whether an image is already at its destination, whole, with its
//!   signatures; and for immutable tags, whether it is there at all, without reading the source.
//! - [`run`] (here): the scheduler. Every image is a [`copy::copy`] through the policy gate,
//!   all in one [`Session`], so images share each registry's connections, tokens, request cap
//!   and 429 pause, and blobs pushed by one image are mounted by the next instead of sent again.
//!   Up to `parallel_images` copies run at once (more incremental checks, which are cheap),
//!   and at most `max_blobs_in_flight` blobs stream at once across all of them.
//! - `prune.rs`: `--prune`: the destination tags the source withdrew, deleted with what
//!   belongs to them, where the source's listing makes that safe; read ahead while the copies
//!   run, and into a registry each repository pruned once its own images are done.
//! - `report.rs`: the per-image result, the pruned tags and the JSON report ([`SyncReport`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use ferry::{CopyOptions, Policy, Session, SessionConfig};
//! use ferry::sync::{self, DestinationKind, PlanRequest, SourceKind, SyncOptions};
//!
//! # async fn mirror() -> Result<(), Box<dyn std::error::Error>> {
//! let session = Arc::new(Session::new(SessionConfig::default()));
//! let policy = Arc::new(Policy::from_file("/etc/containers/policy.json".as_ref())?);
//! let request = PlanRequest::new(SourceKind::Yaml, "/etc/mirror.yaml", DestinationKind::named("docker").unwrap(), "mirror.example.com/m");
//! let plan = sync::plan(&session, &request).await?;
//! let report = sync::run(&session, &request, plan, SyncOptions::new(CopyOptions::new(policy))).await;
//! println!("{}", report.summary_line());
//! # Ok(())
//! # }
//! ```

mod config;
mod filter;
mod plan;
mod prune;
mod report;
mod semver;
mod shard;
mod uptodate;

pub use config::{ConfigError, SyncConfig, TagRegex};
pub use filter::{FilterSide, TagFilter, TagFilterError};
pub use plan::{
    DestinationKind, PROBE_TAG, Plan, PlanError, PlanFailure, PlanRequest, RepositoryScope,
    SourceKind, UnknownKind, WorkItem, plan,
};
pub use shard::{Shard, ShardError};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::copy::{self, BlobAction, Checked, CopyError, CopyOptions, Progress, ProgressEvent};
use crate::error::ErrorKind;
use crate::session::Session;
use crate::transport::TransportError;
pub use report::{
    ImageResult, ImageStatus, NotPruned, PruneStatus, PrunedTag, Summary, SyncReport,
};
use uptodate::Freshness;

/// Receives a sync's progress: each image as it ends, and warnings. Called from any task; keep
/// it cheap.
pub trait SyncProgress: Send + Sync {
    /// An image ended; `done` of `total` have.
    fn image_done(&self, result: &ImageResult, done: usize, total: usize);
    /// Something to tell the user that fails nothing.
    fn warning(&self, message: &str);
    /// A withdrawn destination tag was deleted (or would be, or could not be).
    fn pruned(&self, _tag: &PrunedTag) {}
}

/// How a sync runs, besides what it copies.
#[derive(Clone)]
#[non_exhaustive]
pub struct SyncOptions {
    /// The options of every copy: policy, signature mode, which images of lists, signing,
    /// destination settings, blobs at once per image. Each image's source settings come from
    /// its work item.
    pub copy: CopyOptions,
    /// How many images are copied at once.
    pub parallel_images: usize,
    /// How many incremental checks run at once (each is a few small requests).
    pub parallel_checks: usize,
    /// How many blobs stream at once across all images.
    pub max_blobs_in_flight: usize,
    /// Go on after a failed or rejected image (else no new image starts after one).
    pub keep_going: bool,
    /// Write nothing: check each image and run the gate on those not up to date.
    pub dry_run: bool,
    /// How many more times an image whose copy broke off (a blob stream, a 5xx, a 429) is
    /// copied again.
    pub image_retries: u32,
    /// Copy images found up to date anyway (and read immutable tags at the source).
    pub force: bool,
    /// After the copies, delete the destination tags the source no longer lists (within the
    /// same filters), with what belongs to them; with `dry_run`, say which.
    pub prune: bool,
    /// For a store destination, a pruned name's records and the signatures only they wrote go
    /// too (the store keeps this evidence by default).
    pub purge_evidence: bool,
    /// Where progress goes.
    pub progress: Option<Arc<dyn SyncProgress>>,
}

impl SyncOptions {
    /// Defaults: 4 images, 16 checks and 8 blobs at once, stop at the first failure, 2 image
    /// retries.
    pub fn new(copy: CopyOptions) -> SyncOptions {
        SyncOptions {
            copy,
            parallel_images: 4,
            parallel_checks: 16,
            max_blobs_in_flight: 8,
            keep_going: false,
            dry_run: false,
            image_retries: 2,
            force: false,
            prune: false,
            purge_evidence: false,
            progress: None,
        }
    }
}

/// What every image task shares.
struct Shared {
    session: Arc<Session>,
    options: SyncOptions,
    checks: Semaphore,
    copies: Semaphore,
    blob_slots: Arc<Semaphore>,
    stop: AtomicBool,
    done: AtomicUsize,
    total: usize,
}

/// Forwards a copy's warnings to the sync's progress and counts nothing else.
struct CopyWarnings(Arc<dyn SyncProgress>);

impl Progress for CopyWarnings {
    fn event(&self, event: ProgressEvent) {
        if let ProgressEvent::Warning(w) = event {
            self.0.warning(&w);
        }
    }
}

/// Whether a failed copy is worth another attempt: a transfer that broke off, or a registry
/// that said "later". Connection failures were already retried request by request.
fn worth_retrying(e: &CopyError) -> bool {
    let transient = |t: &TransportError| {
        matches!(t.kind(), ErrorKind::RateLimited | ErrorKind::Server)
            || matches!(t, TransportError::Verify(_))
    };
    match e {
        CopyError::Blob { source, .. } => !matches!(**source, TransportError::NotFound(_)),
        CopyError::Source { source, .. } | CopyError::Destination { source, .. } => {
            transient(source)
        }
        _ => false,
    }
}

/// Records a failed or rejected image; without keep-going, no image starts after it (the
/// flag is set before this image gives back its copy slot).
fn failure(shared: &Shared, result: &mut ImageResult, e: &CopyError) {
    if !shared.options.keep_going {
        shared.stop.store(true, Ordering::SeqCst);
    }
    result.status = if e.is_rejection() {
        ImageStatus::Rejected
    } else {
        ImageStatus::Failed
    };
    result.reason = Some(e.to_string());
    result.verdict = e.verdict().cloned();
}

async fn copy_image(shared: &Shared, item: &WorkItem, copy_options: &CopyOptions) -> ImageResult {
    let mut result = ImageResult::new(
        item.source.to_string(),
        Some(item.destination.to_string()),
        item.repository.clone(),
        ImageStatus::Failed,
    );
    let options = &shared.options;
    let not_attempted = |mut r: ImageResult| {
        r.status = ImageStatus::NotAttempted;
        r.reason = Some("not attempted: the sync stopped at an earlier failure".into());
        r
    };
    if shared.stop.load(Ordering::SeqCst) {
        return not_attempted(result);
    }
    if item.immutable && !options.force {
        let permit = shared.checks.acquire().await;
        let held = uptodate::immutable(&shared.session, &item.destination, copy_options).await;
        drop(permit);
        match held {
            Ok(Some((digest, signatures))) => {
                result.status = ImageStatus::Skipped;
                result.immutable = true;
                result.reason = Some(format!(
                    "immutable tag: at the destination with {signatures} signature(s); the source was not read"
                ));
                result.digest = Some(digest);
                return result;
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("{}: immutable check failed: {e}", item.destination),
        }
    }
    if !options.force {
        let permit = shared.checks.acquire().await;
        let fresh = uptodate::check(
            &shared.session,
            &item.source,
            &item.destination,
            copy_options,
        )
        .await;
        drop(permit);
        match fresh {
            Ok(Freshness::UpToDate { digest }) => {
                result.status = ImageStatus::Skipped;
                result.reason = Some("up to date: same manifest, signatures present".into());
                result.digest = Some(digest);
                return result;
            }
            Ok(Freshness::Stale(why)) => result.reason = Some(why),
            // The copy will meet the same problem and report it properly.
            Err(e) => tracing::debug!("{}: incremental check failed: {e}", item.source),
        }
    }
    if options.dry_run {
        let permit = shared.copies.acquire().await;
        let checked = copy::check(&shared.session, &item.source, &copy_options.gate).await;
        drop(permit);
        match checked {
            Ok(Checked::Admitted(a)) => {
                result.status = ImageStatus::WouldCopy;
                result.verdict = a.judgements().iter().find_map(|j| j.verdict.clone());
            }
            Ok(Checked::Rejected(r)) => failure(shared, &mut result, &CopyError::Rejected(r)),
            Err(e) => failure(shared, &mut result, &e),
        }
        return result;
    }
    let Ok(_permit) = shared.copies.acquire().await else {
        return not_attempted(result);
    };
    if shared.stop.load(Ordering::SeqCst) {
        return not_attempted(result);
    }
    let why_copied = result.reason.take();
    loop {
        result.attempts += 1;
        match copy::copy(
            &shared.session,
            &item.source,
            &item.destination,
            copy_options,
        )
        .await
        {
            Ok(report) => {
                result.status = ImageStatus::Copied;
                result.reason = why_copied;
                result.digest = Some(report.manifest_digest.clone());
                result.verdict = report.verdict().cloned();
                result.warnings = report.warnings.clone();
                result.bytes_copied = report.bytes_copied;
                for m in &report.manifests {
                    result.signatures_written += m.signatures.written.len();
                    for b in &m.blobs {
                        match b.action {
                            BlobAction::Copied => result.blobs_copied += 1,
                            _ => result.blobs_reused += 1,
                        }
                    }
                }
                return result;
            }
            Err(e) if worth_retrying(&e) && result.attempts <= options.image_retries => {
                let wait = crate::transport::docker::client::backoff(result.attempts + 2);
                if let Some(p) = &options.progress {
                    p.warning(&format!(
                        "{}: {e}; copying it again in {:.1} s",
                        item.source,
                        wait.as_secs_f64()
                    ));
                }
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                failure(shared, &mut result, &e);
                return result;
            }
        }
    }
}

async fn run_one(
    shared: Arc<Shared>,
    item: WorkItem,
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
) -> ImageResult {
    let started = Instant::now();
    let mut copy_options = shared.options.copy.clone();
    copy_options.gate.source = item.source_options.clone();
    copy_options.blob_slots = Some(shared.blob_slots.clone());
    copy_options.gate.progress = shared
        .options
        .progress
        .clone()
        .map(|p| Arc::new(CopyWarnings(p)) as Arc<dyn Progress>);
    let _layout = match &lock {
        Some(l) => Some(l.lock().await),
        None => None,
    };
    let mut result = copy_image(&shared, &item, &copy_options).await;
    result.seconds = started.elapsed().as_secs_f64();
    let done = shared.done.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(p) = &shared.options.progress {
        p.image_done(&result, done, shared.total);
    }
    result
}

/// The images of one OCI layout are written one at a time (they share its index.json).
fn layout_locks(items: &[WorkItem]) -> Vec<Option<Arc<tokio::sync::Mutex<()>>>> {
    let mut locks: HashMap<String, Arc<tokio::sync::Mutex<()>>> = HashMap::new();
    items
        .iter()
        .map(|i| {
            i.destination
                .write_lock_key()
                .map(|k| locks.entry(k).or_default().clone())
        })
        .collect()
}

/// Runs the work list `plan` of `request`: every image checked, and copied through the gate
/// unless it is up to date. Never fails as a whole: each image's outcome is in the report
/// (and repositories that could not be listed come first in it, as failures).
pub async fn run(
    session: &Arc<Session>,
    request: &PlanRequest,
    plan: Plan,
    options: SyncOptions,
) -> SyncReport {
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let started = Instant::now();
    let mut report = SyncReport {
        version: report::SYNC_REPORT_VERSION,
        source: request.source.clone(),
        source_kind: request.source_kind,
        destination: request.destination.clone(),
        destination_kind: request.destination_kind,
        mode: options.copy.gate.mode,
        dry_run: options.dry_run,
        prune: options.prune,
        shard: request.shard,
        started: started_at,
        seconds: 0.0,
        summary: Summary {
            repositories: plan.repositories,
            other_shards_repositories: plan.other_shards,
            ..Summary::default()
        },
        warnings: plan.warnings.clone(),
        images: Vec::new(),
        pruned: Vec::new(),
        not_pruned: Vec::new(),
    };
    for f in &plan.failures {
        let mut r = ImageResult::new(
            f.repository.clone(),
            None,
            f.repository.trim_start_matches("docker://").to_string(),
            ImageStatus::Failed,
        );
        r.reason = Some(f.error.to_string());
        report.images.push(r);
    }
    let stop_now = !plan.failures.is_empty() && !options.keep_going;
    let keep_going = options.keep_going;
    let locks = layout_locks(&plan.items);
    let shared = Arc::new(Shared {
        session: session.clone(),
        checks: Semaphore::new(options.parallel_checks.max(options.parallel_images).max(1)),
        copies: Semaphore::new(options.parallel_images.max(1)),
        blob_slots: Arc::new(Semaphore::new(options.max_blobs_in_flight.max(1))),
        stop: AtomicBool::new(stop_now),
        done: AtomicUsize::new(0),
        total: plan.items.len(),
        options,
    });
    // Every image into one archive shares its writer; the file appears at the end.
    session.hold_archives();
    let prune = shared.options.prune;
    let mut early = if prune {
        let written = plan.items.iter().map(|i| i.destination.to_string());
        prune::prefetch(
            session,
            request,
            &plan.scopes,
            written.collect(),
            &shared.options,
        )
    } else {
        prune::Listings::new()
    };
    // Into a registry, a repository is pruned as soon as its own images are done, while the
    // others' copies run (`items_of`: its work items). Local destinations'
    // deletions cost no round trips and share their layout's or store's locks with the
    // copies: they wait for the copies.
    let prune_early = prune && request.destination_kind.name() == "docker";
    let mut items_of: HashMap<String, Vec<usize>> = HashMap::new();
    for (n, item) in plan.items.iter().enumerate() {
        items_of.entry(item.repository.clone()).or_default().push(n);
    }
    let scopes: HashMap<&str, &RepositoryScope> = plan
        .scopes
        .iter()
        .map(|s| (s.repository.as_str(), s))
        .collect();
    let request_shared = Arc::new(request.clone());
    let deletions = Arc::new(Semaphore::new(shared.options.parallel_checks.max(1)));
    let start_prune =
        |scope: &RepositoryScope, images: Vec<ImageResult>, early: &mut prune::Listings| {
            let (shared, request, deletions) =
                (shared.clone(), request_shared.clone(), deletions.clone());
            let scope = scope.clone();
            let early = scope
                .destination
                .as_ref()
                .ok()
                .and_then(|d| early.remove(&d.to_string()));
            tokio::spawn(async move {
                prune::prune_repository(
                    &shared.session,
                    &request,
                    &scope,
                    &images,
                    early,
                    &shared.options,
                    &deletions,
                )
                .await
            })
        };
    let mut pruning = HashMap::new();
    let total = plan.items.len();
    let mut pending: futures::stream::FuturesUnordered<_> = plan
        .items
        .into_iter()
        .zip(locks)
        .enumerate()
        .map(|(n, (item, lock))| {
            let mut fallback = ImageResult::new(
                item.source.to_string(),
                Some(item.destination.to_string()),
                item.repository.clone(),
                ImageStatus::Failed,
            );
            let handle = tokio::spawn(run_one(shared.clone(), item, lock));
            async move {
                let result = match handle.await {
                    Ok(r) => r,
                    // A copy task cannot panic on input; if one did, its image failed.
                    Err(e) => {
                        fallback.reason = Some(format!("the copy task ended abnormally: {e}"));
                        fallback
                    }
                };
                (n, result)
            }
        })
        .collect();
    let mut results: Vec<Option<ImageResult>> = (0..total).map(|_| None).collect();
    while let Some((n, result)) = pending.next().await {
        let repository = result.repository.clone();
        if let Some(slot) = results.get_mut(n) {
            *slot = Some(result);
        }
        let (Some(items), Some(scope)) =
            (items_of.get(&repository), scopes.get(repository.as_str()))
        else {
            continue;
        };
        if prune_early
            && items
                .iter()
                .all(|i| results.get(*i).is_some_and(Option::is_some))
        {
            let images = report
                .images
                .iter()
                .filter(|i| i.repository == repository)
                .chain(items.iter().filter_map(|i| results.get(*i)?.as_ref()))
                .cloned()
                .collect();
            pruning.insert(repository, start_prune(scope, images, &mut early));
        }
    }
    report.images.extend(results.into_iter().flatten());
    finish_archives(session, request, &mut report, keep_going).await;
    if prune {
        // The repositories not pruned yet are pruned now, all at once.
        let mut images: HashMap<&str, Vec<ImageResult>> = HashMap::new();
        for i in &report.images {
            images.entry(&i.repository).or_default().push(i.clone());
        }
        let tasks: Vec<_> = plan
            .scopes
            .iter()
            .map(|scope| {
                let task = pruning.remove(&scope.repository).unwrap_or_else(|| {
                    let mine = images.remove(scope.repository.as_str()).unwrap_or_default();
                    start_prune(scope, mine, &mut early)
                });
                (scope, task)
            })
            .collect();
        let mut outcomes = Vec::new();
        for (scope, task) in tasks {
            outcomes.push(
                task.await
                    .unwrap_or_else(|e| Err(prune::abnormal(scope, &e))),
            );
        }
        let (pruned, not_pruned) = prune::finish(outcomes, &shared.options);
        report.pruned = pruned;
        report.not_pruned = not_pruned;
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.tally();
    report
}

/// Finishes the archives the sync wrote into (`--dest oci-archive|docker-archive`): written
/// when every image arrived, or with `--keep-going` the ones that did; otherwise abandoned (no
/// file), and the images copied into them say so.
async fn finish_archives(
    session: &Session,
    request: &PlanRequest,
    report: &mut SyncReport,
    keep_going: bool,
) {
    let failed = report
        .images
        .iter()
        .any(|i| matches!(i.status, ImageStatus::Failed | ImageStatus::Rejected));
    let keep = keep_going || !failed;
    let finished = session.finish_archives(keep).await;
    if !request.destination_kind.is_one_file() || report.dry_run {
        return;
    }
    let lost = match finished {
        Ok(_) if keep => return,
        Ok(_) => format!(
            "not written: {} was abandoned because another image failed (nothing is written at {}; --keep-going writes the images that were copied)",
            request.destination, request.destination
        ),
        Err(e) => format!("not written: {e}"),
    };
    // Their copies succeeded but the archive is not there: not copied (the failure that
    // stopped the archive is its own image's, and sets the exit status).
    for i in &mut report.images {
        if i.status == ImageStatus::Copied {
            i.status = ImageStatus::NotAttempted;
            i.reason = Some(lost.clone());
        }
    }
}
