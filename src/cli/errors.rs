//! How a failed command ends: the error and its causes once each, a hint in the words of this
//! command's flags, and the exit status that says what kind of failure it was.

use ferry::CopyError;
use ferry::ErrorKind;
use ferry::PolicyError;
use ferry::Rejected;
use ferry::TransportError;
use ferry::store::ForensicsError;
use ferry::{Hint, Hinted, Side};

use super::{EXIT_FAILURE, EXIT_REJECTED, EXIT_USAGE};

/// A command line that parsed but asks for something that cannot be done.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The image was refused (by the policy or the signatures), found by a command that is not a
/// copy (`policy check`, `signatures verify`); its text was already printed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RejectedError(pub String);

/// How this command spells its per-side flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagStyle {
    /// copy and sync: `--src-…` and `--dest-…`.
    PerSide,
    /// One image: `--tls-verify`, `--creds`.
    Single,
}

/// The error and its causes, each once: library errors already name their cause in their own
/// message, so a cause whose text is already there is not repeated.
pub fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// The kind of a library error in the chain (the outermost that has one).
fn kind_of(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    if let Some(e) = cause.downcast_ref::<CopyError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<TransportError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<Rejected>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<ForensicsError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<PolicyError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<ferry::UnpackError>() {
        return Some(e.kind());
    }
    cause
        .downcast_ref::<RejectedError>()
        .map(|_| ErrorKind::Rejected)
}

/// The exit status for an error: 2 for bad usage; otherwise by the error's kind, 1 when the
/// policy or the signatures rejected the image, 3 for anything else (unreachable, IO, corrupt
/// data, a configuration that cannot be used).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.downcast_ref::<UsageError>().is_some()) {
        return EXIT_USAGE;
    }
    match e.chain().find_map(kind_of) {
        Some(ErrorKind::Rejected) => EXIT_REJECTED,
        _ => EXIT_FAILURE,
    }
}

fn find_hint(e: &anyhow::Error) -> Option<(Hint, Option<Side>)> {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<CopyError>() {
            return c.hint().map(|h| (h, c.side()));
        }
        if let Some(r) = cause.downcast_ref::<Rejected>() {
            return r.hint().map(|h| (h, None));
        }
        if let Some(t) = cause.downcast_ref::<TransportError>() {
            return t.hint().map(|h| (h, None));
        }
        if let Some(ForensicsError::Store(t)) = cause.downcast_ref::<ForensicsError>() {
            return t.hint().map(|h| (h, None));
        }
        if let Some(u) = cause.downcast_ref::<ferry::UnpackError>() {
            return u.hint().map(|h| (h, Some(Side::Source)));
        }
    }
    None
}

/// The hint of an error in this command's flags, if it has one.
pub fn hint_text(e: &anyhow::Error, style: FlagStyle) -> Option<String> {
    let (hint, side) = find_hint(e)?;
    Some(render(&hint, style, side))
}

/// A hint in words and flags.
pub fn render(hint: &Hint, style: FlagStyle, side: Option<Side>) -> String {
    let flag = |what: &str, value: &str| match (style, side) {
        (FlagStyle::Single, _) => format!("--{what}{value}"),
        (FlagStyle::PerSide, Some(Side::Source)) => format!("--src-{what}{value}"),
        (FlagStyle::PerSide, Some(Side::Destination)) => format!("--dest-{what}{value}"),
        (FlagStyle::PerSide, None) => {
            format!("--src-{what}{value} or --dest-{what}{value} (for the side that failed)")
        }
    };
    match hint {
        Hint::SignatureModes => "Fix the signature server, or use --signatures sufficient-subset to copy the image if the readable signatures satisfy the policy (the unreadable ones are then reported as warnings), or --signatures remove-signatures to copy it without signatures".into(),
        Hint::RemoveSignatures => "Use --signatures remove-signatures to copy the image without them".into(),
        Hint::TlsVerification => format!(
            "If this registry serves plain http, or a certificate that cannot be verified, and you trust the network, add {}",
            flag("tls-verify", "=false")
        ),
        Hint::TrustCa { registry } => format!(
            "Trust the registry's CA for {registry}: put its certificate (PEM) in {}/{registry}/ca.crt (or ~/.config/containers/certs.d/{registry}/ca.crt), or in a directory given with {}; or skip verification with {}",
            ferry::SYSTEM_CERTS_D,
            flag("cert-dir", " DIR"),
            flag("tls-verify", "=false")
        ),
        Hint::ClientCertificate { registry } => format!(
            "Give {registry} a client certificate it trusts: put it and its key as NAME.cert and NAME.key in {}/{registry}/ (or ~/.config/containers/certs.d/{registry}/), or in a directory given with {}",
            ferry::SYSTEM_CERTS_D,
            flag("cert-dir", " DIR"),
        ),
        Hint::Credentials { registry } => format!(
            "Log in to {registry} (an auth.json entry, or --authfile FILE), or pass {}",
            flag("creds", " USER:PASSWORD")
        ),
        Hint::Platform => "Use --platform OS/ARCH[/VARIANT] to choose one, or --all".into(),
        Hint::SignIdentity => "Give the identity to sign with --sign-identity".into(),
        Hint::FormatConversion => "Copy the image in its own format (without --format) to keep its signatures; or convert it without them (--signatures remove-signatures), and sign the converted image yourself if it must be signed (--sign-by or --sign-by-sigstore-private-key)".into(),
        Hint::Recompression => "Copy the layers as they are (without --dest-compress-format, --dest-compress or --dest-decompress) to keep the image's signatures; or recompress without them (--signatures remove-signatures), and sign the new manifest if it must be signed (--sign-by or --sign-by-sigstore-private-key)".into(),
        Hint::Referrers => "Use --referrers signatures to copy the image and its signatures without the other attached artifacts, or copy to a destination that keeps them (docker://, oci:, store:)".into(),
        _ => String::new(),
    }
}
