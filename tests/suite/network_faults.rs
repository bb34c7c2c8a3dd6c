//! Network faults, one per test: each asserts the outcome, that the cache stays consistent (no download, unit
//! or environment from the failed attempt, no temporary files), and that a later run against a healthy server
//! succeeds.

use crate::support;

use std::fs;

use support::{
    App, Fault, Launcher, Lock, Output, Server, assert_failure, assert_success, entries, fixtures,
    sha256_hex,
};

const GEM: &str = "/gems/fixture_dep_b-0.3.1.gem";

fn setup() -> (Server, App, Launcher) {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    // Short timeouts keep the stall cases quick; the defaults are Bundler's (10 s, 3 retries).
    let launcher = Launcher::new(app.path()).env("BUNDLE_TIMEOUT", "2");
    (server, app, launcher)
}

fn run(launcher: &Launcher, args: &[&str]) -> Output {
    launcher.clone().args(args).run()
}

/// No trace of a failed run: every download is complete and named by its digest, no environment, no temp files.
fn assert_consistent_after_failure(launcher: &Launcher) {
    let v1 = launcher.layout_root();
    for name in entries(&v1.join("downloads")) {
        let bytes = fs::read(v1.join("downloads").join(&name)).unwrap();
        assert_eq!(
            format!("{}.gem", sha256_hex(&bytes)),
            name,
            "a download is not what its name says"
        );
    }
    assert!(
        entries(&v1.join("envs")).is_empty(),
        "an environment survived a failed run"
    );
    assert!(
        entries(&v1.join("tmp")).is_empty(),
        "temporary files survived: {:?}",
        entries(&v1.join("tmp"))
    );
    let store = v1.join("store");
    for abi in entries(&store) {
        for unit in entries(&store.join(&abi)) {
            assert!(
                !unit.starts_with("fixture_dep_b-"),
                "the failed gem reached the store"
            );
        }
    }
}

