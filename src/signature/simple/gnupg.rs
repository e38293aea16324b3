//! Signing with a key of the user's GnuPG home, as skopeo's `--sign-by ID` does through GPGME,
//! but with no gpg binary and no GPGME: the certificate is read from the home's public keyring
//! (`pubring.kbx`, or a legacy `pubring.gpg`), chosen by the ID as gpg chooses a key, and the
//! secret key stays in gpg-agent, which signs the digest sequoia hands it over the agent's
//! socket (sequoia-gpg-agent).
//!
//! The one part of `signature` that does IO: it reads the home's keyring and talks to the
//! agent, because that is where such a key lives. What it reads is parsed here (the keybox
//! format, gpg's user-ID forms); nothing is written to the home, and no agent is started: with
//! none running, the error says how to start one.

use std::path::{Path, PathBuf};

use openpgp::Cert;
use openpgp::cert::prelude::*;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use sequoia_openpgp as openpgp;

use super::SignatureError;

/// Where the user's GnuPG home is: `$GNUPGHOME`, else `~/.gnupg` (`home` is `$HOME`).
pub fn default_home(gnupghome: Option<PathBuf>, home: Option<&Path>) -> Option<PathBuf> {
    gnupghome
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| home.map(|h| h.join(".gnupg")))
}

/// How gpg reads a key's name (`gpg --list-keys ID`, GnuPG's `classify_user_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// A fingerprint (40 or 64 hex digits, `0x` allowed): the primary key's or a subkey's.
    Fingerprint(String),
    /// A key ID (16 hex digits, or 8 for the short form): the primary key's or a subkey's.
    KeyId(String),
    /// `<addr>`: the e-mail address of a user ID, exactly (case-insensitive).
    Email(String),
    /// `=text`: a whole user ID, exactly.
    Exact(String),
    /// `@text`: part of a user ID's e-mail address.
    EmailPart(String),
    /// Anything else (or `*text`): part of a user ID, case-insensitive.
    Substring(String),
}

impl KeySpec {
    /// Reads `id` as gpg does.
    pub fn parse(id: &str) -> KeySpec {
        let id = id.trim_start();
        let hex = id
            .strip_prefix("0x")
            .or_else(|| id.strip_prefix("0X"))
            .unwrap_or(id)
            .replace(' ', "");
        // gpg accepts a trailing '!' (this exact subkey); the signing key is chosen the same way.
        let hex = hex.strip_suffix('!').unwrap_or(&hex).to_uppercase();
        if hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            match hex.len() {
                40 | 64 => return KeySpec::Fingerprint(hex),
                16 | 8 => return KeySpec::KeyId(hex),
                _ => {}
            }
        }
        if let Some(rest) = id.strip_prefix('<') {
            return KeySpec::Email(rest.trim_end_matches('>').to_lowercase());
        }
        if let Some(rest) = id.strip_prefix('=') {
            return KeySpec::Exact(rest.to_string());
        }
        if let Some(rest) = id.strip_prefix('@') {
            return KeySpec::EmailPart(rest.to_lowercase());
        }
        KeySpec::Substring(id.strip_prefix('*').unwrap_or(id).to_lowercase())
    }

    /// Whether `cert` is the key this names.
    pub fn matches(&self, cert: &Cert) -> bool {
        let keys = || cert.keys().map(|k| k.key().fingerprint().to_hex());
        let uids = || {
            cert.userids()
                .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        };
        let email = |uid: &str| -> String {
            match (uid.rfind('<'), uid.rfind('>')) {
                (Some(a), Some(b)) if a < b => uid.get(a + 1..b).unwrap_or_default().to_string(),
                _ => uid.to_string(),
            }
            .to_lowercase()
        };
        match self {
            KeySpec::Fingerprint(f) => keys().any(|k| k == *f),
            KeySpec::KeyId(id) => keys().any(|k| k.ends_with(id.as_str())),
            KeySpec::Email(e) => uids().any(|u| email(&u) == *e),
            KeySpec::Exact(x) => uids().any(|u| u == *x),
            KeySpec::EmailPart(p) => uids().any(|u| email(&u).contains(p.as_str())),
            KeySpec::Substring(s) => uids().any(|u| u.to_lowercase().contains(s.as_str())),
        }
    }
}

