//! GIT and PATH sources end to end: kamal locked from a git repository made at test time from the fixture
//! source (served over `file://` and over git's smart HTTP protocol on loopback, through `git http-backend`),
//! or vendored in the app; its dependencies come from the fixture gem server as usual.

use crate::support;

use support::local_platform;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::{
    App, Launcher, Lock, Output, Server, assert_failure, assert_success, clean_command, entries,
    fixtures, which,
};

/// The line the second commit makes `kamal version` print: building the branch head instead of the locked
/// revision shows up in the output.
const HEAD_VERSION_LINE: &str = "  puts \"#{spec.version}-head\"";

fn kamal_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gems/kamal")
}

/// A copy of the fixture kamal source with an executable `exe/kamal` (checkouts may drop the bit).
fn kamal_copy(dest: &Path) {
    use std::os::unix::fs::PermissionsExt;
    support::copy_tree(&kamal_source(), dest);
    fs::set_permissions(dest.join("exe/kamal"), fs::Permissions::from_mode(0o755))
        .expect("chmod exe/kamal");
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    fs::write(path, text.replacen(from, to, 1)).expect("write edit");
}

/// Runs git with a fixed identity and no user or system configuration; returns trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = clean_command("git")
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "fixture")
        .env("GIT_AUTHOR_EMAIL", "fixture@example.invalid")
        .env("GIT_COMMITTER_NAME", "fixture")
        .env("GIT_COMMITTER_EMAIL", "fixture@example.invalid")
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Bare repositories under one root (the smart-HTTP project root): `kamal.git` with two commits.
struct Repos {
    root: tempfile::TempDir,
    /// The commit the lockfile locks: the fixture as is (prints `2.7.0`).
    first: String,
    /// The branch head: prints `2.7.0-head`.
    second: String,
}

impl Repos {
    fn bare(&self, name: &str) -> PathBuf {
        self.root.path().join("served").join(name)
    }

    fn file_url(&self, name: &str) -> String {
        format!("file://{}", self.bare(name).display())
    }

    fn project_root(&self) -> PathBuf {
        self.root.path().join("served")
    }
}

/// The kamal repository; with `submodule`, the first commit also has `vendor/assets` as a submodule (its own
/// repository, `assets.git`) whose `extra.txt` the gemspec packages.
fn kamal_repos(submodule: bool) -> Repos {
    let root = tempfile::Builder::new()
        .prefix("git-repos-")
        .tempdir()
        .expect("create repos dir");
    let work = root.path().join("work/kamal");
    let served = root.path().join("served");
    fs::create_dir_all(&served).expect("create served dir");
    kamal_copy(&work);
    git(&work, &["init", "-q", "-b", "main"]);
    if submodule {
        let assets = root.path().join("work/assets");
        fs::create_dir_all(&assets).expect("create assets");
        fs::write(assets.join("extra.txt"), "from the submodule\n").expect("write extra.txt");
        git(&assets, &["init", "-q", "-b", "main"]);
        git(&assets, &["add", "."]);
        git(&assets, &["commit", "-q", "-m", "assets"]);
        let bare = served.join("assets.git");
        git(
            root.path(),
            &[
                "clone",
                "-q",
                "--bare",
                &assets.display().to_string(),
                &bare.display().to_string(),
            ],
        );
        git(
            &work,
            &[
                "-c",
                "protocol.file.allow=always",
                "submodule",
                "add",
                "-q",
                &bare.display().to_string(),
                "vendor/assets",
            ],
        );
        edit(
            &work.join("kamal.gemspec"),
            "spec.files = Dir[\"lib/**/*.rb\", \"exe/*\"]",
            "spec.files = Dir[\"lib/**/*.rb\", \"exe/*\", \"vendor/assets/*.txt\"]",
        );
    }
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "kamal 2.7.0"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    edit(
        &work.join("exe/kamal"),
        "  puts spec.version",
        HEAD_VERSION_LINE,
    );
    git(&work, &["commit", "-q", "-am", "print the head's version"]);
    let second = git(&work, &["rev-parse", "HEAD"]);
    git(
        root.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            &served.join("kamal.git").display().to_string(),
        ],
    );
    Repos {
        root,
        first,
        second,
    }
}

