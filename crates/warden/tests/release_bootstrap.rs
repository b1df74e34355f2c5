//! `warden release bootstrap debian` and jails on it, end to end. Slow (~60 s or more) and it downloads, so it is
//! ignored by default and refuses to pass without having run:
//!
//! `WARDEN_TEST_DEBOOTSTRAP=1 cargo test -p warden --test release_bootstrap -- --ignored`

mod common;

use std::process::Output;
use std::time::Duration;

/// How long debootstrap or apt in the tree may take (a first build measured 198 s under load).
const RELEASE_LIMIT: Duration = Duration::from_secs(1800);

use common::{warden_bin, Netns};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
#[ignore = "slow, downloads: WARDEN_TEST_DEBOOTSTRAP=1 cargo test -p warden --test release_bootstrap -- --ignored"]
fn bootstraps_debian_and_runs_thin_and_thick_jails_on_it() {
    if std::env::var("WARDEN_TEST_DEBOOTSTRAP").as_deref() != Ok("1") {
        eprintln!("SKIPPED bootstraps_debian_and_runs_thin_and_thick_jails_on_it: set WARDEN_TEST_DEBOOTSTRAP=1");
        panic!("SKIPPED (not run): set WARDEN_TEST_DEBOOTSTRAP=1 to run the debootstrap test");
    }
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().display().to_string();
    let w = |args: &[&str]| -> Output {
        let mut argv = ns.prefix();
        argv.extend([
            warden_bin().display().to_string(),
            "--state-dir".into(),
            state.clone(),
        ]);
        argv.extend(args.iter().map(|s| s.to_string()));
        common::output_within(
            std::process::Command::new(&argv[0]).args(&argv[1..]),
            RELEASE_LIMIT,
        )
    };
    let ok = |args: &[&str]| -> String {
        let o = w(args);
        assert!(o.status.success(), "warden {args:?}: {}", text(&o));
        text(&o)
    };
    // debootstrap downloads, so it runs in this machine's own network namespace (it touches no interface).
    let o = common::output_within(
        std::process::Command::new(warden_bin()).args([
            "--state-dir",
            &state,
            "release",
            "bootstrap",
            "debian",
        ]),
        RELEASE_LIMIT,
    );
    assert!(o.status.success(), "bootstrap: {}", text(&o));
    let progress = text(&o);
    assert!(
        progress.contains("Retrieving") || progress.contains("Extracting"),
        "{progress}"
    );
    let o = w(&["release", "bootstrap", "debian"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let list = ok(&["release", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("debian ") && l.contains('M')),
        "{list}"
    );
    let release = dir.path().join("releases/debian");
    for (name, shape) in [("deb1", "thin"), ("deb2", "thick")] {
        ok(&[
            "jail",
            "create",
            name,
            "--release",
            "debian",
            "--shape",
            shape,
        ]);
        ok(&["jail", "start", name]);
        let out = ok(&[
            "jail",
            "exec",
            name,
            "--root",
            "--",
            "sh",
            "-c",
            "cat /etc/debian_version; echo x > /root/kept",
        ]);
        assert!(out.starts_with("12."), "{out}");
        ok(&["jail", "stop", name]);
        ok(&["jail", "start", name]);
        assert!(ok(&["jail", "exec", name, "--root", "--", "cat", "/root/kept"]).starts_with("x"));
        assert!(
            !release.join("root/kept").exists(),
            "the release was modified"
        );
    }
    let o = w(&["release", "destroy", "debian"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("deb1"), "{}", text(&o));
    for name in ["deb1", "deb2"] {
        ok(&["jail", "destroy", "--force", name]);
    }
    ok(&["release", "destroy", "debian"]);
    assert!(!release.exists());
    assert!(
        std::fs::read_dir(dir.path().join("workers"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

/// The release cache `scripts/test` builds the service release into (before the tests, where the network is).
const CI_RELEASE_CACHE: &str = "/var/cache/warden-ci/releases";

#[test]
#[ignore = "slow the first time, downloads: WARDEN_TEST_DEBOOTSTRAP=1 cargo test -p warden --test release_bootstrap -- --ignored"]
fn builds_the_service_release_with_the_role_packages_once() {
    if std::env::var("WARDEN_TEST_DEBOOTSTRAP").as_deref() != Ok("1") {
        panic!("SKIPPED (not run): set WARDEN_TEST_DEBOOTSTRAP=1 to run the release build test");
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().display().to_string();
    let build = || {
        common::output_within(
            std::process::Command::new(warden_bin())
                .args(["--state-dir", &state, "release", "build", "debian"])
                .env("WARDEN_RELEASE_CACHE", CI_RELEASE_CACHE),
            RELEASE_LIMIT,
        )
    };
    // Built once per cache (here or by scripts/test before); then nothing to do.
    let o = build();
    assert!(o.status.success(), "build: {}", text(&o));
    let o = build();
    assert!(o.status.success(), "build: {}", text(&o));
    let said = text(&o);
    assert!(said.contains("is built: "), "{said}");
    let tree = std::path::PathBuf::from(said.trim().rsplit("is built: ").next().unwrap());
    assert!(tree.starts_with(CI_RELEASE_CACHE), "{}", tree.display());
    // The roles' programs are the release's own; no service was left able to start during the build, no
    // Debian `main` cluster was made, and the worker account is there.
    for p in [
        "usr/lib/postgresql/15/bin/postgres",
        "usr/lib/postgresql/15/bin/initdb",
        "usr/bin/psql",
        "usr/sbin/nginx",
        "usr/sbin/fcgiwrap",
        "usr/lib/git-core/git-http-backend",
        "etc/ssl/certs/ca-certificates.crt",
    ] {
        assert!(tree.join(p).exists(), "{} lacks {p}", tree.display());
    }
    assert!(!tree.join("usr/sbin/policy-rc.d").exists());
    assert!(!tree.join("var/lib/postgresql/15/main").exists());
    let passwd = std::fs::read_to_string(tree.join("etc/passwd")).unwrap();
    assert!(passwd.contains("\nclawdie:x:1500:1500:"), "{passwd}");
    assert!(passwd.contains("\npostgres:x:"), "{passwd}");
    let manifest = tree.with_file_name(format!(
        ".{}.txt",
        tree.file_name().unwrap().to_string_lossy()
    ));
    let m = std::fs::read_to_string(&manifest).unwrap();
    assert!(m.contains("packages ca-certificates postgresql"), "{m}");
    // Nothing of the cache went into the state directory but the journal.
    assert!(!dir.path().join("releases").exists());
}
