//! Step 3: select the root gem's dependency closure from the lockfile's own graph, one platform variant per
//! name, exactly as Bundler would materialise it on this machine. Nothing outside the closure is looked at.

use crate::lockfile::{Lockfile, NameId, Spec};
use crate::platform::{self, Platform};

/// One gem of the closure: a locked spec chosen for this platform.
#[derive(Debug, Clone)]
pub struct Selected<'a> {
    /// The lockfile spec.
    pub spec: &'a Spec<'a>,
    /// Digest recorded in the lockfile's CHECKSUMS, if any.
    pub sha256: Option<[u8; 32]>,
}

/// The closure of a root gem.
#[derive(Debug, Clone)]
pub struct Closure<'a> {
    /// Gems sorted by name: the stable order used for plans and keys.
    pub gems: Vec<Selected<'a>>,
    /// Indexes into `gems`, dependencies before dependents: the order RubyGems must activate them in.
    pub activation_order: Vec<usize>,
    /// Index of the root gem in `gems`.
    pub root: usize,
}

/// Why a closure could not be selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosureError {
    /// The root gem is not locked at all.
    RootMissing { root: String },
    /// A locked spec depends on a name the lockfile does not lock.
    DependencyMissing {
        parent: String,
        dep: String,
        line: usize,
    },
    /// A name is locked only for platforms this machine cannot use.
    NoVariant {
        name: String,
        platforms: Vec<String>,
        local: String,
    },
    /// The locked version does not satisfy a dependent's requirement: the lockfile is inconsistent.
    Unsatisfied {
        parent: String,
        dep: String,
        requirement: String,
        locked: String,
        line: usize,
    },
}

impl std::error::Error for ClosureError {}

impl ClosureError {
    /// The lockfile line the problem is on, when it is on one (shown as `path:LINE:`).
    pub fn line(&self) -> Option<usize> {
        match self {
            ClosureError::DependencyMissing { line, .. }
            | ClosureError::Unsatisfied { line, .. } => Some(*line),
            _ => None,
        }
    }
}

impl std::fmt::Display for ClosureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClosureError::RootMissing { root } => write!(
                f,
                "{root} is not locked in this lockfile. Add `gem \"{root}\", require: false` to the Gemfile and run `bundle lock`, or choose another gem with {}",
                crate::invocation::setting(crate::invocation::Setting::Gem)
            ),
            ClosureError::DependencyMissing { parent, dep, .. } => write!(
                f,
                "{parent} depends on {dep}, which the lockfile does not lock; the lockfile is incomplete, run `bundle lock` to repair it"
            ),
            ClosureError::NoVariant {
                name,
                platforms,
                local,
            } => write!(
                f,
                "{name} is locked only for {} but this Ruby's platform is {local}; run `bundle lock --add-platform {local}` (or `--add-platform ruby`)",
                platforms.join(", ")
            ),
            ClosureError::Unsatisfied {
                parent,
                dep,
                requirement,
                locked,
                ..
            } => write!(
                f,
                "{parent} requires {dep} ({requirement}) but {dep} {locked} is locked; the lockfile is inconsistent, run `bundle lock`"
            ),
        }
    }
}

/// Not chosen yet / not in the closure.
const UNSET: u32 = u32::MAX;

