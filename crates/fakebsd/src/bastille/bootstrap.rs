//! `bastille bootstrap [-p] RELEASE` (reference/bastille.md §3 bootstrap, §1.7): no download — the
//! release tree is synthesised (COPYRIGHT, `bin/freebsd-version`, /etc, rc.d scripts, a crontab).

use super::{yes, Bx, Version};
use crate::fsutil::{write_exec, write_file};
use crate::opts::{Spec, GETOPT};

/// Patch level the synthesised releases report (unverified: real ones vary).
const PATCH: &str = "p2";

fn usage(b: &mut Bx) -> i32 {
    b.error_notify("Usage: bastille bootstrap [option(s)] RELEASE");
    b.error_notify("                                      TEMPLATE");
    b.io.out("\n    Options:\n\n    -p | --pkgbase          Bootstrap using pkgbase (15.0-RELEASE and above).\n    -u | --update           Update the release after bootstrap.\n");
    1
}

/// `bastille bootstrap`.
pub fn run(b: &mut Bx, args: &[String]) -> i32 {
    // bootstrap.sh's case takes options and the release in any order, and `-i386` as one word.
    const SPEC: Spec = Spec {
        tool: "bastille",
        flags: "hpux",
        long: &["help:h", "pkgbase:p", "update:u", "i386", "debug:x"],
        permute: true,
        ..GETOPT
    };
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if a == "-i386" {
                "--i386".into()
            } else {
                a.clone()
            }
        })
        .collect();
    let p = match b.parse_opts(SPEC, &args, &[]) {
        Ok(p) => p,
        Err(c) => return c,
    };
    if p.has("h") || p.operands.iter().any(|a| a == "help") {
        return usage(b);
    }
    let pkgbase = p.has("p");
    let rest = p.operands;
    let Some(arg) = rest.first().cloned() else {
        return usage(b);
    };
    if let Err(c) = b.root_check() {
        return c;
    }
    if let Err(c) = check_zfs(b) {
        return c;
    }
    let (release, pkgbase) = match release_name(b, &arg, pkgbase) {
        Ok(r) => r,
        Err(c) => return c,
    };
    directories(b, &release);
    let rel_dir = b.p(&format!("{}/{release}", b.conf.releasesdir()));
    if rel_dir.join("COPYRIGHT").is_file() {
        b.info("\nBootstrap appears complete!\n");
        return 0;
    }
    if let Err(e) = synthesise(&rel_dir, &release, pkgbase) {
        b.io.err(&e.to_string());
        return b.error_exit("[ERROR]: Bootstrap failed!");
    }
    b.info(if b.v == Version::V132 {
        "\nBootstrap successful."
    } else {
        "\nBootstrap successful!"
    });
    0
}

/// The ZFS settings bootstrap needs, with its interactive trap (§3 bootstrap): stdin /dev/null answers ""
/// and the run ends with exit 1.
fn check_zfs(b: &mut Bx) -> Result<(), i32> {
    let host_zfs = crate::sysrc::get_var(
        &[
            b.p("/etc/defaults/rc.conf"),
            b.p("/etc/rc.conf"),
            b.p("/etc/rc.conf.local"),
        ],
        "zfs_enable",
    );
    if host_zfs.as_deref() == Some("YES") && !yes(&b.conf.get("bastille_zfs_enable")) {
        b.warn("ZFS is enabled in rc.conf but not bastille.conf. Do you want to continue? (N|y)");
        let answer = b.ask("");
        if !matches!(answer.as_str(), "yes" | "Yes" | "y" | "Y") {
            return Err(b.error_exit("[ERROR]: Missing ZFS parameters. See bastille_zfs_enable."));
        }
    }
    if yes(&b.conf.get("bastille_zfs_enable")) {
        let pool = b.conf.get("bastille_zfs_zpool");
        if pool.is_empty() {
            return Err(b.error_exit("[ERROR]: Missing ZFS parameters. See bastille_zfs_zpool."));
        }
        if b.conf.get("bastille_zfs_prefix").is_empty() {
            return Err(b.error_exit("[ERROR]: Missing ZFS parameters. See bastille_zfs_prefix."));
        }
        if !crate::zfs::exists(b.cx, &pool) {
            return Err(b.error_exit(&format!("[ERROR]: {pool} is not a ZFS pool.")));
        }
    }
    Ok(())
}

