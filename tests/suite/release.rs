//! Releases. `scripts/release-assets` (what the release workflow runs for each target) writes the platform gem, the
//! ruby gem and a SHA256SUMS covering every gem, reproducibly, and merges per-target artifacts safely. `install.sh`
//! outside a checkout (or with `--release`) installs a published release from a loopback server laid out like
//! GitHub's releases: under dash and under busybox sh, each with nothing on PATH but the tools install.sh says it
//! needs; a tampered gem or a missing platform is refused with nothing installed.

use crate::support;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use support::{
    Fault, Output, Server, assert_failure, assert_success, clean_command, require_ruby, sha256_hex,
    which,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Fixed, so two builds compare byte for byte whatever is committed in between.
const SOURCE_DATE_EPOCH: &str = "1700000000";
/// What install.sh's release mode runs besides the shell and a downloader (curl or wget), as its header lists them;
/// the runs below have nothing else on PATH.
const TOOLS: &[&str] = &[
    "sha256sum",
    "tar",
    "gzip",
    "uname",
    "mkdir",
    "mv",
    "rm",
    "chmod",
    "ln",
    "readlink",
];
/// Platforms package-gems publishes whose names every RubyGems keeps as they are.
const KEPT_NAMES: &[&str] = &[
    "aarch64-linux-musl",
    "x86_64-linux-musl",
    "arm64-darwin",
    "x86_64-darwin",
];
/// A release build of the debug binary gzips 70 MB in Ruby.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn launcher_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kamal-launcher"))
}

/// Cargo's 1.2.0-beta.1 is RubyGems' 1.2.0.beta.1.
fn gem_version() -> String {
    VERSION.replace('-', ".")
}

fn ruby_gem() -> String {
    format!("kamal-launcher-{}.gem", gem_version())
}

fn platform_gem(platform: &str) -> String {
    format!("kamal-launcher-{}-{platform}.gem", gem_version())
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

// ---- scripts/release-assets ----

fn release_assets(args: &[&OsStr]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = clean_command(repo().join("scripts/release-assets"));
    cmd.args(args)
        .env("HOME", home.path())
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH);
    support::spawn(cmd).wait_timeout(BUILD_TIMEOUT)
}

/// The platform gems this machine takes, best first, by `kl_platforms` itself.
fn host_platforms() -> Vec<String> {
    let mut cmd = clean_command("sh");
    cmd.args(["-c", ". \"$1\" && kl_platforms", "sh"])
        .arg(repo().join("src/platform.sh"));
    let out = support::spawn(cmd).wait();
    assert_success(&out);
    out.stdout.split_whitespace().map(str::to_owned).collect()
}

struct HostRelease {
    /// What `scripts/release-assets --binary <this test's kamal-launcher> DIR` wrote.
    dist: PathBuf,
    platforms: Vec<String>,
    /// The platform gem's file name.
    gem: String,
}

/// One release of this machine's platform, built once per test process: gzipping the debug binary takes a while.
fn host_release() -> &'static HostRelease {
    static HOST: OnceLock<HostRelease> = OnceLock::new();
    HOST.get_or_init(|| {
        require_ruby();
        let dist = process_scratch().join("host-dist");
        let out = release_assets(&[os("--binary"), launcher_bin().as_os_str(), dist.as_os_str()]);
        assert_success(&out);
        let platforms = host_platforms();
        let gem = gem_names(&dist)
            .into_iter()
            .find(|name| platforms.iter().any(|p| *name == platform_gem(p)))
            .unwrap_or_else(|| panic!("no gem for {platforms:?} in {}:\n{out}", dist.display()));
        HostRelease {
            dist,
            platforms,
            gem,
        }
    })
}

/// `target/tmp/release-PID`, for what lives as long as this process; those of processes gone are removed (a
/// static is never dropped, and another `cargo test` may be running in the same checkout).
fn process_scratch() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    if let Ok(entries) = fs::read_dir(root) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("release-"))
                .and_then(|p| p.parse::<libc::pid_t>().ok())
            else {
                continue;
            };
            // SAFETY: kill with signal 0 only checks whether the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            if !alive {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(format!("release-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `.gem` files in `dir`, sorted by name.
fn gem_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".gem"))
        .collect();
    names.sort();
    names
}

