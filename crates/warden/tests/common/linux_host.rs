//! A Linux host that a CLI test sets up for real with `warden setup`: a network namespace of its own, a state
//! directory, a unique identity and the root-test lock. `warden` runs in the namespace under a deadline; drop
//! destroys the service jails and stops dnsmasq (the namespace goes after them).

use std::process::{Command, Output};
use std::time::Duration;

use warden_testkit::{root_test, Serial};

use super::{text, Netns};

/// How long one `warden` call may take unless the test says otherwise.
const DEFAULT_LIMIT: Duration = Duration::from_secs(300);

/// A test's Linux host; fields drop in order, so the lock is released last.
pub struct LinuxHost {
    pub ns: Netns,
    pub dir: tempfile::TempDir,
    /// `letter` and six hex digits: jail names derive from it, and jail cgroups are named machine-wide.
    pub identity: String,
    env: Vec<(String, String)>,
    _serial: Serial,
}

/// The release cache `scripts/test` builds the service jails' `debian` release into before the tests (the
/// tests' namespaces have no uplink, so setup links it from there); the test fails naming the build command
/// when it is not built.
pub const SERVICE_RELEASE_CACHE: &str = "/var/cache/warden-ci/releases";

/// [`SERVICE_RELEASE_CACHE`], after checking the release for this package list is built there.
pub fn service_release_cache() -> String {
    let tree = warden_core::linux_release::BuildPaths::new(SERVICE_RELEASE_CACHE).tree();
    assert!(
        std::path::Path::new(&tree).join("usr").is_dir(),
        "the service jails' release is not built ({tree} is missing)\n  fix: as scripts/test does, where the network is: \
         WARDEN_RELEASE_CACHE={SERVICE_RELEASE_CACHE} warden --state-dir /var/cache/warden-ci/release-state release build debian"
    );
    SERVICE_RELEASE_CACHE.to_string()
}

/// `letter` and six hex digits unique to this process and moment (an identity is at most 7 characters).
pub fn unique_identity(letter: char) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{letter}{:06x}",
        (nanos ^ std::process::id().rotate_left(12)) & 0xff_ffff
    )
}

impl LinuxHost {
    /// The secrets `dir` of the state directory holds (`<name>.password` for each of `names`), after asserting
    /// the directory is 0700 and each file 0600.
    pub fn secret_files(&self, dir: &str, names: &[&str]) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let secrets = self.dir.path().join(dir);
        assert_eq!(mode(&secrets), 0o700, "{}", secrets.display());
        names
            .iter()
            .map(|name| {
                let p = secrets.join(format!("{name}.password"));
                assert_eq!(mode(&p), 0o600, "{}", p.display());
                std::fs::read_to_string(&p).unwrap().trim().to_string()
            })
            .collect()
    }

    /// Takes the root-test lock (root networking tests of every worktree take turns), then makes the namespace,
    /// a state directory named `prefix…` (mode 0700, as Warden wants it) and an identity starting with `letter`.
    pub fn new(test: &str, prefix: &str, letter: char) -> LinuxHost {
        let serial = root_test(test).expect("root_test never skips");
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        LinuxHost {
            ns: Netns::new(),
            dir,
            identity: unique_identity(letter),
            env: Vec::new(),
            _serial: serial,
        }
        .with_env("WARDEN_RELEASE_CACHE", &service_release_cache())
    }

    /// Sets `key=value` in the environment of every `warden` this host runs (teardown's too).
    pub fn with_env(mut self, key: &str, value: &str) -> LinuxHost {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The state directory as a string.
    pub fn state(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// The service jail of `role` under this identity.
    pub fn jail(&self, role: &str) -> String {
        format!("{}{role}", self.identity)
    }

    /// `warden --state-dir STATE --identity ID ARGS` in the namespace, PATH and this host's env only, no
    /// deadline (for a server the test stops itself).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut full = vec!["--identity", self.identity.as_str()];
        full.extend(args);
        let mut cmd = self.ns.warden(self.dir.path(), &full);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `warden ARGS` for at most `limit` (timeout(1) kills it then, and the test fails saying so).
    pub fn warden_within(&self, limit: Duration, args: &[&str]) -> Output {
        let o = self.run_within(limit, args);
        assert_ne!(
            o.status.code(),
            Some(124),
            "warden {args:?} did not finish within {limit:?}: {}",
            text(&o)
        );
        o
    }

    /// `warden ARGS` under timeout(1), which exits 124 when it had to kill it.
    fn run_within(&self, limit: Duration, args: &[&str]) -> Output {
        let inner = self.command(args);
        let mut cmd = Command::new("timeout");
        cmd.arg("--kill-after=10")
            .arg(limit.as_secs().to_string())
            .arg(inner.get_program())
            .args(inner.get_args())
            .env_clear();
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.output().expect("run warden")
    }

    /// Runs `warden ARGS` for at most five minutes.
    pub fn warden(&self, args: &[&str]) -> Output {
        self.warden_within(DEFAULT_LIMIT, args)
    }

    /// Runs `warden ARGS`, which must succeed; its output.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.warden(args);
        assert!(o.status.success(), "warden {args:?}: {}", text(&o));
        text(&o)
    }

    /// Applies `warden setup --backend linux --step S` for each of `steps` in order; what they printed.
    pub fn setup_steps(&self, steps: &[&str]) -> String {
        let mut said = String::new();
        for step in steps {
            let o = self.warden(&["setup", "--backend", "linux", "--step", step]);
            assert!(o.status.success(), "setup --step {step}: {}", text(&o));
            said.push_str(&text(&o));
        }
        said
    }
}