/// The fixture lockfile with kamal moved into a `GIT` (or `PATH`) block, as `gem "kamal", git: …` locks it.
fn lockfile_with_kamal_from(server: &Server, block_header: &str, options: &str) -> String {
    let kamal = fixtures().gem("kamal", "2.7.0", "ruby");
    let mut block = format!("{block_header}\n{options}  specs:\n    kamal (2.7.0)\n");
    for dep in &kamal.deps {
        block.push_str(&format!(
            "      {} ({})\n",
            dep.name,
            dep.requirement_text()
        ));
    }
    let rest = Lock::new(server.url())
        .remove_spec("kamal")
        .dependencies(&["kamal!", "rails (~> 7.2.2, >= 7.2.2.1)", "unbuildable_pg"])
        .render();
    format!("{block}\n{rest}")
}

fn git_lockfile(server: &Server, remote: &str, revision: &str, extra: &str) -> String {
    lockfile_with_kamal_from(
        server,
        "GIT",
        &format!("  remote: {remote}\n  revision: {revision}\n  branch: main\n{extra}"),
    )
}

fn path_lockfile(server: &Server, path: &str) -> String {
    lockfile_with_kamal_from(server, "PATH", &format!("  remote: {path}\n"))
}

fn run(launcher: &Launcher, args: &[&str]) -> Output {
    launcher.clone().args(args).run()
}

/// Installed kamal units (`v2/store/<abi>/kamal-2.7.0-<key>`).
fn kamal_units(launcher: &Launcher) -> Vec<PathBuf> {
    let store = launcher.layout_root().join("store");
    let mut out = Vec::new();
    for abi in entries(&store) {
        for unit in entries(&store.join(&abi)) {
            if unit.starts_with("kamal-2.7.0-") {
                out.push(store.join(&abi).join(unit));
            }
        }
    }
    out
}

/// The `v2/git/<remote>/<revision>` directories.
fn git_revisions(launcher: &Launcher) -> Vec<PathBuf> {
    let git = launcher.layout_root().join("git");
    entries(&git)
        .into_iter()
        .flat_map(|r| {
            entries(&git.join(&r))
                .into_iter()
                .map(move |rev| (r.clone(), rev))
        })
        .map(|(r, rev)| git.join(r).join(rev))
        .collect()
}

#[track_caller]
fn assert_locked_kamal_runs(launcher: &Launcher) {
    let out = run(launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(
        out.stdout, "2.7.0\n",
        "the locked revision, not the branch head:\n{out}"
    );
    let out = run(launcher, &["exec", "--", "specs"]);
    assert_success(&out);
    let lines = out.stdout_lines();
    for line in [
        "ext=hello from C",
        "ostruct=0.1.0",
        "dep_b=0.3.1",
        &format!("native={}", local_platform()),
        "kamal 2.7.0 ruby",
        "fixture_dep_a 1.2.0 ruby",
    ] {
        assert!(lines.contains(&line), "missing {line:?}:\n{out}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// A smart-HTTP git server: `git http-backend` behind a minimal CGI bridge on loopback.

struct GitHttp {
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct GitHttpOptions {
    /// Forward the client's `Git-Protocol` header: protocol v2, where any commit can be fetched. Without it
    /// the server speaks v0 and refuses commits that are not a ref's tip.
    protocol_v2: bool,
    /// Require this `Authorization` header value.
    auth: Option<String>,
}

impl GitHttp {
    fn start(project_root: &Path, options: GitHttpOptions) -> GitHttp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let root = project_root.to_owned();
        let acceptor = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (root, log, options) = (root.clone(), Arc::clone(&log), options.clone());
                    std::thread::spawn(move || {
                        let _ = serve_cgi(stream, &root, &log, &options);
                    });
                }
            })
        };
        GitHttp {
            port,
            log,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// One request per connection: read it, run `git http-backend` as CGI, relay its answer, close.
fn serve_cgi(
    stream: TcpStream,
    root: &Path,
    log: &Mutex<Vec<String>>,
    options: &GitHttpOptions,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    }
    log.lock().expect("log").push(format!("{method} {target}"));
    let mut out = stream;
    if options.auth.is_some() && header("authorization") != options.auth {
        return out.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", support::default_path())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", &method)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(encoding) = header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if options.protocol_v2
        && let Some(protocol) = header("git-protocol")
    {
        cmd.env("GIT_PROTOCOL", protocol);
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = child.wait_with_output()?;
    let _ = feeder.join();
    let cgi = output.stdout;
    let split = cgi
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| cgi.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head, payload) = match split {
        Some((i, n)) => (
            String::from_utf8_lossy(&cgi[..i]).into_owned(),
            &cgi[i + n..],
        ),
        None => (String::new(), &cgi[..]),
    };
    let mut status = "200 OK".to_owned();
    let mut response = Vec::new();
    for line in head.lines() {
        match line.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_owned(),
            Some(_) => response.extend_from_slice(format!("{line}\r\n").as_bytes()),
            None => {}
        }
    }
    out.write_all(format!("HTTP/1.1 {status}\r\n").as_bytes())?;
    out.write_all(&response)?;
    out.write_all(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            payload.len()
        )
        .as_bytes(),
    )?;
    out.write_all(payload)?;
    out.flush()
}

