//! The Linux ruleset: one `inet warden` table with NAT for the subnet and the forward/input policy.
//! The file deletes and recreates the table in one `nft -f` transaction, so applying it twice is harmless.

use crate::layout::Layout;

/// Name of Warden's nftables table (family inet).
pub const TABLE: &str = "warden";

/// Renders the ruleset for `nft -f`.
pub fn render(layout: &Layout) -> String {
    let (wf, wl) = layout.workers;
    format!(
        r#"#!/usr/sbin/nft -f
# Managed by warden: `warden render nftables` regenerates this file.
# Creating then deleting the table first makes the load atomic and repeatable.
table inet {TABLE}
delete table inet {TABLE}

table inet {TABLE} {{
    set workers {{
        type ipv4_addr
        flags interval
        elements = {{ {wf}-{wl} }}
    }}

    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "{bridge}" ct state established,related accept
        # Workers reach only DNS on the host; service jails may reach the control plane too.
        iifname "{bridge}" ip saddr @workers udp dport 53 accept
        iifname "{bridge}" ip saddr @workers tcp dport 53 accept
        iifname "{bridge}" ip saddr @workers drop
    }}

    chain forward {{
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
        # Routed traffic between jails never hairpins through the host; bridge ports are isolated as well.
        iifname "{bridge}" oifname "{bridge}" drop
        iifname "{bridge}" ip saddr {cidr} accept
        oifname "{bridge}" drop
    }}

    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {cidr} oifname != "{bridge}" masquerade
    }}
}}
"#,
        bridge = layout.bridge,
        cidr = layout.cidr(),
    )
}
