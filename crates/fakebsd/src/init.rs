//! `fakebsd install DIR` and `fakebsd init`: the tool symlinks and a fresh simulated host.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::fsutil::{write_exec, write_file};
use crate::state::{self, Ctx, IfKind, Iface, Inet, Route, State};

/// Creates `dir` and links every tool name in it to this binary.
pub fn install(dir: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for t in state::TOOLS.iter().chain(["fakebsd"].iter()) {
        let link = dir.join(t);
        let _ = fs::remove_file(&link);
        symlink(&exe, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    }
    Ok(())
}

const DEFAULTS_RC_CONF: &str = r#"# Subset of FreeBSD 15's /etc/defaults/rc.conf (what sysrc needs to know a variable exists).
rc_conf_files="/etc/rc.conf /etc/rc.conf.local"
zfs_enable="NO"
gateway_enable="NO"
ipv6_gateway_enable="NO"
hostname=""
ifconfig_lo0="inet 127.0.0.1"
cloned_interfaces=""
defaultrouter="NO"
ipv6_defaultrouter="NO"
pf_enable="NO"
pf_rules="/etc/pf.conf"
pf_flags=""
pflog_enable="NO"
sshd_enable="NO"
syslogd_enable="YES"
syslogd_flags="-s"
sendmail_enable="NO"
sendmail_submit_enable="YES"
sendmail_outbound_enable="YES"
sendmail_msp_queue_enable="YES"
cron_enable="YES"
cron_flags=""
jail_enable="NO"
jail_list=""
devfs_rulesets="/etc/defaults/devfs.rules /etc/devfs.rules"
"#;

const HOST_RC_CONF: &str = r#"hostname="fakebsd"
ifconfig_vtnet0="DHCP"
sshd_enable="YES"
zfs_enable="YES"
"#;

/// Resets `$FAKEBSD_STATE` to a fresh host (§ the brief): zroot, lo0 + vtnet0 with a default route,
/// no bridge, forwarding 0, pf not loaded, `kern.racct.enable` 0, and no packages: neither Bastille nor
/// dnsmasq is installed (`pkg install bastille dnsmasq` brings them).
pub fn init(version: Option<String>) -> Result<(), String> {
    let dir = state::state_dir()?;
    fs::create_dir_all(&dir).map_err(|e| format!("fakebsd: {}: {e}", dir.display()))?;
    let lock = fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join("lock"))
        .map_err(|e| format!("fakebsd: lock: {e}"))?;
    lock.lock().map_err(|e| format!("fakebsd: lock: {e}"))?;
    for sub in ["root", "zfs-snapshots", "bin"] {
        crate::fsutil::remove_any(&dir.join(sub))
            .map_err(|e| format!("fakebsd: reset {sub}: {e}"))?;
    }
    install(&dir.join("bin"))?;
    let version = version
        .or_else(|| std::env::var("FAKEBSD_BASTILLE_VERSION").ok())
        .unwrap_or_else(|| "1.4.4".to_string());
    if !["1.3.2", "1.4.4", "master"].contains(&version.as_str()) {
        return Err(format!(
            "fakebsd: unknown Bastille version '{version}' (1.3.2, 1.4.4 or master)"
        ));
    }
    let mut st = State {
        bastille_version: version,
        datasets: crate::zfs::initial_datasets(),
        sysctls: crate::sysctl::initial(),
        kmods: BTreeSet::from(["zfs".to_string()]),
        next_pid: 0,
        ..State::default()
    };
    let mut lo0 = Iface::new(IfKind::Loopback, 0, String::new());
    lo0.up = true;
    lo0.inet.push(Inet {
        addr: [127, 0, 0, 1].into(),
        prefix: 8,
    });
    lo0.inet6.push("::1/128".into());
    let mut vtnet0 = Iface::new(IfKind::Ether, 0, "58:9c:fc:0a:0b:0c".into());
    vtnet0.up = true;
    vtnet0.inet.push(Inet {
        addr: [10, 0, 2, 15].into(),
        prefix: 24,
    });
    st.interfaces.insert("lo0".into(), lo0);
    st.interfaces.insert("vtnet0".into(), vtnet0);
    st.default_route = Some(Route {
        gateway: "10.0.2.2".into(),
        interface: "vtnet0".into(),
    });
    let cx = Ctx::fresh(dir, st, lock);
    let root = cx.root();
    let w = |p: &str, text: &str| {
        write_file(&root.join(p.trim_start_matches('/')), text)
            .map_err(|e| format!("fakebsd: {p}: {e}"))
    };
    w("/etc/defaults/rc.conf", DEFAULTS_RC_CONF)?;
    w("/etc/rc.conf", HOST_RC_CONF)?;
    w("/etc/resolv.conf", "nameserver 10.0.2.3\n")?;
    w(
        "/etc/hosts",
        "::1\t\t\tlocalhost localhost.my.domain\n127.0.0.1\t\tlocalhost localhost.my.domain\n",
    )?;
    w(
        "/etc/defaults/devfs.rules",
        "[devfsrules_jail=4]\nadd include $devfsrules_hide_all\n",
    )?;
    w("/var/db/zoneinfo", "Europe/Ljubljana\n")?;
    w("/boot/loader.conf", "zfs_load=\"YES\"\n")?;
    // Packages (Bastille, dnsmasq) come with `pkg install`, as on a stock FreeBSD host.
    for s in crate::service::HOST_SCRIPTS
        .iter()
        .filter(|s| !s.starts_with("/usr/local/"))
    {
        write_exec(
            &root.join(s.trim_start_matches('/')),
            "#!/bin/sh\n# simulated by fakebsd\n",
        )
        .map_err(|e| format!("fakebsd: {s}: {e}"))?;
    }
    for d in [
        "/zroot",
        "/tmp",
        "/home",
        "/var/run",
        "/var/log",
        "/usr/local/bin",
    ] {
        fs::create_dir_all(root.join(d.trim_start_matches('/')))
            .map_err(|e| format!("fakebsd: {d}: {e}"))?;
    }
    cx.save()
}
