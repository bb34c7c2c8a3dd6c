//! Any byte sequence gives a parsed lockfile or an error with a line number; never a panic. On success, nothing
//! from the file that ends up in a path (names, versions, platforms) can name another directory, and selecting
//! kamal's closure from it neither panics nor yields such a name either.

#![no_main]

use std::path::{Component, Path};

use kamal_launcher::cache::Cache;
use kamal_launcher::closure;
use kamal_launcher::lockfile::Lockfile;
use kamal_launcher::platform::Platform;
use libfuzzer_sys::fuzz_target;

/// Would this text, used as one path component, stay one harmless component?
fn path_safe(what: &str, text: &str) {
    assert!(!text.is_empty(), "empty {what}");
    for bad in ["/", "\\", "\0", ".."] {
        assert!(!text.contains(bad), "{what} {text:?} contains {bad:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let newlines = data.iter().filter(|&&b| b == b'\n').count();
    let lock = match Lockfile::parse_bytes(data) {
        Ok(lock) => lock,
        Err(e) => {
            assert!(
                (1..=newlines + 1).contains(&e.line),
                "error on line {} of a {}-line input: {e}",
                e.line,
                newlines + 1
            );
            // Hostile text is escaped and cut short in messages.
            assert!(e.to_string().len() < 2_000, "unbounded message: {e}");
            return;
        }
    };
    for spec in &lock.specs {
        path_safe("name", spec.name);
        path_safe("version", spec.version.as_str());
        path_safe("platform", spec.platform);
        path_safe("full name", &spec.full_name());
        assert!(spec.source < lock.sources.len());
        for dep in lock.dependencies_of(spec) {
            path_safe("dependency", dep.name);
        }
    }
    for dep in &lock.dependencies {
        path_safe("dependency", dep.name);
    }
    for sum in &lock.checksums {
        path_safe("checksum name", sum.name);
        path_safe("checksum version", sum.version);
        path_safe("checksum platform", sum.platform);
    }
    for platform in &lock.platforms {
        path_safe("platform", platform);
    }

    let cache = Cache::new("/cache".into());
    let local = Platform::parse("x86_64-linux");
    for force_ruby in [false, true] {
        let Ok(closure) = closure::select(&lock, "kamal", &local, force_ruby) else {
            continue;
        };
        assert_eq!(closure.gems[closure.root].spec.name, "kamal");
        assert_eq!(closure.activation_order.len(), closure.gems.len());
        for gem in &closure.gems {
            // The store path built from the name stays one level under the store.
            let unit = cache.unit("ruby-3.4.0-x86_64-linux", &gem.spec.full_name(), &[0; 32]);
            let rel = unit
                .strip_prefix("/cache/v1/store")
                .expect("under the store");
            assert_eq!(rel.components().count(), 2, "{}", unit.display());
            assert!(
                rel.components().all(|c| matches!(c, Component::Normal(_))),
                "{}",
                unit.display()
            );
            assert!(Path::new(&gem.spec.full_name()).file_name().is_some());
        }
    }
});
