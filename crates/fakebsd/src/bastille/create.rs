//! `bastille create` (reference/bastille.md §1.1–§1.7; create.sh of the simulated version).

use std::net::Ipv4Addr;
use std::os::unix::fs::{symlink, PermissionsExt};

use super::{lifecycle, Bx, Version};
use crate::fsutil;
use crate::ifconfig;
use crate::opts::{Spec, GETOPT};

#[derive(Default)]
struct Opts {
    vnet: bool,
    bridge: bool,
    standard: bool,
    passthrough: bool,
    thick: bool,
    clone: bool,
    empty: bool,
    linux: bool,
    static_mac: bool,
    no_ip: bool,
    no_boot: bool,
    validate: bool,
    gateway: String,
    nameserver: String,
    priority: String,
    tags: String,
    vlan: String,
    zfs_opts: Option<String>,
}

fn usage(b: &mut Bx) -> i32 {
    b.error_notify("Usage: bastille create [option(s)] NAME RELEASE IP [INTERFACE]");
    b.io.out("\n    Options:\n\n    -B | --bridge                   Enable VNET. INTERFACE must be a bridge.\n    -C | --clone                    Create a clone jail (ZFS only).\n    -E | --empty                    Create an empty jail (NAME only).\n    -g | --gateway IP               Specify a default router/gateway.\n    -M | --static-mac               Use a static/persistent MAC address (VNET only).\n    -n | --nameserver IP            Specify nameserver(s) for the jail. Comma-separated.\n    -P | --passthrough              Enable VNET. INTERFACE is used as-is.\n    -p | --priority VALUE           Set priority value.\n    -T | --thick                    Create a thick jail.\n    -V | --vnet                     Enable VNET. INTERFACE must be a physical interface.\n");
    1
}

/// Release-name normalisation of §1.2 step 4; None = unknown form.
fn normalise_release(r: &str) -> Option<String> {
    let up = r.to_ascii_uppercase();
    let (ver, suffix) = up.split_once('-')?;
    let (maj, min) = ver.split_once('.')?;
    let ok_ver = !maj.is_empty()
        && maj.chars().all(|c| ('1'..='9').contains(&c))
        && min.len() == 1
        && min.chars().all(|c| c.is_ascii_digit());
    let ok_suffix = suffix == "RELEASE"
        || suffix == "STABLE"
        || suffix == "CURRENT"
        || ((suffix.starts_with("RC") || suffix.starts_with("BETA"))
            && suffix
                .chars()
                .last()
                .is_some_and(|c| ('1'..='9').contains(&c))
            && (suffix.len() == 3 || suffix.len() == 5));
    (ok_ver && ok_suffix).then_some(up)
}

/// `validate_ip` (§1.2 step 5). Returns the address as Bastille keeps it (VNET: with prefix).
fn validate_ip(b: &mut Bx, ip: &str, vnet: bool) -> Result<String, i32> {
    if ["inherit", "ip_hostname"].contains(&ip) {
        if vnet {
            return Err(b.error_exit(&format!(
                "[ERROR]: Unsupported IP option for VNET jail: {ip}"
            )));
        }
        return Ok(ip.into());
    }
    if ["0.0.0.0", "DHCP", "SYNCDHCP"].contains(&ip) {
        if !vnet {
            return Err(b.error_exit(&format!(
                "[ERROR]: Unsupported IP option for non-VNET jail: {ip}"
            )));
        }
        return Ok(ip.into());
    }
    let (addr, subnet) = match ip.split_once('/') {
        Some((a, s)) => (a.to_string(), Some(s.to_string())),
        None => (ip.to_string(), None),
    };
    if addr.contains(':') {
        return Ok(if vnet && subnet.is_none() {
            format!("{addr}/64")
        } else {
            ip.to_string()
        });
    }
    if addr.is_empty() {
        return Err(b.error_exit(&format!("[ERROR]: IP incorrectly formatted: {ip}")));
    }
    let mut kept = addr.clone();
    if vnet {
        match &subnet {
            None => kept = format!("{addr}/24"),
            Some(s) => {
                let n: Option<u8> = s.parse().ok().filter(|n: &u8| (1..=32).contains(n));
                if n.is_none() {
                    return Err(b.error_exit(&format!("[ERROR]: Invalid subnet: /{s}")));
                }
                // 1.3.2 drops an explicit prefix here (the #1451 bug, §1.6); 1.4+ keeps it.
                if b.v != Version::V132 {
                    kept = format!("{addr}/{s}");
                }
            }
        }
    }
    let octets: Vec<&str> = addr.split('.').collect();
    let strict = octets.len() == 4
        && octets.iter().all(|o| {
            !o.is_empty()
                && o.len() <= 3
                && o.chars().all(|c| c.is_ascii_digit())
                && !(o.len() > 1 && o.starts_with('0'))
                && o.parse::<u16>().is_ok_and(|n| n <= 255)
        });
    if !strict {
        return Err(b.error_exit(&format!("[ERROR]: Invalid IP: {kept}")));
    }
    b.info(&format!("\nValid IP: {kept}"));
    Ok(kept)
}

