//! Runs the built `fakebsd` through its tool symlinks against a fresh simulated host per test.

mod common;

use std::path::Path;

use common::{Host, CONF};

const PF_CONF: &str = r#"ext_if = "vtnet0"
warden_net = "10.0.1.0/24"
set skip on lo
table <clawdie_jails> persist
nat on $ext_if from $warden_net to any -> ($ext_if)
rdr-anchor "rdr/*"
pass quick on warden0 inet from $warden_net to any keep state
anchor "bastille/*"
"#;

const GIT_JAIL_CONF: &str = r#"clawdiegit {
  enforce_statfs = 2;
  devfs_ruleset = 13;
  exec.clean;
  exec.consolelog = /var/log/bastille/clawdiegit_console.log;
  exec.start = '/bin/sh /etc/rc';
  exec.stop = '/bin/sh /etc/rc.shutdown';
  host.hostname = clawdiegit;
  mount.devfs;
  mount.fstab = /usr/local/bastille/jails/clawdiegit/fstab;
  path = /usr/local/bastille/jails/clawdiegit/root;
  securelevel = 2;
  osrelease = "15.0-RELEASE-p2";

  vnet;
  vnet.interface = e0b_clawdiegit;
  exec.prestart += "epair0=\$(ifconfig epair create) && ifconfig \${epair0} up name e0a_clawdiegit && ifconfig \${epair0%a}b up name e0b_clawdiegit";
  exec.prestart += "ifconfig warden0 addm e0a_clawdiegit";
  exec.prestart += "ifconfig e0a_clawdiegit description \"vnet0 host interface for Bastille jail clawdiegit\"";
  exec.poststop += "ifconfig e0a_clawdiegit destroy";
}
"#;

impl Host {
    /// The seeds' host steps: bastille.conf, warden0 via rc.conf + cloneup, forwarding, pf, bootstrap.
    fn ready(version: &'static str) -> Host {
        let h = Host::with_version(version);
        h.write_conf(CONF);
        h.bridge();
        h.ok("sysctl", &["net.inet.ip.forwarding=1"]);
        h.write("/etc/pf.conf", PF_CONF);
        h.ok("kldload", &["pf"]);
        h.ok("pfctl", &["-f", "/etc/pf.conf"]);
        h.ok("pfctl", &["-e"]);
        h.ok("bastille", &["bootstrap", "-p", "15.0-RELEASE"]);
        h
    }
}

fn exists(p: &Path) -> bool {
    p.exists()
}