/// The certificates of a public keyring's bytes: a keybox (`pubring.kbx`, GnuPG 2.1 and later)
/// or OpenPGP packets (`pubring.gpg`). Certificates that cannot be parsed are skipped, as gpg
/// skips them.
pub fn parse_keyring(bytes: &[u8]) -> Result<Vec<Cert>, SignatureError> {
    if is_keybox(bytes) {
        let mut certs = Vec::new();
        for block in keybox_openpgp_blocks(bytes)? {
            if let Ok(c) = Cert::from_bytes(block) {
                certs.push(c);
            }
        }
        return Ok(certs);
    }
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let parser = CertParser::from_bytes(bytes).map_err(|e| SignatureError::Keys(e.to_string()))?;
    Ok(parser.flatten().collect())
}

/// A keybox starts with a header blob: 4 bytes of length, type 1, version 1, and "KBXf" at
/// offset 8.
fn is_keybox(bytes: &[u8]) -> bool {
    bytes.get(4) == Some(&1) && bytes.get(8..12) == Some(b"KBXf")
}

fn be32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at + 4)?;
    let n = u32::from_be_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]);
    usize::try_from(n).ok()
}

/// The OpenPGP keyblocks of a keybox (GnuPG's `kbx/keybox-blob.c`): blobs of a 4-byte length
/// (the whole blob's), a type byte (2: OpenPGP) and a version; an OpenPGP blob gives its
/// keyblock's offset and length (from the blob's start) at bytes 8 and 12.
fn keybox_openpgp_blocks(bytes: &[u8]) -> Result<Vec<&[u8]>, SignatureError> {
    let bad = |at: usize, why: &str| {
        SignatureError::Keys(format!("the keybox is damaged at byte {at}: {why}"))
    };
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = be32(bytes, at).ok_or_else(|| bad(at, "a blob's length is cut off"))?;
        if len < 5 {
            return Err(bad(at, "a blob is shorter than its header"));
        }
        let blob = bytes
            .get(at..at.saturating_add(len))
            .ok_or_else(|| bad(at, "a blob runs past the end of the file"))?;
        if blob.get(4) == Some(&2) {
            let off =
                be32(blob, 8).ok_or_else(|| bad(at, "an OpenPGP blob's header is cut off"))?;
            let n = be32(blob, 12).ok_or_else(|| bad(at, "an OpenPGP blob's header is cut off"))?;
            let block = blob
                .get(off..off.saturating_add(n))
                .ok_or_else(|| bad(at, "a keyblock lies outside its blob"))?;
            out.push(block);
        }
        at += len;
    }
    Ok(out)
}

/// The public keyring of a GnuPG home, as gpg 2.2 chooses it: `pubring.kbx` if present, else
/// `pubring.gpg`.
pub fn read_keyring(home: &Path) -> Result<Vec<Cert>, SignatureError> {
    for name in ["pubring.kbx", "pubring.gpg"] {
        let path = home.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                return parse_keyring(&bytes)
                    .map_err(|e| SignatureError::Keys(format!("{}: {e}", path.display())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(SignatureError::Keys(format!(
                    "reading {}: {e}",
                    path.display()
                )));
            }
        }
    }
    Err(SignatureError::Keys(format!(
        "the GnuPG home {} has no public keyring (pubring.kbx or pubring.gpg): import the key there (gpg --import), or sign with a secret key file",
        home.display()
    )))
}

/// z-base-32 (GnuPG's `zb32_encode`), for the name of a home's socket directory.
fn zbase32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let i = ((buffer >> bits) & 31) as usize;
            out.push(char::from(*ALPHABET.get(i).unwrap_or(&b'y')));
        }
    }
    if bits > 0 {
        let i = ((buffer << (5 - bits)) & 31) as usize;
        out.push(char::from(*ALPHABET.get(i).unwrap_or(&b'y')));
    }
    out
}

