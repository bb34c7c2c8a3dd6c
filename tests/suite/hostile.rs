//! Hostile gems: a release that was locked (its SHA-256 is in the lockfile, so verification passes) but whose
//! package is malformed or malicious. Every `.gem` here is crafted at test time from the genuine
//! `fixture_dep_b-0.3.1.gem`, header by header, so that it holds exactly the bytes an attacker would send, with
//! a consistent `checksums.yaml.gz` so that the refusal is due to the hostile part itself.
//!
//! For every case: exit 1; the error names the gem and the offending entry or reason; RubyGems (the unpacking
//! layer) is never reached; nothing appeared where the entry aimed; the cache holds no download, store unit or
//! environment of it and an empty `v2/tmp`; and the genuine gem installs afterwards.

use crate::support;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::{DeflateEncoder, GzEncoder};
use sha2::{Digest, Sha256, Sha512};
use support::{App, Fault, Launcher, Lock, Output, Server, fixtures, sha256_hex};
use tar::{EntryType, Header};

const GEM: &str = "fixture_dep_b-0.3.1";
const GEM_PATH: &str = "/gems/fixture_dep_b-0.3.1.gem";
const MTIME: u64 = 1_700_000_000;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// Address-space limit for the launcher while it inspects a bomb: far below what it would need to hold the
/// expanded data, far above what streaming needs.
const BOMB_ADDRESS_SPACE_KIB: u64 = 1 << 20;
/// Time to refuse a bomb, even on a loaded machine with a debug build: it never expands more than the limit.
const BOMB_TIME_LIMIT: Duration = Duration::from_secs(45);

// ---- the genuine gem ----

struct Genuine {
    bytes: Vec<u8>,
    metadata_gz: Vec<u8>,
    data_tar_gz: Vec<u8>,
    checksums_gz: Vec<u8>,
}

fn genuine() -> &'static Genuine {
    static GENUINE: OnceLock<Genuine> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let fx = fixtures();
        let gem = fx.gem("fixture_dep_b", "0.3.1", "ruby");
        let bytes = fs::read(fx.gem_path(gem)).expect("read the fixture gem");
        let mut genuine = Genuine {
            bytes: bytes.clone(),
            metadata_gz: Vec::new(),
            data_tar_gz: Vec::new(),
            checksums_gz: Vec::new(),
        };
        let mut outer = tar::Archive::new(bytes.as_slice());
        for entry in outer.entries().expect("fixture gem is a tar") {
            let mut entry = entry.expect("fixture gem entry");
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read fixture member");
            match name.as_str() {
                "metadata.gz" => genuine.metadata_gz = data,
                "data.tar.gz" => genuine.data_tar_gz = data,
                "checksums.yaml.gz" => genuine.checksums_gz = data,
                other => panic!("unexpected member {other} in the fixture gem"),
            }
        }
        assert!(!genuine.metadata_gz.is_empty() && !genuine.data_tar_gz.is_empty());
        genuine
    })
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).expect("gunzip");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// The genuine gemspec YAML.
fn genuine_metadata() -> String {
    String::from_utf8(gunzip(&genuine().metadata_gz)).expect("metadata is UTF-8")
}

// ---- tar, header by header ----

/// A tar stream written block by block, so that it can hold what no well-behaved archiver writes.
#[derive(Default, Clone)]
struct RawTar {
    bytes: Vec<u8>,
}

impl RawTar {
    /// The genuine gem's data entries (`lib/fixture_dep_b.rb`), copied header and all, without the end marker.
    fn genuine_data() -> RawTar {
        let tar = gunzip(&genuine().data_tar_gz);
        let mut out = RawTar::default();
        let mut archive = tar::Archive::new(tar.as_slice());
        for entry in archive.entries().expect("data.tar").raw(true) {
            let mut entry = entry.expect("data entry");
            let header = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("data entry body");
            out.push(&header, &data);
        }
        out
    }

    fn push(&mut self, header: &Header, data: &[u8]) -> &mut RawTar {
        self.bytes.extend_from_slice(header.as_bytes());
        self.push_body(data)
    }

    /// Bytes after a header, padded to the block size.
    fn push_body(&mut self, data: &[u8]) -> &mut RawTar {
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    fn file(&mut self, name: &[u8], data: &[u8]) -> &mut RawTar {
        let h = header(EntryType::Regular, name, data.len() as u64, None);
        self.push(&h, data)
    }

    fn dir(&mut self, name: &[u8]) -> &mut RawTar {
        let h = header(EntryType::Directory, name, 0, None);
        self.push(&h, &[])
    }

    fn symlink(&mut self, name: &[u8], target: &[u8]) -> &mut RawTar {
        let h = header(EntryType::Symlink, name, 0, Some(target));
        self.push(&h, &[])
    }

    /// A GNU long-name member (`././@LongLink`, type `L`) carrying `long`, followed by `real`.
    fn gnu_long_name(&mut self, long: &[u8], real: &Header, data: &[u8]) -> &mut RawTar {
        let mut body = long.to_vec();
        body.push(0);
        let h = gnu_header(EntryType::GNULongName, b"././@LongLink", body.len() as u64);
        self.push(&h, &body);
        self.push(real, data)
    }

    /// A PAX extended header (type `x`) with these records, describing the next member.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut RawTar {
        let body = pax_records(records);
        let h = header(
            EntryType::XHeader,
            b"PaxHeaders.0/entry",
            body.len() as u64,
            None,
        );
        self.push(&h, &body)
    }

    /// The archive with its end marker.
    fn finish(&self) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        bytes.extend_from_slice(&[0u8; 1024]);
        bytes
    }
}

/// `len key=value\n` records, `len` counting the whole record including itself.
fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len += 1;
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// A ustar header with `name` (split into prefix and name like ustar when longer than 100 bytes) and
/// `link` written verbatim into their fields: no validation, as an attacker's tool would.
fn header(kind: EntryType, name: &[u8], size: u64, link: Option<&[u8]>) -> Header {
    let mut h = Header::new_ustar();
    fill(&mut h, kind, size);
    let ustar = h.as_ustar_mut().expect("ustar header");
    if name.len() <= 100 {
        ustar.name[..name.len()].copy_from_slice(name);
    } else {
        let split = (0..name.len())
            .rev()
            .find(|&i| name[i] == b'/' && name.len() - i - 1 <= 100 && i <= 155)
            .unwrap_or_else(|| panic!("{:?} does not fit a ustar header", name));
        ustar.prefix[..split].copy_from_slice(&name[..split]);
        ustar.name[..name.len() - split - 1].copy_from_slice(&name[split + 1..]);
    }
    if let Some(link) = link {
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    }
    h.set_cksum();
    h
}

