//! Realistic Gemfile.lock text for the fixture gems, plus throwaway Rails-ish
//! app directories to run the launcher in.

use std::fs;
use std::path::{Path, PathBuf};

use super::{fixtures, sha256_hex};

/// One `name (version[-platform])` entry of the GEM specs section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedSpec {
    pub name: String,
    pub version: String,
    pub platform: String,
    /// `(name, requirement text)`, e.g. `("fixture_dep_b", "~> 0.3")`.
    pub deps: Vec<(String, String)>,
    /// Hex SHA-256 for CHECKSUMS: the real one for served gems, a stable fake
    /// one for gems the server does not have.
    pub sha256: String,
    pub served: bool,
}

impl LockedSpec {
    pub fn full_name(&self) -> String {
        format!("{}-{}", self.name, self.version_platform())
    }

    pub fn version_platform(&self) -> String {
        if self.platform == "ruby" {
            self.version.clone()
        } else {
            format!("{}-{}", self.version, self.platform)
        }
    }

    fn matches(&self, key: &str) -> bool {
        key == self.name || key == self.full_name()
    }
}

/// `(name-version, platform, [(dependency, requirement)])`.
type UnservedSpec = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Lockfile entries for gems the server never serves: they exist so the
/// launcher has to ignore everything outside kamal's closure.
const UNSERVED: &[UnservedSpec] = &[
    (
        "actionpack-7.2.2.1",
        "ruby",
        &[
            ("activesupport", "= 7.2.2.1"),
            ("nokogiri", ">= 1.8.5"),
            ("rack", ">= 2.2.4, < 3.2"),
        ],
    ),
    (
        "activesupport-7.2.2.1",
        "ruby",
        &[("concurrent-ruby", "~> 1.0, >= 1.3.1")],
    ),
    ("concurrent-ruby-1.3.4", "ruby", &[]),
    ("nokogiri-1.16.0", "aarch64-linux", &[("racc", "~> 1.4")]),
    ("nokogiri-1.16.0", "arm64-darwin", &[("racc", "~> 1.4")]),
    ("nokogiri-1.16.0", "x86_64-linux-gnu", &[("racc", "~> 1.4")]),
    ("racc-1.8.1", "ruby", &[]),
    ("rack-3.1.8", "ruby", &[]),
    (
        "rails-7.2.2.1",
        "ruby",
        &[
            ("actionpack", "= 7.2.2.1"),
            ("activesupport", "= 7.2.2.1"),
            ("railties", "= 7.2.2.1"),
        ],
    ),
    (
        "railties-7.2.2.1",
        "ruby",
        &[
            ("actionpack", "= 7.2.2.1"),
            ("activesupport", "= 7.2.2.1"),
            ("thor", "~> 1.0, >= 1.2.2"),
        ],
    ),
    ("thor-1.3.2", "ruby", &[]),
];

/// Served gems that a lockfile does not lock: the newer fixture_dep_b is on
/// the server only to catch a launcher that resolves instead of reading.
const NOT_LOCKED: &[&str] = &["fixture_dep_b-0.4.0"];

/// Builder for Gemfile.lock text. Defaults to a lock Bundler 2.5 would write
/// for the fixtures, with CHECKSUMS.
#[derive(Debug, Clone)]
pub struct Lock {
    remote: String,
    specs: Vec<LockedSpec>,
    platforms: Vec<String>,
    dependencies: Vec<String>,
    checksums: bool,
    checksum_overrides: Vec<(String, String)>,
    ruby_version: Option<String>,
    bundled_with: Option<String>,
    crlf: bool,
    extra: Vec<String>,
}

