//! The real kamal 2.12.0 and its whole closure (vendored in tests/fixtures/vendor/kamal-2.12.0, with provenance),
//! served from a loopback gem server, and an app locked against it by the real Bundler: what users run.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{App, Server, clean_command};

/// The served gems, the server and a locked app; made once per test run.
pub struct RealKamal {
    _root: tempfile::TempDir,
    pub server: Server,
    pub app: App,
}

/// The version `kamal version` prints.
pub const REAL_KAMAL_VERSION: &str = "2.12.0";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The world of the real kamal, built on first use.
pub fn real_kamal() -> &'static RealKamal {
    static REAL: OnceLock<RealKamal> = OnceLock::new();
    REAL.get_or_init(|| {
        super::require_ruby();
        let root = tempfile::Builder::new()
            .prefix("real-kamal-")
            .tempdir()
            .unwrap();
        let gems = root.path().join("gems");
        fs::create_dir_all(&gems).unwrap();
        let vendored = repo().join("tests/fixtures/vendor/kamal-2.12.0");
        for entry in fs::read_dir(&vendored).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "gem") {
                fs::copy(&path, gems.join(path.file_name().unwrap())).unwrap();
            }
        }
        run(
            clean_command("ruby")
                .arg(repo().join("tests/fixtures/build_index.rb"))
                .arg(root.path()),
            "build_index.rb",
        );
        let server = Server::start(root.path());
        let url = server.url();
        let app = App::with_lockfile(&url, "");
        fs::remove_file(app.lockfile_path()).unwrap();
        app.write(
            "Gemfile",
            &format!("source \"{url}\"\n\ngem \"kamal\", \"{REAL_KAMAL_VERSION}\"\n"),
        );
        // The real Bundler resolves and locks, as in an app; its home is kept out of the developer's.
        let home = tempfile::tempdir().unwrap();
        run(
            clean_command("bundle")
                .arg("lock")
                .current_dir(app.path())
                .env("HOME", home.path())
                .env("BUNDLE_GEMFILE", app.path().join("Gemfile")),
            "bundle lock",
        );
        RealKamal {
            _root: root,
            server,
            app,
        }
    })
}

impl RealKamal {
    /// The lockfile Bundler wrote.
    pub fn lockfile(&self) -> PathBuf {
        self.app.lockfile_path()
    }
}

fn run(cmd: &mut std::process::Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (apt-get install -y ruby-full bundler)"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