/// Where gpg-agent's socket for `home` may be, in the order GnuPG 2.2 (`homedir.c`) puts it:
/// under `/run/user/UID/gnupg` (in `d.HASH` of the home's path unless it is the default
/// `~/.gnupg`) when that directory exists, else in the home itself. `default_home` is
/// `~/.gnupg`.
pub fn agent_socket_candidates(home: &Path, default_home: Option<&Path>, uid: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in ["/run/gnupg", "/run", "/var/run/gnupg", "/var/run"] {
        let user = Path::new(base).join("user").join(uid.to_string());
        let mut dir = user.join("gnupg");
        if Some(home) != default_home {
            let hash = sha1(home.as_os_str().as_encoded_bytes());
            dir = dir.join(format!("d.{}", zbase32(hash.get(..15).unwrap_or_default())));
        }
        out.push(dir.join("S.gpg-agent"));
    }
    out.push(home.join("S.gpg-agent"));
    out
}

/// SHA-1, for the one place GnuPG uses it that ferry must follow: the name of a home's socket
/// directory (a name, not a security use). sequoia's hash (with collision detection, which
/// changes nothing for a path).
fn sha1(data: &[u8]) -> Vec<u8> {
    let Ok(builder) = openpgp::types::HashAlgorithm::SHA1.context() else {
        return Vec::new();
    };
    let mut ctx = builder.for_digest();
    ctx.update(data);
    ctx.into_digest().unwrap_or_default()
}

/// Whether a candidate socket's place can exist: the home itself, or a `/run/.../user/UID`
/// directory that exists (GnuPG uses the first such base, else the home).
fn run_dir_exists(candidate: &Path, home: &Path) -> bool {
    if candidate.parent() == Some(home) {
        return true;
    }
    // …/user/UID/gnupg[/d.HASH]/S.gpg-agent: the user directory is above "gnupg".
    candidate
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "gnupg"))
        .and_then(Path::parent)
        .is_some_and(Path::is_dir)
}

/// The socket of the gpg-agent serving `home`, following an Assuan redirection file
/// (`%Assuan%\nsocket=PATH`) where the home holds one instead of the socket.
fn find_agent(candidates: &[PathBuf], home: &Path) -> Result<PathBuf, SignatureError> {
    use std::os::unix::fs::FileTypeExt;
    for c in candidates {
        let Ok(meta) = std::fs::metadata(c) else {
            continue;
        };
        if meta.file_type().is_socket() {
            return Ok(c.clone());
        }
        if meta.is_file()
            && let Ok(text) = std::fs::read_to_string(c)
            && let Some(rest) = text.strip_prefix("%Assuan%\n")
            && let Some(target) = rest.lines().find_map(|l| l.strip_prefix("socket="))
        {
            return Ok(PathBuf::from(target));
        }
    }
    Err(SignatureError::NoAgent {
        home: home.to_path_buf(),
        sockets: candidates.to_vec(),
    })
}

/// A certificate whose signing key gpg-agent holds.
#[derive(Debug, Clone)]
pub struct AgentKey {
    /// The agent's socket.
    pub socket: PathBuf,
    /// The fingerprint of the key that signs (the primary or a signing subkey).
    pub signer: openpgp::Fingerprint,
}

/// Runs `f` on a thread of its own with a runtime of its own: the agent's client is async,
/// and the callers (signing, loading keys) are synchronous, often inside a tokio runtime where
/// blocking on another runtime is not allowed.
fn on_own_runtime<T: Send>(
    f: impl std::future::Future<Output = Result<T, SignatureError>> + Send,
) -> Result<T, SignatureError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(|e| SignatureError::Signing(format!("cannot start a runtime: {e}")))?;
            rt.block_on(f)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(SignatureError::Signing(
                "the gpg-agent client stopped unexpectedly".into(),
            ))
        })
    })
}

