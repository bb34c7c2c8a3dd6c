//! The fault campaign (issue 18): faults injected, one at a time, into a cache filled by the real kamal 2.12.0
//! closure (installed, then run once so that its bytecode is cached too), each on a fresh copy of that cache.
//! After each fault:
//! - a warm `bin/kamal version` either runs the real kamal (prints its version) or fails with a message (exit
//!   1..=125, something said): never an exit 0 having run nothing, never a crash (`[BUG]`, SIGSEGV, SIGABRT);
//! - `install` succeeds, and afterwards the warm run is quiet and right, and every environment and installed gem
//!   matches its record: nothing damaged is left taken as done.
//!
//! The table is fault × where; `where` selects files of the filled cache by kind. Issue 21 added whole
//! environments and gems replaced by dangling symlinks or directories, damaged lock files, and temporary files
//! left by killed runs. Figures are printed (run with
//! `--nocapture`) and reported in the README's RELIABILITY section.

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use support::real::{REAL_KAMAL_VERSION, real_kamal};
use support::{Launcher, Output, assert_success, entries};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// A crash before the data reached the disk: the file is there, empty.
    Emptied,
    /// One flipped bit in the middle: a bad sector, a bad copy.
    Flipped,
    /// Half the file: a torn write.
    Truncated,
    /// Gone: a partial restore, a tidy-up by hand.
    Removed,
    /// A file that was never installed, beside it.
    Planted,
    /// Replaced by a symlink to nowhere: a partial restore, an image layer gone (issue 21).
    Dangling,
    /// Replaced by an empty directory (issue 21).
    Directory,
    /// A temporary file of a run killed mid-write, beside it, an hour old (issue 21).
    LeftBehind,
}

impl Fault {
    fn apply(self, path: &Path) {
        match self {
            Fault::Emptied => fs::write(path, "").unwrap(),
            Fault::Flipped => {
                let mut bytes = fs::read(path).unwrap();
                if bytes.is_empty() {
                    bytes.push(b'x');
                } else {
                    let mid = bytes.len() / 2;
                    bytes[mid] ^= 0x10;
                }
                fs::write(path, bytes).unwrap();
            }
            Fault::Truncated => {
                let len = fs::metadata(path).unwrap().len();
                fs::File::options()
                    .write(true)
                    .open(path)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            }
            Fault::Removed => fs::remove_file(path).unwrap(),
            // Harmless when loaded (a gem may load every file of its directory, as kamal's CLI does): a planted file
            // is a fault here, found and removed by `install`. Code planted on purpose needs write access to the
            // cache, which `trust.rs` refuses to anybody but its owner (tests/suite/cache_trust.rs).
            Fault::Planted => fs::write(path.with_file_name("planted.rb"), "# planted\n").unwrap(),
            Fault::Dangling => {
                remove_any(path);
                std::os::unix::fs::symlink(path.with_extension("gone"), path).unwrap();
            }
            Fault::Directory => {
                remove_any(path);
                fs::create_dir(path).unwrap();
            }
            Fault::LeftBehind => {
                let left = Fault::left_behind(path);
                fs::write(&left, "half an entry").unwrap();
                let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
                fs::File::options()
                    .write(true)
                    .open(&left)
                    .unwrap()
                    .set_modified(hour_ago)
                    .unwrap();
            }
        }
    }

    /// Where [`Fault::LeftBehind`] puts its file: the name `boot.rb` gives its temporary files.
    fn left_behind(path: &Path) -> PathBuf {
        let mut name = path.file_name().unwrap().to_os_string();
        name.push(".0123456789abcdef.tmp");
        path.with_file_name(name)
    }
}

fn remove_any(path: &Path) {
    if path.is_dir() && !path.is_symlink() {
        fs::remove_dir_all(path).unwrap();
    } else {
        fs::remove_file(path).unwrap();
    }
}

/// One row: a fault, the kind of place, the file (relative to the cache's layout root), and what to remove as
/// well so that the damaged file is the one read (a damaged download matters only when a gem is installed again).
struct Row {
    fault: Fault,
    place: &'static str,
    file: PathBuf,
    also_remove: Vec<PathBuf>,
}

/// The real closure installed and run once, in a cache kept for the whole run.
struct Filled {
    _keep: Launcher,
    cache: PathBuf,
}

fn filled() -> &'static Filled {
    static FILLED: OnceLock<Filled> = OnceLock::new();
    FILLED.get_or_init(|| {
        let real = real_kamal();
        let launcher = Launcher::new(real.app.path());
        assert_success(&launcher.clone().arg("install").run());
        let out = launcher.clone().args(["exec", "--", "version"]).run();
        assert_success(&out);
        assert_eq!(out.stdout.trim(), REAL_KAMAL_VERSION);
        Filled {
            cache: launcher.cache_path().to_path_buf(),
            _keep: launcher,
        }
    })
}

