//! kamal-launcher: runs the exact `kamal` locked in a Rails app's Gemfile.lock, installed in isolation.
//!
//! [`cli`] parses arguments and hands a [`pipeline::Session`] to one of the [`commands`], which call the
//! operations in [`pipeline`]. The flow, one module per step: [`locate`] the lockfile → [`lockfile`] parse → [`closure`] select →
//! [`fetch`] download and verify (or, for GIT and PATH gems, [`sources`] build) → [`install`] into the [`cache`] →
//! [`exec`] Ruby. Before any of it, [`pinned`] hands over to the launcher version the lockfile pins.

// Exec, file modes, flock and the `bin/kamal` shim are Unix's; Windows users deploy from WSL, a Linux.
#[cfg(not(unix))]
compile_error!("kamal-launcher runs on Unix (Linux, macOS) only; on Windows, use it inside WSL");

pub mod cache;
pub mod children;
pub mod cli;
pub mod closure;
pub mod commands;
pub mod config;
pub mod doctor;
pub mod env;
pub mod error;
pub mod exec;
pub mod fetch;
pub mod gc;
pub mod http;
pub mod init;
pub mod install;
pub mod invocation;
pub mod locate;
pub mod lockfile;
pub mod package;
pub mod pinned;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod record;
pub mod ruby;
pub mod settings;
pub mod sources;
pub mod trust;
pub mod ui;
pub mod version;
