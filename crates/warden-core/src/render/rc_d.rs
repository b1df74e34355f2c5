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
# warden_enable (bool):   Set to "YES" to run the Warden control plane (`sysrc warden_enable=YES`).
# warden_config (path):   Config file (default /usr/local/etc/warden.toml).
# warden_flags (str):     Extra flags for `warden serve` (e.g. "--listen 10.0.1.1:3100").

. /etc/rc.subr

name="warden"
rcvar="warden_enable"
desc="Warden control plane for {identity} (HTTP {port})"

load_rc_config $name

: ${{warden_enable:="NO"}}
: ${{warden_config:="/usr/local/etc/warden.toml"}}
: ${{warden_flags:=""}}

# rc.subr runs `$command ${{name}}_flags $command_args`: with daemon(8) as the command, warden_flags would be
# daemon's options, so they go into command_args and rc.subr gets none. The warden program is not called
# warden_program either: rc.subr would put it in place of daemon(8).
pidfile="/var/run/${{name}}.pid"
command="/usr/sbin/daemon"
command_args="-f -r -S -T ${{name}} -P ${{pidfile}} /usr/local/bin/warden --config ${{warden_config}} serve --backend bastille ${{warden_flags}}"
warden_flags=""
# The pidfile holds daemon(8)'s pid (-P: the supervisor, which forwards SIGTERM to warden and does not restart
# it then), so procname is left to default to daemon: rc.subr matches the pidfile's process by that name.

run_rc_command "$1"
"#,
        identity = layout.identity,
        port = layout.port,
    )
}