/// `bastille create`'s options (create.sh's case statement; `x` is the per-command debug flag).
const SPEC: Spec = Spec {
    tool: "bastille",
    flags: "BCDEhLMPTVx",
    valued: "gnpvZ",
    long: &[
        "bridge:B",
        "clone:C",
        "dual:D",
        "empty:E",
        "help:h",
        "linux:L",
        "static-mac:M",
        "passthrough:P",
        "thick:T",
        "vnet:V",
        "debug:x",
        "gateway:g",
        "defaultrouter:g",
        "nameserver:n",
        "priority:p",
        "vlan:v",
        "zfs-opts:Z",
        "no-boot",
        "no-ip",
        "no-validate",
        "tag=",
        "tags=",
    ],
    ..GETOPT
};

/// `bastille create`.
pub fn run(b: &mut Bx, args: &[String]) -> i32 {
    match create(b, args) {
        Ok(c) | Err(c) => c,
    }
}

/// create.sh top-down: options, their combinations, the name, the interface type, then an empty jail or the
/// release, the addresses and the interface of a full one (`Err`: the exit status of a refusal).
fn create(b: &mut Bx, args: &[String]) -> Result<i32, i32> {
    b.root_check()?;
    let (o, pos) = options(b, args)?;
    check_combinations(b, &o)?;
    let name = pos.first().cloned().unwrap_or_default();
    let release_arg = pos.get(1).cloned().unwrap_or_default();
    let (ip, interface) = if o.no_ip {
        (String::new(), pos.get(2).cloned().unwrap_or_default())
    } else {
        (
            pos.get(2).cloned().unwrap_or_default(),
            pos.get(3).cloned().unwrap_or_default(),
        )
    };
    b.info(&format!("\nCreating jail: {name}..."));
    let wanted = if o.empty { 1..=1 } else { 3..=4 };
    if !wanted.contains(&pos.len()) {
        return Err(usage(b));
    }
    validate_name(b, &o, &name)?;
    let bridges = ifconfig::group(b.cx, "bridge");
    check_interface_type(b, &o, &interface, &bridges)?;
    if o.empty {
        b.info(&format!("\nCreating empty jail: {name}"));
        return Ok(create_empty(b, &name, &o));
    }
    let release = release(b, &o, &release_arg)?;
    let (ip4, ip6) = define_ips(b, &o, &ip)?;
    let interface = network_interface(b, &o, interface, &bridges)?;
    Ok(create_jail(b, &o, &name, &release, &ip4, &ip6, &interface))
}

/// The options, checked one by one as create.sh does, and the operands after them.
fn options(b: &mut Bx, args: &[String]) -> Result<(Opts, Vec<String>), i32> {
    let p = b.parse_opts(SPEC, args, &["no-boot", "no-ip", "no-validate", "help"])?;
    let mut o = Opts {
        validate: true,
        priority: "99".into(),
        ..Opts::default()
    };
    for (key, v) in &p.opts {
        let v = v.clone().unwrap_or_default();
        let digits = !v.is_empty() && v.chars().all(|c| c.is_ascii_digit());
        match *key {
            "h" | "help" => return Err(usage(b)),
            "B" => (o.vnet, o.bridge) = (true, true),
            "C" => o.clone = true,
            "E" => o.empty = true,
            "L" => o.linux = true,
            "M" => o.static_mac = true,
            "P" => (o.vnet, o.passthrough) = (true, true),
            "T" => o.thick = true,
            "V" => (o.vnet, o.standard) = (true, true),
            "no-boot" => o.no_boot = true,
            "no-ip" => o.no_ip = true,
            "no-validate" => o.validate = false,
            "g" if v.parse::<Ipv4Addr>().is_err() && !v.contains(':') => {
                return Err(b.error_exit(&format!("[ERROR]: Not a valid gateway: {v}")))
            }
            "g" => o.gateway = v,
            "n" if v.split(',').any(|x| x.parse::<std::net::IpAddr>().is_err()) => {
                return Err(b.error_exit(&format!("[ERROR]: Invalid nameserver(s): {v}")))
            }
            "n" => o.nameserver = v,
            "p" if !digits => {
                return Err(b.error_exit(&format!("Not a valid priority value: \"{v}\"")))
            }
            "p" => o.priority = v,
            "v" if !digits => return Err(b.error_exit(&format!("Not a valid VLAN ID: {v}"))),
            "v" => o.vlan = v,
            "tag" | "tags" => o.tags = v,
            "Z" => o.zfs_opts = Some(v),
            // -D (dual stack) and -x (debug) change nothing simulated.
            _ => {}
        }
    }
    Ok((o, p.operands))
}

