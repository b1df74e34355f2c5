//! `ifconfig`: interfaces, bridges, epairs, addresses (reference/bastille.md §7.3).

use std::net::Ipv4Addr;

use crate::io::{fail, Io};
use crate::opts::{Spec, GETOPT};
use crate::state::{Ctx, IfKind, Iface, Inet};

fn no_such(io: &mut Io, name: &str) -> i32 {
    fail(io, &format!("ifconfig: interface {name} does not exist"))
}

/// Names visible from the current stack, in creation-ish order (lo0, vtnet0 first).
pub fn names(cx: &Ctx) -> Vec<String> {
    let scope = cx.jail_vnet_scope();
    let mut v: Vec<(u8, String)> = cx
        .st
        .interfaces
        .iter()
        .filter(|(_, i)| i.vnet == scope)
        .map(|(n, i)| {
            let rank = match i.kind {
                IfKind::Ether => 0,
                IfKind::Loopback => 1,
                IfKind::Bridge => 2,
                IfKind::Epair => 3,
                IfKind::Tun => 4,
            };
            (rank, n.clone())
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, n)| n).collect()
}

/// Names in interface group `group` (renamed clones stay in their group).
pub fn group(cx: &Ctx, group: &str) -> Vec<String> {
    names(cx)
        .into_iter()
        .filter(|n| cx.st.interfaces[n].groups.iter().any(|g| g == group))
        .collect()
}

/// Creates a cloned interface; `what` is `bridge`, `bridgeN`, `epair`, `epairN`, `lo`, `loN`.
/// Returns the name printed by `ifconfig X create` (`epair0a` for epairs).
pub fn create(cx: &mut Ctx, what: &str) -> Result<String, String> {
    let (kind, base) = if let Some(rest) = what.strip_prefix("bridge") {
        (IfKind::Bridge, rest)
    } else if let Some(rest) = what.strip_prefix("epair") {
        (IfKind::Epair, rest)
    } else if let Some(rest) = what.strip_prefix("lo") {
        (IfKind::Loopback, rest)
    } else {
        return Err(format!(
            "ifconfig: SIOCIFCREATE2 ({what}): Invalid argument"
        ));
    };
    let unit = if base.is_empty() {
        cx.free_unit(kind)
    } else {
        match base.parse::<u32>() {
            Ok(u) => u,
            Err(_) => {
                return Err(format!(
                    "ifconfig: SIOCIFCREATE2 ({what}): Invalid argument"
                ))
            }
        }
    };
    let taken = cx
        .st
        .interfaces
        .values()
        .any(|i| i.kind == kind && i.unit == unit);
    let prefix = match kind {
        IfKind::Bridge => "bridge",
        IfKind::Epair => "epair",
        _ => "lo",
    };
    let name = format!("{prefix}{unit}");
    if taken
        || cx.st.interfaces.contains_key(&name)
        || cx.st.interfaces.contains_key(&format!("{name}a"))
    {
        return Err(format!("ifconfig: SIOCIFCREATE2 ({what}): File exists"));
    }
    let scope = cx.jail_vnet_scope();
    match kind {
        IfKind::Epair => {
            let a = format!("{name}a");
            let b = format!("{name}b");
            let mut ia = Iface::new(kind, unit, format!("02:00:00:00:{unit:02x}:0a"));
            let mut ib = Iface::new(kind, unit, format!("02:00:00:00:{unit:02x}:0b"));
            ia.peer = Some(b.clone());
            ib.peer = Some(a.clone());
            ia.vnet = scope.clone();
            ib.vnet = scope;
            cx.st.interfaces.insert(a.clone(), ia);
            cx.st.interfaces.insert(b, ib);
            Ok(a)
        }
        _ => {
            let mac = cx.new_mac("00");
            let mut i = Iface::new(kind, unit, mac);
            i.vnet = scope;
            cx.st.interfaces.insert(name.clone(), i);
            Ok(name)
        }
    }
}

