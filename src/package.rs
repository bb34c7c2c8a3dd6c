//! Inspecting a `.gem` before anything unpacks it: its layout, its own checksums, the name, version and
//! platform its metadata declares, and every entry of its data archive. RubyGems unpacks the gem afterwards;
//! this gate makes the guarantees independent of which RubyGems version does it.

use std::collections::{HashMap, HashSet};
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
/// Longest extended header (PAX records, GNU long name or long link) accepted: a tar reader holds it in memory
/// whole, so a larger one is a bomb; real ones carry one path of at most a few KiB.
const MAX_EXTENSION_BYTES: u64 = 64 << 10;

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
    // Raw: extended headers (PAX, GNU long names) are members like any other here, and refused below as not
    // regular files. RubyGems ignores them, so honouring them would inspect another archive than it unpacks.
    for entry in outer
        .entries()
        .map_err(|e| refuse(format!("not a gem (tar): {e}")))?
        .raw(true)
    {
        let mut entry = entry.map_err(|e| refuse(format!("not a gem (tar): {e}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let read_by_rubygems = String::from_utf8_lossy(&rubygems_path(entry.header())).into_owned();
        if read_by_rubygems != name {
            return Err(refuse(format!(
                "the gem's member `{name}` has a header RubyGems reads as `{read_by_rubygems}`"
            )));
        }
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
            // Signatures of the three members, as `gem build` writes them for a signed gem.
            "metadata.gz.sig" | "data.tar.gz.sig" | "checksums.yaml.gz.sig" => {}
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

/// How long the gem is likely to take to install, for scheduling the longest first: the compressed size of its
/// files if it builds native extensions, 0 if not (or if it cannot be read: the installer reports that).
pub fn build_weight(path: &Path) -> u64 {
    let Ok(file) = File::open(path) else {
        return 0;
    };
    let mut outer = tar::Archive::new(file);
    let Ok(entries) = outer.entries() else {
        return 0;
    };
    let (mut extensions, mut data_size) = (false, 0);
    for entry in entries.flatten() {
        match &*entry.path_bytes() {
            b"data.tar.gz" => data_size = entry.size(),
            b"metadata.gz" => {
                let mut raw = Vec::new();
                let mut entry = entry;
                if (&mut entry)
                    .take(MAX_METADATA_BYTES)
                    .read_to_end(&mut raw)
                    .is_err()
                {
                    return 0;
                }
                extensions =
                    gunzip_text(&raw, "metadata.gz").is_ok_and(|m| declares_extensions(&m));
            }
            _ => {}
        }
    }
    if extensions { data_size.max(1) } else { 0 }
}

/// Whether gem metadata (YAML) lists any extension: `extensions:` followed by `- ` items, not `[]`.
fn declares_extensions(metadata: &str) -> bool {
    let mut lines = metadata.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("extensions:") {
            let rest = rest.trim();
            return if rest.is_empty() {
                lines.next().is_some_and(|l| l.starts_with("- "))
            } else {
                rest != "[]"
            };
        }
    }
    false
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

/// Walks data.tar.gz without writing anything: every entry must be a plain file, directory or contained symlink,
/// under every name and link target any tar reader (RubyGems' own included) may give it.
fn inspect_data(compressed: &mut impl Read, archive_size: u64) -> Result<(), Refused> {
    let limit =
        MAX_UNPACKED_BYTES.min(RATIO_FLOOR_BYTES.max(archive_size.saturating_mul(MAX_RATIO)));
    let mut data = tar::Archive::new(GzDecoder::new(compressed));
    let mut seen = HashSet::new();
    let mut layout = Layout::default();
    let mut pending = Extensions::default();
    let mut total = 0u64;
    let invalid = |e: io::Error| refuse(format!("data.tar.gz is not a valid archive: {e}"));
    // Raw: the tar crate would otherwise read extended headers whole into memory, and apply PAX sizes and names
    // that RubyGems ignores. Here they are bounded, and every reading of each entry is checked.
    let entries = data.entries().map_err(invalid)?.raw(true);
    for entry in entries {
        let mut entry = entry.map_err(invalid)?;
        let kind = entry.header().entry_type();
        let declared = entry.header().entry_size().map_err(invalid)?;
        let extension = extension_kind(kind);
        if let Some(what) = extension
            && declared > MAX_EXTENSION_BYTES
        {
            return Err(refuse(format!(
                "data.tar.gz has a {what} of {declared} bytes (a compression bomb or a broken gem)"
            )));
        }
        total = total.saturating_add(declared);
        if total > limit {
            return Err(refuse(format!(
                "data.tar.gz expands to more than {} MiB (a compression bomb or a broken gem)",
                limit >> 20
            )));
        }
        if let Some(what) = extension {
            let mut body = Vec::new();
            (&mut entry)
                .take(declared)
                .read_to_end(&mut body)
                .map_err(|e| refuse(format!("data.tar.gz is corrupt in a {what}: {e}")))?;
            if body.len() as u64 != declared {
                return Err(refuse(format!("a {what} is truncated in data.tar.gz")));
            }
            pending.add(kind, body, what)?;
            continue;
        }
        let ext = std::mem::take(&mut pending);
        let names = entry_paths(entry.header(), &ext)?;
        let name = names[0].clone();
        let normalized: Vec<String> = names.iter().map(|n| normalize(n)).collect();
        if normalized.iter().any(|n| seen.contains(n)) {
            return Err(refuse(format!("`{name}` appears twice in data.tar.gz")));
        }
        seen.extend(normalized.iter().cloned());
        if !kind.is_dir() && normalized.iter().any(String::is_empty) {
            return Err(refuse(format!("`{name}` names the gem's directory itself")));
        }
        if let Some(size) = ext.pax_value("size")?
            && size.parse::<u64>().ok() != Some(declared)
        {
            return Err(refuse(format!(
                "`{name}` has a PAX size ({size}) other than its header's ({declared}): tar readers would \
                 disagree on where its data ends"
            )));
        }
        if kind.is_symlink() {
            let targets = link_targets(entry.header(), &ext);
            for (view, path) in names.iter().zip(&normalized) {
                for target in &targets {
                    check_link(view, path, target)?;
                }
                layout.symlinks.push((path.clone(), targets.clone()));
            }
        } else if kind.is_hard_link() {
            return Err(refuse(format!(
                "`{name}` is a hard link, which gems may not contain"
            )));
        } else if !(kind.is_file() || kind.is_dir()) {
            return Err(refuse(format!(
                "`{name}` is a {} entry (device, FIFO or other special file), which gems may not contain",
                entry_kind(kind)
            )));
        }
        // RubyGems applies the mode as is: a setuid or setgid file would keep the bit in the shared cache.
        let mode = entry.header().mode().map_err(invalid)?;
        if !kind.is_symlink() && mode & 0o6000 != 0 {
            return Err(refuse(format!(
                "`{name}` has mode {mode:o} (setuid or setgid), which gems may not use"
            )));
        }
        layout.entries.extend(normalized.iter().cloned());
        // Reading the body proves its size: a header may lie, the stream cannot.
        let read = io::copy(&mut (&mut entry).take(declared + 1), &mut io::sink())
            .map_err(|e| refuse(format!("data.tar.gz is corrupt at `{name}`: {e}")))?;
        if read != declared {
            return Err(refuse(format!("`{name}` is truncated in data.tar.gz")));
        }
    }
    if !pending.is_empty() {
        return Err(refuse(
            "data.tar.gz ends with an extended header that describes no entry",
        ));
    }
    layout.check()
}

/// What an extended header is, for messages; `None` for entries.
fn extension_kind(kind: tar::EntryType) -> Option<&'static str> {
    if kind.is_gnu_longname() {
        Some("GNU long-name header")
    } else if kind.is_gnu_longlink() {
        Some("GNU long-link header")
    } else if kind.is_pax_local_extensions() {
        Some("PAX extended header")
    } else if kind.is_pax_global_extensions() {
        Some("PAX global header")
    } else {
        None
    }
}

/// Extended headers read so far for the next entry.
#[derive(Default)]
struct Extensions {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

impl Extensions {
    fn add(&mut self, kind: tar::EntryType, body: Vec<u8>, what: &str) -> Result<(), Refused> {
        let slot = if kind.is_gnu_longname() {
            &mut self.long_name
        } else if kind.is_gnu_longlink() {
            &mut self.long_link
        } else if kind.is_pax_local_extensions() {
            &mut self.pax
        } else {
            // A global header applies to every later entry for the readers that honour it: it may not rename or
            // resize any.
            for record in tar::PaxExtensions::new(&body) {
                let record =
                    record.map_err(|_| refuse("data.tar.gz has a malformed PAX header"))?;
                if matches!(record.key_bytes(), b"path" | b"linkpath" | b"size") {
                    return Err(refuse(format!(
                        "data.tar.gz has a {what} that sets `{}` for every entry",
                        String::from_utf8_lossy(record.key_bytes())
                    )));
                }
            }
            return Ok(());
        };
        if slot.replace(body).is_some() {
            return Err(refuse(format!("data.tar.gz has two {what}s for one entry")));
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.long_name.is_none() && self.long_link.is_none() && self.pax.is_none()
    }

    /// The PAX record `key` for this entry, if any.
    fn pax_value(&self, key: &str) -> Result<Option<String>, Refused> {
        let Some(pax) = &self.pax else {
            return Ok(None);
        };
        let mut found = None;
        for record in tar::PaxExtensions::new(pax) {
            let record = record.map_err(|_| refuse("data.tar.gz has a malformed PAX header"))?;
            if record.key_bytes() == key.as_bytes() {
                found = Some(String::from_utf8_lossy(record.value_bytes()).into_owned());
            }
        }
        Ok(found)
    }
}

/// A header field as RubyGems reads it (`unpack("A…")`): trailing NULs and spaces dropped, nothing else.
fn rubygems_field(field: &[u8]) -> &[u8] {
    let end = field
        .iter()
        .rposition(|&b| b != 0 && b != b' ')
        .map_or(0, |i| i + 1);
    &field[..end]
}

/// The path RubyGems gives an entry: the prefix field and the name field, whatever the header's format (tar
/// readers ignore the prefix of GNU and old-style headers; RubyGems does not).
fn rubygems_path(header: &tar::Header) -> Vec<u8> {
    let raw = header.as_bytes();
    let name = rubygems_field(&raw[..100]);
    let prefix = rubygems_field(&raw[345..500]);
    if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    }
}

/// Every path a tar reader may give this entry, each checked: RubyGems' (see [`rubygems_path`]), other
/// readers' own reading of the header, a GNU long name, a PAX `path`. The first is the one messages show.
fn entry_paths(header: &tar::Header, ext: &Extensions) -> Result<Vec<String>, Refused> {
    let mut raw = vec![rubygems_path(header), header.path_bytes().into_owned()];
    if let Some(long) = &ext.long_name {
        raw.push(long.strip_suffix(b"\0").unwrap_or(long).to_vec());
    }
    if let Some(path) = ext.pax_value("path")? {
        raw.push(path.into_bytes());
    }
    let mut names: Vec<String> = Vec::new();
    for bytes in raw {
        let name = String::from_utf8(bytes).map_err(|e| {
            refuse(format!(
                "file name {:?} is not valid UTF-8",
                String::from_utf8_lossy(e.as_bytes())
            ))
        })?;
        check_name(&name)?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Every target a tar reader may give this symlink: RubyGems' (the link field), other readers', a GNU long
/// link, a PAX `linkpath`.
fn link_targets(header: &tar::Header, ext: &Extensions) -> Vec<String> {
    let mut raw = vec![rubygems_field(&header.as_old().linkname).to_vec()];
    raw.extend(header.link_name_bytes().map(|l| l.into_owned()));
    if let Some(long) = &ext.long_link {
        raw.push(long.strip_suffix(b"\0").unwrap_or(long).to_vec());
    }
    if let Ok(Some(path)) = ext.pax_value("linkpath") {
        raw.push(path.into_bytes());
    }
    let mut targets: Vec<String> = Vec::new();
    for bytes in raw {
        let target = String::from_utf8_lossy(&bytes).into_owned();
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    targets
}

/// A checked path as the file system resolves it: without `.`, empty components or a trailing `/`.
fn normalize(name: &str) -> String {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// What only the whole archive shows: where its symlinks lead once other symlinks are followed.
#[derive(Default)]
struct Layout {
    /// Every normalized path of every entry.
    entries: Vec<String>,
    /// Each symlink's normalized path and its targets.
    symlinks: Vec<(String, Vec<String>)>,
}

impl Layout {
    /// Each link was checked alone, lexically; the file system follows links. So nothing may lie beneath a
    /// symlink (an extractor would write through it), and no target may climb (`..`) after passing through a
    /// symlink (`..` then leaves the link's destination, not the directory it seems to be in). Comparisons
    /// ignore ASCII case, as case-insensitive file systems do.
    fn check(&self) -> Result<(), Refused> {
        let links: HashMap<String, &str> = self
            .symlinks
            .iter()
            .map(|(path, _)| (path.to_ascii_lowercase(), path.as_str()))
            .collect();
        if links.is_empty() {
            return Ok(());
        }
        let link_at = |components: &[&str]| links.get(&components.join("/").to_ascii_lowercase());
        for path in &self.entries {
            let components: Vec<&str> = path.split('/').collect();
            for end in 1..components.len() {
                if let Some(link) = link_at(&components[..end]) {
                    return Err(refuse(format!(
                        "`{path}` lies beneath the symlink `{link}`: unpacking it would write wherever the link points"
                    )));
                }
            }
        }
        for (path, targets) in &self.symlinks {
            for target in targets {
                let mut at: Vec<&str> = path.split('/').collect();
                at.pop();
                let mut through = None;
                for component in target.split('/') {
                    match component {
                        "" | "." => {}
                        ".." => {
                            if let Some(link) = through {
                                return Err(refuse(format!(
                                    "symlink `{path}` points to `{target}`, through the symlink `{link}` and back up: \
                                     outside the gem's directory once links are followed"
                                )));
                            }
                            at.pop();
                        }
                        normal => {
                            at.push(normal);
                            if let Some(link) = link_at(&at) {
                                through = Some(*link);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
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

/// A symlink must point inside the gem's directory, relative to where it stands (`path`, normalized).
fn check_link(name: &str, path: &str, target: &str) -> Result<(), Refused> {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return Err(refuse(format!(
            "symlink `{name}` points to `{target}`, outside the gem's directory"
        )));
    }
    let mut depth: i64 = Path::new(path).components().count() as i64 - 1;
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
        // Psych quotes a digest that could read as another YAML type (e.g. `'049a…e…'`).
        let value = value.trim().trim_matches(|c| c == '\'' || c == '"');
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
///
/// RubyGems loads this YAML with Psych, which keeps the *last* of repeated keys and accepts keys spelled many
/// ways (quoted, `? key`, anchored, continued on the next line). A gemspec as RubyGems writes it has each
/// top-level key once, plainly, on one line; anything else at the top level is refused rather than read one way
/// here and another way by RubyGems.
fn verify_identity(metadata: &str, expected: Expected<'_>) -> Result<(), Refused> {
    let odd = |line: &str| {
        refuse(format!(
            "metadata.gz is not a gemspec as RubyGems writes it (at {line:?}), so its name, version and platform \
             could be read two ways"
        ))
    };
    let unquote = |v: &str| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
    let lines: Vec<&str> = metadata.lines().collect();
    let (mut name, mut version, mut platform) = (None, None, None);
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.starts_with(' ') || line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("---") || line.starts_with("...") {
            let start = line.trim_end();
            if i == 1 && (start == "---" || start == "--- !ruby/object:Gem::Specification") {
                continue;
            }
            return Err(odd(line));
        }
        if line == "-" || line.starts_with("- ") {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(odd(line));
        };
        let plain_key =
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain_key || !(value.is_empty() || value.starts_with(' ')) {
            return Err(odd(line));
        }
        let slot = match key {
            "name" => &mut name,
            "version" => &mut version,
            "platform" => &mut platform,
            _ => continue,
        };
        if slot.is_some() {
            return Err(refuse(format!("metadata.gz gives its {key} twice")));
        }
        if key != "version" {
            // A plain scalar continues on more-indented lines.
            if lines.get(i).is_some_and(|next| next.starts_with(' ')) {
                return Err(odd(lines[i]));
            }
            *slot = Some(unquote(value));
            continue;
        }
        // `version: !ruby/object:Gem::Version`, then the object's keys indented by two, `version` among them once.
        if value.trim() != "!ruby/object:Gem::Version" {
            return Err(odd(line));
        }
        let mut found = None;
        while let Some(inner) = lines.get(i).filter(|l| l.starts_with(' ')) {
            i += 1;
            let Some(rest) = inner.strip_prefix("  ") else {
                return Err(odd(inner));
            };
            if rest.starts_with(' ') || rest.starts_with("- ") {
                continue;
            }
            let Some((k, v)) = rest.split_once(':') else {
                return Err(odd(inner));
            };
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(odd(inner));
            }
            if k == "version" {
                if found.is_some() {
                    return Err(refuse("metadata.gz gives its version twice"));
                }
                if lines.get(i).is_some_and(|next| next.starts_with("   ")) {
                    return Err(odd(lines[i]));
                }
                found = Some(unquote(v));
            }
        }
        *slot = Some(found.ok_or_else(|| odd(line))?);
    }
    let name = name.unwrap_or_default();
    let version = version.unwrap_or_default();
    let platform = platform.unwrap_or_else(|| "ruby".to_string());
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
    fn extensions_are_read_from_the_metadata() {
        assert!(declares_extensions(
            "name: x\nextensions:\n- ext/x/extconf.rb\nfiles: []\n"
        ));
        assert!(!declares_extensions("name: x\nextensions: []\nfiles: []\n"));
        assert!(!declares_extensions("name: x\nextensions:\nfiles: []\n"));
        assert!(!declares_extensions("name: x\nfiles:\n- extensions: y\n"));
        assert!(declares_extensions("extensions: [ext/x/extconf.rb]\n"));
    }

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
        assert!(check_link("lib/a.rb", "lib/a.rb", "b.rb").is_ok());
        assert!(check_link("lib/x/a.rb", "lib/x/a.rb", "../b.rb").is_ok());
        assert!(check_link("lib/a.rb", "lib/a.rb", "../../etc/passwd").is_err());
        assert!(check_link("a.rb", "a.rb", "../a").is_err());
        assert!(check_link("a.rb", "a.rb", "/etc/passwd").is_err());
    }

    const KAMAL_METADATA: &str = "--- !ruby/object:Gem::Specification\nname: kamal\nversion: !ruby/object:Gem::Version\n  version: 2.7.0\nplatform: ruby\nauthors:\n- a\n";

    const KAMAL: Expected<'static> = Expected {
        name: "kamal",
        version: "2.7.0",
        platform: "ruby",
    };

    #[test]
    fn identity() {
        let meta = KAMAL_METADATA;
        let ok = KAMAL;
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
    fn links_through_links() {
        let layout = |entries: &[&str], symlinks: &[(&str, &str)]| Layout {
            entries: entries.iter().map(|e| e.to_string()).collect(),
            symlinks: symlinks
                .iter()
                .map(|(p, t)| (p.to_string(), vec![t.to_string()]))
                .collect(),
        };
        // Alone, each is inside; together, `lib/a/b/x` is `lib/x` and climbs out.
        let chain = [("lib/a/b", ".."), ("lib/a/b/x", "../../..")];
        assert!(layout(&["lib/a/b", "lib/a/b/x"], &chain).check().is_err());
        assert!(
            layout(&["lib/A/f.rb"], &[("lib/a", "../x")])
                .check()
                .is_err()
        );
        let through = [("lib/a/b", ".."), ("lib/y", "a/b/../../x")];
        assert!(layout(&["lib/a/b", "lib/y"], &through).check().is_err());
        // Links to links, and targets that only descend through links, resolve inside.
        let fine = [("lib/a", "b"), ("lib/c", "a/d.rb"), ("lib/e", "../lib/a")];
        assert!(
            layout(&["lib/a", "lib/c", "lib/e", "lib/b/d.rb"], &fine)
                .check()
                .is_ok()
        );
    }

    #[test]
    fn rubygems_reads_the_prefix_of_any_header() {
        let mut gnu = tar::Header::new_gnu();
        gnu.as_mut_bytes()[..4].copy_from_slice(b"x.rb");
        gnu.as_mut_bytes()[345..350].copy_from_slice(b"../..");
        assert_eq!(&*gnu.path_bytes(), b"x.rb");
        assert_eq!(rubygems_path(&gnu), b"../../x.rb");
        assert_eq!(normalize("./lib//a/./b.rb/"), "lib/a/b.rb");
    }

    #[test]
    fn identity_is_read_one_way_only() {
        let meta = KAMAL_METADATA;
        let ok = KAMAL;
        assert!(verify_identity(meta, ok).is_ok());
        for hostile in [
            meta.replace("name: kamal\n", "name: kamal\nname: other\n"),
            format!("{meta}\"name\": other\n"),
            format!("{meta}? name\n: other\n"),
            meta.replace("name: kamal\n", "name: kamal\n  continued\n"),
            meta.replace("  version: 2.7.0\n", "  version: 2.7.0\n  version: 9.9\n"),
            meta.replace("!ruby/object:Gem::Version\n  version: 2.7.0", "2.7.0"),
            format!("{meta}---\nname: other\n"),
        ] {
            assert!(verify_identity(&hostile, ok).is_err(), "{hostile}");
        }
    }

    #[test]
    fn checksums_yaml() {
        let digests = vec![("data.tar.gz".to_string(), "ab".repeat(32), "cd".repeat(64))];
        let (sha256, sha512) = ("ab".repeat(32), "cd".repeat(64));
        let yaml = |a: &str, b: &str| {
            format!("---\nSHA256:\n  data.tar.gz: {a}\nSHA512:\n  data.tar.gz: {b}\n")
        };
        assert!(verify_checksums(&yaml(&sha256, &sha512), &digests).is_ok());
        // As Psych writes a digest that looks like a number: quoted.
        let quoted = yaml(&format!("\"{sha256}\""), &format!("'{sha512}'"));
        assert!(verify_checksums(&quoted, &digests).is_ok());
        let bad = format!("---\nSHA256:\n  data.tar.gz: {}\n", "00".repeat(32));
        assert!(verify_checksums(&bad, &digests).is_err());
    }
}