impl Lock {
    /// `remote` goes verbatim into `GEM remote:`; use `Server::url()`.
    pub fn new(remote: impl Into<String>) -> Lock {
        let fx = fixtures();
        let mut specs: Vec<LockedSpec> = fx
            .gems
            .iter()
            .filter(|g| !NOT_LOCKED.contains(&g.full_name().as_str()))
            .map(|g| LockedSpec {
                name: g.name.clone(),
                version: g.version.clone(),
                platform: g.platform.clone(),
                deps: g
                    .deps
                    .iter()
                    .map(|d| (d.name.clone(), d.requirement_text()))
                    .collect(),
                sha256: g.sha256.clone(),
                served: true,
            })
            .collect();
        for (name_version, platform, deps) in UNSERVED {
            let (name, version) = name_version.rsplit_once('-').expect("name-version");
            let mut spec = LockedSpec {
                name: name.to_owned(),
                version: version.to_owned(),
                platform: (*platform).to_owned(),
                deps: deps
                    .iter()
                    .map(|(n, r)| ((*n).to_owned(), (*r).to_owned()))
                    .collect(),
                sha256: String::new(),
                served: false,
            };
            spec.sha256 = sha256_hex(format!("not served: {}", spec.full_name()).as_bytes());
            specs.push(spec);
        }
        Lock {
            remote: remote.into(),
            specs,
            platforms: [
                "aarch64-linux",
                "arm64-darwin",
                "ruby",
                "x86_64-linux",
                "x86_64-linux-musl",
            ]
            .map(str::to_owned)
            .to_vec(),
            dependencies: ["kamal", "rails (~> 7.2.2, >= 7.2.2.1)", "unbuildable_pg"]
                .map(str::to_owned)
                .to_vec(),
            checksums: true,
            checksum_overrides: Vec::new(),
            ruby_version: Some("ruby 3.1.2p20".to_owned()),
            bundled_with: Some("2.5.22".to_owned()),
            crlf: false,
            extra: Vec::new(),
        }
    }

    /// Pins this build's kamal-launcher, as `bundle add kamal-launcher` would: one variant per published
    /// platform (not served; each with a stand-in checksum).
    pub fn pin_launcher(mut self) -> Lock {
        let version = env!("CARGO_PKG_VERSION").replace('-', ".");
        for platform in [
            "aarch64-linux-gnu",
            "arm64-darwin",
            "x86_64-darwin",
            "x86_64-linux-gnu",
            "x86_64-linux-musl",
        ] {
            let mut spec = LockedSpec {
                name: "kamal-launcher".to_owned(),
                version: version.clone(),
                platform: platform.to_owned(),
                deps: Vec::new(),
                sha256: String::new(),
                served: false,
            };
            spec.sha256 = sha256_hex(format!("not served: {}", spec.full_name()).as_bytes());
            self = self.add_spec(spec);
        }
        self
    }

    /// Whether to write a CHECKSUMS section (Bundler ≥ 2.5 does by default
    /// for new apps; older lockfiles have none).
    pub fn with_checksums(mut self, on: bool) -> Lock {
        self.checksums = on;
        self
    }

    /// Replaces the CHECKSUMS digest for `key`, which is a gem name (every
    /// platform of it) or a full name like `fixture_native-1.0.0-java`.
    pub fn checksum_override(self, key: &str, sha256_hex: &str) -> Lock {
        self.checksum_raw(key, &format!("sha256={sha256_hex}"))
    }

    /// Writes `text` after the spec in CHECKSUMS verbatim; an empty string
    /// leaves the entry without a checksum, as Bundler does when it has none.
    pub fn checksum_raw(mut self, key: &str, text: &str) -> Lock {
        self.checksum_overrides
            .push((key.to_owned(), text.to_owned()));
        self
    }

    /// Writes CRLF line endings, as a lockfile committed from Windows may have.
    pub fn crlf(mut self, on: bool) -> Lock {
        self.crlf = on;
        self
    }

    /// Appends raw text at the very end (e.g. an unknown section).
    pub fn extra(mut self, text: &str) -> Lock {
        self.extra.push(text.to_owned());
        self
    }

    /// Drops every GEM spec matching `key` (name or full name), leaving any
    /// dependency lines that point at it dangling.
    pub fn remove_spec(mut self, key: &str) -> Lock {
        self.specs.retain(|s| !s.matches(key));
        self
    }

    /// Adds or replaces a GEM spec entry.
    pub fn add_spec(mut self, spec: LockedSpec) -> Lock {
        self.specs.retain(|s| s.full_name() != spec.full_name());
        self.specs.push(spec);
        self
    }

    /// Rewrites the dependency lines of every spec matching `key`.
    pub fn set_deps(mut self, key: &str, deps: &[(&str, &str)]) -> Lock {
        for spec in self.specs.iter_mut().filter(|s| s.matches(key)) {
            spec.deps = deps
                .iter()
                .map(|(n, r)| ((*n).to_owned(), (*r).to_owned()))
                .collect();
        }
        self
    }

