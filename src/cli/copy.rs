//! `ferry copy`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use ferry::Referrers;
use ferry::TransportOptions;
use ferry::{
    ConversionCache, CopyOptions, GateOptions, ImageSelection, LayerCompression, ManifestFormat,
    OutputFormat, OutputSpec, SignKey, SignOptions, SignatureMode,
};

use ferry::signatures::SigningKey;
use ferry::{DockerReference, ImageReference};

use super::options::{EndsArgs, PlatformArgs, PolicyArgs, SourceArg, parse_image, parse_source};
use super::progress::TerminalProgress;

/// What `ferry copy` and `ferry policy check` share: which images of a list.
#[derive(Debug, clap::Args)]
pub struct SelectionArgs {
    /// Copy the whole list of images and every image in it, not only the one for this platform.
    #[arg(short = 'a', long, conflicts_with = "platform")]
    pub all: bool,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

impl SelectionArgs {
    /// The selection.
    pub fn selection(&self) -> ImageSelection {
        self.platform.selection(self.all)
    }
}

/// What `ferry copy` and `ferry policy check` share: the policy, the signature mode, which
/// images.
#[derive(Debug, clap::Args)]
pub struct GateArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub mode: ModeArgs,
    #[command(flatten)]
    pub selection: SelectionArgs,
}

impl GateArgs {
    /// Gate options with the policy, the mode and the selection, reading the source as
    /// `source` says (with the mode's `--referrers`).
    pub fn options(&self, mut source: TransportOptions) -> anyhow::Result<GateOptions> {
        let mut options = GateOptions::new(self.policy.load()?);
        options.mode = self.mode.mode();
        options.selection = self.selection.selection();
        source.referrers = self.mode.referrers;
        options.source = source;
        Ok(options)
    }
}

/// The signature mode flags of `ferry copy` and `ferry policy check`.
#[derive(Debug, clap::Args)]
pub struct ModeArgs {
    /// What to do with the source's signatures: copy-all, remove-signatures or
    /// sufficient-subset.
    #[arg(long = "signatures", value_name = "MODE", default_value = "copy-all")]
    pub mode: SignatureMode,
    /// Copy no signatures (same as --signatures remove-signatures).
    #[arg(long, conflicts_with = "mode")]
    pub remove_signatures: bool,
    /// What is attached to the image (OCI 1.1 referrers, cosign's .att and .sbom tags) is read
    /// and copied: signatures (the default: sigstore bundles among the referrers, where
    /// registries.d enables use-sigstore-referrers, judged and copied with the other
    /// signatures), all (also attestations, SBOMs and any other referrer, whatever registries.d
    /// says), or none.
    #[arg(long, value_name = "WHAT", default_value = "signatures")]
    pub referrers: Referrers,
}

impl ModeArgs {
    /// The mode.
    pub fn mode(&self) -> SignatureMode {
        if self.remove_signatures {
            SignatureMode::RemoveSignatures
        } else {
            self.mode
        }
    }
}

/// Copy SOURCE to DESTINATION. The source's signatures are read and checked against the
/// signature policy before anything is written; a rejected image leaves the destination as it
/// was.
///
/// References: docker://HOST/REPO[:TAG|@DIGEST] (a registry), oci:PATH[:NAME] (an OCI image
/// layout), dir:PATH (a containers directory, as skopeo writes), store:REF (ferry's store),
/// oci-archive:PATH[:NAME] (an OCI layout in a tar file), docker-archive:PATH[:NAME:TAG|:@N]
/// (docker save's format) and containers-storage:[[DRIVER@ROOT[+RUNROOT]]]NAME (podman's and
/// CRI-O's store).
#[derive(Debug, clap::Args)]
#[command(after_help = "Signature modes (--signatures):
  copy-all           every signature slot must be readable; all are copied byte for byte (default)
  remove-signatures  the policy still decides; the destination gets no signatures
  sufficient-subset  the policy is evaluated on the readable signatures; if they satisfy it, every
                     readable signature is copied and the unreadable ones are reported as warnings