/// A `git` first on PATH that logs each invocation's arguments, then runs the real git: shows what the
/// launcher ran, and that a warm run runs no git at all.
struct GitSpy {
    dir: tempfile::TempDir,
}

impl GitSpy {
    fn new() -> GitSpy {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("git-spy-")
            .tempdir()
            .expect("create spy dir");
        let real = which("git").expect("git on PATH");
        let script = format!(
            "#!/bin/sh\nprintf 'git %s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            dir.path().join("log").display(),
            real.display()
        );
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).expect("create spy bin");
        fs::write(bin.join("git"), script).expect("write spy");
        fs::set_permissions(bin.join("git"), fs::Permissions::from_mode(0o755)).expect("chmod spy");
        GitSpy { dir }
    }

    /// The launcher, with this spy first on its PATH.
    fn on(&self, launcher: Launcher) -> Launcher {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            support::default_path()
        );
        launcher.env("PATH", path)
    }

    fn log(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn v2() -> GitHttpOptions {
    GitHttpOptions {
        protocol_v2: true,
        auth: None,
    }
}

// ---------------------------------------------------------------------------------------------------------
// GIT

#[test]
fn git_over_file_url_installs_the_locked_revision_with_its_locked_dependencies() {
    let repos = kamal_repos(false);
    let server = Server::start(&fixtures().dir);
    let remote = repos.file_url("kamal.git");
    let app = App::with_lockfile(
        &server.url(),
        &git_lockfile(&server, &remote, &repos.first, ""),
    );
    let launcher = Launcher::new(app.path());
    assert_locked_kamal_runs(&launcher);
    assert_eq!(launcher.env_dirs().len(), 1);
    // kamal itself was built from git, never asked of the gem server.
    assert_eq!(server.count("/gems/kamal-2.7.0.gem"), 0);
    assert!(server.count("/gems/fixture_dep_a-1.2.0.gem") == 1);
    let revisions = git_revisions(&launcher);
    assert_eq!(revisions.len(), 1, "{revisions:?}");
    assert!(revisions[0].ends_with(&repos.first));
    assert!(revisions[0].join("kamal-2.7.0.gem").is_file());
    // Shallow: the server (protocol v2 over file://) hands out the locked commit alone.
    assert!(revisions[0].join("checkout/.git/shallow").is_file());
    let head = git(&revisions[0].join("checkout"), &["rev-parse", "HEAD"]);
    assert_eq!(head, repos.first);

    let out = run(&launcher, &["plan", "--json"]);
    assert_success(&out);
    let plan: Value = serde_json::from_str(&out.stdout).expect("plan JSON");
    let kamal = plan["gems"]
        .as_array()
        .expect("gems")
        .iter()
        .find(|g| g["name"] == "kamal")
        .expect("kamal in the plan")
        .clone();
    assert_eq!(kamal["source_type"], "git");
    assert_eq!(kamal["source"], remote.as_str());
    assert_eq!(kamal["revision"], repos.first.as_str());

    // Locking the head instead is another environment, and prints the head's version.
    app.write_lockfile(&git_lockfile(&server, &remote, &repos.second, ""));
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0-head\n", "{out}");
    assert_eq!(launcher.env_dirs().len(), 2);
    assert_eq!(kamal_units(&launcher).len(), 2);

    let out = run(&launcher, &["cache", "clean"]);
    assert_success(&out);
    assert!(git_revisions(&launcher).is_empty());
}

#[test]
fn git_over_smart_http_fetches_once_then_runs_warm_without_git_or_network() {
    let repos = kamal_repos(false);
    let server = Server::start(&fixtures().dir);
    let http = GitHttp::start(&repos.project_root(), v2());
    let app = App::with_lockfile(
        &server.url(),
        &git_lockfile(&server, &http.url("kamal.git"), &repos.first, ""),
    );
    let spy = GitSpy::new();
    let launcher = spy.on(Launcher::new(app.path()));
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    let git_runs = spy.log();
    assert!(
        git_runs
            .iter()
            .any(|r| r.contains("fetch -q --no-tags --depth 1 origin")),
        "{git_runs:?}"
    );
    let git_requests = http.requests();
    assert!(
        git_requests
            .iter()
            .any(|r| r.starts_with("POST /kamal.git/git-upload-pack")),
        "{git_requests:?}"
    );
    let gem_requests = server.requests().len();
    let checkout = git_revisions(&launcher)[0].join("checkout");
    assert!(checkout.join(".git/shallow").is_file());

    // Warm: the environment is complete; no git, no HTTP at all.
    assert_locked_kamal_runs(&launcher);
    let out = run(&launcher, &["install"]);
    assert_success(&out);
    assert_eq!(http.requests(), git_requests);
    assert_eq!(server.requests().len(), gem_requests);
    assert_eq!(spy.log(), git_runs, "a warm run runs no git");

    // Another app locking the same revision, sharing the cache: the built gem is reused, nothing fetched.
    let other = App::with_lockfile(
        &server.url(),
        &git_lockfile(&server, &http.url("kamal.git"), &repos.first, ""),
    );
    let out = run(
        &launcher.clone().cwd(other.path()),
        &["exec", "--", "version"],
    );
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_eq!(http.requests(), git_requests);
    assert_eq!(spy.log(), git_runs);
}

#[test]
fn git_server_refusing_unadvertised_commits_gets_a_full_fetch() {
    let repos = kamal_repos(false);
    let server = Server::start(&fixtures().dir);
    let http = GitHttp::start(
        &repos.project_root(),
        GitHttpOptions {
            protocol_v2: false,
            auth: None,
        },
    );
    let app = App::with_lockfile(
        &server.url(),
        &git_lockfile(&server, &http.url("kamal.git"), &repos.first, ""),
    );
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["-v", "exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert!(
        out.stderr.contains("fetching all branches and tags"),
        "{out}"
    );
    let checkout = git_revisions(&launcher)[0].join("checkout");
    assert!(!checkout.join(".git/shallow").exists());
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), repos.first);
}

