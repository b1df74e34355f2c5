//! The simulated FreeBSD host (`crates/fakebsd`) as every test that drives it starts one: a temporary
//! directory holding fakebsd's tool links (`bin/`), its state (`fake/`, whose `root/` is the host's `/`),
//! Warden's state directory (`warden/`, mode 0700) and the call log (`calls.log`); `fakebsd init`; then
//! commands with only this host's environment (the README's "Running the FreeBSD backend against the
//! simulated host"): fakebsd's links first on PATH, `FAKEBSD_STATE`, `WARDEN_HOST_ROOT`, `FAKEBSD_CALL_LOG`.
//! Every command it runs is killed after a deadline, and the test fails saying so.

use std::ffi::OsStr;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one `warden` command may take before the test fails (a full setup is a few seconds).
pub const WARDEN_LIMIT: Duration = Duration::from_secs(300);
/// How long one simulated tool may take.
pub const TOOL_LIMIT: Duration = Duration::from_secs(60);

/// The directory of the workspace's built binaries (`target/<profile>`), found from the running test binary
/// (`target/<profile>/deps/<test>`), so a test of any crate reaches `warden` and `fakebsd`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut dir = exe
        .parent()
        .expect("the test binary's directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The fakebsd binary, built on demand; a test that cannot have it fails loudly.
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

/// The built `warden`; tests of the `warden` crate always have it (cargo builds a crate's binaries for its tests).
pub fn warden_bin() -> PathBuf {
    let bin = bin_dir().join("warden");
    assert!(
        bin.exists(),
        "warden is not built ({}): run `cargo build -p warden`",
        bin.display()
    );
    bin
}

/// An output's exit code, stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` to its end like `Command::output`, but kills it after `limit` and fails the test naming it.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pump = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = pump(Box::new(child.stdout.take().expect("piped stdout")));
    let err = pump(Box::new(child.stderr.take().expect("piped stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// A fresh simulated FreeBSD host in a temporary directory, with Warden's state directory beside it.
pub struct FakeBsdHost {
    /// The temporary directory; everything of this host is under it and goes with it.
    pub dir: tempfile::TempDir,
    bastille_version: Option<String>,
}

impl FakeBsdHost {
    /// A fresh host with fakebsd's default Bastille version.
    pub fn fresh() -> FakeBsdHost {
        FakeBsdHost::with_bastille(None)
    }

    /// A fresh host whose Bastille reports `version` (`fakebsd init --bastille-version`).
    pub fn with_bastille(version: Option<&str>) -> FakeBsdHost {
        let fakebsd = fakebsd_bin();
        let h = FakeBsdHost {
            dir: tempfile::tempdir().expect("a temporary directory"),
            bastille_version: version.map(str::to_string),
        };
        for d in ["bin", "fake", "warden"] {
            std::fs::create_dir_all(h.p(d)).expect("the host's directories");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(h.p("warden"), std::fs::Permissions::from_mode(0o700))
            .expect("chmod the state directory");
        let out = output_within(
            Command::new(&fakebsd).arg("install").arg(h.p("bin")),
            TOOL_LIMIT,
        );
        assert!(out.status.success(), "fakebsd install: {}", text(&out));
        let mut init = h.tool_cmd(&["fakebsd", "init"]);
        if let Some(v) = version {
            init.args(["--bastille-version", v]);
        }
        let out = output_within(&mut init, TOOL_LIMIT);
        assert!(out.status.success(), "fakebsd init: {}", text(&out));
        h
    }

    /// A second host in the state this one is in now (its whole directory copied): a test prepares a host once
    /// and starts several cases from it. Valid while no `warden` or daemon of this host runs.
    pub fn copy(&self) -> FakeBsdHost {
        let h = FakeBsdHost {
            dir: tempfile::tempdir().expect("a temporary directory"),
            bastille_version: self.bastille_version.clone(),
        };
        let out = output_within(
            Command::new("cp")
                .arg("-a")
                .arg(self.dir.path().join("."))
                .arg(h.dir.path()),
            TOOL_LIMIT,
        );
        assert!(out.status.success(), "cp -a of the host: {}", text(&out));
        h
    }

    /// A path under the host's temporary directory.
    pub fn p(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// `$FAKEBSD_STATE/root`: where the simulated host's files live.
    pub fn root(&self) -> PathBuf {
        self.p("fake").join("root")
    }

    /// Where the simulated host's absolute path `p` lives on this machine.
    pub fn path(&self, p: &str) -> PathBuf {
        self.root().join(p.trim_start_matches('/'))
    }

    /// Warden's state directory for this host.
    pub fn state_dir(&self) -> PathBuf {
        self.p("warden")
    }

    /// `program` with only the simulated host's environment.
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear();
        self.with_env(&mut c);
        c
    }

    /// Points `cmd` at the simulated host: fakebsd's tools first on PATH, its state, root and call log.
    pub fn with_env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        let path = format!(
            "{}:{}:{}",
            self.p("bin").display(),
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path)
            .env("FAKEBSD_STATE", self.p("fake"))
            .env("FAKEBSD_CALL_LOG", self.p("calls.log"))
            .env("WARDEN_HOST_ROOT", self.root());
        if let Some(v) = &self.bastille_version {
            cmd.env("FAKEBSD_BASTILLE_VERSION", v);
        }
        cmd
    }

    /// `warden --state-dir <this host's> ARGS`, ready to run (add env or spawn it).
    pub fn warden_cmd(&self, args: &[&str]) -> Command {
        let mut c = self.cmd(warden_bin());
        c.arg("--state-dir").arg(self.state_dir()).args(args);
        c
    }

    /// Runs `warden ARGS` against this host.
    pub fn warden(&self, args: &[&str]) -> Output {
        output_within(&mut self.warden_cmd(args), WARDEN_LIMIT)
    }

    /// Runs `warden ARGS` with extra environment.
    pub fn warden_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut c = self.warden_cmd(args);
        c.envs(env.iter().copied());
        output_within(&mut c, WARDEN_LIMIT)
    }

    /// Runs `warden ARGS` and fails the test unless it succeeds.
    pub fn warden_ok(&self, args: &[&str]) -> Output {
        let out = self.warden(args);
        assert!(out.status.success(), "warden {args:?}: {}", text(&out));
        out
    }

    /// One of fakebsd's tools (`argv[0]`: bastille, zfs, jls, …, or fakebsd itself) as a command.
    pub fn tool_cmd(&self, argv: &[&str]) -> Command {
        let mut c = self.cmd(self.p("bin").join(argv[0]));
        c.args(&argv[1..]);
        c
    }

    /// Runs one of fakebsd's tools on the simulated host.
    pub fn tool(&self, argv: &[&str]) -> Output {
        output_within(&mut self.tool_cmd(argv), TOOL_LIMIT)
    }

    /// `fakebsd state`: the whole simulated host as JSON.
    pub fn state(&self) -> serde_json::Value {
        let out = self.tool(&["fakebsd", "state"]);
        assert!(out.status.success(), "fakebsd state: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("fakebsd state prints JSON")
    }

    /// What a `warden teardown --keep-data` must not leave on this host, one line each (empty when clean): the
    /// bridge, Warden's rc.conf keys, dnsmasq.conf, pf.conf, the rc.d script, the hosts block, a service jail;
    /// and the kept db jail, which must be there and stopped.
    pub fn teardown_residue(&self) -> Vec<String> {
        let mut left = Vec::new();
        if self.tool(&["ifconfig", "warden0"]).status.success() {
            left.push("the bridge warden0".to_string());
        }
        // Gone from /etc/rc.conf: at most the defaults' value is left (pf_enable="NO").
        for var in [
            "dnsmasq_enable",
            "pf_enable",
            "gateway_enable",
            "warden_enable",
        ] {
            let out = self.tool(&["sysrc", "-n", var]);
            if String::from_utf8_lossy(&out.stdout).trim() == "YES" {
                left.push(format!("{var}=YES in rc.conf"));
            }
        }
        let rc = std::fs::read_to_string(self.path("/etc/rc.conf")).unwrap_or_default();
        if rc.contains("warden0") || rc.contains("dnsmasq") {
            left.push(format!("warden0 or dnsmasq in rc.conf: {rc}"));
        }
        for gone in [
            "/usr/local/etc/dnsmasq.conf",
            "/etc/pf.conf",
            "/usr/local/etc/rc.d/warden",
            "/usr/local/bastille/jails/clawdiegit",
        ] {
            if self.path(gone).exists() {
                left.push(gone.to_string());
            }
        }
        let hosts = std::fs::read_to_string(self.path("/etc/hosts")).unwrap_or_default();
        if hosts.contains("warden managed block") {
            left.push(format!("the managed block of /etc/hosts: {hosts}"));
        }
        if !self.path("/usr/local/bastille/jails/clawdiedb").is_dir() {
            left.push("the kept db jail clawdiedb is gone".to_string());
        }
        if self
            .tool(&["jls", "-j", "clawdiedb", "jid"])
            .status
            .success()
        {
            left.push("the db jail clawdiedb still runs".to_string());
        }
        left
    }

    /// The host tool calls made so far, one line each (`TOOL ARGS…`), from fakebsd's call log.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.p("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}
