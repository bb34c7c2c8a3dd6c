//! One file per command, as cargo keeps its commands apart from its operations: each takes the resolved
//! [`crate::pipeline::Session`] (or what it needs without a lockfile) and calls the operations in
//! `crate::pipeline`; `crate::cli` only parses arguments and dispatches.

pub mod cache;
pub mod doctor;
pub mod exec;
pub mod init;
pub mod plan;
