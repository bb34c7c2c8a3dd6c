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
use crate::error::{Error, Result, redact_url};
use crate::http::{self, HttpError};
use crate::package;
use crate::settings::{self, BundlerSettings};
use crate::ui::{Progress, Ui};

/// A response, or why there is none.
type Got = std::result::Result<http::Response, HttpError>;

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

/// Whether a gem server answers a download's way (its mirror, proxy, credentials and certificates): one GET of
/// the root gem's index entry, not retried. Any answer but a refusal of the credentials or a server error counts,
/// a 404 included (a source without a compact index still serves gems). `Ok` names what answered.
pub fn reachable(
    cache: &Cache,
    settings: &BundlerSettings,
    remote: &str,
    name: &str,
) -> std::result::Result<String, String> {
    let fetcher = Fetcher::new(
        cache,
        settings,
        FetchOptions {
            offline: false,
            allow_unverified: true,
            jobs: 1,
        },
    );
    let ep = fetcher.endpoint(remote, None);
    let url = format!("{}info/{name}", ep.base);
    let via = fetcher
        .http()
        .ok()
        .and_then(|c| c.proxy_for(&url))
        .map_or_else(String::new, |p| format!(" via {p}"));
    let mirror = ep
        .mirror_of
        .as_ref()
        .map_or_else(String::new, |r| format!(" (mirror of {r})"));
    let shown = format!("{}{mirror}{via}", redact_url(&ep.base));
    match fetcher.get(&ep, &url, None, None) {
        Ok(_) | Err(HttpError::Status { code: 404, .. }) => Ok(shown),
        Err(e) => Err(fetcher.failure(&ep, &shown, e).to_string()),
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
                    fetcher
                        .checksum_from_index(&ep, &req, None)
                        .unwrap_or_else(|e| {
                            failure = Some(e.to_string());
                            None
                        })
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
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
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
    infos: Mutex<HashMap<(String, String), Option<String>>>,
}

/// The file with this digest in the download cache, hashed again: its name says what it was when it was stored,
/// not what it holds now (a disk error, a restore, an edit).
fn cached(cache: &Cache, sha256: &[u8; 32]) -> Cached {
    let path = cache.download(sha256);
    let damaged = |path, e: std::io::Error| Cached::Damaged {
        path,
        why: format!("it cannot be read: {e}"),
    };
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Cached::Absent,
        Err(e) => return damaged(path, e),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return damaged(path, e),
        }
    }
    let actual: [u8; 32] = hasher.finalize().into();
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
                Err(e @ (Error::Network { .. } | Error::BrokeOff(_))) if req.remotes.len() > 1 => {
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
        let expected = match req.expected {
            Some(sha) => Some(sha),
            None => self.checksum_from_index(ep, req, Some(ui))?,
        };
        if expected.is_none() {
            if !self.opts.allow_unverified {
                return Err(Error::Unverifiable {
                    gem: req.full_name.clone(),
                    index: format!("{}info/{}", ep.base, req.name),
                });
            }
            ui.warn(&format!(
                "installing {} WITHOUT checksum verification (--allow-unverified): its bytes are trusted blindly",
                req.full_name
            ));
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
                Err(e) => return Err(self.failure(ep, &req.full_name, e)),
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
                    "downloading {} from {} broke off after {total} bytes: {e}{}",
                    req.full_name,
                    redact_url(url),
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

    /// The digest the source's compact index records for this version, if it records one.
    fn checksum_from_index(
        &self,
        ep: &Endpoint,
        req: &GemRequest,
        ui: Option<&Ui>,
    ) -> Result<Option<[u8; 32]>> {
        let key = (ep.base.clone(), req.name.clone());
        if let Some(info) = self
            .infos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(info
                .as_deref()
                .and_then(|t| checksum_from_info(t, &req.version, &req.platform)));
        }
        let info = self.fetch_info(ep, &req.name, ui)?;
        let sum = info
            .as_deref()
            .and_then(|t| checksum_from_info(t, &req.version, &req.platform));
        self.infos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, info);
        Ok(sum)
    }

    fn info_path(&self, base: &str, name: &str) -> PathBuf {
        self.cache.index(&cache::key_of([base])).join(name)
    }

    /// GET `info/<name>`, conditional on the cached copy's ETag when the copy is intact (a damaged one would be
    /// kept by a 304 forever). `None` when the source has no compact index.
    fn fetch_info(&self, ep: &Endpoint, name: &str, ui: Option<&Ui>) -> Result<Option<String>> {
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
            // No compact index here (an old-style server, or a plain mirror of gem files).
            Err(HttpError::Status { code: 404, .. }) => return Ok(None),
            Err(e) => return Err(self.failure(ep, name, e)),
        };
        if resp.status() == 304
            && let Some(text) = cached
        {
            return Ok(Some(text));
        }
        let new_etag = resp.header("ETag").map(str::to_string);
        let mut body = String::new();
        resp.into_reader()
            .take(MAX_INFO_BYTES)
            .read_to_string(&mut body)
            .map_err(|e| {
                Error::network(format!(
                    "reading {} failed: {e}{}",
                    redact_url(&url),
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
        Ok(Some(body))
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
    /// server asks (`Retry-After`) or with exponential backoff.
    fn get_retrying(&self, ep: &Endpoint, url: &str, etag: Option<&str>, ui: Option<&Ui>) -> Got {
        let retries = self.settings.retries();
        let mut attempt = 0;
        loop {
            match self.get(ep, url, etag, ui) {
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
                                _ => "connection".to_string(),
                            },
                            wait.as_secs_f64(),
                            attempt + 1,
                            retries + 1
                        ));
                    }
                    std::thread::sleep(wait);
                }
                Err(HttpError::Status {
                    code,
                    text,
                    url,
                    retry_after,
                }) if attempt > 0 => {
                    return Err(HttpError::Status {
                        code,
                        text: format!(
                            "{text} (after {} attempts; BUNDLE_RETRY sets how many)",
                            attempt + 1
                        ),
                        url,
                        retry_after,
                    });
                }
                Err(HttpError::Transient(msg)) if attempt > 0 => {
                    return Err(HttpError::Transient(format!(
                        "{msg} (after {} attempts; BUNDLE_RETRY sets how many)",
                        attempt + 1
                    )));
                }
                other => return other,
            }
        }
    }

    /// The user-facing error for a failed request of `what` (a gem or an index file) from `ep`.
    fn failure(&self, ep: &Endpoint, what: &str, err: HttpError) -> Error {
        let (code, text, url) = match err {
            HttpError::Config(msg) => return Error::Config(msg),
            // `Other` messages are complete (TLS, proxy and certificate failures say what to do); a refused or
            // reset connection gets the generic advice unless a mirror note already gives some.
            HttpError::Other(msg) => {
                return Error::Network {
                    message: format!("{what}: {msg}{}", mirror_note(ep)),
                    advised: true,
                };
            }
            HttpError::Transient(msg) => {
                return Error::Network {
                    message: format!("{what}: {msg}{}", mirror_note(ep)),
                    advised: ep.mirror_of.is_some(),
                };
            }
            HttpError::Status {
                code, text, url, ..
            } => (code, text, url),
        };
        let elsewhere = !url.starts_with(&ep.base);
        let message = match code {
            401 => {
                let host = settings::host_of(&url).unwrap_or("the server").to_string();
                match (&ep.auth_from, elsewhere) {
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
                }
            }
            404 => format!(
                "{what}: {url} answered HTTP 404 {text}; the version may have been yanked, or the mirror \
                 is incomplete"
            ),
            _ => format!("{what}: {url} answered HTTP {code} {text}"),
        };
        Error::Network {
            message: message + &mirror_note(ep),
            advised: code == 401 || ep.mirror_of.is_some(),
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

/// A line naming the mirror setting behind a failure, when the failing URL is a mirror.
fn mirror_note(ep: &Endpoint) -> String {
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

/// Finds the `checksum:` of `version[-platform]` in a compact-index info file, tolerating unknown keys.
pub fn checksum_from_info(info: &str, version: &str, platform: &str) -> Option<[u8; 32]> {
    let wanted = if platform == "ruby" {
        version.to_string()
    } else {
        format!("{version}-{platform}")
    };
    info.lines()
        .skip_while(|l| l.trim() != "---")
        .skip(1)
        .filter_map(|line| line.split_once(' '))
        .filter(|(v, _)| *v == wanted)
        .find_map(|(_, rest)| {
            let (_, meta) = rest.split_once('|').unwrap_or(("", rest));
            meta.split(',').find_map(|kv| {
                let value = kv.trim().strip_prefix("checksum:")?;
                let bytes = hex::decode(value).ok()?;
                bytes.try_into().ok()
            })
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
