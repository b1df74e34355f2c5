//! Shared helpers for the CLI's integration tests: run the built `warden`, and own a network namespace.

#![allow(dead_code, clippy::new_without_default)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The built binary.
pub fn warden_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_warden"))
}

/// `warden ARGS` with a clean environment (no WARDEN_*/AGENT_* leaking in from the caller).
pub fn warden(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(warden_bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("failed to run warden")
}

/// stdout as text; panics with stderr if the command failed.
pub fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The worker account (`clawdie`, `workers.user`) that `warden run` and `warden serve` run workers as, created
/// the way an operator does it: `warden setup --backend linux --step base` (on a machine that has the packages,
/// this adds the account to `/etc/passwd` once; later runs plan nothing). Serialised across test processes.
pub fn ensure_worker_account() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        require_root();
        let lock = std::fs::File::create("/tmp/warden-worker-account.lock").unwrap();
        lock.lock().unwrap();
        let state = tempfile::tempdir().unwrap();
        let out = warden(
            &[
                "--state-dir",
                state.path().to_str().unwrap(),
                "setup",
                "--backend",
                "linux",
                "--step",
                "base",
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "warden setup --step base: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Root tests need root; say so loudly instead of passing silently.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (CI runs it as root): run `sudo cargo test`"
    );
}

/// A network namespace this test created; deleted on drop, whatever happened.
pub struct Netns {
    pub name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    /// Creates `wtest-<pid>-<n>` with loopback up.
    pub fn new() -> Netns {
        require_root();
        let name = format!(
            "wtest-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The command line prefix that runs a program inside the namespace. It is `nsenter --net`, not
    /// `ip netns exec`: the latter remounts /sys, which hides /sys/fs/cgroup and so every cgroup limit.
    pub fn prefix(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            format!("--net=/run/netns/{}", self.name),
            "--".into(),
        ]
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let mut full = self.prefix();
        full.extend(argv.iter().map(|s| s.to_string()));
        Command::new(&full[0])
            .args(&full[1..])
            .output()
            .expect("failed to run nsenter")
    }

    /// Runs a command inside the namespace and asserts it succeeded.
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        ok_stdout(&self.exec(argv))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs a host command (only `ip netns add` style namespace management) and asserts success.
pub fn run(argv: &[&str]) -> String {
    ok_stdout(
        &Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .expect("failed to spawn"),
    )
}

/// `warden serve` on an ephemeral loopback port inside the namespace; SIGTERM and wait on drop.
pub struct Serve {
    child: Child,
}

impl Serve {
    /// Starts it with a clean environment plus `env`.
    pub fn start(ns: &Netns, state: &Path, env: &[(&str, &str)]) -> Serve {
        ensure_worker_account();
        let log = std::fs::File::create(state.join("serve.log")).unwrap();
        let mut argv = ns.prefix();
        argv.push(warden_bin().display().to_string());
        argv.extend(
            [
                "--state-dir",
                &state.display().to_string(),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ]
            .map(String::from),
        );
        // Found through this process's PATH: `env` may give the child another one.
        let nsenter = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(&argv[0]))
            .find(|p| p.is_file())
            .expect("nsenter on PATH");
        // nsenter execs warden, so the child's pid is the server's.
        let child = Command::new(nsenter)
            .args(&argv[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start warden serve");
        let mut serve = Serve { child };
        let t0 = Instant::now();
        while !state.join("serve.json").exists() {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!(
                    "warden serve exited ({status}): {}",
                    std::fs::read_to_string(state.join("serve.log")).unwrap_or_default()
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "warden serve did not start: {}",
                std::fs::read_to_string(state.join("serve.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        serve
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- The simulated FreeBSD host (fakebsd), driven through the real CLI. ----

pub fn bin_dir() -> PathBuf {
    warden_bin().parent().expect("target dir").to_path_buf()
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The fakebsd binary next to warden, built on demand; a test that cannot have it fails loudly.
pub fn fakebsd_bin() -> PathBuf {
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
pub struct BsdHost {
    pub dir: tempfile::TempDir,
}

impl BsdHost {
    pub fn fresh() -> BsdHost {
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

    pub fn p(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// `$FAKEBSD_STATE/root`: where the simulated host's files live.
    pub fn root(&self) -> PathBuf {
        self.p("fake").join("root")
    }

    pub fn cmd(&self, program: &Path) -> Command {
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

    pub fn warden(&self, args: &[&str]) -> Output {
        self.cmd(&warden_bin())
            .arg("--state-dir")
            .arg(self.p("warden"))
            .args(args)
            .output()
            .unwrap()
    }

    pub fn warden_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut c = self.cmd(&warden_bin());
        c.arg("--state-dir").arg(self.p("warden")).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    pub fn warden_ok(&self, args: &[&str]) -> Output {
        let out = self.warden(args);
        assert!(out.status.success(), "warden {args:?}: {}", text(&out));
        out
    }

    /// One of fakebsd's tools (bastille, zfs, jls, …) on the simulated host.
    pub fn tool(&self, argv: &[&str]) -> Output {
        self.cmd(&self.p("bin").join(argv[0]))
            .args(&argv[1..])
            .output()
            .unwrap()
    }

    pub fn state(&self) -> serde_json::Value {
        let out = self.tool(&["fakebsd", "state"]);
        assert!(out.status.success(), "fakebsd state: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}
