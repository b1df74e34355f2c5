//! Shared helpers for the CLI's integration tests: run the built `warden`, and own a network namespace.

#![allow(dead_code, clippy::new_without_default)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Root tests need root; say so loudly instead of passing silently.
pub fn require_root() {
    assert_eq!(
        unsafe { libc_geteuid() },
        0,
        "this test needs root (CI runs it as root): run `sudo cargo test`"
    );
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
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