/// Option combinations (§1.1).
fn check_combinations(b: &mut Bx, o: &Opts) -> Result<(), i32> {
    let refusal = if o.empty {
        (o.clone || o.thick || o.vnet || o.linux)
            .then_some("[ERROR]: Empty jail option can't be used with other options.")
    } else if o.linux {
        (o.vnet || o.thick || o.clone)
            .then_some("[ERROR]: Linux jail option can't be used with other options.")
    } else if o.clone && o.thick {
        Some("[ERROR]: Clonejail and Thickjail can't be used together.")
    } else if !o.vnet && !o.vlan.is_empty() {
        Some("[ERROR]: VLANs can only be used with VNET jails.")
    } else if !o.vnet && o.no_ip {
        Some("[ERROR]: [--no-ip] can only be used with VNET jails.")
    } else if usize::from(o.standard) + usize::from(o.bridge) + usize::from(o.passthrough) > 1 {
        Some("[ERROR]: Only one of [-V|--vnet], [-B|--bridge] or [-P|--passthrough] can be selected.")
    } else if o.passthrough && o.static_mac {
        Some("[ERROR]: [-P|--passthrough] does not support [-M|--static-mac].")
    } else {
        None
    };
    match refusal {
        Some(msg) => Err(b.error_exit(msg)),
        None => Ok(()),
    }
}

/// `validate_name` (§1.2 step 2).
fn validate_name(b: &mut Bx, o: &Opts, name: &str) -> Result<(), i32> {
    if name.is_empty() {
        return Ok(());
    }
    if b.jails().iter().any(|j| j == name) {
        return Err(b.error_exit(&format!("[ERROR]: Jail already exists: {name}")));
    }
    let sane: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let refusal = if sane.starts_with('-') || sane.starts_with('_') {
        Some("[ERROR]: Jail names may not begin with (-|_) characters!")
    } else if o.vnet && (name.contains('-') || name.contains('_')) {
        Some("[ERROR]: VNET jail names may not contain (-|_) characters.")
    } else if name != sane {
        Some("[ERROR]: Jail names may not contain special characters!")
    } else if name.chars().all(|c| c.is_ascii_digit()) {
        Some("[ERROR]: Jail names may not contain only digits.")
    } else {
        None
    };
    match refusal {
        Some(msg) => Err(b.error_exit(msg)),
        None => Ok(()),
    }
}

/// Whether `w` is one of the words of `list` (create.sh's `grep -ow`).
fn word_in(list: &[String], w: &str) -> bool {
    !w.is_empty() && list.iter().any(|l| l == w)
}

/// The interface type for -B/-V/-P (§1.1), against `ifconfig -g bridge`.
fn check_interface_type(
    b: &mut Bx,
    o: &Opts,
    interface: &str,
    bridges: &[String],
) -> Result<(), i32> {
    if o.bridge && !word_in(bridges, interface) {
        return Err(b.error_exit(&format!("[ERROR]: Interface is not a bridge: {interface}")));
    }
    if o.standard && word_in(bridges, interface) {
        return Err(b.error_exit(&format!("[ERROR]: Interface is a bridge: {interface}")));
    }
    if o.passthrough && !word_in(&ifconfig::names(b.cx), interface) {
        return Err(b.error_exit(&format!("[ERROR]: Interface does not exist: {interface}")));
    }
    if b.conf.get("bastille_network_vnet_type") == "netgraph" && o.bridge {
        return Err(b.error_exit(
            "[ERROR]: Netgraph does not support the [-B|--bridge] or [-P|--passthrough] option.",
        ));
    }
    Ok(())
}

/// The release (§1.2 step 4): normalised and bootstrapped, unless `--no-validate`.
fn release(b: &mut Bx, o: &Opts, release_arg: &str) -> Result<String, i32> {
    if !o.validate {
        return Ok(release_arg.to_string());
    }
    let Some(release) = normalise_release(release_arg) else {
        b.error_notify(&format!("Unknown release: {release_arg}"));
        return Err(usage(b));
    };
    if !b.p(&format!("{}/{release}", b.conf.releasesdir())).is_dir() {
        b.error_notify("[ERROR]: Release must be bootstrapped first.");
        return Err(b.error_exit("See 'bastille bootstrap'."));
    }
    Ok(release)
}

/// `define_ips` (§1.2 step 5): the IPv4 and IPv6 address as Bastille keeps them.
fn define_ips(b: &mut Bx, o: &Opts, ip: &str) -> Result<(String, String), i32> {
    let mut ip4 = String::new();
    let mut ip6 = String::new();
    for one in ip.split_whitespace() {
        let kept = validate_ip(b, one, o.vnet)?;
        if kept.contains(':') || kept == "SLAAC" {
            if kept == "SLAAC" && !o.vnet {
                return Err(b.error_exit("[ERROR]: Unsupported IP option for standard jail: SLAAC"));
            }
            ip6 = kept;
            continue;
        }
        let bare = kept.split('/').next().unwrap_or(&kept).to_string();
        if bare.parse::<Ipv4Addr>().is_ok() {
            let in_use =
                b.cx.st
                    .interfaces
                    .values()
                    .any(|i| i.inet.iter().any(|a| a.addr.to_string() == kept));
            if in_use {
                b.warn(&format!("[WARNING]: IP address in use: {kept}"));
            }
        }
        ip4 = kept;
    }
    Ok((ip4, ip6))
}

