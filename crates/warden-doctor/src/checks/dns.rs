//! dnsmasq: the service runs, listens on `127.0.0.1:53` and `<gateway>:53`, serves the layout's zone file, and
//! answers every registered name with its address through both listeners (real queries, see
//! [`crate::dns_client`]). On a simulated host no real dnsmasq answers: those checks are skipped, saying so.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use warden_core::linux_plan::LinuxPaths;
use warden_core::render::{dnsmasq_conf, rc_conf::DNSMASQ_CONF};

use crate::dns_client::query_a;
use crate::report::Check;
use crate::{said, BackendKind, Ctx};

const SIMULATED: &str =
    "simulated host: no real dnsmasq answers queries here (dns.zone checks the zone file instead)";

fn linux_paths(ctx: &Ctx) -> LinuxPaths {
    LinuxPaths {
        state_dir: ctx.opts.state_dir.display().to_string(),
    }
}

fn conf_path(ctx: &Ctx) -> String {
    match ctx.opts.backend {
        BackendKind::Linux => linux_paths(ctx).dnsmasq_conf(),
        BackendKind::Bastille => DNSMASQ_CONF.to_string(),
    }
}

/// `dns.service`: dnsmasq runs (Linux: Warden's pid file names a live dnsmasq in this network namespace;
/// FreeBSD: `service dnsmasq onestatus`).
pub fn service(ctx: &Ctx) -> Vec<Check> {
    let remedy = ctx.setup("dns");
    let check = match ctx.opts.backend {
        BackendKind::Linux => {
            let pid_file = linux_paths(ctx).dnsmasq_pid();
            let expected = format!("a live dnsmasq in this network namespace, pid in {pid_file}");
            match linux_dnsmasq(&pid_file) {
                Ok(pid) => Check::ok(
                    "dns.service",
                    expected,
                    format!("dnsmasq runs as pid {pid}"),
                ),
                Err(seen) => Check::fail("dns.service", expected, seen, remedy),
            }
        }
        BackendKind::Bastille => {
            let expected = "service dnsmasq onestatus: running";
            match ctx.run(&["service", "dnsmasq", "onestatus"]) {
                Ok(out) => {
                    let running = warden_freebsd::parse::service::running(out.status, &out.stdout);
                    let seen = out.stdout.lines().next().unwrap_or("").trim().to_string();
                    let seen = if seen.is_empty() { said(&out) } else { seen };
                    Check::verdict("dns.service", running, expected, seen, remedy)
                }
                Err(e) => Check::fail("dns.service", expected, e.to_string(), remedy),
            }
        }
    };
    vec![check]
}

/// The pid of Warden's dnsmasq, or why there is none.
fn linux_dnsmasq(pid_file: &str) -> Result<u32, String> {
    let text =
        std::fs::read_to_string(pid_file).map_err(|e| format!("no pid file {pid_file}: {e}"))?;
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{pid_file} holds {:?}, not a pid", text.trim()))?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_err(|_| format!("pid {pid} from {pid_file} is not running"))?;
    if comm.trim() != "dnsmasq" {
        return Err(format!(
            "pid {pid} from {pid_file} is {:?}, not dnsmasq",
            comm.trim()
        ));
    }
    let theirs =
        std::fs::read_link(format!("/proc/{pid}/ns/net")).map_err(|e| format!("pid {pid}: {e}"))?;
    let ours = std::fs::read_link("/proc/self/ns/net").map_err(|e| format!("this process: {e}"))?;
    if theirs != ours {
        return Err(format!(
            "dnsmasq pid {pid} runs in another network namespace ({})",
            theirs.display()
        ));
    }
    Ok(pid)
}

/// UDP sockets bound in this network namespace, from `/proc/net/udp` (`0100007F:0035` is 127.0.0.1:53).
pub fn parse_proc_net_udp(text: &str) -> Vec<SocketAddrV4> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let local = line.split_whitespace().nth(1)?;
            let (ip, port) = local.split_once(':')?;
            let ip = u32::from_str_radix(ip, 16).ok()?;
            let port = u16::from_str_radix(port, 16).ok()?;
            // The kernel prints the address in host (little-endian) byte order.
            Some(SocketAddrV4::new(Ipv4Addr::from(u32::from_be(ip)), port))
        })
        .collect()
}

/// UDP sockets bound in this network namespace, read until every `wanted` address is seen (at most ten reads).
///
/// The kernel renders `/proc/net/udp` a page at a time and finds where to go on by counting sockets from the
/// start, so a socket of this namespace closing between two reads shifts the count and one live socket is
/// skipped (seen in CI: the gateway listener missing while queries to it were answered). A skip never invents a
/// socket, so the union of a few reads is the table; one that lacks an address ten times lacks it.
fn linux_udp_bound(wanted: &[SocketAddrV4]) -> std::io::Result<Vec<SocketAddrV4>> {
    let mut seen: Vec<SocketAddrV4> = Vec::new();
    for _ in 0..10 {
        // thread-self: the calling thread's namespace (the same as /proc/net for the one-threaded CLI).
        for addr in parse_proc_net_udp(&read_proc_table("/proc/thread-self/net/udp")?) {
            if !seen.contains(&addr) {
                seen.push(addr);
            }
        }
        let any = |a: &SocketAddrV4| {
            seen.iter()
                .any(|s| s == a || (s.ip().is_unspecified() && s.port() == a.port()))
        };
        if wanted.iter().all(any) {
            break;
        }
    }
    Ok(seen)
}

