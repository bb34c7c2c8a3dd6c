//! Steps 4 and 5: fetch each `.gem` of the closure from its source (or a Bundler mirror) into the
//! content-addressed download cache, verifying its SHA-256 before it is stored under its final name.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cache::{self, Cache};
use crate::error::{Error, Result, Scope, redact_url};
use crate::http::{self, HttpError};
use crate::invocation::{self, Setting};
use crate::package;
use crate::settings::{self, BundlerSettings};
use crate::ui::{self, Progress, Ui};

/// A response, or why there is none.
type Got = std::result::Result<http::Response, HttpError>;

/// A request that failed, and after how many tries.
struct Failed {
    err: HttpError,
    tries: u32,
}

/// What a request asked a source for, for its failure's message.
#[derive(Debug, Clone, Copy)]
enum Asked<'r> {
    /// The compact-index file `info/NAME` of this gem name.
    Index(&'r str),
    /// This gem's file.
    Gem(&'r GemRequest),
}

/// No real gem comes near this; a larger body is a broken or hostile server.
const MAX_GEM_BYTES: u64 = 512 * 1024 * 1024;
/// Compact-index info files are small text files.
const MAX_INFO_BYTES: u64 = 64 * 1024 * 1024;

/// One `.gem` to obtain.
#[derive(Debug, Clone)]
pub struct GemRequest {
    /// Gem name.
    pub name: String,
    /// Locked version.
    pub version: String,
    /// Locked platform (`ruby` for the generic gem).
    pub platform: String,
    /// `name-version[-platform]`, the file's stem on the server.
    pub full_name: String,
    /// The source's remotes, tried in order.
    pub remotes: Vec<String>,
    /// Digest from the lockfile's CHECKSUMS.
    pub expected: Option<[u8; 32]>,
}

/// How fetching behaves.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    /// Never touch the network.
    pub offline: bool,
    /// Accept a gem whose digest is known nowhere (loudly).
    pub allow_unverified: bool,
    /// Parallel downloads.
    pub jobs: usize,
}

/// A gem file ready to install.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The verified file in the download cache.
    pub path: PathBuf,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Whether it came over the network in this run.
    pub downloaded: bool,
}

/// Where requests for one remote go, and with which credentials.
#[derive(Debug, Clone)]
struct Endpoint {
    /// Base URL without userinfo, ending in `/`: a mirror's, or the remote's own.
    base: String,
    /// `Authorization` header value, if any.
    auth: Option<String>,
    /// Where the credentials came from, for the message when they are refused.
    auth_from: Option<String>,
    /// The remote this mirrors (without credentials), when `base` is a mirror.
    mirror_of: Option<String>,
}

impl Endpoint {
    /// Bundler's choice for a remote: the first mirror (`mirror.all`, then the remote's own) whose
    /// `fallback_timeout` probe succeeds, else the remote. Credentials are those of the chosen URL only: its
    /// userinfo, else the settings for its full URI, else for its host; a mirror never gets the remote's.
    fn resolve(
        settings: &BundlerSettings,
        remote: &str,
        probe: &dyn Fn(&str, std::time::Duration) -> bool,
        note: &dyn Fn(String),
    ) -> Endpoint {
        let remote = settings::normalize_uri(remote);
        for mirror in settings.mirrors_for(&redact_url(&remote)) {
            if let Some(timeout) = mirror.fallback_timeout
                && !probe(&mirror.uri, timeout)
            {
                note(format!(
                    "mirror {} did not accept a connection within {}s (fallback_timeout); not using it for {}",
                    redact_url(&mirror.uri),
                    timeout.as_secs_f64(),
                    redact_url(&remote)
                ));
                continue;
            }
            let mut ep = Endpoint::for_url(settings, &mirror.uri);
            ep.mirror_of = Some(redact_url(&remote));
            return ep;
        }
        Endpoint::for_url(settings, &remote)
    }

    /// Every base URL a remote's files may have been fetched from: its mirrors and itself. No probing, for
    /// looking things up in the cache.
    fn candidates(settings: &BundlerSettings, remote: &str) -> Vec<String> {
        let remote = settings::normalize_uri(remote);
        let mut bases: Vec<String> = settings
            .mirrors_for(&redact_url(&remote))
            .into_iter()
            .map(|m| split_userinfo(&m.uri).0)
            .collect();
        bases.push(split_userinfo(&remote).0);
        bases
    }

    fn for_url(settings: &BundlerSettings, target: &str) -> Endpoint {
        let (base, userinfo) = split_userinfo(target);
        let (auth, auth_from) = match userinfo {
            Some(info) => (
                Some(http::basic_auth(&info)),
                Some("the user:password in the URL".to_string()),
            ),
            None => match settings.credentials_for(&base) {
                Some(found) => (Some(http::basic_auth(found.value)), Some(found.describe())),
                None => (None, None),
            },
        };
        Endpoint {
            base,
            auth,
            auth_from,
            mirror_of: None,
        }
    }
}

/// Splits `https://user:pass@host/` into the URL without userinfo and the userinfo.
fn split_userinfo(url: &str) -> (String, Option<String>) {
    let redacted = redact_url(url);
    if redacted == url {
        return (url.to_string(), None);
    }
    let start = url.find("://").map_or(0, |i| i + 3);
    let at = url[start..].find('@').map(|i| i + start);
    let info = at.map(|at| url[start..at].to_string());
    (redacted, info)
}

/// Fetches all requested gems, several at a time, handing each to `on_ready` (with its index in `requests`) as
/// soon as it is verified and cached, so that installing can start while the rest download.
pub fn fetch_all(
    cache: &Cache,
    settings: &BundlerSettings,
    requests: &[GemRequest],
    opts: FetchOptions,
    ui: &Ui,
    on_ready: &(dyn Fn(usize, &Fetched) -> Result<()> + Sync),
) -> Result<Vec<Fetched>> {
    let fetcher = Fetcher::new(cache, settings, opts);
    if opts.offline {
        let fetched = fetcher.offline(requests)?;
        for (i, f) in fetched.iter().enumerate() {
            on_ready(i, f)?;
        }
        return Ok(fetched);
    }
    fetcher.parallel(requests, ui, on_ready)
}

/// What `doctor` found asking a gem source about the root gem.
#[derive(Debug, Clone)]
pub struct SourceCheck {
    /// Whether a download would work: the source answered and lists the gem's locked version.
    pub ok: bool,
    /// What answered what.
    pub detail: String,
    /// What to do, when it failed.
    pub fix: Option<String>,
    /// The gem's `required_ruby_version` as its index entry gives it (`>= 3.1`), when it gives one.
    pub ruby: Option<String>,
}

