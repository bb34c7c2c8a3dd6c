//! The integration tests, one crate: the harness in `support` is compiled and linked once. Each module is one
//! area (run one with `cargo test --test suite cache::`); `bench` holds the benchmarks (`scripts/bench`).

mod support;

mod architecture;
mod bench;
mod bytecode;
mod cache;
mod cache_faults;
mod cache_trust;
mod campaign;
mod durability;
mod foundation;
mod harness_selftest;
mod hostile;
mod hostile_lockfiles;
mod init;
mod local_faults;
mod machines;
mod network;
mod network_faults;
mod noexec;
mod pinned_launcher;
mod progress_logs;
mod properties;
mod real_lockfiles;
mod release;
mod ruby_managers;
mod screens_cli;
mod screens_doctor;
mod screens_plan;
mod screens_progress;
mod screens_sources;
mod shim_faults;
mod shim_ruby;
mod shim_trust;
mod signals;
mod sources;
mod tier;