/// A `/proc` table read in page-sized calls: `fs::read_to_string` starts with 32-byte probe reads, each of which
/// makes the kernel find its place in the table again.
fn read_proc_table(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    let mut page = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut page)? {
            0 => break,
            n => out.extend_from_slice(&page[..n]),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Local addresses of `sockstat -4l` lines (`USER COMMAND PID FD PROTO LOCAL FOREIGN`) for UDP.
pub fn parse_sockstat(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && f[4].starts_with("udp")).then(|| f[5].to_string())
        })
        .collect()
}

/// `dns.listen.loopback` and `dns.listen.gateway`: something listens on UDP port 53 at each address.
pub fn listen(ctx: &Ctx) -> Vec<Check> {
    let gateway = ctx.layout().gateway;
    let remedy = ctx.setup("dns");
    let targets = [
        (
            "dns.listen.loopback",
            Ipv4Addr::LOCALHOST,
            vec!["dns.service"],
        ),
        (
            "dns.listen.gateway",
            gateway,
            vec!["dns.service", "network.bridge"],
        ),
    ];
    let bound: Result<Vec<String>, (bool, String)> = match ctx.opts.backend {
        BackendKind::Linux => {
            let wanted: Vec<SocketAddrV4> = targets
                .iter()
                .map(|(_, addr, _)| SocketAddrV4::new(*addr, 53))
                .collect();
            linux_udp_bound(&wanted)
                .map(|list| list.iter().map(|a| a.to_string()).collect())
                .map_err(|e| (false, format!("cannot read /proc/net/udp: {e}")))
        }
        BackendKind::Bastille => match ctx.run(&["sockstat", "-4l", "-p", "53"]) {
            Ok(out) if out.ok() => Ok(parse_sockstat(&out.stdout)),
            Ok(out) => Err((false, format!("sockstat -4l -p 53 → {}", said(&out)))),
            Err(e) => Err((e.is_missing(), e.to_string())),
        },
    };
    targets
        .into_iter()
        .map(|(name, addr, deps)| {
            let expected = format!("dnsmasq listening on udp {addr}:53");
            let deps: Vec<&str> = deps.to_vec();
            let check = match &bound {
                Ok(list) => {
                    let want = format!("{addr}:53");
                    let hit = list
                        .iter()
                        .find(|l| **l == want || *l == "0.0.0.0:53" || *l == "*:53");
                    match hit {
                        Some(h) => Check::ok(name, expected, format!("udp {h} bound")),
                        None => Check::fail(
                            name,
                            expected,
                            format!("nothing bound to udp {want}"),
                            remedy.clone(),
                        ),
                    }
                }
                Err((true, why)) if ctx.simulated() => Check::skip(
                    name,
                    expected,
                    format!("sockstat is missing on the simulated host ({why})"),
                ),
                Err((_, why)) => {
                    Check::warn(name, expected, format!("cannot list sockets: {why}"), "")
                }
            };
            check.depends(&deps)
        })
        .collect()
}

/// `dns.zone`: dnsmasq's config file is exactly what the layout renders.
pub fn zone(ctx: &Ctx) -> Vec<Check> {
    let path = conf_path(ctx);
    let want = dnsmasq_conf::render(ctx.layout());
    let remedy = ctx.setup("dns");
    let records = want
        .lines()
        .filter(|l| l.starts_with("host-record="))
        .count();
    let expected = format!("{path} as rendered from the layout ({records} host records)");
    let check = match ctx.runner.read_file(&path) {
        Ok(Some(have)) if have == want => Check::ok(
            "dns.zone",
            expected,
            format!("{path} matches ({records} host records)"),
        ),
        Ok(Some(have)) => {
            let missing: Vec<&str> = want
                .lines()
                .filter(|l| !l.is_empty() && !have.lines().any(|h| h == *l))
                .collect();
            let extra: Vec<&str> = have
                .lines()
                .filter(|l| !l.is_empty() && !want.lines().any(|w| w == *l))
                .collect();
            let mut seen = format!("{path} differs:");
            if !missing.is_empty() {
                seen.push_str(&format!(" missing {}", missing.join(" | ")));
            }
            if !extra.is_empty() {
                seen.push_str(&format!(" unexpected {}", extra.join(" | ")));
            }
            Check::fail("dns.zone", expected, seen, remedy)
        }
        Ok(None) => Check::fail(
            "dns.zone",
            expected,
            format!("{path} does not exist"),
            remedy,
        ),
        Err(e) => Check::fail("dns.zone", expected, e.to_string(), remedy),
    };
    vec![check]
}