/// Asks `remote` about `gem` the way a download would (its mirror, proxy, credentials and certificates): one GET
/// of `info/NAME`, not retried, and whether it lists the locked version. A source without a compact index passes
/// only when every gem to fetch from it has a checksum in the lockfile (`checksums_locked`) and it serves the
/// gem's file.
pub fn check_source(
    cache: &Cache,
    settings: &BundlerSettings,
    remote: &str,
    gem: &GemRequest,
    checksums_locked: bool,
) -> SourceCheck {
    let fetcher = Fetcher::new(
        cache,
        settings,
        FetchOptions {
            offline: false,
            allow_unverified: false,
            jobs: 1,
        },
    );
    let ep = fetcher.endpoint(remote, None);
    let url = format!("{}info/{}", ep.base, gem.name);
    let via = fetcher
        .http()
        .ok()
        .and_then(|c| c.proxy_for(&url))
        .map_or_else(String::new, |p| format!(" via {p}"));
    let shown = match &ep.mirror_of {
        Some(remote) => format!("{} (mirror of {remote}){via}", ep.base),
        None => format!("{}{via}", ep.base),
    };
    // Said under "Gem source", the error needs no "gem source" of its own.
    let failed = |e: Error| SourceCheck {
        ok: false,
        fix: e.hint(),
        detail: e
            .to_string()
            .strip_prefix("gem source ")
            .map_or_else(|| e.to_string(), str::to_string),
        ruby: None,
    };
    let once = |err| Failed { err, tries: 1 };
    let version = if gem.platform == "ruby" {
        format!("{} {}", gem.name, gem.version)
    } else {
        format!("{} {} ({})", gem.name, gem.version, gem.platform)
    };
    match fetcher.get(&ep, &url, None, None) {
        Ok(resp) => {
            let mut body = String::new();
            if let Err(e) = resp
                .into_reader()
                .take(MAX_INFO_BYTES)
                .read_to_string(&mut body)
            {
                return SourceCheck {
                    ok: false,
                    detail: format!(
                        "reading {} broke off: {}{}",
                        redact_url(&url),
                        crate::error::os_text(&e),
                        timeout_note(&e, settings)
                    ),
                    fix: Some(
                        "run doctor again; if it persists, the server or a proxy is failing".into(),
                    ),
                    ruby: None,
                };
            }
            match info_entry(&body, &gem.version, &gem.platform) {
                Some(meta) => SourceCheck {
                    ok: true,
                    detail: format!("{shown} lists {version}"),
                    fix: None,
                    ruby: meta_value(meta, "ruby").map(|r| r.replace('&', ", ")),
                },
                None => SourceCheck {
                    ok: false,
                    detail: format!("{} does not list {version}", redact_url(&url)),
                    fix: Some(format!(
                        "is the source URL right (the lockfile's `remote:`)? If it is, {} was yanked: \
                         `bundle lock --update {}` moves the lockfile off it",
                        gem.version, gem.name
                    )),
                    ruby: None,
                },
            }
        }
        // A plain mirror of gem files serves a lockfile whose checksums are all there.
        Err(HttpError::Status { code, .. })
            if checksums_locked && (400..500).contains(&code) && code != 401 =>
        {
            let gem_url = format!("{}gems/{}.gem", ep.base, gem.full_name);
            match fetcher.get(&ep, &gem_url, None, None) {
                Ok(_) => SourceCheck {
                    ok: true,
                    detail: format!(
                        "{shown} serves {}.gem (it has no compact index; the lockfile's CHECKSUMS verify the \
                         gems)",
                        gem.full_name
                    ),
                    fix: None,
                    ruby: None,
                },
                Err(err) => failed(fetcher.failure(&ep, Asked::Gem(gem), once(err))),
            }
        }
        Err(err) => failed(fetcher.failure(&ep, Asked::Index(&gem.name), once(err))),
    }
}

/// Why a gem's digest is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    /// Offline, and no cached copy of the source's index lists it.
    Offline,
    /// The source's index could not be read; the error.
    Unreachable(String),
    /// The index was read (or the source has none) and does not list this version and platform.
    NotListed,
    /// The index did not answer before the overall deadline.
    TimedOut(Duration),
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unknown::Offline => {
                f.write_str("offline: no cached copy of the source's index lists it")
            }
            Unknown::Unreachable(why) => write!(f, "index unreachable: {why}"),
            Unknown::NotListed => {
                f.write_str("not listed: the source's index does not list this version")
            }
            Unknown::TimedOut(after) => write!(
                f,
                "no answer: the source's index did not answer within {}s",
                after.as_secs()
            ),
        }
    }
}

/// The digest of each request as far as it is known: the lockfile's, else the source's compact index (only
/// the cached copy when offline), else why not. Index look-ups run all at once (they wait on the network, not
/// the CPU) under one deadline, twice Bundler's `timeout`, so an unreachable source costs seconds, not a
/// sequence of retries per gem; look-ups still running then are reported as timed out.
pub fn known_checksums(
    cache: &Cache,
    settings: &BundlerSettings,
    requests: &[GemRequest],
    offline: bool,
) -> Vec<std::result::Result<[u8; 32], Unknown>> {
    let mut found: Vec<Option<std::result::Result<[u8; 32], Unknown>>> =
        requests.iter().map(|r| r.expected.map(Ok)).collect();
    let options = FetchOptions {
        offline,
        allow_unverified: true,
        jobs: 1,
    };
    if offline {
        let fetcher = Fetcher::new(cache, settings, options);
        return requests
            .iter()
            .zip(found)
            .map(|(req, known)| {
                known.unwrap_or_else(|| {
                    req.remotes
                        .iter()
                        .find_map(|r| fetcher.cached_checksum(r, req))
                        .ok_or(Unknown::Offline)
                })
            })
            .collect();
    }
    let deadline = settings.timeout() * 2;
    // One look-up per gem name: its index entry answers for every version and platform asked of it.
    let mut by_name: HashMap<&str, Vec<(usize, GemRequest)>> = HashMap::new();
    for (i, req) in requests.iter().enumerate() {
        if found[i].is_none() {
            by_name.entry(&req.name).or_default().push((i, req.clone()));
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let mut pending = 0;
    for (_, group) in by_name {
        let indices: Vec<usize> = group.iter().map(|(i, _)| *i).collect();
        // Detached, so that the deadline can leave a look-up stuck in the network behind.
        let (cache, settings, tx) = (cache.clone(), settings.clone(), tx.clone());
        let spawned = std::thread::Builder::new().spawn(move || {
            let fetcher = Fetcher::new(&cache, &settings, options);
            for (i, req) in group {
                let mut failure = None;
                let sum = req.remotes.iter().find_map(|r| {
                    let ep = fetcher.endpoint(r, None);
                    match fetcher.checksum_from_index(&ep, &req, None) {
                        Ok(Lookup::Sum(sum)) => Some(sum),
                        Ok(Lookup::NotListed) => None,
                        Ok(Lookup::NoIndex(e)) | Err(e) => {
                            failure = Some(e.to_string());
                            None
                        }
                    }
                });
                let result = match (sum, failure) {
                    (Some(sum), _) => Ok(sum),
                    (None, Some(why)) => Err(Unknown::Unreachable(why)),
                    (None, None) => Err(Unknown::NotListed),
                };
                let _ = tx.send((i, result));
            }
        });
        match spawned {
            Ok(_) => pending += indices.len(),
            Err(e) => {
                for i in indices {
                    let why = format!("no thread to ask it: {e}");
                    found[i] = Some(Err(Unknown::Unreachable(why)));
                }
            }
        }
    }
    let until = std::time::Instant::now() + deadline;
    while pending > 0 {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, result)) => {
                found[i] = Some(result);
                pending -= 1;
            }
            Err(_) => break,
        }
    }
    found
        .into_iter()
        .map(|f| f.unwrap_or(Err(Unknown::TimedOut(deadline))))
        .collect()
}

