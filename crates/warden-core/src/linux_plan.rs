//! The Linux plan: bridge, forwarding, nftables and a Warden-supervised dnsmasq, as exact argv.
//! Files live in Warden's state directory, never in the host's `/etc`, so a Linux host keeps its own config.

use crate::layout::Layout;
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

/// Plans the `host` and `dns` steps for a Linux host.
pub fn plan(layout: &Layout, host: &LinuxHost, paths: &LinuxPaths) -> Plan {
    let mut out = Vec::new();
    let s = Step::Host;
    let br = layout.bridge.as_str();
    let want_addr = format!("{}/24", layout.gateway);
    if !host.bridge_exists {
        out.push(Action::run(
            s,
            format!("create the bridge {br}"),
            &["ip", "link", "add", br, "type", "bridge"],
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
            "write the nftables ruleset (NAT of the subnet, worker isolation)",
            &paths.nftables(),
            "0644",
            rules,
        ));
    }
    if rules_changed || !host.nft_table {
        out.push(
            Action::run(
                s,
                "load the ruleset into table inet warden (atomic)",
                &["nft", "-f", &paths.nftables()],
            )
            .verified_by(&["nft", "list", "table", "inet", render::nftables::TABLE]),
        );
    }

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
            &["pkill", "-F", &paths.dnsmasq_pid()],
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
        notes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
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
        assert!(plan(&layout, &host, &paths).is_empty());
    }
}
