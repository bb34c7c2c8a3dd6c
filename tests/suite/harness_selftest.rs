//! Checks the integration-test harness itself, so that a failing launcher
//! test can be trusted to be about the launcher: the fixture gems are real
//! and behave as documented under stock RubyGems, the server speaks enough
//! HTTP and injects each fault, lockfiles parse, and process handling works.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Fault, Launcher, Lock, Server, assert_success, clean_command, fixtures};

const WAIT: Duration = Duration::from_secs(10);

const EXPECTED_GEM_FILES: &[&str] = &[
    "fixture_dep_a-1.2.0.gem",
    "fixture_dep_b-0.3.1.gem",
    "fixture_dep_b-0.4.0.gem",
    "fixture_ext-1.0.1.gem",
    "fixture_native-1.0.0-aarch64-linux.gem",
    "fixture_native-1.0.0-arm64-darwin.gem",
    "fixture_native-1.0.0-java.gem",
    "fixture_native-1.0.0-x86_64-linux-musl.gem",
    "fixture_native-1.0.0-x86_64-linux.gem",
    "fixture_native-1.0.0.gem",
    "kamal-2.7.0.gem",
    "ostruct-0.1.0.gem",
    "unbuildable_pg-1.0.0.gem",
];

/// What a lockfile pins for kamal's closure on x86_64-linux.
const LOCKED_CLOSURE: &[(&str, &str, &str)] = &[
    ("fixture_dep_a", "1.2.0", "ruby"),
    ("fixture_dep_b", "0.3.1", "ruby"),
    ("fixture_ext", "1.0.1", "ruby"),
    ("fixture_native", "1.0.0", "x86_64-linux"),
    ("kamal", "2.7.0", "ruby"),
    ("ostruct", "0.1.0", "ruby"),
];

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        output_text(&out)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

#[test]
fn fixture_gems_are_built_and_indexed() {
    let fx = fixtures();
    let mut files: Vec<&str> = fx.gems.iter().map(|g| g.file.as_str()).collect();
    files.sort();
    assert_eq!(files, EXPECTED_GEM_FILES);
    for gem in &fx.gems {
        let bytes = std::fs::read(fx.gem_path(gem)).expect("read gem");
        assert_eq!(support::sha256_hex(&bytes), gem.sha256, "{}", gem.file);
    }

    let kamal = fx.gem("kamal", "2.7.0", "ruby");
    let deps = run_ok(
        clean_command("gem")
            .args(["specification"])
            .arg(fx.gem_path(kamal))
            .arg("dependencies"),
    );
    for dep in ["fixture_ext", "fixture_dep_a", "ostruct", "fixture_native"] {
        assert!(
            deps.contains(&format!("name: {dep}")),
            "gem spec deps:\n{deps}"
        );
    }
    let dep_names: Vec<(&str, String)> = kamal
        .deps
        .iter()
        .map(|d| (d.name.as_str(), d.requirement_text()))
        .collect();
    assert_eq!(
        dep_names,
        [
            ("fixture_dep_a", ">= 1.0".to_owned()),
            ("fixture_ext", "~> 1.0".to_owned()),
            ("fixture_native", "~> 1.0".to_owned()),
            ("ostruct", ">= 0.1".to_owned()),
        ]
    );
    assert_eq!(kamal.executables, ["kamal"]);

    for name in ["fixture_ext", "unbuildable_pg"] {
        let gem = &fx.all(name)[0];
        let extensions = run_ok(
            clean_command("gem")
                .arg("specification")
                .arg(fx.gem_path(gem))
                .arg("extensions"),
        );
        assert!(
            extensions.contains(&format!("ext/{name}/extconf.rb")),
            "{name} must be a C extension gem:\n{extensions}"
        );
        assert_eq!(gem.extensions, [format!("ext/{name}/extconf.rb")]);
    }

    // A launcher may exec the gem's executable directly.
    let listing = gem_data(fx.gem_path(kamal).as_path(), &["-tv", "exe/kamal"]);
    assert!(listing.starts_with("-rwxr-xr-x"), "{listing}");

    for gem in fx.all("fixture_native") {
        let variant = gem_data(
            fx.gem_path(gem).as_path(),
            &["-xO", "lib/fixture_native/variant.rb"],
        );
        assert!(
            variant.contains(&format!("VARIANT = \"{}\"", gem.platform)),
            "{}: {variant}",
            gem.file
        );
    }

    let info = std::fs::read_to_string(fx.info_path("kamal")).expect("info/kamal");
    assert_eq!(
        info,
        format!(
            "---\n2.7.0 fixture_dep_a:>= 1.0,fixture_ext:~> 1.0,fixture_native:~> 1.0,ostruct:>= 0.1|checksum:{},ruby:>= 2.7\n",
            kamal.sha256
        )
    );
    let native_info = std::fs::read_to_string(fx.info_path("fixture_native")).expect("info");
    let x86 = fx.gem("fixture_native", "1.0.0", "x86_64-linux");
    assert!(
        native_info.contains(&format!("\n1.0.0-x86_64-linux |checksum:{},", x86.sha256)),
        "{native_info}"
    );
    let dep_a_info = std::fs::read_to_string(fx.info_path("fixture_dep_a")).expect("info");
    assert!(
        dep_a_info.contains("1.2.0 fixture_dep_b:~> 0.3|checksum:"),
        "{dep_a_info}"
    );

    // The versions file must carry the MD5 of each info file, which is how
    // compact-index clients decide whether their cached copy is stale.
    let md5 = run_ok(
        clean_command("ruby")
            .args(["-rdigest", "-e", "puts Digest::MD5.file(ARGV[0]).hexdigest"])
            .arg(fx.info_path("fixture_dep_b")),
    );
    let versions = std::fs::read_to_string(fx.dir.join("versions")).expect("versions");
    assert!(versions.starts_with("created_at: "), "{versions}");
    assert!(
        versions.contains(&format!("\nfixture_dep_b 0.3.1,0.4.0 {}\n", md5.trim())),
        "{versions}"
    );
}