Exit status: 0 copied, 1 rejected by the signature policy or the signatures, 2 bad usage,
3 any other failure (the message says what failed and what to do).")]
pub struct CopyArgs {
    /// The image to copy from (a name without transport is resolved through registries.conf,
    /// as podman resolves it).
    #[arg(value_name = "SOURCE", value_parser = parse_source)]
    pub source: SourceArg,
    /// Where to copy it to.
    #[arg(value_name = "DESTINATION", value_parser = parse_image)]
    pub destination: ImageReference,
    #[command(flatten)]
    gate: GateArgs,
    #[command(flatten)]
    sign: SignArgs,
    /// The docker reference to sign for (default: the destination's).
    #[arg(long, value_name = "REFERENCE")]
    sign_identity: Option<String>,
    /// The manifest format the destination must get (oci or v2s2), converted as containers/image
    /// converts it. A converted manifest has a new digest, so this is refused when a source
    /// signature would be kept with it: use --signatures remove-signatures (and --sign-by to
    /// sign the converted image).
    #[arg(short = 'f', long, value_name = "FORMAT")]
    format: Option<ManifestFormat>,
    #[command(flatten)]
    compress: CompressArgs,
    /// Write a JSON report: every manifest, blob and signature slot, with timings.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the digest of the manifest written to the destination to FILE (as skopeo: the
    /// digest alone, no newline).
    #[arg(long, value_name = "FILE")]
    digestfile: Option<PathBuf>,
    /// How many blobs to copy at once.
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..=64))]
    parallel_blobs: u16,
    #[command(flatten)]
    ends: EndsArgs,
    /// An oci: SOURCE's blobs are read from DIR (DIR/sha256/HEX, shared by many layouts, as
    /// build caches keep them) instead of the layout's own blobs/, as skopeo's.
    #[arg(long, value_name = "DIR")]
    src_shared_blob_dir: Option<PathBuf>,
    /// An oci: DESTINATION's blobs are written to DIR (DIR/sha256/HEX) instead of the layout's
    /// own blobs/, which stays empty; the layout's index.json names the image, as skopeo's.
    #[arg(long, value_name = "DIR")]
    dest_shared_blob_dir: Option<PathBuf>,
    /// No progress output (warnings and errors still go to stderr).
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    skopeo_only: SkopeoOnlyArgs,
}

/// skopeo copy's flags for what ferry does not do, accepted so that a script moved from skopeo
/// gets a reason instead of "unexpected argument" (hidden from --help; docs/config.md lists
/// them). Flags for what ferry always does are accepted and change nothing.
#[derive(Debug, clap::Args)]
pub struct SkopeoOnlyArgs {
    /// Accepted, changes nothing: ferry knows every blob's digest before it uploads it.
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    dest_precompute_digests: Option<bool>,
    /// Accepted, changes nothing: ferry compresses a layer only when asked
    /// (--dest-compress-format, --dest-compress), for every destination alike.
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    dest_oci_accept_uncompressed_layers: Option<bool>,
    #[arg(long, hide = true, value_name = "HOST")]
    src_daemon_host: Option<String>,
    #[arg(long, hide = true, value_name = "HOST")]
    dest_daemon_host: Option<String>,
    /// Also tag the image NAME:TAG in a docker-archive: destination (repeat for more tags;
    /// one image with several RepoTags, as `docker save IMAGE:A IMAGE:B` writes it).
    #[arg(long, value_name = "NAME:TAG")]
    additional_tag: Vec<String>,
    #[arg(long, hide = true, value_name = "KEY")]
    encryption_key: Vec<String>,
    #[arg(long, hide = true, value_name = "N")]
    encrypt_layer: Vec<String>,
    #[arg(long, hide = true, value_name = "KEY")]
    decryption_key: Vec<String>,
    /// skopeo's list handling: `system` (the default: the running platform's image), `all` (as
    /// --all), `index-only` (refused: ferry never copies a list without its images).
    #[arg(long, value_name = "system|all|index-only")]
    multi_arch: Option<String>,
    /// Fail rather than change a digest, as skopeo's: only --format can change one in ferry,
    /// so the two together are refused.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    preserve_digests: Option<bool>,
}

/// `--preserve-digests` with a `--format` conversion or a recompression, which give the image
/// a new digest: refused, as skopeo refuses it.
pub fn check_preserve_digests(
    preserve: bool,
    format: Option<ManifestFormat>,
    compression: Option<&LayerCompression>,
) -> Result<(), super::errors::UsageError> {
    match (preserve, format, compression) {
        (true, Some(_), _) => Err(super::errors::UsageError(
            "--preserve-digests with --format: a conversion gives the image a new manifest and so a new digest; leave one of them out (ferry never changes a digest otherwise)".into(),
        )),
        (true, _, Some(_)) => Err(super::errors::UsageError(
            "--preserve-digests with --dest-compress-format, --dest-compress or --dest-decompress: a recompressed layer is a new blob, so the image gets a new manifest digest; leave one of them out".into(),
        )),
        _ => Ok(()),
    }
}

