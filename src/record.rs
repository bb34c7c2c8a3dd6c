//! Records: what a published cache entry must contain. An entry (an installed gem, an environment) is sealed in
//! its staging directory before it is renamed into place: every file and directory is flushed to disk, then
//! `.kamal-launcher-record` lists each entry with its size and SHA-256 and is flushed last. [`verify`] reads the
//! entry back against its record, so that a crash before the data reached the disk (empty files under their
//! final names), a flipped byte, a truncated, removed or planted file is found and repaired, never taken as done.
//!
//! The format is one line per entry, sorted by path: `d - - PATH`, `f SIZE SHA256 PATH` or `l - TARGET PATH`
//! (a symlink, its target hex-encoded), with `\` and newline in paths escaped as `\\` and `\n`.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The record's file name inside the entry it describes.
pub const RECORD: &str = crate::cache::RECORD;
/// The record's first line; another format is damage, which a rebuild repairs.
const HEADER: &str =
    "# kamal-launcher record 1: d|f|l SIZE SHA256|TARGET PATH, every entry but this file";

/// Why an entry does not match its record (or has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The file or directory that is wrong.
    pub path: PathBuf,
    /// What is wrong with it, for the user.
    pub problem: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// What one entry of a tree is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File { size: u64, sha256: [u8; 32] },
    Link { target: Vec<u8> },
}

/// Flushes every file and directory under `dir` to disk, then writes and flushes its record. Call it on a
/// staging directory, before the rename that publishes it; [`crate::cache::sync_dir`] on the parent after.
pub fn seal(dir: &Path) -> Result<()> {
    let entries = scan(dir, true)?;
    let mut text = format!("{HEADER}\n").into_bytes();
    for (rel, kind) in &entries {
        let fields = match kind {
            Kind::Dir => "d - - ".to_string(),
            Kind::File { size, sha256 } => format!("f {size} {} ", hex::encode(sha256)),
            Kind::Link { target } => format!("l - {} ", hex::encode(target)),
        };
        text.extend_from_slice(fields.as_bytes());
        text.extend_from_slice(&escape(rel));
        text.push(b'\n');
    }
    let record = dir.join(RECORD);
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(&record)
        .map_err(Error::io("writing the record", &record))?;
    file.write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(Error::io("writing the record", &record))?;
    crate::cache::sync_dir(dir)
}

/// Flushes every file and directory under `dir` to disk, for a tree published without a record (a git checkout,
/// whose own tools must not meet a file it did not have).
pub fn flush_tree(dir: &Path) -> Result<()> {
    scan(dir, true).map(drop)?;
    crate::cache::sync_dir(dir)
}

/// Checks `dir` against its record: every recorded entry present with its size and digest, nothing else there.
pub fn verify(dir: &Path) -> std::result::Result<(), Damage> {
    let damage = |path: PathBuf, problem: &str| Damage {
        path,
        problem: problem.to_string(),
    };
    // An entry is always a directory of its own, never reached through a link: a symlink in its place (dangling
    // or not) is damage, said as such rather than as whatever reading through it gives.
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(damage(
                dir.to_path_buf(),
                "a symlink where the installed directory belongs",
            ));
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(damage(
                dir.to_path_buf(),
                "a file where the installed directory belongs",
            ));
        }
        _ => {}
    }
    let record = dir.join(RECORD);
    let text = match fs::read(&record) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(damage(record, "missing (an interrupted or older install)"));
        }
        Err(e) => {
            return Err(damage(
                record,
                &format!("unreadable: {}", crate::error::os_text(&e)),
            ));
        }
    };
    let expected = parse(&text).ok_or_else(|| damage(record.clone(), "damaged"))?;
    let actual = scan(dir, false).map_err(|e| damage(dir.to_path_buf(), &e.to_string()))?;
    let mut actual = actual.into_iter().peekable();
    for (rel, want) in expected {
        // Both lists are sorted by path: whatever the scan has before `rel` is not in the record.
        if let Some((extra, _)) = actual.next_if(|(p, _)| *p < rel) {
            return Err(damage(
                dir.join(std::ffi::OsStr::from_bytes(&extra)),
                "not part of the installed files",
            ));
        }
        let Some((_, kind)) = actual.next_if(|(p, _)| *p == rel) else {
            return Err(damage(
                dir.join(std::ffi::OsStr::from_bytes(&rel)),
                "missing",
            ));
        };
        let path = dir.join(std::ffi::OsStr::from_bytes(&rel));
        match (&want, kind) {
            (Kind::Dir, Kind::Dir) => {}
            (Kind::Link { target }, Kind::Link { target: found }) if *target == found => {}
            (Kind::File { size, sha256 }, Kind::File { size: found, .. }) => {
                if *size != found {
                    return Err(damage(
                        path,
                        &format!("{found} bytes where {size} were installed"),
                    ));
                }
                match digest(&path) {
                    Ok((_, sum)) if sum == *sha256 => {}
                    Ok(_) => {
                        return Err(damage(path, "its content changed since it was installed"));
                    }
                    Err(e) => {
                        return Err(damage(
                            path,
                            &format!("unreadable: {}", crate::error::os_text(&e)),
                        ));
                    }
                }
            }
            _ => return Err(damage(path, "not what was installed there")),
        }
    }
    if let Some((extra, _)) = actual.next() {
        return Err(damage(
            dir.join(std::ffi::OsStr::from_bytes(&extra)),
            "not part of the installed files",
        ));
    }
    Ok(())
}

