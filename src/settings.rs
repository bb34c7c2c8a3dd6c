//! Bundler's settings, read the way Bundler reads them: the app's `.bundle/config`, then the environment, then
//! the user's `~/.bundle/config`. The launcher honours the settings that change what it fetches and from where.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The merged view of Bundler's three settings layers.
#[derive(Debug, Default, Clone)]
pub struct BundlerSettings {
    /// Highest precedence first; keys in Bundler's dotted, lower-case form (`mirror.all`).
    layers: Vec<Layer>,
}

#[derive(Debug, Clone)]
struct Layer {
    values: HashMap<String, String>,
    origin: Origin,
}

/// Where a setting was found, for messages that tell the user what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The app's `.bundle/config` (or `$BUNDLE_APP_CONFIG/config`).
    AppConfig(PathBuf),
    /// A `BUNDLE_*` environment variable.
    Environment,
    /// The user's `~/.bundle/config` (or `$BUNDLE_USER_CONFIG`).
    UserConfig(PathBuf),
}

/// A setting's value and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    /// The value as written.
    pub value: &'a str,
    /// The dotted key it was found under (`gems.example.com`).
    pub key: &'a str,
    /// The layer that supplied it.
    pub origin: &'a Origin,
}

impl Found<'_> {
    /// Names the setting the way the user wrote it: `BUNDLE_GEMS__EXAMPLE__COM in the environment`.
    pub fn describe(&self) -> String {
        let env = env_key_for(self.key);
        match self.origin {
            Origin::Environment => format!("{env} in the environment"),
            Origin::AppConfig(p) => format!("{env} in the app's {}", p.display()),
            Origin::UserConfig(p) => format!("{env} in the user's {}", p.display()),
        }
    }
}

/// A mirror Bundler would consider for a source, in the order it considers them.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    /// The mirror's URI with Bundler's trailing slash (it may carry `user:pass@`).
    pub uri: String,
    /// `mirror.<uri>.fallback_timeout`: when set, the mirror is used only if it accepts a TCP connection
    /// within this time; otherwise the next candidate (finally the source itself) is used.
    pub fallback_timeout: Option<Duration>,
    /// The setting that names it, as the user wrote it (`BUNDLE_MIRROR__ALL in the environment`).
    pub from: String,
}

/// Bundler's `Mirror::DEFAULT_FALLBACK_TIMEOUT`, what `fallback_timeout: true` means.
const DEFAULT_FALLBACK_TIMEOUT: Duration = Duration::from_millis(100);
/// Bundler's default `timeout` (seconds) for connecting and for each read.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bundler's default `redirect` limit.
const DEFAULT_REDIRECTS: u32 = 5;

/// Converts a dotted key to the environment-variable form Bundler uses (`Settings.key_for`).
pub fn env_key_for(key: &str) -> String {
    format!(
        "BUNDLE_{}",
        key.replace('.', "__").replace('-', "___").to_uppercase()
    )
}

/// Converts an environment-variable form key back to Bundler's dotted form.
fn dotted_key(env_key: &str) -> Option<String> {
    let rest = env_key.strip_prefix("BUNDLE_")?;
    Some(rest.replace("___", "-").replace("__", ".").to_lowercase())
}

impl BundlerSettings {
    /// Loads all three layers for the app in `app_dir`, reading the environment through `env`.
    pub fn load(app_dir: &Path, vars: impl Iterator<Item = (String, String)>) -> BundlerSettings {
        let vars: HashMap<String, String> = vars.collect();
        let app_config = match vars.get("BUNDLE_APP_CONFIG") {
            Some(dir) => app_dir.join(dir).join("config"),
            None => app_dir.join(".bundle/config"),
        };
        let user_config = match vars.get("BUNDLE_USER_CONFIG") {
            Some(file) => Some(PathBuf::from(file)),
            None => vars
                .get("HOME")
                .map(|h| Path::new(h).join(".bundle/config")),
        };
        let env_layer = vars
            .iter()
            .filter_map(|(k, v)| Some((dotted_key(k)?, v.clone())))
            .collect();
        let mut layers = vec![
            Layer {
                values: read_config(&app_config),
                origin: Origin::AppConfig(app_config),
            },
            Layer {
                values: env_layer,
                origin: Origin::Environment,
            },
        ];
        if let Some(user) = user_config {
            layers.push(Layer {
                values: read_config(&user),
                origin: Origin::UserConfig(user),
            });
        }
        BundlerSettings { layers }
    }