impl<'a> Fetcher<'a> {
    fn new(cache: &'a Cache, settings: &'a BundlerSettings, opts: FetchOptions) -> Fetcher<'a> {
        Fetcher {
            cache,
            settings,
            opts,
            http: OnceLock::new(),
            endpoints: Mutex::new(HashMap::new()),
            infos: Mutex::new(HashMap::new()),
            unverified: Mutex::new(Vec::new()),
        }
    }

    /// The digest in a cached compact index of any URL the remote may have been fetched from; only a copy that
    /// still matches the digest recorded when it was fetched is read.
    fn cached_checksum(&self, remote: &str, req: &GemRequest) -> Option<[u8; 32]> {
        Endpoint::candidates(self.settings, remote)
            .iter()
            .find_map(
                |base| match IndexCopy::read(&self.info_path(base, &req.name)) {
                    IndexCopy::Valid { body, .. } => {
                        checksum_from_info(&body, &req.version, &req.platform)
                    }
                    IndexCopy::Damaged | IndexCopy::Absent => None,
                },
            )
    }

    /// The cached index copies of this gem that [`Fetcher::cached_checksum`] could not use, for messages.
    fn damaged_index_copies(&self, req: &GemRequest) -> Vec<PathBuf> {
        req.remotes
            .iter()
            .flat_map(|r| Endpoint::candidates(self.settings, r))
            .map(|base| self.info_path(&base, &req.name))
            .filter(|path| matches!(IndexCopy::read(path), IndexCopy::Damaged))
            .collect()
    }

    /// The endpoint for a remote, resolved (mirrors probed) once per run.
    fn endpoint(&self, remote: &str, ui: Option<&Ui>) -> Arc<Endpoint> {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ep) = endpoints.get(remote) {
            return Arc::clone(ep);
        }
        let note = |msg: String| {
            if let Some(ui) = ui {
                ui.verbose(&msg);
            }
        };
        let ep = Arc::new(Endpoint::resolve(
            self.settings,
            remote,
            &http::probe,
            &note,
        ));
        endpoints.insert(remote.to_string(), Arc::clone(&ep));
        ep
    }

    fn http(&self) -> Result<&http::Client> {
        self.http
            .get_or_init(|| http::Client::new(self.settings, &|k| std::env::var(k).ok()))
            .as_ref()
            .map_err(|msg| Error::Config(msg.clone()))
    }

    fn parallel(
        &self,
        requests: &[GemRequest],
        ui: &Ui,
        on_ready: &(dyn Fn(usize, &Fetched) -> Result<()> + Sync),
    ) -> Result<Vec<Fetched>> {
        let fetcher = self;
        let opts = self.opts;
        let progress = ui.progress_bar("Downloading", requests.len());
        let progress = &progress;

        let next = Mutex::new(0usize);
        let results: Mutex<Vec<Option<Result<Fetched>>>> =
            Mutex::new((0..requests.len()).map(|_| None).collect());
        let workers = opts.jobs.clamp(1, requests.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = {
                            let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                            let i = *n;
                            *n += 1;
                            i
                        };
                        let Some(req) = requests.get(i) else { break };
                        let result = fetcher
                            .fetch(req, ui, progress)
                            .and_then(|f| on_ready(i, &f).map(|()| f));
                        let failed = result.is_err();
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
                        if failed {
                            progress.abandoned(&req.full_name);
                        } else {
                            progress.finished(&req.full_name);
                        }
                        if failed {
                            // Stop handing out work: the install cannot succeed, and the user wants the error now.
                            *next.lock().unwrap_or_else(|e| e.into_inner()) = requests.len();
                        }
                    }
                });
            }
        });
        let mut out = Vec::with_capacity(requests.len());
        let mut first_error = None;
        for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
            match r {
                Some(Ok(f)) => out.push(f),
                Some(Err(e)) if first_error.is_none() => first_error = Some(e),
                _ => {}
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let mut unverified = self.unverified.lock().unwrap_or_else(|e| e.into_inner());
        if !unverified.is_empty() {
            // In the closure's order, whichever finished first.
            unverified.sort_by_key(|name| requests.iter().position(|r| &r.full_name == name));
            ui.warn(&unverified_warning(&unverified));
        }
        Ok(out)
    }
}

/// A file in the download cache, as found.
enum Cached {
    /// Its content still has the digest it is named by.
    Verified(Fetched),
    /// It is there, but its content no longer has that digest, or cannot be read; why, for the user.
    Damaged { path: PathBuf, why: String },
    /// Not there.
    Absent,
}

struct Fetcher<'a> {
    cache: &'a Cache,
    settings: &'a BundlerSettings,
    opts: FetchOptions,
    /// Built on first use: a run that needs no network never reads proxy or TLS settings.
    http: OnceLock<std::result::Result<http::Client, String>>,
    /// Per remote as written in the lockfile.
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    /// Compact-index info per (base URL, name), fetched at most once per run.
    infos: Mutex<HashMap<(String, String), Info>>,
    /// The gems taken without a checksum (`--allow-unverified`), said once when fetching ends.
    unverified: Mutex<Vec<String>>,
}

/// A source's compact-index entry for one gem name, as this run found it.
#[derive(Debug, Clone)]
enum Info {
    /// The file's text.
    Body(String),
    /// The source answered with a client error: no compact index there (or it does not know the name).
    Missing {
        code: u16,
        text: String,
        url: String,
    },
}

/// What a source's index says of one gem.
enum Lookup {
    /// The version's checksum.
    Sum([u8; 32]),
    /// The index answered, and gives no checksum for this version and platform.
    NotListed,
    /// The source has no index for it (a 4xx): the error that says so, about the source.
    NoIndex(Error),
}

/// The file with this digest in the download cache, hashed again: its name says what it was when it was stored,
/// not what it holds now (a disk error, a restore, an edit).
fn cached(cache: &Cache, sha256: &[u8; 32]) -> Cached {
    let path = cache.download(sha256);
    let damaged = |path, e: std::io::Error| Cached::Damaged {
        path,
        why: format!("it cannot be read: {e}"),
    };
    let actual = match crate::record::sha256_file(&path) {
        Ok(actual) => actual,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Cached::Absent,
        Err(e) => return damaged(path, e),
    };
    if actual != *sha256 {
        return Cached::Damaged {
            path,
            why: format!("its SHA-256 is now {}", hex::encode(actual)),
        };
    }
    Cached::Verified(Fetched {
        path,
        sha256: *sha256,
        downloaded: false,
    })
}

/// The downloaded `.gem` with this digest, if the cache holds it intact.
pub fn verified_download(cache: &Cache, sha256: &[u8; 32]) -> Option<PathBuf> {
    match cached(cache, sha256) {
        Cached::Verified(fetched) => Some(fetched.path),
        Cached::Damaged { .. } | Cached::Absent => None,
    }
}

