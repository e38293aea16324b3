//! The index of a tar file: one pass over its headers, seeking past every entry's content, that
//! records each entry's name, type, size and data offset. Reading a blob from an archive is then
//! a positioned read of one byte range, as cheap as reading it from a directory; nothing is
//! extracted.
//!
//! The index is also where hostile archives are refused: absolute names, `..` components,
//! duplicate names and sizes that run past the end of the file are errors naming the archive and
//! the entry, before anything is read.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::ArchiveError;
use super::header::{self, BLOCK};

/// PAX and GNU long-name records hold names, not data; larger ones are refused.
const MAX_EXTENDED_HEADER: u64 = 1024 * 1024;

/// How many links [`TarIndex::resolve`] follows before giving up (containers/image follows one;
/// a few more cost nothing and a loop still ends).
const MAX_LINK_HOPS: usize = 8;

/// What kind of entry a header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file: the only kind with content.
    File,
    /// A directory.
    Directory,
    /// A symbolic link; its target is relative to the link's directory.
    Symlink,
    /// A hard link; its target is another entry's name.
    Hardlink,
    /// Anything else (devices, FIFOs, GNU sparse files), with its type flag.
    Other(u8),
}

impl EntryKind {
    fn from_typeflag(t: u8, name: &[u8]) -> EntryKind {
        match t {
            b'0' | b'7' => EntryKind::File,
            // Pre-POSIX archives mark directories with a trailing slash only.
            0 if name.ends_with(b"/") => EntryKind::Directory,
            0 => EntryKind::File,
            b'1' => EntryKind::Hardlink,
            b'2' => EntryKind::Symlink,
            b'5' => EntryKind::Directory,
            other => EntryKind::Other(other),
        }
    }

    /// Whether headers of this kind are followed by no data, whatever their size field says
    /// (as Go's archive/tar reads them).
    fn header_only(self) -> bool {
        match self {
            EntryKind::Hardlink | EntryKind::Symlink | EntryKind::Directory => true,
            EntryKind::Other(t) => matches!(t, b'3' | b'4' | b'6'),
            EntryKind::File => false,
        }
    }

    fn describe(self) -> String {
        match self {
            EntryKind::File => "a regular file".into(),
            EntryKind::Directory => "a directory".into(),
            EntryKind::Symlink => "a symbolic link".into(),
            EntryKind::Hardlink => "a hard link".into(),
            EntryKind::Other(t) => format!("tar type {:?}", char::from(t)),
        }
    }
}

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The normalised name: relative, `/`-separated, no `.` or empty components, no trailing `/`.
    pub name: String,
    /// The kind.
    pub kind: EntryKind,
    /// The content's size (0 for kinds without content).
    pub size: u64,
    /// Where the content starts in the (uncompressed) archive.
    pub data_offset: u64,
    /// Where the entry's first header (including PAX or GNU long-name headers) starts.
    pub header_offset: u64,
    /// A link's target as written (symbolic and hard links).
    pub link_target: Option<String>,
}

/// Every entry of a tar file, by name.
#[derive(Debug, Clone, Default)]
pub struct TarIndex {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    archive_len: u64,
}

/// Normalises an entry name: drops `.` and empty components and a trailing `/`. Absolute names
/// and `..` components are refused (`Err` says which).
pub fn normalize_name(raw: &str) -> Result<String, &'static str> {
    if raw.starts_with('/') {
        return Err("absolute name");
    }
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("a '..' component"),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Joins a symbolic link's target onto the link's directory, lexically. `None` when the result
/// would climb above the archive's root.
fn join_link(link_name: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        link_name.split('/').collect()
    };
    if !target.starts_with('/') {
        parts.pop(); // the link's own name
    }
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Reads exactly `buf.len()` bytes at `offset`.
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    file.read_exact_at(buf, offset)
}

impl TarIndex {
    /// Indexes the tar in `file` (uncompressed), reading headers only; `archive` names it in
    /// errors. Blocking: call it from `spawn_blocking` in async code.
    pub fn build(file: &std::fs::File, archive: &Path) -> Result<TarIndex, ArchiveError> {
        let archive_len = file
            .metadata()
            .map_err(|e| ArchiveError::io(archive, "reading its size", e))?
            .len();
        Builder {
            file,
            archive,
            archive_len,
            index: TarIndex {
                archive_len,
                ..TarIndex::default()
            },
        }
        .run()
    }