/// A GNU-format header (magic `ustar  `), whose name field holds at most 100 bytes.
fn gnu_header(kind: EntryType, name: &[u8], size: u64) -> Header {
    let mut h = Header::new_gnu();
    fill(&mut h, kind, size);
    h.as_old_mut().name[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    h.set_cksum();
    h
}

fn fill(h: &mut Header, kind: EntryType, size: u64) {
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
}

fn device(kind: EntryType, name: &[u8], major: u32, minor: u32) -> Header {
    let mut h = header(kind, name, 0, None);
    h.set_device_major(major).expect("device major");
    h.set_device_minor(minor).expect("device minor");
    h.set_cksum();
    h
}

// ---- the outer .gem ----

/// `checksums.yaml.gz` as RubyGems writes it, for these members.
fn checksums_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut yaml = String::from("---\nSHA256:\n");
    for (name, data) in members {
        yaml.push_str(&format!(
            "  {name}: {}\n",
            hex::encode(Sha256::digest(data))
        ));
    }
    yaml.push_str("SHA512:\n");
    for (name, data) in members {
        yaml.push_str(&format!(
            "  {name}: {}\n",
            hex::encode(Sha512::digest(data))
        ));
    }
    gzip(yaml.as_bytes())
}

/// An outer tar of regular-file members, mode 0444 like `gem build`.
fn outer(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = RawTar::default();
    for (name, data) in members {
        let mut h = header(EntryType::Regular, name.as_bytes(), data.len() as u64, None);
        h.set_mode(0o444);
        h.set_cksum();
        tar.push(&h, data);
    }
    tar.finish()
}

/// A well-formed gem around these members, with checksums that match them.
fn consistent_gem(metadata_gz: &[u8], data_tar_gz: &[u8]) -> Vec<u8> {
    let checksums = checksums_gz(&[("metadata.gz", metadata_gz), ("data.tar.gz", data_tar_gz)]);
    outer(&[
        ("metadata.gz", metadata_gz),
        ("data.tar.gz", data_tar_gz),
        ("checksums.yaml.gz", &checksums),
    ])
}

/// The genuine gem with this data archive.
fn gem_with_data(data: &RawTar) -> Vec<u8> {
    consistent_gem(&genuine().metadata_gz, &gzip(&data.finish()))
}

/// The genuine gem with the genuine data entries followed by `hostile`.
fn gem_with_entries(hostile: impl FnOnce(&mut RawTar)) -> Vec<u8> {
    let mut data = RawTar::genuine_data();
    hostile(&mut data);
    gem_with_data(&data)
}

/// The genuine gem with this gemspec YAML.
fn gem_with_metadata(yaml: &str) -> Vec<u8> {
    consistent_gem(&gzip(yaml.as_bytes()), &genuine().data_tar_gz)
}

// ---- gzip bombs, generated without compressing gigabytes ----

/// A deflate segment of `data` from a fresh compressor, ending in a sync flush: byte-aligned, non-final and
/// referring to nothing before it, so copies of it can be concatenated into one valid stream.
fn deflate_segment(data: &[u8]) -> Vec<u8> {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
    enc.write_all(data).expect("deflate");
    enc.flush().expect("deflate flush");
    std::mem::take(enc.get_mut())
}

fn deflate_final(data: &[u8]) -> Vec<u8> {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
    enc.write_all(data).expect("deflate");
    enc.finish().expect("deflate finish")
}

/// A gzip stream assembled from deflate segments: runs of zeros cost one pre-compressed 1 MiB segment each,
/// so gigabytes of expanded data take a few MB and milliseconds to produce.
struct GzipBuilder {
    out: Vec<u8>,
    crc: flate2::Crc,
    total: u64,
    zero_segment: Vec<u8>,
    zero_crc: flate2::Crc,
}

impl GzipBuilder {
    fn new() -> GzipBuilder {
        let chunk = vec![0u8; MIB as usize];
        let mut zero_crc = flate2::Crc::new();
        zero_crc.update(&chunk);
        GzipBuilder {
            out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3],
            crc: flate2::Crc::new(),
            total: 0,
            zero_segment: deflate_segment(&chunk),
            zero_crc,
        }
    }

    fn bytes(&mut self, data: &[u8]) -> &mut GzipBuilder {
        self.out.extend_from_slice(&deflate_segment(data));
        self.crc.update(data);
        self.total += data.len() as u64;
        self
    }

    /// `n` zero bytes, a multiple of 1 MiB.
    fn zeros(&mut self, n: u64) -> &mut GzipBuilder {
        assert_eq!(n % MIB, 0);
        for _ in 0..n / MIB {
            self.out.extend_from_slice(&self.zero_segment);
            self.crc.combine(&self.zero_crc);
        }
        self.total += n;
        self
    }

    /// Ends the stream with `tail` (e.g. the tar end marker) and the gzip trailer.
    fn finish(&mut self, tail: &[u8]) -> Vec<u8> {
        self.out.extend_from_slice(&deflate_final(tail));
        self.crc.update(tail);
        self.total += tail.len() as u64;
        let mut out = std::mem::take(&mut self.out);
        out.extend_from_slice(&self.crc.sum().to_le_bytes());
        out.extend_from_slice(&(self.total as u32).to_le_bytes());
        out
    }
}

/// gzip of `head`, then `zeros` zero bytes (a multiple of 1 MiB), then the tar end marker.
fn gzip_zeros(head: &[u8], zeros: u64) -> Vec<u8> {
    GzipBuilder::new()
        .bytes(head)
        .zeros(zeros)
        .finish(&[0u8; 1024])
}

// ---- where an escape would land ----

/// A directory the hostile entries aim at; it must still be empty afterwards.
struct Target {
    dir: tempfile::TempDir,
}

impl Target {
    fn new() -> Target {
        let dir = tempfile::Builder::new()
            .prefix("hostile-target-")
            .tempdir()
            .expect("create target dir");
        Target { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().canonicalize().expect("canonical target")
    }

    /// The absolute path of `file` in the target, as bytes.
    fn absolute(&self, file: &str) -> Vec<u8> {
        self.path()
            .join(file)
            .to_str()
            .expect("UTF-8 temp dir")
            .as_bytes()
            .to_vec()
    }

    /// `../` enough times to reach `/` from any extraction directory, then the target: the same place
    /// whichever directory the entry is resolved from.
    fn climbing(&self, file: &str) -> Vec<u8> {
        let abs = self.absolute(file);
        let mut out = b"../".repeat(16);
        out.extend_from_slice(&abs[1..]);
        out
    }

    fn assert_untouched(&self) {
        let left: Vec<_> = fs::read_dir(self.dir.path())
            .expect("read target dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert!(
            left.is_empty(),
            "the hostile gem wrote outside the gem's directory: {left:?}"
        );
    }
}

/// A file name no test creates: what a relative escape (`../name`) would write, wherever it resolved.
fn marker(case: &str) -> String {
    format!("hostile-marker-{}-{case}", std::process::id())
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>, name: &str) {
    let Ok(read) = fs::read_dir(dir) else { return };
    for entry in read.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().contains(name) {
            found.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&path, found, name);
        }
    }
}

// ---- running a case ----