impl Fetcher<'_> {
    /// The gem from the download cache, found by the lockfile's digest or else by the digest in the cached
    /// compact index; its last use is recorded for `cache prune`.
    fn already_downloaded(&self, req: &GemRequest) -> Cached {
        let Some(sha) = req.expected.or_else(|| {
            req.remotes
                .iter()
                .find_map(|r| self.cached_checksum(r, req))
        }) else {
            return Cached::Absent;
        };
        let found = cached(self.cache, &sha);
        if let Cached::Verified(fetched) = &found {
            cache::touch(&fetched.path);
        }
        found
    }

    /// Satisfies everything from the cache, or lists what is missing or damaged.
    fn offline(&self, requests: &[GemRequest]) -> Result<Vec<Fetched>> {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        let mut damaged = Vec::new();
        let mut damaged_index = Vec::new();
        for req in requests {
            match self.already_downloaded(req) {
                Cached::Verified(fetched) => out.push(fetched),
                Cached::Damaged { path, why } => {
                    damaged.push(format!("{} ({}: {why})", path.display(), req.full_name))
                }
                Cached::Absent => {
                    missing.push(req.full_name.clone());
                    if req.expected.is_none() {
                        damaged_index.extend(self.damaged_index_copies(req));
                    }
                }
            }
        }
        if missing.is_empty() && damaged.is_empty() {
            return Ok(out);
        }
        let mut message = format!("offline, and the cache in {} ", self.cache.dir().display());
        if !missing.is_empty() {
            message += &format!(
                "lacks {}: {}",
                crate::ui::count(missing.len(), "gem", "gems"),
                shown_list(&missing)
            );
        }
        if !damaged.is_empty() {
            if !missing.is_empty() {
                message += "; it ";
            }
            message += &format!(
                "holds {}, which were not used: {}",
                crate::ui::count(damaged.len(), "damaged gem file", "damaged gem files"),
                shown_list(&damaged)
            );
        }
        for path in &damaged_index {
            message += &format!(
                "\n  the cached index copy {} does not match the digest recorded when it was fetched (damaged, or \
                 written by an older launcher), so its checksums were not used",
                path.display()
            );
        }
        let install = crate::invocation::command("install");
        message += &if damaged.is_empty() && damaged_index.is_empty() {
            format!(
                "\n  hint: fill it by running {install} once with network access (or restore the CI cache)"
            )
        } else {
            format!(
                "\n  hint: run {install} once with network access: it fetches what is damaged again (or \
                 delete those files and restore the CI cache)"
            )
        };
        Err(Error::Offline(message))
    }

    fn fetch(&self, req: &GemRequest, ui: &Ui, progress: &Progress<'_>) -> Result<Fetched> {
        match self.already_downloaded(req) {
            Cached::Verified(fetched) => return Ok(fetched),
            Cached::Damaged { path, why } => ui.warn(&format!(
                "{} was damaged ({why}), so it was not used; downloading {} again",
                path.display(),
                req.full_name
            )),
            Cached::Absent => {}
        }
        let mut last_err = None;
        for remote in &req.remotes {
            let ep = self.endpoint(remote, Some(ui));
            match self.fetch_from(&ep, req, ui, progress) {
                Ok(f) => return Ok(f),
                // Another remote of the same source may have it; any other failure is final.
                Err(e @ (Error::Network { .. } | Error::Server { .. } | Error::BrokeOff(_)))
                    if req.remotes.len() > 1 =>
                {
                    last_err = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            Error::Unsupported(format!("{} has no remote to fetch it from", req.full_name))
        }))
    }

    fn fetch_from(
        &self,
        ep: &Endpoint,
        req: &GemRequest,
        ui: &Ui,
        progress: &Progress<'_>,
    ) -> Result<Fetched> {
        // A source without an index (or whose index lacks the version) serves the gem unverified only when the
        // user allows it; without that, a missing index is the source's problem and is said as one.
        let expected = match req.expected {
            Some(sha) => Some(sha),
            None => match self.checksum_from_index(ep, req, Some(ui))? {
                Lookup::Sum(sha) => Some(sha),
                Lookup::NotListed | Lookup::NoIndex(_) if self.opts.allow_unverified => None,
                Lookup::NoIndex(e) => return Err(e),
                Lookup::NotListed => {
                    return Err(Error::Unverifiable {
                        gem: req.full_name.clone(),
                        index: format!("{}info/{}", ep.base, req.name),
                    });
                }
            },
        };
        if expected.is_none() {
            self.unverified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(req.full_name.clone());
        }
        if let Some(Cached::Verified(fetched)) = expected.map(|sha| cached(self.cache, &sha)) {
            return Ok(fetched);
        }
        let lock_name = match expected {
            Some(sha) => format!("download-{}", hex::encode(sha)),
            None => format!(
                "download-{}",
                cache::key_of([ep.base.as_str(), &req.full_name])
            ),
        };
        let _lock = self.cache.lock(&lock_name)?;
        // A concurrent launcher may have finished it while we waited for the lock. A damaged file is replaced
        // by the rename below.
        if let Some(Cached::Verified(fetched)) = expected.map(|sha| cached(self.cache, &sha)) {
            return Ok(fetched);
        }
        let url = format!("{}gems/{}.gem", ep.base, req.full_name);
        progress.started_as(&req.full_name, &req.name, false);
        let tmp = self.cache.temp_path("download")?;
        let mut attempt = 0;
        let sha = loop {
            let resp = match self.get_retrying(ep, &url, None, Some(ui)) {
                Ok(resp) => resp,
                Err(failed) => return Err(self.failure(ep, Asked::Gem(req), failed)),
            };
            match self.download_to(resp, &url, &tmp, req, expected, progress) {
                Ok(sha) => break sha,
                // A body cut off or stalled mid-way is worth another try from the start; a checksum mismatch or
                // an oversized body is not: the same bytes would come again.
                Err(Error::BrokeOff(msg)) if attempt < self.settings.retries() => {
                    attempt += 1;
                    let wait = backoff(attempt);
                    ui.verbose(&format!(
                        "  {msg}; trying again in {:.1}s (attempt {} of {})",
                        wait.as_secs_f64(),
                        attempt + 1,
                        self.settings.retries() + 1
                    ));
                    std::thread::sleep(wait);
                }
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        };
        // Verified bytes can still be a malformed or hostile package (a compromised release, a bad mirror):
        // inspect it before it is cached, so nothing that RubyGems would unpack unsafely is ever kept.
        if let Err(refused) = package::inspect(
            &tmp,
            package::Expected {
                name: &req.name,
                version: &req.version,
                platform: &req.platform,
            },
        ) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Refused {
                gem: req.full_name.clone(),
                url: redact_url(&url),
                reason: refused.0,
            });
        }
        let dest = self.cache.download(&sha);
        let parent = dest.parent().expect("download paths have a parent");
        fs::create_dir_all(parent).map_err(Error::io("creating the cache directory", parent))?;
        fs::rename(&tmp, &dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::Io {
                action: "storing the download in",
                path: dest.clone(),
                source: e,
            }
        })?;
        // The file was flushed before its rename; this makes the rename itself durable.
        cache::sync_dir(parent)?;
        Ok(Fetched {
            path: dest,
            sha256: sha,
            downloaded: true,
        })
    }

    fn download_to(
        &self,
        resp: http::Response,
        url: &str,
        tmp: &std::path::Path,
        req: &GemRequest,
        expected: Option<[u8; 32]>,
        progress: &Progress<'_>,
    ) -> Result<[u8; 32]> {
        if let Some(len) = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|len| *len > MAX_GEM_BYTES)
        {
            return Err(Error::network(format!(
                "{} announced {len} bytes for {}, more than the {} MiB any gem may have; refusing it",
                redact_url(url),
                req.full_name,
                MAX_GEM_BYTES >> 20
            )));
        }
        let mut reader = resp.into_reader().take(MAX_GEM_BYTES + 1);
        let mut file = File::create(tmp).map_err(Error::io("creating", tmp))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(|e| {
                Error::BrokeOff(format!(
                    "downloading {} from {} broke off after {total} bytes: {}{}",
                    req.full_name,
                    redact_url(url),
                    crate::error::os_text(&e),
                    timeout_note(&e, self.settings)
                ))
            })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > MAX_GEM_BYTES {
                return Err(Error::network(format!(
                    "{} sent more than {} MiB for {}; refusing it",
                    redact_url(url),
                    MAX_GEM_BYTES >> 20,
                    req.full_name
                )));
            }
            progress.add_bytes(n as u64);
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(Error::io("writing the download to", tmp))?;
        }
        file.sync_all()
            .map_err(Error::io("writing the download to", tmp))?;
        let actual: [u8; 32] = hasher.finalize().into();
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(Error::ChecksumMismatch {
                gem: req.full_name.clone(),
                url: redact_url(url),
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            });
        }
        Ok(actual)
    }

    /// What the source's compact index records for this version: its digest, none, or that there is no index.
    fn checksum_from_index(
        &self,
        ep: &Endpoint,
        req: &GemRequest,
        ui: Option<&Ui>,
    ) -> Result<Lookup> {
        let key = (ep.base.clone(), req.name.clone());
        let known = self
            .infos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let info = match known {
            Some(info) => info,
            None => {
                let info = self.fetch_info(ep, &req.name, ui)?;
                self.infos
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, info.clone());
                info
            }
        };
        Ok(match info {
            Info::Body(text) => match checksum_from_info(&text, &req.version, &req.platform) {
                Some(sum) => Lookup::Sum(sum),
                None => Lookup::NotListed,
            },
            Info::Missing { code, text, url } => Lookup::NoIndex(self.failure(
                ep,
                Asked::Index(&req.name),
                Failed {
                    err: HttpError::Status {
                        code,
                        text,
                        url,
                        retry_after: None,
                    },
                    tries: 1,
                },
            )),
        })
    }

    fn info_path(&self, base: &str, name: &str) -> PathBuf {
        self.cache.index(&cache::key_of([base])).join(name)
    }

    /// GET `info/<name>`, conditional on the cached copy's ETag when the copy is intact (a damaged one would be
    /// kept by a 304 forever). `Missing` when the source answers with a client error (it has no compact index, or
    /// does not know the name); any other failure is an error about the source.
    fn fetch_info(&self, ep: &Endpoint, name: &str, ui: Option<&Ui>) -> Result<Info> {
        let url = format!("{}info/{}", ep.base, name);
        let path = self.info_path(&ep.base, name);
        let (cached, etag) = match IndexCopy::read(&path) {
            IndexCopy::Valid { body, etag } => (Some(body), etag),
            IndexCopy::Damaged => {
                if let Some(ui) = ui {
                    ui.verbose(&format!(
                        "  {} does not match the digest recorded when it was fetched; fetching it whole",
                        path.display()
                    ));
                }
                (None, None)
            }
            IndexCopy::Absent => (None, None),
        };
        let resp = match self.get_retrying(ep, &url, etag.as_deref(), ui) {
            Ok(r) => r,
            // No compact index here (an old-style server, or a plain mirror of gem files), or not for this name.
            Err(Failed {
                err: HttpError::Status {
                    code, text, url, ..
                },
                ..
            }) if (400..500).contains(&code) && !matches!(code, 401 | 407 | 408 | 429) => {
                return Ok(Info::Missing { code, text, url });
            }
            Err(failed) => return Err(self.failure(ep, Asked::Index(name), failed)),
        };
        if resp.status() == 304
            && let Some(text) = cached
        {
            return Ok(Info::Body(text));
        }
        let new_etag = resp.header("ETag").map(str::to_string);
        let mut body = String::new();
        resp.into_reader()
            .take(MAX_INFO_BYTES)
            .read_to_string(&mut body)
            .map_err(|e| {
                Error::network(format!(
                    "reading {} failed: {}{}",
                    redact_url(&url),
                    crate::error::os_text(&e),
                    timeout_note(&e, self.settings)
                ))
            })?;
        // The index copy is an optimisation; a read-only cache still works without it.
        let copy = IndexCopy::render(&body, new_etag.as_deref());
        if cache::write_atomic(self.cache, &path, &copy).is_ok() {
            // Where launchers before the recorded digest kept the ETag: one of them would revalidate this copy
            // with a tag that is not its own.
            let _ = fs::remove_file(legacy_etag_path(&path));
        }
        Ok(Info::Body(body))
    }

    /// GET with the endpoint's credentials; with `-v`, says what is fetched, through which proxy, and where
    /// redirects led. URLs are printed without credentials.
    fn get(&self, ep: &Endpoint, url: &str, etag: Option<&str>, ui: Option<&Ui>) -> Got {
        let client = self.http().map_err(|e| HttpError::Config(e.to_string()))?;
        if let Some(ui) = ui {
            match client.proxy_for(url) {
                Some(proxy) => ui.verbose(&format!("GET {} via {proxy}", redact_url(url))),
                None => ui.verbose(&format!("GET {}", redact_url(url))),
            }
        }
        let response = client.get(url, ep.auth.as_deref(), etag)?;
        if let Some(ui) = ui {
            for (to, dropped) in &response.hops {
                ui.verbose(&format!(
                    "  redirected to {to}{}",
                    if *dropped {
                        " (credentials not sent: another origin)"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(response)
    }

    /// GET, trying again after 429, 5xx and connection failures, up to Bundler's `retry` times, waiting as the
    /// server asks (`Retry-After`) or with exponential backoff; a failure says after how many tries.
    fn get_retrying(
        &self,
        ep: &Endpoint,
        url: &str,
        etag: Option<&str>,
        ui: Option<&Ui>,
    ) -> std::result::Result<http::Response, Failed> {
        let retries = self.settings.retries();
        let mut attempt = 0;
        loop {
            match self.get(ep, url, etag, ui) {
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_transient() && attempt < retries => {
                    attempt += 1;
                    let wait = e
                        .retry_after()
                        .unwrap_or_else(|| backoff(attempt))
                        .min(MAX_WAIT);
                    if let Some(ui) = ui {
                        ui.verbose(&format!(
                            "  {} failed ({}); trying again in {:.1}s (attempt {} of {})",
                            redact_url(url),
                            match &e {
                                HttpError::Status { code, .. } => format!("HTTP {code}"),
                                HttpError::NoAnswer(no) => no.why.clone(),
                                _ => "connection".to_string(),
                            },
                            wait.as_secs_f64(),
                            attempt + 1,
                            retries + 1
                        ));
                    }
                    std::thread::sleep(wait);
                }
                Err(err) => {
                    return Err(Failed {
                        err,
                        tries: attempt + 1,
                    });
                }
            }
        }
    }

    /// The user-facing error for a failed request. A source that cannot be reached, or whose index is missing or
    /// failing, is one error about the source (`Scope::Source`), whichever gem asked; a gem's own file missing
    /// is that gem's.
    fn failure(&self, ep: &Endpoint, asked: Asked<'_>, failed: Failed) -> Error {
        let Failed { err, tries } = failed;
        let server = server_name(ep);
        let base = match &ep.mirror_of {
            Some(remote) => format!("{}, the mirror for {remote}", ep.base),
            None => ep.base.clone(),
        };
        let what = match asked {
            Asked::Index(name) => name,
            Asked::Gem(req) => &req.full_name,
        };
        let source = |message: String, hint: String| Error::Server {
            scope: Scope::Source,
            message,
            hint: match ep.mirror_of {
                Some(_) if hint.ends_with(['?', '.']) => format!("{hint} {}", mirror_note(ep)),
                Some(_) => format!("{hint}. {}", mirror_note(ep)),
                None => hint,
            },
        };
        let (code, text, url) = match err {
            HttpError::Config(msg) => return Error::Config(msg),
            // Complete messages (redirect loops, a proxy refusing its credentials) that say what to do.
            HttpError::Other(msg) => {
                return Error::Network {
                    message: format!("{what}: {msg}{}", mirror_lines(ep)),
                    advised: true,
                };
            }
            HttpError::NoAnswer(no) => {
                let via = no
                    .via
                    .as_ref()
                    .map_or_else(String::new, |p| format!(" through the proxy {p}"));
                let message = if no.transient && tries > 1 {
                    format!(
                        "could not reach {base}{via} ({}, {})",
                        no.why,
                        ui::count(tries as usize, "try", "tries")
                    )
                } else if no.transient {
                    format!("could not reach {base}{via} ({})", no.why)
                } else {
                    format!("could not reach {base}{via}: {}", no.why)
                };
                return match (no.advice, &ep.mirror_of) {
                    (Some(advice), _) => source(message, advice),
                    // The mirror's own setting is the fix.
                    (None, Some(_)) => Error::Server {
                        scope: Scope::Source,
                        message,
                        hint: format!("is the mirror up? {}", mirror_note(ep)),
                    },
                    (None, None) => source(
                        message,
                        format!(
                            "is the server up, and is the source URL right? Check the network and any proxy; \
                             BUNDLE_MIRROR__ALL sets a mirror, and {} runs from the cache when it already \
                             holds what is needed",
                            invocation::setting(Setting::Offline)
                        ),
                    ),
                };
            }
            HttpError::Status {
                code, text, url, ..
            } => (code, text, url),
        };
        // The path asked for, relative to the source; the whole URL when a redirect led elsewhere.
        let asked_for = url.strip_prefix(&ep.base).unwrap_or(&url);
        let tried = if tries > 1 {
            format!(" ({})", ui::count(tries as usize, "try", "tries"))
        } else {
            String::new()
        };
        match (code, asked) {
            (401, _) => {
                let elsewhere = !url.starts_with(&ep.base);
                let host = settings::host_of(&url).unwrap_or("the server").to_string();
                let message = match (&ep.auth_from, elsewhere) {
                    (Some(_), true) => format!(
                        "{what}: {url} answered HTTP 401 {text}: {} redirected there, and credentials are \
                         never sent across a redirect to another host\n  use {host} as the source (or as \
                         a mirror) directly, with its own credentials in {}",
                        redact_url(&ep.base),
                        settings::env_key_for(&host)
                    ),
                    (Some(from), false) => format!(
                        "{what}: {url} answered HTTP 401 {text}: the credentials from {from} were \
                         refused\n  check the user name and password (or token) there"
                    ),
                    (None, _) => format!(
                        "{what}: {url} answered HTTP 401 {text}: {host} requires credentials, and none \
                         are configured\n  set {}=user:password (or run `bundle config set --global \
                         {host} user:password`), or put user:password@ in the lockfile's remote",
                        settings::env_key_for(&host)
                    ),
                };
                Error::Network {
                    message: message + &mirror_lines(ep),
                    advised: true,
                }
            }
            (429 | 500..=599, _) => source(
                format!("{server} answered HTTP {code} {text} for {asked_for}{tried}"),
                match ep.mirror_of {
                    Some(_) => "the mirror is failing, not this machine: try again later (BUNDLE_RETRY sets how \
                                many tries)"
                        .to_string(),
                    None => "the server is failing, not this machine: try again later (BUNDLE_RETRY sets how \
                             many tries), or set BUNDLE_MIRROR__ALL to a mirror meanwhile"
                        .to_string(),
                },
            ),
            (_, Asked::Index(_)) => source(
                format!("{server} answered HTTP {code} {text} for {asked_for}"),
                format!("is {}, and does it serve the compact index?", where_set(ep)),
            ),
            (_, Asked::Gem(req)) => Error::Server {
                scope: Scope::Gem,
                message: format!("{what}: {} answered HTTP {code} {text}", redact_url(&url)),
                hint: format!(
                    "is {}? If it is, {} {} may have been yanked{}",
                    where_set(ep),
                    req.name,
                    req.version,
                    if ep.mirror_of.is_some() {
                        ", or the mirror is incomplete".to_string()
                    } else {
                        format!(": `bundle lock --update {}` moves the lockfile off it", req.name)
                    }
                ) + &if ep.mirror_of.is_some() {
                    format!(". {}", mirror_note(ep))
                } else {
                    String::new()
                },
            },
        }
    }
}

/// The server a request went to, as the subject of a sentence: `gem source URL`, or `mirror URL (for REMOTE)`.
fn server_name(ep: &Endpoint) -> String {
    match &ep.mirror_of {
        Some(remote) => format!("mirror {} (for {remote})", ep.base),
        None => format!("gem source {}", ep.base),
    }
}

/// Says once that `--allow-unverified` let these gems in without a checksum.
fn unverified_warning(names: &[String]) -> String {
    let allow = invocation::setting(Setting::AllowUnverified);
    match names {
        [one] => format!(
            "installing {one} WITHOUT checksum verification ({allow}): neither the lockfile nor the source's \
             index gives its SHA-256, so its bytes are trusted as served"
        ),
        _ => {
            const SHOWN: usize = 3;
            let listed = if names.len() > SHOWN + 1 {
                format!(
                    "{}, … and {} more",
                    names[..SHOWN].join(", "),
                    names.len() - SHOWN
                )
            } else {
                names.join(", ")
            };
            format!(
                "installing {} WITHOUT checksum verification ({allow}): neither the lockfile nor the source's \
                 index gives their SHA-256, so their bytes are trusted as served ({listed})",
                ui::count(names.len(), "gem", "gems")
            )
        }
    }
}

/// The longest wait between attempts, whatever a server's `Retry-After` says: a deploy is waiting.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Exponential backoff before attempt `n + 1`: 0.5 s, 1 s, 2 s, … capped at [`MAX_WAIT`].
fn backoff(n: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << n.saturating_sub(1).min(10))).min(MAX_WAIT)
}

/// Says which setting bounds the wait, when a read timed out.
fn timeout_note(e: &std::io::Error, settings: &BundlerSettings) -> String {
    if matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) {
        format!(
            " (nothing arrived for {}s; raise BUNDLE_TIMEOUT if the server is that slow)",
            settings.timeout().as_secs_f64()
        )
    } else {
        String::new()
    }
}

/// A sentence for a hint naming the mirror setting behind a failure, when the failing URL is a mirror.
fn mirror_note(ep: &Endpoint) -> String {
    match &ep.mirror_of {
        Some(remote) => format!(
            "{} is the mirror configured for {remote} (a BUNDLE_MIRROR__* or mirror.* setting): fix or remove it, \
             or give it a fallback_timeout so the source is used when it is down",
            ep.base
        ),
        None => String::new(),
    }
}

/// Where the URL that failed is set, for "is … right?".
fn where_set(ep: &Endpoint) -> &'static str {
    match ep.mirror_of {
        Some(_) => "the mirror's URL right",
        None => "the source URL right (the lockfile's `remote:`)",
    }
}

