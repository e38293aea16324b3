//! `--prune`: after the copies, the destination's tags that the source no longer lists are
//! deleted, so the mirror follows the source's withdrawals.
//!
//! Per repository of this shard ([`RepositoryScope`]), and only where it is safe:
//! - the source's listing must have succeeded whole and listed at least one tag (a failed,
//!   incomplete or empty listing deletes nothing: it cannot tell a withdrawn tag from a registry
//!   having a bad moment), and every image of the repository must have been copied or found up
//!   to date (a pass that failed there deletes nothing);
//! - no other source repository (of any shard) may send its images to the same destination
//!   repository, since its tags would look withdrawn;
//! - a destination tag is a candidate only when the same filters take it (the YAML's selection
//!   and the command line's include and exclude expressions, on the tag without the appended
//!   suffix) and the sync would name it exactly so: tags the sync does not own are never touched.
//!
//! What a destination holds and how a tag goes with what belongs to it are the destination
//! transport's answers ([`Transport::list_repository`], [`Transport::delete`]); this module reads
//! no transport's files. The manifests of the tags that stay are passed as `keep`, so
//! signatures, sigstore attachments and referrers of images that remain are never deleted,
//! while those of a deleted image go with it. Their digests come from this run's results where
//! the run saw them, else from one `present` request per tag.
//!
//! The destination's listings do not depend on the copies (the copies only add tags the source
//! lists, which are never candidates, and every image of this run counts as staying): they are
//! fetched while the copies run ([`prefetch`]), and so is what does not depend on the copies'
//! results: the digests of the names that stay and that no image of this run is written to,
//! and, for every candidate, what deleting it would remove ([`Transport::prepare_delete`]: its
//! manifest, signatures, attachments and referrers). What the copies decide is read only from
//! their results, after them: the manifests to keep are this run's images plus those early
//! digests, so a candidate whose manifest a copy just wrote under another name loses only its
//! name; and a lookup made early of a name that an image of this run was written to is never
//! used (it is read again). So a prune adds only its deletions to a sync, run at once (within
//! the registry's request cap), each deletion's waves in order: what is attached first, the
//! manifest last. Into a registry, a repository's deletions start once its own images are done
//! ([`prune_repository`], called by the scheduler), while other repositories' copies go on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;

use super::SyncOptions;
use super::config::TagSelection;
use super::plan::{Listing, PlanRequest, RepositoryScope, destination_for};
use super::report::{ImageResult, ImageStatus, NotPruned, PruneStatus, PrunedTag};
use crate::digest::Digest;
use crate::reference::ImageReference;
use crate::session::Session;
use crate::transport::{DeleteRequest, HeldImage, PreparedDeletion, Transport, registry};

/// What a prune read of one destination repository while the copies ran.
#[derive(Debug, Clone, Default)]
pub(super) struct Prefetched {
    /// The images the repository held.
    held: Vec<HeldImage>,
    /// The manifests of the names that stay and that no image of this run is written to, by
    /// reference text (`None`: nothing there). A lookup that failed is not here.
    present: HashMap<String, Option<Digest>>,
    /// What deleting each withdrawn name would remove, by reference text. A lookup that
    /// failed, or a transport that does not read ahead, leaves the name out.
    prepared: HashMap<String, PreparedDeletion>,
}

/// What a prune reads, while the copies run, of each repository it may touch, by destination
/// repository (the probe reference's text): the answer, or the listing's error, when its task
/// ends.
pub(super) type Listings = HashMap<String, tokio::task::JoinHandle<Result<Prefetched, String>>>;

