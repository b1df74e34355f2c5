//! `pf.conf`: seed 003's baseline (quoted `ext_if`, NAT for the subnet, pass on the bridge), Bastille's table and
//! anchors so `bastille rdr` keeps working (reference/bastille.md §3 rdr, §8.7), and one rule beyond the seed: no
//! routing between two workers (their bridge ports are private, so only a hairpin through the host could join them).
//! Exposures (`[[expose]]`) add their `rdr` and `pass` rules (`render::expose`).

use crate::layout::{cidr_cover, Layout};

/// pf table of the networked workers' addresses.
pub const WORKERS_TABLE: &str = "warden_workers";

/// Renders `/etc/pf.conf`.
pub fn render(layout: &Layout) -> String {
    let table = &layout.bastille.pf_table;
    format!(
        r#"# Managed by warden: `warden render pf.conf` regenerates this file.
# The ext_if macro stays double-quoted: Bastille's rdr reads it with a pattern that needs the quotes.
ext_if = "{ext_if}"
warden_if = "{bridge}"
warden_net = "{cidr}"

set skip on lo
table <{table}> persist
table <{WORKERS_TABLE}> const {{ {workers} }}

# Outbound NAT for every jail and worker on the Warden bridge, and for Bastille's shared-IP jails.
nat on $ext_if from $warden_net to any -> ($ext_if)
nat on $ext_if from <{table}> to any -> ($ext_if:0)
rdr-anchor "rdr/*"
{rdr}
# Workers never reach each other: their bridge ports are private, and the host routes nothing between them.
block drop quick on $warden_if inet from <{WORKERS_TABLE}> to <{WORKERS_TABLE}>
{pass}pass quick on $warden_if inet from $warden_net to any keep state
{tailscale}anchor "bastille/*"
"#,
        ext_if = layout.ext_if,
        bridge = layout.bridge,
        cidr = layout.cidr(),
        workers = cidr_cover(layout.workers.0, layout.workers.1).join(", "),
        rdr = super::expose::pf_translation(layout),
        pass = super::expose::pf_filter(layout),
        tailscale = super::tailscale::pf_rules(layout),
    )
}