/// skopeo's compression flags, on copy and sync: which layers are recompressed, and how.
#[derive(Debug, clap::Args)]
pub struct CompressArgs {
    /// Write every layer in FORMAT: gzip, zstd or zstd:chunked (zstd with a table of contents,
    /// which lets podman and CRI-O pull only the files they lack). Every layer not already in
    /// FORMAT is recompressed (a zstd:chunked layer is not plain zstd); a layer already in it is
    /// copied as it is unless --force-compression. Recompressed layers are new blobs, so the
    /// image gets a new manifest digest (its config is unchanged; a Docker image that gets zstd
    /// layers becomes an OCI image): refused when a source signature would be kept with it, so
    /// use --signatures remove-signatures, and --sign-by to sign the new manifest. What each
    /// recompression gave is remembered in $XDG_CACHE_HOME/ferry (else ~/.cache/ferry), so a
    /// second copy recompresses nothing; recompressed layers wait for their upload in $TMPDIR
    /// (else /var/tmp). See docs/compression.md.
    #[arg(long, value_name = "FORMAT")]
    pub dest_compress_format: Option<OutputFormat>,
    /// The compression level: gzip 0-9 (default 6), zstd and zstd:chunked 1-22 (default 3;
    /// negative levels are faster still).
    #[arg(long, value_name = "LEVEL", allow_hyphen_values = true)]
    pub dest_compress_level: Option<i32>,
    /// Compress the layers that are not compressed (with gzip, or --dest-compress-format), and
    /// leave compressed ones as they are. skopeo applies this to dir: destinations only; ferry
    /// to every destination.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub dest_compress: Option<bool>,
    /// Write every layer uncompressed (a plain tar). skopeo applies this to dir: destinations
    /// only; ferry to every destination.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub dest_decompress: Option<bool>,
    /// Recompress the layers already in --dest-compress-format too: to change their level, or
    /// to make a zstd:chunked layer's table of contents anew.
    #[arg(long)]
    pub force_compression: bool,
}

impl CompressArgs {
    /// What the flags ask for (`None`: every layer byte for byte), or why they cannot go
    /// together. Recompressions are remembered in `$XDG_CACHE_HOME/ferry` (else
    /// `~/.cache/ferry`) so a second copy recompresses nothing, and wait for their upload in
    /// `$TMPDIR` (else /var/tmp).
    pub fn compression(&self) -> Result<Option<LayerCompression>, super::errors::UsageError> {
        let usage = |m: &str| Err(super::errors::UsageError(m.to_string()));
        let compress = self.dest_compress == Some(true);
        let decompress = self.dest_decompress == Some(true);
        if decompress && (compress || self.dest_compress_format.is_some()) {
            return usage(
                "--dest-decompress with --dest-compress or --dest-compress-format: ask for one of them",
            );
        }
        let format = match (self.dest_compress_format, compress, decompress) {
            (Some(f), _, _) => f,
            (None, true, _) => OutputFormat::Gzip,
            (None, false, true) => OutputFormat::Uncompressed,
            (None, false, false) => {
                if self.dest_compress_level.is_some() || self.force_compression {
                    return usage(
                        "--dest-compress-level and --force-compression need --dest-compress-format (or --dest-compress for gzip)",
                    );
                }
                return Ok(None);
            }
        };
        let mut output = OutputSpec::new(format);
        if let Some(level) = self.dest_compress_level {
            if decompress {
                return usage(
                    "--dest-compress-level with --dest-decompress: an uncompressed layer has no level",
                );
            }
            output = output
                .with_level(level)
                .map_err(|e| super::errors::UsageError(format!("--dest-compress-level: {e}")))?;
        }
        let mut compression = LayerCompression::new(output);
        compression.only_uncompressed = compress && self.dest_compress_format.is_none();
        compression.force = self.force_compression;
        if let Some(dir) = std::env::var_os("TMPDIR").filter(|d| !d.is_empty()) {
            compression.spool_dir = dir.into();
        }
        let cache_home = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|d| !d.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            });
        compression.cache = Some(Arc::new(match cache_home {
            Some(dir) => ConversionCache::open(dir.join("ferry/recompressed-layers.json")),
            None => ConversionCache::in_memory(),
        }));
        Ok(Some(compression))
    }
}