/// Every file under `dir`, relative to `root`, sorted.
fn files(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = fs::read_dir(&d) else { continue };
        for entry in read.flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The gems whose files the sampled campaign damages: the root, the largest, an SSH gem and a native extension;
/// every gem is the same code path, and reinstalling a native one costs a compile.
const SAMPLED: [&str; 4] = ["kamal-", "activesupport-", "net-ssh-", "ed25519-"];

/// The rows: every file of each kind (`full`), or the sampled gems' and every 100th bytecode file.
fn rows(root: &Path, full: bool) -> Vec<Row> {
    let sampled = |unit: &str| full || SAMPLED.iter().any(|p| unit.starts_with(p));
    use Fault::*;
    let mut rows = Vec::new();
    let mut add = |place: &'static str, faults: &[Fault], file: &Path, also: &[PathBuf]| {
        for &fault in faults {
            rows.push(Row {
                fault,
                place,
                file: file.to_path_buf(),
                also_remove: also.to_vec(),
            });
        }
    };
    let all = [Emptied, Flipped, Truncated, Removed, Planted];
    for env in entries(&root.join("envs")) {
        add(
            "environment (whole)",
            &[Dangling, Directory],
            &PathBuf::from("envs").join(&env),
            &[],
        );
        for file in files(root, &root.join("envs").join(env)) {
            add("environment", &all, &file, &[]);
        }
    }
    // One lock per gem, one per environment: every lock is the same code path.
    for lock in files(root, &root.join("locks"))
        .iter()
        .step_by(if full { 1 } else { 16 })
    {
        add("lock file", &[Emptied, Dangling, Directory], lock, &[]);
    }
    let store = root.join("store");
    let mut downloads_of: BTreeMap<String, PathBuf> = BTreeMap::new();
    for abi in entries(&store) {
        for unit in entries(&store.join(&abi)) {
            let dir = store.join(&abi).join(&unit);
            let unit_files = files(root, &dir);
            let full_name = unit.rsplit_once('-').unwrap().0.to_string();
            downloads_of.insert(
                full_name.clone(),
                dir.strip_prefix(root).unwrap().to_path_buf(),
            );
            if !sampled(&unit) {
                continue;
            }
            add(
                "installed gem (whole)",
                &[Dangling],
                dir.strip_prefix(root).unwrap(),
                &[],
            );
            let pick = |suffix: &str| {
                unit_files
                    .iter()
                    .find(|f| f.to_string_lossy().ends_with(suffix))
            };
            if let Some(spec) = pick(".gemspec") {
                add(
                    "installed gem: gemspec",
                    &[Emptied, Flipped, Removed],
                    spec,
                    &[],
                );
            }
            if let Some(record) = pick(support_record()) {
                add("installed gem: record", &[Emptied, Flipped], record, &[]);
            }
            if let Some(lib) = unit_files.iter().find(|f| {
                f.to_string_lossy().contains("/lib/") && f.extension().is_some_and(|e| e == "rb")
            }) {
                add(
                    "installed gem: Ruby file",
                    &[Emptied, Flipped, Truncated, Planted],
                    lib,
                    &[],
                );
            }
            for ext in unit_files
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == "so"))
            {
                add(
                    "installed gem: native extension",
                    &[Emptied, Flipped, Truncated, Removed],
                    ext,
                    &[],
                );
            }
        }
    }
    // A damaged download or index copy is read when a gem is installed again: its installed copy goes too.
    for download in files(root, &root.join("downloads")) {
        let unit = unit_of_download(root, &download, &downloads_of);
        if unit
            .iter()
            .any(|u| sampled(&u.file_name().unwrap().to_string_lossy()))
        {
            add("download", &[Emptied, Flipped, Truncated], &download, &unit);
        }
    }
    for index in files(root, &root.join("index")) {
        let name = index.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".etag") {
            continue;
        }
        let gone: Vec<PathBuf> = downloads_of
            .iter()
            .filter(|(full, _)| full.rsplit_once('-').is_some_and(|(n, _)| n == name))
            .map(|(_, unit)| unit.clone())
            .collect();
        if gone
            .iter()
            .any(|u| sampled(&u.file_name().unwrap().to_string_lossy()))
        {
            add("compact-index copy", &[Flipped, Truncated], &index, &gone);
        }
    }
    for memo in files(root, &root.join("rubies")) {
        add(
            "Ruby probe memo",
            &[Emptied, Flipped, Truncated],
            &memo,
            &[],
        );
    }
    let bytecode = files(root, &root.join("bytecode"));
    // The same code path for each file: a sample keeps the campaign within its time.
    for file in bytecode.iter().step_by(if full { 10 } else { 150 }) {
        add(
            "bytecode",
            &[Emptied, Flipped, Truncated, LeftBehind],
            file,
            &[],
        );
    }
    rows
}

fn support_record() -> &'static str {
    kamal_launcher::record::RECORD
}