    /// Every entry, in archive order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry with exactly this (normalised) name, links not followed.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        let name = normalize_name(name).ok()?;
        self.by_name.get(&name).and_then(|&i| self.entries.get(i))
    }

    /// The uncompressed archive's length in bytes.
    pub fn archive_len(&self) -> u64 {
        self.archive_len
    }

    /// The regular file that `name` designates, following symbolic and hard links inside the
    /// archive (a link can only lead to another entry: nothing is extracted, so nothing outside
    /// the archive is ever reached).
    pub fn resolve(&self, archive: &Path, name: &str) -> Result<&Entry, ArchiveError> {
        let not_found = |entry: &str, detail: String| ArchiveError::NotFound {
            archive: archive.to_path_buf(),
            entry: entry.to_string(),
            detail,
        };
        let mut current = normalize_name(name).map_err(|_| not_found(name, String::new()))?;
        let mut via: Vec<String> = Vec::new();
        for _ in 0..=MAX_LINK_HOPS {
            let detail = if via.is_empty() {
                String::new()
            } else {
                format!(" (reached through the link {})", via.join(" -> "))
            };
            let entry = self
                .by_name
                .get(&current)
                .and_then(|&i| self.entries.get(i))
                .ok_or_else(|| not_found(&current, detail))?;
            let target = match entry.kind {
                EntryKind::File => return Ok(entry),
                EntryKind::Symlink => entry
                    .link_target
                    .as_deref()
                    .and_then(|t| join_link(&entry.name, t)),
                EntryKind::Hardlink => entry
                    .link_target
                    .as_deref()
                    .and_then(|t| normalize_name(t).ok()),
                other => {
                    return Err(ArchiveError::NotRegular {
                        archive: archive.to_path_buf(),
                        entry: entry.name.clone(),
                        what: other.describe(),
                    });
                }
            };
            via.push(entry.name.clone());
            current = target.ok_or_else(|| {
                not_found(
                    &entry.name,
                    format!(
                        " (it is a link to {:?}, outside the archive)",
                        entry.link_target.as_deref().unwrap_or_default()
                    ),
                )
            })?;
        }
        Err(ArchiveError::NotRegular {
            archive: archive.to_path_buf(),
            entry: name.to_string(),
            what: format!("a chain of more than {MAX_LINK_HOPS} links"),
        })
    }
}

struct Builder<'a> {
    file: &'a std::fs::File,
    archive: &'a Path,
    archive_len: u64,
    index: TarIndex,
}