/// Reads, while the copies run, the destination repositories of the scopes a prune may touch
/// ([`Prefetched`]): their listings, and then what needs no result of the copies. `written`:
/// the references the images of this run are written to, which are never read early.
pub(super) fn prefetch(
    session: &Arc<Session>,
    request: &PlanRequest,
    scopes: &[RepositoryScope],
    written: HashSet<String>,
    options: &SyncOptions,
) -> Listings {
    let parallel = options.parallel_checks.max(1);
    // One bound for the listings and one for the lookups, over every repository. Fewer
    // lookups than checks at once (a quarter was tried) makes the read-ahead a chain that
    // ends after the copies, and the deletions wait for it.
    let listings = Arc::new(tokio::sync::Semaphore::new(parallel));
    let lookups = Arc::new(tokio::sync::Semaphore::new(parallel));
    let request = Arc::new(request.clone());
    let written = Arc::new(written);
    scopes
        .iter()
        .filter(|s| s.shares_destination_with.is_empty())
        .filter(|s| matches!(&s.listing, Listing::Complete { listed, .. } if *listed > 0))
        .filter_map(|s| Some((s.clone(), s.destination.as_ref().ok()?.clone())))
        .map(|(scope, probe)| {
            let (session, request, written) = (session.clone(), request.clone(), written.clone());
            let (listings, lookups) = (listings.clone(), lookups.clone());
            let destination = options.copy.destination.clone();
            let key = probe.to_string();
            let task = tokio::spawn(async move {
                let transport = registry::of(&probe).map_err(|e| e.to_string())?;
                let held = {
                    let _permit = listings.acquire().await.map_err(|e| e.to_string())?;
                    transport
                        .list_repository(&session, &probe, &destination)
                        .await
                        .map_err(|e| e.to_string())?
                };
                let mut found = Prefetched {
                    held: held.clone(),
                    ..Prefetched::default()
                };
                let Listing::Complete {
                    selection, taken, ..
                } = &scope.listing
                else {
                    return Ok(found);
                };
                let (withdrawn, remaining) = divide(&request, &scope, selection, taken, held);
                if withdrawn.is_empty() {
                    return Ok(found);
                }
                let (session, destination, lookups) = (&session, &destination, &lookups);
                let early = |h: &HeldImage| !written.contains(&h.reference.to_string());
                let stays = remaining.into_iter().filter(early).map(|h| async move {
                    let _permit = lookups.acquire().await.ok()?;
                    let p = transport.present(session, &h.reference, destination).await;
                    Some((h.reference.to_string(), p.ok()?.map(|p| p.digest)))
                });
                let goes = withdrawn.into_iter().map(|(h, _)| h);
                let goes = goes.filter(early).map(|h| async move {
                    let _permit = lookups.acquire().await.ok()?;
                    let p = transport
                        .prepare_delete(session, &h.reference, destination)
                        .await;
                    Some((h.reference.to_string(), p.ok()??))
                });
                let (stays, goes) = futures::future::join(
                    futures::future::join_all(stays),
                    futures::future::join_all(goes),
                )
                .await;
                found.present = stays.into_iter().flatten().collect();
                found.prepared = goes.into_iter().flatten().collect();
                Ok(found)
            });
            (key, task)
        })
        .collect()
}

/// Divides the images a destination repository holds into the withdrawn ones (with their tag
/// as the source would name it) and those that stay: a withdrawn image is one the sync owns
/// (its naming, within the filters) whose tag the source no longer lists.
fn divide(
    request: &PlanRequest,
    scope: &RepositoryScope,
    selection: &TagSelection,
    taken: &BTreeSet<String>,
    held: Vec<HeldImage>,
) -> (Vec<(HeldImage, String)>, Vec<HeldImage>) {
    let owned = |h: &HeldImage| -> Option<String> {
        let tag = h.tag.strip_suffix(request.append_suffix.as_str())?;
        let named = destination_for(request, &format!("{}:{tag}", scope.repository)).ok()?;
        (named.to_string() == h.reference.to_string()
            && super::filter::takes_tag(selection, &request.tag_filter, tag))
        .then(|| tag.to_string())
    };
    let mut withdrawn = Vec::new();
    let mut remaining = Vec::new();
    for h in held {
        match owned(&h) {
            Some(tag) if !taken.contains(&tag) => withdrawn.push((h, tag)),
            _ => remaining.push(h),
        }
    }
    (withdrawn, remaining)
}

/// A withdrawn tag to delete, with what must stay in its repository.
struct Candidate {
    repository: String,
    held: HeldImage,
    reason: String,
    keep: Arc<HashSet<Digest>>,
    /// What deleting it removes, read while the copies ran.
    prepared: Option<PreparedDeletion>,
    transport: &'static dyn Transport,
}

