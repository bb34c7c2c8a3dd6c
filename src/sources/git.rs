//! GIT sources: the locked revision of a repository, fetched with the `git` binary (shallow where the server
//! allows it), checked out once per revision in the cache, and built into a `.gem`.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;

use super::build::{self, Context};
use crate::cache::{self, Cache};
use crate::children::{self, Terminal};
use crate::error::{Error, Result, redact_url};
use crate::lockfile::Spec;
use crate::settings;

/// Variables that point git at another repository (set, e.g., when the launcher runs from a git hook); the
/// launcher's git commands must act on their own checkout. `git rev-parse --local-env-vars` lists these.
const REPOSITORY_ENV: [&str; 13] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_SHALLOW_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
];

/// One locked revision of a git repository.
#[derive(Debug, Clone)]
pub struct GitSource {
    /// The remote as the lockfile writes it (it may hold credentials: never shown).
    locked: String,
    target: Target,
    revision: String,
    /// Refs outside branches and tags (`ref: refs/pull/1/head`) to fetch when the server refuses the revision.
    extra_refs: Vec<String>,
    submodules: bool,
    glob: Option<String>,
}

/// How git reaches the remote.
#[derive(Debug, Clone)]
enum Target {
    /// HTTP(S): the URL without userinfo, and the userinfo (percent-decoded) if the lockfile had one.
    Http {
        url: String,
        userinfo: Option<String>,
    },
    /// A repository on this machine: an absolute path or a `file://` URL.
    Local(String),
    /// SSH, `git://`, scp-like `host:path`: given to git as written; SSH has its own credentials.
    Other(String),
}