/// The release named by `arg` (upper-cased) and whether it is bootstrapped with pkgbase (`-p`, or 16+).
fn release_name(b: &mut Bx, arg: &str, pkgbase: bool) -> Result<(String, bool), i32> {
    if arg.starts_with("http") || arg.starts_with("git@") {
        return Err(
            b.error_exit("[ERROR]: fakebsd does not simulate template bootstrap (no network).")
        );
    }
    let up = arg.to_ascii_uppercase();
    let major: u32 = up
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let valid = up.ends_with("-RELEASE")
        || up.ends_with("-STABLE")
        || up.ends_with("-CURRENT")
        || up.contains("-RC")
        || up.contains("-BETA");
    if major == 0 || !valid || !up.contains('.') {
        b.error_notify(&format!("Unknown Release: {arg}"));
        return Err(usage(b));
    }
    if pkgbase && major <= 14 {
        return Err(b.error_exit(&format!(
            "[ERROR]: Pkgbase is not supported for release: {up}"
        )));
    }
    Ok((up, pkgbase || major >= 16))
}

/// bootstrap_directories (§1.7): the datasets (ZFS) and directories, the prefix at mode 0750.
fn directories(b: &mut Bx, release: &str) {
    let prefix = b.conf.get("bastille_prefix");
    if b.conf.zfs() {
        let base = b.conf.zfs_base();
        let opts = super::zfs_props(&b.conf.get("bastille_zfs_options"));
        let mk = |b: &mut Bx, ds: String, extra: Vec<(String, String)>| {
            if !crate::zfs::exists(b.cx, &ds) {
                let mut props = opts.clone();
                props.extend(extra);
                if let Err(e) = crate::zfs::create(b.cx, &ds, true, &props) {
                    b.io.err(&e);
                }
            }
        };
        mk(b, base.clone(), vec![("mountpoint".into(), prefix.clone())]);
        for sub in ["backups", "cache", "jails", "templates", "releases"] {
            mk(b, format!("{base}/{sub}"), vec![]);
        }
        if b.v == Version::Master {
            mk(b, format!("{base}/volumes"), vec![]);
        }
        mk(
            b,
            format!("{base}/logs"),
            vec![("mountpoint".into(), b.conf.get("bastille_logsdir"))],
        );
        mk(b, format!("{base}/cache/{release}"), vec![]);
        mk(b, format!("{base}/releases/{release}"), vec![]);
    }
    for d in [
        "bastille_prefix",
        "bastille_backupsdir",
        "bastille_cachedir",
        "bastille_jailsdir",
        "bastille_logsdir",
        "bastille_templatesdir",
        "bastille_releasesdir",
    ] {
        let v = b.conf.get(d);
        if !v.is_empty() {
            let _ = std::fs::create_dir_all(b.p(&v));
        }
    }
    if !prefix.is_empty() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(b.p(&prefix), std::fs::Permissions::from_mode(0o750));
    }
}

/// FreeBSD 15's base /etc/passwd (from memory: the list and ids are standard, GECOS approximate).
const BASE_PASSWD: &str = "root:*:0:0:Charlie &:/root:/bin/sh
toor:*:0:0:Bourne-again Superuser:/root:
daemon:*:1:1:Owner of many system processes:/root:/usr/sbin/nologin
operator:*:2:5:System &:/:/usr/sbin/nologin
bin:*:3:7:Binaries Commands and Source:/:/usr/sbin/nologin
tty:*:4:65533:Tty Sandbox:/:/usr/sbin/nologin
kmem:*:5:65533:KMem Sandbox:/:/usr/sbin/nologin
games:*:7:13:Games pseudo-user:/:/usr/sbin/nologin
news:*:8:8:News Subsystem:/:/usr/sbin/nologin
man:*:9:9:Mister Man Pages:/usr/share/man:/usr/sbin/nologin
sshd:*:22:22:Secure Shell Daemon:/var/empty:/usr/sbin/nologin
smmsp:*:25:25:Sendmail Submission User:/var/spool/clientmqueue:/usr/sbin/nologin
mailnull:*:26:26:Sendmail Default User:/var/spool/mqueue:/usr/sbin/nologin
bind:*:53:53:Bind Sandbox:/:/usr/sbin/nologin
unbound:*:59:59:Unbound DNS Resolver:/var/unbound:/usr/sbin/nologin
proxy:*:62:62:Packet Filter pseudo-user:/nonexistent:/usr/sbin/nologin
_pflogd:*:64:64:pflogd privsep user:/var/empty:/usr/sbin/nologin
_dhcp:*:65:65:dhcp programs:/var/empty:/usr/sbin/nologin
uucp:*:66:66:UUCP pseudo-user:/var/spool/uucppublic:/usr/local/libexec/uucp/uucico
pop:*:68:6:Post Office Owner:/nonexistent:/usr/sbin/nologin
auditdistd:*:78:77:Auditdistd unprivileged user:/var/empty:/usr/sbin/nologin
www:*:80:80:World Wide Web Owner:/nonexistent:/usr/sbin/nologin
ntpd:*:123:123:NTP Daemon:/var/db/ntp:/usr/sbin/nologin
_ypldap:*:160:160:YP LDAP unprivileged user:/var/empty:/usr/sbin/nologin
hast:*:845:845:HAST unprivileged user:/var/empty:/usr/sbin/nologin
tests:*:977:977:Unprivileged user for tests:/nonexistent:/usr/sbin/nologin
nobody:*:65534:65534:Unprivileged user:/nonexistent:/usr/sbin/nologin
";

