//! Properties of the lockfile parser and the closure selection over random byte sequences, generated
//! lockfiles and structured mutations of them. The contract and the generator live in `support::lockgen`,
//! which the fuzz target shares: any byte sequence gives either a parsed lockfile or an error with its line
//! number, never a panic; and nothing a parsed lockfile names (gems, versions, platforms) can be a path
//! separator, a parent directory or anything else RubyGems forbids.
//!
//! Deterministic (fixed seeds) and bounded: a few thousand cases, a second or two in a debug build. The same
//! invariants run unbounded under `cargo fuzz run lockfile` (fuzz/README.md).

use std::fs;
use std::path::Path;

use kamal_launcher::closure;
use kamal_launcher::lockfile::{Lockfile, ParseErrorKind};
use kamal_launcher::platform::Platform;

use crate::support::lockgen::{self, Rng, check};

#[test]
fn random_bytes_parse_or_fail_with_a_line() {
    let mut rng = Rng::seeded(0x2545_f491_4f6c_dd1d);
    let mut outcomes = [0usize; 2];
    for _ in 0..3_000 {
        let bytes = lockgen::token_soup(&mut rng);
        outcomes[usize::from(check(&bytes).is_err())] += 1;
    }
    // Both outcomes must occur, or the generator is not reaching the parser's interesting states.
    assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
}

#[test]
fn generated_lockfiles_parse_back_to_what_was_written() {
    let mut rng = Rng::seeded(0x9e37_79b9_7f4a_7c15);
    for _ in 0..250 {
        lockgen::check_round_trip(&lockgen::generate(&mut rng));
    }
}

#[test]
fn a_hostile_value_is_an_error_on_its_own_line() {
    let mut rng = Rng::seeded(0x0123_4567_89ab_cdef);
    // Every hostile value on every kind of line it can go on, each time in a different generated lockfile and
    // at a random one of the lines of that kind.
    for &(kind, values) in lockgen::HOSTILE {
        for hostile in values {
            loop {
                let g = lockgen::generate(&mut rng);
                if lockgen::check_hostile(&mut rng, &g, kind, hostile) {
                    break;
                }
            }
        }
    }
}

#[test]
fn mutated_lockfiles_keep_the_contract() {
    let mut rng = Rng::seeded(0xdead_beef_cafe_f00d);
    let mut outcomes = [0usize; 2];
    for _ in 0..1_000 {
        let mut bytes = lockgen::generate(&mut rng).text().into_bytes();
        lockgen::mutate(&mut rng, &mut bytes);
        outcomes[usize::from(check(&bytes).is_err())] += 1;
    }
    assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
}

/// What the fuzz target runs on each input, here on its seed corpus and on random inputs, so that a fuzz target
/// that fails on its own seeds (as one once did, after the cache layout moved) shows in the suite.
#[test]
fn fuzz_inputs_keep_the_contract() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/lockfile");
    let mut seeds = 0;
    for entry in fs::read_dir(&corpus).expect("the fuzz corpus") {
        lockgen::check_input(&fs::read(entry.expect("corpus entry").path()).expect("corpus file"));
        seeds += 1;
    }
    assert!(seeds > 10, "{seeds} seeds in {}", corpus.display());
    let mut rng = Rng::seeded(0x5851_f42d_4c95_7f2d);
    for _ in 0..500 {
        let input: Vec<u8> = (0..rng.below(600)).map(|_| rng.next() as u8).collect();
        lockgen::check_input(&input);
    }
}

#[test]
fn huge_lines_give_short_errors() {
    let long = "a".repeat(1 << 20);
    for (text, line) in [
        (format!("GEM\n  specs:\n    {long}/x (1.0)\n"), 3),
        (format!("GEM\n  specs:\n    a ({long})\n"), 3),
        (format!("GEM\n  specs:\n    a (1.0-{long}..)\n"), 3),
        (format!("PLATFORMS\n  x86_64-linux/{long}\n"), 2),
        (format!("GEM\n  specs:\n    a{long}\n"), 3),
    ] {
        let e = check(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, line, "{e}");
    }
    // A huge line in a section the parser skips is skipped.
    let text = format!("SOMETHING NEW\n  {long}\nPLATFORMS\n  ruby\n");
    assert_eq!(check(text.as_bytes()).unwrap().platforms, ["ruby"]);
    // Invalid UTF-8 far into a long line is reported on that line.
    let mut bytes = format!("GEM\n  specs:\n    {long}").into_bytes();
    bytes.push(0xff);
    bytes.extend_from_slice(b"\n    b (1.0)\n");
    let e = check(&bytes).unwrap_err();
    assert_eq!((e.line, e.kind), (3, ParseErrorKind::InvalidUtf8));
}

#[test]
fn a_deep_dependency_chain_is_selected_without_recursion() {
    // kamal -> g0 -> g1 -> ... -> g4999, and back to kamal: a cycle through five thousand gems.
    let n = 5_000;
    let mut text = String::from(
        "GEM\n  remote: https://rubygems.org/\n  specs:\n    kamal (2.7.0)\n      g0\n",
    );
    for i in 0..n {
        text.push_str(&format!("    g{i} (1.0.{i})\n"));
        let next = if i + 1 < n {
            format!("g{}", i + 1)
        } else {
            "kamal".into()
        };
        text.push_str(&format!("      {next} (>= 1.0)\n"));
    }
    text.push_str("\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  kamal\n\nCHECKSUMS\n");
    for i in 0..n {
        text.push_str(&format!("  g{i} (1.0.{i}) sha256={i:064x}\n"));
    }
    let lock = Lockfile::parse(&text).unwrap();
    assert_eq!(lock.specs.len(), n + 1);
    let closure = closure::select(&lock, "kamal", &Platform::parse("x86_64-linux"), false).unwrap();
    assert_eq!(closure.gems.len(), n + 1);
    assert_eq!(closure.activation_order.len(), n + 1);
    let g7 = closure.gems.iter().find(|g| g.spec.name == "g7").unwrap();
    assert_eq!(
        g7.sha256.map(hex_of).as_deref(),
        Some(&*format!("{:064x}", 7))
    );
}

fn hex_of(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