#[test]
fn concurrent_launchers_fetch_and_build_a_revision_once() {
    let repos = kamal_repos(false);
    let server = Server::start(&fixtures().dir);
    let http = GitHttp::start(&repos.project_root(), v2());
    let lockfile = git_lockfile(&server, &http.url("kamal.git"), &repos.first, "");
    let app = App::with_lockfile(&server.url(), &lockfile);
    // What one launcher asks of the git server, measured on a cache of its own.
    let alone = Launcher::new(app.path());
    assert_success(&run(&alone, &["install"]));
    let one_fetch = http.requests().len();

    let shared = Launcher::new(app.path());
    let a = shared.clone().arg("install").spawn();
    let b = shared.clone().arg("install").spawn();
    let (a, b) = (a.wait(), b.wait());
    assert_success(&a);
    assert_success(&b);
    assert_eq!(
        http.requests().len(),
        2 * one_fetch,
        "{:?}",
        http.requests()
    );
    assert_eq!(kamal_units(&shared).len(), 1);
    assert_eq!(git_revisions(&shared).len(), 1);
    let out = run(&shared, &["exec", "--", "version"]);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
}

#[test]
fn git_credentials_come_from_bundler_settings_and_are_kept_out_of_argv_output_and_cache() {
    use base64::Engine as _;
    let repos = kamal_repos(false);
    let server = Server::start(&fixtures().dir);
    let secret = "s3cret-token";
    let http = GitHttp::start(
        &repos.project_root(),
        GitHttpOptions {
            protocol_v2: true,
            auth: Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("deploy:{secret}"))
            )),
        },
    );
    let app = App::with_lockfile(
        &server.url(),
        &git_lockfile(&server, &http.url("kamal.git"), &repos.first, ""),
    );
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_failure(&out);
    assert!(out.stderr.contains("BUNDLE_127__0__0__1"), "{out}");
    assert!(out.stderr.contains(&http.url("kamal.git")), "{out}");
    assert!(launcher.env_dirs().is_empty());

    let spy = GitSpy::new();
    let launcher = spy.on(launcher.env("BUNDLE_127__0__0__1", format!("deploy:{secret}")));
    let out = run(&launcher, &["-v", "exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert!(!out.stderr.contains(secret), "{out}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("deploy:{secret}"));
    let argv = spy.log();
    assert!(argv.iter().any(|a| a.contains("fetch")), "{argv:?}");
    assert!(
        !argv
            .iter()
            .any(|a| a.contains(secret) || a.contains(&encoded)),
        "{argv:?}"
    );
    let config =
        fs::read_to_string(git_revisions(&launcher)[0].join("checkout/.git/config")).unwrap();
    assert!(
        !config.contains(secret) && !config.contains(&encoded),
        "{config}"
    );
}