/// The interface (§1.2 step 6): checked when given, else the configured loopback or shared one.
fn network_interface(
    b: &mut Bx,
    o: &Opts,
    interface: String,
    bridges: &[String],
) -> Result<String, i32> {
    if !interface.is_empty() {
        let mut list = ifconfig::names(b.cx);
        list.push("VNET".into());
        if !word_in(&list, &interface) {
            return Err(b.error_exit(&format!("[ERROR]: Invalid interface: {interface}")));
        }
        if o.standard {
            for br in bridges {
                if *br != format!("{interface}bridge")
                    && b.cx.st.interfaces[br].members.contains(&interface)
                {
                    return Err(b.error_exit(&format!(
                        "[ERROR]: Interface '{interface}' is already a member of bridge: {br}"
                    )));
                }
            }
            if interface.contains('.') {
                return Err(b.error_exit(
                    "[ERROR]: [-V|--vnet] does not support dots (.) in interface names.",
                ));
            }
        } else {
            b.info(&format!("\nValid interface: {interface}"));
        }
        validate_netconf(b)?;
        return Ok(interface);
    }
    if o.vnet && b.conf.get("bastille_network_shared").is_empty() {
        return Err(b.error_exit("[ERROR]: Network interface not set."));
    }
    validate_netconf(b)?;
    if o.vnet {
        return Ok(b.conf.get("bastille_network_shared"));
    }
    let lo = b.conf.get("bastille_network_loopback");
    let sh = b.conf.get("bastille_network_shared");
    Ok(if !lo.is_empty() && sh.is_empty() {
        lo
    } else {
        sh
    })
}

/// `validate_netconf` (§1.2 step 6), including the old-config fix-up of `bastille_network_vnet_type`.
fn validate_netconf(b: &mut Bx) -> Result<(), i32> {
    if !b.conf.is_set("bastille_network_vnet_type") {
        let p = b.p(&b.conf.path);
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let fixed = text.replacen(
            "## Networking",
            "## Networking\nbastille_network_vnet_type=\"if_bridge\"                                ## default: \"if_bridge\"",
            1,
        );
        let _ = std::fs::write(&p, fixed);
        b.conf = super::load_conf(b.cx, &b.conf.path.clone());
    }
    if !b.conf.get("bastille_network_loopback").is_empty()
        && !b.conf.get("bastille_network_shared").is_empty()
    {
        return Err(b.error_exit("[ERROR]: 'bastille_network_loopback' and 'bastille_network_shared' cannot both be set."));
    }
    let t = b.conf.get("bastille_network_vnet_type");
    if t != "if_bridge" && t != "netgraph" {
        return Err(b.error_exit(&format!(
            "[ERROR]: 'bastille_network_vnet_type' not set properly: {t}"
        )));
    }
    Ok(())
}

fn log_path(b: &Bx, name: &str) -> String {
    let logs = b.conf.get("bastille_logsdir");
    if b.v == Version::Master {
        format!("{logs}/{name}/console.log")
    } else {
        format!("{logs}/{name}_console.log")
    }
}

/// The epair pair for a `-B`/`-V` jail (§1.4 naming rule).
fn epair_names(b: &Bx, name: &str) -> (String, String) {
    if format!("e0a_{name}").len() < 16 {
        return (format!("e0a_{name}"), format!("e0b_{name}"));
    }
    let mut used = String::new();
    for j in b.jails() {
        used.push_str(
            &std::fs::read_to_string(b.p(&format!("{}/jail.conf", b.jail_dir(&j))))
                .unwrap_or_default(),
        );
    }
    used.push_str(&ifconfig::group(b.cx, "epair").join(" "));
    let n = (1..)
        .find(|n| !used.contains(&format!("bastille{n}")))
        .unwrap_or(1);
    (format!("e0a_bastille{n}"), format!("e0b_bastille{n}"))
}

fn create_empty(b: &mut Bx, name: &str, o: &Opts) -> i32 {
    let dir = b.jail_dir(name);
    let _ = std::fs::create_dir_all(b.p(&format!("{dir}/root")));
    let conf = format!("{name} {{\n  host.hostname = {name};\n  mount.fstab = {dir}/fstab;\n  path = {dir}/root;\n}}\n");
    let _ = fsutil::write_file(&b.p(&format!("{dir}/jail.conf")), &conf);
    let _ = fsutil::write_file(&b.p(&format!("{dir}/fstab")), "");
    finish_settings(b, name, o);
    0
}

