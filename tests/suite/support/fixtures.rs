//! Fixture gems: built from `tests/fixtures/gems/*` with the real `gem build`,
//! once per distinct source tree and Ruby, and shared by every test binary and
//! process through a content-addressed directory under the target tmp dir.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{clean_command, require_ruby, sha256_hex};

/// Bump when the build procedure in this file changes in a way that alters
/// the output, since such changes are not visible in the hashed sources.
const BUILD_RECIPE: &str = "fixture-build-v1";

/// `gem build` stamps file mtimes and the spec date from this, which makes
/// rebuilds byte-identical and so keeps checksums stable across machines.
const SOURCE_DATE_EPOCH: &str = "1700000000";

/// A source dir containing this file is built once per listed platform, with
/// the platform passed to its gemspec in `FIXTURE_PLATFORM`.
const PLATFORMS_FILE: &str = "PLATFORMS";

#[derive(Debug)]
pub struct Fixtures {
    /// Server root: `gems/*.gem`, `info/<name>`, `versions`, `specs.json`.
    pub dir: PathBuf,
    pub gems: Vec<GemFile>,
    /// Wall time this process spent building; zero when it reused a build.
    pub build_time: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GemFile {
    pub name: String,
    pub version: String,
    /// `ruby` for pure gems, otherwise e.g. `x86_64-linux`.
    pub platform: String,
    /// File name under `gems/`, e.g. `fixture_native-1.0.0-x86_64-linux.gem`.
    pub file: String,
    pub sha256: String,
    /// Runtime dependencies only, sorted by name.
    pub deps: Vec<Dep>,
    pub extensions: Vec<String>,
    pub executables: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    /// Individual constraints, e.g. `["~> 1.0", ">= 1.0.1"]`.
    pub requirement: Vec<String>,
}

impl GemFile {
    /// `name-version[-platform]`, as RubyGems names the file and install dir.
    pub fn full_name(&self) -> String {
        if self.platform == "ruby" {
            format!("{}-{}", self.name, self.version)
        } else {
            format!("{}-{}-{}", self.name, self.version, self.platform)
        }
    }

    /// Version as written in lockfiles and the compact index: `1.0.0-java`.
    pub fn version_platform(&self) -> String {
        if self.platform == "ruby" {
            self.version.clone()
        } else {
            format!("{}-{}", self.version, self.platform)
        }
    }
}

impl Dep {
    /// Lockfile form: `~> 1.0, >= 1.0.1`.
    pub fn requirement_text(&self) -> String {
        self.requirement.join(", ")
    }
}

impl Fixtures {
    /// Panics if no such gem was built; `platform` is `ruby` for pure gems.
    pub fn gem(&self, name: &str, version: &str, platform: &str) -> &GemFile {
        self.gems
            .iter()
            .find(|g| g.name == name && g.version == version && g.platform == platform)
            .unwrap_or_else(|| panic!("no fixture gem {name} {version} {platform}"))
    }

    /// All built versions and platforms of `name`.
    pub fn all(&self, name: &str) -> Vec<&GemFile> {
        self.gems.iter().filter(|g| g.name == name).collect()
    }

    pub fn gem_path(&self, gem: &GemFile) -> PathBuf {
        self.dir.join("gems").join(&gem.file)
    }

    pub fn info_path(&self, name: &str) -> PathBuf {
        self.dir.join("info").join(name)
    }

    /// A private, writable copy of the server root, for tests that need to
    /// delete or alter files rather than fault individual responses.
    pub fn mirror(&self) -> tempfile::TempDir {
        let dest = tempfile::Builder::new()
            .prefix("gem-mirror-")
            .tempdir()
            .expect("create mirror dir");
        copy_tree(&self.dir, dest.path());
        dest
    }
}

/// The shared fixture build, built on first use by whichever test process
/// gets there first.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(load_or_build)
}

fn sources_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn target_tmp_dir() -> PathBuf {
    match option_env!("CARGO_TARGET_TMPDIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp"),
    }
}