/// Every entry under `dir` but the record, sorted by path. Sealing hashes and flushes files (and flushes
/// directories, children first); verifying only stats, and hashes the files whose size matches.
fn scan(dir: &Path, sealing: bool) -> Result<Vec<(Vec<u8>, Kind)>> {
    let mut out = Vec::new();
    walk(dir, dir, sealing, &mut out)?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, sealing: bool, out: &mut Vec<(Vec<u8>, Kind)>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(Error::io("reading", dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("reading", dir))?;
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("walked paths are under the root")
            .as_os_str()
            .as_bytes()
            .to_vec();
        if rel == RECORD.as_bytes() {
            continue;
        }
        let meta = fs::symlink_metadata(&path).map_err(Error::io("reading", &path))?;
        let kind = if meta.is_dir() {
            walk(root, &path, sealing, out)?;
            if sealing {
                crate::cache::sync_dir(&path)?;
            }
            Kind::Dir
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(Error::io("reading", &path))?;
            Kind::Link {
                target: target.into_os_string().into_vec(),
            }
        } else if sealing {
            let (file, sha256) = digest(&path).map_err(Error::io("reading", &path))?;
            file.sync_all()
                .map_err(Error::io("flushing to disk", &path))?;
            Kind::File {
                size: meta.len(),
                sha256,
            }
        } else {
            Kind::File {
                size: meta.len(),
                sha256: [0; 32],
            }
        };
        out.push((rel, kind));
    }
    Ok(())
}

/// The SHA-256 of a file's content.
pub fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    digest(path).map(|(_, sum)| sum)
}

/// The file, open, and the SHA-256 of its content.
fn digest(path: &Path) -> std::io::Result<(File, [u8; 32])> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((file, hasher.finalize().into()))
}

/// Names are bytes on Unix and a record compares them byte for byte, so it is bytes too, not text.
fn escape(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out
}

fn unescape(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.iter();
    while let Some(&b) = bytes.next() {
        if b == b'\\' {
            match bytes.next()? {
                b'\\' => out.push(b'\\'),
                b'n' => out.push(b'\n'),
                _ => return None,
            }
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// The record's entries, sorted as written; `None` when any line is not one (a damaged record).
fn parse(text: &[u8]) -> Option<Vec<(Vec<u8>, Kind)>> {
    let mut lines = text.strip_suffix(b"\n")?.split(|&b| b == b'\n');
    if lines.next()? != HEADER.as_bytes() {
        return None;
    }
    let mut out: Vec<(Vec<u8>, Kind)> = Vec::new();
    for line in lines {
        let mut fields = line.splitn(4, |&b| b == b' ');
        let (kind, size, value, path) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let (size, value) = (
            std::str::from_utf8(size).ok()?,
            std::str::from_utf8(value).ok()?,
        );
        let path = unescape(path)?;
        let kind = match kind {
            b"d" => Kind::Dir,
            b"f" => Kind::File {
                size: size.parse().ok()?,
                sha256: hex::decode(value).ok()?.try_into().ok()?,
            },
            b"l" => Kind::Link {
                target: hex::decode(value).ok()?,
            },
            _ => return None,
        };
        if out.last().is_some_and(|(last, _)| *last >= path) {
            return None;
        }
        out.push((path, kind));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("gems/a-1/lib")).unwrap();
        fs::write(root.join("gems/a-1/lib/a.rb"), "puts 1\n").unwrap();
        fs::write(root.join("odd\nname\\x"), "").unwrap();
        std::os::unix::fs::symlink("gems/a-1", root.join("link")).unwrap();
        seal(root).unwrap();
        dir
    }

    #[test]
    fn a_sealed_tree_verifies() {
        let dir = sealed();
        assert_eq!(verify(dir.path()), Ok(()));
    }

    #[test]
    fn every_kind_of_damage_is_found() {
        type Fault = fn(&Path);
        let faults: &[(&str, Fault, &str)] = &[
            (
                "emptied",
                |r| fs::write(r.join("gems/a-1/lib/a.rb"), "").unwrap(),
                "bytes where",
            ),
            (
                "flipped",
                |r| fs::write(r.join("gems/a-1/lib/a.rb"), "puts 2\n").unwrap(),
                "content changed",
            ),
            (
                "removed",
                |r| fs::remove_file(r.join("gems/a-1/lib/a.rb")).unwrap(),
                "missing",
            ),
            (
                "planted",
                |r| fs::write(r.join("gems/a-1/lib/b.rb"), "").unwrap(),
                "not part",
            ),
            (
                "relinked",
                |r| {
                    fs::remove_file(r.join("link")).unwrap();
                    std::os::unix::fs::symlink("/etc", r.join("link")).unwrap();
                },
                "not what was installed",
            ),
            (
                "no record",
                |r| fs::remove_file(r.join(RECORD)).unwrap(),
                "missing",
            ),
            (
                "torn record",
                |r| {
                    let text = fs::read_to_string(r.join(RECORD)).unwrap();
                    fs::write(r.join(RECORD), &text[..text.len() / 2]).unwrap();
                },
                "damaged",
            ),
        ];
        for (name, fault, expected) in faults {
            let dir = sealed();
            fault(dir.path());
            let damage = verify(dir.path()).expect_err(name);
            assert!(damage.problem.contains(expected), "{name}: {damage}");
        }
    }

    #[test]
    fn odd_names_round_trip() {
        let name = b"a\\b\nc".to_vec();
        assert_eq!(unescape(&escape(&name)), Some(name));
    }
}