/// Runs tar with `tar_args` on the data archive inside a .gem.
fn gem_data(gem: &Path, tar_args: &[&str]) -> String {
    run_ok(
        clean_command("/bin/sh")
            .args(["-c", "tar -xOf \"$0\" data.tar.gz | tar -z -f - \"$@\""])
            .arg(gem)
            .args(tar_args),
    )
}

/// Installs the locked closure with plain `gem install` (no launcher) and
/// runs the fixture kamal, pinning versions the way a correct launcher must.
#[test]
fn fixture_kamal_behaves_under_stock_rubygems() {
    let fx = fixtures();
    let gem_home = tempfile::tempdir().expect("gem home");
    let mut install = clean_command("gem");
    install
        .env("HOME", gem_home.path())
        .args([
            "install",
            "--local",
            "--no-document",
            "--ignore-dependencies",
        ])
        .arg("--install-dir")
        .arg(gem_home.path());
    for (name, version, platform) in LOCKED_CLOSURE {
        install.arg(fx.gem_path(fx.gem(name, version, platform)));
    }
    run_ok(&mut install);

    let pins: String = LOCKED_CLOSURE
        .iter()
        .map(|(name, version, _)| format!("gem {name:?}, \"= {version}\"; "))
        .collect();
    let pinned = format!("{pins}load Gem.bin_path(\"kamal\", \"kamal\")");
    let kamal = |script: &str, args: &[&str]| {
        let mut cmd = clean_command("ruby");
        cmd.env("HOME", gem_home.path())
            .env("GEM_HOME", gem_home.path())
            .env("GEM_PATH", gem_home.path())
            .env("MARKER", "a b")
            .args(["-e", script])
            .args(args);
        cmd
    };

    let out = support::spawn(kamal(&pinned, &["version"])).wait();
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");

    let out = support::spawn(kamal(&pinned, &["specs"])).wait();
    assert_success(&out);
    for line in [
        "fixture_dep_b 0.3.1 ruby",
        "fixture_native 1.0.0 x86_64-linux",
        "kamal 2.7.0 ruby",
        "ostruct 0.1.0 ruby",
        "ext=hello from C",
        "ostruct=0.1.0",
        "native=x86_64-linux",
        "dep_b=0.3.1",
    ] {
        assert!(
            out.stdout_lines().contains(&line),
            "missing {line:?}:\n{out}"
        );
    }

    // Without pinning, RubyGems prefers Ruby's newer default ostruct: the
    // fixture really does catch a launcher that does not pin locked versions.
    let naive = "load Gem.bin_path(\"kamal\", \"kamal\")";
    let out = support::spawn(kamal(naive, &["specs"])).wait();
    assert_success(&out);
    assert!(!out.stdout.contains("ostruct=0.1.0"), "{out}");

    let out = support::spawn(kamal(&pinned, &["env", "MARKER", "NOPE"])).wait();
    assert_eq!(out.stdout, "MARKER=a b\nNOPE unset\n", "{out}");

    let out = support::spawn(kamal(&pinned, &["child-env", "MARKER", "NOPE"])).wait();
    assert_success(&out);
    assert_eq!(
        out.stdout, "MARKER=a b\nNOPE unset\n0\nno-bundler\n",
        "{out}"
    );

    let out = support::spawn(kamal(&pinned, &["exit", "7"])).wait();
    assert_eq!(out.code(), Some(7), "{out}");
    assert_eq!(out.stdout, "exiting 7\n");
    assert_eq!(out.stderr, "to-stderr\n");

    let argv = ["with space", "", "\"quoted\" 'single'", "--flag=x", "-v"];
    let mut args = vec!["argv"];
    args.extend(argv);
    let out = support::spawn(kamal(&pinned, &args)).wait();
    assert_success(&out);
    assert_eq!(out.stdout_lines(), argv, "{out}");

    let out = support::spawn(kamal(&pinned, &["defined-bundler"])).wait();
    assert_eq!(out.stdout, "no-bundler\n", "{out}");
    let out = support::spawn(kamal(
        &format!("require 'bundler'; {pinned}"),
        &["defined-bundler"],
    ))
    .wait();
    assert_eq!(out.stdout, "bundler\n", "{out}");

    let mut sleeper = support::spawn(kamal(&pinned, &["sleep-then-exit"]));
    sleeper.wait_for_stdout("ready\n", WAIT);
    sleeper.signal("TERM");
    let out = sleeper.wait_timeout(WAIT);
    assert_eq!(out.signal(), Some(15), "{out}");
}

