//! The Linux ruleset: an `inet warden` table with NAT for the subnet and the forward/input policy, and a
//! `bridge warden` table for traffic between two ports of the bridge: only the layout's service paths
//! ([`Layout::service_paths`]) cross. The file deletes and recreates both tables in one `nft -f` transaction, so
//! applying it twice is harmless. Exposures (`[[expose]]`) add a prerouting DNAT chain and their forward accepts
//! (`render::expose`).
//!
//! Worker ports are also isolated bridge ports (they cannot reach each other even without this ruleset); jail
//! ports are not, or no service path could cross. This kernel family has no connection tracking on a bridge
//! (`nf_conntrack_bridge` is optional), so replies are matched without state: a server's packets to its clients
//! must come from the service port and may not be a bare SYN, so a server cannot open a connection back.

use std::fmt::Write;

use crate::layout::{Clients, Layout, ServicePath};

/// Name of Warden's nftables table (family inet).
pub const TABLE: &str = "warden";

/// Renders the ruleset for `nft -f`.
pub fn render(layout: &Layout) -> String {
    let workers = workers_set(layout);
    // Where br_netfilter is loaded, bridged frames also pass the inet forward hook (in and out on the bridge),
    // with connection tracking: the service paths' first packets are let through there too.
    let mut routed_paths = String::new();
    for p in layout.service_paths() {
        let _ = writeln!(
            routed_paths,
            "        iifname \"{bridge}\" oifname \"{bridge}\" ip saddr {clients} ip daddr {server} tcp dport {port} accept",
            bridge = layout.bridge,
            clients = clients(&p),
            server = p.server,
            port = p.port,
        );
    }
    format!(
        r#"#!/usr/sbin/nft -f
# Managed by warden: `warden render nftables` regenerates this file.
# Creating then deleting the table first makes the load atomic and repeatable.
table inet {TABLE}
delete table inet {TABLE}

table inet {TABLE} {{
{workers}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "{bridge}" ct state established,related accept
        # Workers reach only DNS and the model gateway on the host; service jails may reach the control plane too.
        iifname "{bridge}" ip saddr @workers udp dport 53 accept
        iifname "{bridge}" ip saddr @workers tcp dport 53 accept
        iifname "{bridge}" ip saddr @workers ip daddr {gateway} tcp dport {gateway_port} accept
        iifname "{bridge}" ip saddr @workers drop
    }}

    chain forward {{
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
        # Nothing between two hosts on the bridge but the service paths (see table bridge {TABLE}).
{routed_paths}        iifname "{bridge}" oifname "{bridge}" drop
        iifname "{bridge}" ip saddr {cidr} accept
{exposed}{tailscale}        oifname "{bridge}" drop
    }}
{prerouting}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {cidr} oifname != "{bridge}" masquerade
    }}
}}
"#,
        bridge = layout.bridge,
        cidr = layout.cidr(),
        gateway = layout.gateway,
        gateway_port = layout.gateway_port,
        exposed = super::expose::nft_forward(layout),
        prerouting = super::expose::nft_prerouting(layout),
        tailscale = super::tailscale::nft_forward_rules(layout),
    ) + &render_bridge(layout)
}

/// The rules of `table inet warden` that the host step loads again when the loaded table lacks one (deleted
/// behind Warden's back while the file is unchanged), as `nft list` prints them: each firewall exposure's DNAT
/// and forward accept, and `subnet` mode's `tailscale0` rule. The doctor checks the same lines.
pub fn required_lines(layout: &Layout) -> Vec<String> {
    let mut lines = Vec::new();
    for e in layout.firewall_exposures() {
        lines.push(super::expose::nft_dnat_line(layout, e));
        lines.push(super::expose::nft_forward_line(layout, e));
    }
    lines.extend(super::tailscale::nft_forward_rule(layout));
    lines
}

/// The `workers` set: the networked workers' address range.
fn workers_set(layout: &Layout) -> String {
    let (wf, wl) = layout.workers;
    format!(
        "    set workers {{\n        type ipv4_addr\n        flags interval\n        elements = {{ {wf}-{wl} }}\n    }}\n"
    )
}

/// A path's clients as an nft expression.
fn clients(p: &ServicePath) -> String {
    match &p.clients {
        Clients::Workers => "@workers".to_string(),
        Clients::Jails(addrs) => {
            let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            format!("{{ {} }}", list.join(", "))
        }
    }
}

/// The `bridge warden` table: the service paths, then nothing else between two ports but ARP.
fn render_bridge(layout: &Layout) -> String {
    let workers = workers_set(layout);
    let mut paths = String::new();
    for p in layout.service_paths() {
        let clients = clients(&p);
        let (server, port) = (p.server, p.port);
        let _ = writeln!(paths, "        # {}", p.what);
        let _ = writeln!(
            paths,
            "        ip saddr {clients} ip daddr {server} tcp dport {port} accept"
        );
        let _ = writeln!(
            paths,
            "        ip saddr {server} ip daddr {clients} tcp sport {port} tcp flags & (syn | ack) != syn accept"
        );
    }
    format!(
        r#"
table bridge {TABLE}
delete table bridge {TABLE}

table bridge {TABLE} {{
{workers}
    chain forward {{
        type filter hook forward priority filter; policy accept;
{paths}        # Nothing else crosses between two ports (frames to the gateway are not forwarded, so not seen here).
        ether type != arp drop
    }}
}}
"#
    )
}