/// Deletes the destination tags the source withdrew from one repository, where it is safe:
/// called once the copies of its images are done (the others' may still run). `images`: at
/// least every result of this repository; `early`: what [`prefetch`] is reading of its
/// destination (listed again here when absent or its task ended abnormally); `deletions`
/// bounds the deletions in flight across repositories.
pub(super) async fn prune_repository(
    session: &Arc<Session>,
    request: &PlanRequest,
    scope: &RepositoryScope,
    images: &[ImageResult],
    early: Option<tokio::task::JoinHandle<Result<Prefetched, String>>>,
    options: &SyncOptions,
    deletions: &tokio::sync::Semaphore,
) -> Result<Vec<PrunedTag>, NotPruned> {
    let by_destination: HashMap<&str, &ImageResult> = images
        .iter()
        .filter_map(|i| i.destination.as_deref().map(|d| (d, i)))
        .collect();
    let early = match early {
        Some(task) => task.await.ok(),
        None => None,
    };
    let work = candidates(
        session,
        request,
        scope,
        images,
        &by_destination,
        early.as_ref(),
        options,
    )
    .await?;
    Ok(futures::stream::iter(work)
        .map(|c| async move {
            let _permit = deletions.acquire().await;
            delete(session, c, options).await
        })
        .buffer_unordered(options.parallel_checks.max(1))
        .collect()
        .await)
}

/// A repository whose prune task ended abnormally: nothing more is known of it.
pub(super) fn abnormal(scope: &RepositoryScope, e: &tokio::task::JoinError) -> NotPruned {
    NotPruned {
        repository: scope.repository.clone(),
        destination: scope.destination.as_ref().ok().map(|d| d.to_string()),
        reason: format!("the prune task ended abnormally: {e}"),
        failed: true,
    }
}

/// The prune's answer from every repository's (in the scopes' order), said to the progress
/// reporter: the tags deleted (sorted), and the repositories left alone.
pub(super) fn finish(
    outcomes: Vec<Result<Vec<PrunedTag>, NotPruned>>,
    options: &SyncOptions,
) -> (Vec<PrunedTag>, Vec<NotPruned>) {
    let mut not_pruned = Vec::new();
    let mut pruned = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(tags) => pruned.extend(tags),
            Err(n) => {
                if let Some(p) = &options.progress {
                    p.warning(&format!("{}: not pruned: {}", n.repository, n.reason));
                }
                not_pruned.push(n);
            }
        }
    }
    pruned.sort_by(|a: &PrunedTag, b: &PrunedTag| a.destination.cmp(&b.destination));
    if let Some(p) = &options.progress {
        for t in &pruned {
            p.pruned(t);
        }
    }
    (pruned, not_pruned)
}

