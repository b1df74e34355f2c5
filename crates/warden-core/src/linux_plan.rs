//! The Linux plan: bridge, forwarding, nftables, the service jails (`warden jail …`) and a Warden-supervised
//! dnsmasq, as exact argv.
//! Files live in Warden's state directory, never in the host's `/etc`, so a Linux host keeps its own config.

use crate::layout::{Layout, Shape};
use crate::observed::LinuxHost;
use crate::plan::{Action, Plan, Step};
use crate::render;

/// Where the Linux backend keeps its generated files and pid files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxPaths {
    /// The state directory (e.g. `/var/lib/warden`).
    pub state_dir: String,
}

impl LinuxPaths {
    /// The nftables ruleset file.
    pub fn nftables(&self) -> String {
        format!("{}/nftables.conf", self.state_dir)
    }
    /// dnsmasq's config file.
    pub fn dnsmasq_conf(&self) -> String {
        format!("{}/dnsmasq.conf", self.state_dir)
    }
    /// dnsmasq's pid file.
    pub fn dnsmasq_pid(&self) -> String {
        format!("{}/dnsmasq.pid", self.state_dir)
    }
}

/// Plans the `host`, `jails` and `dns` steps for a Linux host.
pub fn plan(layout: &Layout, host: &LinuxHost, paths: &LinuxPaths) -> Plan {
    let mut out = Vec::new();
    let s = Step::Host;
    let br = layout.bridge.as_str();
    let want_addr = format!("{}/24", layout.gateway);
    if !host.bridge_exists {
        // A bridge without an address of its own takes its lowest port's MAC and changes it whenever a jail or
        // worker veth comes or goes, which strands every neighbour's ARP entry for the gateway for seconds.
        let [a, b, c, d] = layout.gateway.octets();
        let mac = format!("02:57:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
        out.push(Action::run(
            s,
            format!("create the bridge {br} with the fixed MAC {mac}"),
            &["ip", "link", "add", br, "address", &mac, "type", "bridge"],
        ));
    }
    if host.bridge_addrs != [want_addr.clone()] {
        out.push(Action::run(
            s,
            format!("set {br}'s only address to the gateway {want_addr}"),
            &["ip", "addr", "flush", "dev", br],
        ));
        out.push(Action::run(
            s,
            format!("give {br} the gateway address {want_addr}"),
            &["ip", "addr", "add", &want_addr, "dev", br],
        ));
    }
    if !host.bridge_up {
        out.push(Action::run(
            s,
            format!("bring {br} up"),
            &["ip", "link", "set", br, "up"],
        ));
    }
    if !host.forwarding {
        out.push(Action::run(
            s,
            "enable IPv4 forwarding",
            &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        ));
    }
    let rules = render::nftables::render(layout);
    let rules_changed = host.files.get(&paths.nftables()) != Some(&rules);
    if rules_changed {
        out.push(Action::file(
            s,
            "write the nftables ruleset (NAT of the subnet, worker isolation, service paths)",
            &paths.nftables(),
            "0644",
            rules,
        ));
    }
    if rules_changed || !host.nft_table {
        out.push(
            Action::run(
                s,
                "load the ruleset into tables inet and bridge warden (atomic)",
                &["nft", "-f", &paths.nftables()],
            )
            .verified_by(&["nft", "list", "table", "inet", render::nftables::TABLE]),
        );
    }

    let mut notes = Vec::new();
    jails(layout, host, paths, &mut out, &mut notes);

    let d = Step::Dns;
    let conf = render::dnsmasq_conf::render(layout);
    let conf_changed = host.files.get(&paths.dnsmasq_conf()) != Some(&conf);
    if conf_changed {
        out.push(Action::file(
            d,
            format!("write dnsmasq.conf: the {} zone", layout.domain),
            &paths.dnsmasq_conf(),
            "0644",
            conf,
        ));
    }
    if host.dnsmasq_running && conf_changed {
        out.push(Action::run(
            d,
            "stop the old dnsmasq to load the new zone",
            // --retry waits until the old process is gone, so the new one can bind port 53 at once.
            &[
                "start-stop-daemon",
                "--stop",
                "--oknodo",
                "--retry",
                "TERM/5/KILL/2",
                "--pidfile",
                &paths.dnsmasq_pid(),
            ],
        ));
    }
    if !host.dnsmasq_running || conf_changed {
        out.push(Action::run(
            d,
            format!("start dnsmasq on 127.0.0.1 and {}", layout.gateway),
            &[
                "dnsmasq".to_string(),
                format!("--conf-file={}", paths.dnsmasq_conf()),
                format!("--pid-file={}", paths.dnsmasq_pid()),
            ],
        ));
    }
    Plan {
        actions: out,
        notes,
    }
}

/// The `jails` step: every service jail of the layout exists (on the `host` release, at its slot, in its shape)
/// and runs. A jail that exists with another address or shape is left alone, with a note: recreating it would
/// destroy its data.
fn jails(
    layout: &Layout,
    host: &LinuxHost,
    paths: &LinuxPaths,
    out: &mut Vec<Action>,
    notes: &mut Vec<String>,
) {
    let exe = if host.warden_exe.is_empty() {
        "warden"
    } else {
        host.warden_exe.as_str()
    };
    let state = paths.state_dir.as_str();
    for s in layout.jails() {
        let shape = match s.shape {
            Shape::Thick => "thick",
            _ => "thin",
        };
        let name = s.jail.as_str();
        let role = s.role.name();
        match host.jails.get(name) {
            None => {
                // The subnet and bridge go along so the jail's gateway matches this layout whatever the
                // child warden reads; the address is given exactly rather than as a slot for the same reason.
                out.push(Action::run(
                    Step::Jails,
                    format!(
                        "create the {role} jail {name} at {}/24 on {}, {shape}, on the host release",
                        s.addr, layout.bridge
                    ),
                    &[
                        exe.to_string(),
                        "--state-dir".into(),
                        state.into(),
                        "--subnet".into(),
                        layout.cidr(),
                        "--bridge".into(),
                        layout.bridge.clone(),
                        "jail".into(),
                        "create".into(),
                        name.into(),
                        "--addr".into(),
                        s.addr.to_string(),
                        "--shape".into(),
                        shape.into(),
                        "--release".into(),
                        "host".into(),
                    ],
                ));
            }
            Some(j) if j.addr != Some(s.addr) || j.shape != shape => notes.push(format!(
                "jail {name} exists as {} at {} but the layout wants {shape} at {}: left alone (its data would be lost); `warden jail destroy --force {name}` and `warden setup` recreate it",
                j.shape,
                j.addr.map(|a| a.to_string()).unwrap_or_else(|| "no address".into()),
                s.addr
            )),
            Some(_) => {}
        }
        if !host.jails.get(name).is_some_and(|j| j.running) {
            out.push(Action::run(
                Step::Jails,
                format!("start the {role} jail {name}"),
                &[exe, "--state-dir", state, "jail", "start", name],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::observed::LinuxJail;
    use crate::plan::Op;

    #[test]
    fn fresh_then_converged() {
        let layout = Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap();
        let paths = LinuxPaths {
            state_dir: "/var/lib/warden".into(),
        };
        let first = plan(&layout, &LinuxHost::default(), &paths);
        assert!(first.actions.len() >= 8);
        let mut host = LinuxHost {
            bridge_exists: true,
            bridge_up: true,
            bridge_addrs: vec!["10.0.1.1/24".into()],
            forwarding: true,
            nft_table: true,
            dnsmasq_running: true,
            ..Default::default()
        };
        for a in &first.actions {
            if let Op::File(f) = &a.op {
                host.files.insert(f.path.clone(), f.content.clone());
            }
        }
        let jail_actions = first.clone().only(Step::Jails).actions;
        // create + start for git, cms, ai, db.
        assert_eq!(jail_actions.len(), 8, "{jail_actions:#?}");
        let Op::Argv(argv) = &jail_actions[6].op else {
            panic!("not a command: {:?}", jail_actions[6]);
        };
        assert_eq!(
            argv[7..].join(" "),
            "jail create clawdiedb --addr 10.0.1.5 --shape thick --release host"
        );
        for s in layout.jails() {
            host.jails.insert(
                s.jail.clone(),
                LinuxJail {
                    running: s.role != crate::layout::Role::Cms,
                    addr: Some(s.addr),
                    shape: if s.shape == Shape::Thick {
                        "thick"
                    } else {
                        "thin"
                    }
                    .into(),
                    release: "host".into(),
                },
            );
        }
        let again = plan(&layout, &host, &paths);
        assert_eq!(again.actions.len(), 1);
        assert_eq!(again.actions[0].summary, "start the cms jail clawdiecms");
        host.jails.get_mut("clawdiecms").unwrap().running = true;
        assert!(plan(&layout, &host, &paths).is_empty());
        host.jails.get_mut("clawdiegit").unwrap().addr = Some("10.0.1.9".parse().unwrap());
        let p = plan(&layout, &host, &paths);
        assert!(p.is_empty() && p.notes[0].contains("left alone"), "{p:?}");
    }
}
