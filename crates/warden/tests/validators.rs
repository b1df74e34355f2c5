//! Real validators on rendered files: dnsmasq, a real DNS client in a namespace, sh, nft.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok_stdout, warden, Netns};

const TENANTS: &str =
    "[[tenants]]\nname = \"atlas\"\nsites = [\"blog\"]\n[[tenants]]\nname = \"zeta\"\n";

fn render_to(dir: &std::path::Path, name: &str, config: &str) -> std::path::PathBuf {
    let cfg = dir.join("warden.toml");
    std::fs::write(&cfg, config).unwrap();
    let out = warden(&["--config", cfg.to_str().unwrap(), "render", name], &[]);
    let path = dir.join(name);
    std::fs::write(&path, ok_stdout(&out)).unwrap();
    path
}

#[test]
fn dnsmasq_conf_passes_dnsmasq_test() {
    let dir = tempfile::tempdir().unwrap();
    let conf = render_to(dir.path(), "dnsmasq.conf", TENANTS);
    let out = Command::new("dnsmasq")
        .arg("--test")
        .arg(format!("--conf-file={}", conf.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dnsmasq --test: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("syntax check OK"));
}

#[test]
fn real_dnsmasq_answers_every_registered_name_on_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let conf = render_to(dir.path(), "dnsmasq.conf", TENANTS);
    let cfg = dir.path().join("warden.toml");
    let layout: serde_json::Value = serde_json::from_str(&ok_stdout(&warden(
        &["--config", cfg.to_str().unwrap(), "layout", "--json"],
        &[],
    )))
    .unwrap();
    let ns = Netns::new();
    ns.exec_ok(&["ip", "link", "add", "warden0", "type", "bridge"]);
    ns.exec_ok(&["ip", "addr", "add", "10.0.1.1/24", "dev", "warden0"]);
    ns.exec_ok(&["ip", "link", "set", "warden0", "up"]);
    let pid = dir.path().join("dnsmasq.pid");
    let prefix = ns.prefix();
    let mut child = Command::new(&prefix[0])
        .args(&prefix[1..])
        .args(["dnsmasq", "--keep-in-foreground", "--user=root"])
        .arg(format!("--conf-file={}", conf.display()))
        .arg(format!("--pid-file={}", pid.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let records = layout["records"].as_array().unwrap();
    assert!(records.len() >= 10, "{records:?}");
    let result = std::panic::catch_unwind(|| {
        for server in ["127.0.0.1", "10.0.1.1"] {
            for r in records {
                let name = r["name"].as_str().unwrap();
                let want = r["addr"].as_str().unwrap();
                let got = dig_until_answer(&ns, server, name);
                assert_eq!(got, want, "{name} via {server}");
            }
            // Names outside the registry are NXDOMAIN locally, never forwarded.
            let out = ns.exec(&[
                "dig",
                &format!("@{server}"),
                "+time=1",
                "+tries=1",
                "nope.home.arpa",
                "A",
            ]);
            assert!(String::from_utf8_lossy(&out.stdout).contains("NXDOMAIN"));
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// A public `AGENT_DOMAIN`: Warden's dnsmasq answers its registered names under it, forwards every other name
/// under it to the upstream (a stand-in dnsmasq in a second namespace, the "internet"), and keeps the internal
/// base (`clawdie.home.arpa`) to itself even though the upstream would answer there too.
#[cfg(target_os = "linux")]
#[test]
fn public_domain_names_are_forwarded_and_registered_names_answered_locally() {
    let _lock = warden_testkit::root_test("public_domain_names_are_forwarded");
    let dir = tempfile::tempdir().unwrap();
    let conf = render_to(
        dir.path(),
        "dnsmasq.conf",
        "[dns]\ndomain = \"clawdie.si\"\n",
    );
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(!text.contains("local=/clawdie.si/"), "{text}");
    let (warden_ns, upstream_ns) = (Netns::new(), Netns::new());
    let veth = format!("wdu{}", std::process::id() % 100_000);
    // Made inside the namespace, the pair never exists on the host.
    let peer = format!("{veth}p");
    warden_ns.exec_ok(&[
        "ip",
        "link",
        "add",
        &veth,
        "type",
        "veth",
        "peer",
        "name",
        &peer,
        "netns",
        &upstream_ns.name,
    ]);
    warden_ns.exec_ok(&["ip", "addr", "add", "192.0.2.1/24", "dev", &veth]);
    warden_ns.exec_ok(&["ip", "link", "set", &veth, "up"]);
    upstream_ns.exec_ok(&["ip", "addr", "add", "192.0.2.2/24", "dev", &peer]);
    upstream_ns.exec_ok(&["ip", "link", "set", &peer, "up"]);
    warden_ns.exec_ok(&["ip", "link", "add", "warden0", "type", "bridge"]);
    warden_ns.exec_ok(&["ip", "addr", "add", "10.0.1.1/24", "dev", "warden0"]);
    warden_ns.exec_ok(&["ip", "link", "set", "warden0", "up"]);
    // The upstream answers the public zone, a public name Warden also registers (with another address) and the
    // internal base: only the first must ever reach a client of Warden's resolver.
    let upstream = spawn_dnsmasq(
        &upstream_ns,
        dir.path(),
        "upstream",
        &[
            "--listen-address=192.0.2.2",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--address=/docs.clawdie.si/203.0.113.7",
            "--address=/git.clawdie.si/203.0.113.8",
            "--address=/clawdie.home.arpa/203.0.113.9",
        ],
    );
    let local = spawn_dnsmasq(
        &warden_ns,
        dir.path(),
        "warden",
        &[
            &format!("--conf-file={}", conf.display()),
            // Production forwards to the host's resolv.conf servers; here the upstream stand-in is the only one.
            "--no-resolv",
            "--server=192.0.2.2",
        ],
    );
    let result = std::panic::catch_unwind(|| {
        assert_eq!(
            dig_until_answer(&upstream_ns, "192.0.2.2", "docs.clawdie.si"),
            "203.0.113.7"
        );
        for server in ["127.0.0.1", "10.0.1.1"] {
            assert_eq!(
                dig_until_answer(&warden_ns, server, "git.clawdie.si"),
                "10.0.1.2"
            );
            assert_eq!(
                dig_until_answer(&warden_ns, server, "ai.clawdie.si"),
                "10.0.1.1"
            );
            assert_eq!(
                dig_until_answer(&warden_ns, server, "clawdie.home.arpa"),
                "10.0.1.1"
            );
            assert_eq!(
                dig_until_answer(&warden_ns, server, "docs.clawdie.si"),
                "203.0.113.7"
            );
            let out = warden_ns.exec(&[
                "dig",
                &format!("@{server}"),
                "+time=1",
                "+tries=1",
                "nope.clawdie.home.arpa",
                "A",
            ]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("NXDOMAIN"),
                "the internal base leaked upstream: {text}"
            );
        }
    });
    for mut child in [upstream, local] {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// Starts `dnsmasq --keep-in-foreground` with `args` in `ns` (killed by the caller).
#[cfg(target_os = "linux")]
fn spawn_dnsmasq(
    ns: &Netns,
    dir: &std::path::Path,
    name: &str,
    args: &[&str],
) -> std::process::Child {
    let prefix = ns.prefix();
    Command::new(&prefix[0])
        .args(&prefix[1..])
        .args(["dnsmasq", "--keep-in-foreground", "--user=root"])
        .arg(format!(
            "--pid-file={}",
            dir.join(format!("{name}.pid")).display()
        ))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn dig_until_answer(ns: &Netns, server: &str, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = ns.exec(&[
            "dig",
            &format!("@{server}"),
            "+short",
            "+time=1",
            "+tries=1",
            name,
            "A",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !text.is_empty() && !text.starts_with(';') {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no answer for {name} from {server}: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sh_values(file: &std::path::Path, vars: &[&str]) -> Vec<String> {
    let script = format!(
        ". '{}'; {}",
        file.display(),
        vars.iter()
            .map(|v| format!("printf '%s\\n' \"${v}\";"))
            .collect::<String>()
    );
    let out = Command::new("sh")
        .args(["-e", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bastille_conf_is_valid_sh_with_the_intended_values() {
    let dir = tempfile::tempdir().unwrap();
    let conf = render_to(dir.path(), "bastille.conf", "");
    let got = sh_values(
        &conf,
        &[
            "bastille_prefix",
            "bastille_jailsdir",
            "bastille_sharedir",
            "bastille_zfs_enable",
            "bastille_zfs_zpool",
            "bastille_zfs_prefix",
            "bastille_tzdata",
            "bastille_network_loopback",
            "bastille_network_pf_table",
            "bastille_network_pf_ext_if",
        ],
    );
    assert_eq!(
        got,
        [
            "/usr/local/bastille",
            "/usr/local/bastille/jails",
            "/usr/local/share/bastille",
            "YES",
            "zroot",
            "clawdie-runtime",
            "Europe/Ljubljana",
            "clawdie0",
            "clawdie_jails",
            "ext_if"
        ]
    );
}

#[test]
fn rc_conf_lines_are_valid_sh_with_the_intended_values() {
    let dir = tempfile::tempdir().unwrap();
    let conf = render_to(
        dir.path(),
        "rc.conf",
        "[network]\nsubnet = \"192.168.72\"\n",
    );
    let got = sh_values(
        &conf,
        &[
            "cloned_interfaces",
            "ifconfig_bridge0_name",
            "ifconfig_warden0",
            "gateway_enable",
            "pf_enable",
            "dnsmasq_enable",
            "warden_enable",
        ],
    );
    assert_eq!(
        got,
        [
            "bridge0",
            "warden0",
            "inet 192.168.72.1/24 up",
            "YES",
            "YES",
            "YES",
            "YES"
        ]
    );
}

#[test]
fn rc_d_script_is_valid_sh() {
    let dir = tempfile::tempdir().unwrap();
    let script = render_to(dir.path(), "rc.d", "");
    let out = Command::new("sh").arg("-n").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nftables_ruleset_passes_nft_check() {
    let dir = tempfile::tempdir().unwrap();
    let rules = render_to(dir.path(), "nftables", "");
    // Check inside a namespace of our own: `nft -c` changes nothing, but keep even reads off the host's tables.
    let ns = Netns::new();
    let out = ns.exec(&["nft", "-c", "-f", rules.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "nft -c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And it really loads, twice (the file is idempotent), in that namespace.
    ns.exec_ok(&["nft", "-f", rules.to_str().unwrap()]);
    ns.exec_ok(&["nft", "-f", rules.to_str().unwrap()]);
    let listed = ns.exec_ok(&["nft", "list", "table", "inet", "warden"]);
    assert!(listed.contains("masquerade"), "{listed}");
}