    /// Builds settings from explicit layers (highest precedence first, all "environment"), for tests.
    #[cfg(test)]
    pub fn from_layers(layers: Vec<Vec<(&str, &str)>>) -> BundlerSettings {
        BundlerSettings {
            layers: layers
                .into_iter()
                .map(|l| Layer {
                    values: l
                        .into_iter()
                        .filter_map(|(k, v)| Some((dotted_key(k)?, v.to_string())))
                        .collect(),
                    origin: Origin::Environment,
                })
                .collect(),
        }
    }

    /// The value of a dotted key (`force_ruby_platform`), honouring precedence.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).map(|f| f.value)
    }

    /// The value of a dotted key and where it was found.
    pub fn find(&self, key: &str) -> Option<Found<'_>> {
        let key = key.to_lowercase();
        self.layers.iter().find_map(|l| {
            let (key, value) = l.values.get_key_value(&key)?;
            Some(Found {
                value,
                key,
                origin: &l.origin,
            })
        })
    }

    /// Whether a boolean setting is on, with Bundler's truthy spellings.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some(v) if is_truthy(v))
    }

    /// The mirrors Bundler would try for a source, in order: `mirror.all`, then the source's own
    /// `mirror.<uri>`. Without a `fallback_timeout` the first one is used unconditionally.
    pub fn mirrors_for(&self, remote: &str) -> Vec<Mirror> {
        let wanted = normalize_uri(remote).to_lowercase();
        let mut all = None;
        let mut own = None;
        let mut all_timeout = None;
        let mut own_timeout = None;
        // Bundler looks a mirror up by the source's full URI, then by its host alone (`mirror.rubygems.org`).
        let host = host_of(&wanted).map(str::to_string);
        let mut by_host = None;
        let mut by_host_timeout = None;
        for layer in self.layers.iter().rev() {
            for (key, value) in &layer.values {
                let Some(rest) = key.strip_prefix("mirror.") else {
                    continue;
                };
                let rest = rest.strip_suffix('/').unwrap_or(rest);
                let (uri, is_timeout) = match rest.strip_suffix(".fallback_timeout") {
                    Some(uri) => (uri, true),
                    None => (rest, false),
                };
                let slot = if uri == "all" {
                    if is_timeout {
                        &mut all_timeout
                    } else {
                        &mut all
                    }
                } else if normalize_uri(uri).to_lowercase() == wanted {
                    if is_timeout {
                        &mut own_timeout
                    } else {
                        &mut own
                    }
                } else if host.as_deref() == Some(uri) {
                    if is_timeout {
                        &mut by_host_timeout
                    } else {
                        &mut by_host
                    }
                } else {
                    continue;
                };
                // Layers are walked lowest precedence first, so a higher layer overwrites.
                *slot = Some(Found {
                    value: value.as_str(),
                    key: key.as_str(),
                    origin: &layer.origin,
                });
            }
        }
        let (own, own_timeout) = match own {
            Some(_) => (own, own_timeout),
            None => (by_host, by_host_timeout),
        };
        [(all, all_timeout), (own, own_timeout)]
            .into_iter()
            .filter_map(|(uri, timeout)| {
                let uri = uri?;
                Some(Mirror {
                    uri: normalize_uri(uri.value),
                    fallback_timeout: timeout.map(|t| t.value).and_then(parse_fallback_timeout),
                    from: uri.describe(),
                })
            })
            .collect()
    }

    /// The first mirror for a remote, ignoring fallback timeouts (what Bundler uses when every mirror answers).
    #[cfg(test)]
    pub fn mirror_for(&self, remote: &str) -> Option<String> {
        self.mirrors_for(remote).into_iter().next().map(|m| m.uri)
    }

    /// Credentials (`user:pass` or a token) configured for a remote: by its full URI, then by host, as
    /// Bundler's `Settings#credentials_for` looks them up. Userinfo in `remote` is ignored.
    pub fn credentials_for(&self, remote: &str) -> Option<Found<'_>> {
        let remote = crate::error::redact_url(remote);
        let normalized = normalize_uri(&remote).to_lowercase();
        if let Some(found) = self.find(&normalized) {
            return Some(found);
        }
        let host = host_of(&remote)?;
        self.find(&host.to_lowercase())
    }

    /// `timeout`: seconds for connecting and for each read (Bundler's default is 10).
    pub fn timeout(&self) -> Duration {
        self.get("timeout")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64)
    }

    /// `retry`: how many times a failed request is tried again (Bundler's default is 3).
    pub fn retries(&self) -> u32 {
        self.get("retry")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(3)
    }

    /// `redirect`: how many redirects one request may follow (Bundler's default is 5).
    pub fn redirect_limit(&self) -> u32 {
        self.get("redirect")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_REDIRECTS)
    }
}