struct Hostile {
    name: &'static str,
    /// The crafted `.gem`.
    bytes: Vec<u8>,
    /// What the error must say besides the gem's name: the offending entry and the reason.
    expect: Vec<String>,
    /// The directory absolute and climbing entries aim at.
    target: Option<Target>,
    /// File names relative escapes would create.
    markers: Vec<String>,
    /// Run under an address-space limit (gzip bombs): expanding in memory would abort.
    bomb: bool,
}

impl Hostile {
    fn new(name: &'static str, bytes: Vec<u8>, expect: &[&str]) -> Hostile {
        Hostile {
            name,
            bytes,
            expect: expect.iter().map(|s| (*s).to_owned()).collect(),
            target: None,
            markers: Vec::new(),
            bomb: false,
        }
    }

    fn target(mut self, target: Target) -> Hostile {
        self.target = Some(target);
        self
    }

    fn marker(mut self, marker: String) -> Hostile {
        self.markers.push(marker);
        self
    }

    fn bomb(mut self) -> Hostile {
        self.bomb = true;
        self
    }
}

fn v1(launcher: &Launcher) -> PathBuf {
    launcher.cache_path().join("v2")
}

fn entries(dir: &Path) -> Vec<String> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = read
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every `v2/store/<abi>/<unit>` entry name.
fn store_units(launcher: &Launcher) -> Vec<String> {
    let store = v1(launcher).join("store");
    entries(&store)
        .into_iter()
        .flat_map(|abi| entries(&store.join(abi)))
        .collect()
}

/// Runs the launcher as `launcher` would, under `ulimit -v` when `limit_kib` is given.
fn run_launcher(launcher: &Launcher, limit_kib: Option<u64>) -> Output {
    let Some(kib) = limit_kib else {
        return launcher.run();
    };
    let base = launcher.command();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.env_clear()
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(base.get_program())
        .args(base.get_args());
    if let Some(dir) = base.get_current_dir() {
        cmd.current_dir(dir);
    }
    for (key, value) in base.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    support::spawn(cmd).wait()
}

/// The error line the launcher printed, for reports.
fn error_line(out: &Output) -> String {
    out.stderr
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or("")
        .to_owned()
}

/// Serves `case.bytes` as fixture_dep_b-0.3.1, locked with its own SHA-256, and checks everything the
/// contract promises; then serves the genuine gem again and checks that it installs.
fn assert_refused(case: Hostile) -> Output {
    let server = Server::start(&fixtures().dir);
    server.set_fault(GEM_PATH, Fault::Body(case.bytes.clone()));
    let hostile_sha = sha256_hex(&case.bytes);
    let app = App::new(&Lock::new(server.url()).checksum_override(GEM, &hostile_sha));
    let launcher = Launcher::new(app.path());
    let install = launcher
        .clone()
        .args(["-v", "--gem", "fixture_dep_b", "install"]);

    let started = Instant::now();
    let out = run_launcher(&install, case.bomb.then_some(BOMB_ADDRESS_SPACE_KIB));
    let took = started.elapsed();
    if case.bomb {
        // Refused from headers or after a bounded stream, never after expanding gigabytes.
        assert!(
            took < BOMB_TIME_LIMIT,
            "[{}] took {took:?} to refuse a bomb:\n{out}",
            case.name
        );
    }
    eprintln!(
        "[{}] {:.2}s exit {:?}: {}",
        case.name,
        took.as_secs_f64(),
        out.code(),
        error_line(&out)
    );

    // Nothing where the entries aimed (checked first: an escape is the worst failure).
    if let Some(target) = &case.target {
        target.assert_untouched();
    }
    for marker in &case.markers {
        let mut found = Vec::new();
        walk(launcher.cache_path(), &mut found, marker);
        let tmp = std::env::temp_dir();
        for base in [
            launcher.cache_path(),
            app.path(),
            launcher.home_path(),
            tmp.as_path(),
        ] {
            for dir in base.ancestors() {
                if dir.join(marker).exists() {
                    found.push(dir.join(marker));
                }
            }
        }
        assert!(
            found.is_empty(),
            "[{}] an entry escaped to {found:?}",
            case.name
        );
    }

    // Refused, clearly, by the launcher's own inspection.
    assert_eq!(out.code(), Some(1), "[{}] {out}", case.name);
    assert_eq!(out.stdout, "", "[{}] {out}", case.name);
    assert!(
        server.count(GEM_PATH) >= 1,
        "[{}] the hostile gem was never requested",
        case.name
    );
    let error = error_line(&out);
    assert!(
        error.contains(&format!("refusing to install {GEM}")),
        "[{}] the error does not name the gem:\n{out}",
        case.name
    );
    for needle in &case.expect {
        assert!(
            error.contains(needle.as_str()),
            "[{}] the error lacks {needle:?}:\n{out}",
            case.name
        );
    }
    assert!(
        !out.stderr.lines().any(|l| l.starts_with("Installing")),
        "[{}] RubyGems was reached (an Installing line precedes the refusal):\n{out}",
        case.name
    );

    // Nothing of it in the cache, and no temporary files left.
    let v1 = v1(&launcher);
    assert!(
        !v1.join("downloads")
            .join(format!("{hostile_sha}.gem"))
            .exists(),
        "[{}] the hostile gem was cached: {:?}",
        case.name,
        entries(&v1.join("downloads"))
    );
    let units = store_units(&launcher);
    assert!(
        !units.iter().any(|u| u.starts_with("fixture_dep_b")),
        "[{}] the hostile gem reached the store: {units:?}",
        case.name
    );
    assert_eq!(
        entries(&v1.join("envs")),
        Vec::<String>::new(),
        "[{}]",
        case.name
    );
    assert_eq!(
        entries(&v1.join("tmp")),
        Vec::<String>::new(),
        "[{}]",
        case.name
    );
    assert_eq!(
        entries(&v1.join("logs")),
        Vec::<String>::new(),
        "[{}]",
        case.name
    );

    // The genuine release, locked with its real checksum, still installs into the same cache.
    server.clear_fault(GEM_PATH);
    app.write_lockfile(&Lock::new(server.url()).render());
    let again = launcher
        .clone()
        .args(["--gem", "fixture_dep_b", "install"])
        .run();
    assert_eq!(
        again.code(),
        Some(0),
        "[{}] genuine gem: {again}",
        case.name
    );
    let units = store_units(&launcher);
    assert!(
        units.iter().any(|u| u.starts_with(GEM)),
        "[{}] the genuine gem was not installed: {units:?}",
        case.name
    );
    assert!(
        v1.join("downloads")
            .join(format!("{}.gem", sha256_hex(&genuine().bytes)))
            .is_file(),
        "[{}]",
        case.name
    );
    assert_eq!(
        entries(&v1.join("tmp")),
        Vec::<String>::new(),
        "[{}]",
        case.name
    );
    out
}

// ---- data.tar.gz: paths ----