#[test]
fn a_revision_the_repository_does_not_have_is_a_clear_error() {
    let repos = kamal_repos(false);
    let server = Server::start(&fixtures().dir);
    let http = GitHttp::start(&repos.project_root(), v2());
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let remote = http.url("kamal.git");
    let app = App::with_lockfile(&server.url(), &git_lockfile(&server, &remote, missing, ""));
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_failure(&out);
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stdout, "");
    for needle in [missing, remote.as_str(), "bundle lock --update kamal"] {
        assert!(out.stderr.contains(needle), "missing {needle:?}:\n{out}");
    }
    assert!(launcher.env_dirs().is_empty());
    assert!(git_revisions(&launcher).is_empty());
    // Nothing was downloaded before the failure.
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    // Credentials in the lockfile's remote are never shown.
    let with_userinfo = format!(
        "http://deploy:hunter2@{}",
        remote.trim_start_matches("http://")
    );
    app.write_lockfile(&git_lockfile(&server, &with_userinfo, missing, ""));
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_failure(&out);
    assert!(!out.stderr.contains("hunter2"), "{out}");
    assert!(out.stderr.contains(missing), "{out}");
}

#[test]
fn submodules_are_checked_out_into_the_built_gem() {
    let repos = kamal_repos(true);
    let server = Server::start(&fixtures().dir);
    let app = App::with_lockfile(
        &server.url(),
        &git_lockfile(
            &server,
            &repos.file_url("kamal.git"),
            &repos.first,
            "  submodules: true\n",
        ),
    );
    let launcher = Launcher::new(app.path());
    assert_locked_kamal_runs(&launcher);
    let units = kamal_units(&launcher);
    assert_eq!(units.len(), 1);
    let extra = units[0].join("gems/kamal-2.7.0/vendor/assets/extra.txt");
    assert_eq!(
        fs::read_to_string(&extra).unwrap_or_else(|e| panic!("{}: {e}", extra.display())),
        "from the submodule\n"
    );
}

