//! `bastille.conf`: seed 000's values in Bastille's stock structure, `bastille_sharedir` included.

use crate::layout::Layout;

/// Renders `/usr/local/etc/bastille/bastille.conf`.
pub fn render(layout: &Layout) -> String {
    let b = &layout.bastille;
    format!(
        r#"#####################
## [ BastilleBSD ] ##
#####################
## Managed by warden: `warden render bastille.conf` regenerates this file.

## Default paths
bastille_prefix="{prefix}"
bastille_backupsdir="${{bastille_prefix}}/backups"
bastille_cachedir="${{bastille_prefix}}/cache"
bastille_jailsdir="${{bastille_prefix}}/jails"
bastille_releasesdir="${{bastille_prefix}}/releases"
bastille_templatesdir="${{bastille_prefix}}/templates"
bastille_volumesdir="${{bastille_prefix}}/volumes"
bastille_logsdir="/var/log/bastille"

## pf configuration path
bastille_pf_conf="/etc/pf.conf"

## Bastille commands directory (required: without it Bastille cannot find bootstrap.sh)
bastille_sharedir="/usr/local/share/bastille"

## Bootstrap archives, which components of the OS to install.
## base  - The base OS, kernel + userland
## lib32 - Libraries for compatibility with 32 bit binaries
## ports - The FreeBSD ports (3rd party applications) tree
## src   - The source code to the kernel + userland
## test  - The FreeBSD test suite
## Whitespace-separated list:
## bastille_bootstrap_archives="base lib32 ports src test"
bastille_bootstrap_archives="base"

## Pkgbase package sets
## Any set with [-dbg] can be installed with debugging
## symbols by adding '-dbg' to the package set
## base[-dbg]          - Base system
## base-jail[-dbg]     - Base system for jails
## devel[-dbg]         - Development tools
## kernels[-dbg]       - Base system kernels
## lib32[-dbg]         - 32-bit compatability libraries
## minimal[-dbg]       - Basic multi-user system
## minimal-jail[-dbg]  - Basic multi-user jail system
## optional[-dbg]      - Optional base system software
## optional-jail[-dbg] - Optional base system software for jails
## src                 - System source code
## tests               - System test suite
## Whitespace-separated list:
## bastille_pkgbase_packages="base-jail lib32-dbg src"
bastille_pkgbase_packages="base-jail"

## Default timezone
bastille_tzdata="{tz}"

## Default jail resolv.conf
bastille_resolv_conf="/etc/resolv.conf"

## Bootstrap URLs
bastille_url_freebsd="http://ftp.freebsd.org/pub/FreeBSD/releases/"
bastille_url_hardenedbsd="https://installers.hardenedbsd.org/pub/"
bastille_url_midnightbsd="https://www.midnightbsd.org/ftp/MidnightBSD/releases/"

## ZFS options
bastille_zfs_enable="YES"
bastille_zfs_zpool="{pool}"
bastille_zfs_prefix="{zprefix}"
bastille_zfs_options="-o compress=on -o atime=off"

## Export/Import options
bastille_compress_xz_options="-0 -v"
bastille_decompress_xz_options="-c -d -v"
bastille_compress_gz_options="-1 -v"
bastille_decompress_gz_options="-k -d -c -v"
bastille_compress_zst_options="-3 -v"
bastille_decompress_zst_options="-k -d -c -v"
bastille_export_options=""

## Networking
bastille_network_vnet_type="if_bridge"
bastille_network_loopback="{loopback}"
bastille_network_pf_ext_if="ext_if"
bastille_network_pf_table="{table}"

bastille_network_shared=""
bastille_network_gateway=""
bastille_network_gateway6=""

## Default Templates
bastille_template_base="default/base"
bastille_template_empty=""
bastille_template_thick="default/thick"
bastille_template_clone="default/clone"
bastille_template_thin="default/thin"
bastille_template_vnet="default/vnet"
bastille_template_vlan="default/vlan"

## Monitoring
bastille_monitor_cron_path="/usr/local/etc/cron.d/bastille-monitor"
bastille_monitor_cron="*/5 * * * * root /usr/local/bin/bastille monitor ALL >/dev/null 2>&1"
bastille_monitor_logfile="${{bastille_logsdir}}/monitor.log"
bastille_monitor_healthchecks=""
"#,
        prefix = b.prefix,
        tz = layout.timezone,
        pool = b.zfs_pool,
        zprefix = b.zfs_prefix,
        loopback = b.loopback,
        table = b.pf_table,
    )
}
