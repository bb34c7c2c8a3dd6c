//! Steps 4 and 5: fetch each `.gem` of the closure from its source (or a Bundler mirror) into the
//! content-addressed download cache, verifying its SHA-256 before it is stored under its final name.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::cache::{self, Cache};
use crate::error::{Error, Result, redact_url};
use crate::settings::{self, BundlerSettings};
use crate::ui::{Progress, Ui};

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
    /// Base URL without userinfo, ending in `/`.
    base: String,
    /// `Authorization` header value, if any.
    auth: Option<String>,
}

impl Endpoint {
    fn for_remote(settings: &BundlerSettings, remote: &str) -> Endpoint {
        let remote = settings::normalize_uri(remote);
        let target = settings
            .mirror_for(&remote)
            .unwrap_or_else(|| remote.clone());
        let (base, userinfo) = split_userinfo(&target);
        let creds = userinfo
            .or_else(|| settings.credentials_for(&target).map(str::to_string))
            .or_else(|| settings.credentials_for(&remote).map(str::to_string));
        Endpoint {
            base,
            auth: creds.map(|c| {
                let c = if c.contains(':') { c } else { format!("{c}:") };
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(c)
                )
            }),
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

/// Fetches all requested gems, several at a time.
pub fn fetch_all(
    cache: &Cache,
    settings: &BundlerSettings,
    requests: &[GemRequest],
    opts: FetchOptions,
    ui: &Ui,
) -> Result<Vec<Fetched>> {
    let fetcher = Fetcher::new(cache, settings, opts);
    if opts.offline {
        return fetcher.offline(requests);
    }
    fetcher.parallel(requests, ui)
}

/// The digest of each request as far as it is known: the lockfile's, else the source's compact index (only
/// the cached copy when offline). Index failures leave the digest unknown rather than failing a plan.
pub fn known_checksums(
    cache: &Cache,
    settings: &BundlerSettings,
    requests: &[GemRequest],
    offline: bool,
) -> Vec<Option<[u8; 32]>> {
    let fetcher = Fetcher::new(
        cache,
        settings,
        FetchOptions {
            offline,
            allow_unverified: true,
            jobs: 1,
        },
    );
    requests
        .iter()
        .map(|req| {
            req.expected.or_else(|| {
                req.remotes.iter().find_map(|r| {
                    let ep = Endpoint::for_remote(settings, r);
                    if offline {
                        fetcher.cached_checksum(&ep, req)
                    } else {
                        fetcher.checksum_from_index(&ep, req).ok().flatten()
                    }
                })
            })
        })
        .collect()
}

impl<'a> Fetcher<'a> {
    fn new(cache: &'a Cache, settings: &'a BundlerSettings, opts: FetchOptions) -> Fetcher<'a> {
        Fetcher {
            cache,
            settings,
            opts,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(60))
                .user_agent(concat!("kamal-launcher/", env!("CARGO_PKG_VERSION")))
                .build(),
            infos: Mutex::new(HashMap::new()),
        }
    }

    fn cached_checksum(&self, ep: &Endpoint, req: &GemRequest) -> Option<[u8; 32]> {
        let text = fs::read_to_string(self.info_path(ep, &req.name)).ok()?;
        checksum_from_info(&text, &req.version, &req.platform)
    }