impl Builder<'_> {
    fn bad(&self, offset: u64, problem: impl Into<String>) -> ArchiveError {
        ArchiveError::BadHeader {
            archive: self.archive.to_path_buf(),
            offset,
            problem: problem.into(),
        }
    }

    fn io(&self, offset: u64, e: std::io::Error) -> ArchiveError {
        ArchiveError::io(self.archive, format!("reading at byte {offset}"), e)
    }

    /// The block at `offset`, or `None` at the exact end of the file.
    fn block(&self, offset: u64) -> Result<Option<[u8; 512]>, ArchiveError> {
        if offset >= self.archive_len {
            return Ok(None);
        }
        if self.archive_len - offset < BLOCK {
            return Err(ArchiveError::Truncated {
                archive: self.archive.to_path_buf(),
                offset,
                archive_len: self.archive_len,
            });
        }
        let mut b = [0u8; 512];
        read_at(self.file, &mut b, offset).map_err(|e| self.io(offset, e))?;
        Ok(Some(b))
    }

    /// Checks that `size` bytes from `data_offset` lie inside the file.
    fn check_extent(&self, name: &[u8], data_offset: u64, size: u64) -> Result<(), ArchiveError> {
        if data_offset
            .checked_add(size)
            .is_none_or(|end| end > self.archive_len)
        {
            return Err(ArchiveError::EntryPastEnd {
                archive: self.archive.to_path_buf(),
                entry: String::from_utf8_lossy(name).into_owned(),
                data_offset,
                size,
                archive_len: self.archive_len,
            });
        }
        Ok(())
    }

    /// The content of an extended header (PAX or GNU long name), bounded.
    fn extended(&self, offset: u64, raw: &header::RawHeader) -> Result<Vec<u8>, ArchiveError> {
        if raw.size > MAX_EXTENDED_HEADER {
            return Err(self.bad(
                offset,
                format!(
                    "is an extended header of {} bytes (more than {MAX_EXTENDED_HEADER} is not a name)",
                    raw.size
                ),
            ));
        }
        self.check_extent(&raw.name, offset + BLOCK, raw.size)?;
        // Bounded above by MAX_EXTENDED_HEADER, so the cast cannot truncate.
        let mut data = vec![0u8; raw.size as usize];
        read_at(self.file, &mut data, offset + BLOCK).map_err(|e| self.io(offset + BLOCK, e))?;
        Ok(data)
    }

    fn run(mut self) -> Result<TarIndex, ArchiveError> {
        let mut offset = 0u64;
        // Extended headers apply to the next real entry; `start` is where its headers began.
        let mut start: Option<u64> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax = header::Pax::default();
        // A file that ends without the two zero blocks is accepted, as Go's reader and GNU tar
        // accept it.
        while let Some(block) = self.block(offset)? {
            if header::is_zero(&block) {
                // End of archive: a second zero block should follow (or the file ends).
                match self.block(offset + BLOCK) {
                    Ok(Some(next)) if !header::is_zero(&next) => {
                        return Err(self.bad(
                            offset + BLOCK,
                            "follows a zero block, which ends the archive, but is not zero",
                        ));
                    }
                    _ => break,
                }
            }
            let raw = header::decode(&block).map_err(|p| self.bad(offset, p))?;
            let first = *start.get_or_insert(offset);
            match raw.typeflag {
                b'L' | b'K' => {
                    let data = self.extended(offset, &raw)?;
                    let name = data.split(|&b| b == 0).next().unwrap_or_default().to_vec();
                    if raw.typeflag == b'L' {
                        long_name = Some(name);
                    } else {
                        long_link = Some(name);
                    }
                    offset += BLOCK + header::padded(raw.size);
                    continue;
                }
                b'x' => {
                    let data = self.extended(offset, &raw)?;
                    pax = header::parse_pax(&data).map_err(|p| self.bad(offset, p))?;
                    offset += BLOCK + header::padded(raw.size);
                    continue;
                }
                b'g' => {
                    // Global PAX headers set defaults (times, owners) ferry does not use.
                    self.extended(offset, &raw)?;
                    offset += BLOCK + header::padded(raw.size);
                    start = None;
                    continue;
                }
                _ => {}
            }
            let name_bytes = pax.path.take().or(long_name.take()).unwrap_or(raw.name);
            let link_bytes = pax
                .linkpath
                .take()
                .or(long_link.take())
                .unwrap_or(raw.linkname);
            let kind = EntryKind::from_typeflag(raw.typeflag, &name_bytes);
            let declared = pax.size.take().unwrap_or(raw.size);
            let size = if kind.header_only() { 0 } else { declared };
            let data_offset = offset + BLOCK;
            self.check_extent(&name_bytes, data_offset, size)?;
            self.add(first, name_bytes, link_bytes, kind, size, data_offset)?;
            start = None;
            offset = data_offset + header::padded(size);
        }
        Ok(self.index)
    }

    fn add(
        &mut self,
        header_offset: u64,
        name_bytes: Vec<u8>,
        link_bytes: Vec<u8>,
        kind: EntryKind,
        size: u64,
        data_offset: u64,
    ) -> Result<(), ArchiveError> {
        let raw_name = String::from_utf8_lossy(&name_bytes).into_owned();
        let name = normalize_name(&raw_name).map_err(|problem| ArchiveError::UnsafeName {
            archive: self.archive.to_path_buf(),
            entry: raw_name.clone(),
            problem,
        })?;
        if name.is_empty() {
            if kind == EntryKind::Directory {
                return Ok(()); // "./", the archive's root
            }
            return Err(self.bad(header_offset, "names no file (an empty name)"));
        }
        let link_target = matches!(kind, EntryKind::Symlink | EntryKind::Hardlink)
            .then(|| String::from_utf8_lossy(&link_bytes).into_owned());
        if let Some(&i) = self.index.by_name.get(&name)
            && let Some(first) = self.index.entries.get(i)
        {
            // Some writers list a directory twice; it has no content, so nothing is ambiguous.
            if first.kind == EntryKind::Directory && kind == EntryKind::Directory {
                return Ok(());
            }
            return Err(ArchiveError::DuplicateEntry {
                archive: self.archive.to_path_buf(),
                entry: name,
                first_offset: first.header_offset,
                second_offset: header_offset,
            });
        }
        self.index
            .by_name
            .insert(name.clone(), self.index.entries.len());
        self.index.entries.push(Entry {
            name,
            kind,
            size,
            data_offset,
            header_offset,
            link_target,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tarfile::header::{encode, kind, pax_record};
    use std::io::Write;

    fn file_entry(name: &str, data: &[u8]) -> Vec<u8> {
        let mut out = encode("", name, kind::FILE, data.len() as u64, "").to_vec();
        out.extend_from_slice(data);
        out.resize(
            out.len() + (header::padded(data.len() as u64) as usize - data.len()),
            0,
        );
        out
    }

    fn index_of(bytes: &[u8]) -> Result<TarIndex, ArchiveError> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        TarIndex::build(&f, Path::new("test.tar"))
    }

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(normalize_name("./blobs//sha256/").unwrap(), "blobs/sha256");
        assert_eq!(normalize_name("a/./b").unwrap(), "a/b");
        assert!(normalize_name("/etc/passwd").is_err());
        assert!(normalize_name("a/../../b").is_err());
        assert_eq!(
            join_link("a/layer.tar", "../b.tar").as_deref(),
            Some("b.tar")
        );
        assert_eq!(join_link("layer.tar", "../../x"), None);
    }

    #[test]
    fn indexes_entries_with_offsets() {
        let mut t = file_entry("./manifest.json", b"[]");
        t.extend(file_entry("blobs/sha256/aa", &[7u8; 600]));
        t.extend(encode("", "l", kind::SYMLINK, 0, "blobs/sha256/aa"));
        t.extend([0u8; 1024]);
        let idx = index_of(&t).unwrap();
        let e = idx.get("manifest.json").unwrap();
        assert_eq!((e.size, e.data_offset), (2, 512));
        let b = idx.get("blobs/sha256/aa").unwrap();
        assert_eq!((b.size, b.data_offset), (600, 1536));
        let r = idx.resolve(Path::new("t"), "l").unwrap();
        assert_eq!(r.name, "blobs/sha256/aa");
    }

    #[test]
    fn long_names_gnu_and_pax() {
        let long = format!("{}/file", "d".repeat(150));
        let mut t = Vec::new();
        // GNU: a 'L' entry whose content is the next entry's name.
        let mut l = encode("", "././@LongLink", b'L', long.len() as u64 + 1, "").to_vec();
        let mut name = long.clone().into_bytes();
        name.push(0);
        name.resize(512, 0);
        l.extend(name);
        t.extend(l);
        t.extend(file_entry("truncated-name", b"gnu"));
        // PAX: a path record.
        let long2 = format!("{}/other", "e".repeat(200));
        let rec = pax_record("path", &long2);
        let mut x = encode("", "PaxHeaders/x", kind::PAX, rec.len() as u64, "").to_vec();
        let mut r = rec.clone();
        r.resize(header::padded(rec.len() as u64) as usize, 0);
        x.extend(r);
        t.extend(x);
        t.extend(file_entry("short", b"pax"));
        t.extend([0u8; 1024]);
        let idx = index_of(&t).unwrap();
        assert_eq!(idx.get(&long).unwrap().size, 3);
        assert_eq!(idx.get(&long2).unwrap().size, 3);
        assert_eq!(idx.get(&long).unwrap().header_offset, 0);
        assert_eq!(idx.entries().len(), 2);
    }

    #[test]
    fn hostile_archives_are_refused() {
        let e = index_of(&file_entry("../escape", b"x")).unwrap_err();
        assert!(matches!(e, ArchiveError::UnsafeName { .. }), "{e}");
        let e = index_of(&file_entry("/etc/passwd", b"x")).unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        let mut dup = file_entry("a", b"1");
        dup.extend(file_entry("./a", b"2"));
        let e = index_of(&dup).unwrap_err();
        assert!(matches!(e, ArchiveError::DuplicateEntry { .. }), "{e}");
        let mut past = encode("", "big", kind::FILE, 1 << 20, "").to_vec();
        past.extend([0u8; 512]);
        let e = index_of(&past).unwrap_err();
        assert!(matches!(e, ArchiveError::EntryPastEnd { .. }), "{e}");
        assert!(e.to_string().contains("\"big\""), "{e}");
        let mut cut = file_entry("a", b"1");
        cut.extend([1u8; 100]);
        let e = index_of(&cut).unwrap_err();
        assert!(matches!(e, ArchiveError::Truncated { .. }), "{e}");
    }
}