#[test]
fn dot_dot_climbing_to_an_absolute_target() {
    let target = Target::new();
    let name = target.climbing("pwned");
    let bytes = gem_with_entries(|t| {
        t.file(&name, b"pwned\n");
    });
    assert_refused(
        Hostile::new("dot-dot climbing", bytes, &["escapes the gem's directory"]).target(target),
    );
}

#[test]
fn dot_dot_one_level_up() {
    let m = marker("dotdot1");
    let name = format!("../{m}");
    let bytes = gem_with_entries(|t| {
        t.file(name.as_bytes(), b"pwned\n");
    });
    assert_refused(
        Hostile::new(
            "dot-dot ../",
            bytes,
            &[&format!("`{name}`"), "escapes the gem's directory"],
        )
        .marker(m),
    );
}

#[test]
fn dot_dot_inside_a_path() {
    let m = marker("dotdot2");
    let name = format!("lib/../../../{m}");
    let bytes = gem_with_entries(|t| {
        t.file(name.as_bytes(), b"pwned\n");
    });
    assert_refused(
        Hostile::new(
            "dot-dot lib/../../../",
            bytes,
            &[&format!("`{name}`"), "escapes the gem's directory"],
        )
        .marker(m),
    );
}

#[test]
fn dot_dot_directory_entry() {
    let m = marker("dotdotdir");
    let name = format!("../../{m}/");
    let bytes = gem_with_entries(|t| {
        t.dir(name.as_bytes());
    });
    assert_refused(
        Hostile::new("dot-dot directory", bytes, &["escapes the gem's directory"]).marker(m),
    );
}

#[test]
fn absolute_path() {
    let target = Target::new();
    let name = target.absolute("pwned");
    let shown = String::from_utf8(name.clone()).unwrap();
    let bytes = gem_with_entries(|t| {
        t.file(&name, b"pwned\n");
    });
    assert_refused(
        Hostile::new(
            "absolute path",
            bytes,
            &[&format!("`{shown}`"), "is an absolute path"],
        )
        .target(target),
    );
}

#[test]
fn absolute_directory_entry() {
    let target = Target::new();
    let name = target.absolute("sub/");
    let bytes = gem_with_entries(|t| {
        t.dir(&name);
    });
    assert_refused(
        Hostile::new("absolute directory", bytes, &["is an absolute path"]).target(target),
    );
}

// ---- data.tar.gz: links ----

#[test]
fn symlink_to_an_absolute_directory_then_a_file_through_it() {
    let target = Target::new();
    let link = target.absolute("");
    let shown = String::from_utf8(link.clone()).unwrap();
    let bytes = gem_with_entries(|t| {
        t.symlink(b"lib/evil", &link)
            .file(b"lib/evil/pwned", b"pwned\n");
    });
    assert_refused(
        Hostile::new(
            "symlink absolute",
            bytes,
            &[
                &format!("symlink `lib/evil` points to `{shown}`"),
                "outside the gem's directory",
            ],
        )
        .target(target),
    );
}

#[test]
fn symlink_climbing_out_then_a_file_through_it() {
    let target = Target::new();
    let link = target.climbing("");
    let bytes = gem_with_entries(|t| {
        t.symlink(b"lib/evil", &link)
            .file(b"lib/evil/pwned", b"pwned\n");
    });
    assert_refused(
        Hostile::new(
            "symlink ../ climbing",
            bytes,
            &["symlink `lib/evil`", "outside the gem's directory"],
        )
        .target(target),
    );
}

#[test]
fn symlink_one_level_out() {
    let bytes = gem_with_entries(|t| {
        t.symlink(b"lib/up", b"../..");
    });
    assert_refused(Hostile::new(
        "symlink ../..",
        bytes,
        &[
            "symlink `lib/up` points to `../..`",
            "outside the gem's directory",
        ],
    ));
}

/// `lib/a/b/…` (`depth` letters) and a target climbing back to `lib`: the link *is* `lib`, but looks `depth`
/// levels deeper.
fn deep_link(depth: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let letters: Vec<String> = (0..depth)
        .map(|i| ((b'a' + i as u8) as char).to_string())
        .collect();
    let down = letters.join("/").into_bytes();
    let mut link = b"lib/".to_vec();
    link.extend_from_slice(&down);
    let target = b"../".repeat(depth - 1);
    (link, target[..target.len() - 1].to_vec(), down)
}

/// `ups` times `../`, then the target directory: from a directory at most `ups` deep, the target.
fn climb(ups: usize, target: &Target) -> Vec<u8> {
    let mut out = b"../".repeat(ups);
    out.extend_from_slice(&target.absolute("")[1..]);
    out
}

/// How deep the fake links look; more than the depth of any extraction directory under the temp dir
/// (`/tmp/launcher-cache-*/cache/v2/tmp/<area>/unit.0/gems/fixture_dep_b-0.3.1/lib` is 10).
const CHAIN_DEPTH: usize = 14;

/// Each link, taken alone, stays inside: `L` points from deep down to `lib`, and `L/x` climbs as many levels
/// as `L` looks deep. But `L` *is* `lib`, so `L/x` is `lib/x` and its target climbs out of the gem, and the
/// file written "under" `L/x` lands in the target directory. A lexical check of each link misses this.
fn symlink_chain(t: &mut RawTar, target: &Target) {
    let (link, link_target, _) = deep_link(CHAIN_DEPTH);
    t.symlink(&link, &link_target);
    let mut x = link.clone();
    x.extend_from_slice(b"/x");
    let out = climb(CHAIN_DEPTH, target);
    assert!(out.len() <= 100, "temp dir too deep for a ustar link");
    t.symlink(&x, &out);
    let mut file = x.clone();
    file.extend_from_slice(b"/pwned");
    t.file(&file, b"pwned\n");
}

#[test]
fn symlink_chain_through_an_earlier_symlink() {
    let target = Target::new();
    let bytes = gem_with_entries(|t| symlink_chain(t, &target));
    assert_refused(
        Hostile::new(
            "symlink chain",
            bytes,
            &["/x` lies beneath the symlink `lib/a/b/c/d/e/f/g/h/i/j/k/l/m/n`"],
        )
        .target(target),
    );
}

/// `lib/y` points "down" through the link `L` (which is really `lib`) and back up as many levels as `L` looks
/// deep: lexically `lib/…`, really out of the gem.
#[test]
fn symlink_target_through_an_earlier_symlink() {
    let target = Target::new();
    let depth = 12;
    let (link, link_target, down) = deep_link(depth);
    let mut through = down;
    through.push(b'/');
    through.extend_from_slice(&climb(depth, &target));
    assert!(through.len() <= 100, "temp dir too deep for a ustar link");
    let bytes = gem_with_entries(|t| {
        t.symlink(&link, &link_target).symlink(b"lib/y", &through);
    });
    assert_refused(
        Hostile::new(
            "symlink target through symlink",
            bytes,
            &[
                "symlink `lib/y` points to",
                "through the symlink `lib/a/b/c/d/e/f/g/h/i/j/k/l`",
            ],
        )
        .target(target),
    );
}