/// psql's path, the newest version under the host's `/usr/lib/postgresql`: the same on the host and in the
/// debian release (bookworm's PostgreSQL 15).
pub fn psql_bin() -> String {
    let version = std::fs::read_dir("/usr/lib/postgresql")
        .expect("the host's PostgreSQL (apt-get install postgresql; scripts/test installs it)")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .expect("a PostgreSQL version under /usr/lib/postgresql");
    format!("/usr/lib/postgresql/{version}/bin/psql")
}

impl LinuxHost {
    /// psql in the namespace (the host side of the bridge) against `url`, killed after a minute.
    pub fn psql(&self, url: &str, sql: &str) -> Output {
        let mut argv: Vec<String> = vec!["timeout".into(), "-k".into(), "5".into(), "60".into()];
        argv.extend(self.ns.prefix());
        argv.extend([psql_bin(), url.into(), "-XAtc".into(), sql.into()]);
        let o = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        assert_ne!(o.status.code(), Some(124), "timed out: psql {sql}");
        o
    }

    /// A client connected to `url` in a long query (in the namespace, ended by `timeout` after 60 s at most);
    /// returns once the server shows its session.
    pub fn hold_connection(&self, url: &str) -> HeldConnection {
        let mut argv: Vec<String> = vec!["timeout".into(), "-k".into(), "5".into(), "60".into()];
        argv.extend(self.ns.prefix());
        argv.extend([
            psql_bin(),
            url.into(),
            "-XAtc".into(),
            "select pg_sleep(55)".into(),
        ]);
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let held = HeldConnection(child);
        let t = std::time::Instant::now();
        loop {
            let o = self.psql(
                url,
                "select count(*) from pg_stat_activity where query = 'select pg_sleep(55)'",
            );
            if String::from_utf8_lossy(&o.stdout).trim() == "1" {
                return held;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the held connection did not show in pg_stat_activity within 20 s: {}",
                text(&o)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The doctor's checks whose names start with `prefix` (`db.`), as JSON objects.
    pub fn doctor_checks(&self, prefix: &str) -> Vec<serde_json::Value> {
        let o = self.warden(&["doctor", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .cloned()
            .collect()
    }
}

impl Drop for LinuxHost {
    fn drop(&mut self) {
        // Jails first, while their namespace still exists: destroy stops them and removes cgroups and veths.
        for role in ["git", "cms", "ai", "db"] {
            let _ = self.run_within(
                DEFAULT_LIMIT,
                &["jail", "destroy", "--force", &self.jail(role)],
            );
        }
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("dnsmasq.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// A `psql` child holding a connection ([`LinuxHost::hold_connection`]); killed when dropped.
pub struct HeldConnection(std::process::Child);

impl HeldConnection {
    /// Waits (at most 10 s, then kills it) for the client to end after its server went away.
    pub fn finish(mut self) {
        let t = std::time::Instant::now();
        while self.0.try_wait().unwrap().is_none() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "the held psql did not end within 10 s of its server's stop"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