#[test]
fn git_missing_from_path_is_a_clear_error() {
    let repos = kamal_repos(false);
    let server = Server::start(&fixtures().dir);
    let app = App::with_lockfile(
        &server.url(),
        &git_lockfile(&server, &repos.file_url("kamal.git"), &repos.first, ""),
    );
    let ruby = which("ruby").expect("ruby on PATH");
    let no_git = tempfile::Builder::new()
        .prefix("no-git-path-")
        .tempdir()
        .expect("create dir");
    std::os::unix::fs::symlink("/bin/sh", no_git.path().join("sh")).expect("symlink sh");
    let launcher = Launcher::new(app.path())
        .env("PATH", no_git.path())
        .env("KAMAL_LAUNCHER_RUBY", &ruby);
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_failure(&out);
    assert!(out.stderr.contains("`git`"), "{out}");
    assert!(out.stderr.contains("apt-get install git"), "{out}");
    assert!(out.stderr.contains("kamal"), "{out}");
    assert!(launcher.env_dirs().is_empty());
}

#[test]
fn offline_uses_the_cached_checkout_and_names_what_is_missing() {
    let repos = kamal_repos(false);
    let server = Server::start(&fixtures().dir);
    let http = GitHttp::start(&repos.project_root(), v2());
    let remote = http.url("kamal.git");
    let app = App::with_lockfile(
        &server.url(),
        &git_lockfile(&server, &remote, &repos.first, ""),
    );
    let launcher = Launcher::new(app.path());

    let out = run(&launcher, &["--offline", "exec", "--", "version"]);
    assert_failure(&out);
    assert!(
        out.stderr.contains("offline, and not in the cache"),
        "{out}"
    );
    assert!(out.stderr.contains("kamal-2.7.0"), "{out}");
    assert!(out.stderr.contains(&remote), "{out}");
    assert!(http.requests().is_empty());

    assert_success(&run(&launcher, &["install"]));
    let fetched = http.requests().len();
    // Without the environment, the installed gem and the built .gem, the checkout is enough.
    let v1 = launcher.layout_root();
    fs::remove_dir_all(v1.join("envs")).unwrap();
    for unit in kamal_units(&launcher) {
        fs::remove_dir_all(unit).unwrap();
    }
    fs::remove_file(git_revisions(&launcher)[0].join("kamal-2.7.0.gem")).unwrap();
    let out = run(&launcher, &["--offline", "exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_eq!(http.requests().len(), fetched);
}

// ---------------------------------------------------------------------------------------------------------
// PATH

#[test]
fn path_source_runs_from_anywhere_in_the_app_and_rebuilds_only_when_it_changes() {
    let server = Server::start(&fixtures().dir);
    let app = App::with_lockfile(&server.url(), &path_lockfile(&server, "vendor/kamal"));
    let vendored = app.path().join("vendor/kamal");
    kamal_copy(&vendored);
    let launcher = Launcher::new(app.path());
    assert_locked_kamal_runs(&launcher);
    let first_envs = launcher.env_dirs();
    assert_eq!(first_envs.len(), 1);
    let units = kamal_units(&launcher);
    assert_eq!(units.len(), 1);
    // Nothing was written into the app's vendored gem (the .gem goes to the cache's temporary area).
    assert!(!entries(&vendored).iter().any(|f| f.ends_with(".gem")));

    for cwd in [app.path().join("config"), vendored.join("lib")] {
        let out = run(&launcher.clone().cwd(&cwd), &["exec", "--", "version"]);
        assert_success(&out);
        assert_eq!(out.stdout, "2.7.0\n", "from {}:\n{out}", cwd.display());
        assert_eq!(out.stderr, "", "warm from {}:\n{out}", cwd.display());
    }
    assert_eq!(launcher.env_dirs(), first_envs);
    assert_eq!(kamal_units(&launcher), units);

    edit(
        &vendored.join("exe/kamal"),
        "  puts spec.version",
        "  puts \"#{spec.version}-edited\"",
    );
    let out = run(
        &launcher.clone().cwd(&app.path().join("config")),
        &["exec", "--", "version"],
    );
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0-edited\n", "{out}");
    let edited_envs = launcher.env_dirs();
    assert_eq!(edited_envs.len(), 2);
    assert_eq!(kamal_units(&launcher).len(), 2);

    // Unchanged since: the same environment, warm, nothing rebuilt.
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0-edited\n", "{out}");
    assert_eq!(out.stderr, "", "{out}");
    assert_eq!(launcher.env_dirs(), edited_envs);
    assert_eq!(kamal_units(&launcher).len(), 2);

    let out = run(&launcher, &["plan", "--json"]);
    assert_success(&out);
    assert!(out.stdout.contains("\"source_type\": \"path\""), "{out}");
}

#[test]
fn path_source_that_does_not_exist_names_the_resolved_directory() {
    let server = Server::start(&fixtures().dir);
    let app = App::with_lockfile(&server.url(), &path_lockfile(&server, "vendor/kamal"));
    let launcher = Launcher::new(app.path());
    let out = run(
        &launcher.clone().cwd(&app.path().join("config")),
        &["exec", "--", "version"],
    );
    assert_failure(&out);
    assert_eq!(out.code(), Some(1));
    let resolved = app.path().join("vendor/kamal");
    assert!(
        out.stderr.contains(&resolved.display().to_string()),
        "{out}"
    );
    assert!(out.stderr.contains("vendor/kamal"), "{out}");
    assert!(server.requests().is_empty());
}

#[test]
fn path_source_whose_gemspec_disagrees_with_the_lockfile_says_to_relock() {
    let server = Server::start(&fixtures().dir);
    let app = App::with_lockfile(&server.url(), &path_lockfile(&server, "vendor/kamal"));
    let vendored = app.path().join("vendor/kamal");
    kamal_copy(&vendored);
    edit(
        &vendored.join("kamal.gemspec"),
        "spec.version = \"2.7.0\"",
        "spec.version = \"2.8.0\"",
    );
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_failure(&out);
    assert!(out.stderr.contains("kamal-2.8.0"), "{out}");
    assert!(out.stderr.contains("bundle lock"), "{out}");
    assert!(launcher.env_dirs().is_empty());
}

/// kamal installed from a git revision over file://, and the gem built from it; the rest is kept alive with it.
struct BuiltFromGit {
    _repos: Repos,
    _server: Server,
    _app: App,
    launcher: Launcher,
    built: PathBuf,
}

fn installed_from_git() -> BuiltFromGit {
    let repos = kamal_repos(false);
    let server = Server::start(&fixtures().dir);
    let remote = repos.file_url("kamal.git");
    let app = App::with_lockfile(
        &server.url(),
        &git_lockfile(&server, &remote, &repos.first, ""),
    );
    let launcher = Launcher::new(app.path());
    assert_locked_kamal_runs(&launcher);
    let built = git_revisions(&launcher)[0].join("kamal-2.7.0.gem");
    BuiltFromGit {
        _repos: repos,
        _server: server,
        _app: app,
        launcher,
        built,
    }
}

#[test]
fn a_gem_built_from_git_that_was_damaged_since_is_built_again_not_installed() {
    let BuiltFromGit {
        launcher, built, ..
    } = &installed_from_git();
    let good = fs::read(built).unwrap();
    // Half of it, as a crash or a bad copy leaves it; the installed kamal goes too, so that it is installed again.
    fs::write(built, &good[..good.len() / 2]).unwrap();
    for unit in kamal_units(launcher) {
        fs::remove_dir_all(unit).unwrap();
    }
    let out = run(launcher, &["install"]);
    assert_success(&out);
    assert_eq!(
        fs::read(built).unwrap().len(),
        good.len(),
        "the damaged gem was not built again"
    );
    assert_locked_kamal_runs(launcher);
}

#[test]
fn a_gem_built_from_git_is_built_once_and_reused() {
    let BuiltFromGit {
        launcher, built, ..
    } = &installed_from_git();
    let before = fs::metadata(built).unwrap().modified().unwrap();
    // Installing again needs the built gem: the intact one is used as it is, not built again.
    for unit in kamal_units(launcher) {
        fs::remove_dir_all(unit).unwrap();
    }
    assert_success(&run(launcher, &["install"]));
    assert_eq!(
        fs::metadata(built).unwrap().modified().unwrap(),
        before,
        "built again"
    );
}
