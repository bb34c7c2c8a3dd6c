//! Hostile gems: a release that was locked (its SHA-256 is in the lockfile, so verification passes) but whose
//! package is malformed or malicious. Every `.gem` here is crafted at test time from the genuine
//! `fixture_dep_b-0.3.1.gem`, header by header, so that it holds exactly the bytes an attacker would send, with
//! a consistent `checksums.yaml.gz` so that the refusal is due to the hostile part itself.
//!
//! The cases are one table, `hostile_gems!` below the builders: a row is a test of its own (so the rows run in
//! parallel and a failure names its row) and says only how its gem is built and what the error must say. For
//! every row, `assert_refused` checks the rest: exit 1; the error names the gem and the offending entry or
//! reason; RubyGems (the unpacking layer) is never reached; nothing appeared where the entries aimed; the cache
//! holds no download, store unit or environment of it and an empty `tmp`; and the genuine gem installs
//! afterwards.

use crate::support;

use std::cell::{Cell, OnceCell};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
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
        let bytes = fixture_gem("0.3.1");
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

/// The untouched fixture release of fixture_dep_b with this version.
fn fixture_gem(version: &str) -> Vec<u8> {
    let fx = fixtures();
    fs::read(fx.gem_path(fx.gem("fixture_dep_b", version, "ruby"))).expect("read the fixture gem")
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

/// The genuine gemspec claiming to be kamal.
fn kamal_metadata() -> String {
    genuine_metadata().replace("name: fixture_dep_b\n", "name: kamal\n")
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

    fn file(&mut self, name: impl AsRef<[u8]>, data: &[u8]) -> &mut RawTar {
        let h = header(EntryType::Regular, name.as_ref(), data.len() as u64, None);
        self.push(&h, data)
    }

    fn file_with_mode(&mut self, name: &str, data: &[u8], mode: u32) -> &mut RawTar {
        let mut h = header(EntryType::Regular, name.as_bytes(), data.len() as u64, None);
        h.set_mode(mode);
        h.set_cksum();
        self.push(&h, data)
    }

    fn dir(&mut self, name: impl AsRef<[u8]>) -> &mut RawTar {
        let h = header(EntryType::Directory, name.as_ref(), 0, None);
        self.push(&h, &[])
    }

    fn symlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut RawTar {
        let h = header(EntryType::Symlink, name.as_ref(), 0, Some(target.as_ref()));
        self.push(&h, &[])
    }

    fn hard_link(&mut self, name: &str, target: &str) -> &mut RawTar {
        let h = header(EntryType::Link, name.as_bytes(), 0, Some(target.as_bytes()));
        self.push(&h, &[])
    }

    fn device(&mut self, kind: EntryType, name: &str, major: u32, minor: u32) -> &mut RawTar {
        let mut h = header(kind, name.as_bytes(), 0, None);
        h.set_device_major(major).expect("device major");
        h.set_device_minor(minor).expect("device minor");
        h.set_cksum();
        self.push(&h, &[])
    }

    /// A GNU long-name member (`././@LongLink`, type `L`) carrying `long`, followed by `real`.
    fn gnu_long_name(&mut self, long: impl AsRef<[u8]>, real: &Header, data: &[u8]) -> &mut RawTar {
        let mut body = long.as_ref().to_vec();
        body.push(0);
        let h = gnu_header(EntryType::GNULongName, b"././@LongLink", body.len() as u64);
        self.push(&h, &body);
        self.push(real, data)
    }

    /// A regular file named by a GNU long-name member, the only way a name this long reaches a reader.
    fn long_named_file(&mut self, name: &str, data: &[u8]) -> &mut RawTar {
        let real = gnu_header(EntryType::Regular, name.as_bytes(), data.len() as u64);
        self.gnu_long_name(name, &real, data)
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

    /// A member of the outer `.gem` archive, mode 0444 like `gem build`.
    fn member(&mut self, (name, data): (&str, &[u8])) -> &mut RawTar {
        let mut h = header(EntryType::Regular, name.as_bytes(), data.len() as u64, None);
        h.set_mode(0o444);
        h.set_cksum();
        self.push(&h, data)
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

/// An outer tar of regular-file members.
fn outer(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = RawTar::default();
    for &member in members {
        tar.member(member);
    }
    tar.finish()
}

/// An outer tar of `members`, a `checksums.yaml.gz` that matches them, then `extra`.
fn checksummed(members: &[(&str, &[u8])], extra: &[(&str, &[u8])]) -> Vec<u8> {
    let checksums = checksums_gz(members);
    let mut all = members.to_vec();
    all.push(("checksums.yaml.gz", &checksums));
    all.extend_from_slice(extra);
    outer(&all)
}

/// A well-formed gem around these members, with checksums that match them.
fn consistent_gem(metadata_gz: &[u8], data_tar_gz: &[u8]) -> Vec<u8> {
    checksummed(
        &[("metadata.gz", metadata_gz), ("data.tar.gz", data_tar_gz)],
        &[],
    )
}

fn metadata_gz() -> (&'static str, &'static [u8]) {
    ("metadata.gz", &genuine().metadata_gz)
}

fn data_tar_gz() -> (&'static str, &'static [u8]) {
    ("data.tar.gz", &genuine().data_tar_gz)
}

/// gzip of the genuine data entries followed by `hostile`.
fn data_with(hostile: impl FnOnce(&mut RawTar) -> &mut RawTar) -> Vec<u8> {
    let mut data = RawTar::genuine_data();
    hostile(&mut data);
    gzip(&data.finish())
}

/// The genuine gem with the genuine data entries followed by `hostile`.
fn entries(hostile: impl FnOnce(&mut RawTar) -> &mut RawTar) -> Vec<u8> {
    consistent_gem(&genuine().metadata_gz, &data_with(hostile))
}

/// The genuine gem with this gemspec YAML.
fn gem_with_metadata(yaml: &str) -> Vec<u8> {
    consistent_gem(&gzip(yaml.as_bytes()), &genuine().data_tar_gz)
}

/// The genuine gem with `from` in its gemspec replaced by `to`.
fn metadata_replacing(from: &str, to: &str) -> Vec<u8> {
    let yaml = genuine_metadata();
    // An edit that matched nothing would test the genuine gem.
    assert!(yaml.contains(from), "the genuine gemspec lacks {from:?}");
    gem_with_metadata(&yaml.replace(from, to))
}

/// These members with the genuine gem's `checksums.yaml.gz`, which describes the genuine ones.
fn genuine_checksums_over(metadata_gz: &[u8], data_tar_gz: &[u8]) -> Vec<u8> {
    outer(&[
        ("metadata.gz", metadata_gz),
        ("data.tar.gz", data_tar_gz),
        ("checksums.yaml.gz", &genuine().checksums_gz),
    ])
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

/// The genuine gem whose data archive goes on with `head` and as many zero bytes as `head` declares (a
/// multiple of 1 MiB): gigabytes expanded, a few MB sent.
fn bomb_behind(head: Header) -> Vec<u8> {
    let size = head.entry_size().expect("declared size");
    let mut prefix = RawTar::genuine_data();
    prefix.push(&head, &[]);
    let data = GzipBuilder::new()
        .bytes(&prefix.bytes)
        .zeros(size)
        .finish(&[0u8; 1024]);
    assert!(
        data.len() < 8 * MIB as usize,
        "bomb is {} bytes",
        data.len()
    );
    consistent_gem(&genuine().metadata_gz, &data)
}

/// Sixteen entries of 64 MiB of zeros, each header honest about its size.
fn many_honest_entries() -> Vec<u8> {
    let entry = 64 * MIB;
    let mut gz = GzipBuilder::new();
    gz.bytes(&RawTar::genuine_data().bytes);
    for i in 0..16 {
        let name = format!("lib/zeros{i}.bin");
        gz.bytes(header(EntryType::Regular, name.as_bytes(), entry, None).as_bytes())
            .zeros(entry);
    }
    let out = gz.finish(&[0u8; 1024]);
    consistent_gem(&genuine().metadata_gz, &out)
}

// ---- where an escape would land ----

/// A directory the hostile entries aim at; it must still be empty afterwards, but for an untouched victim.
struct Target {
    dir: tempfile::TempDir,
    /// Whether `victim` was put there for a link to aim at.
    victim: Cell<bool>,
}

const VICTIM: &str = "victim";
const VICTIM_CONTENT: &[u8] = b"precious\n";

impl Target {
    fn new() -> Target {
        let dir = tempfile::Builder::new()
            .prefix("hostile-target-")
            .tempdir()
            .expect("create target dir");
        Target {
            dir,
            victim: Cell::new(false),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().canonicalize().expect("canonical target")
    }

    /// The absolute path of `file` in the target.
    fn absolute(&self, file: &str) -> String {
        let path = self.path().join(file);
        path.to_str().expect("UTF-8 temp dir").to_owned()
    }

    /// `../` enough times to reach `/` from any extraction directory, then the target: the same place
    /// whichever directory the entry is resolved from.
    fn climbing(&self, file: &str) -> String {
        format!("{}{}", "../".repeat(16), &self.absolute(file)[1..])
    }

    /// The absolute path of a file already in the target, for a link to aim at.
    fn victim(&self) -> String {
        if !self.victim.replace(true) {
            fs::write(self.path().join(VICTIM), VICTIM_CONTENT).expect("write the victim");
        }
        self.absolute(VICTIM)
    }

    fn assert_untouched(&self) {
        let left: Vec<_> = fs::read_dir(self.dir.path())
            .expect("read target dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| !(self.victim.get() && p.file_name() == Some(VICTIM.as_ref())))
            .collect();
        assert!(
            left.is_empty(),
            "the hostile gem wrote outside the gem's directory: {left:?}"
        );
        if self.victim.get() {
            let victim = self.path().join(VICTIM);
            let meta = fs::symlink_metadata(&victim).expect("the victim is gone");
            assert!(meta.is_file(), "the victim was replaced: {meta:?}");
            assert_eq!(meta.nlink(), 1, "the victim gained a hard link");
            assert_eq!(fs::read(&victim).unwrap(), VICTIM_CONTENT);
        }
    }
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

/// What a row's entries aim at, made on first use. Whatever a row asked for is looked at afterwards, so no row
/// can aim somewhere and forget to check that nothing landed there.
struct Aim {
    case: &'static str,
    /// The directory absolute and climbing entries aim at.
    target: OnceCell<Target>,
    /// A file name no test creates: what a relative escape (`../name`) would write, wherever it resolved.
    marker: OnceCell<String>,
}

impl Aim {
    fn new(case: &'static str) -> Aim {
        Aim {
            case,
            target: OnceCell::new(),
            marker: OnceCell::new(),
        }
    }

    fn target(&self) -> &Target {
        self.target.get_or_init(Target::new)
    }

    fn absolute(&self, file: &str) -> String {
        self.target().absolute(file)
    }

    fn climbing(&self, file: &str) -> String {
        self.target().climbing(file)
    }

    fn victim(&self) -> String {
        self.target().victim()
    }

    fn marker(&self) -> &str {
        self.marker
            .get_or_init(|| format!("hostile-marker-{}-{}", std::process::id(), self.case))
    }
}

// ---- running a case ----

struct Hostile {
    aim: Aim,
    /// The crafted `.gem`.
    bytes: Vec<u8>,
    /// What the error must say besides the gem's name: the offending entry and the reason.
    expect: Vec<String>,
    /// Run under an address-space limit (gzip bombs): expanding in memory would abort.
    bomb: bool,
}

impl Hostile {
    fn new(aim: Aim, bytes: Vec<u8>, expect: Vec<String>) -> Hostile {
        Hostile {
            aim,
            bytes,
            expect,
            bomb: false,
        }
    }

    fn bomb(mut self) -> Hostile {
        self.bomb = true;
        self
    }
}

/// Runs the launcher as `launcher` would, under `ulimit -v` when `limit_kib` is given.
fn run_launcher(launcher: &Launcher, limit_kib: Option<u64>) -> Output {
    let Some(kib) = limit_kib else {
        return launcher.run();
    };
    let base = launcher.command();
    let mut cmd = launcher.command_for("/bin/sh");
    cmd.arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(base.get_program())
        .args(base.get_args());
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
    let name = case.aim.case;
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
            "[{name}] took {took:?} to refuse a bomb:\n{out}"
        );
    }
    eprintln!(
        "[{name}] {:.2}s exit {:?}: {}",
        took.as_secs_f64(),
        out.code(),
        error_line(&out)
    );

    // Nothing where the entries aimed (checked first: an escape is the worst failure).
    if let Some(target) = case.aim.target.get() {
        target.assert_untouched();
    }
    if let Some(marker) = case.aim.marker.get() {
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
        assert!(found.is_empty(), "[{name}] an entry escaped to {found:?}");
    }

    // Refused, clearly, by the launcher's own inspection.
    assert_eq!(out.code(), Some(1), "[{name}] {out}");
    assert_eq!(out.stdout, "", "[{name}] {out}");
    assert!(
        server.count(GEM_PATH) >= 1,
        "[{name}] the hostile gem was never requested"
    );
    let error = error_line(&out);
    assert!(
        error.contains(&format!("refusing to install {GEM}")),
        "[{name}] the error does not name the gem:\n{out}"
    );
    for needle in &case.expect {
        assert!(
            error.contains(needle.as_str()),
            "[{name}] the error lacks {needle:?}:\n{out}"
        );
    }
    assert!(
        !out.stderr.lines().any(|l| l.starts_with("Installing")),
        "[{name}] RubyGems was reached (an Installing line precedes the refusal):\n{out}"
    );

    // Nothing of it in the cache, and no temporary files left.
    let root = launcher.layout_root();
    assert!(
        !root
            .join("downloads")
            .join(format!("{hostile_sha}.gem"))
            .exists(),
        "[{name}] the hostile gem was cached: {:?}",
        support::entries(&root.join("downloads"))
    );
    let units = launcher.store_units();
    assert!(
        !units.iter().any(|u| u.starts_with("fixture_dep_b")),
        "[{name}] the hostile gem reached the store: {units:?}"
    );
    for dir in ["envs", "tmp", "logs"] {
        assert_eq!(
            support::entries(&root.join(dir)),
            Vec::<String>::new(),
            "[{name}] {dir}"
        );
    }

    // The genuine release, locked with its real checksum, still installs into the same cache.
    server.clear_fault(GEM_PATH);
    app.write_lockfile(&Lock::new(server.url()).render());
    let again = launcher
        .clone()
        .args(["--gem", "fixture_dep_b", "install"])
        .run();
    assert_eq!(again.code(), Some(0), "[{name}] genuine gem: {again}");
    let units = launcher.store_units();
    assert!(
        units.iter().any(|u| u.starts_with(GEM)),
        "[{name}] the genuine gem was not installed: {units:?}"
    );
    assert!(
        root.join("downloads")
            .join(format!("{}.gem", sha256_hex(&genuine().bytes)))
            .is_file(),
        "[{name}]"
    );
    assert_eq!(
        support::entries(&root.join("tmp")),
        Vec::<String>::new(),
        "[{name}]"
    );
    out
}

// ---- builders too long for a row ----

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
    out.extend_from_slice(&target.absolute("").as_bytes()[1..]);
    out
}

/// How deep the fake links look; more than the depth of any extraction directory under the temp dir
/// (`/tmp/launcher-cache-*/cache/v2/tmp/<area>/unit.0/gems/fixture_dep_b-0.3.1/lib` is 10).
const CHAIN_DEPTH: usize = 14;

/// Each link, taken alone, stays inside: `L` points from deep down to `lib`, and `L/x` climbs as many levels
/// as `L` looks deep. But `L` *is* `lib`, so `L/x` is `lib/x` and its target climbs out of the gem, and the
/// file written "under" `L/x` lands in the target directory. A lexical check of each link misses this.
fn symlink_chain<'t>(t: &'t mut RawTar, target: &Target) -> &'t mut RawTar {
    let (link, link_target, _) = deep_link(CHAIN_DEPTH);
    t.symlink(&link, &link_target);
    let mut x = link.clone();
    x.extend_from_slice(b"/x");
    let out = climb(CHAIN_DEPTH, target);
    assert!(out.len() <= 100, "temp dir too deep for a ustar link");
    t.symlink(&x, &out);
    let mut file = x.clone();
    file.extend_from_slice(b"/pwned");
    t.file(&file, b"pwned\n")
}

/// The symlink chain's entries as bare tar blocks, to be hidden in another entry's body.
fn chain_blocks(target: &Target) -> Vec<u8> {
    symlink_chain(&mut RawTar::default(), target).bytes.clone()
}

/// `lib/y` points "down" through the link `L` (which is really `lib`) and back up as many levels as `L` looks
/// deep: lexically `lib/…`, really out of the gem.
fn symlink_through_a_symlink(target: &Target) -> Vec<u8> {
    let depth = 12;
    let (link, link_target, down) = deep_link(depth);
    let mut through = down;
    through.push(b'/');
    through.extend_from_slice(&climb(depth, target));
    assert!(through.len() <= 100, "temp dir too deep for a ustar link");
    entries(|t| t.symlink(&link, &link_target).symlink(b"lib/y", &through))
}

/// A PAX `size` record makes PAX readers take the chain's blocks as `lib/cover.rb`'s body; RubyGems ignores
/// PAX and reads the header's size (0), so to it those blocks are the symlink chain. A gate that honours PAX
/// inspects a different archive than the one RubyGems unpacks.
fn pax_size_cover(target: &Target) -> Vec<u8> {
    let chain = chain_blocks(target);
    entries(|t| {
        t.pax(&[("size", chain.len().to_string().as_bytes())])
            .push(&header(EntryType::Regular, b"lib/cover.rb", 0, None), &[]);
        t.bytes.extend_from_slice(&chain);
        t
    })
}

/// A GNU-format header for `pwned` whose prefix field holds `prefix`: tar readers ignore that field in this
/// format, RubyGems prepends it to the name regardless.
fn gnu_prefix(prefix: &str) -> Header {
    let prefix = prefix.trim_end_matches('/').as_bytes();
    let mut h = gnu_header(EntryType::Regular, b"pwned", 6);
    h.as_mut_bytes()[345..345 + prefix.len()].copy_from_slice(prefix);
    h.set_cksum();
    h
}

/// Another data.tar.gz than the genuine one, for a second member of that name.
fn other_data() -> Vec<u8> {
    data_with(|t| t.file("lib/second.rb", b"x=2\n"))
}

/// Deeper than PATH_MAX (4096 bytes), though every component is short.
fn beyond_path_max() -> String {
    format!("lib/{}x.rb", "d/".repeat(2100))
}

/// The genuine checksums.yaml with data.tar.gz's SHA512 zeroed (its SHA256 still matches).
fn wrong_sha512() -> Vec<u8> {
    let g = genuine();
    let yaml = String::from_utf8(gunzip(&g.checksums_gz)).unwrap();
    let sha512 = hex::encode(Sha512::digest(&g.data_tar_gz));
    assert!(yaml.contains(&sha512), "no SHA512 of data.tar.gz in {yaml}");
    let yaml = yaml.replace(&sha512, &"0".repeat(128));
    outer(&[
        metadata_gz(),
        data_tar_gz(),
        ("checksums.yaml.gz", &gzip(yaml.as_bytes())),
    ])
}

/// A PAX `size` record on the outer `data.tar.gz` hides a plain `metadata` member inside what PAX readers
/// take as data.tar.gz's body; RubyGems reads the header's size and then that member.
fn outer_pax_size_hiding_metadata() -> Vec<u8> {
    let evil = kamal_metadata();
    let mut hidden = RawTar::default();
    hidden.member(("metadata", evil.as_bytes()));
    let pax_size = genuine().data_tar_gz.len().next_multiple_of(512) + hidden.bytes.len();
    let mut tar = RawTar::default();
    tar.member(metadata_gz())
        .pax(&[("size", pax_size.to_string().as_bytes())])
        .member(data_tar_gz());
    tar.bytes.extend_from_slice(&hidden.bytes);
    tar.finish()
}

// ---- the table ----

/// What a duplicate entry holds: anything but the genuine file.
const REPLACED: &[u8] = b"raise 'replaced'\n";

/// One `#[test]` a row: `name: |aim| gem => [what the error must say, …] (, option)*;`. The gem expression
/// and the expectations may use `aim` (an [`Aim`]) for the places entries aim at; an option is a method of
/// [`Hostile`] (`bomb`).
macro_rules! hostile_gems {
    ($(
        $(#[$meta:meta])*
        $name:ident: |$aim:ident| $gem:expr => [$($expect:expr),+ $(,)?] $(, $option:ident)*;
    )*) => {$(
        $(#[$meta])*
        #[test]
        fn $name() {
            let $aim = Aim::new(stringify!($name));
            let gem = $gem;
            let expect = vec![$(String::from($expect)),+];
            assert_refused(Hostile::new($aim, gem, expect)$(.$option())*);
        }
    )*};
}

hostile_gems! {
    // ---- data.tar.gz: paths ----

    dot_dot_climbing_to_an_absolute_target: |a| entries(|t| t.file(a.climbing("pwned"), b"pwned\n"))
        => ["escapes the gem's directory"];
    dot_dot_one_level_up: |a| entries(|t| t.file(format!("../{}", a.marker()), b"pwned\n"))
        => [format!("`../{}`", a.marker()), "escapes the gem's directory"];
    dot_dot_inside_a_path: |a| entries(|t| t.file(format!("lib/../../../{}", a.marker()), b"pwned\n"))
        => [format!("`lib/../../../{}`", a.marker()), "escapes the gem's directory"];
    dot_dot_directory_entry: |a| entries(|t| t.dir(format!("../../{}/", a.marker())))
        => ["escapes the gem's directory"];
    absolute_path: |a| entries(|t| t.file(a.absolute("pwned"), b"pwned\n"))
        => [format!("`{}`", a.absolute("pwned")), "is an absolute path"];
    absolute_directory_entry: |a| entries(|t| t.dir(a.absolute("sub/")))
        => ["is an absolute path"];

    // ---- data.tar.gz: links ----

    symlink_to_an_absolute_directory_then_a_file_through_it:
        |a| entries(|t| t.symlink("lib/evil", a.absolute("")).file("lib/evil/pwned", b"pwned\n"))
        => [format!("symlink `lib/evil` points to `{}`", a.absolute("")), "outside the gem's directory"];
    symlink_climbing_out_then_a_file_through_it:
        |a| entries(|t| t.symlink("lib/evil", a.climbing("")).file("lib/evil/pwned", b"pwned\n"))
        => ["symlink `lib/evil`", "outside the gem's directory"];
    symlink_one_level_out: |a| entries(|t| t.symlink("lib/up", "../.."))
        => ["symlink `lib/up` points to `../..`", "outside the gem's directory"];
    symlink_chain_through_an_earlier_symlink: |a| entries(|t| symlink_chain(t, a.target()))
        => ["/x` lies beneath the symlink `lib/a/b/c/d/e/f/g/h/i/j/k/l/m/n`"];
    symlink_target_through_an_earlier_symlink: |a| symlink_through_a_symlink(a.target())
        => ["symlink `lib/y` points to", "through the symlink `lib/a/b/c/d/e/f/g/h/i/j/k/l`"];
    /// The victim must keep its content and its one link.
    hard_link_to_a_file_outside: |a| entries(|t| t.hard_link("lib/hl", &a.victim()))
        => ["`lib/hl` is a hard link"];
    hard_link_climbing_out: |a| entries(|t| t.hard_link("lib/hl", &a.climbing("victim")))
        => ["`lib/hl` is a hard link"];

    // ---- data.tar.gz: special files ----

    character_device: |a| entries(|t| t.device(EntryType::Char, "lib/null", 1, 3))
        => ["`lib/null` is a character device entry"];
    block_device: |a| entries(|t| t.device(EntryType::Block, "lib/sda", 8, 0))
        => ["`lib/sda` is a block device entry"];
    fifo: |a| entries(|t| t.push(&header(EntryType::Fifo, b"lib/fifo", 0, None), &[]))
        => ["`lib/fifo` is a FIFO entry"];
    /// RubyGems applies an entry's mode as is: a setuid file would land in the shared cache as `rwsr-xr-x`,
    /// owned by whoever ran the launcher (root, on many CI runners).
    setuid_bit: |a| entries(|t| t.file_with_mode("lib/suid.rb", b"x=1\n", 0o4755))
        => ["`lib/suid.rb` has mode 4755"];
    setgid_bit: |a| entries(|t| t.file_with_mode("lib/suid.rb", b"x=1\n", 0o2755))
        => ["`lib/suid.rb` has mode 2755"];

    // ---- data.tar.gz: duplicates ----

    duplicate_file: |a| entries(|t| t.file("lib/fixture_dep_b.rb", REPLACED))
        => ["`lib/fixture_dep_b.rb` appears twice"];
    duplicate_file_spelled_with_dot_slash: |a| entries(|t| t.file("./lib/fixture_dep_b.rb", REPLACED))
        => ["`./lib/fixture_dep_b.rb` appears twice"];
    duplicate_file_spelled_with_inner_dot: |a| entries(|t| t.file("lib/./fixture_dep_b.rb", REPLACED))
        => ["`lib/./fixture_dep_b.rb` appears twice"];
    duplicate_file_spelled_with_double_slash: |a| entries(|t| t.file("lib//fixture_dep_b.rb", REPLACED))
        => ["`lib//fixture_dep_b.rb` appears twice"];
    file_replaced_by_a_symlink: |a| entries(|t| t.symlink("lib/fixture_dep_b.rb", "other.rb"))
        => ["`lib/fixture_dep_b.rb` appears twice"];

    // ---- data.tar.gz: sizes ----

    /// One entry declaring 3 GiB of zeros: refused from the header, before anything is expanded, and in
    /// bounded memory.
    gzip_bomb_one_huge_entry: |a| bomb_behind(header(EntryType::Regular, b"lib/zeros.bin", 3 * GIB, None))
        => ["data.tar.gz expands to more than", "compression bomb"], bomb;
    /// Honest headers, many entries: the total is only known by expanding, so the limit must stop the stream.
    gzip_bomb_many_honest_entries: |a| many_honest_entries()
        => ["data.tar.gz expands to more than", "compression bomb"], bomb;
    /// A GNU long-name member is not a file: an extractor holds its body in memory as the next entry's name.
    /// Declaring 3 GiB of name must be refused from the header, not read.
    gzip_bomb_in_a_long_name_header:
        |a| bomb_behind(gnu_header(EntryType::GNULongName, b"././@LongLink", 3 * GIB))
        => ["data.tar.gz has a GNU long-name header of 3221225472 bytes"], bomb;
    /// The same with a PAX extended header.
    gzip_bomb_in_a_pax_header: |a| bomb_behind(header(EntryType::XHeader, b"PaxHeaders.0/x", 3 * GIB, None))
        => ["data.tar.gz has a PAX extended header of 3221225472 bytes"], bomb;

    // ---- data.tar.gz: names no file system should get ----

    over_long_path_component:
        |a| entries(|t| t.long_named_file(&format!("lib/{}.rb", "a".repeat(256)), b"x=1"))
        => ["has a path component longer than 255 bytes"];
    over_long_path_component_in_pax: |a| entries(|t| {
            t.pax(&[("path", format!("lib/{}.rb", "b".repeat(300)).as_bytes())])
                .file("lib/short.rb", b"x=1")
        })
        => ["has a path component longer than 255 bytes"];
    over_long_path: |a| entries(|t| t.long_named_file(&beyond_path_max(), b"x=1"))
        => [format!("file name of {} bytes", beyond_path_max().len())];
    invalid_utf8_name: |a| entries(|t| t.file(b"lib/\xff\xfe.rb", b"x=1"))
        => ["is not valid UTF-8"];
    /// A terminal escape sequence: shown escaped, never sent to the terminal.
    control_characters_in_a_name: |a| entries(|t| t.file("lib/evil\x1b]0;pwned\x07.rb", b"x=1"))
        => [r#""lib/evil\u{1b}]0;pwned\u{7}.rb""#, "characters no file system should get"];
    newline_in_a_name: |a| entries(|t| t.file("lib/new\nline.rb", b"x=1"))
        => [r#""lib/new\nline.rb""#, "characters no file system should get"];
    backslashes_in_a_name: |a| entries(|t| t.file(format!("..\\..\\{}", a.marker()), b"x=1"))
        => ["characters no file system should get"];

    // ---- data.tar.gz: what the gate reads must be what RubyGems reads ----

    pax_size_smuggles_entries_past_the_gate: |a| pax_size_cover(a.target())
        => [format!(
            "`lib/cover.rb` has a PAX size ({}) other than its header's (0)",
            chain_blocks(a.target()).len()
        )];
    /// A PAX `path` record gives PAX readers a harmless name; RubyGems reads the header's own name.
    pax_path_hides_the_real_name:
        |a| entries(|t| t.pax(&[("path", b"lib/harmless.rb")]).file(a.climbing("pwned"), b"pwned\n"))
        => ["escapes the gem's directory"];
    /// A PAX `linkpath` record gives PAX readers a harmless link target; RubyGems reads the header's own.
    pax_linkpath_hides_the_real_target: |a| entries(|t| {
            t.pax(&[("linkpath", b"fixture_dep_b.rb")])
                .symlink("lib/evil", a.absolute(""))
                .file("lib/evil/pwned", b"pwned\n")
        })
        => ["symlink `lib/evil`", "outside the gem's directory"];
    /// A GNU long name gives GNU readers a harmless name; RubyGems reads the header's own.
    gnu_long_name_hides_the_real_name: |a| entries(|t| {
            let real = gnu_header(EntryType::Regular, a.climbing("pwned").as_bytes(), 6);
            t.gnu_long_name("lib/harmless.rb", &real, b"pwned\n")
        })
        => ["escapes the gem's directory"];
    prefix_field_of_a_gnu_header: |a| entries(|t| t.push(&gnu_prefix(&a.climbing("")), b"pwned\n"))
        => ["escapes the gem's directory"];

    // ---- the outer archive ----

    checksums_yaml_does_not_match_data:
        |a| genuine_checksums_over(
            &genuine().metadata_gz,
            &data_with(|t| t.file("lib/extra.rb", b"puts 'added after the build'\n")),
        )
        => ["data.tar.gz's SHA256 does not match", "altered after it was built"];
    checksums_yaml_does_not_match_metadata:
        |a| genuine_checksums_over(
            &gzip(genuine_metadata().replace("summary:", "summary: altered").as_bytes()),
            &genuine().data_tar_gz,
        )
        => ["metadata.gz's SHA256 does not match", "altered after it was built"];
    checksums_yaml_sha512_does_not_match: |a| wrong_sha512()
        => ["data.tar.gz's SHA512 does not match"];
    metadata_names_another_gem: |a| metadata_replacing("name: fixture_dep_b\n", "name: fixture_dep_a\n")
        => ["its metadata says it is `fixture_dep_a 0.3.1 ruby`, but the lockfile locks `fixture_dep_b 0.3.1 ruby`"];
    /// The genuine, untouched 0.4.0 release served for 0.3.1 (and locked by its digest).
    metadata_names_another_version: |a| fixture_gem("0.4.0")
        => ["its metadata says it is `fixture_dep_b 0.4.0 ruby`"];
    metadata_names_another_platform: |a| metadata_replacing("platform: ruby\n", "platform: x86_64-linux\n")
        => ["its metadata says it is `fixture_dep_b 0.3.1 x86_64-linux`"];
    /// YAML takes the last of duplicate keys; a gate that reads the first sees another gem than RubyGems does.
    metadata_repeats_its_name:
        |a| metadata_replacing("name: fixture_dep_b\n", "name: fixture_dep_b\nname: kamal\n")
        => ["metadata.gz gives its name twice"];
    metadata_quoted_key: |a| gem_with_metadata(&format!("{}\"name\": kamal\n", genuine_metadata()))
        => ["metadata.gz is not a gemspec as RubyGems writes it (at \"\\\"name\\\": kamal\")"];
    metadata_repeats_its_version:
        |a| metadata_replacing("  version: 0.3.1\n", "  version: 0.3.1\n  \"version\": 9.9.9\n")
        => ["metadata.gz is not a gemspec as RubyGems writes it (at \"  \\\"version\\\": 9.9.9\")"];
    metadata_complex_key_platform:
        |a| metadata_replacing("platform: ruby\n", "platform: ruby\n? platform\n: x86_64-linux\n")
        => ["metadata.gz is not a gemspec as RubyGems writes it (at \"? platform\")"];
    unexpected_outer_member:
        |a| checksummed(&[metadata_gz(), data_tar_gz()], &[("install.rb", b"system('id')\n")])
        => ["unexpected member `install.rb`"];
    outer_member_climbing_out: |a| outer(&[metadata_gz(), data_tar_gz(), (&a.climbing("pwned"), b"pwned\n")])
        => ["unexpected member"];
    /// Signature members are the three members' names plus `.sig`; any other name is unexpected.
    outer_sig_member_with_another_name: |a| outer(&[
            metadata_gz(),
            data_tar_gz(),
            ("data.tar.gz.sig", b"not checked without a security policy"),
            (&a.climbing("pwned.sig"), b"pwned\n"),
        ])
        => [format!("unexpected member `{}`", a.climbing("pwned.sig"))];
    /// Old-format `metadata` (plain YAML) is also read by RubyGems, after `metadata.gz`, and wins.
    outer_plain_metadata_member:
        |a| outer(&[metadata_gz(), data_tar_gz(), ("metadata", kamal_metadata().as_bytes())])
        => ["unexpected member `metadata`"];
    outer_pax_size_smuggles_metadata: |a| outer_pax_size_hiding_metadata()
        => ["the gem's member `PaxHeaders.0/entry` is not a regular file"];
    missing_data_tar_gz: |a| checksummed(&[metadata_gz()], &[])
        => ["the gem has no data.tar.gz"];
    missing_metadata_gz: |a| checksummed(&[data_tar_gz()], &[])
        => ["the gem has no metadata.gz"];
    duplicate_outer_member: |a| outer(&[metadata_gz(), data_tar_gz(), ("data.tar.gz", &other_data())])
        => ["the gem contains `data.tar.gz` twice"];
    outer_member_is_a_symlink:
        |a| RawTar::default().member(metadata_gz()).symlink("data.tar.gz", "/etc/passwd").finish()
        => ["the gem's member `data.tar.gz` is not a regular file"];
    not_a_tar_at_all: |a| gzip(b"hello")
        => ["not a gem"];
}

// ---- RubyGems is never reached ----

/// With kamal's whole closure and `-v`, the refusal comes while fetching: no gem of the closure starts
/// installing, so RubyGems never sees the hostile package.
// Not a row: it runs a whole closure with `exec` and checks the order of the log lines, not one install.
#[test]
fn refusal_comes_before_any_installing_line() {
    let target = Target::new();
    let cases = [
        entries(|t| symlink_chain(t, &target)),
        entries(|t| t.file(target.climbing("pwned"), b"pwned\n")),
        entries(|t| t.device(EntryType::Char, "lib/null", 1, 3)),
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
            .position(|l| *l == format!("Downloading {GEM}"))
            .unwrap_or_else(|| panic!("no Downloading line:\n{out}"));
        let refused = lines
            .iter()
            .position(|l| l.contains(&format!("refusing to install {GEM}")))
            .unwrap_or_else(|| panic!("no refusal:\n{out}"));
        assert!(fetching < refused, "{out}");
        assert!(
            !lines.iter().any(|l| l.starts_with("Installing")),
            "an Installing line appeared:\n{out}"
        );
        for dir in ["store", "logs", "tmp"] {
            assert_eq!(
                support::entries(&launcher.layout_root().join(dir)),
                Vec::<String>::new(),
                "{dir}: {out}"
            );
        }
        target.assert_untouched();
    }
}