#[test]
fn spawned_processes_are_captured_and_killed_on_timeout() {
    let mut cmd = clean_command("/bin/sh");
    cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
    let out = support::spawn(cmd).wait();
    assert_eq!(out.code(), Some(3));
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");

    let mut cmd = clean_command("/bin/sh");
    cmd.args(["-c", "echo started; sleep 30 & wait"]);
    let running = support::spawn(cmd);
    let pid = running.pid();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        running.wait_timeout(Duration::from_millis(300))
    }))
    .expect_err("wait_timeout must panic on timeout");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("did not exit"), "{message}");
    assert!(message.contains("started"), "{message}");
    // The whole group, including the backgrounded sleep, must be gone.
    let alive = Command::new("/bin/sh")
        .args(["-c", "kill -0 -- \"$0\" 2>/dev/null"])
        .arg(format!("-{pid}"))
        .status()
        .expect("kill -0");
    assert!(!alive.success(), "process group {pid} survived the timeout");
}

#[test]
fn launcher_builder_runs_in_a_clean_environment() {
    let server_url = "http://127.0.0.1:9/";
    let app = support::App::new(&Lock::new(server_url));
    assert!(app.path().join("Gemfile").is_file());
    assert!(app.lockfile_path().is_file());

    let base = Launcher::new(app.path());
    assert!(!base.cache_path().exists(), "cache must start absent");
    let launcher = base
        .clone()
        .arg("version")
        .env("EXTRA", "1")
        .env_remove("LANG");
    let cmd = launcher.command();
    assert_eq!(cmd.get_program(), env!("CARGO_BIN_EXE_kamal-launcher"));
    assert_eq!(cmd.get_current_dir(), Some(app.path()));
    let args: Vec<_> = cmd.get_args().collect();
    assert_eq!(args, ["version"]);
    let mut env: Vec<(String, String)> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    env.sort();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["EXTRA", "HOME", "KAMAL_LAUNCHER_CACHE_DIR", "PATH"]);
    let value = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(
        value("KAMAL_LAUNCHER_CACHE_DIR").as_deref(),
        base.cache_path().to_str()
    );
    assert_eq!(value("HOME").as_deref(), base.home_path().to_str());
    assert_eq!(launcher.cache_path(), base.cache_path());
}

