//! The firewall rules of `tailscale.mode = subnet` ([`crate::tailscale`]), in their own functions so the pf and
//! nftables renderers only splice them in: the tailnet reaches the subnet through `tailscale0`.

use crate::layout::Layout;
use crate::tailscale::{Mode, INTERFACE};

/// The nftables rules of `subnet` mode, inside `inet warden`'s forward chain before its final drop toward the
/// bridge: the tailnet reaches the subnet through `tailscale0` (replies pass as established). Empty otherwise.
pub fn nft_forward_rules(layout: &Layout) -> String {
    match nft_forward_rule(layout) {
        Some(rule) => format!(
            "        # tailscale.mode = subnet: the tailnet reaches the subnet through {INTERFACE}.\n        {rule}\n"
        ),
        None => String::new(),
    }
}

/// `subnet` mode's forward rule, written as `nft list` prints it (the host step reloads the ruleset and the
/// doctor fails when the loaded table lacks it); `None` in other modes.
pub fn nft_forward_rule(layout: &Layout) -> Option<String> {
    (layout.tailscale.mode == Mode::Subnet).then(|| {
        format!(
            "iifname \"{INTERFACE}\" oifname \"{bridge}\" ip daddr {cidr} accept",
            bridge = layout.bridge,
            cidr = layout.cidr(),
        )
    })
}

/// The pf rules of `subnet` mode (after the bridge's pass rule): the tailnet reaches the subnet through
/// `tailscale0`. Empty otherwise.
pub fn pf_rules(layout: &Layout) -> String {
    if layout.tailscale.mode != Mode::Subnet {
        return String::new();
    }
    format!(
        "# tailscale.mode = subnet: the tailnet reaches the subnet through {INTERFACE}.\npass quick on {INTERFACE} inet from any to $warden_net keep state\n"
    )
}
