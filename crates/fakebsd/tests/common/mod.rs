//! Shared plumbing of the fakebsd tests: a fresh simulated host per test, driven through the
//! installed tool symlinks.
// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

use warden_testkit::fakebsd::{output_within, TOOL_LIMIT};
use warden_testkit::FakeBsdHost;

/// What one tool call returned.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A simulated host (warden-testkit's `FakeBsdHost`), gone when the test drops it.
pub struct Host {
    /// The host: its directory, environment and tool links.
    pub h: FakeBsdHost,
    /// `Some` runs the tools as that uid instead of root.
    pub uid: Option<&'static str>,
}

/// bastille.conf as the seeds write it.
pub const CONF: &str = r#"bastille_prefix="/usr/local/bastille"
bastille_backupsdir="${bastille_prefix}/backups"
bastille_cachedir="${bastille_prefix}/cache"
bastille_jailsdir="${bastille_prefix}/jails"
bastille_releasesdir="${bastille_prefix}/releases"
bastille_templatesdir="${bastille_prefix}/templates"
bastille_logsdir="/var/log/bastille"
bastille_pf_conf="/etc/pf.conf"
bastille_sharedir="/usr/local/share/bastille"
bastille_tzdata="Europe/Ljubljana"
bastille_resolv_conf="/etc/resolv.conf"
bastille_zfs_enable="YES"
bastille_zfs_zpool="zroot"
bastille_zfs_prefix="clawdie-runtime"
bastille_zfs_options="-o compress=on -o atime=off"
## Networking
bastille_network_vnet_type="if_bridge"
bastille_network_loopback="clawdie0"
bastille_network_pf_ext_if="ext_if"
bastille_network_pf_table="clawdie_jails"
bastille_network_shared=""
bastille_network_gateway=""
"#;

impl Host {
    /// A fresh host (warden-testkit's) for that Bastille version.
    pub fn with_version(version: &'static str) -> Host {
        let h = Host {
            h: FakeBsdHost::with_bastille(Some(version)),
            uid: None,
        };
        // A fresh host has no packages; these tests start where Bastille and dnsmasq are installed.
        let o = h.run("pkg", &["install", "-y", "bastille", "dnsmasq"]);
        assert_eq!(o.code, 0, "pkg install: {}", o.stderr);
        h
    }

    /// A freshly initialised host with Bastille 1.4.4.
    pub fn new() -> Host {
        Host::with_version("1.4.4")
    }

    /// The tool's command with only this host's environment (its state, tool links, Bastille version).
    pub fn cmd(&self, tool: &str, args: &[&str]) -> Command {
        let mut argv = vec![tool];
        argv.extend_from_slice(args);
        let mut c = self.h.tool_cmd(&argv);
        c.stdin(Stdio::null());
        if let Some(u) = self.uid {
            c.env("FAKEBSD_UID", u);
        }
        c
    }

    /// Runs a tool and captures what it returned.
    pub fn run(&self, tool: &str, args: &[&str]) -> Out {
        let o = output_within(&mut self.cmd(tool, args), TOOL_LIMIT);
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs and asserts exit 0.
    pub fn ok(&self, tool: &str, args: &[&str]) -> Out {
        let o = self.run(tool, args);
        assert_eq!(
            o.code, 0,
            "{tool} {args:?}\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        );
        o
    }

    /// Where a path of the simulated host lives on this machine.
    pub fn path(&self, p: &str) -> PathBuf {
        self.h.path(p)
    }

    /// Writes a file of the simulated host, creating its directories.
    pub fn write(&self, p: &str, text: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// Reads a file of the simulated host.
    pub fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("read {p}: {e}"))
    }

    /// Writes /usr/local/etc/bastille/bastille.conf.
    pub fn write_conf(&self, text: &str) {
        self.write("/usr/local/etc/bastille/bastille.conf", text);
    }

    /// The seeds' bridge: warden0 through rc.conf and `service netif cloneup`.
    pub fn bridge(&self) {
        self.ok("sysrc", &["cloned_interfaces=bridge0"]);
        self.ok("sysrc", &["ifconfig_bridge0_name=warden0"]);
        self.ok("sysrc", &["ifconfig_warden0=inet 10.0.1.1/24"]);
        self.ok("service", &["netif", "cloneup"]);
    }

    /// The seeds' git jail: thin, VNET on warden0 at 10.0.1.2.
    pub fn create_git(&self) -> Out {
        self.ok(
            "bastille",
            &[
                "create",
                "-B",
                "-g",
                "10.0.1.1",
                "clawdiegit",
                "15.0-RELEASE",
                "10.0.1.2/24",
                "warden0",
            ],
        )
    }

    /// The seeds' db jail: thick, VNET on warden0 at 10.0.1.5.
    pub fn create_db(&self) -> Out {
        self.ok(
            "bastille",
            &[
                "create",
                "-T",
                "-B",
                "-g",
                "10.0.1.1",
                "clawdiedb",
                "15.0-RELEASE",
                "10.0.1.5/24",
                "warden0",
            ],
        )
    }
}