fn load_or_build() -> Fixtures {
    require_ruby();
    let key = build_key();
    let parent = target_tmp_dir();
    fs::create_dir_all(&parent).expect("create target tmp dir");
    let dir = parent.join(format!("fixture-gems-{key}"));

    // The final directory only ever appears via rename, so its existence
    // means a complete build and the lock can be skipped.
    if dir.is_dir() {
        return load(dir, Duration::ZERO);
    }

    let lock_path = parent.join(format!("fixture-gems-{key}.lock"));
    let lock = File::create(&lock_path).expect("create fixture lock file");
    lock.lock().expect("lock fixture build");
    if dir.is_dir() {
        return load(dir, Duration::ZERO);
    }

    let started = Instant::now();
    // A crashed earlier attempt may have left partial builds behind; we hold
    // the lock, so none of them is still in progress.
    let staging_prefix = format!("fixture-gems-{key}.building-");
    for entry in fs::read_dir(&parent)
        .expect("read target tmp dir")
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(&staging_prefix)
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let staging = parent.join(format!("{staging_prefix}{}", std::process::id()));
    build_into(&staging);
    fs::rename(&staging, &dir).expect("move fixture build into place");
    let elapsed = started.elapsed();
    drop(lock);
    eprintln!(
        "fixture gems built in {:.1}s: {}",
        elapsed.as_secs_f64(),
        dir.display()
    );
    load(dir, elapsed)
}

/// Identifies a build by everything that can change its output: the gem
/// sources, the index script, this recipe and the Ruby that runs `gem build`.
fn build_key() -> String {
    let mut material = Vec::new();
    material.extend_from_slice(BUILD_RECIPE.as_bytes());
    let ruby_v = run_ok(clean_command("ruby").arg("-v"), "ruby -v");
    material.extend_from_slice(&ruby_v.stdout);

    let sources = sources_dir();
    let mut files = vec![sources.join("build_index.rb")];
    collect_files(&sources.join("gems"), &mut files);
    files.sort();
    for file in files {
        let rel = file.strip_prefix(&sources).expect("fixture under sources");
        material.extend_from_slice(rel.to_string_lossy().as_bytes());
        material.push(0);
        let contents = fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        material.extend_from_slice(sha256_hex(&contents).as_bytes());
        material.push(0);
    }
    sha256_hex(&material)[..16].to_owned()
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

struct BuildJob {
    source: PathBuf,
    platform: Option<String>,
}

fn build_into(staging: &Path) {
    let gems_out = staging.join("gems");
    fs::create_dir_all(&gems_out).expect("create staging gems dir");
    let home = staging.join("home");
    fs::create_dir_all(&home).expect("create staging home");

    let jobs = plan_jobs();
    // `gem build` is mostly Ruby start-up time, so running the jobs in
    // parallel roughly divides the cold build by the core count.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(jobs.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    build_one(job, i, staging, &home, &gems_out);
                }
            });
        }
    });

    let script = sources_dir().join("build_index.rb");
    run_ok(
        clean_command("ruby")
            .env("HOME", &home)
            .arg(&script)
            .arg(staging),
        "ruby tests/fixtures/build_index.rb",
    );
    fs::remove_dir_all(staging.join("work")).expect("remove build work dir");
    fs::remove_dir_all(&home).expect("remove build home");
}

fn plan_jobs() -> Vec<BuildJob> {
    let gems = sources_dir().join("gems");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&gems)
        .expect("read tests/fixtures/gems")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut jobs = Vec::new();
    for dir in dirs {
        let platforms = dir.join(PLATFORMS_FILE);
        if platforms.is_file() {
            let list = fs::read_to_string(&platforms).expect("read PLATFORMS");
            for platform in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
                jobs.push(BuildJob {
                    source: dir.clone(),
                    platform: Some(platform.to_owned()),
                });
            }
        } else {
            jobs.push(BuildJob {
                source: dir,
                platform: None,
            });
        }
    }
    jobs
}

