//! Inspecting a `.gem` before anything unpacks it: its layout, its own checksums, the name, version and
//! platform its metadata declares, and every entry of its data archive. RubyGems unpacks the gem afterwards;
//! this gate makes the guarantees independent of which RubyGems version does it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path};

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256, Sha512};

/// No real gem's metadata comes near this; more is a decompression bomb.
const MAX_METADATA_BYTES: u64 = 16 << 20;
/// Upper bound on a gem's unpacked size.
const MAX_UNPACKED_BYTES: u64 = 2 << 30;
/// Above this size, an entry must not expand more than [`MAX_RATIO`] times its compressed archive.
const RATIO_FLOOR_BYTES: u64 = 64 << 20;
/// Largest plausible compression ratio for source code and binaries; bombs reach thousands.
const MAX_RATIO: u64 = 200;
/// Longest path and path component most file systems accept.
const MAX_PATH_BYTES: usize = 4096;
const MAX_NAME_BYTES: usize = 255;

/// What the lockfile says the gem is.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// Gem name.
    pub name: &'a str,
    /// Version as locked.
    pub version: &'a str,
    /// Platform as locked (`ruby` for the generic gem).
    pub platform: &'a str,
}

/// Why a `.gem` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Refused(pub String);

fn refuse(msg: impl Into<String>) -> Refused {
    Refused(msg.into())
}

/// Checks a downloaded `.gem` file; `Ok` means RubyGems may unpack it.
pub fn inspect(path: &Path, expected: Expected<'_>) -> Result<(), Refused> {
    let io_err = |e: io::Error| refuse(format!("cannot read the gem file: {e}"));
    let archive_size = path.metadata().map_err(io_err)?.len();
    let mut outer = tar::Archive::new(File::open(path).map_err(io_err)?);
    let mut seen = HashSet::new();
    let mut digests: Vec<(String, String, String)> = Vec::new();
    let mut checksums_yaml: Option<String> = None;
    let mut metadata: Option<String> = None;
    let mut has_data = false;
    for entry in outer
        .entries()
        .map_err(|e| refuse(format!("not a gem (tar): {e}")))?
    {
        let mut entry = entry.map_err(|e| refuse(format!("not a gem (tar): {e}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !seen.insert(name.clone()) {
            return Err(refuse(format!("the gem contains `{name}` twice")));
        }
        if !entry.header().entry_type().is_file() {
            return Err(refuse(format!(
                "the gem's member `{name}` is not a regular file"
            )));
        }
        match name.as_str() {
            "metadata.gz" | "data.tar.gz" => {
                let mut sha256 = Sha256::new();
                let mut sha512 = Sha512::new();
                if name == "metadata.gz" {
                    let mut raw = Vec::new();
                    (&mut entry)
                        .take(MAX_METADATA_BYTES)
                        .read_to_end(&mut raw)
                        .map_err(io_err)?;
                    sha256.update(&raw);
                    sha512.update(&raw);
                    metadata = Some(gunzip_text(&raw, "metadata.gz")?);
                } else {
                    has_data = true;
                    let mut tee = HashingReader {
                        inner: &mut entry,
                        sha256: &mut sha256,
                        sha512: &mut sha512,
                    };
                    inspect_data(&mut tee, archive_size)?;
                    // Hash whatever the decompressor did not need to read (tar padding, trailing data).
                    io::copy(&mut tee, &mut io::sink()).map_err(io_err)?;
                }
                digests.push((
                    name.clone(),
                    hex::encode(sha256.finalize()),
                    hex::encode(sha512.finalize()),
                ));
            }
            "checksums.yaml.gz" => {
                let mut raw = Vec::new();
                (&mut entry)
                    .take(MAX_METADATA_BYTES)
                    .read_to_end(&mut raw)
                    .map_err(io_err)?;
                checksums_yaml = Some(gunzip_text(&raw, "checksums.yaml.gz")?);
            }
            other if other.ends_with(".sig") => {}
            other => return Err(refuse(format!("unexpected member `{other}` in the gem"))),
        }
    }
    let metadata = metadata.ok_or_else(|| refuse("the gem has no metadata.gz"))?;
    if !has_data {
        return Err(refuse("the gem has no data.tar.gz"));
    }
    if let Some(yaml) = checksums_yaml {
        verify_checksums(&yaml, &digests)?;
    }
    verify_identity(&metadata, expected)
}

/// Feeds everything read through it to two hashers, so data.tar.gz is hashed and inspected in one pass.
struct HashingReader<'a, R> {
    inner: R,
    sha256: &'a mut Sha256,
    sha512: &'a mut Sha512,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        self.sha512.update(&buf[..n]);
        Ok(n)
    }
}