fn finish_settings(b: &mut Bx, name: &str, o: &Opts) {
    let dir = b.jail_dir(name);
    let _ = std::fs::set_permissions(b.p(&dir), std::fs::Permissions::from_mode(0o700));
    let settings = b.p(&format!("{dir}/settings.conf"));
    let _ = crate::sysrc::set_var(&settings, "boot", if o.no_boot { "off" } else { "on" });
    let _ = crate::sysrc::set_var(&settings, "depend", "");
    let _ = crate::sysrc::set_var(&settings, "priority", &o.priority);
}

/// The jail being created: its arguments and where it lives.
struct NewJail<'a> {
    name: &'a str,
    release: &'a str,
    ip4: &'a str,
    ip6: &'a str,
    interface: &'a str,
    /// `jails/NAME`.
    dir: String,
    /// `jails/NAME/root`.
    path: String,
    /// `releases/RELEASE`.
    rel_dir: String,
    /// Neither thick nor clone.
    thin: bool,
}

/// create.sh's steps for a full jail (§1.3), top-down; the exit status of `bastille create`.
fn create_jail(
    b: &mut Bx,
    o: &Opts,
    name: &str,
    release: &str,
    ip4: &str,
    ip6: &str,
    interface: &str,
) -> i32 {
    let dir = b.jail_dir(name);
    let j = NewJail {
        name,
        release,
        ip4,
        ip6,
        interface,
        path: format!("{dir}/root"),
        dir,
        rel_dir: format!("{}/{release}", b.conf.releasesdir()),
        thin: !o.thick && !o.clone,
    };
    match build_jail(b, o, &j) {
        Ok(()) => 0,
        Err(c) => c,
    }
}

fn build_jail(b: &mut Bx, o: &Opts, j: &NewJail) -> Result<(), i32> {
    storage(b, o, j)?;
    if !j.thin {
        replicate_release(b, o, j)?;
    }
    let _ = std::fs::create_dir_all(b.p(&format!("{}/usr/local", j.path)));
    write_fstab(b, j);
    let conf = jail_conf(b, o, j);
    let _ = fsutil::write_file(&b.p(&format!("{}/jail.conf", j.dir)), &conf);
    if j.thin {
        thin_root(b, j)?;
    }
    jail_etc(b, j);
    finish_settings(b, j.name, o);
    // Step 7: start; a jail that does not run is destroyed again.
    lifecycle::start_one(b, j.name);
    if !b.running(j.name) {
        lifecycle::destroy_quiet(b, j.name);
        return Err(b.error_exit(&format!("[ERROR]: Failed to create jail: {}", j.name)));
    }
    if o.vnet {
        vnet_template(b, o, j, &conf);
    }
    type_template(b, o, j)?;
    if !o.tags.is_empty() {
        super::jailcmds::tags_add(b, j.name, &o.tags);
    }
    lifecycle::restart_one(b, j.name);
    Ok(())
}

/// Step 1 (§1.3): the jail's datasets (ZFS) or directories, and the log directory.
fn storage(b: &mut Bx, o: &Opts, j: &NewJail) -> Result<(), i32> {
    if !b.p(&j.dir).is_dir() {
        if b.conf.zfs() {
            let opts = o
                .zfs_opts
                .clone()
                .unwrap_or_else(|| b.conf.get("bastille_zfs_options"));
            let props = super::zfs_props(&opts);
            let ds = format!("{}/jails/{}", b.conf.zfs_base(), j.name);
            if !o.clone {
                if let Err(e) = crate::zfs::create(b.cx, &ds, false, &props) {
                    b.io.err(&e);
                    return Err(
                        b.error_exit(&format!("[ERROR]: Failed to create jail dataset: {ds}"))
                    );
                }
            }
            if j.thin {
                if let Err(e) = crate::zfs::create(b.cx, &format!("{ds}/root"), false, &props) {
                    b.io.err(&e);
                    return Err(b.error_exit(&format!(
                        "[ERROR]: Failed to create jail root dataset: {ds}/root"
                    )));
                }
            }
        } else if std::fs::create_dir_all(b.p(&j.path)).is_err() {
            return Err(b.error_exit(&format!(
                "[ERROR]: Failed to create jail directory: {}",
                j.path
            )));
        }
    }
    let logs = b.conf.get("bastille_logsdir");
    let _ = std::fs::create_dir_all(b.p(&logs));
    if b.v == Version::Master {
        let _ = std::fs::create_dir_all(b.p(&format!("{logs}/{}", j.name)));
    }
    if j.thin {
        let _ = std::fs::create_dir_all(b.p(&format!("{}/.bastille", j.path)));
        let _ = std::fs::create_dir_all(b.p(&format!("{}/.template", j.path)));
    }
    Ok(())
}