/// The certificate `id` names among the home's keys whose secret key the agent holds, and the
/// key that signs for it (gpg's choice: the newest valid signing-capable key). An ID that names
/// no key, names keys whose secret gpg-agent does not hold, or names several, is an error that
/// says which.
pub fn find_signing_cert(
    home: &Path,
    default_home: Option<&Path>,
    uid: u32,
    id: &str,
) -> Result<(Cert, AgentKey), SignatureError> {
    let certs = read_keyring(home)?;
    let spec = KeySpec::parse(id);
    let named: Vec<Cert> = certs.into_iter().filter(|c| spec.matches(c)).collect();
    if named.is_empty() {
        return Err(SignatureError::KeyNotFound {
            id: id.to_string(),
            home: home.to_path_buf(),
        });
    }
    let candidates: Vec<PathBuf> = agent_socket_candidates(home, default_home, uid)
        .into_iter()
        .filter(|c| run_dir_exists(c, home))
        .collect();
    let socket = find_agent(&candidates, home)?;
    let p = StandardPolicy::new();
    let signing_keys: Vec<(Cert, Vec<openpgp::packet::Key<_, _>>)> = named
        .iter()
        .map(|c| {
            let mut keys: Vec<_> = c
                .keys()
                .with_policy(&p, None)
                .supported()
                .alive()
                .revoked(false)
                .for_signing()
                .map(|k| k.key().clone().role_into_unspecified())
                .collect();
            keys.sort_by_key(|k| std::cmp::Reverse(k.creation_time()));
            (c.clone(), keys)
        })
        .collect();
    let socket_for_check = socket.clone();
    let held = on_own_runtime(async move {
        let mut agent = sequoia_gpg_agent::Agent::connect_to_agent(&socket_for_check)
            .await
            .map_err(|e| {
                SignatureError::Signing(format!(
                    "cannot reach gpg-agent at {}: {e}",
                    socket_for_check.display()
                ))
            })?;
        let mut held = Vec::new();
        for (cert, keys) in &signing_keys {
            for k in keys {
                if agent.has_key(k).await.unwrap_or(false) {
                    held.push((cert.clone(), k.fingerprint()));
                    break;
                }
            }
        }
        Ok(held)
    })?;
    let name = |c: &Cert| match c.userids().next() {
        Some(u) => format!(
            "{} ({:?})",
            c.fingerprint().to_hex(),
            String::from_utf8_lossy(u.userid().value())
        ),
        None => c.fingerprint().to_hex(),
    };
    match held.as_slice() {
        [] => Err(SignatureError::NoSecretKey {
            id: id.to_string(),
            home: home.to_path_buf(),
            keys: named.iter().map(name).collect(),
        }),
        [(cert, signer)] => Ok((
            cert.clone(),
            AgentKey {
                socket,
                signer: signer.clone(),
            },
        )),
        several => Err(SignatureError::AmbiguousKey {
            id: id.to_string(),
            keys: several.iter().map(|(c, _)| name(c)).collect(),
        }),
    }
}