/// Destroys an interface (both ends of an epair) and drops it from every bridge.
pub fn destroy(cx: &mut Ctx, name: &str) -> Result<(), String> {
    let Some(i) = cx.st.interfaces.get(name).cloned() else {
        return Err(format!("ifconfig: interface {name} does not exist"));
    };
    if matches!(i.kind, IfKind::Ether) || (i.kind == IfKind::Loopback && i.unit == 0) {
        return Err("ifconfig: SIOCIFDESTROY: Invalid argument".to_string());
    }
    let mut gone = vec![name.to_string()];
    if let Some(p) = i.peer {
        gone.push(p);
    }
    for g in &gone {
        cx.st.interfaces.remove(g);
    }
    for other in cx.st.interfaces.values_mut() {
        other.members.retain(|m| !gone.contains(m));
        other.private.retain(|m| !gone.contains(m));
    }
    for j in cx.st.jails.values_mut() {
        j.vnet_ifaces.retain(|m| !gone.contains(m));
    }
    Ok(())
}

/// Renames `old` to `new`, keeping peer links and bridge memberships.
pub fn rename(cx: &mut Ctx, old: &str, new: &str) -> Result<(), String> {
    if new.len() > 15 || new.is_empty() {
        return Err("ifconfig: ioctl SIOCSIFNAME (set name): Invalid argument".into());
    }
    if cx.st.interfaces.contains_key(new) {
        return Err("ifconfig: ioctl SIOCSIFNAME (set name): File exists".into());
    }
    let Some(i) = cx.st.interfaces.remove(old) else {
        return Err(format!("ifconfig: interface {old} does not exist"));
    };
    if let Some(p) = &i.peer {
        if let Some(pi) = cx.st.interfaces.get_mut(p) {
            pi.peer = Some(new.to_string());
        }
    }
    for other in cx.st.interfaces.values_mut() {
        for m in other.members.iter_mut().chain(other.private.iter_mut()) {
            if m == old {
                *m = new.to_string();
            }
        }
    }
    for j in cx.st.jails.values_mut() {
        for m in j.vnet_ifaces.iter_mut() {
            if m == old {
                *m = new.to_string();
            }
        }
    }
    cx.st.interfaces.insert(new.to_string(), i);
    Ok(())
}

/// Parses `a.b.c.d/N`; `None` when the text is not that form.
pub fn parse_cidr(s: &str) -> Option<Inet> {
    let (a, p) = s.split_once('/')?;
    let addr: Ipv4Addr = a.parse().ok()?;
    let prefix: u8 = p.parse().ok()?;
    (prefix <= 32).then_some(Inet { addr, prefix })
}

