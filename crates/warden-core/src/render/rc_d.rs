//! The control plane's FreeBSD rc.subr script, `/usr/local/etc/rc.d/warden`.

use crate::layout::Layout;

/// Renders the rc.d script. It runs as root because creating jails and epairs needs root; workers themselves
/// run as the unprivileged worker user inside their jails.
pub fn render(layout: &Layout) -> String {
    format!(
        r#"#!/bin/sh
#
# Managed by warden: `warden render rc.d` regenerates this file.
#
# PROVIDE: warden
# REQUIRE: LOGIN NETWORKING dnsmasq
# BEFORE: bastille
# KEYWORD: shutdown
#
# warden_enable (bool):   Set to "YES" to run the Warden control plane.
# warden_config (path):   Config file (default /usr/local/etc/warden.toml).
# warden_flags (str):     Extra flags for `warden serve`.

. /etc/rc.subr

name="warden"
rcvar="warden_enable"
desc="Warden control plane for {identity} (HTTP {port})"

load_rc_config $name

: ${{warden_enable:="NO"}}
: ${{warden_config:="/usr/local/etc/warden.toml"}}
: ${{warden_flags:=""}}

pidfile="/var/run/${{name}}.pid"
procname="/usr/local/bin/warden"
command="/usr/sbin/daemon"
command_args="-f -r -S -T ${{name}} -P ${{pidfile}} ${{procname}} --config ${{warden_config}} serve ${{warden_flags}}"

run_rc_command "$1"
"#,
        identity = layout.identity,
        port = layout.port,
    )
}
