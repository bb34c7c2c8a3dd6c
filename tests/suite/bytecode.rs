//! The compiled-bytecode cache (`v2/bytecode/`, written by `boot.rb`): a damaged entry (a flipped byte, a write
//! torn by a crash) is never handed to Ruby's loader, which aborts on a bad payload with `[BUG]`; it is compiled
//! again and rewritten.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};

use support::{App, Launcher, Lock, Output, Server, assert_success, entries, fixtures};

fn serve() -> Server {
    Server::start(&fixtures().dir)
}

fn run(launcher: &Launcher, args: &[&str]) -> Output {
    launcher.clone().args(args).run()
}

/// Every cached bytecode file, sorted.
fn iseq_files(launcher: &Launcher) -> Vec<PathBuf> {
    let root = launcher.layout_root().join("bytecode");
    let mut files: Vec<PathBuf> = entries(&root)
        .into_iter()
        .flat_map(|ruby| {
            let dir = root.join(ruby);
            entries(&dir)
                .into_iter()
                .filter(|f| f.ends_with(".iseq"))
                .map(move |f| dir.join(f))
        })
        .collect();
    files.sort();
    files
}

/// Where Ruby's own binary format (`YARB…`) starts in a cached file: whatever the launcher puts before it is its
/// own bookkeeping, and the payload is what Ruby would load.
fn payload_start(bytes: &[u8], file: &Path) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"YARB")
        .unwrap_or_else(|| panic!("no YARB payload in {}", file.display()))
}

/// A cold run (which fills the bytecode cache) and the files it cached, with their contents.
fn filled(launcher: &Launcher) -> Vec<(PathBuf, Vec<u8>)> {
    let out = run(launcher, &["exec", "--", "specs"]);
    assert_success(&out);
    assert!(out.stdout_lines().contains(&"ext=hello from C"), "{out}");
    let files = iseq_files(launcher);
    assert!(
        files.len() >= 4,
        "the run cached too little bytecode: {files:?}\n{out}"
    );
    files
        .into_iter()
        .map(|f| {
            let bytes = fs::read(&f).expect("read cached bytecode");
            (f, bytes)
        })
        .collect()
}

/// After `damage`, the next run behaves as the first one did and every entry is the good one again.
fn assert_repaired(launcher: &Launcher, good: &[(PathBuf, Vec<u8>)]) {
    let out = run(launcher, &["exec", "--", "specs"]);
    assert_success(&out);
    assert!(!out.stderr.contains("[BUG]"), "{out}");
    assert!(out.stdout_lines().contains(&"ext=hello from C"), "{out}");
    for (file, bytes) in good {
        let now = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            &now == bytes,
            "{} was not rewritten with the recompiled bytecode\n{out}",
            file.display()
        );
    }
    // The rewrites went through temporary files that no longer exist.
    let leftovers: Vec<String> = entries(good[0].0.parent().unwrap())
        .into_iter()
        .filter(|f| !f.ends_with(".iseq"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new(), "{out}");
}

#[test]
fn a_flipped_byte_in_cached_bytecode_is_recompiled_not_loaded() {
    let server = serve();
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    let good = filled(&launcher);
    // One byte in each payload, past Ruby's own header (which its loader does check), at nine places in turn:
    // the stamp still matches the source file, so only a check of the payload itself can tell. Unchecked, Ruby
    // 3.1 aborts with [BUG] for four of these places, fails for two and runs on for three.
    for tenth in 1..=9 {
        for (file, bytes) in &good {
            let start = payload_start(bytes, file);
            let at = start + (bytes.len() - start) * tenth / 10;
            let mut damaged = bytes.clone();
            damaged[at] ^= 0xff;
            fs::write(file, damaged).unwrap();
        }
        assert_repaired(&launcher, &good);
    }
}

#[test]
fn torn_bytecode_files_are_recompiled() {
    let server = serve();
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    let good = filled(&launcher);
    // What a crash between writing and flushing can leave: a file cut short anywhere, or empty.
    for (i, (file, bytes)) in good.iter().enumerate() {
        let start = payload_start(bytes, file);
        let keep = match i % 3 {
            0 => start + (bytes.len() - start) / 2,
            1 => start + 8,
            _ => 0,
        };
        fs::write(file, &bytes[..keep]).unwrap();
    }
    assert_repaired(&launcher, &good);
}

/// Each cached bytecode file and its inode: a file compiled again is renamed in, so it has another.
fn inodes(launcher: &Launcher) -> Vec<(PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    iseq_files(launcher)
        .into_iter()
        .map(|f| {
            let ino = fs::metadata(&f).unwrap().ino();
            (f, ino)
        })
        .collect()
}

/// A CI cache restore gives every file a new inode and, through tar's default format, whole-second times, but
/// keeps paths, sizes and contents: the bytecode cached before it is used as it is, nothing is compiled again
/// (issue 21: before, each restored runner compiled everything on its first run).
#[test]
fn a_cache_restored_by_cp_or_tar_uses_its_bytecode_without_compiling_again() {
    let server = serve();
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    let good = filled(&launcher);
    let cache = launcher.cache_path().to_path_buf();
    let saved = cache.with_extension("saved");
    fs::rename(&cache, &saved).unwrap();
    let archive = cache.with_extension("tar");
    for (how, restore) in [
        (
            "cp -a",
            format!("cp -a '{}' '{}'", saved.display(), cache.display()),
        ),
        (
            "tar",
            format!(
                "tar -C '{s}' -cf '{a}' . && mkdir '{c}' && tar -C '{c}' -xpf '{a}'",
                s = saved.display(),
                a = archive.display(),
                c = cache.display()
            ),
        ),
    ] {
        let _ = fs::remove_dir_all(&cache);
        let status = std::process::Command::new("sh")
            .args(["-c", &restore])
            .status()
            .unwrap();
        assert!(status.success(), "{restore}");
        let restored = inodes(&launcher);
        assert_eq!(restored.len(), good.len(), "{how}");
        let out = run(&launcher, &["exec", "--", "specs"]);
        assert_success(&out);
        assert!(out.stdout_lines().contains(&"ext=hello from C"), "{out}");
        assert_eq!(
            inodes(&launcher),
            restored,
            "{how}: bytecode was compiled again after the restore\n{out}"
        );
    }
}