impl SkopeoOnlyArgs {
    /// Refuses the flags asking for what ferry does not do, saying why and what to do.
    fn refuse_unsupported(&self) -> Result<(), super::errors::UsageError> {
        if !self.encryption_key.is_empty()
            || !self.encrypt_layer.is_empty()
            || !self.decryption_key.is_empty()
        {
            return Err(super::errors::UsageError(
                "--encryption-key/--encrypt-layer/--decryption-key: ferry does not encrypt or decrypt layers (ocicrypt); an encrypted layer is a new blob, so the source's signatures would no longer cover the image; use skopeo copy for that".into(),
            ));
        }
        match self.multi_arch.as_deref() {
            None | Some("system") | Some("all") => {}
            Some("index-only") => {
                return Err(super::errors::UsageError(
                    "--multi-arch index-only: ferry never copies a list without its images (a destination would hold a list it cannot serve); use --multi-arch all (--all), or system for one image".into(),
                ));
            }
            Some(other) => {
                return Err(super::errors::UsageError(format!(
                    "--multi-arch {other:?}: use system, all or index-only"
                )));
            }
        }
        if self.src_daemon_host.is_some() || self.dest_daemon_host.is_some() {
            return Err(super::errors::UsageError(
                "--src-daemon-host/--dest-daemon-host: ferry has no docker-daemon: transport; copy to or from a registry (docker://), oci:, dir: or store: instead".into(),
            ));
        }
        Ok(())
    }
}

/// How `ferry copy` and `ferry sync` sign what they write (for the destination's name, or
/// copy's `--sign-identity`; sync signs each image for its own destination name).
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Sign with simple signing, with this key: a fingerprint, a key ID or a user ID (as gpg
    /// reads it: alice@example.com). Without --sign-key, the key is found in the GnuPG home
    /// ($GNUPGHOME, else ~/.gnupg) and gpg-agent signs with it, as skopeo's --sign-by.
    #[arg(long, value_name = "ID")]
    pub sign_by: Option<String>,
    /// The secret key for --sign-by, from a file (`gpg --export-secret-keys FINGERPRINT >
    /// FILE`) instead of gpg-agent; --sign-by is then its fingerprint.
    #[arg(long, value_name = "FILE", requires = "sign_by")]
    pub sign_key: Option<PathBuf>,
    /// Sign with sigstore, with this cosign private key (as written by `ferry
    /// generate-sigstore-key`, `skopeo generate-sigstore-key` or `cosign generate-key-pair`).
    #[arg(long, value_name = "FILE")]
    pub sign_by_sigstore_private_key: Option<PathBuf>,
    /// A file holding the passphrase of the --sign-key or --sign-by-sigstore-private-key key
    /// (its trailing newline is not part of it).
    #[arg(long, value_name = "FILE")]
    pub sign_passphrase_file: Option<PathBuf>,
}

impl SignArgs {
    /// The keys to sign with, loaded (none when no signing was asked for).
    pub fn keys(&self) -> anyhow::Result<Vec<SignKey>> {
        let passphrase = match &self.sign_passphrase_file {
            Some(p) => Some(super::sign::read_passphrase(p)?),
            None => None,
        };
        let mut keys = Vec::new();
        match (&self.sign_by, &self.sign_key) {
            (Some(fpr), Some(key_file)) => {
                let bytes = std::fs::read(key_file)
                    .with_context(|| format!("reading the signing key {}", key_file.display()))?;
                let key = SigningKey::from_bytes(&bytes, Some(fpr), passphrase.as_deref())
                    .with_context(|| {
                        format!("loading the signing key {fpr} from {}", key_file.display())
                    })?;
                keys.push(SignKey::SimpleSigning(Arc::new(key)));
            }
            (Some(id), None) => {
                let key = super::sign::gnupg_key(id, passphrase.as_deref())?;
                keys.push(SignKey::SimpleSigning(Arc::new(key)));
            }
            _ => {}
        }
        if let Some(key_file) = &self.sign_by_sigstore_private_key {
            keys.push(SignKey::Sigstore(Arc::new(
                super::sign::sigstore_private_key(key_file, passphrase.as_deref())?,
            )));
        }
        if keys.is_empty() && self.sign_passphrase_file.is_some() {
            return Err(super::errors::UsageError(
                "--sign-passphrase-file needs --sign-by or --sign-by-sigstore-private-key".into(),
            )
            .into());
        }
        Ok(keys)
    }
}