#[test]
fn hard_link_to_a_file_outside() {
    let target = Target::new();
    let victim = target.absolute("victim");
    fs::write(target.path().join("victim"), b"precious\n").unwrap();
    let bytes = gem_with_entries(|t| {
        let h = header(EntryType::Link, b"lib/hl", 0, Some(&victim));
        t.push(&h, &[]);
    });
    let case = Hostile::new("hard link absolute", bytes, &["`lib/hl` is a hard link"]);
    assert_refused(case);
    let meta = fs::metadata(target.path().join("victim")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.nlink(), 1, "the victim gained a hard link");
    assert_eq!(
        fs::read(target.path().join("victim")).unwrap(),
        b"precious\n"
    );
}

#[test]
fn hard_link_climbing_out() {
    let target = Target::new();
    let link = target.climbing("victim");
    let bytes = gem_with_entries(|t| {
        let h = header(EntryType::Link, b"lib/hl", 0, Some(&link));
        t.push(&h, &[]);
    });
    assert_refused(
        Hostile::new("hard link ../", bytes, &["`lib/hl` is a hard link"]).target(target),
    );
}

// ---- data.tar.gz: special files ----

#[test]
fn character_device() {
    let bytes = gem_with_entries(|t| {
        t.push(&device(EntryType::Char, b"lib/null", 1, 3), &[]);
    });
    assert_refused(Hostile::new(
        "char device",
        bytes,
        &["`lib/null` is a character device entry"],
    ));
}

#[test]
fn block_device() {
    let bytes = gem_with_entries(|t| {
        t.push(&device(EntryType::Block, b"lib/sda", 8, 0), &[]);
    });
    assert_refused(Hostile::new(
        "block device",
        bytes,
        &["`lib/sda` is a block device entry"],
    ));
}

#[test]
fn fifo() {
    let bytes = gem_with_entries(|t| {
        t.push(&header(EntryType::Fifo, b"lib/fifo", 0, None), &[]);
    });
    assert_refused(Hostile::new("FIFO", bytes, &["`lib/fifo` is a FIFO entry"]));
}

/// RubyGems applies an entry's mode as is: a setuid file would land in the shared cache as `rwsr-xr-x`, owned by
/// whoever ran the launcher (root, on many CI runners).
#[test]
fn setuid_and_setgid_bits() {
    for (mode, shown) in [(0o4755, "4755"), (0o2755, "2755")] {
        let bytes = gem_with_entries(|t| {
            let mut h = header(EntryType::Regular, b"lib/suid.rb", 4, None);
            h.set_mode(mode);
            h.set_cksum();
            t.push(&h, b"x=1\n");
        });
        assert_refused(Hostile::new(
            "setuid/setgid mode",
            bytes,
            &[&format!("`lib/suid.rb` has mode {shown}")],
        ));
    }
}

// ---- data.tar.gz: duplicates ----

#[test]
fn duplicate_file() {
    let bytes = gem_with_entries(|t| {
        t.file(b"lib/fixture_dep_b.rb", b"raise 'replaced'\n");
    });
    assert_refused(Hostile::new(
        "duplicate entry",
        bytes,
        &["`lib/fixture_dep_b.rb` appears twice"],
    ));
}

#[test]
fn duplicate_file_spelled_with_dot_slash() {
    let bytes = gem_with_entries(|t| {
        t.file(b"./lib/fixture_dep_b.rb", b"raise 'replaced'\n");
    });
    assert_refused(Hostile::new(
        "duplicate ./",
        bytes,
        &["`./lib/fixture_dep_b.rb` appears twice"],
    ));
}

#[test]
fn duplicate_file_spelled_with_inner_dot_and_double_slash() {
    let bytes = gem_with_entries(|t| {
        t.file(b"lib/./fixture_dep_b.rb", b"raise 'replaced'\n");
    });
    assert_refused(Hostile::new(
        "duplicate lib/./",
        bytes,
        &["`lib/./fixture_dep_b.rb` appears twice"],
    ));
    let bytes = gem_with_entries(|t| {
        t.file(b"lib//fixture_dep_b.rb", b"raise 'replaced'\n");
    });
    assert_refused(Hostile::new(
        "duplicate lib//",
        bytes,
        &["`lib//fixture_dep_b.rb` appears twice"],
    ));
}

#[test]
fn file_replaced_by_a_symlink() {
    let bytes = gem_with_entries(|t| {
        t.symlink(b"lib/fixture_dep_b.rb", b"other.rb");
    });
    assert_refused(Hostile::new(
        "duplicate as symlink",
        bytes,
        &["`lib/fixture_dep_b.rb` appears twice"],
    ));
}

// ---- data.tar.gz: sizes ----

/// One entry declaring 3 GiB of zeros: the gzip stream is a few MB. Refused from the header, before
/// anything is expanded, and in bounded memory.
#[test]
fn gzip_bomb_one_huge_entry() {
    let size = 3 * GIB;
    let head = header(EntryType::Regular, b"lib/zeros.bin", size, None);
    let mut prefix = RawTar::genuine_data();
    prefix.push(&head, &[]);
    let data = gzip_zeros(&prefix.bytes, size);
    assert!(
        data.len() < 8 * MIB as usize,
        "bomb is {} bytes",
        data.len()
    );
    let bytes = consistent_gem(&genuine().metadata_gz, &data);
    assert_refused(
        Hostile::new(
            "gzip bomb 3 GiB entry",
            bytes,
            &["data.tar.gz expands to more than", "compression bomb"],
        )
        .bomb(),
    );
}

/// Honest headers, many entries: the total is only known by expanding, so the limit must stop the stream.
#[test]
fn gzip_bomb_many_honest_entries() {
    let entry = 64 * MIB;
    let mut gz = GzipBuilder::new();
    gz.bytes(&RawTar::genuine_data().bytes);
    for i in 0..16 {
        let name = format!("lib/zeros{i}.bin");
        gz.bytes(header(EntryType::Regular, name.as_bytes(), entry, None).as_bytes())
            .zeros(entry);
    }
    let out = gz.finish(&[0u8; 1024]);
    let bytes = consistent_gem(&genuine().metadata_gz, &out);
    assert_refused(
        Hostile::new(
            "gzip bomb 16 x 64 MiB",
            bytes,
            &["data.tar.gz expands to more than", "compression bomb"],
        )
        .bomb(),
    );
}

/// A GNU long-name member is not a file: an extractor holds its body in memory as the next entry's name.
/// Declaring 3 GiB of name must be refused from the header, not read.
#[test]
fn gzip_bomb_in_a_long_name_header() {
    let size = 3 * GIB;
    let mut prefix = RawTar::genuine_data();
    let h = gnu_header(EntryType::GNULongName, b"././@LongLink", size);
    prefix.push(&h, &[]);
    let data = gzip_zeros(&prefix.bytes, size);
    let bytes = consistent_gem(&genuine().metadata_gz, &data);
    assert_refused(
        Hostile::new(
            "gzip bomb in a GNU long name",
            bytes,
            &["data.tar.gz has a GNU long-name header of 3221225472 bytes"],
        )
        .bomb(),
    );
}

