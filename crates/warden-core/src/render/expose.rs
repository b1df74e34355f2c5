//! The firewall's part of exposure (`[[expose]]` with `via = "firewall"`), kept apart from the rest of the
//! rulesets: pf `rdr` rules with their `pass` rules (FreeBSD), nftables DNAT in a prerouting chain with a forward
//! accept for exactly those flows (Linux). The doctor looks for the same lines ([`pf_rdr_line`],
//! [`nft_dnat_line`]), so what is rendered and what is checked cannot drift apart.

use crate::layout::{Exposure, Layout};

/// `, exposures 80/tcp → cms 10.0.1.3:80, …` for a ruleset's plan summary; empty without firewall exposures.
pub fn summary(layout: &Layout) -> String {
    let all: Vec<String> = layout.firewall_exposures().map(|e| e.describe()).collect();
    if all.is_empty() {
        String::new()
    } else {
        format!(", exposures {}", all.join(", "))
    }
}

/// The pf translation rule of one exposure, as written in pf.conf (`$ext_if` is the uplink macro).
pub fn pf_rdr_line(e: &Exposure) -> String {
    format!(
        "rdr on $ext_if inet proto {p} from any to ($ext_if) port {port} -> {target} port {tport}",
        p = e.proto.name(),
        port = e.port,
        target = e.target,
        tport = e.target_port,
    )
}

/// The pf filter rule that lets one redirected flow in (pf filters after translation: the slot's address).
pub fn pf_pass_line(e: &Exposure) -> String {
    format!(
        "pass in quick on $ext_if inet proto {p} from any to {target} port {tport} keep state",
        p = e.proto.name(),
        target = e.target,
        tport = e.target_port,
    )
}

/// The loaded rdr rule of `e` in `pfctl -s nat` output, if there is one. With `numeric` (output of `pfctl -P`)
/// the public port must read `port = N`; without, pfctl may print it as a service name (`port = http`), so only
/// the interface, the protocol and the redirect side (always numeric) identify the rule.
pub fn pf_nat_rule<'a>(nat: &'a str, ext_if: &str, e: &Exposure, numeric: bool) -> Option<&'a str> {
    let public = format!("port = {}", e.port);
    let words = [
        format!("on {ext_if} "),
        format!("proto {} ", e.proto.name()),
        format!("-> {} port {}", e.target, e.target_port),
    ];
    nat.lines().map(str::trim).find(|l| {
        l.starts_with("rdr ")
            && words.iter().all(|w| l.contains(w.as_str()))
            && (!numeric || l.contains(&public))
    })
}

/// pf.conf's translation lines for the exposures (empty without any).
pub fn pf_translation(layout: &Layout) -> String {
    let mut out = String::new();
    for e in layout.firewall_exposures() {
        out.push_str(&format!("# expose {}\n{}\n", e.describe(), pf_rdr_line(e)));
    }
    out
}

/// pf.conf's filter lines for the exposures (empty without any).
pub fn pf_filter(layout: &Layout) -> String {
    let mut out = String::new();
    for e in layout.firewall_exposures() {
        out.push_str(&pf_pass_line(e));
        out.push('\n');
    }
    out
}

/// The nftables DNAT rule of one exposure, as `nft list` prints it back. Only packets addressed to the host
/// itself (`fib daddr type local`, pf's `to ($ext_if)`): without it a packet routed through the host to any
/// address, a slot's included, would be redirected too.
pub fn nft_dnat_line(layout: &Layout, e: &Exposure) -> String {
    format!(
        "iifname \"{uplink}\" fib daddr type local {p} dport {port} dnat ip to {target}:{tport}",
        uplink = layout.ext_if,
        p = e.proto.name(),
        port = e.port,
        target = e.target,
        tport = e.target_port,
    )
}

/// The forward accept of one exposure: only connections the DNAT made cross from the uplink to the bridge.
pub fn nft_forward_line(layout: &Layout, e: &Exposure) -> String {
    format!(
        "iifname \"{uplink}\" oifname \"{bridge}\" ip daddr {target} {p} dport {tport} ct status dnat accept",
        uplink = layout.ext_if,
        bridge = layout.bridge,
        p = e.proto.name(),
        target = e.target,
        tport = e.target_port,
    )
}

/// The `prerouting` chain of `table inet warden` (empty without exposures, so the table stays as it was).
pub fn nft_prerouting(layout: &Layout) -> String {
    let rules: Vec<String> = layout
        .firewall_exposures()
        .map(|e| {
            format!(
                "        # expose {}\n        {}\n",
                e.describe(),
                nft_dnat_line(layout, e)
            )
        })
        .collect();
    if rules.is_empty() {
        return String::new();
    }
    format!(
        "\n    chain prerouting {{\n        type nat hook prerouting priority dstnat; policy accept;\n{}    }}\n",
        rules.concat()
    )
}

/// The forward chain's accepts for the exposures (before the final `oifname <bridge> drop`).
pub fn nft_forward(layout: &Layout) -> String {
    let mut out = String::new();
    for e in layout.firewall_exposures() {
        out.push_str(&format!("        {}\n", nft_forward_line(layout, e)));
    }
    if !out.is_empty() {
        out.insert_str(
            0,
            "        # Exposures: from outside, only the flows the prerouting DNAT made reach the subnet.\n",
        );
    }
    out
}
