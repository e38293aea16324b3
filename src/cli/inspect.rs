//! `ferry inspect`.

use std::process::ExitCode;

use anyhow::Context;
use ferry::manifest;
use ferry::manifest::{Manifest, ManifestKind, PlatformSpec};
use ferry::{Digest, VerifyingStream};
use futures::StreamExt;
use serde_json::Value;

use super::options::{ImageAccessArgs, SourceArg, parse_source};

/// Show an image: its digest, layers, platform, environment and labels as JSON (the fields of
/// `skopeo inspect`), or with --raw the manifest's exact bytes.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The image (docker://, oci:, dir:, store:; a name without transport is resolved through
    /// registries.conf, as podman resolves it).
    #[arg(value_name = "IMAGE", value_parser = parse_source)]
    image: SourceArg,
    /// Print the manifest exactly as stored, byte for byte.
    #[arg(long)]
    raw: bool,
    /// Print the image's config instead, as the OCI image config (with --raw: the config
    /// blob's exact bytes).
    #[arg(long)]
    config: bool,
    /// Format the output: `json` (the default), or a Go template of the fields as skopeo prints
    /// them: {{.Name}}, {{.Digest}}, {{.Created}}, {{.Architecture}}, {{.Os}}, {{.Labels.KEY}},
    /// {{json .Field}}, {{range .RepoTags}}{{.}} {{end}}, …
    #[arg(short = 'f', long, value_name = "FORMAT", conflicts_with_all = ["raw", "config"])]
    format: Option<String>,
    /// Do not list the repository's tags (RepoTags is then empty).
    #[arg(short = 'n', long)]
    no_tags: bool,
    #[command(flatten)]
    platform: super::options::PlatformArgs,
    #[command(flatten)]
    access: ImageAccessArgs,
    #[arg(long, hide = true, value_name = "HOST")]
    daemon_host: Option<String>,
    /// An oci: IMAGE's blobs are read from DIR (DIR/sha256/HEX, shared by many layouts)
    /// instead of the layout's own blobs/, as skopeo's.
    #[arg(long, value_name = "DIR")]
    shared_blob_dir: Option<std::path::PathBuf>,
}

/// containers/image's words for a list without the wanted platform (`no image found in
/// manifest list for architecture arm64, variant "v8", OS linux`; `image index` for an OCI
/// index).
fn no_instance_message(kind: ManifestKind, want: &PlatformSpec) -> String {
    let list = match kind {
        ManifestKind::OciIndex => "image index",
        _ => "manifest list",
    };
    format!(
        "no image found in {list} for architecture {}, variant {}, OS {}",
        want.architecture,
        super::compat::go_quote(want.variant.as_deref().unwrap_or_default()),
        want.os
    )
}