/// Bundler's reading of `fallback_timeout`: `true` is 0.1 s, `false` or 0 means "do not probe".
fn parse_fallback_timeout(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("true") {
        return Some(DEFAULT_FALLBACK_TIMEOUT);
    }
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Bundler's truthy values for boolean settings.
pub fn is_truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes")
}

/// Adds the trailing slash Bundler adds to source and mirror URIs.
pub fn normalize_uri(uri: &str) -> String {
    let uri = uri.trim();
    if uri.ends_with('/') {
        uri.to_string()
    } else {
        format!("{uri}/")
    }
}

/// The host part of a URL, without userinfo or port.
pub fn host_of(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.rfind(':') {
        Some(i) if !host_port.ends_with(']') => &host_port[..i],
        _ => host_port,
    };
    (!host.is_empty()).then_some(host)
}

/// Reads one Bundler config file (a flat YAML map of `BUNDLE_KEY: "value"`); a missing file is empty.
fn read_config(path: &Path) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(": ")?;
            let key = dotted_key(key.trim().trim_matches('"'))?;
            Some((key, unquote(value.trim())))
        })
        .collect()
}

fn unquote(v: &str) -> String {
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        v[1..v.len() - 1]
            .replace("\\\"", "\"")
            .replace("\\\\", "\\")
    } else if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        v[1..v.len() - 1].replace("''", "'")
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_follow_bundler_encoding() {
        assert_eq!(
            env_key_for("rubygems.pkg.github.com"),
            "BUNDLE_RUBYGEMS__PKG__GITHUB__COM"
        );
        assert_eq!(env_key_for("my.gem-host.com"), "BUNDLE_MY__GEM___HOST__COM");
        assert_eq!(
            env_key_for("mirror.https://rubygems.org/"),
            "BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/"
        );
        assert_eq!(
            dotted_key("BUNDLE_MY__GEM___HOST__COM").unwrap(),
            "my.gem-host.com"
        );
    }

    #[test]
    fn mirrors_all_wins_then_per_source() {
        let s = BundlerSettings::from_layers(vec![vec![(
            "BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/",
            "http://127.0.0.1:9/",
        )]]);
        assert_eq!(
            s.mirror_for("https://rubygems.org/").as_deref(),
            Some("http://127.0.0.1:9/")
        );
        assert_eq!(
            s.mirror_for("https://rubygems.org").as_deref(),
            Some("http://127.0.0.1:9/")
        );
        assert_eq!(s.mirror_for("https://gems.example.com/"), None);
        // Bundler also looks a mirror up by the source's host alone; the full URI wins over it.
        let s =
            BundlerSettings::from_layers(vec![vec![("BUNDLE_MIRROR__RUBYGEMS__ORG", "http://x/")]]);
        assert_eq!(
            s.mirror_for("https://rubygems.org/").as_deref(),
            Some("http://x/")
        );
        assert_eq!(s.mirror_for("https://gems.example.com/"), None);
        let s = BundlerSettings::from_layers(vec![vec![
            ("BUNDLE_MIRROR__RUBYGEMS__ORG", "http://host/"),
            ("BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/", "http://full/"),
        ]]);
        assert_eq!(
            s.mirror_for("https://rubygems.org/").as_deref(),
            Some("http://full/")
        );
        let s = BundlerSettings::from_layers(vec![
            vec![("BUNDLE_MIRROR__ALL", "http://all")],
            vec![("BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/", "http://one/")],
        ]);
        assert_eq!(
            s.mirror_for("https://rubygems.org/").as_deref(),
            Some("http://all/")
        );
    }

    #[test]
    fn precedence_app_then_env_then_user() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir_all(app.join(".bundle")).unwrap();
        std::fs::create_dir_all(dir.path().join("home/.bundle")).unwrap();
        std::fs::write(
            app.join(".bundle/config"),
            "---\nBUNDLE_FORCE_RUBY_PLATFORM: \"true\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("home/.bundle/config"),
            "---\nBUNDLE_GEMS__EXAMPLE__COM: \"u:p\"\nBUNDLE_FORCE_RUBY_PLATFORM: \"false\"\n",
        )
        .unwrap();
        let home = dir.path().join("home").to_string_lossy().into_owned();
        let s = BundlerSettings::load(
            &app,
            vec![
                ("HOME".to_string(), home.clone()),
                (
                    "BUNDLE_FORCE_RUBY_PLATFORM".to_string(),
                    "false".to_string(),
                ),
            ]
            .into_iter(),
        );
        assert!(s.flag("force_ruby_platform"));
        let found = s
            .credentials_for("https://gems.example.com/private/")
            .unwrap();
        assert_eq!(found.value, "u:p");
        assert_eq!(
            found.describe(),
            format!(
                "BUNDLE_GEMS__EXAMPLE__COM in the user's {}/.bundle/config",
                home
            )
        );
    }

    #[test]
    fn fallback_timeouts_follow_bundler() {
        let s = BundlerSettings::from_layers(vec![
            vec![
                ("BUNDLE_MIRROR__ALL", "http://all/"),
                ("BUNDLE_MIRROR__ALL__FALLBACK_TIMEOUT", "true"),
                ("BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/", "http://one"),
                (
                    "BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/__FALLBACK_TIMEOUT",
                    "2",
                ),
            ],
            vec![(
                "BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/__FALLBACK_TIMEOUT",
                "9",
            )],
        ]);
        assert_eq!(
            s.mirrors_for("https://rubygems.org"),
            vec![
                Mirror {
                    uri: "http://all/".into(),
                    fallback_timeout: Some(Duration::from_millis(100)),
                    from: "BUNDLE_MIRROR__ALL in the environment".into(),
                },
                Mirror {
                    uri: "http://one/".into(),
                    fallback_timeout: Some(Duration::from_secs(2)),
                    from: "BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/ in the environment".into(),
                },
            ]
        );
        assert_eq!(parse_fallback_timeout("false"), None);
        assert_eq!(parse_fallback_timeout("0"), None);
        assert_eq!(
            parse_fallback_timeout("0.5"),
            Some(Duration::from_millis(500))
        );
        // The trailing-slash-less spelling Bundler's MirrorConfig also accepts.
        let s = BundlerSettings::from_layers(vec![vec![
            ("BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG", "http://m"),
            (
                "BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG__FALLBACK_TIMEOUT",
                "true",
            ),
        ]]);
        assert_eq!(
            s.mirrors_for("https://rubygems.org/")[0].fallback_timeout,
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn timeouts_and_redirects() {
        let s = BundlerSettings::from_layers(vec![vec![]]);
        assert_eq!(s.timeout(), Duration::from_secs(10));
        assert_eq!(s.redirect_limit(), 5);
        let s = BundlerSettings::from_layers(vec![vec![
            ("BUNDLE_TIMEOUT", "3"),
            ("BUNDLE_REDIRECT", "2"),
        ]]);
        assert_eq!(s.timeout(), Duration::from_secs(3));
        assert_eq!(s.redirect_limit(), 2);
    }

    #[test]
    fn credentials_ignore_userinfo_in_the_remote() {
        let s = BundlerSettings::from_layers(vec![vec![("BUNDLE_GEMS__EXAMPLE__COM", "tok")]]);
        let found = s.credentials_for("https://u:p@gems.example.com/").unwrap();
        assert_eq!(found.value, "tok");
        assert_eq!(
            found.describe(),
            "BUNDLE_GEMS__EXAMPLE__COM in the environment"
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(host_of("https://u:p@a.b.c:8443/x"), Some("a.b.c"));
        assert_eq!(host_of("http://127.0.0.1:80/"), Some("127.0.0.1"));
        assert_eq!(host_of("nope"), None);
    }
}