/// Selects the closure of `root` for `local`, honouring Bundler's `force_ruby_platform`.
pub fn select<'a>(
    lock: &'a Lockfile<'a>,
    root: &str,
    local: &Platform,
    force_ruby: bool,
) -> Result<Closure<'a>, ClosureError> {
    let specs = &lock.specs;
    // One variant (nearly every gem) is chosen without collecting the platforms.
    let choose = |name: &str, id: NameId| -> Result<usize, ClosureError> {
        let mut variants = lock.variants(id);
        let (Some(first), second) = (variants.next(), variants.next()) else {
            return Err(no_variant(name, &[], lock, local));
        };
        let Some(second) = second else {
            return platform::select_variant(&[specs[first].platform], local, force_ruby)
                .map(|_| first)
                .ok_or_else(|| no_variant(name, &[first], lock, local));
        };
        let all: Vec<usize> = [first, second].into_iter().chain(variants).collect();
        let platforms: Vec<&str> = all.iter().map(|&i| specs[i].platform).collect();
        platform::select_variant(&platforms, local, force_ruby)
            .map(|i| all[i])
            .ok_or_else(|| no_variant(name, &all, lock, local))
    };

    let root_spec =
        specs
            .iter()
            .find(|s| s.name == root)
            .ok_or_else(|| ClosureError::RootMissing {
                root: root.to_string(),
            })?;
    // Per name: the chosen spec.
    let mut chosen_of = vec![UNSET; lock.name_count()];
    let root_index = choose(root_spec.name, root_spec.name_id)?;
    chosen_of[root_spec.name_id.index()] = root_index as u32;
    let mut chosen = vec![root_index];
    let mut queue = vec![root_index];
    while let Some(index) = queue.pop() {
        let spec = &specs[index];
        for dep in lock.dependencies_of(spec) {
            if chosen_of[dep.name_id.index()] != UNSET {
                continue;
            }
            if lock.variants(dep.name_id).next().is_none() {
                // Bundler itself is never locked as a spec; it is the tool that wrote the lockfile.
                if dep.name == "bundler" {
                    continue;
                }
                return Err(ClosureError::DependencyMissing {
                    parent: spec.full_name(),
                    dep: dep.name.to_owned(),
                    line: dep.line,
                });
            }
            let found = choose(dep.name, dep.name_id)?;
            chosen_of[dep.name_id.index()] = found as u32;
            chosen.push(found);
            queue.push(found);
        }
    }

    sort_by_name(&mut chosen, specs);
    let mut position_of = vec![UNSET; lock.name_count()];
    for (position, &index) in chosen.iter().enumerate() {
        position_of[specs[index].name_id.index()] = position as u32;
    }
    // Dependency edges as positions, flat: gem `i`'s are `edges[starts[i]..starts[i + 1]]`.
    let mut edges = Vec::with_capacity(chosen.len());
    let mut starts = Vec::with_capacity(chosen.len() + 1);
    let mut gems = Vec::with_capacity(chosen.len());
    for &index in &chosen {
        let spec = &specs[index];
        starts.push(edges.len());
        for dep in lock.dependencies_of(spec) {
            let at = dep.name_id.index();
            if position_of[at] == UNSET {
                continue;
            }
            let locked = &specs[chosen_of[at] as usize];
            if !dep.requirement.matches(&locked.version) {
                return Err(ClosureError::Unsatisfied {
                    parent: spec.full_name(),
                    dep: dep.name.to_owned(),
                    requirement: dep.requirement.to_string(),
                    locked: locked.version.to_string(),
                    line: dep.line,
                });
            }
            edges.push(position_of[at] as usize);
        }
        gems.push(Selected {
            spec,
            sha256: spec.sha256,
        });
    }
    starts.push(edges.len());

    let activation_order = topological(&edges, &starts);
    Ok(Closure {
        root: position_of[root_spec.name_id.index()] as usize,
        gems,
        activation_order,
    })
}