/// Runs `ferry copy`.
pub async fn run(args: CopyArgs) -> anyhow::Result<ExitCode> {
    args.skopeo_only.refuse_unsupported()?;
    if !args.skopeo_only.additional_tag.is_empty()
        && args.destination.transport() != "docker-archive"
    {
        return Err(super::errors::UsageError(format!(
            "--additional-tag: only a docker-archive: destination keeps more tags for one image; {} names one image (copy once more to each name instead)",
            args.destination
        ))
        .into());
    }
    let compression = args.compress.compression()?;
    check_preserve_digests(
        args.skopeo_only.preserve_digests == Some(true),
        args.format,
        compression.as_ref(),
    )?;
    let session = args.ends.session();
    let mut source_options = args.ends.source_options();
    source_options.shared_blob_dir = args.src_shared_blob_dir.clone();
    let mut gate = args.gate.options(source_options)?;
    if args.skopeo_only.multi_arch.as_deref() == Some("all") {
        gate.selection = ImageSelection::All;
    }
    let mut options = CopyOptions::new(gate.policy.clone());
    options.gate = gate;
    options.destination = args.ends.destination_options();
    options.destination.additional_tags = args.skopeo_only.additional_tag.clone();
    options.destination.shared_blob_dir = args.dest_shared_blob_dir.clone();
    options.parallel_blobs = usize::from(args.parallel_blobs);
    options.format = args.format;
    options.compression = compression;
    let keys = args.sign.keys()?;
    if keys.is_empty() && args.sign_identity.is_some() {
        return Err(super::errors::UsageError(
            "--sign-identity needs --sign-by or --sign-by-sigstore-private-key".into(),
        )
        .into());
    }
    if !keys.is_empty() {
        let identity = match &args.sign_identity {
            Some(s) => {
                Some(DockerReference::parse(s).with_context(|| format!("--sign-identity {s:?}"))?)
            }
            None => None,
        };
        options.sign = Some(SignOptions { keys, identity });
    }
    let progress = Arc::new(TerminalProgress::new(args.quiet));
    options.gate.progress = Some(progress.clone());

    let candidates = super::options::candidates(&session, &args.source).await?;
    let mut source = candidates.first().cloned();
    let mut result = None;
    for (i, candidate) in candidates.iter().enumerate() {
        source = Some(candidate.clone());
        let r = ferry::copy(&session, candidate, &args.destination, &options).await;
        match &r {
            Err(ferry::CopyError::Source { source: e, .. })
                if i + 1 < candidates.len() && super::options::try_next_candidate(e) =>
            {
                tracing::warn!("{candidate}: {e}; trying the next candidate");
            }
            _ => {
                result = Some(r);
                break;
            }
        }
    }
    let source = source.context("no candidate to copy from")?;
    let result = result.context("no candidate to copy from")?;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            // A failed copy still reports, so a runtime or mirror can keep the evidence of why.
            if let Some(path) = &args.report {
                let failed = serde_json::json!({
                    "version": ferry::REPORT_VERSION,
                    "source": source.to_string(),
                    "destination": args.destination.to_string(),
                    "mode": options.gate.mode,
                    "error": e.to_string(),
                    "verdict": e.verdict(),
                    "unreadable": e.unreadable(),
                });
                std::fs::write(path, serde_json::to_vec_pretty(&failed)?)
                    .with_context(|| format!("writing the report {}", path.display()))?;
            }
            return Err(e.into());
        }
    };
    if let Some(path) = &args.digestfile {
        std::fs::write(path, report.manifest_digest.to_string())
            .with_context(|| format!("writing the digest file {}", path.display()))?;
    }
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json)
            .with_context(|| format!("writing the report {}", path.display()))?;
    }
    progress.line(&format!(
        "Copied {} to {} ({})",
        source, args.destination, report.manifest_digest
    ));
    Ok(ExitCode::SUCCESS)
}