impl GitSource {
    /// Checks the lockfile's GIT block for `name`; a relative local remote is taken from the app's directory.
    pub fn new(
        app_dir: &Path,
        name: &str,
        remote: &str,
        revision: &str,
        reference: Option<&str>,
        submodules: bool,
        glob: Option<&str>,
    ) -> Result<GitSource> {
        let shown = redact_url(remote);
        let hex = revision.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex || !(revision.len() == 40 || revision.len() == 64) {
            return Err(Error::Source(format!(
                "the lockfile locks {name} from git {shown} at revision `{revision}`, which is not a full commit \
                 id; run `bundle lock --update {name}` to record one"
            )));
        }
        if remote.is_empty() || remote.starts_with('-') {
            return Err(Error::Source(format!(
                "the lockfile locks {name} from git remote `{shown}`, which is not a repository URL or path; fix \
                 the Gemfile's `git:` option and run `bundle lock`"
            )));
        }
        let target = if let Some(rest) = remote
            .strip_prefix("https://")
            .or_else(|| remote.strip_prefix("http://"))
        {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let userinfo = rest[..authority_end]
                .rfind('@')
                .map(|at| crate::http::percent_decode(&rest[..at]));
            Target::Http {
                url: shown.clone(),
                userinfo: userinfo.filter(|u| !u.is_empty()),
            }
        } else if remote.starts_with("file://") {
            Target::Local(remote.to_string())
        } else if remote.contains("://") || is_scp_like(remote) {
            Target::Other(remote.to_string())
        } else {
            // Lexically normalized: `--lockfile ../Gemfile.lock` from a subdirectory names the same repository.
            Target::Local(
                crate::install::normalize(&app_dir.join(remote))
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        // Branches and tags come with the full fetch; another ref (`refs/pull/1/head`) must be named.
        let extra_refs = reference
            .filter(|r| r.starts_with("refs/"))
            .filter(|r| !r.starts_with("refs/heads/") && !r.starts_with("refs/tags/"))
            .map(str::to_string)
            .into_iter()
            .collect();
        Ok(GitSource {
            locked: remote.to_string(),
            target,
            revision: revision.to_ascii_lowercase(),
            extra_refs,
            submodules,
            glob: glob.map(str::to_string),
        })
    }

    /// The remote without credentials.
    fn shown(&self) -> String {
        match &self.target {
            Target::Http { url, .. } => url.clone(),
            Target::Local(path) => path.clone(),
            Target::Other(remote) => redact_url(remote),
        }
    }

    /// What git is told to fetch from; credentials travel separately (see [`GitSource::command`]).
    fn url(&self) -> &str {
        match &self.target {
            Target::Http { url, .. } => url,
            Target::Local(path) => path,
            Target::Other(remote) => remote,
        }
    }

    /// Remote, revision and what shapes the checkout and the build.
    pub fn identity(&self) -> String {
        format!(
            "git\0{}\0{}\0{}\0{}",
            self.shown(),
            self.revision,
            self.submodules,
            self.glob.as_deref().unwrap_or("")
        )
    }

    /// For messages.
    pub fn describe(&self) -> String {
        format!("git {} at {}", self.shown(), self.revision)
    }

    /// `v2/git/<remote key>/<revision>[-submodules]/`.
    fn dir(&self, cache: &Cache) -> PathBuf {
        let remote_key = cache::key_of([self.shown().as_str()]);
        let suffix = if self.submodules { "-submodules" } else { "" };
        cache.git(&remote_key, &format!("{}{suffix}", self.revision))
    }

    /// The `.gem` built from the locked revision: from the cache, else fetched and built now. `None` when
    /// offline and neither the gem nor the checkout is cached.
    pub fn built_gem(&self, ctx: &Context<'_>, spec: &Spec) -> Result<Option<PathBuf>> {
        let full_name = spec.full_name();
        let dir = self.dir(ctx.cache);
        let gem = dir.join(format!("{full_name}.gem"));
        let last_used = dir.join("last-used");
        if intact(&gem) {
            cache::touch(&last_used);
            return Ok(Some(gem));
        }
        // One fetch and one build per revision, however many launchers want it.
        let _lock = ctx.cache.lock(&format!(
            "git-{}",
            cache::key_of([self.shown().as_str(), self.revision.as_str()])
        ))?;
        if intact(&gem) {
            cache::touch(&last_used);
            return Ok(Some(gem));
        }
        // Not built yet, or damaged since (its digest no longer matches): built again from the checkout.
        let _ = fs::remove_file(&gem);
        let what = format!("{} from {}", spec.name, self.describe());
        let checkout = dir.join("checkout");
        if !checkout.is_dir() {
            if ctx.offline {
                return Ok(None);
            }
            let git = find_git(ctx.path_var, &what)?;
            let staging = ctx.cache.temp_path("git")?;
            ctx.ui.verbose(&format!("fetching {what}"));
            let fetched = self.fetch(ctx, &git, &staging, spec.name);
            if let Err(e) = fetched {
                let _ = fs::remove_dir_all(&staging);
                return Err(e);
            }
            fs::create_dir_all(&dir).map_err(Error::io("creating the cache directory", &dir))?;
            crate::record::flush_tree(&staging)?;
            cache::publish(&staging, &checkout)?;
        }
        if !last_used.exists() {
            let _ = fs::write(&last_used, "");
        }
        cache::touch(&last_used);

        let gemspec = build::find_gemspec(&checkout, self.glob.as_deref(), spec.name)
            .map_err(|e| {
                Error::Source(format!(
                    "cannot build {what}: {e}; lock a revision that has the gemspec (`bundle lock --update {}`) \
                     or set the Gemfile's `glob:` option",
                    spec.name
                ))
            })?;
        let output = build::temp_gem(ctx.cache, "git-gem")?;
        ctx.ui
            .verbose(&format!("building {what} ({})", gemspec.display()));
        let built = build::gem_build(ctx.cache, ctx.ruby, &gemspec, &output, &what)?;
        if built != full_name {
            let _ = fs::remove_file(&output);
            return Err(Error::Source(format!(
                "{what}: {} builds {built}, but the lockfile locks {full_name}; run `bundle lock --update {}`",
                gemspec
                    .strip_prefix(&checkout)
                    .unwrap_or(&gemspec)
                    .display(),
                spec.name
            )));
        }
        fs::File::open(&output)
            .and_then(|f| f.sync_all())
            .map_err(Error::io("flushing to disk", &output))?;
        let sha256 = crate::record::sha256_file(&output).map_err(Error::io("reading", &output))?;
        cache::publish(&output, &gem)?;
        // Written after the gem: a crash in between leaves a gem without a digest, which is built again.
        cache::write_checked(ctx.cache, &digest_of(&gem), hex::encode(sha256).as_bytes())?;
        Ok(Some(gem))
    }

    /// `git init` + shallow fetch of the revision, else a full fetch; then checkout and submodules.
    fn fetch(&self, ctx: &Context<'_>, git: &Path, staging: &Path, name: &str) -> Result<()> {
        fs::create_dir_all(staging).map_err(Error::io("creating", staging))?;
        self.run(ctx, git, staging, &["init", "-q"], name)?;
        // `origin` lets relative submodule URLs resolve; it never holds credentials.
        self.run(
            ctx,
            git,
            staging,
            &["remote", "add", "origin", self.url()],
            name,
        )?;
        let shallow = self.git(
            ctx,
            git,
            staging,
            &fetch(&["--depth", "1", "origin", &self.revision]),
        )?;
        if !shallow.status.success() {
            // Servers without `uploadpack.allowReachableSHA1InWant` (protocol v0) refuse unadvertised commits.
            ctx.ui.verbose(&format!(
                "{}: shallow fetch of {} refused ({}); fetching all branches and tags",
                self.shown(),
                self.revision,
                last_line(&self.scrub(&shallow.stderr))
            ));
            let everything = [
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ];
            self.run(ctx, git, staging, &fetch(&everything), name)?;
            for extra in &self.extra_refs {
                // Best effort: a ref that is gone is reported below as the missing revision it leaves.
                let refspec = format!("+{extra}:refs/kamal-launcher/extra");
                let _ = self.git(ctx, git, staging, &fetch(&["origin", &refspec]));
            }
        }
        let commit = format!("{}^{{commit}}", self.revision);
        let present = self.git(ctx, git, staging, &["cat-file", "-e", &commit])?;
        if !present.status.success() {
            return Err(Error::Source(format!(
                "revision {} of {name} is not in git {}: the lockfile names a commit that the repository does not \
                 have (force-pushed away, or a branch deleted). Run `bundle lock --update {name}` to lock an \
                 existing revision",
                self.revision,
                self.shown()
            )));
        }
        self.run(
            ctx,
            git,
            staging,
            &[
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "-q",
                "--detach",
                &self.revision,
            ],
            name,
        )?;
        if self.submodules {
            // A local superproject is as trusted as the files beside it; git refuses `file` submodules by
            // default only to protect clones of remote repositories.
            let mut args: Vec<&str> = Vec::new();
            if matches!(self.target, Target::Local(_)) {
                args.extend(["-c", "protocol.file.allow=always"]);
            }
            args.extend(["submodule", "update", "--init", "--recursive"]);
            let mut shallow_args = args.clone();
            shallow_args.extend(["--depth", "1"]);
            let out = self.git(ctx, git, staging, &shallow_args)?;
            if !out.status.success() {
                // A submodule commit that is not a branch tip cannot always be fetched shallowly.
                self.run(ctx, git, staging, &args, name)?;
            }
        }
        Ok(())
    }

    /// Runs git and fails with its (scrubbed) error output.
    fn run(
        &self,
        ctx: &Context<'_>,
        git: &Path,
        dir: &Path,
        args: &[&str],
        name: &str,
    ) -> Result<()> {
        let out = self.git(ctx, git, dir, args)?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = self.scrub(&out.stderr);
        let tail: String = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("\n    {l}"))
            .collect();
        let access = match &self.target {
            Target::Http { url, .. } => {
                let host = settings::host_of(url).unwrap_or("host");
                format!(
                    "for a private repository, give Bundler's credentials for it (e.g. {}=user:token in the \
                     environment or `bundle config set {host} user:token`)",
                    crate::settings::env_key_for(host)
                )
            }
            Target::Local(_) => "check that the repository exists on this machine".to_string(),
            Target::Other(_) => {
                "for SSH, check your key (ssh-agent) and the host's known_hosts entry".into()
            }
        };
        Err(Error::Source(format!(
            "`git {}` failed ({}) for {name} from git {}:{tail}\n  Check the remote and your access to it; {access}",
            subcommand(args),
            out.status,
            self.shown()
        )))
    }

    /// Runs git in `dir`, capturing its output.
    fn git(&self, ctx: &Context<'_>, git: &Path, dir: &Path, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new(git);
        // The user's hooks and fsmonitor daemon have no business in the launcher's private checkout.
        cmd.current_dir(dir)
            .args([
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "core.fsmonitor=false",
            ])
            .args(args);
        for var in REPOSITORY_ENV {
            cmd.env_remove(var);
        }
        // Never wait for a password on the terminal: the launcher runs in CI and hooks.
        cmd.env("GIT_TERMINAL_PROMPT", "0").stdin(Stdio::null());
        if let Some((scope, header)) = self.authorization(ctx.settings) {
            // Through the environment (git >= 2.31), not `-c` in argv, where `ps` would show the secret.
            let n = std::env::var("GIT_CONFIG_COUNT")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            cmd.env("GIT_CONFIG_COUNT", (n + 1).to_string())
                .env(
                    format!("GIT_CONFIG_KEY_{n}"),
                    format!("http.{scope}.extraHeader"),
                )
                .env(format!("GIT_CONFIG_VALUE_{n}"), header);
        }
        // Tracked, so that an interrupt stops it (and ssh, git-remote-https) before the area it writes into goes;
        // ssh may prompt on the terminal.
        children::output(&mut cmd, Terminal::MayPrompt).map_err(|e| {
            Error::Source(format!(
                "could not run {} (for git {}): {e}",
                git.display(),
                self.shown()
            ))
        })
    }

    /// `(URL prefix, "Authorization: Basic …")` for an HTTP(S) remote with credentials: the lockfile's
    /// userinfo, else Bundler's `BUNDLE_<HOST>` setting, as Bundler uses for git remotes. The header is scoped
    /// to the remote's origin, so a redirect elsewhere does not receive it.
    fn authorization(&self, settings: &settings::BundlerSettings) -> Option<(String, String)> {
        let Target::Http { url, userinfo } = &self.target else {
            return None;
        };
        let creds = userinfo
            .clone()
            .or_else(|| settings.credentials_for(url).map(|f| f.value.to_string()))?;
        let creds = if creds.contains(':') {
            creds
        } else {
            format!("{creds}:")
        };
        let scheme_end = url.find("://")? + 3;
        let origin_end = url[scheme_end..]
            .find('/')
            .map_or(url.len(), |i| scheme_end + i);
        Some((
            format!("{}/", &url[..origin_end]),
            format!(
                "Authorization: Basic {}",
                base64::engine::general_purpose::STANDARD.encode(creds)
            ),
        ))
    }

    /// git's output with the lockfile's credentials (if it had any) taken out.
    fn scrub(&self, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        let shown = self.shown();
        let mut text = text.replace(&self.locked, &shown);
        if let Target::Http {
            userinfo: Some(info),
            ..
        } = &self.target
        {
            text = text.replace(info.as_str(), "***");
        }
        text
    }
}

/// The git command in `args` (`checkout` in `-c x=y checkout …`), for messages.
fn subcommand<'a>(args: &[&'a str]) -> &'a str {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if *arg == "-c" {
            rest.next();
        } else if !arg.starts_with('-') {
            return arg;
        }
    }
    ""
}

