//! `dnsmasq.conf`: the local zone, answered on `127.0.0.1` and the gateway (seed 003).

use crate::layout::Layout;

/// Renders dnsmasq's config; the same file serves FreeBSD (`/usr/local/etc/dnsmasq.conf`) and Linux.
pub fn render(layout: &Layout) -> String {
    let mut out = format!(
        "# Managed by warden: `warden render dnsmasq.conf` regenerates this file.\n\
         # Answers {domain} on the host's loopback and the Warden gateway, so host and jails see the same names.\n\
         listen-address=127.0.0.1,{gw}\n\
         bind-interfaces\n\
         # Names come only from this file, never from /etc/hosts, so the zone is exactly the layout.\n\
         no-hosts\n\
         domain-needed\n\
         bogus-priv\n\
         # Never forward the local zone upstream: unknown names in it are NXDOMAIN here.\n\
         local=/{domain}/\n\
         domain={domain}\n",
        domain = layout.domain,
        gw = layout.gateway,
    );
    if !layout
        .internal_domain
        .ends_with(&format!(".{}", layout.domain))
    {
        out.push_str(&format!("local=/{}/\n", layout.internal_domain));
    }
    out.push_str("\n# One A (and PTR) record per registered name.\n");
    for r in &layout.records {
        out.push_str(&format!("host-record={},{}\n", r.name, r.addr));
    }
    out
}