    fn parallel(&self, requests: &[GemRequest], ui: &Ui) -> Result<Vec<Fetched>> {
        let fetcher = self;
        let opts = self.opts;
        let progress = ui.progress_bar("Fetching", requests.len());
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
                        let result = fetcher.fetch(req, ui, progress);
                        let failed = result.is_err();
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
                        progress.finished(&req.full_name);
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

struct Fetcher<'a> {
    cache: &'a Cache,
    settings: &'a BundlerSettings,
    opts: FetchOptions,
    agent: ureq::Agent,
    /// Compact-index info per (remote, name), fetched at most once per run.
    infos: Mutex<HashMap<(String, String), Option<String>>>,
}

impl Fetcher<'_> {
    /// Satisfies everything from the cache, or lists what is missing.
    fn offline(&self, requests: &[GemRequest]) -> Result<Vec<Fetched>> {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for req in requests {
            let sha = req.expected.or_else(|| {
                req.remotes.iter().find_map(|r| {
                    self.cached_checksum(&Endpoint::for_remote(self.settings, r), req)
                })
            });
            match sha.map(|s| (s, self.cache.download(&s))) {
                Some((sha256, path)) if path.is_file() => out.push(Fetched {
                    path,
                    sha256,
                    downloaded: false,
                }),
                _ => missing.push(req.full_name.clone()),
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(Error::Offline(format!(
                "offline, and the cache in {} lacks {} gem(s): {}\n  fill it by running `kamal-launcher install` once with network access (or restore the CI cache)",
                self.cache.dir().display(),
                missing.len(),
                missing.join(", ")
            )))
        }
    }

    fn fetch(&self, req: &GemRequest, ui: &Ui, progress: &Progress<'_>) -> Result<Fetched> {
        // Already downloaded: by the lockfile's digest, else by the digest in the cached compact index.
        let known = req.expected.or_else(|| {
            req.remotes
                .iter()
                .find_map(|r| self.cached_checksum(&Endpoint::for_remote(self.settings, r), req))
        });
        if let Some(sha) = known {
            let path = self.cache.download(&sha);
            if path.is_file() {
                cache::touch(&path);
                return Ok(Fetched {
                    path,
                    sha256: sha,
                    downloaded: false,
                });
            }
        }
        let mut last_err = None;
        for remote in &req.remotes {
            let ep = Endpoint::for_remote(self.settings, remote);
            match self.fetch_from(&ep, req, ui, progress) {
                Ok(f) => return Ok(f),
                // Another remote of the same source may have it; any other failure is final.
                Err(e @ Error::Network(_)) if req.remotes.len() > 1 => last_err = Some(e),
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
            None => self.checksum_from_index(ep, req)?,
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
        if let Some(sha) = expected {
            let path = self.cache.download(&sha);
            if path.is_file() {
                return Ok(Fetched {
                    path,
                    sha256: sha,
                    downloaded: false,
                });
            }
        }
        let lock_name = match expected {
            Some(sha) => format!("download-{}", hex::encode(sha)),
            None => format!(
                "download-{}",
                cache::key_of([ep.base.as_str(), &req.full_name])
            ),
        };
        let _lock = self.cache.lock(&lock_name)?;
        if let Some(sha) = expected {
            // A concurrent launcher may have finished it while we waited for the lock.
            let path = self.cache.download(&sha);
            if path.is_file() {
                return Ok(Fetched {
                    path,
                    sha256: sha,
                    downloaded: false,
                });
            }
        }
        let url = format!("{}gems/{}.gem", ep.base, req.full_name);
        progress.started(&req.full_name);
        ui.verbose(&format!("GET {}", redact_url(&url)));
        let tmp = self.cache.temp_path("download")?;
        let result = self.download_to(ep, &url, &tmp, req, expected, progress);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        let sha = result?;
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
        Ok(Fetched {
            path: dest,
            sha256: sha,
            downloaded: true,
        })
    }

    fn download_to(
        &self,
        ep: &Endpoint,
        url: &str,
        tmp: &std::path::Path,
        req: &GemRequest,
        expected: Option<[u8; 32]>,
        progress: &Progress<'_>,
    ) -> Result<[u8; 32]> {
        let resp = self.get(ep, url, None, &req.full_name)?;
        let mut reader = resp.into_reader().take(MAX_GEM_BYTES + 1);
        let mut file = File::create(tmp).map_err(Error::io("creating", tmp))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(|e| {
                Error::Network(format!(
                    "downloading {} from {} failed after {total} bytes: {e}",
                    req.full_name,
                    redact_url(url)
                ))
            })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > MAX_GEM_BYTES {
                return Err(Error::Network(format!(
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
    fn checksum_from_index(&self, ep: &Endpoint, req: &GemRequest) -> Result<Option<[u8; 32]>> {
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
        let info = self.fetch_info(ep, &req.name)?;
        let sum = info
            .as_deref()
            .and_then(|t| checksum_from_info(t, &req.version, &req.platform));
        self.infos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, info);
        Ok(sum)
    }

    fn info_path(&self, ep: &Endpoint, name: &str) -> PathBuf {
        self.cache
            .index(&cache::key_of([ep.base.as_str()]))
            .join(name)
    }

    /// GET `info/<name>`, conditional on the cached copy's ETag. `None` when the source has no compact index.
    fn fetch_info(&self, ep: &Endpoint, name: &str) -> Result<Option<String>> {
        let url = format!("{}info/{}", ep.base, name);
        let path = self.info_path(ep, name);
        let etag_path = path.with_extension("etag");
        let cached = fs::read_to_string(&path).ok();
        let etag = cached
            .as_ref()
            .and_then(|_| fs::read_to_string(&etag_path).ok());
        let resp = match self.get(ep, &url, etag.as_deref(), name) {
            Ok(r) => r,
            Err(Error::Network(msg)) if msg.contains("HTTP 404") => return Ok(None),
            Err(e) => return Err(e),
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
            .map_err(|e| Error::Network(format!("reading {} failed: {e}", redact_url(&url))))?;
        // The index copy is an optimisation; a read-only cache still works without it.
        if cache::write_atomic(self.cache, &path, body.as_bytes()).is_ok() {
            match new_etag {
                Some(tag) => {
                    let _ = cache::write_atomic(self.cache, &etag_path, tag.as_bytes());
                }
                None => {
                    let _ = fs::remove_file(&etag_path);
                }
            }
        }
        Ok(Some(body))
    }

    fn get(
        &self,
        ep: &Endpoint,
        url: &str,
        if_none_match: Option<&str>,
        what: &str,
    ) -> Result<ureq::Response> {
        let mut request = self.agent.get(url);
        if let Some(auth) = &ep.auth {
            request = request.set("Authorization", auth);
        }
        if let Some(tag) = if_none_match {
            request = request.set("If-None-Match", tag);
        }
        match request.call() {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(404, _)) => Err(Error::Network(format!(
                "{what}: {} answered HTTP 404 Not Found; the version may have been yanked, or the mirror is incomplete",
                redact_url(url)
            ))),
            Err(ureq::Error::Status(code, resp)) => Err(Error::Network(format!(
                "{what}: {} answered HTTP {code} {}",
                redact_url(url),
                resp.status_text()
            ))),
            Err(ureq::Error::Transport(t)) => Err(Error::Network(format!(
                "{what}: could not fetch {}: {}",
                redact_url(url),
                redact_url(&t.to_string())
            ))),
        }
    }
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
    fn userinfo_is_split_off() {
        let (base, info) = split_userinfo("https://u:p@gems.example.com/");
        assert_eq!(base, "https://gems.example.com/");
        assert_eq!(info.as_deref(), Some("u:p"));
        assert_eq!(split_userinfo("https://a/").1, None);
    }

    #[test]
    fn endpoint_uses_mirror_and_credentials() {
        let s = BundlerSettings::from_layers(vec![vec![
            ("BUNDLE_MIRROR__ALL", "http://127.0.0.1:1"),
            ("BUNDLE_127__0__0__1", "tok"),
        ]]);
        let ep = Endpoint::for_remote(&s, "https://rubygems.org");
        assert_eq!(ep.base, "http://127.0.0.1:1/");
        assert_eq!(ep.auth.as_deref(), Some("Basic dG9rOg=="));
    }
}
