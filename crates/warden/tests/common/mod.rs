//! Shared helpers for the CLI's integration tests: run the built `warden`, and own a network namespace.

#![allow(dead_code, clippy::new_without_default)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
pub mod server;

#[cfg(target_os = "linux")]
pub mod linux_host;

/// The db roles (= databases) of the default layout (namespace `system`), in `warden_core::db::roles` order.
pub const DB_ROLES: [&str; 6] = [
    "system_ops",
    "system_brain",
    "system_skills",
    "system_git",
    "system_web",
    "strapi_cms",
];

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
    output_within(&mut cmd, WARDEN_LIMIT)
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

/// pi's install prefix, shared by the test binaries of the workspace (`WARDEN_PI_CACHE`, else
/// `target/tmp/pi-cache`; installing is locked and idempotent, the first run downloads it from npm).
pub fn pi_cache() -> PathBuf {
    match std::env::var_os("WARDEN_PI_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("pi-cache"),
    }
}

/// [`pi_cache`] with the pinned pi installed in it (the first run downloads it from npm).
pub fn pi_cache_installed() -> PathBuf {
    let cache = pi_cache();
    let never = std::sync::atomic::AtomicBool::new(false);
    if let Err(e) = warden_agent::install_pi_until(&cache, warden_agent::PI_VERSION, &never) {
        panic!(
            "failed to install pi into the shared cache {} (needs the npm registry): {e}",
            cache.display()
        );
    }
    cache
}

/// A fresh state directory whose `pi` is the shared install, as `warden setup --step agent` leaves it: serve
/// finds pi there and runs prompt turns with it.
pub fn state_with_pi() -> tempfile::TempDir {
    let cache = pi_cache_installed();
    let state = tempfile::Builder::new().prefix("wpi").tempdir().unwrap();
    std::os::unix::fs::symlink(&cache, state.path().join("pi")).unwrap();
    state
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

    /// `/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
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

    /// `warden --state-dir STATE ARGS…` inside the namespace with a clean environment (PATH only); add env, then
    /// run it.
    pub fn warden(&self, state: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(nsenter_bin());
        cmd.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(warden_bin())
            .arg("--state-dir")
            .arg(state)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        cmd
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let mut full = self.prefix();
        full.extend(argv.iter().map(|s| s.to_string()));
        output_within(Command::new(&full[0]).args(&full[1..]), WARDEN_LIMIT)
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

/// `nsenter`, found through this process's PATH (a child's environment may name another PATH).
fn nsenter_bin() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("nsenter"))
        .find(|p| p.is_file())
        .expect("nsenter on PATH")
}

/// `warden --state-dir STATE serve --listen 127.0.0.1:0 EXTRA…` with a clean environment (PATH and
/// `WARDEN_LOG` only), inside the network namespace at `netns` when given (entered with `nsenter --net`, which
/// execs warden: the child's pid is the server's). Add env and flags, then [`Serve::spawn`] it.
pub fn serve_command(netns: Option<&Path>, state: &Path, extra: &[&str]) -> Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new(nsenter_bin());
            c.arg(format!("--net={}", ns.display()))
                .arg("--")
                .arg(warden_bin());
            c
        }
        None => Command::new(warden_bin()),
    };
    cmd.arg("--state-dir")
        .arg(state)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WARDEN_LOG", "info,tower_http=warn");
    cmd
}

/// A running `warden serve`: its child process, state directory, `http://IP:PORT` and token. Drop sends
/// SIGTERM, waits up to 40 s (serve drains running turns for up to 30 s), then SIGKILLs.
pub struct Serve {
    pub child: Child,
    pub state: PathBuf,
    pub base: String,
    pub token: String,
}

impl Serve {
    /// `warden serve` on an ephemeral loopback port inside `ns`, with a clean environment plus `env`.
    pub fn start(ns: &Netns, state: &Path, env: &[(&str, &str)]) -> Serve {
        ensure_worker_account();
        let mut cmd = serve_command(Some(&ns.path()), state, &[]);
        cmd.envs(env.iter().copied());
        Serve::spawn(cmd, state)
    }

    /// Runs `cmd` (a `warden … serve` command, e.g. from [`serve_command`]) with stdin and stdout null and
    /// stderr appended to `<state>/serve.log`, and waits (60 s at most) until `<state>/serve.json` names the
    /// address it listens on.
    // The child is owned by the returned `Serve`, whose Drop waits for it.
    #[allow(clippy::zombie_processes)]
    pub fn spawn(mut cmd: Command, state: &Path) -> Serve {
        std::fs::create_dir_all(state).unwrap();
        // A server killed with -9 leaves its serve.json behind.
        let _ = std::fs::remove_file(state.join("serve.json"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.join("serve.log"))
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start warden serve");
        let mut serve = Serve {
            child,
            state: state.to_path_buf(),
            base: String::new(),
            token: String::new(),
        };
        let t0 = Instant::now();
        loop {
            if let Some(addr) = listening(state) {
                serve.base = format!("http://{addr}");
                serve.token = std::fs::read_to_string(state.join("token"))
                    .expect("the token file")
                    .trim()
                    .to_string();
                return serve;
            }
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("warden serve exited ({status}): {}", serve.log_text());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "warden serve did not start: {}",
                serve.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client of the server (from a thread in the server's network namespace).
    pub fn client(&self) -> warden_server::Client {
        warden_server::Client::new(self.base.clone(), self.token.clone())
    }

    /// The server's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What the server wrote to stderr.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.state.join("serve.log")).unwrap_or_default()
    }

    /// SIGTERM; true if it exited within `within`.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGTERM, and fail the test unless it exits within 30 s.
    pub fn stop(mut self) {
        if !self.terminate(Duration::from_secs(30)) {
            self.kill9();
            panic!("warden serve did not stop on SIGTERM: {}", self.log_text());
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first address in `<state>/serve.json` (`IP:PORT`), once a server listens.
fn listening(state: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state.join("serve.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["listening"][0].as_str().map(str::to_string)
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if !self.terminate(Duration::from_secs(40)) {
                self.kill9();
            }
        }
    }
}

// ---- The simulated FreeBSD host (fakebsd), driven through the real CLI: warden-testkit's `FakeBsdHost`. ----

#[allow(unused_imports)]
pub use warden_testkit::fakebsd::{bin_dir, output_within, text, WARDEN_LIMIT};

/// HTTP/1.0 GET `path` with `Host: host` from inside the namespace at `netns`: (status, body), or why it failed.
#[cfg(target_os = "linux")]
pub fn http_get_in(
    netns: PathBuf,
    addr: &str,
    path: &str,
    host: &str,
) -> Result<(u16, String), String> {
    let (addr, path, host) = (addr.to_string(), path.to_string(), host.to_string());
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns).map_err(|e| e.to_string())?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
        let sock = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(3))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        std::io::Write::write_fmt(
            &mut s,
            format_args!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n"),
        )
        .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut buf).map_err(|e| format!("read {addr}: {e}"))?;
        let t = String::from_utf8_lossy(&buf).into_owned();
        let status = t
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = t
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    })
    .join()
    .expect("request thread")
}
