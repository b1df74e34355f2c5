//! The `jail.conf` Bastille writes for a bridged VNET jail (`bastille create -B`), reference/bastille.md §1.4.
//! Warden renders it to know what to expect (the doctor compares) and to start workers with `jail -c` the way
//! Bastille would.

use crate::layout::{Layout, Service};

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
    format!(
        r#"{name} {{
  enforce_statfs = 2;
  devfs_ruleset = 13;
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
}}
"#,
        bridge = layout.bridge,
    )
}