fn parse_netmask(s: &str) -> Option<u8> {
    let v = if let Some(h) = s.strip_prefix("0x") {
        u32::from_str_radix(h, 16).ok()?
    } else {
        u32::from(s.parse::<Ipv4Addr>().ok()?)
    };
    let ones = v.leading_ones();
    (v.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// Adds an IPv4 address. FreeBSD 15 refuses an address without a mask (#1361, §1.6).
fn add_inet(
    cx: &mut Ctx,
    name: &str,
    words: &[String],
    i: &mut usize,
    alias: bool,
) -> Result<(), String> {
    let Some(a) = words.get(*i) else {
        return Err("ifconfig: missing argument".into());
    };
    *i += 1;
    let inet = if a.contains('/') {
        parse_cidr(a).ok_or_else(|| format!("ifconfig: {a}: bad value"))?
    } else {
        let addr: Ipv4Addr = a.parse().map_err(|_| format!("ifconfig: {a}: bad value"))?;
        if words.get(*i).map(String::as_str) == Some("netmask") {
            let m = words.get(*i + 1).ok_or("ifconfig: missing argument")?;
            *i += 2;
            let prefix = parse_netmask(m).ok_or_else(|| format!("ifconfig: {m}: bad value"))?;
            Inet { addr, prefix }
        } else {
            return Err(
                "ifconfig: ERROR: setting interface address without mask is no longer supported."
                    .into(),
            );
        }
    };
    let iface = cx.st.interfaces.get_mut(name).expect("checked by caller");
    iface.inet.retain(|x| x.addr != inet.addr);
    if alias || iface.inet.is_empty() {
        iface.inet.push(inet);
    } else {
        iface.inet[0] = inet;
    }
    iface.up = true;
    Ok(())
}

/// Applies `ifconfig NAME words...` (everything after the interface name). Prints renamed names.
pub fn configure(cx: &mut Ctx, name: &str, words: &[String], io: &mut Io) -> Result<(), String> {
    let mut name = name.to_string();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        i += 1;
        if !cx.st.interfaces.contains_key(&name) {
            return Err(format!("ifconfig: interface {name} does not exist"));
        }
        match w {
            "up" => cx.st.interfaces.get_mut(&name).expect("exists").up = true,
            "down" => cx.st.interfaces.get_mut(&name).expect("exists").up = false,
            "inet" => {
                if words.get(i).map(String::as_str) == Some("-alias") {
                    continue;
                }
                let alias = words[i..].iter().any(|x| x == "alias");
                add_inet(cx, &name, words, &mut i, alias)?;
            }
            "alias" | "add" => {}
            "-alias" | "delete" => {
                let a = arg(words, &mut i)?;
                delete_inet(cx, &name, a.split('/').next().unwrap_or(&a))?;
            }
            "inet6" => {
                let mut v = vec![];
                while let Some(x) = words.get(i) {
                    if ["up", "down", "description", "descr", "name"].contains(&x.as_str()) {
                        break;
                    }
                    v.push(x.clone());
                    i += 1;
                }
                let addr: Vec<String> = v.into_iter().filter(|x| x.contains(':')).collect();
                cx.st
                    .interfaces
                    .get_mut(&name)
                    .expect("exists")
                    .inet6
                    .extend(addr);
            }
            "netmask" | "broadcast" | "prefixlen" => i += 1,
            "name" => {
                let new = arg(words, &mut i)?;
                rename(cx, &name, &new)?;
                io.out(&new);
                name = new;
            }
            "description" | "descr" => {
                let d = arg(words, &mut i)?;
                cx.st.interfaces.get_mut(&name).expect("exists").description = Some(d);
            }
            "-description" | "-descr" => {
                cx.st.interfaces.get_mut(&name).expect("exists").description = None
            }
            "mtu" => {
                let m = words
                    .get(i)
                    .and_then(|m| m.parse().ok())
                    .ok_or("ifconfig: mtu: bad value")?;
                i += 1;
                cx.st.interfaces.get_mut(&name).expect("exists").mtu = m;
            }
            "ether" | "lladdr" | "link" => {
                cx.st.interfaces.get_mut(&name).expect("exists").mac = arg(words, &mut i)?;
            }
            "group" => {
                let g = arg(words, &mut i)?;
                let iface = cx.st.interfaces.get_mut(&name).expect("exists");
                if !iface.groups.contains(&g) {
                    iface.groups.push(g);
                }
            }
            "addm" | "deletem" => member(cx, &name, w == "addm", &arg(words, &mut i)?)?,
            // `private IF` / `-private IF` (if_bridge): a private member forwards nothing to another private one.
            "private" | "-private" => private(cx, &name, w == "private", &arg(words, &mut i)?)?,
            "destroy" | "unplumb" => {
                destroy(cx, &name)?;
                return Ok(());
            }
            "vnet" | "-vnet" => move_vnet(cx, &name, &arg(words, &mut i)?, w == "vnet")?,
            "create" | "plumb" => {}
            "-ifdisabled" | "ifdisabled" | "accept_rtadv" | "-accept_rtadv" | "auto_linklocal"
            | "-auto_linklocal" | "stp" | "-stp" | "edge" | "-edge" | "learn" | "-learn"
            | "promisc" | "-promisc" | "-vlanhwtag" | "vlanhwtag" => {}
            other => return Err(format!("ifconfig: {other}: bad value")),
        }
    }
    Ok(())
}

/// The value word after a parameter (`name NEW`, `addm IF`).
fn arg(words: &[String], i: &mut usize) -> Result<String, String> {
    let v = words.get(*i).cloned().ok_or("ifconfig: missing argument")?;
    *i += 1;
    Ok(v)
}

/// `-alias ADDR`.
fn delete_inet(cx: &mut Ctx, name: &str, addr: &str) -> Result<(), String> {
    let iface = cx.st.interfaces.get_mut(name).expect("exists");
    let before = iface.inet.len();
    iface.inet.retain(|x| x.addr.to_string() != addr);
    if before == iface.inet.len() {
        return Err("ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address".into());
    }
    Ok(())
}

/// `addm IF` / `deletem IF` on a bridge.
fn member(cx: &mut Ctx, name: &str, add: bool, m: &str) -> Result<(), String> {
    let m = m.to_string();
    let is_bridge = cx.st.interfaces[name].kind == IfKind::Bridge;
    let op = if add { "BRDGADD" } else { "BRDGDEL" };
    if !is_bridge {
        // (unverified) wording for a non-bridge target
        return Err(format!("ifconfig: {op} {m}: Operation not supported"));
    }
    if !cx.iface_visible(&m) {
        return Err(format!("ifconfig: {op} {m}: No such file or directory"));
    }
    let in_other = cx
        .st
        .interfaces
        .iter()
        .any(|(n, x)| n != name && x.members.contains(&m));
    let br = cx.st.interfaces.get_mut(name).expect("exists");
    if add {
        if br.members.contains(&m) || in_other {
            return Err(format!("ifconfig: {op} {m}: File exists"));
        }
        br.members.push(m);
    } else {
        if !br.members.contains(&m) {
            return Err(format!("ifconfig: {op} {m}: No such file or directory"));
        }
        br.members.retain(|x| x != &m);
        br.private.retain(|x| x != &m);
    }
    Ok(())
}

/// `private IF` / `-private IF` on a bridge.
fn private(cx: &mut Ctx, name: &str, on: bool, m: &str) -> Result<(), String> {
    let m = m.to_string();
    if cx.st.interfaces[name].kind != IfKind::Bridge {
        // (unverified) wording for a non-bridge target
        return Err(format!(
            "ifconfig: BRDGGIFFLGS {m}: Operation not supported"
        ));
    }
    let br = cx.st.interfaces.get_mut(name).expect("exists");
    if !br.members.contains(&m) {
        // (unverified) wording: the flag ioctls fail with ENOENT for a non-member
        return Err(format!(
            "ifconfig: BRDGGIFFLGS {m}: No such file or directory"
        ));
    }
    br.private.retain(|x| x != &m);
    if on {
        br.private.push(m);
    }
    Ok(())
}

/// Moves an interface into (`vnet`) or out of (`-vnet`) a running VNET jail.
pub fn move_vnet(cx: &mut Ctx, name: &str, jail: &str, into: bool) -> Result<(), String> {
    let Some(j) = cx
        .st
        .jails
        .iter()
        .find(|(n, x)| *n == jail || x.jid.to_string() == jail)
        .map(|(n, _)| n.clone())
    else {
        return Err(format!("ifconfig: jail \"{jail}\" not found"));
    };
    if !cx.st.jails[&j].vnet {
        return Err("ifconfig: SIOCSIFVNET: Invalid argument".into());
    }
    let Some(iface) = cx.st.interfaces.get_mut(name) else {
        return Err(format!("ifconfig: interface {name} does not exist"));
    };
    iface.vnet = if into { Some(j.clone()) } else { None };
    let jail = cx.st.jails.get_mut(&j).expect("found");
    if into {
        if !jail.vnet_ifaces.iter().any(|x| x == name) {
            jail.vnet_ifaces.push(name.to_string());
        }
    } else {
        jail.vnet_ifaces.retain(|x| x != name);
    }
    for other in cx.st.interfaces.values_mut() {
        other.members.retain(|m| m != name);
        other.private.retain(|m| m != name);
    }
    Ok(())
}

/// The `ifconfig NAME` block (§7.3). `cidr` selects `-f inet:cidr`.
pub fn show(cx: &Ctx, name: &str, cidr: bool) -> String {
    let i = &cx.st.interfaces[name];
    let mut s = String::new();
    let flags = match (i.kind, i.up) {
        (IfKind::Loopback, true) => "1008049<UP,LOOPBACK,RUNNING,MULTICAST,LOWER_UP>",
        (IfKind::Loopback, false) => "1008008<LOOPBACK,MULTICAST,LOWER_UP>",
        (IfKind::Tun, true) => "1008051<UP,POINTOPOINT,RUNNING,MULTICAST,LOWER_UP>",
        (IfKind::Tun, false) => "1008010<POINTOPOINT,MULTICAST,LOWER_UP>",
        (_, true) => "1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP>",
        (_, false) => "1008802<BROADCAST,SIMPLEX,MULTICAST,LOWER_UP>",
    };
    s.push_str(&format!("{name}: flags={flags} metric 0 mtu {}\n", i.mtu));
    if let Some(d) = &i.description {
        s.push_str(&format!("\tdescription: {d}\n"));
    }
    match i.kind {
        IfKind::Loopback => s.push_str("\toptions=680003<RXCSUM,TXCSUM,LINKSTATE,RXCSUM_IPV6,TXCSUM_IPV6>\n"),
        IfKind::Bridge => s.push_str("\toptions=0\n"),
        IfKind::Epair => s.push_str("\toptions=8<VLAN_MTU>\n"),
        IfKind::Tun => s.push_str("\toptions=80000<LINKSTATE>\n"),
        IfKind::Ether => s.push_str("\toptions=4c079b<RXCSUM,TXCSUM,VLAN_MTU,VLAN_HWTAGGING,VLAN_HWCSUM,TSO4,TSO6,LRO,VLAN_HWTSO,LINKSTATE>\n"),
    }
    if i.kind != IfKind::Loopback && i.kind != IfKind::Tun {
        s.push_str(&format!("\tether {}\n", i.mac));
    }
    for a in &i.inet {
        if i.kind == IfKind::Loopback {
            s.push_str(&format!("\tinet {} netmask 0x{:08x}\n", a.addr, a.mask()));
        } else if i.kind == IfKind::Tun && cidr {
            s.push_str(&format!("\tinet {}/{} --> {}\n", a.addr, a.prefix, a.addr));
        } else if i.kind == IfKind::Tun {
            s.push_str(&format!(
                "\tinet {} --> {} netmask 0x{:08x}\n",
                a.addr,
                a.addr,
                a.mask()
            ));
        } else if cidr {
            s.push_str(&format!(
                "\tinet {}/{} broadcast {}\n",
                a.addr,
                a.prefix,
                a.broadcast()
            ));
        } else {
            s.push_str(&format!(
                "\tinet {} netmask 0x{:08x} broadcast {}\n",
                a.addr,
                a.mask(),
                a.broadcast()
            ));
        }
    }
    for a in &i.inet6 {
        let (addr, len) = a.split_once('/').unwrap_or((a, "64"));
        s.push_str(&format!("\tinet6 {addr} prefixlen {len}\n"));
    }
    if i.kind == IfKind::Bridge {
        s.push_str("\tid 00:00:00:00:00:00 priority 32768 hellotime 2 fwddelay 15\n");
        s.push_str("\tmaxage 20 holdcnt 6 proto rstp maxaddr 2000 timeout 1200\n");
        s.push_str("\troot id 00:00:00:00:00:00 priority 32768 ifcost 0 port 0\n");
        for (n, m) in i.members.iter().enumerate() {
            // IFBIF_PRIVATE is 0x800 and prints between STICKY and EDGE (IFBIFBITS).
            let flags = if i.private.contains(m) {
                "943<LEARNING,DISCOVER,PRIVATE,AUTOEDGE,AUTOPTP>"
            } else {
                "143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>"
            };
            s.push_str(&format!("\tmember: {m} flags={flags}\n"));
            s.push_str(&format!(
                "\t        ifmaxaddr 0 port {} priority 128 path cost 2000\n",
                n + 5
            ));
        }
    }
    if !i.groups.is_empty() {
        s.push_str(&format!("\tgroups: {}\n", i.groups.join(" ")));
    }
    match i.kind {
        IfKind::Ether | IfKind::Epair => {
            s.push_str("\tmedia: Ethernet autoselect (10Gbase-T <full-duplex>)\n");
            s.push_str("\tstatus: active\n");
            s.push_str("\tnd6 options=29<PERFORMNUD,IFDISABLED,AUTO_LINKLOCAL>\n");
        }
        IfKind::Bridge => s.push_str("\tnd6 options=9<PERFORMNUD,IFDISABLED>\n"),
        IfKind::Loopback => s.push_str("\tnd6 options=21<PERFORMNUD,AUTO_LINKLOCAL>\n"),
        IfKind::Tun => s.push_str("\tnd6 options=103<PERFORMNUD,ACCEPT_RTADV,NO_DAD>\n"),
    }
    s
}

/// ifconfig's options (`adf:g:j:klmnuvCD`); the interface and its parameters (`-vnet`, `-alias`) follow as operands.
const SPEC: Spec = Spec {
    tool: "ifconfig",
    flags: "adklmnuvCD",
    valued: "fgj",
    usage: "usage: ifconfig [-j jail] [-f type:format] %sinterface address_family\n\t[address [dest_address]] [parameters]",
    ..GETOPT
};

/// The `ifconfig` command line.
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    // -f inet:cidr|inet:dotted|... (output format only)
    let cidr = p
        .value("f")
        .is_some_and(|f| f.split(',').any(|f| f == "inet:cidr"));
    let (up_only, down_only) = (p.has("u"), p.has("d"));
    if p.has("l") {
        let list: Vec<String> = names(cx)
            .into_iter()
            .filter(|n| {
                let up = cx.st.interfaces[n].up;
                (!up_only || up) && (!down_only || !up)
            })
            .collect();
        io.out(&list.join(" "));
        return 0;
    }
    if let Some(g) = p.value("g") {
        for n in group(cx, g) {
            io.out(&n);
        }
        return 0;
    }
    let Some((name, words)) = p.operands.split_first() else {
        for n in names(cx) {
            let up = cx.st.interfaces[&n].up;
            if (!up_only || up) && (!down_only || !up) {
                io.out.push_str(&show(cx, &n, cidr));
            }
        }
        return 0;
    };
    let name = name.clone();
    if words.first().map(String::as_str) == Some("create")
        || words.first().map(String::as_str) == Some("plumb")
    {
        if !cx.is_root() {
            return fail(
                io,
                &format!("ifconfig: SIOCIFCREATE2 ({name}): Operation not permitted"),
            );
        }
        let created = match create(cx, &name) {
            Ok(n) => n,
            Err(e) => return fail(io, &e),
        };
        let rest = &words[1..];
        let renames = rest.iter().any(|w| w == "name");
        if let Err(e) = configure(cx, &created, rest, io) {
            return fail(io, &e);
        }
        if !renames {
            io.out(&created);
        }
        return 0;
    }
    if !cx.iface_visible(&name) {
        return no_such(io, &name);
    }
    if words.is_empty() || (words.len() == 1 && words[0] == "inet") {
        io.out.push_str(&show(cx, &name, cidr));
        return 0;
    }
    if !cx.is_root() {
        return fail(io, "ifconfig: ioctl (SIOCAIFADDR): permission denied");
    }
    match configure(cx, &name, words, io) {
        Ok(()) => 0,
        Err(e) => fail(io, &e),
    }
}
