//! The host's `rc.conf` settings, applied one by one with `sysrc` (never by rewriting `/etc/rc.conf`).

use crate::layout::Layout;

/// Path of dnsmasq's config on FreeBSD (the ports default).
pub const DNSMASQ_CONF: &str = "/usr/local/etc/dnsmasq.conf";

/// The `(variable, value)` pairs Warden owns in `/etc/rc.conf`, in the order they are set.
pub fn settings(layout: &Layout) -> Vec<(String, String)> {
    let s = |k: &str, v: String| (k.to_string(), v);
    vec![
        // The bridge is cloned as bridge0 and renamed, as the seeds do; `service netif cloneup` creates it.
        s("cloned_interfaces", "bridge0".into()),
        s("ifconfig_bridge0_name", layout.bridge.clone()),
        s(
            &format!("ifconfig_{}", layout.bridge),
            format!("inet {}/24 up", layout.gateway),
        ),
        s("gateway_enable", "YES".into()),
        s("pf_enable", "YES".into()),
        s("pf_rules", "/etc/pf.conf".into()),
        s("bastille_enable", "YES".into()),
        s("dnsmasq_enable", "YES".into()),
        s("dnsmasq_conf", DNSMASQ_CONF.into()),
        s("warden_enable", "YES".into()),
        s("warden_config", "/usr/local/etc/warden.toml".into()),
    ]
}

/// Renders the settings as `rc.conf` lines (valid `sh`).
pub fn render(layout: &Layout) -> String {
    let mut out = String::from("# rc.conf settings owned by warden (applied with sysrc).\n");
    for (k, v) in settings(layout) {
        out.push_str(&format!("{k}=\"{v}\"\n"));
    }
    out
}
