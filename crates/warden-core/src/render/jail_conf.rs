//! The `jail.conf` Bastille writes for a bridged VNET jail (`bastille create -B`), reference/bastille.md §1.4.
//! Warden renders it to know what to expect (the doctor compares) and to start workers with `jail -c` the way
//! Bastille would. The Tailscale jail (`tailscale.mode = jail`) also has `allow.tun` and the devfs ruleset that
//! unhides `/dev/tun*` (seed 000).

use crate::layout::{Layout, Service};

/// devfs rules (Bastille's VNET ruleset 13 lives here).
pub const DEVFS_RULES: &str = "/etc/devfs.rules";

/// devfs ruleset 13 as `bastille setup vnet` writes it (reference/bastille.md §3 setup): unhides bpf for DHCP.
pub const DEVFS_VNET_RULES: &str = "[bastille_vnet=13]\n\
add include $devfsrules_hide_all\n\
add include $devfsrules_unhide_basic\n\
add include $devfsrules_unhide_login\n\
add include $devfsrules_jail\n\
add path 'bpf*' unhide\n";

/// Which Bastille generation wrote the file; only the console log path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// Bastille ≤ 1.4.4: `/var/log/bastille/NAME_console.log`.
    Flat,
    /// Bastille master after 1.4.4: `/var/log/bastille/NAME/console.log`.
    PerJail,
}

/// Renders `jails/NAME/jail.conf` for `service` with the given release patch level (e.g. `15.0-RELEASE-p2`).
pub fn render(layout: &Layout, service: &Service, osrelease: &str, style: LogStyle) -> String {
    let name = &service.jail;
    let prefix = &layout.bastille.prefix;
    let log = match style {
        LogStyle::Flat => format!("/var/log/bastille/{name}_console.log"),
        LogStyle::PerJail => format!("/var/log/bastille/{name}/console.log"),
    };
    // tailscale.mode = jail: what `bastille config NAME set devfs_ruleset 14` (the line replaced in place) and
    // `bastille config NAME set allow.tun` (appended before the closing brace) make of Bastille's file.
    let tailscale = layout.tailscale.jail() == Some(name.as_str());
    let (ruleset, tun) = if tailscale {
        (crate::tailscale::DEVFS_RULESET, "  allow.tun;\n")
    } else {
        (13, "")
    };
    format!(
        r#"{name} {{
  enforce_statfs = 2;
  devfs_ruleset = {ruleset};
  exec.clean;
  exec.consolelog = {log};
  exec.start = '/bin/sh /etc/rc';
  exec.stop = '/bin/sh /etc/rc.shutdown';
  host.hostname = {name};
  mount.devfs;
  mount.fstab = {prefix}/jails/{name}/fstab;
  path = {prefix}/jails/{name}/root;
  securelevel = 2;
  osrelease = "{osrelease}";

  vnet;
  vnet.interface = e0b_{name};
  exec.prestart += "epair0=\$(ifconfig epair create) && ifconfig \${{epair0}} up name e0a_{name} && ifconfig \${{epair0%a}}b up name e0b_{name}";
  exec.prestart += "ifconfig {bridge} addm e0a_{name}";
  exec.prestart += "ifconfig e0a_{name} description \"vnet0 host interface for Bastille jail {name}\"";
  exec.poststop += "ifconfig e0a_{name} destroy";
{tun}}}
"#,
        bridge = layout.bridge,
    )
}