/// [`mirror_note`] as a line of its own, for messages that carry their advice.
fn mirror_lines(ep: &Endpoint) -> String {
    match &ep.mirror_of {
        Some(remote) => format!(
            "\n  {} is the mirror configured for {remote} (BUNDLE_MIRROR__* / mirror.* settings); fix it, \
             remove it, or give it a fallback_timeout so that the source is used when it is down",
            ep.base
        ),
        None => String::new(),
    }
}

/// The first few names of a list, and how many more: a lockfile with thousands of gems must not print them all.
fn shown_list(names: &[String]) -> String {
    const SHOWN: usize = 20;
    match names.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{}, … and {more} more", names[..SHOWN].join(", ")),
        _ => names.join(", "),
    }
}

/// The first line of a cached compact-index file, before the body's SHA-256 as fetched (and ` etag=` and the
/// server's ETag). Compact-index readers skip everything before the body's `---` line, so launchers that predate
/// it still read the copy.
const INDEX_COPY_HEADER: &str = "# kamal-launcher index copy sha256=";

/// A cached compact-index file, read back.
#[derive(Debug, PartialEq, Eq)]
enum IndexCopy {
    /// Its body still has the digest recorded with it; the ETag it was served with.
    Valid { body: String, etag: Option<String> },
    /// There, but not as written: damaged, cut short, or written without a digest by an older launcher.
    Damaged,
    /// Not there (or not readable, which is handled as not there: it is fetched again).
    Absent,
}