/// The installed copy of a downloaded gem, found by the gem's name and version in the download's own metadata
/// (the download is named by digest only): the unit whose directory starts with the gem's full name.
fn unit_of_download(
    root: &Path,
    download: &Path,
    units: &BTreeMap<String, PathBuf>,
) -> Vec<PathBuf> {
    let out = Command::new("ruby")
        .args([
            "-rrubygems/package",
            "-e",
            "print Gem::Package.new(ARGV[0]).spec.full_name",
        ])
        .arg(root.join(download))
        .output()
        .unwrap();
    let full = String::from_utf8_lossy(&out.stdout).to_string();
    units.get(&full).cloned().into_iter().collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Warm {
    /// kamal ran and printed its version.
    Ran,
    /// A clear failure: a message, an exit status of the launcher's own.
    Refused,
}

/// What a row must never see: the warm run's status and output when it is neither.
fn classify(out: &Output) -> Result<Warm, String> {
    match out.code() {
        Some(0) if out.stdout.trim() == REAL_KAMAL_VERSION => Ok(Warm::Ran),
        Some(code @ 1..=125) if !out.stderr.trim().is_empty() && !out.stderr.contains("[BUG]") => {
            let _ = code;
            Ok(Warm::Refused)
        }
        _ => Err(format!(
            "status {:?} (signal {:?})\nstdout: {}\nstderr: {}",
            out.code(),
            out.signal(),
            out.stdout.trim(),
            out.stderr.trim()
        )),
    }
}

fn run_row(row: &Row) -> Result<Warm, String> {
    let filled = filled();
    let real = real_kamal();
    let launcher = Launcher::new(real.app.path());
    let cache = launcher.cache_path().to_path_buf();
    let status = Command::new("cp")
        .arg("-a")
        .arg(&filled.cache)
        .arg(&cache)
        .status()
        .unwrap();
    assert!(status.success());
    let root = cache.join("v2");
    for gone in &row.also_remove {
        fs::remove_dir_all(root.join(gone)).unwrap();
    }
    row.fault.apply(&root.join(&row.file));
    let warm = classify(&launcher.clone().args(["exec", "--", "version"]).run())
        .map_err(|e| format!("warm run: {e}"))?;
    let install = launcher.clone().arg("install").run();
    if !install.status.success() {
        return Err(format!("install did not repair: {}", install.stderr.trim()));
    }
    if row.fault == Fault::LeftBehind && Fault::left_behind(&root.join(&row.file)).exists() {
        return Err("install left the temporary file of a killed run behind".to_string());
    }
    let after = launcher.clone().args(["exec", "--", "version"]).run();
    if after.code() != Some(0)
        || after.stdout.trim() != REAL_KAMAL_VERSION
        || !after.stderr.trim().is_empty()
    {
        return Err(format!(
            "after install: status {:?}\nstdout: {}\nstderr: {}",
            after.code(),
            after.stdout.trim(),
            after.stderr.trim()
        ));
    }
    for env in entries(&root.join("envs")) {
        kamal_launcher::env::check(
            &root.join("envs").join(&env),
            kamal_launcher::env::Depth::Full,
        )
        .map_err(|e| format!("after install, environment {env}: {e:?}"))?;
    }
    Ok(warm)
}

#[test]
fn every_fault_in_a_filled_cache_is_repaired_or_refused_never_taken_for_done() {
    campaign(false);
}

/// Every file of each kind in every gem, and every lock (710 faults, about 16 minutes on two cores;
/// `scripts/campaign`).
#[test]
#[ignore]
fn the_full_campaign() {
    campaign(true);
}

fn campaign(full: bool) {
    let root = filled().cache.join("v2");
    let rows = rows(&root, full);
    assert!(
        rows.len() > 80,
        "the campaign lost its rows: {}",
        rows.len()
    );
    let next = Mutex::new(0usize);
    let started = std::time::Instant::now();
    let results: Mutex<Vec<(usize, Result<Warm, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(row) = rows.get(i) else { break };
                    let result = run_row(row);
                    results.lock().unwrap().push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let mut table: BTreeMap<(&str, Fault), (usize, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, result) in &results {
        let row = &rows[*i];
        let cell = table.entry((row.place, row.fault)).or_default();
        match result {
            Ok(Warm::Ran) => cell.0 += 1,
            Ok(Warm::Refused) => cell.1 += 1,
            Err(e) => {
                cell.2 += 1;
                failures.push(format!("{:?} {}: {e}", row.fault, row.file.display()));
            }
        }
    }
    eprintln!(
        "\nfault campaign: {} faults injected in {:.0} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "{:<34} {:<10} {:>5} {:>8} {:>6}",
        "where", "fault", "ran", "refused", "FAILED"
    );
    for ((place, fault), (ran, refused, failed)) in &table {
        eprintln!(
            "{place:<34} {:<10} {ran:>5} {refused:>8} {failed:>6}",
            format!("{fault:?}")
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} faults were not survived:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n\n")
    );
}
