//! kamal-launcher: runs the exact `kamal` locked in a Rails app's Gemfile.lock, installed in isolation.
//!
//! The flow, one module per step: [`locate`] the lockfile → [`lockfile`] parse → [`closure`] select →
//! [`fetch`] download and verify (or, for GIT and PATH gems, [`sources`] build) → [`install`] into the [`cache`] →
//! [`exec`] Ruby.

mod cache;
mod cli;
mod closure;
mod config;
mod error;
mod exec;
mod fetch;
mod gc;
mod http;
mod install;
mod locate;
mod lockfile;
mod plan;
mod platform;
mod ruby;
mod settings;
mod sources;
mod ui;
mod version;

fn main() -> std::process::ExitCode {
    cli::main()
}