impl IndexCopy {
    fn read(path: &std::path::Path) -> IndexCopy {
        match fs::read(path) {
            Ok(bytes) => IndexCopy::parse(&bytes),
            Err(_) => IndexCopy::Absent,
        }
    }

    fn parse(bytes: &[u8]) -> IndexCopy {
        let Some(at) = memchr::memchr(b'\n', bytes) else {
            return IndexCopy::Damaged;
        };
        let (first, body) = (&bytes[..at], &bytes[at + 1..]);
        let Some(fields) = std::str::from_utf8(first)
            .ok()
            .and_then(|l| l.strip_prefix(INDEX_COPY_HEADER))
        else {
            return IndexCopy::Damaged;
        };
        let (sum, etag) = match fields.split_once(" etag=") {
            Some((sum, etag)) => (sum, Some(etag.to_string())),
            None => (fields, None),
        };
        let intact = hex::decode(sum).is_ok_and(|sum| sum[..] == Sha256::digest(body)[..]);
        match (intact, String::from_utf8(body.to_vec())) {
            (true, Ok(body)) => IndexCopy::Valid { body, etag },
            _ => IndexCopy::Damaged,
        }
    }

    /// The file for `body` as served with `etag`.
    fn render(body: &str, etag: Option<&str>) -> Vec<u8> {
        let mut out = format!("{INDEX_COPY_HEADER}{}", hex::encode(Sha256::digest(body)));
        // A header value holds no line break; a tag that somehow did would only fail to match, never misparse.
        if let Some(etag) = etag.filter(|t| !t.contains(['\n', '\r'])) {
            out.push_str(" etag=");
            out.push_str(etag);
        }
        out.push('\n');
        out.push_str(body);
        out.into_bytes()
    }
}