/// FreeBSD 15's base /etc/group (from memory).
const BASE_GROUP: &str = "wheel:*:0:root
daemon:*:1:
kmem:*:2:
sys:*:3:
tty:*:4:
operator:*:5:root
mail:*:6:
bin:*:7:
news:*:8:
man:*:9:
games:*:13:
ftp:*:14:
staff:*:20:
sshd:*:22:
smmsp:*:25:
mailnull:*:26:
guest:*:31:
video:*:44:
realtime:*:47:
bind:*:53:
unbound:*:59:
proxy:*:62:
authpf:*:63:
_pflogd:*:64:
_dhcp:*:65:
uucp:*:66:
dialer:*:68:
network:*:69:
audit:*:77:
www:*:80:
ntpd:*:123:
_ypldap:*:160:
hast:*:845:
tests:*:977:
nogroup:*:65533:
nobody:*:65534:
";

fn synthesise(dir: &std::path::Path, release: &str, pkgbase: bool) -> std::io::Result<()> {
    let version = format!("{release}-{PATCH}");
    write_file(
        &dir.join("COPYRIGHT"),
        "Copyright (c) 1992-2025 The FreeBSD Project.\n",
    )?;
    write_exec(
        &dir.join("bin/freebsd-version"),
        &format!("#!/bin/sh\nUSERLAND_VERSION=\"{version}\"\necho \"$USERLAND_VERSION\"\n"),
    )?;
    for d in [
        "boot",
        "lib",
        "libexec",
        "rescue",
        "sbin",
        "usr/bin",
        "usr/include",
        "usr/lib",
        "usr/lib32",
        "usr/libdata",
        "usr/libexec",
        "usr/sbin",
        "usr/share/zoneinfo",
        "usr/src",
        "usr/obj",
        "usr/tests",
        "dev",
        "media",
        "mnt",
        "net",
        "proc",
        "root",
        "tmp",
        "var/db",
        "var/log",
        "var/run",
        "etc/rc.d",
        "etc/defaults",
    ] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    write_file(&dir.join(".cshrc"), "# .cshrc\n")?;
    write_file(&dir.join(".profile"), "# .profile\n")?;
    write_file(&dir.join("etc/passwd"), BASE_PASSWD)?;
    write_file(&dir.join("etc/group"), BASE_GROUP)?;
    write_file(
        &dir.join("etc/crontab"),
        "SHELL=/bin/sh\n1,31\t0-5\t*\t*\t*\troot\tadjkerntz -a\n",
    )?;
    write_file(&dir.join("etc/defaults/rc.conf"), "hostname=\"\"\nsyslogd_flags=\"-s\"\nsendmail_enable=\"NO\"\ncron_flags=\"\"\ndefaultrouter=\"NO\"\nifconfig_lo0=\"inet 127.0.0.1\"\nsshd_enable=\"NO\"\n")?;
    for s in ["netif", "sshd", "cron", "syslogd", "sendmail", "routing"] {
        write_exec(
            &dir.join(format!("etc/rc.d/{s}")),
            "#!/bin/sh\n# simulated by fakebsd\n",
        )?;
    }
    if pkgbase {
        write_file(&dir.join("var/db/pkg/local.sqlite"), "")?;
    } else {
        write_file(&dir.join("root/.hushlogin"), "")?;
    }
    Ok(())
}