#[test]
fn seed_flow_from_a_fresh_host() {
    let h = Host::ready("1.4.4");
    assert_eq!(
        h.ok("sysctl", &["-n", "net.inet.ip.forwarding"]).stdout,
        "1\n"
    );
    let ifc = h.ok("ifconfig", &["-f", "inet:cidr", "warden0"]).stdout;
    assert!(
        ifc.contains("\tinet 10.0.1.1/24 broadcast 10.0.1.255\n"),
        "{ifc}"
    );
    assert!(h.ok("ifconfig", &["-g", "bridge"]).stdout == "warden0\n");
    assert!(h
        .ok("pfctl", &["-si"])
        .stdout
        .starts_with("Status: Enabled"));
    assert!(h
        .ok("pfctl", &["-sn"])
        .stdout
        .contains("rdr-anchor \"rdr/*\""));
    assert!(h
        .ok("pfctl", &["-sr"])
        .stdout
        .contains("anchor \"bastille/*\""));
    assert_eq!(
        h.ok("bastille", &["list", "releases", "-p"]).stdout,
        "15.0-RELEASE-p2\n"
    );

    h.create_git();
    assert_eq!(
        h.read("/usr/local/bastille/jails/clawdiegit/jail.conf"),
        GIT_JAIL_CONF
    );
    assert_eq!(
        h.read("/usr/local/bastille/jails/clawdiegit/fstab"),
        "/usr/local/bastille/releases/15.0-RELEASE /usr/local/bastille/jails/clawdiegit/root/.bastille nullfs ro 0 0\n"
    );
    let rc = h.read("/usr/local/bastille/jails/clawdiegit/root/etc/rc.conf");
    assert!(rc.starts_with("ifconfig_e0b_clawdiegit_name=\"vnet0\"\nifconfig_vnet0=\"inet 10.0.1.2/24\"\nifconfig_vnet0_descr=\"jail interface for warden0\"\nifconfig_vnet0_ipv6=\"\"\ndefaultrouter=\"10.0.1.1\"\nipv6_defaultrouter=\"NO\"\n"), "{rc}");
    let settings = h.read("/usr/local/bastille/jails/clawdiegit/settings.conf");
    assert_eq!(settings, "boot=\"on\"\ndepend=\"\"\npriority=\"99\"\n");
    let br = h.ok("ifconfig", &["warden0"]).stdout;
    assert!(
        br.contains("\tmember: e0a_clawdiegit flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>\n"),
        "{br}"
    );
    assert!(
        !h.ok("ifconfig", &["-l"]).stdout.contains("e0b_clawdiegit"),
        "jail side lives in the jail"
    );

    // Thick db jail: zfs send|receive, so no .bastille line.
    h.create_db();
    assert_eq!(h.read("/usr/local/bastille/jails/clawdiedb/fstab"), "");
    assert!(exists(
        &h.path("/usr/local/bastille/jails/clawdiedb/root/COPYRIGHT")
    ));
    let zl = h
        .ok(
            "zfs",
            &[
                "list",
                "-Hp",
                "-o",
                "name,origin",
                "-r",
                "zroot/clawdie-runtime/jails",
            ],
        )
        .stdout;
    assert!(
        zl.contains("zroot/clawdie-runtime/jails/clawdiedb/root\t-\n"),
        "{zl}"
    );
    assert!(
        !h.ok("zfs", &["list", "-H", "-t", "snapshot", "-o", "name"])
            .stdout
            .contains("bastille-"),
        "temporary snapshots are gone"
    );

    let js = h.ok("jls", &["--libxo", "json", "-v"]).stdout;
    let v: serde_json::Value = serde_json::from_str(&js).expect("valid json");
    let jails = v["jail-information"]["jail"].as_array().expect("array");
    assert_eq!(jails.len(), 2);
    assert!(js.contains("\"hostname\":\"clawdiegit\",\"path\":\"/usr/local/bastille/jails/clawdiegit/root\",\"name\":\"clawdiegit\",\"state\":\"ACTIVE\""), "{js}");
    assert_eq!(jails[0]["ipv4_addrs"], serde_json::json!([]));
    let jid = h.ok("jls", &["-j", "clawdiegit", "jid"]).stdout;
    assert!(jid.trim().parse::<u32>().is_ok());

    let out = h.run(
        "jexec",
        &[
            "-l",
            "-U",
            "root",
            "clawdiegit",
            "/bin/sh",
            "-c",
            "echo $FAKEBSD_JAIL; pwd; sysrc -n defaultrouter; exit 7",
        ],
    );
    assert_eq!(out.code, 7);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "clawdiegit");
    assert!(lines[1].ends_with("/root/usr/local/bastille/jails/clawdiegit/root"));
    assert_eq!(lines[2], "10.0.1.1");

    let l = h.ok("bastille", &["list"]).stdout;
    assert!(l.starts_with(" JID  Name        Boot  Prio  State  Type   IP Address  Published Ports  Release          Tags\n"), "{l}");
    assert!(
        l.contains("clawdiedb   on    99    Up     thick  10.0.1.5"),
        "{l}"
    );
}

#[test]
fn a_closed_stdout_pipe_is_a_normal_end() {
    // `fakebsd state | head`: the reader is gone before the tool writes (read end closed first,
    // so the write surely meets EPIPE); the tool ends with 0 and says nothing.
    let h = Host::new();
    h.bridge();
    for (tool, args) in [("fakebsd", &["state"][..]), ("ifconfig", &[][..])] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let o = h.cmd(tool, args).stdout(writer).output().expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{tool} {args:?}: {err}");
        assert!(err.is_empty(), "{tool} {args:?}: {err}");
    }
}

#[test]
fn missing_state_env_fails_clearly() {
    let h = Host::new();
    let o = h
        .cmd("jls", &[])
        .env_remove("FAKEBSD_STATE")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("FAKEBSD_STATE is not set"));
}

#[test]
fn bastille_needs_its_config_first() {
    let h = Host::new();
    let o = h.run("bastille", &["-v"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stdout,
        "\n[ERROR]: No config file found!\nPlease run 'bastille setup' to configure Bastille.\n\n"
    );
    h.write_conf(CONF);
    let o = h.ok("bastille", &["-v"]);
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str()),
        ("", "1.4.4\n"),
        "1.4.4 logs info on stderr"
    );
}

#[test]
fn version_streams_differ() {
    for (v, out, err) in [
        ("1.3.2", "1.3.2.251225\n", ""),
        ("master", "master-040f8061\n", ""),
    ] {
        let h = Host::with_version(v);
        h.write_conf(CONF);
        let o = h.ok("bastille", &["-v"]);
        assert_eq!((o.stdout.as_str(), o.stderr.as_str()), (out, err));
    }
}

