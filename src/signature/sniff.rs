//! Format sniffing of a signature blob by its first byte, as containers/image's
//! internal/signature `FromBlob` does, so ferry calls the same blobs unreadable.

/// A signature format ferry knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An OpenPGP signed message ("simple signing").
    SimpleSigning,
    /// A sigstore signature in containers-storage's tagged JSON form.
    SigstoreJson,
}

impl Format {
    /// The name containers/image uses for the format.
    pub fn name(self) -> &'static str {
        match self {
            Format::SimpleSigning => "simple-signing",
            Format::SigstoreJson => "sigstore-json",
        }
    }
}

/// Why a blob is not a signature of a known format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SniffError {
    /// Zero bytes.
    #[error("empty signature blob")]
    Empty,
    /// Over the size cap.
    #[error("signature of {0} bytes is larger than the 4 MiB limit")]
    TooLarge(usize),
    /// A first byte no known format starts with.
    #[error("unrecognized signature format, starting with binary {byte:#x}{hint}", hint = hint(*.byte))]
    Unrecognized {
        /// The first byte.
        byte: u8,
    },
    /// The tagged form without its newline.
    #[error("invalid signature format, missing newline")]
    MissingNewline,
    /// The tagged form's name has a byte outside printable ASCII.
    #[error("invalid signature format, non-ASCII byte {0:#x}")]
    NonAscii(u8),
    /// The tagged form names a format ferry does not know.
    #[error("unrecognized signature format {0:?}")]
    UnknownTagged(String),
}

fn hint(byte: u8) -> &'static str {
    match byte {
        b'<' => " (looks like an HTML page)",
        b'{' | b'[' => " (looks like JSON)",
        0xef => " (a UTF-8 byte order mark: looks like text)",
        _ => "",
    }
}

/// Classifies a blob by its first byte; for the tagged form (`0x00 NAME '\n' DATA`) returns the
/// inner data, otherwise the whole blob.
pub fn sniff(bytes: &[u8]) -> Result<(Format, &[u8]), SniffError> {
    let Some(&first) = bytes.first() else {
        return Err(SniffError::Empty);
    };
    if bytes.len() > super::MAX_SIGNATURE_SIZE {
        return Err(SniffError::TooLarge(bytes.len()));
    }
    match first {
        // Compressed data, one-pass signature (0x3d as containers/image lists it), signature.
        0xa0..=0xa3 | 0xc8 | 0x90..=0x92 | 0x3d | 0xc4 | 0x88..=0x8b | 0xc2 => {
            Ok((Format::SimpleSigning, bytes))
        }
        0x00 => {
            let rest = bytes.get(1..).unwrap_or_default();
            let nl = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(SniffError::MissingNewline)?;
            let (name, tail) = rest
                .split_at_checked(nl)
                .ok_or(SniffError::MissingNewline)?;
            let data = tail.get(1..).unwrap_or_default();
            if let Some(&b) = name.iter().find(|b| !(0x20..=0x7e).contains(*b)) {
                return Err(SniffError::NonAscii(b));
            }
            match name {
                b"simple-signing" => Ok((Format::SimpleSigning, data)),
                b"sigstore-json" => Ok((Format::SigstoreJson, data)),
                other => Err(SniffError::UnknownTagged(
                    String::from_utf8_lossy(other).into_owned(),
                )),
            }
        }
        byte => Err(SniffError::Unrecognized { byte }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_like_containers_image() {
        assert_eq!(sniff(&[0xa3, 1]).unwrap().0, Format::SimpleSigning);
        assert_eq!(sniff(&[0x90, 1]).unwrap().0, Format::SimpleSigning);
        assert_eq!(sniff(b"=quirk").unwrap().0, Format::SimpleSigning);
        assert_eq!(sniff(&[0xc2]).unwrap().0, Format::SimpleSigning);
        assert_eq!(sniff(b""), Err(SniffError::Empty));
        let e = sniff(b"<!DOCTYPE html>").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unrecognized signature format, starting with binary 0x3c (looks like an HTML page)"
        );
        assert_eq!(
            sniff(&[0x93]).unwrap_err().to_string(),
            "unrecognized signature format, starting with binary 0x93"
        );
        assert_eq!(
            sniff(&[5]).unwrap_err().to_string(),
            "unrecognized signature format, starting with binary 0x5"
        );
        let (f, data) = sniff(b"\x00sigstore-json\n{\"a\":1}").unwrap();
        assert_eq!((f, data), (Format::SigstoreJson, &b"{\"a\":1}"[..]));
        assert_eq!(
            sniff(b"\x00simple-signing\n\xa3").unwrap(),
            (Format::SimpleSigning, &b"\xa3"[..])
        );
        assert_eq!(sniff(b"\x00nope"), Err(SniffError::MissingNewline));
        assert_eq!(sniff(b"\x00x\x01y\nz"), Err(SniffError::NonAscii(1)));
        assert!(matches!(
            sniff(b"\x00other\nz"),
            Err(SniffError::UnknownTagged(_))
        ));
        let big = vec![0x90u8; super::super::MAX_SIGNATURE_SIZE + 1];
        assert!(matches!(sniff(&big), Err(SniffError::TooLarge(_))));
    }
}