/// Sorts spec indexes by name (distinct within a closure). Names are compared by their first 16 bytes as one
/// integer, whole only when those are equal: no name has a NUL byte, so zero padding sorts a name before its
/// extensions, as byte order does. Bundler writes each source's specs sorted by name, so in file order the
/// closure is a few runs already in name order.
fn sort_by_name(chosen: &mut [usize], specs: &[Spec<'_>]) {
    let prefix = |name: &str| {
        let mut bytes = [0u8; 16];
        let len = name.len().min(16);
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        u128::from_be_bytes(bytes)
    };
    chosen.sort_unstable();
    let mut keyed: Vec<(u128, usize)> = chosen
        .iter()
        .map(|&index| (prefix(specs[index].name), index))
        .collect();
    let order = |a: &(u128, usize), b: &(u128, usize)| {
        a.0.cmp(&b.0)
            .then_with(|| specs[a.1].name.cmp(specs[b.1].name))
    };
    // The stable sort finds runs already in order and merges them: linear for one sorted source, and
    // nearly so for a few.
    keyed.sort_by(order);
    for (slot, (_, index)) in chosen.iter_mut().zip(keyed) {
        *slot = index;
    }
}

fn no_variant(
    name: &str,
    variants: &[usize],
    lock: &Lockfile<'_>,
    local: &Platform,
) -> ClosureError {
    ClosureError::NoVariant {
        name: name.to_string(),
        platforms: variants
            .iter()
            .map(|&i| lock.specs[i].platform.to_string())
            .collect(),
        local: local.to_string(),
    }
}

/// Depth-first post-order: every gem after its dependencies; cycles (legal in RubyGems) are broken arbitrarily
/// but deterministically.
fn topological(edges: &[usize], starts: &[usize]) -> Vec<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let count = starts.len() - 1;
    let deps = |node: usize| &edges[starts[node]..starts[node + 1]];
    let mut marks = vec![Mark::New; count];
    let mut order = Vec::with_capacity(count);
    // Explicit stack: (node, next dependency to visit) keeps deep graphs off the call stack.
    let mut stack = Vec::new();
    for start in 0..count {
        stack.push((start, 0usize));
        while let Some((node, next)) = stack.pop() {
            if next == 0 {
                if marks[node] != Mark::New {
                    continue;
                }
                marks[node] = Mark::Open;
            }
            if let Some(&d) = deps(node).get(next) {
                stack.push((node, next + 1));
                if marks[d] == Mark::New {
                    stack.push((d, 0));
                }
            } else {
                marks[node] = Mark::Done;
                order.push(node);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = "GEM
  remote: https://rubygems.org/
  specs:
    kamal (2.7.0)
      dep_a (~> 1.0)
      native
      bundler (>= 2)
    dep_a (1.2.0)
      dep_b (~> 0.3)
    dep_b (0.3.1)
    native (1.0.0)
    native (1.0.0-x86_64-linux-gnu)
    native (1.0.0-x86_64-linux-musl)
    native (1.0.0-java)
    pg (1.5.0)
    rails (7.2.2.1)
      actionpack (= 7.2.2.1)

PLATFORMS
  ruby
  x86_64-linux

DEPENDENCIES
  kamal
  pg
  rails

CHECKSUMS
  dep_b (0.3.1) sha256=0101010101010101010101010101010101010101010101010101010101010101

BUNDLED WITH
   2.5.22
";

    fn names(c: &Closure<'_>) -> Vec<String> {
        c.gems.iter().map(|g| g.spec.full_name()).collect()
    }

    fn locked() -> Lockfile<'static> {
        Lockfile::parse(LOCK).unwrap()
    }

    fn x86_64_linux() -> Platform {
        Platform::parse("x86_64-linux")
    }

    #[test]
    fn closure_follows_the_graph_only() {
        let lock = locked();
        let c = select(&lock, "kamal", &x86_64_linux(), false).unwrap();
        assert_eq!(
            names(&c),
            [
                "dep_a-1.2.0",
                "dep_b-0.3.1",
                "kamal-2.7.0",
                "native-1.0.0-x86_64-linux-gnu"
            ]
        );
        assert_eq!(c.gems[c.root].spec.name, "kamal");
        assert_eq!(c.gems[1].sha256, Some([1u8; 32]));
        assert_eq!(c.gems[0].sha256, None);
        let order: Vec<&str> = c
            .activation_order
            .iter()
            .map(|&i| c.gems[i].spec.name)
            .collect();
        let pos = |n| order.iter().position(|x| *x == n).unwrap();
        assert!(pos("dep_b") < pos("dep_a"));
        assert!(pos("dep_a") < pos("kamal"));
        assert!(pos("native") < pos("kamal"));
    }

    #[test]
    fn platform_variants_and_force_ruby() {
        let lock = locked();
        for (platform, force_ruby, native) in [
            ("x86_64-linux-musl", false, "native-1.0.0-x86_64-linux-musl"),
            ("x86_64-linux", true, "native-1.0.0"),
            ("arm64-darwin-23", false, "native-1.0.0"),
        ] {
            let c = select(&lock, "kamal", &Platform::parse(platform), force_ruby).unwrap();
            assert!(
                names(&c).iter().any(|n| n == native),
                "{platform}: {:?}",
                names(&c)
            );
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let lock = locked();
        let local = x86_64_linux();
        let err = select(&lock, "nope", &local, false).unwrap_err();
        assert_eq!(
            err,
            ClosureError::RootMissing {
                root: "nope".into()
            }
        );
        let err = select(&lock, "rails", &local, false).unwrap_err();
        assert!(
            matches!(&err, ClosureError::DependencyMissing { dep, line: 17, .. } if dep == "actionpack"),
            "{err:?}"
        );
        let bad = LOCK.replace("dep_b (~> 0.3)", "dep_b (~> 0.4)");
        let lock = Lockfile::parse(&bad).unwrap();
        let err = select(&lock, "kamal", &local, false).unwrap_err();
        assert!(err.to_string().contains("requires dep_b (~> 0.4)"), "{err}");
    }
}