#[test]
fn lockfile_renders_realistically() {
    let fx = fixtures();
    let lock = Lock::new("http://127.0.0.1:1234/");
    let text = lock.render();
    let kamal = fx.gem("kamal", "2.7.0", "ruby");
    for needle in [
        "GEM\n  remote: http://127.0.0.1:1234/\n  specs:\n",
        "    kamal (2.7.0)\n      fixture_dep_a (>= 1.0)\n      fixture_ext (~> 1.0)\n      fixture_native (~> 1.0)\n      ostruct (>= 0.1)\n",
        "    fixture_dep_a (1.2.0)\n      fixture_dep_b (~> 0.3)\n    fixture_dep_b (0.3.1)\n",
        "    fixture_native (1.0.0)\n    fixture_native (1.0.0-aarch64-linux)\n",
        "    rails (7.2.2.1)\n      actionpack (= 7.2.2.1)\n",
        "    unbuildable_pg (1.0.0)\n",
        "\nPLATFORMS\n  aarch64-linux\n  arm64-darwin\n  ruby\n  x86_64-linux\n  x86_64-linux-musl\n",
        "\nDEPENDENCIES\n  kamal\n",
        "\nCHECKSUMS\n",
        &format!("  kamal (2.7.0) sha256={}\n", kamal.sha256),
        "\nRUBY VERSION\n   ruby 3.1.2p20\n\nBUNDLED WITH\n   2.5.22\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("fixture_dep_b (0.4.0)"), "{text}");

    let tweaked = lock
        .clone()
        .with_checksums(false)
        .crlf(true)
        .extra("\nFUTURE SECTION\n  something\n")
        .render();
    assert!(!tweaked.contains("CHECKSUMS"));
    assert!(tweaked.contains("  kamal (2.7.0)\r\n"));
    assert!(!tweaked.replace("\r\n", "").contains('\n'));

    let bad = "0".repeat(64);
    let overridden = lock
        .clone()
        .checksum_override("fixture_native-1.0.0-java", &bad)
        .checksum_raw("kamal", "")
        .render();
    assert!(overridden.contains(&format!("  fixture_native (1.0.0-java) sha256={bad}\n")));
    assert!(
        overridden.lines().any(|l| l == "  kamal (2.7.0)"),
        "{overridden}"
    );
    assert!(
        !overridden.contains("kamal (2.7.0) sha256="),
        "{overridden}"
    );

    let Some(_) = support::which("bundle") else {
        eprintln!(
            "`bundle` not installed (apt-get install -y bundler): skipping the Bundler parse check"
        );
        return;
    };
    for (name, text) in [("plain", &text), ("crlf", &tweaked)] {
        let app = support::App::with_lockfile(lock.remote(), text);
        let parsed = bundler_parse(app.path());
        // RubyGems before 3.5 folds `x86_64-linux-gnu` into `x86_64-linux`;
        // the lockfile keeps the suffix, as newer Bundlers write it.
        let mut expected: Vec<String> = lock
            .specs()
            .iter()
            .map(|s| s.full_name().replace("-linux-gnu", "-linux"))
            .collect();
        expected.sort();
        assert_eq!(parsed.specs, expected, "{name}");
        assert_eq!(
            parsed.platforms,
            [
                "aarch64-linux",
                "arm64-darwin",
                "ruby",
                "x86_64-linux",
                "x86_64-linux-musl"
            ]
        );
        assert_eq!(parsed.dependencies, ["kamal", "rails", "unbuildable_pg"]);
        assert_eq!(parsed.bundler, "2.5.22");
    }
}

struct Parsed {
    specs: Vec<String>,
    platforms: Vec<String>,
    dependencies: Vec<String>,
    bundler: String,
}

/// Parses `<app>/Gemfile.lock` with the real Bundler, which insists on
/// finding the Gemfile next to it.
fn bundler_parse(app: &Path) -> Parsed {
    let script = r#"
        l = Bundler::LockfileParser.new(File.read(ARGV[0]))
        puts l.specs.map(&:full_name).sort.join(",")
        puts l.platforms.map(&:to_s).sort.join(",")
        puts l.dependencies.keys.sort.join(",")
        puts l.bundler_version
    "#;
    let out = run_ok(
        clean_command("ruby")
            .current_dir(app)
            .env("HOME", app)
            .env("BUNDLE_GEMFILE", app.join("Gemfile"))
            .args(["-rbundler", "-e", script])
            .arg(app.join("Gemfile.lock")),
    );
    let lines: Vec<Vec<String>> = out
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    Parsed {
        specs: lines[0].clone(),
        platforms: lines[1].clone(),
        dependencies: lines[2].clone(),
        bundler: lines[3][0].clone(),
    }
}

// ---- server ----

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).expect("connect");
    // A bound on a broken server, not a synchronisation mechanism.
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream
}