/// `git` on PATH.
fn find_git(path_var: Option<&OsStr>, what: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path_var.unwrap_or_default())
        .map(|d| d.join("git"))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            Error::Source(format!(
                "{what} needs `git`, which is not on PATH. Install git (Debian/Ubuntu: `sudo apt-get install git`; \
                 Alpine: `apk add git`; macOS: `xcode-select --install`) and run again"
            ))
        })
}

/// `host:path` (no scheme, a colon before any slash) is git's SSH shorthand, e.g. `git@github.com:a/b.git`.
fn is_scp_like(remote: &str) -> bool {
    match (remote.find(':'), remote.find('/')) {
        (Some(colon), Some(slash)) => colon < slash,
        (Some(_), None) => true,
        _ => false,
    }
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
}

/// `git fetch -q --no-tags` followed by `rest`: every fetch here leaves tags alone and stays quiet.
fn fetch<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    ["fetch", "-q", "--no-tags"]
        .into_iter()
        .chain(rest.iter().copied())
        .collect()
}

/// Where a built gem's digest is kept: beside it, written when it was built.
fn digest_of(gem: &Path) -> PathBuf {
    cache::beside(gem, ".sha256")
}

/// Whether the built gem is still what was built: its digest, kept beside it, matches its content.
fn intact(gem: &Path) -> bool {
    let Some(recorded) = cache::read_checked(&digest_of(gem)) else {
        return false;
    };
    crate::record::sha256_file(gem)
        .is_ok_and(|sum| hex::encode(sum).as_bytes() == recorded.trim_ascii_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(remote: &str) -> Result<GitSource> {
        GitSource::new(
            Path::new("/app"),
            "kamal",
            remote,
            "0123456789abcdef0123456789abcdef01234567",
            None,
            false,
            None,
        )
    }

    #[test]
    fn remotes_are_classified_and_credentials_kept_apart() {
        let s = source("https://u:p%40ss@example.com/a/kamal.git").unwrap();
        assert_eq!(s.url(), "https://example.com/a/kamal.git");
        let settings = settings::BundlerSettings::default();
        let (scope, header) = s.authorization(&settings).unwrap();
        assert_eq!(scope, "https://example.com/");
        assert_eq!(
            header,
            format!(
                "Authorization: Basic {}",
                base64::engine::general_purpose::STANDARD.encode("u:p@ss")
            )
        );
        assert!(!s.identity().contains("p%40ss"));
        assert_eq!(
            s.scrub(b"fatal: https://u:p%40ss@example.com/a/kamal.git: 403"),
            "fatal: https://example.com/a/kamal.git: 403"
        );
        assert!(matches!(
            source("git@github.com:a/b.git").unwrap().target,
            Target::Other(_)
        ));
        assert!(matches!(
            source("ssh://git@h/a.git").unwrap().target,
            Target::Other(_)
        ));
        assert_eq!(source("../forks/kamal").unwrap().url(), "/forks/kamal");
        assert_eq!(source("./forks/kamal").unwrap().url(), "/app/forks/kamal");
        assert_eq!(
            source("file:///srv/kamal.git").unwrap().url(),
            "file:///srv/kamal.git"
        );
        assert!(
            source("https://example.com/a.git")
                .unwrap()
                .authorization(&settings)
                .is_none()
        );
    }

    #[test]
    fn bad_revisions_and_remotes_are_refused() {
        let err = GitSource::new(
            Path::new("/app"),
            "kamal",
            "https://example.com/a.git",
            "main",
            None,
            false,
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("bundle lock --update kamal"),
            "{err}"
        );
        let err = source("--upload-pack=touch /tmp/x").unwrap_err();
        assert!(err.to_string().contains("not a repository"), "{err}");
    }

    #[test]
    fn subcommands_for_messages() {
        assert_eq!(subcommand(&["-c", "a=b", "checkout", "-q"]), "checkout");
        assert_eq!(subcommand(&["fetch", "origin"]), "fetch");
        assert_eq!(subcommand(&[]), "");
    }

    #[test]
    fn bundler_host_keys() {
        assert_eq!(
            crate::settings::env_key_for("github.com"),
            "BUNDLE_GITHUB__COM"
        );
        assert_eq!(
            crate::settings::env_key_for("my-host.io"),
            "BUNDLE_MY___HOST__IO"
        );
    }
}