/// The same with a PAX extended header.
#[test]
fn gzip_bomb_in_a_pax_header() {
    let size = 3 * GIB;
    let mut prefix = RawTar::genuine_data();
    let h = header(EntryType::XHeader, b"PaxHeaders.0/x", size, None);
    prefix.push(&h, &[]);
    let data = gzip_zeros(&prefix.bytes, size);
    let bytes = consistent_gem(&genuine().metadata_gz, &data);
    assert_refused(
        Hostile::new(
            "gzip bomb in a PAX header",
            bytes,
            &["data.tar.gz has a PAX extended header of 3221225472 bytes"],
        )
        .bomb(),
    );
}

// ---- data.tar.gz: names no file system should get ----

#[test]
fn over_long_path_component() {
    let long = format!("lib/{}.rb", "a".repeat(256));
    let bytes = gem_with_entries(|t| {
        let real = gnu_header(EntryType::Regular, long.as_bytes(), 3);
        t.gnu_long_name(long.as_bytes(), &real, b"x=1");
    });
    assert_refused(Hostile::new(
        "component > 255 bytes (GNU long name)",
        bytes,
        &["has a path component longer than 255 bytes"],
    ));
}

#[test]
fn over_long_path_component_in_pax() {
    let long = format!("lib/{}.rb", "b".repeat(300));
    let bytes = gem_with_entries(|t| {
        t.pax(&[("path", long.as_bytes())])
            .file(b"lib/short.rb", b"x=1");
    });
    assert_refused(Hostile::new(
        "component > 255 bytes (PAX path)",
        bytes,
        &["has a path component longer than 255 bytes"],
    ));
}

#[test]
fn over_long_path() {
    let long = format!("lib/{}x.rb", "d/".repeat(2100));
    let bytes = gem_with_entries(|t| {
        let real = gnu_header(EntryType::Regular, long.as_bytes(), 3);
        t.gnu_long_name(long.as_bytes(), &real, b"x=1");
    });
    assert_refused(Hostile::new(
        "path > 4096 bytes",
        bytes,
        &[&format!("file name of {} bytes", long.len())],
    ));
}

#[test]
fn invalid_utf8_name() {
    let bytes = gem_with_entries(|t| {
        t.file(b"lib/\xff\xfe.rb", b"x=1");
    });
    assert_refused(Hostile::new(
        "invalid UTF-8",
        bytes,
        &["is not valid UTF-8"],
    ));
}

#[test]
fn control_characters_in_a_name() {
    let bytes = gem_with_entries(|t| {
        t.file(b"lib/evil\x1b]0;pwned\x07.rb", b"x=1");
    });
    assert_refused(Hostile::new(
        "control characters (escape sequence)",
        bytes,
        &[
            r#""lib/evil\u{1b}]0;pwned\u{7}.rb""#,
            "characters no file system should get",
        ],
    ));
    let bytes = gem_with_entries(|t| {
        t.file(b"lib/new\nline.rb", b"x=1");
    });
    assert_refused(Hostile::new(
        "control characters (newline)",
        bytes,
        &[
            r#""lib/new\nline.rb""#,
            "characters no file system should get",
        ],
    ));
}

#[test]
fn backslashes_in_a_name() {
    let m = marker("backslash");
    let name = format!("..\\..\\{m}");
    let bytes = gem_with_entries(|t| {
        t.file(name.as_bytes(), b"x=1");
    });
    assert_refused(
        Hostile::new(
            "backslashes",
            bytes,
            &["characters no file system should get"],
        )
        .marker(m),
    );
}

// ---- data.tar.gz: what the gate reads must be what RubyGems reads ----

/// A PAX `size` record makes PAX readers take the next 1536 bytes as `lib/cover.rb`'s body; RubyGems ignores
/// PAX and reads the header's size (0), so to it those bytes are the symlink chain. A gate that honours PAX
/// inspects a different archive than the one RubyGems unpacks.
#[test]
fn pax_size_smuggles_entries_past_the_gate() {
    let target = Target::new();
    let mut smuggled = RawTar::default();
    symlink_chain(&mut smuggled, &target);
    let body = smuggled.bytes;
    let bytes = gem_with_entries(|t| {
        t.pax(&[("size", body.len().to_string().as_bytes())]);
        t.push(&header(EntryType::Regular, b"lib/cover.rb", 0, None), &[]);
        t.bytes.extend_from_slice(&body);
    });
    assert_refused(
        Hostile::new(
            "PAX size smuggling",
            bytes,
            &[&format!(
                "`lib/cover.rb` has a PAX size ({}) other than its header's (0)",
                body.len()
            )],
        )
        .target(target),
    );
}

/// A PAX `path` record gives PAX readers a harmless name; RubyGems reads the header's own name.
#[test]
fn pax_path_hides_the_real_name() {
    let target = Target::new();
    let name = target.climbing("pwned");
    let bytes = gem_with_entries(|t| {
        t.pax(&[("path", b"lib/harmless.rb")])
            .file(&name, b"pwned\n");
    });
    assert_refused(
        Hostile::new(
            "PAX path hides ../",
            bytes,
            &["escapes the gem's directory"],
        )
        .target(target),
    );
}

/// A PAX `linkpath` record gives PAX readers a harmless link target; RubyGems reads the header's own.
#[test]
fn pax_linkpath_hides_the_real_target() {
    let target = Target::new();
    let link = target.absolute("");
    let bytes = gem_with_entries(|t| {
        t.pax(&[("linkpath", b"fixture_dep_b.rb")])
            .symlink(b"lib/evil", &link)
            .file(b"lib/evil/pwned", b"pwned\n");
    });
    assert_refused(
        Hostile::new(
            "PAX linkpath hides /abs",
            bytes,
            &["symlink `lib/evil`", "outside the gem's directory"],
        )
        .target(target),
    );
}

/// A GNU long name gives GNU readers a harmless name; RubyGems reads the header's own.
#[test]
fn gnu_long_name_hides_the_real_name() {
    let target = Target::new();
    let name = target.climbing("pwned");
    let bytes = gem_with_entries(|t| {
        let real = gnu_header(EntryType::Regular, &name, 6);
        t.gnu_long_name(b"lib/harmless.rb", &real, b"pwned\n");
    });
    assert_refused(
        Hostile::new(
            "GNU long name hides ../",
            bytes,
            &["escapes the gem's directory"],
        )
        .target(target),
    );
}

