//! Step 7: replace this process with Ruby running the root gem's executable inside its environment.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::error::Error;
use crate::ruby::Ruby;

/// Variables moved aside for the Ruby process and restored by `boot.rb` for everything kamal starts.
const SHIELDED: [&str; 2] = ["RUBYOPT", "RUBYLIB"];

/// Execs `ruby <env>/boot.rb ROOT EXE ARGS...`; returns only if the exec itself failed.
pub fn exec(
    ruby: &Ruby,
    env_dir: &Path,
    root: &str,
    exe: Option<&str>,
    args: &[OsString],
) -> Error {
    let mut cmd = Command::new(&ruby.path);
    cmd.arg(env_dir.join("boot.rb"))
        .arg(root)
        .arg(exe.unwrap_or(""))
        .args(args);
    for name in SHIELDED {
        if let Some(value) = std::env::var_os(name) {
            // The "=" prefix tells boot.rb the variable was set, even to the empty string.
            let mut saved = OsString::from("=");
            saved.push(value);
            cmd.env(format!("KAMAL_LAUNCHER_SAVED_{name}"), saved);
            cmd.env_remove(name);
        }
    }
    // Hooks that run bin/kamal again may need their own handover (another app, another pin).
    cmd.env_remove(crate::pinned::GUARD);
    // Said by bin/kamal to this launcher alone: what kamal starts sees the caller's environment.
    cmd.env_remove(crate::invocation::SHIM_VAR);
    let source = cmd.exec();
    Error::Exec {
        ruby: ruby.path.clone(),
        source,
    }
}