/// The signer for `key` of `cert`: gpg-agent makes the signature (with the passphrase given
/// through the agent's loopback pinentry, when one is given).
pub fn agent_signer(
    cert: &Cert,
    key: &AgentKey,
    passphrase: Option<&str>,
) -> Result<sequoia_gpg_agent::KeyPair, SignatureError> {
    let public = cert
        .keys()
        .find(|k| k.key().fingerprint() == key.signer)
        .map(|k| k.key().clone().role_into_unspecified())
        .ok_or_else(|| {
            SignatureError::Signing(format!(
                "the key {} is no longer in the certificate",
                key.signer
            ))
        })?;
    let mut pair = sequoia_gpg_agent::KeyPair::new_for_socket(&key.socket, &public)
        .map_err(|e| SignatureError::Signing(e.to_string()))?;
    if let Some(p) = passphrase {
        pair = pair.with_password(p.into());
    }
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_as_gpg_reads_them() {
        assert_eq!(
            KeySpec::parse("0xA1B2C3D4E5F60718"),
            KeySpec::KeyId("A1B2C3D4E5F60718".into())
        );
        assert_eq!(
            KeySpec::parse("a1b2c3d4"),
            KeySpec::KeyId("A1B2C3D4".into())
        );
        let fpr = "0123 4567 89AB CDEF 0123  4567 89ab cdef 0123 4567";
        assert_eq!(
            KeySpec::parse(fpr),
            KeySpec::Fingerprint("0123456789ABCDEF0123456789ABCDEF01234567".into())
        );
        assert_eq!(
            KeySpec::parse("<A@Example.com>"),
            KeySpec::Email("a@example.com".into())
        );
        assert_eq!(
            KeySpec::parse("=Alice <a@x>"),
            KeySpec::Exact("Alice <a@x>".into())
        );
        assert_eq!(
            KeySpec::parse("@example"),
            KeySpec::EmailPart("example".into())
        );
        assert_eq!(
            KeySpec::parse("alice@test.redhat.com"),
            KeySpec::Substring("alice@test.redhat.com".into())
        );
        // "deadbeef" is hex, so a short key ID, as gpg takes it.
        assert_eq!(
            KeySpec::parse("DeadBeef"),
            KeySpec::KeyId("DEADBEEF".into())
        );
    }

    #[test]
    fn certificates_are_matched_by_any_of_gpgs_forms() {
        let (cert, _) = CertBuilder::new()
            .add_userid("Test key - alice <alice@test.redhat.com>")
            .add_signing_subkey()
            .generate()
            .unwrap();
        let fpr = cert.fingerprint().to_hex();
        let sub = cert
            .keys()
            .subkeys()
            .next()
            .unwrap()
            .key()
            .fingerprint()
            .to_hex();
        for id in [
            fpr.as_str(),
            &fpr[24..],
            &fpr[32..],
            sub.as_str(),
            &sub[24..],
            "alice@test.redhat.com",
            "ALICE",
            "<alice@test.redhat.com>",
            "=Test key - alice <alice@test.redhat.com>",
            "@redhat",
        ] {
            assert!(KeySpec::parse(id).matches(&cert), "{id} should match");
        }
        for id in [
            "bob@test.redhat.com",
            "<alice@test>",
            "=Test key - alice",
            "0000000000000000",
        ] {
            assert!(!KeySpec::parse(id).matches(&cert), "{id} should not match");
        }
    }

    #[test]
    fn keyboxes_and_keyrings_give_their_certificates() {
        use openpgp::serialize::Serialize;
        let (a, _) = CertBuilder::new().add_userid("a").generate().unwrap();
        let (b, _) = CertBuilder::new().add_userid("b").generate().unwrap();
        let mut ring = Vec::new();
        a.serialize(&mut ring).unwrap();
        b.serialize(&mut ring).unwrap();
        assert_eq!(parse_keyring(&ring).unwrap().len(), 2);
        // A keybox: the header blob, then one OpenPGP blob per certificate (keyblock after a
        // header of 20 bytes, the rest of gpg's fields left out: they are not read).
        let mut kbx = Vec::new();
        let mut header = vec![0, 0, 0, 32, 1, 1, 0, 0];
        header.extend_from_slice(b"KBXf");
        header.resize(32, 0);
        kbx.extend_from_slice(&header);
        for c in [&a, &b] {
            let mut block = Vec::new();
            c.serialize(&mut block).unwrap();
            let len = 20 + block.len();
            let mut blob = (len as u32).to_be_bytes().to_vec();
            blob.extend_from_slice(&[2, 1, 0, 0]);
            blob.extend_from_slice(&20u32.to_be_bytes());
            blob.extend_from_slice(&(block.len() as u32).to_be_bytes());
            blob.extend_from_slice(&[0, 0, 0, 0]);
            blob.extend_from_slice(&block);
            kbx.extend_from_slice(&blob);
        }
        let certs = parse_keyring(&kbx).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[1].fingerprint(), b.fingerprint());
        // A blob that runs past the end is an error naming where.
        kbx.truncate(kbx.len() - 3);
        let e = parse_keyring(&kbx).unwrap_err();
        assert!(e.to_string().contains("damaged at byte"), "{e}");
    }

    #[test]
    fn the_socket_directory_is_named_as_gnupg_names_it() {
        // SHA-1 test vectors (FIPS 180-1).
        assert_eq!(
            hex::encode(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(zbase32(&[0xF0, 0xBF, 0xC7]), "6n9hq");
        assert_eq!(zbase32(&[0xD4, 0x7A, 0x04]), "4t7ye");
        let c = agent_socket_candidates(Path::new("/tmp/g"), Some(Path::new("/root/.gnupg")), 0);
        assert_eq!(c.last().unwrap(), Path::new("/tmp/g/S.gpg-agent"));
        let first = c.first().unwrap().to_string_lossy().into_owned();
        assert!(first.starts_with("/run/gnupg/user/0/gnupg/d."), "{first}");
        assert_eq!(
            first.len(),
            "/run/gnupg/user/0/gnupg/d.".len() + 24 + "/S.gpg-agent".len()
        );
        let d = agent_socket_candidates(
            Path::new("/root/.gnupg"),
            Some(Path::new("/root/.gnupg")),
            0,
        );
        assert_eq!(
            d.get(1).unwrap(),
            Path::new("/run/user/0/gnupg/S.gpg-agent")
        );
    }
}