fn gunzip_text(raw: &[u8], what: &str) -> Result<String, Refused> {
    let mut text = Vec::new();
    GzDecoder::new(raw)
        .take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| refuse(format!("{what} is not valid gzip: {e}")))?;
    if text.len() as u64 > MAX_METADATA_BYTES {
        return Err(refuse(format!(
            "{what} expands beyond {} MiB",
            MAX_METADATA_BYTES >> 20
        )));
    }
    String::from_utf8(text).map_err(|_| refuse(format!("{what} is not UTF-8 text")))
}

/// Walks data.tar.gz without writing anything: every entry must be a plain file, directory or contained symlink.
fn inspect_data(compressed: &mut impl Read, archive_size: u64) -> Result<(), Refused> {
    let limit =
        MAX_UNPACKED_BYTES.min(RATIO_FLOOR_BYTES.max(archive_size.saturating_mul(MAX_RATIO)));
    let mut data = tar::Archive::new(GzDecoder::new(compressed));
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let entries = data
        .entries()
        .map_err(|e| refuse(format!("data.tar.gz is not a valid archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| refuse(format!("data.tar.gz is not a valid archive: {e}")))?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw.clone()).map_err(|_| {
            refuse(format!(
                "file name {:?} is not valid UTF-8",
                String::from_utf8_lossy(&raw)
            ))
        })?;
        check_name(&name)?;
        let normalized = name
            .trim_end_matches('/')
            .trim_start_matches("./")
            .to_string();
        if !seen.insert(normalized.clone()) {
            return Err(refuse(format!("`{name}` appears twice in data.tar.gz")));
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            check_link(&normalized, &target)?;
        } else if kind.is_hard_link() {
            return Err(refuse(format!(
                "`{name}` is a hard link, which gems may not contain"
            )));
        } else if !(kind.is_file() || kind.is_dir() || kind.is_pax_global_extensions()) {
            return Err(refuse(format!(
                "`{name}` is a {} entry (device, FIFO or other special file), which gems may not contain",
                entry_kind(kind)
            )));
        }
        let declared = entry.header().size().unwrap_or(0);
        total = total.saturating_add(declared);
        if total > limit {
            return Err(refuse(format!(
                "data.tar.gz expands to more than {} MiB (a compression bomb or a broken gem)",
                limit >> 20
            )));
        }
        // Reading the body proves its size: a header may lie, the stream cannot.
        let read = io::copy(&mut (&mut entry).take(declared + 1), &mut io::sink())
            .map_err(|e| refuse(format!("data.tar.gz is corrupt at `{name}`: {e}")))?;
        if read != declared {
            return Err(refuse(format!("`{name}` is truncated in data.tar.gz")));
        }
    }
    Ok(())
}

fn entry_kind(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special",
    }
}

/// A path inside the gem: relative, without `..`, NUL, or components too long for a file system.
fn check_name(name: &str) -> Result<(), Refused> {
    if name.is_empty() || name.len() > MAX_PATH_BYTES {
        return Err(refuse(format!(
            "file name of {} bytes in data.tar.gz",
            name.len()
        )));
    }
    if name.contains('\0') || name.contains('\\') || name.chars().any(char::is_control) {
        return Err(refuse(format!(
            "file name {name:?} has characters no file system should get"
        )));
    }
    if name.starts_with('/') {
        return Err(refuse(format!(
            "`{name}` is an absolute path; gems may only write inside their directory"
        )));
    }
    for component in Path::new(name).components() {
        match component {
            Component::Normal(c) if c.len() > MAX_NAME_BYTES => {
                return Err(refuse(format!(
                    "`{name}` has a path component longer than {MAX_NAME_BYTES} bytes"
                )));
            }
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(refuse(format!("`{name}` escapes the gem's directory"))),
        }
    }
    Ok(())
}

/// A symlink must point inside the gem's directory, relative to where it stands.
fn check_link(name: &str, target: &str) -> Result<(), Refused> {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return Err(refuse(format!(
            "symlink `{name}` points to `{target}`, outside the gem's directory"
        )));
    }
    let mut depth: i64 = Path::new(name).components().count() as i64 - 1;
    for component in Path::new(target).components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => depth = -1,
        }
        if depth < 0 {
            return Err(refuse(format!(
                "symlink `{name}` points to `{target}`, outside the gem's directory"
            )));
        }
    }
    Ok(())
}