#[test]
fn missing_sharedir_and_bad_prefix_mode_fail() {
    let h = Host::new();
    h.write_conf(&CONF.replace("bastille_sharedir=\"/usr/local/share/bastille\"\n", ""));
    let o = h.run("bastille", &["list", "jails"]);
    assert_eq!((o.code, o.stderr.as_str()), (1, "/list.sh not found.\n"));
    let h = Host::new();
    h.write_conf(CONF);
    std::fs::create_dir_all(h.path("/usr/local/bastille")).expect("mkdir");
    let o = h.run("bastille", &["list"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        "Insecure permissions on /usr/local/bastille\nTry: chmod 0750 /usr/local/bastille\n"
    );
}

#[test]
fn create_refusals_match_bastille() {
    let h = Host::with_version("1.4.4");
    h.write_conf(CONF);
    // -B before the bridge exists.
    let o = h.run(
        "bastille",
        &[
            "create",
            "-B",
            "web",
            "15.0-RELEASE",
            "10.0.1.9/24",
            "warden0",
        ],
    );
    assert_eq!(
        (o.code, o.stderr.lines().last()),
        (1, Some("[ERROR]: Interface is not a bridge: warden0"))
    );
    assert_eq!(
        o.stdout, "\n",
        "1.4.x error_exit prints an empty stdout line"
    );
    let cases: &[(&[&str], &str)] = &[
        (&["create", "-B", "clawdie-git", "15.0-RELEASE", "10.0.1.2/24", "warden0"], "[ERROR]: VNET jail names may not contain (-|_) characters."),
        (&["create", "web.1", "15.0-RELEASE", "10.0.1.9"], "[ERROR]: Jail names may not contain special characters!"),
        (&["create", "-web", "15.0-RELEASE", "10.0.1.9"], "[ERROR]: Unknown Option: \"-web\""),
        (&["create", "_web", "15.0-RELEASE", "10.0.1.9"], "[ERROR]: Jail names may not begin with (-|_) characters!"),
        (&["create", "123", "15.0-RELEASE", "10.0.1.9"], "[ERROR]: Jail names may not contain only digits."),
        (&["create", "-Q", "web", "15.0-RELEASE", "10.0.1.9"], "[ERROR]: Unknown Option: \"-Q\""),
        (&["create", "-TQ", "web", "15.0-RELEASE", "10.0.1.9"], "[ERROR]: Unknown Option: \"-TQ\""),
        (&["create", "--nope", "web", "15.0-RELEASE", "10.0.1.9"], "[ERROR]: Unknown Option: \"--nope\""),
        (&["create", "--thick", "--clone", "web", "15.0-RELEASE", "10.0.1.9"], "[ERROR]: Clonejail and Thickjail can't be used together."),
        (&["create", "-p", "x", "web", "15.0-RELEASE", "10.0.1.9"], "Not a valid priority value: \"x\""),
        (&["create", "-TC", "web", "15.0-RELEASE", "10.0.1.9"], "[ERROR]: Clonejail and Thickjail can't be used together."),
        (&["create", "-VB", "web", "15.0-RELEASE", "10.0.1.9", "vtnet0"], "[ERROR]: Only one of [-V|--vnet], [-B|--bridge] or [-P|--passthrough] can be selected."),
        (&["create", "web", "15.0-RELEASE", "10.0.1.9"], "See 'bastille bootstrap'."),
    ];
    for (args, msg) in cases {
        let o = h.run("bastille", args);
        assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
        assert_eq!(o.stderr.lines().last(), Some(*msg), "{args:?}");
    }
    let o = h.run("bastille", &["create", "web", "15.0-RELEASE"]);
    assert_eq!(o.code, 1);
    assert!(o
        .stderr
        .contains("Usage: bastille create [option(s)] NAME RELEASE IP [INTERFACE]"));
    let o = h.run("bastille", &["create", "web", "banana", "10.0.1.9"]);
    assert!(o.stderr.contains("Unknown release: banana"));
}

#[test]
fn create_after_bootstrap_checks_ip_interface_and_duplicates() {
    let h = Host::ready("1.4.4");
    let o = h.run(
        "bastille",
        &[
            "create",
            "-B",
            "web",
            "15.0-RELEASE",
            "10.0.1.300/24",
            "warden0",
        ],
    );
    assert_eq!(
        (o.code, o.stderr.lines().last()),
        (1, Some("[ERROR]: Invalid IP: 10.0.1.300/24"))
    );
    let o = h.run(
        "bastille",
        &[
            "create",
            "-B",
            "web",
            "15.0-RELEASE",
            "10.0.1.3/40",
            "warden0",
        ],
    );
    assert_eq!(
        o.stderr.lines().last(),
        Some("[ERROR]: Invalid subnet: /40")
    );
    let o = h.run(
        "bastille",
        &["create", "web", "15.0-RELEASE", "10.0.1.3", "em9"],
    );
    assert_eq!(
        o.stderr.lines().last(),
        Some("[ERROR]: Invalid interface: em9")
    );
    let o = h.run(
        "bastille",
        &["create", "web", "15.0-RELEASE", "DHCP", "vtnet0"],
    );
    assert_eq!(
        o.stderr.lines().last(),
        Some("[ERROR]: Unsupported IP option for non-VNET jail: DHCP")
    );
    // VNET without a prefix gets /24.
    h.ok(
        "bastille",
        &[
            "create",
            "-BM",
            "-g",
            "10.0.1.1",
            "cms",
            "15.0-RELEASE",
            "10.0.1.3",
            "warden0",
        ],
    );
    assert!(h
        .read("/usr/local/bastille/jails/cms/root/etc/rc.conf")
        .contains("ifconfig_vnet0=\"inet 10.0.1.3/24\""));
    let o = h.run(
        "bastille",
        &["create", "-B", "cms", "15.0-RELEASE", "10.0.1.3", "warden0"],
    );
    assert_eq!(
        (o.code, o.stderr.lines().last()),
        (1, Some("[ERROR]: Jail already exists: cms"))
    );
    // Long names fall back to e0a_bastilleN.
    h.ok(
        "bastille",
        &[
            "create",
            "-B",
            "-g",
            "10.0.1.1",
            "workerlongname",
            "15.0-RELEASE",
            "10.0.1.101/24",
            "warden0",
        ],
    );
    let conf = h.read("/usr/local/bastille/jails/workerlongname/jail.conf");
    assert!(conf.contains("vnet.interface = e0b_bastille1;"), "{conf}");
    assert!(h
        .ok("ifconfig", &["-g", "epair"])
        .stdout
        .contains("e0a_bastille1"));
}

#[test]
fn shared_ip_jail_gets_alias_and_bare_address() {
    let h = Host::ready("1.4.4");
    h.ok(
        "bastille",
        &["create", "web", "15.0-RELEASE", "10.0.1.20/24", "warden0"],
    );
    let conf = h.read("/usr/local/bastille/jails/web/jail.conf");
    assert!(conf.contains("  devfs_ruleset = 4;\n"));
    assert!(
        conf.contains("\n  ip4.addr = warden0|10.0.1.20;\n  \n  ip6 = disable;\n}\n"),
        "{conf}"
    );
    let js = h.ok("jls", &["--libxo", "json"]).stdout;
    assert!(js.contains("\"ipv4\":\"10.0.1.20\""), "{js}");
    assert!(h
        .ok("ifconfig", &["warden0"])
        .stdout
        .contains("inet 10.0.1.20 netmask 0xffffffff"));
    h.ok("bastille", &["stop", "web"]);
    assert!(!h.ok("ifconfig", &["warden0"]).stdout.contains("10.0.1.20"));
}

#[test]
fn start_stop_destroy_semantics() {
    let h = Host::ready("1.4.4");
    h.create_git();
    let o = h.ok("bastille", &["start", "clawdiegit"]);
    assert!(o.stderr.contains("Jail is already running."));
    // Destroy without -y: prompt + invalid input on empty stdin, exit 1, nothing destroyed.
    let o = h.run("bastille", &["destroy", "-a", "clawdiegit"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr.lines().last(),
        Some("[ERROR]: Invalid input. Please answer 'y' or 'n'.")
    );
    assert!(h
        .path("/usr/local/bastille/jails/clawdiegit/jail.conf")
        .exists());
    // Running without -a: skipped, exit 0.
    let o = h.ok("bastille", &["destroy", "-y", "clawdiegit"]);
    assert!(o.stderr.contains("Jail is running."));
    h.ok("bastille", &["stop", "clawdiegit"]);
    assert!(h
        .ok("bastille", &["stop", "clawdiegit"])
        .stderr
        .contains("Jail is already stopped."));
    assert_eq!(
        h.run("jls", &["-j", "clawdiegit"]).stderr,
        "jls: jail \"clawdiegit\" not found\n"
    );
    assert!(
        !h.ok("ifconfig", &["-l"]).stdout.contains("e0a_clawdiegit"),
        "poststop destroyed the epair"
    );
    h.ok("bastille", &["start", "clawdiegit"]);
    // Fuzzy prefix target: "claw" resolves to clawdiegit (§4.2).
    h.ok("bastille", &["destroy", "-afy", "claw"]);
    assert!(!h.path("/usr/local/bastille/jails/clawdiegit").exists());
    assert_eq!(
        h.run("zfs", &["list", "zroot/clawdie-runtime/jails/clawdiegit"])
            .stderr,
        "cannot open 'zroot/clawdie-runtime/jails/clawdiegit': dataset does not exist\n"
    );
    let o = h.run("bastille", &["destroy", "-afy", "nothere"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "Jail not found \"nothere\"\n")
    );
    // Release with children cannot go; without them it can.
    h.create_git();
    let o = h.ok("bastille", &["destroy", "15.0-RELEASE"]);
    assert!(o
        .stderr
        .contains("[ERROR]: Cannot destroy base with child containers."));
}

#[test]
fn bootstrap_zfs_prompt_trap() {
    let h = Host::new();
    h.write_conf(&CONF.replace("bastille_zfs_enable=\"YES\"", "bastille_zfs_enable=\"NO\""));
    let o = h.run("bastille", &["bootstrap", "15.0-RELEASE"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains(
        "ZFS is enabled in rc.conf but not bastille.conf. Do you want to continue? (N|y)"
    ));
    assert_eq!(
        o.stderr.lines().last(),
        Some("[ERROR]: Missing ZFS parameters. See bastille_zfs_enable.")
    );
    let h = Host::new();
    h.write_conf(CONF);
    let o = h.run("bastille", &["bootstrap", "-p", "14.3-RELEASE"]);
    assert_eq!(
        o.stderr.lines().last(),
        Some("[ERROR]: Pkgbase is not supported for release: 14.3-RELEASE")
    );
    h.ok("bastille", &["bootstrap", "-p", "15.0-RELEASE"]);
    assert!(h
        .ok("bastille", &["bootstrap", "-p", "15.0-RELEASE"])
        .stderr
        .contains("Bootstrap appears complete!"));
    assert_eq!(
        h.read("/usr/local/bastille/releases/15.0-RELEASE/bin/freebsd-version")
            .lines()
            .nth(1),
        Some("USERLAND_VERSION=\"15.0-RELEASE-p2\"")
    );
}

#[test]
fn version_specific_jail_files() {
    let h = Host::ready("1.3.2");
    h.create_git();
    let conf = h.read("/usr/local/bastille/jails/clawdiegit/jail.conf");
    assert!(conf.contains("  osrelease = 15.0-RELEASE;\n"));
    // 1.3.x drops an explicit prefix (#1451).
    assert!(h
        .read("/usr/local/bastille/jails/clawdiegit/root/etc/rc.conf")
        .contains("ifconfig_vnet0=\"inet 10.0.1.2\"\n"));
    let h = Host::ready("master");
    h.create_git();
    let conf = h.read("/usr/local/bastille/jails/clawdiegit/jail.conf");
    assert!(conf.contains("exec.consolelog = /var/log/bastille/clawdiegit/console.log;"));
    assert_eq!(
        h.ok("bastille", &["list", "releases"]).stdout,
        "15.0-RELEASE (pkgbase)\n"
    );
    let o = h.run(
        "bastille",
        &["create", "-x", "web", "15.0-RELEASE", "10.0.1.9"],
    );
    assert_eq!(
        o.stderr.lines().last(),
        Some("[ERROR]: Unknown Option: \"-x\"")
    );
    assert!(h.ok("bastille", &["list"]).stdout.starts_with(
        " JID NAME       BOOT PRIO STATE TYPE IP ADDRESS PORTS RELEASE         TAGS\n"
    ));
}

#[test]
fn bastille_cmd_config_sysrc_service_zfs() {
    let h = Host::ready("1.4.4");
    h.create_git();
    let o = h.ok("bastille", &["cmd", "clawdiegit", "sh", "-c", "echo hi"]);
    assert!(o.stdout.contains("hi\n"));
    let o = h.run("bastille", &["cmd", "clawdiegit", "false"]);
    assert_eq!(
        (o.code, o.stderr.lines().last()),
        (1, Some("[ERROR]: Command failed on 1 jails."))
    );
    assert!(h
        .ok("bastille", &["config", "clawdiegit", "get", "vnet"])
        .stdout
        .contains("enabled\n"));
    assert!(h
        .ok(
            "bastille",
            &["config", "clawdiegit", "get", "allow.raw_sockets"]
        )
        .stdout
        .contains("not set\n"));
    h.ok(
        "bastille",
        &["config", "clawdiegit", "set", "allow.raw_sockets", "1"],
    );
    assert!(h
        .read("/usr/local/bastille/jails/clawdiegit/jail.conf")
        .contains("  allow.raw_sockets = 1;\n}\n"));
    h.ok("bastille", &["sysrc", "clawdiegit", "sshd_enable=YES"]);
    assert!(h
        .read("/usr/local/bastille/jails/clawdiegit/root/etc/rc.conf")
        .contains("sshd_enable=\"YES\""));
    let o = h.ok("bastille", &["service", "clawdiegit", "sshd", "start"]);
    assert!(o.stdout.contains("Starting sshd."));
    // zfs: snapshot, a rollback that fails still exits 0.
    h.ok("bastille", &["zfs", "clawdiegit", "snapshot", "one"]);
    h.ok("bastille", &["zfs", "clawdiegit", "snapshot", "two"]);
    let snaps = h
        .ok("zfs", &["list", "-H", "-t", "snapshot", "-o", "name"])
        .stdout;
    assert!(snaps.contains("zroot/clawdie-runtime/jails/clawdiegit/root@one\n"));
    let o = h.ok("bastille", &["zfs", "clawdiegit", "snapshot", "one"]);
    assert!(o
        .stderr
        .contains("[ERROR]: Failed to snapshot jail: clawdiegit"));
    let o = h.run(
        "zfs",
        &[
            "rollback",
            "zroot/clawdie-runtime/jails/clawdiegit/root@one",
        ],
    );
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr.lines().next(), Some("cannot rollback to 'zroot/clawdie-runtime/jails/clawdiegit/root@one': more recent snapshots or bookmarks exist"));
    let o = h.ok("bastille", &["zfs", "clawdiegit", "destroy", "nosuch"]);
    assert!(o
        .stderr
        .contains("[ERROR]: Failed to destroy snapshot: nosuch"));
}

#[test]
fn zfs_rollback_restores_files_and_clones_copy_them() {
    let h = Host::new();
    h.ok("zfs", &["create", "-o", "mountpoint=/data", "zroot/data"]);
    h.ok("zfs", &["create", "zroot/data/a"]);
    h.write("/data/a/f", "one");
    h.ok("zfs", &["snapshot", "zroot/data/a@s1"]);
    h.write("/data/a/f", "two");
    h.ok("zfs", &["rollback", "zroot/data/a@s1"]);
    assert_eq!(h.read("/data/a/f"), "one");
    // zfs's own wording of a bad option, then the subcommand's usage, exit 2.
    let o = h.run("zfs", &["rollback", "-rz", "zroot/data/a@s1"]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr
            .starts_with("invalid option 'z'\nusage:\n\tzfs rollback"),
        "{}",
        o.stderr
    );
    let o = h.run("zfs", &["create", "zroot/data/c", "-o"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.starts_with("missing argument for 'o' option\n"));
    h.ok("zfs", &["clone", "zroot/data/a@s1", "zroot/data/b"]);
    assert_eq!(h.read("/data/b/f"), "one");
    assert_eq!(
        h.ok(
            "zfs",
            &["get", "-H", "-o", "value", "origin", "zroot/data/b"]
        )
        .stdout,
        "zroot/data/a@s1\n"
    );
    assert_eq!(
        h.ok(
            "zfs",
            &["get", "-H", "-o", "value", "origin", "zroot/data/a"]
        )
        .stdout,
        "-\n"
    );
    let o = h.run("zfs", &["destroy", "zroot/data/a@s1"]);
    assert_eq!(
        o.stderr.lines().next(),
        Some("cannot destroy 'zroot/data/a@s1': snapshot has dependent clones")
    );
    let o = h.run("zfs", &["destroy", "zroot/data"]);
    assert_eq!(
        o.stderr.lines().next(),
        Some("cannot destroy 'zroot/data': filesystem has children")
    );
    let o = h.run("zfs", &["create", "zroot/x/y"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "cannot create 'zroot/x/y': parent does not exist\n")
    );
    h.ok("zfs", &["destroy", "-r", "zroot/data/b"]);
    h.ok("zfs", &["destroy", "-r", "zroot/data"]);
    assert!(!h.path("/data/a").exists());
}

#[test]
fn ifconfig_behaviour() {
    let h = Host::new();
    assert_eq!(h.ok("ifconfig", &["-l"]).stdout, "vtnet0 lo0\n");
    assert_eq!(h.ok("ifconfig", &["-g", "bridge"]).stdout, "");
    // Clustered letters (`-l` with `-d`: none is down), a bad letter named with the usage.
    assert_eq!(h.ok("ifconfig", &["-ld"]).stdout, "\n");
    let o = h.run("ifconfig", &["-lz"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .starts_with("ifconfig: illegal option -- z\nusage: ifconfig [-j jail]"),
        "{}",
        o.stderr
    );
    let o = h.run("ifconfig", &["warden0"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "ifconfig: interface warden0 does not exist\n")
    );
    assert_eq!(h.ok("ifconfig", &["bridge", "create"]).stdout, "bridge0\n");
    assert_eq!(
        h.ok("ifconfig", &["bridge0", "name", "warden0"]).stdout,
        "warden0\n"
    );
    let o = h.run("ifconfig", &["warden0", "inet", "10.0.1.1"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (
            1,
            "ifconfig: ERROR: setting interface address without mask is no longer supported.\n"
        )
    );
    h.ok("ifconfig", &["warden0", "inet", "10.0.1.1/24", "up"]);
    assert!(h
        .ok("ifconfig", &["warden0"])
        .stdout
        .contains("\tinet 10.0.1.1 netmask 0xffffff00 broadcast 10.0.1.255\n"));
    assert_eq!(h.ok("ifconfig", &["epair", "create"]).stdout, "epair0a\n");
    h.ok("ifconfig", &["epair0a", "up", "name", "e0a_web"]);
    h.ok("ifconfig", &["warden0", "addm", "e0a_web"]);
    h.ok(
        "ifconfig",
        &["e0a_web", "description", "vnet0 host interface"],
    );
    assert!(h
        .ok("ifconfig", &["e0a_web"])
        .stdout
        .contains("\tdescription: vnet0 host interface\n"));
    assert_eq!(
        h.ok("ifconfig", &["-g", "epair"]).stdout,
        "e0a_web\nepair0b\n"
    );
    h.ok("ifconfig", &["e0a_web", "destroy"]);
    assert_eq!(h.ok("ifconfig", &["-l"]).stdout, "vtnet0 lo0 warden0\n");
    assert!(!h.ok("ifconfig", &["warden0"]).stdout.contains("member:"));
}

#[test]
fn sysrc_sysctl_errors() {
    let h = Host::new();
    let o = h.run("sysrc", &["-n", "nosuch_var"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "sysrc: unknown variable 'nosuch_var'\n")
    );
    assert_eq!(h.ok("sysrc", &["-n", "zfs_enable"]).stdout, "YES\n");
    assert_eq!(
        h.ok("sysrc", &["-n", "gateway_enable"]).stdout,
        "NO\n",
        "known from /etc/defaults/rc.conf"
    );
    assert_eq!(
        h.ok("sysrc", &["cloned_interfaces+=bridge0"]).stdout,
        "cloned_interfaces:  -> bridge0\n"
    );
    assert_eq!(
        h.ok("sysrc", &["cloned_interfaces+=lo1"]).stdout,
        "cloned_interfaces: bridge0 -> bridge0 lo1\n"
    );
    h.ok("sysrc", &["-f", "/etc/other.conf", "a=b c"]);
    assert_eq!(h.read("/etc/other.conf"), "a=\"b c\"\n");
    // Clustered letters with the file attached; a bad letter is named.
    assert_eq!(h.ok("sysrc", &["-nf/etc/other.conf", "a"]).stdout, "b c\n");
    let o = h.run("sysrc", &["-z", "a"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.starts_with("sysrc: illegal option -- z\n"),
        "{}",
        o.stderr
    );
    h.ok("sysrc", &["-x", "cloned_interfaces"]);
    assert_eq!(h.run("sysrc", &["-x", "cloned_interfaces"]).code, 1);
    let o = h.run("sysctl", &["net.inet.ip.nosuch"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "sysctl: unknown oid 'net.inet.ip.nosuch'\n")
    );
    assert_eq!(
        h.ok("sysctl", &["net.inet.ip.forwarding"]).stdout,
        "net.inet.ip.forwarding: 0\n"
    );
}

#[test]
fn pfctl_behaviour() {
    let h = Host::new();
    let o = h.run("pfctl", &["-si"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "pfctl: /dev/pf: No such file or directory\n")
    );
    h.write(
        "/etc/pf.conf",
        "ext_if = \"vtnet0\"\nnat on $ext_if from any to any -> ($ext_if)\npss in all\n",
    );
    let o = h.run("pfctl", &["-nf", "/etc/pf.conf"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        "/etc/pf.conf:3: syntax error\npfctl: Syntax error in config file: pf rules not loaded\n"
    );
    h.ok("service", &["pf", "onestart"]);
    assert_eq!(
        h.ok("pfctl", &["-sn"]).stdout,
        "",
        "a file with an error loads nothing"
    );
    h.write("/etc/pf.conf", PF_CONF);
    h.ok("pfctl", &["-f", "/etc/pf.conf"]);
    assert!(h
        .ok("pfctl", &["-si"])
        .stdout
        .starts_with("Status: Enabled for 0 days"));
    assert_eq!(
        h.run("pfctl", &["-e"]).stderr,
        "pfctl: pf already enabled\n"
    );
    h.ok("pfctl", &["-t", "clawdie_jails", "-T", "add", "10.0.1.2"]);
    assert_eq!(
        h.ok("pfctl", &["-t", "clawdie_jails", "-T", "show"]).stdout,
        "   10.0.1.2\n"
    );
    h.ok(
        "pfctl",
        &["-q", "-t", "clawdie_jails", "-T", "delete", "10.0.1.2"],
    );
    assert_eq!(
        h.ok("pfctl", &["-t", "clawdie_jails", "-T", "show"]).stdout,
        ""
    );
    h.ok("pfctl", &["-d"]);
    assert!(h
        .ok("pfctl", &["-si"])
        .stdout
        .starts_with("Status: Disabled"));
    // Options through fakebsd's one getopt parser: clustered with an attached value, a bad letter named, a
    // missing value, a stray operand.
    assert!(h
        .ok("pfctl", &["-qsinfo"])
        .stdout
        .starts_with("Status: Disabled"));
    let o = h.run("pfctl", &["-sn", "-Z"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .starts_with("pfctl: illegal option -- Z\nusage: pfctl [-AdeghMmNnOPqRrvz]"),
        "{}",
        o.stderr
    );
    let o = h.run("pfctl", &["-t"]);
    assert_eq!(o.code, 1);
    assert!(o
        .stderr
        .starts_with("pfctl: option requires an argument -- t\n"));
    let o = h.run("pfctl", &["-sr", "extra"]);
    assert_eq!(o.code, 1);
    assert!(o
        .stderr
        .starts_with("pfctl: unknown command line argument: extra ...\n"));
}

#[test]
fn service_dnsmasq_and_netif() {
    let h = Host::new();
    let o = h.run("service", &["dnsmasq", "onestatus"]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (1, "dnsmasq is not running.\n")
    );
    let o = h.ok("service", &["dnsmasq", "start"]);
    assert_eq!(o.stdout, "Cannot 'start' dnsmasq. Set dnsmasq_enable to YES in /etc/rc.conf or use 'onestart' instead of 'start'.\n");
    let o = h.run("service", &["dnsmasq", "onestart"]);
    assert_eq!(o.code, 1);
    assert!(o
        .stderr
        .contains("dnsmasq: cannot read /usr/local/etc/dnsmasq.conf: No such file or directory"));
    h.write(
        "/usr/local/etc/dnsmasq.conf",
        "listen-address=127.0.0.1,10.0.1.1\nlocal=/home.arpa/\naddress=/git.home.arpa/10.0.1.2\n",
    );
    assert_eq!(
        h.ok("service", &["dnsmasq", "enable"]).stdout,
        "dnsmasq enabled in /etc/rc.conf\n"
    );
    h.ok("service", &["dnsmasq", "start"]);
    assert!(h
        .ok("service", &["dnsmasq", "status"])
        .stdout
        .starts_with("dnsmasq is running as pid "));
    let o = h.run("service", &["dnsmasq", "start"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.starts_with("dnsmasq already running?  (pid="));
    h.ok("service", &["dnsmasq", "stop"]);
    if Path::new("/usr/sbin/dnsmasq").exists() {
        h.write("/usr/local/etc/dnsmasq.conf", "no-such-option=1\n");
        assert_eq!(h.run("service", &["dnsmasq", "start"]).code, 1);
    }
    let o = h.run("service", &["nosuch", "start"]);
    assert_eq!(o.stderr, "nosuch does not exist in /etc/rc.d or the local startup directories (/usr/local/etc/rc.d), or is not executable\n");
    // cloneup is idempotent.
    h.bridge();
    assert_eq!(h.ok("service", &["netif", "cloneup"]).stdout, "");
    assert_eq!(h.ok("ifconfig", &["-g", "bridge"]).stdout, "warden0\n");
}

#[test]
fn jail_param_form_and_jexec_errors() {
    let h = Host::new();
    std::fs::create_dir_all(h.path("/w/worker1/dev")).expect("mkdir");
    h.ok("ifconfig", &["epair", "create"]);
    let o = h.ok(
        "jail",
        &[
            "-c",
            "name=worker1",
            "path=/w/worker1",
            "host.hostname=worker1",
            "vnet",
            "vnet.interface=epair0b",
            "persist",
        ],
    );
    assert_eq!(o.stdout, "worker1: created\n");
    assert_eq!(h.ok("jls", &["-j", "worker1", "jid"]).stdout, "1\n");
    assert_eq!(h.ok("jls", &["name"]).stdout, "worker1\n");
    // Clustered letters with the jail attached, `--` before the parameters; a bad letter named.
    assert_eq!(h.ok("jls", &["-qjworker1", "--", "jid"]).stdout, "1\n");
    let o = h.run("jls", &["-Nx"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (
            1,
            "jls: illegal option -- x\nusage: jls [-dhNnqv] [-j jail] [param ...]\n"
        )
    );
    let o = h.run("jexec", &["nosuch", "true"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "jexec: jail \"nosuch\" not found\n")
    );
    let o = h.run("jexec", &["worker1", "/no/such/binary"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        h.ok("jexec", &["worker1", "ifconfig", "-l"]).stdout,
        "epair0b\n"
    );
    assert_eq!(
        h.ok("jail", &["-r", "worker1"]).stdout,
        "worker1: removed\n"
    );
    let o = h.run("jail", &["-r", "worker1"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "jail: \"worker1\" not found\n")
    );
    let o = h.run("jail", &["-cr", "worker1"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "jail: cannot specify more than one of -c, -m, -r, -R\n")
    );
    let o = h.run("jail", &["-qvf"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .starts_with("jail: option requires an argument -- f\nusage: jail [-dhilqv]"),
        "{}",
        o.stderr
    );
    assert_eq!(
        h.ok("ifconfig", &["-l"]).stdout,
        "vtnet0 lo0 epair0a epair0b\n"
    );
}

#[test]
fn non_root_is_refused() {
    let mut h = Host::new();
    h.write_conf(CONF);
    h.uid = Some("1001");
    let o = h.run("bastille", &["create", "web", "15.0-RELEASE", "10.0.1.9"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        "Bastille: Permission Denied\nroot / sudo / doas required\n"
    );
    assert_eq!(h.run("sysctl", &["net.inet.ip.forwarding=1"]).code, 1);
    assert_eq!(h.run("ifconfig", &["bridge", "create"]).code, 1);
    assert_eq!(
        h.ok("sysctl", &["-n", "net.inet.ip.forwarding"]).stdout,
        "0\n"
    );
}