/// Thick and clone jails: the release copied (ZFS: snapshot and send|receive, or a clone).
fn replicate_release(b: &mut Bx, o: &Opts, j: &NewJail) -> Result<(), i32> {
    let base = b.conf.zfs_base();
    let ok = if b.conf.zfs() {
        let stamp = format!("{}", b.cx.tick());
        let target = format!("{base}/jails/{}/root", j.name);
        if o.clone {
            b.info("\nCreating a clonejail...\n");
            let snap = format!("{base}/releases/{}@bastille-clone-{stamp}", j.release);
            crate::zfs::snapshot(b.cx, &snap, false)
                .and_then(|_| crate::zfs::clone(b.cx, &snap, &target, true))
        } else {
            b.info("\nCreating a thickjail. This may take a while...");
            let snap = format!("{base}/releases/{}@bastille-{stamp}", j.release);
            let r = crate::zfs::snapshot(b.cx, &snap, false)
                .and_then(|_| crate::zfs::receive(b.cx, &snap, &target, false));
            let _ = crate::zfs::destroy(b.cx, &snap, false, false);
            let _ = crate::zfs::destroy(b.cx, &format!("{target}@bastille-{stamp}"), false, false);
            r
        }
    } else {
        fsutil::copy_tree(&b.p(&j.rel_dir), &b.p(&j.path), &[]).map_err(|e| e.to_string())
    };
    if let Err(e) = ok {
        b.io.err(&e);
        lifecycle::destroy_quiet(b, j.name);
        return Err(b.error_exit("[ERROR]: Failed release base replication. Please retry create!"));
    }
    Ok(())
}

/// fstab (§1.5): a thin jail's nullfs mount of the release (and its ports tree).
fn write_fstab(b: &mut Bx, j: &NewJail) {
    let (rel_dir, path) = (&j.rel_dir, &j.path);
    let mut fstab = String::new();
    if j.thin {
        fstab = format!("{rel_dir} {path}/.bastille nullfs ro 0 0\n");
        if b.p(&format!("{rel_dir}/usr/ports")).is_dir() {
            fstab.push_str(&format!(
                "{rel_dir}/usr/ports {path}/usr/ports nullfs rw 0 0\n"
            ));
        }
    }
    let _ = fsutil::write_file(&b.p(&format!("{}/fstab", j.dir)), &fstab);
}

/// jail.conf (§1.4).
fn jail_conf(b: &mut Bx, o: &Opts, j: &NewJail) -> String {
    let osrelease = if b.v == Version::V132 {
        format!("osrelease = {};", j.release)
    } else {
        let script = std::fs::read_to_string(b.p(&format!("{}/bin/freebsd-version", j.rel_dir)))
            .unwrap_or_default();
        let v = script
            .lines()
            .find_map(|l| {
                l.strip_prefix("USERLAND_VERSION=\"")
                    .and_then(|x| x.strip_suffix('"'))
            })
            .unwrap_or(j.release)
            .to_string();
        format!("osrelease = \"{v}\";")
    };
    let jailed =
        b.cx.st
            .sysctls
            .get("security.jail.jailed")
            .map(String::as_str)
            == Some("1");
    let ruleset = if jailed {
        0
    } else if o.vnet {
        13
    } else {
        4
    };
    let (name, dir, path) = (j.name, &j.dir, &j.path);
    let mut conf = format!(
        "{name} {{\n  enforce_statfs = 2;\n  devfs_ruleset = {ruleset};\n  exec.clean;\n  exec.consolelog = {};\n  exec.start = '/bin/sh /etc/rc';\n  exec.stop = '/bin/sh /etc/rc.shutdown';\n  host.hostname = {name};\n  mount.devfs;\n  mount.fstab = {dir}/fstab;\n  path = {path};\n  securelevel = 2;\n  {osrelease}\n\n",
        log_path(b, name)
    );
    if o.vnet {
        conf.push_str(&vnet_block(b, o, j));
    } else {
        conf.push_str(&ip_block(j));
    }
    conf
}

/// The network part of a VNET jail's jail.conf (§1.4: -V, -B, -P, -M).
fn vnet_block(b: &Bx, o: &Opts, j: &NewJail) -> String {
    let (name, interface) = (j.name, j.interface);
    let (host, jail) = if o.passthrough {
        (interface.to_string(), interface.to_string())
    } else {
        epair_names(b, name)
    };
    let mut conf = format!("  vnet;\n  vnet.interface = {jail};\n");
    if o.bridge {
        conf.push_str(&format!("  exec.prestart += \"epair0=\\$(ifconfig epair create) && ifconfig \\${{epair0}} up name {host} && ifconfig \\${{epair0%a}}b up name {jail}\";\n"));
        conf.push_str(&format!(
            "  exec.prestart += \"ifconfig {interface} addm {host}\";\n"
        ));
    } else if o.standard {
        let jib = host.trim_start_matches("e0a_");
        conf.push_str(&format!(
            "  exec.prestart += \"jib addm {jib} {interface}\";\n"
        ));
    }
    if o.static_mac && !o.passthrough {
        let mac = format!(
            "58:9c:fc:{:02x}:{:02x}:{:x}",
            name.len() * 7 % 256,
            name.bytes().map(usize::from).sum::<usize>() % 256,
            name.len() % 16
        );
        conf.push_str(&format!(
            "  exec.prestart += \"ifconfig {host} ether {mac}a\";\n"
        ));
        conf.push_str(&format!(
            "  exec.prestart += \"ifconfig {jail} ether {mac}b\";\n"
        ));
    }
    if o.passthrough {
        conf.push_str(&format!(
            "  exec.prestop += \"ifconfig {interface} -vnet {name}\";\n"
        ));
    } else {
        conf.push_str(&format!("  exec.prestart += \"ifconfig {host} description \\\"vnet0 host interface for Bastille jail {name}\\\"\";\n"));
        conf.push_str(&format!(
            "  exec.poststop += \"ifconfig {host} destroy\";\n"
        ));
    }
    conf.push_str("}\n");
    conf
}

