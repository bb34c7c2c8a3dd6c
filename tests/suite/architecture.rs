//! What ARCHITECTURE.md promises about the code's shape, checked on the sources: no module uses a module that
//! uses it back, counting `crate::` paths, `super::` paths and a parent's use of its own child modules (comments
//! and unit tests aside).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Module path (`http/proxy`, `cli`; the crate root is "") → its source without comments and unit tests.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().with_extension("");
                let mut name = rel.to_str().unwrap().to_string();
                if let Some(parent) = name.strip_suffix("/mod") {
                    name = parent.to_string();
                }
                if name == "lib" || name == "main" {
                    name = String::new();
                }
                out.insert(name, code_only(&fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

fn code_only(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    text.lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `a::b::c` paths that follow each occurrence of `prefix` (which must not follow a word character or `:`).
fn paths_after<'t>(text: &'t str, prefix: &str) -> Vec<Vec<&'t str>> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices(prefix) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        found.push(rest[..end].split("::").filter(|s| !s.is_empty()).collect());
    }
    found
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}/{child}")
    }
}

/// Which modules each module uses.
fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<&str, BTreeSet<String>> {
    let longest_module = |from: &str, parts: &[&str]| {
        let mut best = from.to_string();
        for i in 1..=parts.len() {
            let candidate = join(from, &parts[..i].join("/"));
            if modules.contains_key(&candidate) {
                best = candidate;
            }
        }
        best
    };
    let mut edges = BTreeMap::new();
    for (module, text) in modules {
        let parent = module.rsplit_once('/').map_or("", |(p, _)| p);
        let mut uses = BTreeSet::new();
        for parts in paths_after(text, "crate::") {
            uses.insert(longest_module("", &parts));
        }
        for parts in paths_after(text, "super::") {
            uses.insert(longest_module(parent, &parts));
        }
        // `child::item` or `use child::{…}` from a parent names one of its own modules.
        for (at, _) in text.match_indices("::") {
            let word_start = text[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            if text[..word_start].ends_with("::") {
                continue;
            }
            let child = join(module, &text[word_start..at]);
            if modules.contains_key(&child) {
                uses.insert(child);
            }
        }
        uses.remove(module);
        uses.remove("");
        edges.insert(module.as_str(), uses);
    }
    edges
}

/// Each cycle found, as `a -> b -> a`.
fn cycles(edges: &BTreeMap<&str, BTreeSet<String>>) -> Vec<String> {
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = edges[start]
            .iter()
            .map(|m| (m.clone(), vec![start.to_string(), m.clone()]))
            .collect();
        while let Some((module, path)) = stack.pop() {
            if module == *start {
                cycles.push(path.join(" -> "));
                break;
            }
            if !seen.insert(module.clone()) {
                continue;
            }
            for next in edges.get(module.as_str()).into_iter().flatten() {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    cycles
}

#[test]
fn no_module_uses_a_module_that_uses_it_back() {
    let modules = modules();
    assert!(modules.contains_key("http/proxy") && modules.contains_key("cli"));
    let cycles = cycles(&edges(&modules));
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_cycles_through_crate_super_and_child_paths() {
    let fake = |files: &[(&str, &str)]| -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(m, text)| (m.to_string(), code_only(text)))
            .collect()
    };
    // A parent using its child, which uses the parent's items.
    let modules = fake(&[("b", "mod c;\npub use c::X;\n"), ("b/c", "use super::Y;\n")]);
    assert_eq!(cycles(&edges(&modules)).len(), 2);
    // Through crate:: paths, ignoring comments.
    let modules = fake(&[
        ("a", "use crate::b::X;\n"),
        ("b", "// crate::a is only named here\nuse crate::c;\n"),
        ("c", "fn f() { crate::a::g() }\n"),
    ]);
    assert_eq!(cycles(&edges(&modules)).len(), 3);
    let modules = fake(&[("a", "use crate::b::X;\n"), ("b", "// crate::a\n")]);
    assert!(cycles(&edges(&modules)).is_empty());
}