fn build_one(job: &BuildJob, index: usize, staging: &Path, home: &Path, gems_out: &Path) {
    // Gemspecs may write into their own tree (fixture_native does), so every
    // build runs in a private copy and the committed sources stay pristine.
    let work = staging.join("work").join(index.to_string());
    copy_tree(&job.source, &work);
    // Git checkouts can lose the executable bit; the launcher may exec the
    // gem's executable directly, so it must be executable inside the .gem.
    make_executables_executable(&work.join("exe"));

    let gemspec = fs::read_dir(&work)
        .expect("read gem source")
        .map(|e| e.expect("dir entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "gemspec"))
        .unwrap_or_else(|| panic!("no .gemspec in {}", job.source.display()));

    let mut cmd = clean_command("gem");
    cmd.current_dir(&work)
        .env("HOME", home)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .arg("build")
        .arg(&gemspec);
    if let Some(platform) = &job.platform {
        cmd.env("FIXTURE_PLATFORM", platform);
    }
    let what = format!(
        "gem build {} (platform {})",
        job.source.display(),
        job.platform.as_deref().unwrap_or("default")
    );
    run_ok(&mut cmd, &what);

    let mut built = 0;
    for entry in fs::read_dir(&work).expect("read build dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "gem") {
            let dest = gems_out.join(path.file_name().expect("gem file name"));
            assert!(
                !dest.exists(),
                "two fixture builds produced {}",
                dest.display()
            );
            fs::rename(&path, &dest).expect("move built gem");
            built += 1;
        }
    }
    assert_eq!(built, 1, "{what} should produce exactly one .gem");
}

fn make_executables_executable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod exe");
        }
    }
}

/// Copies the directory tree `from` to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("dir entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("failed to start {what}: {e} (is Ruby installed? apt-get install -y ruby-full)")
    });
    if !out.status.success() {
        panic!(
            "{what} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn load(dir: PathBuf, build_time: Duration) -> Fixtures {
    let manifest_path = dir.join("specs.json");
    let text = fs::read_to_string(&manifest_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", manifest_path.display()));
    let manifest: Value = serde_json::from_str(&text).expect("parse specs.json");
    let gems = manifest["gems"]
        .as_array()
        .expect("specs.json has a gems array")
        .iter()
        .map(parse_gem)
        .collect();
    Fixtures {
        dir,
        gems,
        build_time,
    }
}

fn parse_gem(v: &Value) -> GemFile {
    let s = |key: &str| {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("specs.json entry lacks {key}: {v}"))
            .to_owned()
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    GemFile {
        name: s("name"),
        version: s("version"),
        platform: s("platform"),
        file: s("file"),
        sha256: s("sha256"),
        deps: v["deps"]
            .as_array()
            .map(|deps| {
                deps.iter()
                    .map(|d| Dep {
                        name: d["name"].as_str().expect("dep name").to_owned(),
                        requirement: strings(&d["requirement"]),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        extensions: strings(&v["extensions"]),
        executables: strings(&v["executables"]),
    }
}

/// The `fixture_native` variant RubyGems picks on this machine.
pub fn local_platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64-linux",
        "aarch64" => "aarch64-linux",
        other => panic!("no fixture_native variant for {other}"),
    }
}

/// kamal's locked closure on this machine, sorted by name: (name, version, platform).
pub fn closure() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("fixture_dep_a", "1.2.0", "ruby"),
        ("fixture_dep_b", "0.3.1", "ruby"),
        ("fixture_ext", "1.0.1", "ruby"),
        ("fixture_native", "1.0.0", local_platform()),
        ("kamal", "2.7.0", "ruby"),
        ("ostruct", "0.1.0", "ruby"),
    ]
}

/// The built gem files of kamal's closure on this machine.
pub fn closure_gems() -> Vec<&'static GemFile> {
    let fx = fixtures();
    closure()
        .into_iter()
        .map(|(n, v, p)| fx.gem(n, v, p))
        .collect()
}

/// The fixture kamal's dependencies as `(name, requirement)`, plus `extra`.
pub fn kamal_deps_plus(extra: (&str, &str)) -> Vec<(String, String)> {
    let kamal = fixtures().gem("kamal", "2.7.0", "ruby");
    let mut deps: Vec<(String, String)> = kamal
        .deps
        .iter()
        .map(|d| (d.name.clone(), d.requirement_text()))
        .collect();
    deps.push((extra.0.to_owned(), extra.1.to_owned()));
    deps
}