    pub fn platforms(mut self, platforms: &[&str]) -> Lock {
        self.platforms = platforms.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// Lines of the DEPENDENCIES section, e.g. `rails (~> 7.2)`.
    pub fn dependencies(mut self, deps: &[&str]) -> Lock {
        self.dependencies = deps.iter().map(|d| (*d).to_owned()).collect();
        self
    }

    /// `None` omits the RUBY VERSION section.
    pub fn ruby_version(mut self, version: Option<&str>) -> Lock {
        self.ruby_version = version.map(str::to_owned);
        self
    }

    /// `None` omits the BUNDLED WITH section.
    pub fn bundled_with(mut self, version: Option<&str>) -> Lock {
        self.bundled_with = version.map(str::to_owned);
        self
    }

    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// The GEM entries in lockfile order.
    pub fn specs(&self) -> Vec<LockedSpec> {
        let mut specs = self.specs.clone();
        // Bundler's order: by name, then version, with `ruby` before other
        // platforms.
        specs.sort_by(|a, b| {
            (&a.name, &a.version, a.platform != "ruby", &a.platform).cmp(&(
                &b.name,
                &b.version,
                b.platform != "ruby",
                &b.platform,
            ))
        });
        specs
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("GEM\n");
        out.push_str(&format!("  remote: {}\n", self.remote));
        out.push_str("  specs:\n");
        let specs = self.specs();
        for spec in &specs {
            out.push_str(&format!(
                "    {} ({})\n",
                spec.name,
                spec.version_platform()
            ));
            let mut deps = spec.deps.clone();
            deps.sort();
            for (name, req) in deps {
                if req.is_empty() {
                    out.push_str(&format!("      {name}\n"));
                } else {
                    out.push_str(&format!("      {name} ({req})\n"));
                }
            }
        }

        out.push_str("\nPLATFORMS\n");
        for platform in &self.platforms {
            out.push_str(&format!("  {platform}\n"));
        }

        out.push_str("\nDEPENDENCIES\n");
        for dep in &self.dependencies {
            out.push_str(&format!("  {dep}\n"));
        }

        if self.checksums {
            out.push_str("\nCHECKSUMS\n");
            for spec in &specs {
                let checksum = self
                    .checksum_overrides
                    .iter()
                    .rev()
                    .find(|(key, _)| spec.matches(key))
                    .map(|(_, text)| text.clone())
                    .unwrap_or_else(|| format!("sha256={}", spec.sha256));
                let head = format!("  {} ({})", spec.name, spec.version_platform());
                if checksum.is_empty() {
                    out.push_str(&format!("{head}\n"));
                } else {
                    out.push_str(&format!("{head} {checksum}\n"));
                }
            }
        }

        if let Some(ruby) = &self.ruby_version {
            out.push_str(&format!("\nRUBY VERSION\n   {ruby}\n"));
        }
        if let Some(bundler) = &self.bundled_with {
            out.push_str(&format!("\nBUNDLED WITH\n   {bundler}\n"));
        }
        for extra in &self.extra {
            out.push_str(extra);
        }

        if self.crlf {
            out.replace('\n', "\r\n")
        } else {
            out
        }
    }
}

/// A throwaway Rails-ish app directory holding `Gemfile` and `Gemfile.lock`.
/// Deleted on drop.
#[derive(Debug)]
pub struct App {
    dir: tempfile::TempDir,
}

impl App {
    pub fn new(lock: &Lock) -> App {
        App::with_lockfile(lock.remote(), &lock.render())
    }

    /// For lockfile text that `Lock` cannot express; `remote` only goes into
    /// the Gemfile's `source` line.
    pub fn with_lockfile(remote: &str, lockfile: &str) -> App {
        let dir = tempfile::Builder::new()
            .prefix("rails-app-")
            .tempdir()
            .expect("create app dir");
        let app = App { dir };
        app.write("Gemfile", &gemfile(remote));
        app.write("Gemfile.lock", lockfile);
        fs::create_dir_all(app.path().join("config")).expect("create config dir");
        app.write(
            "config/deploy.yml",
            "service: fixture-app\nimage: fixture/app\nservers:\n  - web.example.invalid\n",
        );
        app
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn lockfile_path(&self) -> PathBuf {
        self.path().join("Gemfile.lock")
    }

    pub fn write_lockfile(&self, text: &str) {
        self.write("Gemfile.lock", text);
    }

    /// Writes `contents` to `rel` under the app, creating parent dirs.
    pub fn write(&self, rel: &str, contents: &str) {
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dir");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

fn gemfile(remote: &str) -> String {
    format!(
        "source \"{remote}\"\n\
         \n\
         ruby \"3.1.2\"\n\
         \n\
         gem \"rails\", \"~> 7.2.2\", \">= 7.2.2.1\"\n\
         gem \"unbuildable_pg\"\n\
         \n\
         # Deploy this application anywhere as a Docker container\n\
         gem \"kamal\", require: false\n"
    )
}