/// SHA256SUMS as it must be: `HEX  NAME` for every gem in `dir`, sorted by name.
fn expected_sums(dir: &Path) -> String {
    gem_names(dir)
        .iter()
        .map(|name| {
            format!(
                "{}  {name}\n",
                sha256_hex(&fs::read(dir.join(name)).unwrap())
            )
        })
        .collect()
}

/// Every entry under `root`: mode and content digest (links: their target), by relative path.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("link {}", fs::read_link(&path).unwrap().display()),
                );
            } else if meta.is_dir() {
                out.insert(rel, format!("dir {mode:o}"));
                walk(root, &path, out);
            } else {
                let digest = sha256_hex(&fs::read(&path).unwrap());
                out.insert(rel, format!("file {mode:o} {digest}"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// `libexec/kamal-launcher` in the gem's data.tar.gz: bytes and mode.
fn gem_binary(gem: &Path) -> (Vec<u8>, u32) {
    let mut outer = tar::Archive::new(fs::File::open(gem).unwrap());
    for entry in outer.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.path().unwrap() != Path::new("data.tar.gz") {
            continue;
        }
        let mut data = tar::Archive::new(flate2::read::GzDecoder::new(entry));
        for file in data.entries().unwrap() {
            let mut file = file.unwrap();
            if file.path().unwrap() == Path::new("libexec/kamal-launcher") {
                let mode = file.header().mode().unwrap();
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).unwrap();
                return (bytes, mode);
            }
        }
    }
    panic!("{} holds no libexec/kamal-launcher", gem.display());
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn release_assets_writes_the_platform_gem_the_ruby_gem_and_their_sums_reproducibly() {
    let host = host_release();
    let dist = &host.dist;
    assert_eq!(
        gem_names(dist),
        {
            let mut both = vec![host.gem.clone(), ruby_gem()];
            both.sort();
            both
        },
        "this machine's platform gem ({:?}) and the ruby gem",
        host.platforms
    );
    let mut files: Vec<_> = fs::read_dir(dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        3,
        "the gems and SHA256SUMS, nothing else: {files:?}"
    );
    let sums = fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    assert_eq!(sums, expected_sums(dist));

    // The format is the one the standard tools check.
    let mut check = match which("sha256sum") {
        Some(tool) => clean_command(tool),
        None => {
            let mut shasum = clean_command("shasum");
            shasum.args(["-a", "256"]);
            shasum
        }
    };
    check.arg("-c").arg("SHA256SUMS").current_dir(dist);
    let checked = support::spawn(check).wait();
    assert_success(&checked);

    // The platform gem carries exactly the binary given, executable.
    let (binary, mode) = gem_binary(&dist.join(&host.gem));
    assert!(
        binary == fs::read(launcher_bin()).unwrap(),
        "libexec/kamal-launcher differs from {}",
        launcher_bin().display()
    );
    assert_eq!(mode & 0o777, 0o755);

    // Run again over the same directory: the same files, byte for byte.
    let again = tempfile::tempdir().unwrap();
    copy_dir(dist, again.path());
    let out = release_assets(&[
        os("--binary"),
        launcher_bin().as_os_str(),
        again.path().as_os_str(),
    ]);
    assert_success(&out);
    let strip_modes = |snap: BTreeMap<PathBuf, String>| -> BTreeMap<PathBuf, String> {
        snap.into_iter()
            .map(|(p, s)| (p, s.rsplit(' ').next().unwrap().to_owned()))
            .collect()
    };
    assert_eq!(
        strip_modes(snapshot(again.path())),
        strip_modes(snapshot(dist)),
        "a second run must write the same bytes"
    );
}

#[test]
fn release_assets_accumulates_targets_merges_artifacts_and_checks_the_tag() {
    require_ruby();
    let tmp = tempfile::tempdir().unwrap();
    let stub = tmp.path().join("stub");
    fs::write(&stub, "#!/bin/sh\necho stub\n").unwrap();
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    let build = |platform: &str, dir: &Path| {
        let out = release_assets(&[
            os("--binary"),
            stub.as_os_str(),
            os("--platform"),
            os(platform),
            dir.as_os_str(),
        ]);
        assert_success(&out);
    };

    // The release workflow's Linux job: one static musl binary, published under both Linux names' platforms,
    // into one directory; SHA256SUMS covers everything there after each run.
    let linux = tmp.path().join("linux");
    build("aarch64-linux-musl", &linux);
    assert_eq!(
        fs::read_to_string(linux.join("SHA256SUMS")).unwrap(),
        expected_sums(&linux)
    );
    build("x86_64-linux-musl", &linux);
    assert_eq!(
        gem_names(&linux),
        [
            platform_gem("aarch64-linux-musl"),
            platform_gem("x86_64-linux-musl"),
            ruby_gem()
        ]
    );
    let sums = fs::read_to_string(linux.join("SHA256SUMS")).unwrap();
    assert_eq!(sums, expected_sums(&linux));
    assert_eq!(sums.lines().count(), 3, "{sums}");

    // The publish job merges every target's artifact: the ruby gem, built on each runner, is the same bytes.
    let mac = tmp.path().join("mac");
    build("arm64-darwin", &mac);
    let mac_intel = tmp.path().join("mac-intel");
    build("x86_64-darwin", &mac_intel);
    let merged = tmp.path().join("merged");
    let out = release_assets(&[
        os("--merge"),
        merged.as_os_str(),
        linux.as_os_str(),
        mac.as_os_str(),
        mac_intel.as_os_str(),
    ]);
    assert_success(&out);
    assert_eq!(
        gem_names(&merged),
        [
            platform_gem("aarch64-linux-musl"),
            platform_gem("arm64-darwin"),
            platform_gem("x86_64-darwin"),
            platform_gem("x86_64-linux-musl"),
            ruby_gem()
        ]
    );
    assert_eq!(
        fs::read_to_string(merged.join("SHA256SUMS")).unwrap(),
        expected_sums(&merged)
    );

    let tag = format!("v{VERSION}");
    let out = release_assets(&[os("--check-tag"), os(&tag), merged.as_os_str()]);
    assert_success(&out);
    assert!(out.stdout.contains("5 gems"), "{out}");
    let out = release_assets(&[os("--check-tag"), os("v999.0.0"), merged.as_os_str()]);
    assert_failure(&out);
    assert!(
        out.stderr
            .contains(&format!("does not match Cargo.toml's version {VERSION}")),
        "{out}"
    );

    // A gem SHA256SUMS does not list, or one whose bytes changed, stops the release.
    let extra = merged.join(platform_gem("aarch64-linux-gnu"));
    fs::copy(merged.join(platform_gem("aarch64-linux-musl")), &extra).unwrap();
    let out = release_assets(&[os("--check-tag"), os(&tag), merged.as_os_str()]);
    assert_failure(&out);
    assert!(
        out.stderr.contains("does not list exactly the gems"),
        "{out}"
    );
    fs::remove_file(&extra).unwrap();
    fs::write(merged.join(platform_gem("arm64-darwin")), "changed").unwrap();
    let out = release_assets(&[os("--check-tag"), os(&tag), merged.as_os_str()]);
    assert_failure(&out);
    assert!(out.stderr.contains("does not match the gems"), "{out}");

    // Two runners that built the same gem differently: refused, naming it.
    fs::write(mac_intel.join(ruby_gem()), "not the same ruby gem").unwrap();
    let refused = tmp.path().join("refused");
    let out = release_assets(&[
        os("--merge"),
        refused.as_os_str(),
        linux.as_os_str(),
        mac_intel.as_os_str(),
    ]);
    assert_failure(&out);
    assert!(
        out.stderr.contains(&format!("{} differs", ruby_gem())),
        "{out}"
    );
}

// ---- install.sh: the release mode ----

#[test]
fn install_sh_carries_src_platform_sh_verbatim() {
    let install = fs::read_to_string(repo().join("install.sh")).unwrap();
    let platform = fs::read_to_string(repo().join("src/platform.sh")).unwrap();
    let begin = install
        .find("\n# ---- begin: a verbatim copy of src/platform.sh")
        .expect("install.sh marks where its copy of src/platform.sh begins");
    let copy = &install[begin + 1..];
    let copy = &copy[copy.find('\n').unwrap() + 1..];
    let end = copy
        .find("# ---- end: src/platform.sh ----\n")
        .expect("install.sh marks where its copy of src/platform.sh ends");
    assert!(
        copy[..end] == platform,
        "install.sh's copy of src/platform.sh differs from it; paste src/platform.sh between the markers again"
    );
}

#[test]
fn release_scripts_are_posix_sh_that_shellcheck_dash_and_busybox_accept() {
    // install.sh and every script: the release's, and the ones CI and developers run (scripts/test, the tiers).
    let mut scripts: Vec<String> = fs::read_dir(repo().join("scripts"))
        .unwrap()
        .map(|e| format!("scripts/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    scripts.sort();
    scripts.insert(0, "install.sh".to_string());
    let shellcheck =
        which("shellcheck").expect("shellcheck is not installed (apt-get install shellcheck)");
    let mut cmd = clean_command(shellcheck);
    cmd.args(["--shell=sh", "--severity=style", "--external-sources"])
        .args(&scripts)
        .current_dir(repo());
    assert_success(&support::spawn(cmd).wait());
    for shell in shells() {
        for script in &scripts {
            let mut cmd = clean_command(&shell.argv[0]);
            cmd.args(&shell.argv[1..])
                .arg("-n")
                .arg(repo().join(script));
            let out = support::spawn(cmd).wait();
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{} cannot parse {script}:\n{out}",
                shell.name
            );
        }
    }
}

/// A shell to run install.sh with, and a PATH of links to the only programs it may use.
struct Shell {
    name: &'static str,
    argv: Vec<OsString>,
    tools: tempfile::TempDir,
}

impl Shell {
    /// dash, with links to the system's downloader (curl, else wget) and TOOLS.
    fn dash() -> Shell {
        let dash =
            which("dash").expect("these tests run install.sh under dash: apt-get install dash");
        let tools = tempfile::Builder::new()
            .prefix("dash-path-")
            .tempdir()
            .unwrap();
        let downloader = ["curl", "wget"]
            .into_iter()
            .find(|t| which(t).is_some())
            .expect("install.sh downloads with curl or wget; neither is on PATH");
        for tool in TOOLS.iter().copied().chain([downloader]) {
            let (name, program) = match which(tool) {
                Some(program) => (tool, program),
                // macOS before 14 has only perl's shasum, which install.sh also takes.
                None if tool == "sha256sum" => {
                    ("shasum", which("shasum").expect("sha256sum or shasum"))
                }
                None => panic!("{tool} is not on PATH"),
            };
            symlink(program, tools.path().join(name)).unwrap();
        }
        Shell {
            name: "dash",
            argv: vec![dash.into()],
            tools,
        }
    }

    /// busybox sh, with links to busybox's own applets only: wget and TOOLS.
    fn busybox() -> Shell {
        let busybox = which("busybox")
            .expect("these tests run install.sh under busybox sh: apt-get install busybox");
        let tools = tempfile::Builder::new()
            .prefix("busybox-path-")
            .tempdir()
            .unwrap();
        for tool in TOOLS.iter().copied().chain(["wget"]) {
            symlink(&busybox, tools.path().join(tool)).unwrap();
        }
        Shell {
            name: "busybox sh",
            argv: vec![busybox.into(), "sh".into()],
            tools,
        }
    }

    /// Removes a program from its PATH.
    fn without(self, tool: &str) -> Shell {
        fs::remove_file(self.tools.path().join(tool)).unwrap();
        self
    }
}

fn shells() -> Vec<Shell> {
    let mut shells = vec![Shell::dash()];
    // Homebrew has no busybox; the Linux runs prove what it proves.
    if cfg!(target_os = "linux") {
        shells.push(Shell::busybox());
    }
    shells
}

/// A loopback server laid out like GitHub releases, `releases/download/vVERSION/` and `releases/latest/download/`
/// both holding `dist`'s files, and a copy of install.sh outside any checkout.
struct Site {
    server: Server,
    files: Vec<String>,
    _root: tempfile::TempDir,
    outside: tempfile::TempDir,
    home: tempfile::TempDir,
    tmpdir: tempfile::TempDir,
}

impl Site {
    fn new(dist: &Path) -> Site {
        let root = tempfile::Builder::new()
            .prefix("releases-")
            .tempdir()
            .unwrap();
        let mut files = Vec::new();
        for entry in fs::read_dir(dist).unwrap() {
            files.push(entry.unwrap().file_name().into_string().unwrap());
        }
        for dir in [
            format!("releases/download/v{VERSION}"),
            "releases/latest/download".into(),
        ] {
            copy_dir(dist, &root.path().join(dir));
        }
        let outside = tempfile::Builder::new()
            .prefix("not-a-checkout-")
            .tempdir()
            .unwrap();
        fs::copy(repo().join("install.sh"), outside.path().join("install.sh")).unwrap();
        Site {
            server: Server::start(root.path()),
            files,
            _root: root,
            outside,
            home: tempfile::tempdir().unwrap(),
            tmpdir: tempfile::tempdir().unwrap(),
        }
    }

    /// As on GitHub: `latest/download/NAME` answers with a redirect to `download/vVERSION/NAME`.
    fn redirect_latest(&self) {
        for name in &self.files {
            self.server.set_fault(
                &format!("/releases/latest/download/{name}"),
                Fault::Redirect(format!("/releases/download/v{VERSION}/{name}")),
            );
        }
    }

    fn releases_url(&self) -> String {
        format!("{}releases", self.server.url())
    }

    fn script(&self) -> PathBuf {
        self.outside.path().join("install.sh")
    }

    fn command(&self, shell: &Shell, cwd: &Path) -> std::process::Command {
        let mut cmd = clean_command(&shell.argv[0]);
        cmd.args(&shell.argv[1..])
            .current_dir(cwd)
            .env("PATH", shell.tools.path())
            .env("HOME", self.home.path())
            .env("TMPDIR", self.tmpdir.path())
            .env("KAMAL_LAUNCHER_RELEASES_URL", self.releases_url());
        cmd
    }

    /// `SHELL SCRIPT ARGS`, from the directory the copy outside the checkout is in.
    fn run(&self, shell: &Shell, script: &Path, args: &[&OsStr]) -> Output {
        let mut cmd = self.command(shell, self.outside.path());
        cmd.arg(script).args(args);
        let out = support::spawn(cmd).wait();
        self.assert_tmp_clean(&out);
        out
    }

    /// `... | SHELL -s -- ARGS` in `cwd`, as `curl -fsSL .../install.sh | sh -s -- ARGS`: a real pipe (made with
    /// shell builtins only), so $0 is the shell's name and the script cannot know where it came from.
    fn run_piped(&self, shell: &Shell, cwd: &Path, args: &[&OsStr]) -> Output {
        let mut cmd = self.command(shell, cwd);
        cmd.arg("-c")
            .arg(r#"while IFS= read -r line; do printf '%s\n' "$line"; done <"$0" | "$@""#)
            .arg(self.script())
            .args(&shell.argv)
            .args(["-s", "--"])
            .args(args);
        let out = support::spawn(cmd).wait();
        self.assert_tmp_clean(&out);
        out
    }

    /// Downloads happen in TMPDIR and are always cleaned up.
    #[track_caller]
    fn assert_tmp_clean(&self, out: &Output) {
        let left: Vec<_> = fs::read_dir(self.tmpdir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            left.is_empty(),
            "install.sh left {left:?} in TMPDIR:\n{out}"
        );
    }

    /// The request paths since the last call, in order.
    fn take_requests(&self) -> Vec<String> {
        let paths = self.server.requests().into_iter().map(|r| r.path).collect();
        self.server.clear_log();
        paths
    }
}

/// The installed launcher is the binary the release carries, executable, and runs.
#[track_caller]
fn assert_installed(bin: &Path, out: &Output) {
    let launcher = bin.join("kamal-launcher");
    let meta =
        fs::metadata(&launcher).unwrap_or_else(|e| panic!("{}: {e}\n{out}", launcher.display()));
    assert_eq!(meta.permissions().mode() & 0o777, 0o755, "{out}");
    assert!(
        fs::read(&launcher).unwrap() == fs::read(launcher_bin()).unwrap(),
        "{} is not the released binary:\n{out}",
        launcher.display()
    );
    let mut version = clean_command(&launcher);
    version.arg("--version");
    let version = support::spawn(version).wait();
    assert_success(&version);
    assert_eq!(version.stdout, format!("kamal-launcher {VERSION}\n"));
    assert!(
        out.stdout.contains(&format!(
            "installed {} (kamal-launcher {VERSION})",
            launcher.display()
        )),
        "{out}"
    );
}

fn installs_reinstalls_and_uninstalls_a_release(shell: Shell) {
    let host = host_release();
    let site = Site::new(&host.dist);
    site.redirect_latest();
    let gem = &host.gem;
    let prefix_dir = tempfile::tempdir().unwrap();
    let prefix = prefix_dir.path().join("prefix");
    let bin = prefix.join("bin");
    let p = prefix.as_os_str();
    let latest = |name: &str| format!("/releases/latest/download/{name}");
    let versioned = |name: &str| format!("/releases/download/v{VERSION}/{name}");

    // The latest release, by a copy of install.sh outside any checkout.
    let out = site.run(
        &shell,
        &site.script(),
        &[os("--prefix"), p, os("--as-kamal")],
    );
    assert_success(&out);
    assert_installed(&bin, &out);
    assert!(
        out.stdout.contains(&format!(
            "installed {} -> kamal-launcher",
            bin.join("kamal").display()
        )),
        "{out}"
    );
    assert_eq!(
        fs::read_link(bin.join("kamal")).unwrap(),
        Path::new("kamal-launcher")
    );
    assert_eq!(
        site.take_requests(),
        [
            latest("SHA256SUMS"),
            versioned("SHA256SUMS"),
            latest(gem),
            versioned(gem)
        ],
        "{} under {}: the list, then the one gem for this machine ({:?})",
        out,
        shell.name,
        host.platforms
    );
    let installed: Vec<_> = snapshot(&bin).into_keys().collect();
    assert_eq!(
        installed,
        [Path::new("kamal"), Path::new("kamal-launcher")],
        "{out}"
    );

    // --release, given the checkout's own install.sh: downloaded all the same (no cargo is on PATH to build with).
    let tag = format!("v{VERSION}");
    let out = site.run(
        &shell,
        &repo().join("install.sh"),
        &[os("--prefix"), p, os("--release"), os(&tag)],
    );
    assert_success(&out);
    assert_installed(&bin, &out);
    assert_eq!(
        site.take_requests(),
        [versioned("SHA256SUMS"), versioned(gem)],
        "{out}"
    );

    // Piped to the shell inside the checkout: $0 is the shell, so this is a download of the latest too.
    let piped_prefix = prefix_dir.path().join("piped");
    let out = site.run_piped(&shell, repo(), &[os("--prefix"), piped_prefix.as_os_str()]);
    assert_success(&out);
    assert_installed(&piped_prefix.join("bin"), &out);
    assert_eq!(site.take_requests()[0], latest("SHA256SUMS"), "{out}");

    for (prefix, with_link) in [(&prefix, true), (&piped_prefix, false)] {
        let bin = prefix.join("bin");
        let out = site.run(
            &shell,
            &site.script(),
            &[os("--prefix"), prefix.as_os_str(), os("--uninstall")],
        );
        assert_success(&out);
        assert!(
            out.stdout.contains(&format!(
                "removed {}\n",
                bin.join("kamal-launcher").display()
            )),
            "{out}"
        );
        assert_eq!(
            out.stdout
                .contains(&format!("removed {}\n", bin.join("kamal").display())),
            with_link,
            "{out}"
        );
        assert_eq!(snapshot(&bin), BTreeMap::new(), "{out}");
    }
    assert_eq!(
        site.take_requests(),
        Vec::<String>::new(),
        "--uninstall downloads nothing"
    );
}

#[test]
fn install_sh_installs_a_release_under_dash() {
    installs_reinstalls_and_uninstalls_a_release(Shell::dash());
}

#[cfg(target_os = "linux")]
#[test]
fn install_sh_installs_a_release_under_busybox_sh_with_busybox_tools_only() {
    installs_reinstalls_and_uninstalls_a_release(Shell::busybox());
}

#[test]
fn install_sh_refuses_a_tampered_gem_and_keeps_what_was_installed() {
    let host = host_release();
    let good = fs::read(host.dist.join(&host.gem)).unwrap();
    let mut tampered = good.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    for shell in shells() {
        let site = Site::new(&host.dist);
        let prefix_dir = tempfile::tempdir().unwrap();
        let prefix = prefix_dir.path().join("prefix");
        let args = [
            os("--prefix"),
            prefix.as_os_str(),
            os("--release"),
            os(VERSION),
        ];
        let out = site.run(&shell, &site.script(), &args);
        assert_success(&out);
        let before = snapshot(&prefix);

        let path = format!("/releases/download/v{VERSION}/{}", host.gem);
        site.server.set_fault(&path, Fault::Body(tampered.clone()));
        let url = format!("{}{}", site.server.url(), &path[1..]);
        let fresh = prefix_dir.path().join("fresh");
        for (what, args) in [
            ("over an install", args),
            (
                "a first install",
                [
                    os("--prefix"),
                    fresh.as_os_str(),
                    os("--release"),
                    os(VERSION),
                ],
            ),
        ] {
            let out = site.run(&shell, &site.script(), &args);
            assert_failure(&out);
            for needle in [
                format!("checksum mismatch for {url}:"),
                format!("expected sha256 {}", sha256_hex(&good)),
                format!("actual   sha256 {}", sha256_hex(&tampered)),
                format!(
                    "(from {}/download/v{VERSION}/SHA256SUMS)",
                    site.releases_url()
                ),
                "nothing was installed".to_owned(),
            ] {
                assert!(
                    out.stderr.contains(&needle),
                    "{what} under {}: no {needle:?} in\n{out}",
                    shell.name
                );
            }
        }
        assert_eq!(
            snapshot(&prefix),
            before,
            "the installed binary stays, and nothing else appears"
        );
        assert!(!fresh.exists(), "a refused first install creates nothing");
    }
}

#[test]
fn install_sh_names_what_is_missing() {
    require_ruby();
    let platforms = host_platforms();
    let foreign = KEPT_NAMES
        .iter()
        .find(|name| !platforms.iter().any(|p| p == *name))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let stub = tmp.path().join("stub");
    fs::write(&stub, "#!/bin/sh\necho stub\n").unwrap();
    let dist = tmp.path().join("dist");
    let out = release_assets(&[
        os("--binary"),
        stub.as_os_str(),
        os("--platform"),
        os(foreign),
        dist.as_os_str(),
    ]);
    assert_success(&out);
    let site = Site::new(&dist);
    let prefix = tmp.path().join("prefix");
    let p = prefix.as_os_str();

    for shell in shells() {
        // A release without this machine's platform.
        let out = site.run(&shell, &site.script(), &[os("--prefix"), p]);
        assert_failure(&out);
        let mut needles = vec![
            format!(
                "{}/latest/download/SHA256SUMS lists no kamal-launcher gem for this machine",
                site.releases_url()
            ),
            platform_gem(foreign),
            "cargo install kamal-launcher".to_owned(),
        ];
        needles.extend(platforms.iter().cloned());
        for needle in needles {
            assert!(
                out.stderr.contains(&needle),
                "under {}: no {needle:?} in\n{out}",
                shell.name
            );
        }
        assert_eq!(
            site.take_requests(),
            ["/releases/latest/download/SHA256SUMS"],
            "nothing but the list is downloaded:\n{out}"
        );

        // A version never released.
        let out = site.run(
            &shell,
            &site.script(),
            &[os("--prefix"), p, os("--release"), os("999.0.0")],
        );
        assert_failure(&out);
        let url = format!("{}/download/v999.0.0/SHA256SUMS", site.releases_url());
        assert!(
            out.stderr.contains(&format!("could not download {url}")),
            "{out}"
        );
        assert!(
            out.stderr.contains("404"),
            "the downloader's reason is shown:\n{out}"
        );
        site.take_requests();

        // Nothing to download with: said before anything is tried.
        let shell = ["curl", "wget"].into_iter().fold(shell, |shell, tool| {
            if shell.tools.path().join(tool).exists() {
                shell.without(tool)
            } else {
                shell
            }
        });
        let out = site.run(&shell, &site.script(), &[os("--prefix"), p]);
        assert_failure(&out);
        assert!(out.stderr.contains("needs curl or wget"), "{out}");
        assert_eq!(site.take_requests(), Vec::<String>::new());

        assert!(!prefix.exists(), "a refused install creates nothing");
    }
}