/// The address part of a shared-IP jail's jail.conf (§1.4).
fn ip_block(j: &NewJail) -> String {
    let interface = j.interface;
    let ip4_def = match j.ip4 {
        "" => String::new(),
        "inherit" => "ip4 = inherit;".into(),
        "ip_hostname" => "ip_hostname;".into(),
        a => format!("ip4.addr = {interface}|{a};"),
    };
    let (ip6_def, ip6_mode) = match j.ip6 {
        "" => (String::new(), "disable"),
        a => (format!("ip6.addr = {interface}|{a};"), "new"),
    };
    format!("  {ip4_def}\n  {ip6_def}\n  ip6 = {ip6_mode};\n}}\n")
}

/// The directories a thin jail links into `/.bastille` (§1.3 step 4).
const THIN_LINKS: [&str; 15] = [
    "bin",
    "boot",
    "lib",
    "libexec",
    "rescue",
    "sbin",
    "usr/bin",
    "usr/include",
    "usr/lib",
    "usr/lib32",
    "usr/libdata",
    "usr/libexec",
    "usr/sbin",
    "usr/share",
    "usr/src",
];

/// The writable parts a thin jail copies from the release (§1.3 step 4).
const THIN_COPIES: [&str; 14] = [
    ".cshrc",
    ".profile",
    "COPYRIGHT",
    "dev",
    "etc",
    "media",
    "mnt",
    "net",
    "proc",
    "root",
    "tmp",
    "var",
    "usr/obj",
    "usr/tests",
];

/// Thin: symlinks into /.bastille and copies of the writable parts.
fn thin_root(b: &mut Bx, j: &NewJail) -> Result<(), i32> {
    b.info("\nCreating a thinjail...");
    let root = b.p(&j.path);
    for link in THIN_LINKS {
        let l = root.join(link);
        if let Some(par) = l.parent() {
            let _ = std::fs::create_dir_all(par);
        }
        let _ = fsutil::remove_any(&l);
        let _ = symlink(format!("/.bastille/{link}"), &l);
    }
    for f in THIN_COPIES {
        let src = b.p(&format!("{}/{f}", j.rel_dir));
        let dst = root.join(f);
        let r = if src.is_dir() {
            fsutil::copy_tree(&src, &dst, &[])
        } else if src.is_file() {
            std::fs::copy(&src, &dst).map(|_| ())
        } else {
            Ok(())
        };
        if r.is_err() {
            lifecycle::destroy_quiet(b, j.name);
            return Err(b.error_exit("[ERROR]: Failed to copy release files. Please retry create!"));
        }
    }
    Ok(())
}

/// §1.3 step 5: /home, the time zone, an empty /etc/fstab, the adjkerntz crontab line commented out.
fn jail_etc(b: &mut Bx, j: &NewJail) {
    let root = b.p(&j.path);
    let _ = std::fs::create_dir_all(root.join("home"));
    let _ = std::fs::create_dir_all(root.join("etc"));
    let tz = b.conf.get("bastille_tzdata");
    let tz = if tz.is_empty() {
        std::fs::read_to_string(b.p("/var/db/zoneinfo"))
            .unwrap_or_default()
            .trim()
            .to_string()
    } else {
        tz
    };
    let _ = fsutil::remove_any(&root.join("etc/localtime"));
    let _ = symlink(
        format!("/usr/share/zoneinfo/{tz}"),
        root.join("etc/localtime"),
    );
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("etc/fstab"));
    if let Ok(cron) = std::fs::read_to_string(root.join("etc/crontab")) {
        let fixed: Vec<String> = cron
            .lines()
            .map(|l| {
                if l.contains("adjkerntz -a") && !l.starts_with('#') {
                    format!("#{l} # Disabled by bastille")
                } else {
                    l.to_string()
                }
            })
            .collect();
        let _ = std::fs::write(root.join("etc/crontab"), fixed.join("\n") + "\n");
    }
}