/// tar readers ignore the prefix field of a GNU-format header; RubyGems prepends it to the name regardless.
#[test]
fn prefix_field_of_a_gnu_header() {
    let target = Target::new();
    let prefix = target.climbing("");
    let mut h = gnu_header(EntryType::Regular, b"pwned", 6);
    h.as_mut_bytes()[345..345 + prefix.len() - 1].copy_from_slice(&prefix[..prefix.len() - 1]);
    h.set_cksum();
    let bytes = gem_with_entries(|t| {
        t.push(&h, b"pwned\n");
    });
    assert_refused(
        Hostile::new(
            "GNU header prefix field",
            bytes,
            &["escapes the gem's directory"],
        )
        .target(target),
    );
}

// ---- the outer archive ----

#[test]
fn checksums_yaml_does_not_match_data() {
    let g = genuine();
    let mut data = RawTar::genuine_data();
    data.file(b"lib/extra.rb", b"puts 'added after the build'\n");
    let data = gzip(&data.finish());
    let bytes = outer(&[
        ("metadata.gz", &g.metadata_gz),
        ("data.tar.gz", &data),
        ("checksums.yaml.gz", &g.checksums_gz),
    ]);
    assert_refused(Hostile::new(
        "checksums.yaml vs data.tar.gz",
        bytes,
        &[
            "data.tar.gz's SHA256 does not match",
            "altered after it was built",
        ],
    ));
}

#[test]
fn checksums_yaml_does_not_match_metadata() {
    let g = genuine();
    let metadata = gzip(
        genuine_metadata()
            .replace("summary:", "summary: altered")
            .as_bytes(),
    );
    let bytes = outer(&[
        ("metadata.gz", &metadata),
        ("data.tar.gz", &g.data_tar_gz),
        ("checksums.yaml.gz", &g.checksums_gz),
    ]);
    assert_refused(Hostile::new(
        "checksums.yaml vs metadata.gz",
        bytes,
        &[
            "metadata.gz's SHA256 does not match",
            "altered after it was built",
        ],
    ));
}

#[test]
fn checksums_yaml_sha512_does_not_match() {
    let g = genuine();
    let yaml = String::from_utf8(gunzip(&g.checksums_gz)).unwrap();
    let sha512 = hex::encode(Sha512::digest(&g.data_tar_gz));
    let yaml = yaml.replace(&sha512, &"0".repeat(128));
    let bytes = outer(&[
        ("metadata.gz", &g.metadata_gz),
        ("data.tar.gz", &g.data_tar_gz),
        ("checksums.yaml.gz", &gzip(yaml.as_bytes())),
    ]);
    assert_refused(Hostile::new(
        "checksums.yaml SHA512",
        bytes,
        &["data.tar.gz's SHA512 does not match"],
    ));
}

#[test]
fn metadata_names_another_gem() {
    let yaml = genuine_metadata().replace("name: fixture_dep_b\n", "name: fixture_dep_a\n");
    assert_refused(Hostile::new(
        "metadata: other name",
        gem_with_metadata(&yaml),
        &[
            "its metadata says it is `fixture_dep_a 0.3.1 ruby`, but the lockfile locks `fixture_dep_b 0.3.1 ruby`",
        ],
    ));
}

/// The genuine, untouched 0.4.0 release served for 0.3.1 (and locked by its digest).
#[test]
fn metadata_names_another_version() {
    let fx = fixtures();
    let bytes = fs::read(fx.gem_path(fx.gem("fixture_dep_b", "0.4.0", "ruby"))).unwrap();
    assert_refused(Hostile::new(
        "metadata: other version (genuine 0.4.0)",
        bytes,
        &["its metadata says it is `fixture_dep_b 0.4.0 ruby`"],
    ));
}

#[test]
fn metadata_names_another_platform() {
    let yaml = genuine_metadata().replace("platform: ruby\n", "platform: x86_64-linux\n");
    assert_refused(Hostile::new(
        "metadata: other platform",
        gem_with_metadata(&yaml),
        &["its metadata says it is `fixture_dep_b 0.3.1 x86_64-linux`"],
    ));
}

/// YAML takes the last of duplicate keys; a gate that reads the first sees another gem than RubyGems does.
#[test]
fn metadata_repeats_its_name() {
    let yaml = genuine_metadata().replace(
        "name: fixture_dep_b\n",
        "name: fixture_dep_b\nname: kamal\n",
    );
    assert_refused(Hostile::new(
        "metadata: name twice",
        gem_with_metadata(&yaml),
        &["metadata.gz gives its name twice"],
    ));
}

#[test]
fn metadata_quoted_key() {
    let yaml = format!("{}\"name\": kamal\n", genuine_metadata());
    assert_refused(Hostile::new(
        "metadata: quoted name key",
        gem_with_metadata(&yaml),
        &["metadata.gz is not a gemspec as RubyGems writes it (at \"\\\"name\\\": kamal\")"],
    ));
}

#[test]
fn metadata_repeats_its_version() {
    let yaml = genuine_metadata().replace(
        "  version: 0.3.1\n",
        "  version: 0.3.1\n  \"version\": 9.9.9\n",
    );
    assert_refused(Hostile::new(
        "metadata: version twice",
        gem_with_metadata(&yaml),
        &["metadata.gz is not a gemspec as RubyGems writes it (at \"  \\\"version\\\": 9.9.9\")"],
    ));
}

#[test]
fn metadata_complex_key_platform() {
    let yaml = genuine_metadata().replace(
        "platform: ruby\n",
        "platform: ruby\n? platform\n: x86_64-linux\n",
    );
    assert_refused(Hostile::new(
        "metadata: ? platform",
        gem_with_metadata(&yaml),
        &["metadata.gz is not a gemspec as RubyGems writes it (at \"? platform\")"],
    ));
}

#[test]
fn unexpected_outer_member() {
    let g = genuine();
    let checksums = checksums_gz(&[
        ("metadata.gz", &g.metadata_gz),
        ("data.tar.gz", &g.data_tar_gz),
    ]);
    let bytes = outer(&[
        ("metadata.gz", &g.metadata_gz),
        ("data.tar.gz", &g.data_tar_gz),
        ("checksums.yaml.gz", &checksums),
        ("install.rb", b"system('id')\n"),
    ]);
    assert_refused(Hostile::new(
        "extra outer member",
        bytes,
        &["unexpected member `install.rb`"],
    ));
}

#[test]
fn outer_member_climbing_out() {
    let g = genuine();
    let target = Target::new();
    let name = String::from_utf8(target.climbing("pwned")).unwrap();
    let bytes = outer(&[
        ("metadata.gz", &g.metadata_gz),
        ("data.tar.gz", &g.data_tar_gz),
        (&name, b"pwned\n"),
    ]);
    assert_refused(Hostile::new("outer ../ member", bytes, &["unexpected member"]).target(target));
}

