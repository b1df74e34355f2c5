//! `dnsmasq.conf`: the registered names, answered on `127.0.0.1` and the gateway (seeds 003, 004).
//!
//! The internal base (`dns.internal_domain`, `<identity>.home.arpa`) is authoritative here: unknown names under
//! it are NXDOMAIN, never forwarded. `dns.domain` is too while it is internal (`home.arpa`); a public domain
//! (`AGENT_DOMAIN=clawdie.si`) is not: only the names Warden registers under it are answered here and every
//! other name (`docs.clawdie.si`) is forwarded upstream, so the host and the jails still see the public zone.

use crate::layout::Layout;
use crate::names::{is_internal_domain, is_under};

/// Renders dnsmasq's config; the same file serves FreeBSD (`/usr/local/etc/dnsmasq.conf`) and Linux.
pub fn render(layout: &Layout) -> String {
    let mut out = format!(
        "# Managed by warden: `warden render dnsmasq.conf` regenerates this file.\n\
         # Answers the registered names on the host's loopback and the Warden gateway, so host and jails see the\n\
         # same names.\n\
         listen-address=127.0.0.1,{gw}\n\
         bind-interfaces\n\
         # Names come only from this file, never from /etc/hosts, so the zone is exactly the layout.\n\
         no-hosts\n\
         domain-needed\n\
         bogus-priv\n",
        gw = layout.gateway,
    );
    out.push_str(&local_zones(layout));
    out.push_str(&format!("domain={}\n", layout.internal_domain));
    out.push_str("\n# One A (and PTR) record per registered name.\n");
    for r in &layout.records {
        out.push_str(&format!("host-record={},{}\n", r.name, r.addr));
    }
    out
}

/// The `local=` lines: the internal zones only, each once (a zone under another needs no line of its own).
fn local_zones(layout: &Layout) -> String {
    let mut zones: Vec<&str> = vec![];
    if is_internal_domain(&layout.domain) {
        zones.push(&layout.domain);
    }
    if !zones.iter().any(|z| is_under(&layout.internal_domain, z)) {
        zones.push(&layout.internal_domain);
    }
    let mut out = String::from(
        "# Never forward an internal zone upstream: unknown names in it are NXDOMAIN here.\n",
    );
    for z in zones {
        out.push_str(&format!("local=/{z}/\n"));
    }
    if !is_internal_domain(&layout.domain) {
        out.push_str(&format!(
            "# {d} is public: its registered names are answered here, every other name under it is forwarded.\n",
            d = layout.domain
        ));
    }
    out
}