/// Step 8: the vnet template's rc.conf lines (§1.6).
fn vnet_template(b: &mut Bx, o: &Opts, j: &NewJail, conf: &str) {
    let (ip4, ip6, interface) = (j.ip4, j.ip6, j.interface);
    let jail_if = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("vnet.interface = "))
        .unwrap_or("")
        .trim_end_matches(';')
        .replace('-', "_");
    let (ifconfig_inet, gateway) = if ip4.is_empty() {
        (String::new(), "NO".to_string())
    } else if ["0.0.0.0", "DHCP", "SYNCDHCP"].contains(&ip4) {
        ("SYNCDHCP".to_string(), "NO".to_string())
    } else {
        let gw = if !o.gateway.is_empty() {
            o.gateway.clone()
        } else if !b.conf.get("bastille_network_gateway").is_empty() {
            b.conf.get("bastille_network_gateway")
        } else {
            b.cx.st
                .default_route
                .as_ref()
                .map(|r| r.gateway.clone())
                .unwrap_or_default()
        };
        (format!("inet {ip4}"), gw)
    };
    let (ifconfig6, gw6) = if ip6.is_empty() {
        (String::new(), "NO".to_string())
    } else if ip6 == "SLAAC" {
        (
            "inet6 -ifdisabled accept_rtadv".to_string(),
            "NO".to_string(),
        )
    } else {
        (
            format!("inet6 -ifdisabled {ip6}"),
            b.conf.get("bastille_network_gateway6"),
        )
    };
    let vnet_name = if o.passthrough {
        interface.to_string()
    } else {
        "vnet0".to_string()
    };
    apply_template(
        b,
        j.name,
        "default/vnet",
        &[
            (format!("ifconfig_{jail_if}_name"), vnet_name.clone()),
            (format!("ifconfig_{vnet_name}"), ifconfig_inet),
            (
                format!("ifconfig_{vnet_name}_descr"),
                format!("jail interface for {interface}"),
            ),
            (format!("ifconfig_{vnet_name}_ipv6"), ifconfig6),
            ("defaultrouter".into(), gateway),
            ("ipv6_defaultrouter".into(), gw6),
        ],
    );
}

/// Step 9: the type template (base: rc.conf flags and resolv.conf), then `-n` nameservers.
fn type_template(b: &mut Bx, o: &Opts, j: &NewJail) -> Result<(), i32> {
    let root = b.p(&j.path);
    let tpl = if o.thick {
        "default/thick"
    } else if o.clone {
        "default/clone"
    } else {
        "default/thin"
    };
    apply_template(
        b,
        j.name,
        tpl,
        &[
            ("syslogd_flags".into(), "-ss".into()),
            ("sendmail_enable".into(), "NO".into()),
            ("sendmail_submit_enable".into(), "NO".into()),
            ("sendmail_outbound_enable".into(), "NO".into()),
            ("sendmail_msp_queue_enable".into(), "NO".into()),
            ("cron_flags".into(), "-J 60".into()),
        ],
    );
    let _ = crate::sysrc::set_var(
        &root.join("etc/periodic.conf"),
        "daily_status_world_kernel",
        "NO",
    );
    let resolv_src = b.conf.get("bastille_resolv_conf");
    let resolv_src = if resolv_src.is_empty() {
        "/etc/resolv.conf".to_string()
    } else {
        resolv_src
    };
    let Ok(t) = std::fs::read_to_string(b.p(&resolv_src)) else {
        return Err(b.error_exit(&format!(
            "[ERROR]: Failed to execute command: cp {resolv_src} etc/resolv.conf"
        )));
    };
    let _ = std::fs::write(root.join("etc/resolv.conf"), t);
    if !o.nameserver.is_empty() {
        let old = std::fs::read_to_string(root.join("etc/resolv.conf")).unwrap_or_default();
        let mut lines: Vec<String> = old
            .lines()
            .filter(|l| !l.starts_with("nameserver"))
            .map(str::to_string)
            .collect();
        lines.extend(o.nameserver.split(',').map(|n| format!("nameserver {n}")));
        let _ = std::fs::write(root.join("etc/resolv.conf"), lines.join("\n") + "\n");
    }
    Ok(())
}

/// Applies a template's SYSRC lines to the jail's rc.conf and prints Bastille-like progress.
fn apply_template(b: &mut Bx, name: &str, tpl: &str, vars: &[(String, String)]) {
    b.info(&format!("\n[{name}]:"));
    b.info(&format!("Applying template: {tpl}..."));
    let rc = b.p(&format!("{}/root/etc/rc.conf", b.jail_dir(name)));
    for (k, v) in vars {
        let old = crate::sysrc::set_var(&rc, k, v)
            .ok()
            .flatten()
            .unwrap_or_default();
        b.data(&format!("{k}: {old} -> {v}"));
    }
    b.info(&format!("\nTemplate applied: {tpl}"));
}
