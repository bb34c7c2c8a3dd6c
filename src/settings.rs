//! Bundler's settings, read the way Bundler reads them: the app's `.bundle/config`, then the environment, then
//! the user's `~/.bundle/config`. The launcher honours the settings that change what it fetches and from where.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The merged view of Bundler's three settings layers.
#[derive(Debug, Default, Clone)]
pub struct BundlerSettings {
    /// Highest precedence first; keys in Bundler's dotted, lower-case form (`mirror.all`).
    layers: Vec<HashMap<String, String>>,
}

/// Converts a dotted key to the environment-variable form Bundler uses (`Settings.key_for`).
#[cfg(test)]
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
        let mut layers = vec![read_config(&app_config), env_layer];
        if let Some(user) = user_config {
            layers.push(read_config(&user));
        }
        BundlerSettings { layers }
    }

    /// Builds settings from explicit layers (highest precedence first), for tests.
    #[cfg(test)]
    pub fn from_layers(layers: Vec<Vec<(&str, &str)>>) -> BundlerSettings {
        BundlerSettings {
            layers: layers
                .into_iter()
                .map(|l| {
                    l.into_iter()
                        .filter_map(|(k, v)| Some((dotted_key(k)?, v.to_string())))
                        .collect()
                })
                .collect(),
        }
    }

    /// The value of a dotted key (`force_ruby_platform`), honouring precedence.
    pub fn get(&self, key: &str) -> Option<&str> {
        let key = key.to_lowercase();
        self.layers
            .iter()
            .find_map(|l| l.get(&key))
            .map(String::as_str)
    }

    /// Whether a boolean setting is on, with Bundler's truthy spellings.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some(v) if is_truthy(v))
    }

    /// The mirror URL to use for a source remote: `mirror.all` first, as Bundler does, then the per-source key.
    pub fn mirror_for(&self, remote: &str) -> Option<String> {
        if let Some(all) = self.get("mirror.all") {
            return Some(normalize_uri(all));
        }
        let wanted = normalize_uri(remote).to_lowercase();
        for layer in &self.layers {
            for (key, value) in layer {
                let Some(uri) = key.strip_prefix("mirror.") else {
                    continue;
                };
                if uri.ends_with(".fallback_timeout") {
                    continue;
                }
                if normalize_uri(uri).to_lowercase() == wanted {
                    return Some(normalize_uri(value));
                }
            }
        }
        None
    }

    /// Credentials (`user:pass` or a token) configured for a remote: by its full URI, then by host.
    pub fn credentials_for(&self, remote: &str) -> Option<&str> {
        let normalized = normalize_uri(remote).to_lowercase();
        if let Some(v) = self.get(&normalized) {
            return Some(v);
        }
        let host = host_of(remote)?;
        self.get(&host.to_lowercase())
    }
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
        // The unencoded host form is not a key Bundler reads.
        let s =
            BundlerSettings::from_layers(vec![vec![("BUNDLE_MIRROR__RUBYGEMS__ORG", "http://x/")]]);
        assert_eq!(s.mirror_for("https://rubygems.org/"), None);
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
                ("HOME".to_string(), home),
                (
                    "BUNDLE_FORCE_RUBY_PLATFORM".to_string(),
                    "false".to_string(),
                ),
            ]
            .into_iter(),
        );
        assert!(s.flag("force_ruby_platform"));
        assert_eq!(
            s.credentials_for("https://gems.example.com/private/"),
            Some("u:p")
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(host_of("https://u:p@a.b.c:8443/x"), Some("a.b.c"));
        assert_eq!(host_of("http://127.0.0.1:80/"), Some("127.0.0.1"));
        assert_eq!(host_of("nope"), None);
    }
}