/// Where launchers before [`INDEX_COPY_HEADER`] kept a copy's ETag.
fn legacy_etag_path(path: &std::path::Path) -> PathBuf {
    path.with_extension("etag")
}

/// The lines of a compact-index info file that name `version[-platform]`, each as its metadata (what follows
/// `|`: `checksum:…,ruby:>= 3.1`).
fn info_entries<'i>(info: &'i str, version: &str, platform: &str) -> impl Iterator<Item = &'i str> {
    let wanted = if platform == "ruby" {
        version.to_string()
    } else {
        format!("{version}-{platform}")
    };
    info.lines()
        .skip_while(|l| l.trim() != "---")
        .skip(1)
        .filter_map(|line| line.split_once(' ').or(Some((line, ""))))
        .filter(move |(v, _)| *v == wanted)
        .map(|(_, rest)| rest.split_once('|').map_or("", |(_, meta)| meta))
}

/// The metadata of `version[-platform]` in a compact-index info file, if the file lists it.
fn info_entry<'i>(info: &'i str, version: &str, platform: &str) -> Option<&'i str> {
    info_entries(info, version, platform).next()
}

/// A key's value in an info line's metadata (`ruby` in `checksum:…,ruby:>= 3.1&< 4`).
fn meta_value<'m>(meta: &'m str, key: &str) -> Option<&'m str> {
    meta.split(',').find_map(|kv| {
        let (k, v) = kv.trim().split_once(':')?;
        (k == key).then_some(v.trim())
    })
}