/// Runs `ferry inspect`.
pub async fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    if args.daemon_host.is_some() {
        return Err(super::errors::UsageError(
            "--daemon-host: ferry has no docker-daemon: transport; inspect the image in a registry (docker://), oci:, dir: or store: instead".into(),
        )
        .into());
    }
    let session = args.access.session();
    let mut options = args.access.options();
    options.shared_blob_dir = args.shared_blob_dir.clone();
    let candidates = super::options::candidates(&session, &args.image).await?;
    let mut opened = None;
    for (i, candidate) in candidates.iter().enumerate() {
        let attempt = async {
            let source = session.open_source(candidate, &options).await?;
            let top = source.manifest(None).await?;
            Ok::<_, ferry::TransportError>((source, top))
        };
        match attempt.await {
            Ok(found) => {
                opened = Some((candidate.clone(), found));
                break;
            }
            Err(e) if i + 1 < candidates.len() && super::options::try_next_candidate(&e) => {
                tracing::warn!("{candidate}: {e}; trying the next candidate");
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {candidate}"))),
        }
    }
    let (image_ref, (source, top)) = opened.context("no candidate to inspect")?;
    if args.raw && !args.config {
        super::output::stdout_write(&top.bytes);
        return Ok(ExitCode::SUCCESS);
    }
    let top_digest = Digest::sha256_of(&top.bytes);
    let parsed = manifest::parse(&top.bytes, top.media_type.as_deref())
        .with_context(|| format!("the manifest of {}", image_ref))?;
    let image = match parsed {
        Manifest::Image(_, img) => img,
        Manifest::List(kind, list) => {
            let want = args.platform.wanted().unwrap_or_else(PlatformSpec::current);
            // skopeo's words (containers/image's), which scripts grep for.
            let d = want.choose(&list).with_context(|| {
                format!(
                    "Error parsing manifest for image: choosing image instance: {}",
                    no_instance_message(kind, &want)
                )
            })?;
            let raw = source.manifest(Some(&d.digest)).await?;
            match manifest::parse(&raw.bytes, raw.media_type.as_deref())? {
                Manifest::Image(_, img) => img,
                Manifest::List(..) => {
                    anyhow::bail!("{}: a list inside a list is not supported", image_ref)
                }
            }
        }
    };
    let config_bytes = read_small_blob(source.as_ref(), &image.config).await?;
    if args.config && args.raw {
        super::output::stdout_write(&config_bytes);
        return Ok(ExitCode::SUCCESS);
    }
    if args.config {
        let text = ferry::manifest::convert::oci_config_pretty(&config_bytes)
            .with_context(|| format!("the config blob {}", image.config.digest))?;
        outln!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let config: Value = serde_json::from_slice(&config_bytes)
        .with_context(|| format!("the config blob {} is not JSON", image.config.digest))?;
    let name = match image_ref.docker_reference() {
        Some(r) => r.repository().to_string(),
        None => image_ref.to_string(),
    };
    let repo_tags = match super::options::named_in(&image_ref, "docker") {
        Some(r) if !args.no_tags => session.list_tags(&r, &options).await.unwrap_or_else(|e| {
            tracing::warn!("{e}");
            vec![]
        }),
        _ => vec![],
    };
    let string = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let out = InspectOutput {
        name,
        digest: top_digest.to_string(),
        repo_tags,
        created: config.get("created").cloned().unwrap_or(Value::Null),
        docker_version: string(config.get("docker_version")),
        labels: config
            .pointer("/config/Labels")
            .cloned()
            .unwrap_or(Value::Null),
        architecture: string(config.get("architecture")),
        variant: config
            .get("variant")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        os: string(config.get("os")),
        layers: image.layers.iter().map(|l| l.digest.to_string()).collect(),
        layers_data: image
            .layers
            .iter()
            .map(|l| LayerData {
                mime_type: l.media_type.clone(),
                digest: l.digest.to_string(),
                size: l.size,
                annotations: l.annotations.clone(),
            })
            .collect(),
        env: config
            .pointer("/config/Env")
            .cloned()
            .unwrap_or(Value::Null),
    };
    match args.format.as_deref() {
        Some(f) if !super::template::is_json(f) => {
            let data = serde_json::to_value(&out)?;
            let text = super::template::render(f, &data)
                .map_err(|e| super::errors::UsageError(format!("--format {f:?}: {e}")))?;
            out!("{text}");
        }
        _ => outln!("{}", super::output::go_json_pretty(&out)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// skopeo inspect's output, in its field order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct InspectOutput {
    name: String,
    digest: String,
    repo_tags: Vec<String>,
    created: Value,
    docker_version: String,
    labels: Value,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: String,
    layers: Vec<String>,
    layers_data: Vec<LayerData>,
    env: Value,
}

/// One layer of `LayersData`.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct LayerData {
    #[serde(rename = "MIMEType")]
    mime_type: String,
    digest: String,
    size: u64,
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

async fn read_small_blob(
    source: &dyn ferry::ImageSource,
    d: &ferry::manifest::Descriptor,
) -> anyhow::Result<Vec<u8>> {
    const LIMIT: u64 = ferry::limits::MAX_CONFIG_BLOB;
    anyhow::ensure!(
        d.size <= LIMIT,
        "the config blob {} is {} bytes, over the 4 MiB limit",
        d.digest,
        d.size
    );
    let stream = source
        .blob(d)
        .await
        .with_context(|| format!("reading the config blob {}", d.digest))?;
    let mut verified = VerifyingStream::new(stream, d.digest.clone(), Some(d.size));
    let mut out = Vec::with_capacity(d.size as usize);
    while let Some(chunk) = verified.next().await {
        out.extend_from_slice(
            &chunk.with_context(|| format!("reading the config blob {}", d.digest))?,
        );
    }
    Ok(out)
}