/// Compares the members' digests with checksums.yaml.gz: `{SHA256: {member: hex}, SHA512: {...}}`.
fn verify_checksums(yaml: &str, digests: &[(String, String, String)]) -> Result<(), Refused> {
    let mut algorithm = "";
    for line in yaml.lines() {
        let trimmed = line.trim();
        if !line.starts_with(' ') {
            algorithm = match trimmed.trim_end_matches(':') {
                "SHA256" => "SHA256",
                "SHA512" => "SHA512",
                // Older gems tag keys as !binary base64; those and SHA1 are not worth trusting or parsing.
                _ => "",
            };
            continue;
        }
        if algorithm.is_empty() {
            continue;
        }
        let Some((member, value)) = trimmed.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let Some((_, sha256, sha512)) = digests.iter().find(|(m, _, _)| m == member.trim()) else {
            continue;
        };
        let actual = if algorithm == "SHA256" {
            sha256
        } else {
            sha512
        };
        if !value.eq_ignore_ascii_case(actual) {
            return Err(refuse(format!(
                "{member}'s {algorithm} does not match the gem's own checksums.yaml.gz (the gem was altered after it was built)"
            )));
        }
    }
    Ok(())
}

/// The metadata's name, version and platform must be the ones the lockfile locks.
fn verify_identity(metadata: &str, expected: Expected<'_>) -> Result<(), Refused> {
    let top = |key: &str| -> Option<String> {
        metadata
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    };
    let name = top("name").unwrap_or_default();
    // `version: !ruby/object:Gem::Version` is followed by an indented `version: X` line.
    let version = metadata
        .lines()
        .skip_while(|l| !l.starts_with("version:"))
        .skip(1)
        .find_map(|l| l.trim().strip_prefix("version:"))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .unwrap_or_default();
    let platform = top("platform").unwrap_or_else(|| "ruby".to_string());
    let wanted = format!(
        "{} {} {}",
        expected.name, expected.version, expected.platform
    );
    let found = format!("{name} {version} {platform}");
    if name != expected.name
        || version != expected.version
        || !same_platform(&platform, expected.platform)
    {
        return Err(refuse(format!(
            "its metadata says it is `{found}`, but the lockfile locks `{wanted}`"
        )));
    }
    Ok(())
}

/// RubyGems writes the platform as built; Ruby 3.1's RubyGems folds `-gnu` away, newer ones keep it.
fn same_platform(found: &str, locked: &str) -> bool {
    let fold = |p: &str| p.strip_suffix("-gnu").unwrap_or(p).to_string();
    found == locked || fold(found) == fold(locked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("lib/a.rb").is_ok());
        assert!(check_name("./lib/a.rb").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name("lib/../../x").is_err());
        assert!(check_name("/etc/passwd").is_err());
        assert!(check_name("a\0b").is_err());
        assert!(check_name(&"a".repeat(300)).is_err());
    }

    #[test]
    fn links() {
        assert!(check_link("lib/a.rb", "b.rb").is_ok());
        assert!(check_link("lib/x/a.rb", "../b.rb").is_ok());
        assert!(check_link("lib/a.rb", "../../etc/passwd").is_err());
        assert!(check_link("a.rb", "../a").is_err());
        assert!(check_link("a.rb", "/etc/passwd").is_err());
    }

    #[test]
    fn identity() {
        let meta = "--- !ruby/object:Gem::Specification\nname: kamal\nversion: !ruby/object:Gem::Version\n  version: 2.7.0\nplatform: ruby\nauthors:\n";
        let ok = Expected {
            name: "kamal",
            version: "2.7.0",
            platform: "ruby",
        };
        assert!(verify_identity(meta, ok).is_ok());
        let other = Expected {
            name: "kamal",
            version: "2.8.0",
            platform: "ruby",
        };
        assert!(
            verify_identity(meta, other)
                .unwrap_err()
                .0
                .contains("kamal 2.7.0 ruby")
        );
        let gnu =
            "name: n\nversion: !ruby/object:Gem::Version\n  version: 1.0\nplatform: x86_64-linux\n";
        assert!(
            verify_identity(
                gnu,
                Expected {
                    name: "n",
                    version: "1.0",
                    platform: "x86_64-linux-gnu"
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn checksums_yaml() {
        let digests = vec![("data.tar.gz".to_string(), "ab".repeat(32), "cd".repeat(64))];
        let good = format!(
            "---\nSHA256:\n  data.tar.gz: {}\nSHA512:\n  data.tar.gz: {}\n",
            "ab".repeat(32),
            "cd".repeat(64)
        );
        assert!(verify_checksums(&good, &digests).is_ok());
        let bad = format!("---\nSHA256:\n  data.tar.gz: {}\n", "00".repeat(32));
        assert!(verify_checksums(&bad, &digests).is_err());
    }
}