fn send(stream: &mut TcpStream, method: &str, path: &str, headers: &[(&str, &str)]) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("send request");
}

fn parse_head(raw: &[u8]) -> (u16, Vec<(String, String)>, usize) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete head");
    let head = std::str::from_utf8(&raw[..end]).expect("ascii head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .expect("status line")
        .split(' ')
        .nth(1)
        .expect("code");
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header");
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    (status.parse().expect("numeric status"), headers, end + 4)
}

/// One request on its own connection, read to EOF.
fn fetch(server: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut stream = connect(server);
    let mut all = headers.to_vec();
    all.push(("Connection", "close"));
    send(&mut stream, method, path, &all);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let (status, headers, body_start) = parse_head(&raw);
    Response {
        status,
        headers,
        body: raw[body_start..].to_vec(),
    }
}

/// Reads one response with a Content-Length body, leaving the connection
/// usable for the next request.
fn read_response(stream: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if raw.windows(4).any(|w| w == b"\r\n\r\n") {
            let (status, headers, body_start) = parse_head(&raw);
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
                .map_or(0, |(_, v)| v.parse().expect("length"));
            if raw.len() >= body_start + len {
                return Response {
                    status,
                    headers,
                    body: raw[body_start..body_start + len].to_vec(),
                };
            }
        }
        let n = stream.read(&mut buf).expect("read response");
        assert!(n > 0, "connection closed mid-response");
        raw.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn server_serves_gems_and_compact_index() {
    let fx = fixtures();
    let server = Server::start(&fx.dir);
    assert!(server.url().starts_with("http://127.0.0.1:"));
    assert!(server.url().ends_with('/'));

    let kamal = fx.gem("kamal", "2.7.0", "ruby");
    let gem_bytes = std::fs::read(fx.gem_path(kamal)).expect("read gem");
    let res = fetch(&server, "GET", "/gems/kamal-2.7.0.gem", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(res.body, gem_bytes);
    assert_eq!(res.header("Content-Type"), Some("application/octet-stream"));

    let head = fetch(&server, "HEAD", "/gems/kamal-2.7.0.gem", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("Content-Length"),
        Some(gem_bytes.len().to_string().as_str())
    );

    let info = fetch(&server, "GET", "/info/kamal", &[]);
    assert_eq!(info.status, 200);
    assert_eq!(
        info.body,
        std::fs::read(fx.info_path("kamal")).expect("read info")
    );
    let etag = info.header("ETag").expect("info has an ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let cached = fetch(&server, "GET", "/info/kamal", &[("If-None-Match", &etag)]);
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    let stale = fetch(
        &server,
        "GET",
        "/info/kamal",
        &[("If-None-Match", "\"old\"")],
    );
    assert_eq!(stale.status, 200);

    let versions = fetch(&server, "GET", "/versions", &[]);
    assert_eq!(versions.status, 200);
    assert!(versions.body.starts_with(b"created_at: "));

    assert_eq!(
        fetch(&server, "GET", "/gems/nope-1.0.0.gem", &[]).status,
        404
    );
    assert_eq!(fetch(&server, "GET", "/info/rails", &[]).status, 404);
    assert_eq!(
        fetch(&server, "GET", "/gems/../specs.json", &[]).status,
        404
    );
    assert_eq!(fetch(&server, "POST", "/versions", &[]).status, 405);

    // Keep-alive: two requests on one connection.
    let mut stream = connect(&server);
    send(&mut stream, "GET", "/info/fixture_dep_b?x=1", &[]);
    assert_eq!(read_response(&mut stream).status, 200);
    send(&mut stream, "GET", "/info/fixture_dep_a", &[]);
    assert_eq!(read_response(&mut stream).status, 200);
    let log = server.wait_for(|log| log.len() >= 12, WAIT);
    let (a, b) = (&log[10], &log[11]);
    assert_eq!(
        (a.path.as_str(), a.query.as_deref()),
        ("/info/fixture_dep_b", Some("x=1"))
    );
    assert_eq!(a.connection, b.connection);
    assert_eq!(a.header("host"), Some("127.0.0.1"));

    assert_eq!(server.count("/info/kamal"), 3);
    assert_eq!(server.count("/gems/kamal-2.7.0.gem"), 2);
    assert_eq!(server.requests()[1].method, "HEAD");
    server.clear_log();
    assert!(server.requests().is_empty());
}

#[test]
fn server_injects_faults() {
    let fx = fixtures();
    let server = Server::start(&fx.dir);
    let path = "/gems/fixture_dep_a-1.2.0.gem";
    let real = std::fs::read(fx.gem_path(fx.gem("fixture_dep_a", "1.2.0", "ruby"))).expect("gem");

    server.set_fault(path, Fault::Status(500));
    assert_eq!(fetch(&server, "GET", path, &[]).status, 500);
    assert_eq!(fetch(&server, "GET", path, &[]).status, 500);

    server.set_fault(path, Fault::Body(b"tampered".to_vec()));
    let res = fetch(&server, "GET", path, &[]);
    assert_eq!((res.status, res.body.as_slice()), (200, &b"tampered"[..]));

    server.set_fault(path, Fault::Truncate(10));
    let res = fetch(&server, "GET", path, &[]);
    assert_eq!(
        res.header("Content-Length"),
        Some(real.len().to_string().as_str())
    );
    assert_eq!(res.body, real[..10]);

    server.set_fault(path, Fault::Redirect("/gems/elsewhere.gem".into()));
    let res = fetch(&server, "GET", path, &[]);
    assert_eq!(res.status, 302);
    assert_eq!(res.header("Location"), Some("/gems/elsewhere.gem"));

    server.set_fault(
        path,
        Fault::Response {
            status: 503,
            headers: vec![("Retry-After".into(), "1".into())],
            body: b"busy".to_vec(),
        },
    );
    let res = fetch(&server, "GET", path, &[]);
    assert_eq!(res.status, 503);
    assert_eq!(res.header("Retry-After"), Some("1"));

    server.set_fault(path, Fault::Disconnect);
    let mut stream = connect(&server);
    send(&mut stream, "GET", path, &[]);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert!(raw.is_empty(), "got {raw:?}");

    server.clear_faults();
    assert_eq!(fetch(&server, "GET", path, &[]).body, real);

    server.set_fault_times(path, Fault::Status(503), 2);
    let statuses: Vec<u16> = (0..3)
        .map(|_| fetch(&server, "GET", path, &[]).status)
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    // Faults are per path.
    assert_eq!(fetch(&server, "GET", "/info/kamal", &[]).status, 200);

    server.require_basic_auth("user", "s3cret");
    assert_eq!(fetch(&server, "GET", path, &[]).status, 401);
    let res = fetch(
        &server,
        "GET",
        path,
        &[("Authorization", "Basic dXNlcjpzM2NyZXQ=")],
    );
    assert_eq!(res.status, 200);
    assert!(
        server
            .url_with_auth("user", "s3cret")
            .starts_with("http://user:s3cret@127.0.0.1:")
    );
}

#[test]
fn server_stalls_until_released_or_dropped() {
    let fx = fixtures();
    let path = "/gems/kamal-2.7.0.gem";
    let real = std::fs::read(fx.gem_path(fx.gem("kamal", "2.7.0", "ruby"))).expect("gem");
    let server = Server::start(&fx.dir);
    server.set_fault(path, Fault::StallAfter(100));

    let mut stream = connect(&server);
    send(&mut stream, "GET", path, &[("Connection", "close")]);
    server.wait_for_stalled(1, WAIT);
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let body_start = loop {
        let n = stream.read(&mut buf).expect("read partial");
        assert!(n > 0, "closed before the stall point");
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n")
            && raw.len() >= end + 4 + 100
        {
            break end + 4;
        }
    };
    assert_eq!(
        raw.len(),
        body_start + 100,
        "sent more than the stall point"
    );
    server.release();
    stream.read_to_end(&mut raw).expect("read rest");
    assert_eq!(raw[body_start..], real[..]);

    // Dropping the server must not hang on a stalled response, and the
    // client must see the connection end short.
    let mut stream = connect(&server);
    send(&mut stream, "GET", path, &[("Connection", "close")]);
    server.wait_for_stalled(1, WAIT);
    drop(server);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let (_, _, body_start) = parse_head(&raw);
    assert_eq!(raw.len() - body_start, 100);
}