/// `dns.resolve.loopback`: every registered name resolves through 127.0.0.1.
pub fn resolve_loopback(ctx: &Ctx) -> Vec<Check> {
    vec![
        resolve(ctx, "dns.resolve.loopback", Ipv4Addr::LOCALHOST).depends(&[
            "dns.service",
            "dns.listen.loopback",
            "dns.zone",
        ]),
    ]
}

/// `dns.resolve.gateway`: every registered name resolves through `<gateway>`.
pub fn resolve_gateway(ctx: &Ctx) -> Vec<Check> {
    vec![
        resolve(ctx, "dns.resolve.gateway", ctx.layout().gateway).depends(&[
            "network.bridge",
            "dns.service",
            "dns.listen.gateway",
            "dns.zone",
        ]),
    ]
}

fn resolve(ctx: &Ctx, name: &str, server: Ipv4Addr) -> Check {
    let records = &ctx.layout().records;
    let expected = format!(
        "all {} registered names answer with their address via {server}:53",
        records.len()
    );
    if ctx.simulated() {
        return Check::skip(name, expected, SIMULATED);
    }
    let to = SocketAddr::V4(SocketAddrV4::new(server, 53));
    let timeout = ctx.opts.dns_timeout;
    // One thread per name: a dead resolver costs one timeout, not one per name.
    let answers: Vec<Result<Vec<Ipv4Addr>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = records
            .iter()
            .map(|r| s.spawn(move || query_a(to, &r.name, timeout).map_err(|e| e.to_string())))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("query thread panicked".into()))
            })
            .collect()
    });
    let mut wrong = Vec::new();
    for (r, answer) in records.iter().zip(answers) {
        match answer {
            Ok(addrs) if addrs.contains(&r.addr) => {}
            Ok(addrs) if addrs.is_empty() => {
                wrong.push(format!("{}: no A record (want {})", r.name, r.addr))
            }
            Ok(addrs) => wrong.push(format!(
                "{}: {} (want {})",
                r.name,
                addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                r.addr
            )),
            Err(e) => wrong.push(format!("{}: {e}", r.name)),
        }
    }
    // The same error for every name (a dead or unreachable resolver) is said once.
    let first_err = wrong
        .first()
        .and_then(|w| w.split_once(": ").map(|(_, e)| e.to_string()));
    if wrong.len() == records.len() && records.len() > 1 {
        if let Some(e) = first_err.filter(|e| wrong.iter().all(|w| w.ends_with(e.as_str()))) {
            wrong = vec![format!("every name: {e}")];
        }
    }
    if wrong.is_empty() {
        Check::ok(
            name,
            expected,
            format!(
                "{}/{} names answered correctly",
                records.len(),
                records.len()
            ),
        )
    } else {
        let seen = format!(
            "wrong answers of {} names: {}",
            records.len(),
            wrong.join("; ")
        );
        Check::fail(name, expected, seen, ctx.setup("dns"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener stays visible while other sockets of its namespace open and close (the CI failure: one
    /// `read_to_string` pass missed it in about 6 % of such reads, checked by hand).
    // Linux: network namespaces and /proc/net/udp.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_bound_listener_is_never_missed_while_sockets_come_and_go() {
        use std::net::UdpSocket;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        std::thread::spawn(|| {
            // This thread alone moves into a new network namespace; threads it starts follow it.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("needs root");
            let up = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .unwrap();
            assert!(up.success());
            let _others: Vec<UdpSocket> = (5300..5600)
                .map(|p| UdpSocket::bind(("127.0.0.1", p)).unwrap())
                .collect();
            let _target = UdpSocket::bind("127.0.0.1:53").unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let churn = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        for port in [0, 53, 5301, 5599] {
                            drop(UdpSocket::bind(("127.0.0.3", port)));
                        }
                    }
                })
            };
            let want = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 53);
            let missed = (0..800)
                .filter(|_| !linux_udp_bound(&[want]).unwrap().contains(&want))
                .count();
            stop.store(true, Ordering::Relaxed);
            churn.join().unwrap();
            assert_eq!(missed, 0, "the listener was missed {missed} times in 800");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn reads_proc_net_udp() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
 2429: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 185103 2 0 0\n\
 2429: 0101000A:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 185101 2 0 0\n\
 garbage\n";
        let got: Vec<String> = parse_proc_net_udp(text)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["127.0.0.1:53", "10.0.1.1:53"]);
    }

    #[test]
    fn reads_sockstat() {
        let text = "USER     COMMAND    PID   FD  PROTO  LOCAL ADDRESS         FOREIGN ADDRESS\n\
nobody   dnsmasq    812   4   udp4   127.0.0.1:53          *:*\n\
nobody   dnsmasq    812   6   tcp4   127.0.0.1:53          *:*\n\
nobody   dnsmasq    812   8   udp4   10.0.1.1:53           *:*\n";
        assert_eq!(parse_sockstat(text), ["127.0.0.1:53", "10.0.1.1:53"]);
    }
}