fn assert_recovers(server: &Server, launcher: &Launcher) {
    server.clear_faults();
    let out = run(launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
}

#[test]
fn server_errors_are_retried_as_retry_after_says() {
    let (server, _app, launcher) = setup();
    let busy = Fault::Response {
        status: 503,
        headers: vec![("Retry-After".into(), "0".into())],
        body: b"busy".to_vec(),
    };
    server.set_fault_times(GEM, busy, 2);
    let out = run(&launcher, &["-v", "exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
    assert_eq!(server.count(GEM), 3, "two 503s, then the file");
    assert!(out.stderr.contains("HTTP 503"), "{out}");
    assert!(
        out.stderr.contains("trying again in 0.0s"),
        "Retry-After: 0 is honoured\n{out}"
    );
}

#[test]
fn too_many_requests_waits_and_succeeds() {
    let (server, _app, launcher) = setup();
    let slow_down = Fault::Response {
        status: 429,
        headers: vec![("Retry-After".into(), "1".into())],
        body: Vec::new(),
    };
    server.set_fault_times(GEM, slow_down, 1);
    let out = run(&launcher, &["-v", "install"]);
    assert_success(&out);
    assert_eq!(server.count(GEM), 2);
    assert!(out.stderr.contains("trying again in 1.0s"), "{out}");
}

#[test]
fn persistent_server_errors_fail_after_bounded_retries() {
    let (server, _app, launcher) = setup();
    server.set_fault(GEM, Fault::Status(500));
    let out = run(
        &launcher.clone().env("BUNDLE_RETRY", "2"),
        &["exec", "--", "version"],
    );
    assert_failure(&out);
    assert_eq!(out.stdout, "");
    assert_eq!(server.count(GEM), 3, "one try and BUNDLE_RETRY=2 more");
    // The server's failure, said about the server: what it answered for which file, after how many tries.
    assert!(
        out.stderr.contains(&format!(
            "gem source {} answered HTTP 500 Internal Server Error for gems/fixture_dep_b-0.3.1.gem (3 tries)",
            server.url()
        )),
        "{out}"
    );
    assert!(out.stderr.contains("the server is failing"), "{out}");
    assert_consistent_after_failure(&launcher);
    assert_recovers(&server, &launcher);
}

#[test]
fn not_found_is_not_retried_and_asks_about_the_source_then_yanked() {
    let (server, _app, launcher) = setup();
    server.set_fault(GEM, Fault::Status(404));
    let out = run(&launcher, &["install"]);
    assert_failure(&out);
    assert_eq!(server.count(GEM), 1);
    assert!(out.stderr.contains("is the source URL right"), "{out}");
    assert!(
        out.stderr
            .contains("fixture_dep_b 0.3.1 may have been yanked"),
        "{out}"
    );
    assert!(
        out.stderr.contains("bundle lock --update fixture_dep_b"),
        "{out}"
    );
    assert_consistent_after_failure(&launcher);
    assert_recovers(&server, &launcher);
}

#[test]
fn a_stalled_body_times_out_and_is_fetched_again() {
    let (server, _app, launcher) = setup();
    server.set_fault_times(GEM, Fault::StallAfter(100), 1);
    let out = run(
        &launcher.clone().env("BUNDLE_TIMEOUT", "1"),
        &["-v", "install"],
    );
    assert_success(&out);
    assert_eq!(server.count(GEM), 2);
    assert!(out.stderr.contains("broke off after 100 bytes"), "{out}");
}

#[test]
fn a_stall_that_never_ends_fails_clearly() {
    let (server, _app, launcher) = setup();
    server.set_fault(GEM, Fault::StallAfter(100));
    let out = run(
        &launcher
            .clone()
            .env("BUNDLE_TIMEOUT", "1")
            .env("BUNDLE_RETRY", "1"),
        &["install"],
    );
    assert_failure(&out);
    assert!(out.stderr.contains("broke off after 100 bytes"), "{out}");
    assert!(out.stderr.contains("BUNDLE_TIMEOUT"), "{out}");
    server.release();
    assert_consistent_after_failure(&launcher);
    assert_recovers(&server, &launcher);
}

#[test]
fn a_truncated_body_is_fetched_again() {
    let (server, _app, launcher) = setup();
    server.set_fault_times(GEM, Fault::Truncate(200), 2);
    let out = run(&launcher, &["exec", "--", "specs"]);
    assert_success(&out);
    assert!(out.stdout.contains("dep_b=0.3.1"), "{out}");
    assert_eq!(server.count(GEM), 3);
}

#[test]
fn a_body_that_is_always_cut_off_fails_and_leaves_nothing() {
    let (server, _app, launcher) = setup();
    server.set_fault(GEM, Fault::Truncate(200));
    let out = run(&launcher.clone().env("BUNDLE_RETRY", "1"), &["install"]);
    assert_failure(&out);
    assert_eq!(server.count(GEM), 2);
    assert!(out.stderr.contains("broke off after 200 bytes"), "{out}");
    assert_consistent_after_failure(&launcher);
    assert_recovers(&server, &launcher);
}

#[test]
fn a_dropped_connection_is_retried() {
    let (server, _app, launcher) = setup();
    server.set_fault_times(GEM, Fault::Disconnect, 2);
    let out = run(&launcher, &["install"]);
    assert_success(&out);
    assert_eq!(server.count(GEM), 3);
}

#[test]
fn a_wrong_body_is_never_retried_into_success_nor_cached() {
    let (server, _app, launcher) = setup();
    server.set_fault(GEM, Fault::Body(b"not the gem you locked".to_vec()));
    let out = run(&launcher, &["install"]);
    assert_failure(&out);
    assert_eq!(server.count(GEM), 1, "a mismatch is final");
    assert!(out.stderr.contains("checksum mismatch"), "{out}");
    assert!(
        out.stderr.contains(&sha256_hex(b"not the gem you locked")),
        "{out}"
    );
    assert_consistent_after_failure(&launcher);
    assert_recovers(&server, &launcher);
}

#[test]
fn redirect_chains_are_followed_and_loops_refused() {
    let (server, _app, launcher) = setup();
    server.set_fault(GEM, Fault::Redirect("/hop1".into()));
    server.set_fault("/hop1", Fault::Redirect("/hop2".into()));
    server.set_fault(
        "/hop2",
        Fault::Redirect("/mirror/fixture_dep_b-0.3.1.gem".into()),
    );
    let body =
        fs::read(fixtures().gem_path(fixtures().gem("fixture_dep_b", "0.3.1", "ruby"))).unwrap();
    server.set_fault(
        "/mirror/fixture_dep_b-0.3.1.gem",
        Fault::Response {
            status: 200,
            headers: vec![],
            body,
        },
    );
    assert_success(&run(&launcher, &["install"]));
    assert_eq!(server.count("/hop2"), 1);

    let (server, _app, launcher) = setup();
    server.set_fault(GEM, Fault::Redirect("/loop".into()));
    server.set_fault("/loop", Fault::Redirect(GEM.into()));
    let out = run(&launcher, &["install"]);
    assert_failure(&out);
    assert!(out.stderr.contains("redirect loop"), "{out}");
    assert_consistent_after_failure(&launcher);
    assert_recovers(&server, &launcher);
}

#[test]
fn an_absurdly_large_body_is_refused_before_it_is_read() {
    let (server, _app, launcher) = setup();
    server.set_fault(
        GEM,
        Fault::Response {
            status: 200,
            headers: vec![("Content-Length".into(), "1099511627776".into())],
            body: vec![0; 1024],
        },
    );
    let out = run(&launcher, &["install"]);
    assert_failure(&out);
    assert!(out.stderr.contains("1099511627776 bytes"), "{out}");
    assert!(out.stderr.contains("refusing"), "{out}");
    assert_consistent_after_failure(&launcher);
    assert_recovers(&server, &launcher);
}