/// Signature members are the three members' names plus `.sig`; any other name is unexpected.
#[test]
fn outer_sig_member_with_another_name() {
    let g = genuine();
    let target = Target::new();
    let name = String::from_utf8(target.climbing("pwned.sig")).unwrap();
    let bytes = outer(&[
        ("metadata.gz", &g.metadata_gz),
        ("data.tar.gz", &g.data_tar_gz),
        ("data.tar.gz.sig", b"not checked without a security policy"),
        (&name, b"pwned\n"),
    ]);
    assert_refused(
        Hostile::new(
            "outer ../x.sig member",
            bytes,
            &[&format!("unexpected member `{name}`")],
        )
        .target(target),
    );
}

/// Old-format `metadata` (plain YAML) is also read by RubyGems, after `metadata.gz`, and wins.
#[test]
fn outer_plain_metadata_member() {
    let g = genuine();
    let evil = genuine_metadata().replace("name: fixture_dep_b\n", "name: kamal\n");
    let bytes = outer(&[
        ("metadata.gz", &g.metadata_gz),
        ("data.tar.gz", &g.data_tar_gz),
        ("metadata", evil.as_bytes()),
    ]);
    assert_refused(Hostile::new(
        "outer plain metadata",
        bytes,
        &["unexpected member `metadata`"],
    ));
}

/// A PAX `size` record on the outer `data.tar.gz` hides a plain `metadata` member inside what PAX readers
/// take as data.tar.gz's body; RubyGems reads the header's size and then that member.
#[test]
fn outer_pax_size_smuggles_metadata() {
    let g = genuine();
    let evil = genuine_metadata().replace("name: fixture_dep_b\n", "name: kamal\n");
    let mut hidden = RawTar::default();
    let mut mh = header(EntryType::Regular, b"metadata", evil.len() as u64, None);
    mh.set_mode(0o444);
    mh.set_cksum();
    hidden.push(&mh, evil.as_bytes());
    let mut padded = g.data_tar_gz.clone();
    padded.extend(std::iter::repeat_n(0u8, (512 - padded.len() % 512) % 512));
    let pax_size = padded.len() + hidden.bytes.len();

    let mut tar = RawTar::default();
    let mut h = header(
        EntryType::Regular,
        b"metadata.gz",
        g.metadata_gz.len() as u64,
        None,
    );
    h.set_mode(0o444);
    h.set_cksum();
    tar.push(&h, &g.metadata_gz);
    tar.pax(&[("size", pax_size.to_string().as_bytes())]);
    let mut h = header(
        EntryType::Regular,
        b"data.tar.gz",
        g.data_tar_gz.len() as u64,
        None,
    );
    h.set_mode(0o444);
    h.set_cksum();
    tar.push(&h, &g.data_tar_gz);
    tar.bytes.extend_from_slice(&hidden.bytes);
    assert_refused(Hostile::new(
        "outer PAX size smuggles metadata",
        tar.finish(),
        &["the gem's member `PaxHeaders.0/entry` is not a regular file"],
    ));
}

#[test]
fn missing_data_tar_gz() {
    let g = genuine();
    let checksums = checksums_gz(&[("metadata.gz", &g.metadata_gz)]);
    let bytes = outer(&[
        ("metadata.gz", &g.metadata_gz),
        ("checksums.yaml.gz", &checksums),
    ]);
    assert_refused(Hostile::new(
        "missing data.tar.gz",
        bytes,
        &["the gem has no data.tar.gz"],
    ));
}

#[test]
fn missing_metadata_gz() {
    let g = genuine();
    let checksums = checksums_gz(&[("data.tar.gz", &g.data_tar_gz)]);
    let bytes = outer(&[
        ("data.tar.gz", &g.data_tar_gz),
        ("checksums.yaml.gz", &checksums),
    ]);
    assert_refused(Hostile::new(
        "missing metadata.gz",
        bytes,
        &["the gem has no metadata.gz"],
    ));
}

#[test]
fn duplicate_outer_member() {
    let g = genuine();
    let mut other = RawTar::genuine_data();
    other.file(b"lib/second.rb", b"x=2\n");
    let other = gzip(&other.finish());
    let bytes = outer(&[
        ("metadata.gz", &g.metadata_gz),
        ("data.tar.gz", &g.data_tar_gz),
        ("data.tar.gz", &other),
    ]);
    assert_refused(Hostile::new(
        "duplicate outer data.tar.gz",
        bytes,
        &["the gem contains `data.tar.gz` twice"],
    ));
}

#[test]
fn outer_member_is_a_symlink() {
    let g = genuine();
    let mut tar = RawTar::default();
    let mut h = header(
        EntryType::Regular,
        b"metadata.gz",
        g.metadata_gz.len() as u64,
        None,
    );
    h.set_mode(0o444);
    h.set_cksum();
    tar.push(&h, &g.metadata_gz);
    tar.symlink(b"data.tar.gz", b"/etc/passwd");
    assert_refused(Hostile::new(
        "outer symlink member",
        tar.finish(),
        &["the gem's member `data.tar.gz` is not a regular file"],
    ));
}

#[test]
fn not_a_tar_at_all() {
    assert_refused(Hostile::new("not a tar", gzip(b"hello"), &["not a gem"]));
}

// ---- RubyGems is never reached ----

/// With kamal's whole closure and `-v`, the refusal comes while fetching: no gem of the closure starts
/// installing, so RubyGems never sees the hostile package.
#[test]
fn refusal_comes_before_any_installing_line() {
    let target = Target::new();
    let cases = [
        gem_with_entries(|t| symlink_chain(t, &target)),
        gem_with_entries(|t| {
            t.file(&target.climbing("pwned"), b"pwned\n");
        }),
        gem_with_entries(|t| {
            t.push(&device(EntryType::Char, b"lib/null", 1, 3), &[]);
        }),
    ];
    for bytes in cases {
        let server = Server::start(&fixtures().dir);
        server.set_fault(GEM_PATH, Fault::Body(bytes.clone()));
        let app = App::new(&Lock::new(server.url()).checksum_override(GEM, &sha256_hex(&bytes)));
        let launcher = Launcher::new(app.path());
        let out = launcher.clone().args(["-v", "exec", "--", "version"]).run();
        assert_eq!(out.code(), Some(1), "{out}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        let fetching = lines
            .iter()
            .position(|l| *l == format!("Fetching {GEM}"))
            .unwrap_or_else(|| panic!("no Fetching line:\n{out}"));
        let refused = lines
            .iter()
            .position(|l| l.contains(&format!("refusing to install {GEM}")))
            .unwrap_or_else(|| panic!("no refusal:\n{out}"));
        assert!(fetching < refused, "{out}");
        assert!(
            !lines.iter().any(|l| l.starts_with("Installing")),
            "an Installing line appeared:\n{out}"
        );
        assert_eq!(
            entries(&v1(&launcher).join("store")),
            Vec::<String>::new(),
            "{out}"
        );
        assert_eq!(
            entries(&v1(&launcher).join("logs")),
            Vec::<String>::new(),
            "{out}"
        );
        assert_eq!(
            entries(&v1(&launcher).join("tmp")),
            Vec::<String>::new(),
            "{out}"
        );
        target.assert_untouched();
    }
}