/// Finds the `checksum:` of `version[-platform]` in a compact-index info file, tolerating unknown keys.
pub fn checksum_from_info(info: &str, version: &str, platform: &str) -> Option<[u8; 32]> {
    info_entries(info, version, platform).find_map(|meta| {
        let bytes = hex::decode(meta_value(meta, "checksum")?).ok()?;
        bytes.try_into().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "---\n1.0.0 |checksum:0101010101010101010101010101010101010101010101010101010101010101\n1.1.0 dep_b:~> 0.3&>= 0.3.1,other:>= 0|checksum:0202020202020202020202020202020202020202020202020202020202020202,ruby:>= 2.7,future:key\n1.1.0-x86_64-linux dep_b:~> 0.3|ruby:>= 2.7,checksum:0303030303030303030303030303030303030303030303030303030303030303\n";

    #[test]
    fn compact_index_checksums() {
        assert_eq!(checksum_from_info(INFO, "1.0.0", "ruby"), Some([1; 32]));
        assert_eq!(checksum_from_info(INFO, "1.1.0", "ruby"), Some([2; 32]));
        assert_eq!(
            checksum_from_info(INFO, "1.1.0", "x86_64-linux"),
            Some([3; 32])
        );
        assert_eq!(checksum_from_info(INFO, "9.9.9", "ruby"), None);
        assert_eq!(checksum_from_info("garbage", "1.0.0", "ruby"), None);
    }

    #[test]
    fn index_entries_and_their_metadata() {
        let meta = info_entry(INFO, "1.1.0", "ruby").unwrap();
        assert_eq!(meta_value(meta, "ruby"), Some(">= 2.7"));
        assert_eq!(meta_value(meta, "future"), Some("key"));
        assert_eq!(meta_value(meta, "nothing"), None);
        // Listed without any metadata, or only for another platform.
        assert_eq!(info_entry("---\n2.0.0\n", "2.0.0", "ruby"), Some(""));
        assert!(info_entry(INFO, "1.1.0", "arm64-darwin").is_none());
        assert!(info_entry(INFO, "1.1.0", "x86_64-linux").is_some());
    }

    #[test]
    fn the_unverified_warning_counts_and_names_a_few() {
        let names: Vec<String> = (1..=6).map(|i| format!("gem{i}-1.0.0")).collect();
        let one = unverified_warning(&names[..1]);
        assert!(one.starts_with("installing gem1-1.0.0 WITHOUT"), "{one}");
        let two = unverified_warning(&names[..2]);
        assert!(two.starts_with("installing 2 gems WITHOUT"), "{two}");
        assert!(two.ends_with("(gem1-1.0.0, gem2-1.0.0)"), "{two}");
        let six = unverified_warning(&names);
        assert!(
            six.ends_with("(gem1-1.0.0, gem2-1.0.0, gem3-1.0.0, … and 3 more)"),
            "{six}"
        );
        assert!(!six.contains("(s)"), "{six}");
    }

    #[test]
    fn an_index_copy_is_read_only_as_written() {
        let copy = IndexCopy::render(INFO, Some("\"abc\""));
        assert_eq!(
            IndexCopy::parse(&copy),
            IndexCopy::Valid {
                body: INFO.to_string(),
                etag: Some("\"abc\"".to_string())
            }
        );
        // What older launchers and compact-index readers look for is still there, after the header.
        let text = String::from_utf8(copy.clone()).unwrap();
        assert_eq!(checksum_from_info(&text, "1.0.0", "ruby"), Some([1; 32]));
        let bare = IndexCopy::render(INFO, None);
        assert!(matches!(
            IndexCopy::parse(&bare),
            IndexCopy::Valid { etag: None, .. }
        ));
        // One flipped digit, a cut, a body without the header (an older launcher's): none is read.
        let flipped = text
            .replacen("|checksum:01", "|checksum:11", 1)
            .into_bytes();
        let cut = &copy[..copy.len() - 10];
        for damaged in [&flipped[..], cut, INFO.as_bytes(), b"", &copy[..20]] {
            assert_eq!(IndexCopy::parse(damaged), IndexCopy::Damaged);
        }
    }

    #[test]
    fn userinfo_is_split_off() {
        let (base, info) = split_userinfo("https://u:p@gems.example.com/");
        assert_eq!(base, "https://gems.example.com/");
        assert_eq!(info.as_deref(), Some("u:p"));
        assert_eq!(split_userinfo("https://a/").1, None);
    }

    #[test]
    fn endpoint_uses_mirror_and_its_own_credentials() {
        let s = BundlerSettings::from_layers(vec![vec![
            ("BUNDLE_MIRROR__ALL", "http://127.0.0.1:1"),
            ("BUNDLE_127__0__0__1", "tok"),
            ("BUNDLE_RUBYGEMS__ORG", "origin:secret"),
        ]]);
        let never =
            |_: &str, _: std::time::Duration| -> bool { panic!("no fallback_timeout, no probe") };
        let ep = Endpoint::resolve(&s, "https://rubygems.org", &never, &|_| {});
        assert_eq!(ep.base, "http://127.0.0.1:1/");
        assert_eq!(ep.auth.as_deref(), Some("Basic dG9rOg=="));
        assert_eq!(
            ep.auth_from.as_deref(),
            Some("BUNDLE_127__0__0__1 in the environment")
        );
        // The remote's own credentials never go to a mirror.
        let s = BundlerSettings::from_layers(vec![vec![
            ("BUNDLE_MIRROR__ALL", "http://mirror.example/"),
            ("BUNDLE_RUBYGEMS__ORG", "origin:secret"),
        ]]);
        let ep = Endpoint::resolve(&s, "https://u:p@rubygems.org/", &never, &|_| {});
        assert_eq!(ep.base, "http://mirror.example/");
        assert_eq!(ep.auth, None);
    }

    #[test]
    fn unreachable_mirror_with_fallback_timeout_falls_back() {
        let s = BundlerSettings::from_layers(vec![vec![
            ("BUNDLE_MIRROR__ALL", "http://all.example/"),
            ("BUNDLE_MIRROR__ALL__FALLBACK_TIMEOUT", "true"),
            (
                "BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/",
                "http://own.example/",
            ),
            (
                "BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/__FALLBACK_TIMEOUT",
                "1",
            ),
        ]]);
        let probed = Mutex::new(Vec::new());
        let notes = Mutex::new(Vec::new());
        let up = |url: &str, t: std::time::Duration| {
            probed.lock().unwrap().push((url.to_string(), t));
            url.contains("own")
        };
        let note = |m: String| notes.lock().unwrap().push(m);
        let ep = Endpoint::resolve(&s, "https://u:p@rubygems.org", &up, &note);
        assert_eq!(ep.base, "http://own.example/");
        assert_eq!(ep.mirror_of.as_deref(), Some("https://rubygems.org/"));
        assert_eq!(
            probed.into_inner().unwrap(),
            vec![
                (
                    "http://all.example/".to_string(),
                    std::time::Duration::from_millis(100)
                ),
                (
                    "http://own.example/".to_string(),
                    std::time::Duration::from_secs(1)
                ),
            ]
        );
        let notes = notes.into_inner().unwrap();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("http://all.example/"), "{notes:?}");
        assert!(!notes[0].contains("u:p"), "{notes:?}");
        let down = |_: &str, _: std::time::Duration| false;
        let ep = Endpoint::resolve(&s, "https://u:p@rubygems.org", &down, &|_| {});
        assert_eq!(ep.base, "https://rubygems.org/");
        assert_eq!(ep.mirror_of, None);
        assert_eq!(
            ep.auth_from.as_deref(),
            Some("the user:password in the URL")
        );
        assert_eq!(
            Endpoint::candidates(&s, "https://u:p@rubygems.org"),
            [
                "http://all.example/",
                "http://own.example/",
                "https://rubygems.org/"
            ]
        );
    }
}
