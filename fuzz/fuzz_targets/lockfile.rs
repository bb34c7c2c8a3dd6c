//! `lockgen::check_input` on every input: the lockfile contract of `tests/suite/support/lockgen.rs`, which the
//! property tests share, with the input read both as a lockfile and as the choices of the suite's lockfile
//! generator.

#![no_main]

// The property tests' fixed seeds (`Rng::seeded`) have no use here.
#[allow(dead_code)]
#[path = "../../tests/suite/support/lockgen.rs"]
mod lockgen;

libfuzzer_sys::fuzz_target!(|data: &[u8]| lockgen::check_input(data));
