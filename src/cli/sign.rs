//! `ferry standalone-sign` and `ferry standalone-verify`: skopeo's commands of the same names,
//! on files, with keys from files or, for signing, from the GnuPG home through gpg-agent.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ferry::Digest;
use ferry::DockerReference;
use ferry::signatures::MAX_SIGNATURE_SIZE;
use ferry::signatures::{Format, SniffError, sniff};
use ferry::signatures::{Keyring, SignatureError, SigningKey};

use super::errors::RejectedError;

/// A verification failure: the signature does not verify (exit 1), as opposed to a file that
/// cannot be read (exit 3).
fn rejected(msg: String) -> anyhow::Error {
    RejectedError(msg).into()
}

/// Flags of `ferry standalone-sign`.
#[derive(Debug, clap::Args)]
pub struct StandaloneSignArgs {
    /// The manifest file to sign.
    #[arg(value_name = "MANIFEST")]
    manifest: PathBuf,
    /// The docker reference the signature claims (e.g. registry.example.com/app:1).
    #[arg(value_name = "DOCKER-REFERENCE")]
    reference: String,
    /// The signing key: a fingerprint, a key ID or a user ID (as gpg reads it). Without
    /// --sign-key, found in the GnuPG home ($GNUPGHOME, else ~/.gnupg) and signed with by
    /// gpg-agent, as skopeo does.
    #[arg(value_name = "KEY-FINGERPRINT")]
    fingerprint: String,
    /// Where to write the signature.
    #[arg(short, long, value_name = "SIGNATURE")]
    output: PathBuf,
    /// The secret key from a file (`gpg --export-secret-keys FPR > FILE`) instead of gpg-agent.
    #[arg(long, value_name = "FILE")]
    sign_key: Option<PathBuf>,
    /// A file holding the key's passphrase.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

/// Flags of `ferry standalone-verify`.
#[derive(Debug, clap::Args)]
pub struct StandaloneVerifyArgs {
    /// The manifest file the signature is for.
    #[arg(value_name = "MANIFEST")]
    manifest: PathBuf,
    /// The docker reference the signature must claim.
    #[arg(value_name = "DOCKER-REFERENCE")]
    reference: String,
    /// The fingerprint(s) of the accepted key, comma-separated, or "any" for any key in
    /// --public-key-file.
    #[arg(value_name = "KEY-FINGERPRINTS")]
    fingerprints: String,
    /// The signature file.
    #[arg(value_name = "SIGNATURE")]
    signature: PathBuf,
    /// The public key(s) to verify with (`gpg --export FPR > FILE`).
    #[arg(long, value_name = "FILE")]
    public_key_file: PathBuf,
}

/// The keys of a keyring for a message: `FPR ("user ID")`, comma-separated.
fn keys_text(keyring: &Keyring) -> String {
    let keys: Vec<String> = keyring
        .fingerprints()
        .into_iter()
        .map(|f| match keyring.user_id(&f) {
            Some(u) => format!("{f} ({u:?})"),
            None => f,
        })
        .collect();
    if keys.is_empty() {
        "no keys".into()
    } else {
        keys.join(", ")
    }
}

/// The key `id` names in the user's GnuPG home ($GNUPGHOME, else ~/.gnupg), to sign with
/// through gpg-agent, as skopeo's `--sign-by` without a key file.
pub fn gnupg_key(id: &str, passphrase: Option<&str>) -> anyhow::Result<SigningKey> {
    let user_home = std::env::var_os("HOME").map(PathBuf::from);
    let default_home = user_home.as_ref().map(|h| h.join(".gnupg"));
    let home = ferry::signatures::gnupg_home(
        std::env::var_os("GNUPGHOME").map(PathBuf::from),
        user_home.as_deref(),
    )
    .context("no GnuPG home to find the --sign-by key in: set GNUPGHOME (or HOME), or give the key file with --sign-key")?;
    let uid = rustix::process::getuid().as_raw();
    SigningKey::from_gnupg_home(&home, default_home.as_deref(), uid, id, passphrase)
        .with_context(|| format!("the --sign-by key {id:?}"))
}

fn read(p: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading the {what} {}", p.display()))
}

/// Runs `ferry standalone-sign`.
pub async fn run_sign(args: StandaloneSignArgs) -> anyhow::Result<ExitCode> {
    let manifest = read(&args.manifest, "manifest")?;
    DockerReference::parse(&args.reference)
        .with_context(|| format!("the docker reference {:?}", args.reference))?;
    let passphrase = match &args.passphrase_file {
        Some(p) => Some(
            String::from_utf8(read(p, "passphrase file")?)?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        ),
        None => None,
    };
    let key = match &args.sign_key {
        Some(file) => SigningKey::from_bytes(
            &read(file, "key file")?,
            Some(&args.fingerprint),
            passphrase.as_deref(),
        )?,
        None => gnupg_key(&args.fingerprint, passphrase.as_deref())?,
    };
    let payload = ferry::signatures::simple_payload(&Digest::sha256_of(&manifest), &args.reference);
    let sig = ferry::signatures::sign_simple(&payload, &key)?;
    std::fs::write(&args.output, sig)
        .with_context(|| format!("writing {}", args.output.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a signature file as the policy reads a slot: refused over the size cap without being
/// read, then sniffed; returns the simple-signing message inside.
fn read_signature(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading the signature {}", path.display()))?
        .len();
    if size > MAX_SIGNATURE_SIZE as u64 {
        return Err(rejected(format!(
            "{}: {}",
            path.display(),
            SniffError::TooLarge(usize::try_from(size).unwrap_or(usize::MAX))
        )));
    }
    let bytes = read(path, "signature")?;
    match sniff(&bytes) {
        Ok((Format::SimpleSigning, message)) => Ok(message.to_vec()),
        Ok((Format::SigstoreJson, _)) => Err(rejected(format!(
            "{} is a sigstore signature; standalone-verify checks simple-signing (GPG) signatures",
            path.display()
        ))),
        Err(e) => Err(rejected(format!("{}: {e}", path.display()))),
    }
}

/// Runs `ferry standalone-verify`.
pub async fn run_verify(args: StandaloneVerifyArgs) -> anyhow::Result<ExitCode> {
    let manifest = read(&args.manifest, "manifest")?;
    let expected = DockerReference::parse(&args.reference)
        .with_context(|| format!("the docker reference {:?}", args.reference))?;

    let keyring = Keyring::from_bytes(&read(&args.public_key_file, "public key file")?)
        .with_context(|| format!("the public key file {}", args.public_key_file.display()))?;
    let sig = read_signature(&args.signature)?;
    let v = match ferry::signatures::verify_simple(&sig, &keyring) {
        Ok(v) => v,
        Err(SignatureError::UnknownSigner { issuers }) => {
            return Err(rejected(format!(
                "Error verifying signature: signed by key {}, which is not in {} (it holds {})",
                issuers.join(", "),
                args.public_key_file.display(),
                keys_text(&keyring)
            )));
        }
        Err(e) => return Err(rejected(format!("Error verifying signature: {e}"))),
    };
    let wanted: Vec<String> = args
        .fingerprints
        .split(',')
        .map(|f| f.trim().to_uppercase())
        .collect();
    if !(wanted == ["ANY"]
        || wanted.contains(&v.primary_fingerprint)
        || wanted.contains(&v.signing_key_fingerprint))
    {
        return Err(rejected(format!(
            "Error verifying signature: signed by key {}{}, not by the expected {}",
            v.primary_fingerprint,
            v.user_id
                .as_ref()
                .map(|u| format!(" ({u:?})"))
                .unwrap_or_default(),
            args.fingerprints
        )));
    }
    // As containers/image: the signed digest, with its own algorithm, over the manifest bytes
    // (and a signed schema 1 manifest refused, as ferry cannot compute its digest).
    let signed = Digest::parse(&v.payload.manifest_digest)
        .map_err(|e| e.to_string())
        .and_then(|d| ferry::manifest::matches_digest(&manifest, &d).map(|ok| (d, ok)));
    let digest = match signed {
        Ok((d, true)) => d,
        Ok((_, false)) => {
            return Err(rejected(format!(
                "Error verifying signature: Signature for docker digest {:?} does not match (the manifest {} is {})",
                v.payload.manifest_digest,
                args.manifest.display(),
                Digest::sha256_of(&manifest)
            )));
        }
        Err(e) => return Err(rejected(format!("Error verifying signature: {e}"))),
    };
    let signed = DockerReference::parse(&v.payload.docker_reference)
        .with_context(|| format!("the signed reference {:?}", v.payload.docker_reference))?;
    if expected != signed {
        return Err(rejected(format!(
            "Error verifying signature: Docker reference {:?} does not match {:?}",
            v.payload.docker_reference, args.reference
        )));
    }
    outln!(
        "Signature verified using fingerprint {}, digest {}",
        v.primary_fingerprint,
        digest
    );
    Ok(ExitCode::SUCCESS)
}

/// A passphrase from a file, without its trailing newline (as skopeo reads it).
pub fn read_passphrase(p: &std::path::Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(p)
        .with_context(|| format!("reading the passphrase file {}", p.display()))?
        .trim_end_matches(['\n', '\r'])
        .to_string())
}

/// A cosign private key from `path`, decrypted with `passphrase` (asked for on the terminal
/// when none is given and stdin is one).
pub fn sigstore_private_key(
    path: &std::path::Path,
    passphrase: Option<&str>,
) -> anyhow::Result<ferry::signatures::PrivateKey> {
    let pem = std::fs::read(path)
        .with_context(|| format!("reading the sigstore private key {}", path.display()))?;
    let passphrase = match passphrase {
        Some(p) => p.to_string(),
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            rpassword::prompt_password(format!("Passphrase for {}: ", path.display()))
                .context("reading the passphrase")?
        }
        None => String::new(),
    };
    ferry::signatures::PrivateKey::decrypt(&pem, passphrase.as_bytes())
        .with_context(|| format!("loading the sigstore private key {}", path.display()))
}

/// Flags of `ferry generate-sigstore-key`.
#[derive(Debug, clap::Args)]
pub struct GenerateSigstoreKeyArgs {
    /// Write the key pair to PREFIX.private (the encrypted private key) and PREFIX.pub.
    #[arg(long, value_name = "PREFIX")]
    output_prefix: PathBuf,
    /// A file holding the passphrase to encrypt the private key with (asked for on the
    /// terminal when not given).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

/// Runs `ferry generate-sigstore-key`: an ECDSA P-256 key pair in cosign's formats, as skopeo
/// writes it. Existing files are never overwritten.
pub async fn run_generate_sigstore_key(args: GenerateSigstoreKeyArgs) -> anyhow::Result<ExitCode> {
    let private = PathBuf::from(format!("{}.private", args.output_prefix.display()));
    let public = PathBuf::from(format!("{}.pub", args.output_prefix.display()));
    for p in [&private, &public] {
        if p.exists() {
            return Err(super::errors::UsageError(format!(
                "{} exists; choose another --output-prefix (ferry does not overwrite keys)",
                p.display()
            ))
            .into());
        }
    }
    let passphrase = match &args.passphrase_file {
        Some(p) => read_passphrase(p)?,
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            let a = rpassword::prompt_password("Passphrase for the new private key: ")?;
            let b = rpassword::prompt_password("Again: ")?;
            if a != b {
                anyhow::bail!("the passphrases differ");
            }
            a
        }
        None => {
            return Err(super::errors::UsageError(
                "give the passphrase to encrypt the private key with --passphrase-file FILE (stdin is not a terminal to ask on)".into(),
            )
            .into());
        }
    };
    let key = ferry::signatures::PrivateKey::generate()?;
    let encrypted = key.encrypt(passphrase.as_bytes())?;
    write_new(&private, &encrypted, 0o600)?;
    write_new(&public, key.public_key_pem().as_bytes(), 0o644)?;
    outln!(
        "Key written to {} and {}",
        private.display(),
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` (failing if it exists) with `bytes` and mode `mode`.
fn write_new(path: &std::path::Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
