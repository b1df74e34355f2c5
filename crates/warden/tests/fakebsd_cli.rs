//! The `warden` command line against the simulated FreeBSD host (`crates/fakebsd`), as the README's "Running the
//! FreeBSD backend against the simulated host" does it: fakebsd's tool links first on PATH, `FAKEBSD_STATE`, and
//! `WARDEN_HOST_ROOT=$FAKEBSD_STATE/root`. Covers full setup, snapshots and `warden run --backend bastille`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::warden_bin;
use serde_json::Value;

fn bin_dir() -> PathBuf {
    warden_bin().parent().expect("target dir").to_path_buf()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The fakebsd binary next to warden, built on demand; a test that cannot have it fails loudly.
fn fakebsd_bin() -> PathBuf {
    let bin = bin_dir().join("fakebsd");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let _ = Command::new(cargo)
            .args(["build", "-p", "fakebsd"])
            .status();
    }
    assert!(
        bin.exists(),
        "fakebsd is not built ({}) and `cargo build -p fakebsd` did not produce it",
        bin.display()
    );
    bin
}

/// A fresh simulated FreeBSD host in a temp dir, with Warden's state directory beside it.
struct BsdHost {
    dir: tempfile::TempDir,
}

impl BsdHost {
    fn fresh() -> BsdHost {
        let fakebsd = fakebsd_bin();
        let h = BsdHost {
            dir: tempfile::tempdir().unwrap(),
        };
        for d in ["bin", "fake", "warden"] {
            std::fs::create_dir_all(h.p(d)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(h.p("warden"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let out = Command::new(&fakebsd)
            .arg("install")
            .arg(h.p("bin"))
            .output()
            .unwrap();
        assert!(out.status.success(), "fakebsd install: {}", text(&out));
        let out = h.cmd(&fakebsd).arg("init").output().unwrap();
        assert!(out.status.success(), "fakebsd init: {}", text(&out));
        h
    }

    fn p(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// `$FAKEBSD_STATE/root`: where the simulated host's files live.
    fn root(&self) -> PathBuf {
        self.p("fake").join("root")
    }

    fn cmd(&self, program: &Path) -> Command {
        let path = format!(
            "{}:{}:{}",
            self.p("bin").display(),
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", path)
            .env("FAKEBSD_STATE", self.p("fake"))
            .env("WARDEN_HOST_ROOT", self.root());
        c
    }

    fn warden(&self, args: &[&str]) -> Output {
        self.cmd(&warden_bin())
            .arg("--state-dir")
            .arg(self.p("warden"))
            .args(args)
            .output()
            .unwrap()
    }

    fn warden_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut c = self.cmd(&warden_bin());
        c.arg("--state-dir").arg(self.p("warden")).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn warden_ok(&self, args: &[&str]) -> Output {
        let out = self.warden(args);
        assert!(out.status.success(), "warden {args:?}: {}", text(&out));
        out
    }

    /// One of fakebsd's tools (bastille, zfs, jls, …) on the simulated host.
    fn tool(&self, argv: &[&str]) -> Output {
        self.cmd(&self.p("bin").join(argv[0]))
            .args(&argv[1..])
            .output()
            .unwrap()
    }

    fn state(&self) -> Value {
        let out = self.tool(&["fakebsd", "state"]);
        assert!(out.status.success(), "fakebsd state: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn setup_doctor_and_snapshots_through_the_cli() {
    let h = BsdHost::fresh();
    // The whole setup from a fresh host, then its verify step (the doctor) passes.
    let out = h.warden_ok(&["setup", "--backend", "bastille"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("applied") && err.contains("step verify"),
        "{err}"
    );
    let out = h.warden_ok(&["plan", "--backend", "bastille"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "second plan: {}",
        text(&out)
    );
    h.warden_ok(&["doctor", "--backend", "bastille"]);

    // An unknown jail is bad input, answered with the jails there are.
    let out = h.warden(&["snapshot", "nosuchjail"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nosuchjail")
            && err.contains("clawdiecms, clawdiedb, clawdiegit")
            && err.contains("fix:"),
        "{err}"
    );

    let out = h.warden_ok(&["snapshot", "clawdiegit", "before"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "before");
    let marker = h
        .root()
        .join("usr/local/bastille/jails/clawdiegit/root/tmp/after-snapshot");
    std::fs::write(&marker, "x").unwrap();

    // A running jail is not rolled back under its services.
    let out = h.warden(&["rollback", "clawdiegit", "before"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bastille stop clawdiegit"));
    assert!(marker.exists());

    assert!(h.tool(&["bastille", "stop", "clawdiegit"]).status.success());
    h.warden_ok(&["rollback", "clawdiegit", "before"]);
    assert!(!marker.exists(), "the rollback must remove the file");
    let out = h.warden(&["rollback", "clawdiegit", "missing"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(h
        .tool(&["bastille", "start", "clawdiegit"])
        .status
        .success());

    let out = h.warden_ok(&["snapshots", "clawdiegit"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().any(|l| l.starts_with("before ")),
        "snapshots lists the tag: {table}"
    );
    let out = h.warden_ok(&["snapshots", "clawdiegit", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "zroot/clawdie-runtime/jails/clawdiegit@before"),
        "{list:#}"
    );
}

#[test]
fn run_with_the_bastille_backend_keeps_the_exit_contract_and_leaves_nothing() {
    let h = BsdHost::fresh();
    for step in ["host", "jails"] {
        h.warden_ok(&["setup", "--backend", "bastille", "--step", step]);
    }
    // The release has no `clawdie` user (the default workers.user): a worker failure, with the fix.
    let out = h.warden(&["run", "--backend", "bastille", "--", "echo", "hi"]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("WARDEN_WORKER_USER"),
        "{}",
        text(&out)
    );

    let nobody = [("WARDEN_WORKER_USER", "nobody")];
    let out = h.warden_env(
        &nobody,
        &["run", "--backend", "bastille", "--", "echo", "hi"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");

    let out = h.warden_env(
        &nobody,
        &["run", "--backend", "bastille", "--", "sh", "-c", "exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = h.warden_env(
        &nobody,
        &[
            "run",
            "--backend",
            "bastille",
            "--network",
            "vnet",
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Limits come from the same flags: bad ones are usage errors, the output cap exits 141.
    let out = h.warden_env(
        &nobody,
        &[
            "run",
            "--backend",
            "bastille",
            "--timeout",
            "soon",
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = h.warden_env(
        &nobody,
        &[
            "run",
            "--backend",
            "bastille",
            "--output",
            "4",
            "--",
            "echo",
            "123456789",
        ],
    );
    assert_eq!(out.status.code(), Some(141), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1234");

    // Nothing of the workers is left: no jail, no epair, no clone.
    let state = h.state();
    let jails: Vec<&String> = state["jails"].as_object().unwrap().keys().collect();
    assert!(
        jails.iter().all(|j| j.starts_with("clawdie")),
        "a worker jail leaked: {jails:?}"
    );
    let ifaces: Vec<&String> = state["interfaces"].as_object().unwrap().keys().collect();
    assert!(
        ifaces
            .iter()
            .all(|i| !i.starts_with("epair") && !i.contains("_r")),
        "an epair leaked: {ifaces:?}"
    );
    let clones: Vec<&String> = state["datasets"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|d| d.contains("/workers/"))
        .collect();
    assert!(clones.is_empty(), "a clone leaked: {clones:?}");
}