/// The withdrawn tags of one repository, or why it is left alone.
async fn candidates(
    session: &Arc<Session>,
    request: &PlanRequest,
    scope: &RepositoryScope,
    images: &[ImageResult],
    by_destination: &HashMap<&str, &ImageResult>,
    listed_before: Option<&Result<Prefetched, String>>,
    options: &SyncOptions,
) -> Result<Vec<Candidate>, NotPruned> {
    let declined = |reason: String, failed: bool| NotPruned {
        repository: scope.repository.clone(),
        destination: scope.destination.as_ref().ok().map(|d| d.to_string()),
        reason,
        failed,
    };
    let (selection, listed, taken) = match &scope.listing {
        Listing::Complete {
            selection,
            listed,
            taken,
        } => (selection, *listed, taken),
        Listing::Failed(e) => {
            return Err(declined(
                format!(
                    "the source's tag listing failed or came back incomplete ({e}); nothing is deleted there"
                ),
                false,
            ));
        }
        Listing::NotListed(why) => return Err(declined(why.clone(), false)),
    };
    if listed == 0 {
        return Err(declined(
            "the source listed no tags at all; an empty listing is not trusted, so nothing is deleted there".into(),
            false,
        ));
    }
    if !scope.shares_destination_with.is_empty() {
        return Err(declined(
            format!(
                "its destination repository also receives the images of {}; their tags would look withdrawn (use --scoped)",
                scope.shares_destination_with.join(", ")
            ),
            false,
        ));
    }
    let unfinished = images
        .iter()
        .filter(|i| i.repository == scope.repository)
        .filter(|i| {
            !matches!(
                i.status,
                ImageStatus::Copied | ImageStatus::Skipped | ImageStatus::WouldCopy
            )
        })
        .count();
    if unfinished > 0 {
        return Err(declined(
            format!(
                "{unfinished} of its images failed, were rejected or were not attempted; nothing is deleted after a pass that did not succeed"
            ),
            false,
        ));
    }
    let probe = scope
        .destination
        .as_ref()
        .map_err(|e| declined(format!("its destination cannot be named: {e}"), false))?;
    let transport = registry::of(probe).map_err(|e| declined(e.to_string(), true))?;
    let destination_options = &options.copy.destination;
    let mut early = match listed_before {
        Some(l) => l.clone(),
        None => transport
            .list_repository(session, probe, destination_options)
            .await
            .map(|held| Prefetched {
                held,
                ..Prefetched::default()
            })
            .map_err(|e| e.to_string()),
    }
    .map_err(|e| {
        declined(
            format!("listing the destination's images failed: {e}"),
            true,
        )
    })?;
    // A name an image of this run was written to is never judged by what was read of it
    // before the copy.
    early
        .present
        .retain(|r, _| !by_destination.contains_key(r.as_str()));
    early
        .prepared
        .retain(|r, _| !by_destination.contains_key(r.as_str()));
    let (withdrawn, remaining) = divide(
        request,
        scope,
        selection,
        taken,
        std::mem::take(&mut early.held),
    );
    if withdrawn.is_empty() {
        return Ok(Vec::new());
    }
    // Every image this run copied or found there stays, listed or not.
    let mut keep: HashSet<Digest> = images
        .iter()
        .filter(|i| i.repository == scope.repository)
        .filter(|i| matches!(i.status, ImageStatus::Copied | ImageStatus::Skipped))
        .filter_map(|i| i.digest.clone())
        .collect();
    for h in &remaining {
        let seen = by_destination
            .get(h.reference.to_string().as_str())
            .filter(|i| matches!(i.status, ImageStatus::Copied | ImageStatus::Skipped))
            .and_then(|i| i.digest.clone());
        let digest = match seen
            .map(Some)
            .or_else(|| early.present.get(&h.reference.to_string()).cloned())
        {
            Some(d) => d,
            None => transport
                .present(session, &h.reference, destination_options)
                .await
                .map_err(|e| {
                    declined(
                        format!(
                            "{} stays, and what it names could not be read ({e}); nothing is deleted there",
                            h.reference
                        ),
                        true,
                    )
                })?
                .map(|p| p.digest),
        };
        keep.extend(digest);
    }
    let keep = Arc::new(keep);
    Ok(withdrawn
        .into_iter()
        .map(|(held, tag)| Candidate {
            prepared: early.prepared.remove(&held.reference.to_string()),
            repository: scope.repository.clone(),
            reason: format!(
                "withdrawn at the source: {} lists {listed} tag(s), {} within the filters, and not {tag:?}",
                scope.repository,
                taken.len()
            ),
            held,
            keep: keep.clone(),
            transport,
        })
        .collect())
}

/// Deletes one withdrawn tag (or, in a dry run, says what it names).
async fn delete(session: &Arc<Session>, c: Candidate, options: &SyncOptions) -> PrunedTag {
    let reference: &ImageReference = &c.held.reference;
    let mut tag = PrunedTag {
        destination: reference.to_string(),
        repository: c.repository,
        status: PruneStatus::Failed,
        reason: c.reason,
        digest: None,
        removed: Vec::new(),
        detail: None,
    };
    let destination = &options.copy.destination;
    if options.dry_run {
        if let Some(p) = &c.prepared {
            tag.status = PruneStatus::WouldDelete;
            tag.digest = Some(p.digest.clone());
            return tag;
        }
        match c.transport.present(session, reference, destination).await {
            Ok(p) => {
                tag.status = PruneStatus::WouldDelete;
                tag.digest = p.map(|p| p.digest);
            }
            Err(e) => tag.detail = Some(e.to_string()),
        }
        return tag;
    }
    let request = DeleteRequest {
        keep: (*c.keep).clone(),
        purge_evidence: options.purge_evidence,
        prepared: c.prepared,
    };
    match c
        .transport
        .delete(session, reference, destination, &request)
        .await
    {
        Ok(Some(d)) => {
            tag.status = if d.name_removed {
                PruneStatus::Deleted
            } else {
                PruneStatus::Kept
            };
            tag.digest = Some(d.digest);
            tag.removed = d.removed;
            tag.detail = d.kept;
        }
        Ok(None) => {
            tag.status = PruneStatus::Deleted;
            tag.detail = Some("already gone when the prune came to it".into());
        }
        Err(e) => tag.detail = Some(e.to_string()),
    }
    tag
}
