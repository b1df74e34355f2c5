//! Root tests of networked workers, each in a network namespace the test creates (never the
//! machine's own): isolation between workers, the gateway, DNS, NAT out, 32 at once.
#![cfg(target_os = "linux")]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{
    assert_no_residue, listen_in, root_test, spec, state_dir, test_net, unique, TestNet, WorkerNet,
    GATEWAY,
};
use warden_linux::{lease, run_captured, ExitKind, Lease, NetworkMode, WorkerSpec};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn range() -> (Ipv4Addr, Ipv4Addr) {
    (Ipv4Addr::new(10, 0, 1, 101), Ipv4Addr::new(10, 0, 1, 149))
}

/// A fresh lease in `range()`, its worker's name, and a spec running `argv` on that address.
fn leased(net: &TestNet, state: &Path, argv: &[&str]) -> (Lease, String, WorkerSpec) {
    let l = lease(state, range()).unwrap();
    let name = l.worker_name();
    let mut s = spec(&name, argv, state);
    s.network = net.vnet(l.addr());
    (l, name, s)
}

/// A listener on the gateway's port 9000 in `net`; yields the peers seen (at most `max`).
fn listen_on_gateway(net: &TestNet, within: Duration, max: usize) -> JoinHandle<Vec<SocketAddr>> {
    listen_in(net.path(), SocketAddr::from((GATEWAY, 9000)), within, max)
}

/// Kills dnsmasq when the test ends, however it ends.
struct Dnsmasq(Child);
impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_worker_gets_its_address_route_and_resolver() {
    let Some(_lock) = root_test("a_worker_gets_its_address_route_and_resolver") else {
        return;
    };
    let net = test_net();
    let state = state_dir();
    let (l, name, s) = leased(&net, state.path(), &["sh", "-c", "ip -4 -o addr show eth0 | tr -s ' ' | cut -d' ' -f4; ip route show default; cat /etc/resolv.conf; timeout 2 bash -c 'echo x > /dev/tcp/10.0.1.1/9000' && echo gw-ok"]);
    let gw = listen_on_gateway(&net, Duration::from_secs(2), 1);
    let (o, out, err) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Exited(0), "stderr: {}", text(&err));
    assert_eq!(
        text(&out),
        "10.0.1.101/24\ndefault via 10.0.1.1 dev eth0 proto static \nnameserver 10.0.1.1\ngw-ok\n"
    );
    assert_eq!(gw.join().unwrap().len(), 1);
    // The host side was a port of warden0 while the worker lived (checked in the concurrency
    // test); now it is gone.
    drop(l);
    assert_no_residue(state.path(), &[name], Some(&net));
}

#[test]
fn workers_cannot_reach_each_other_but_reach_the_gateway() {
    let Some(_lock) = root_test("workers_cannot_reach_each_other_but_reach_the_gateway") else {
        return;
    };
    let net = test_net();
    let state = state_dir();
    let gw = listen_on_gateway(&net, Duration::from_secs(6), 1);
    let la = lease(state.path(), range()).unwrap();
    let lb = lease(state.path(), range()).unwrap();
    let (a, b) = (la.worker_name(), lb.worker_name());
    // A listens on 8080 for 6 s and reports whether anyone connected.
    let mut sa = spec(&a, &["python3", "-c", "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 8080)); s.listen(); s.settimeout(5)\ntry:\n  s.accept(); print('accepted')\nexcept OSError:\n  print('nobody')"], state.path());
    sa.network = net.vnet(la.addr());
    let ha = std::thread::spawn(move || run_captured(&sa).unwrap());
    // Give A time to listen (its own start is ~10 ms; be generous).
    std::thread::sleep(Duration::from_millis(500));
    let script = format!(
        "timeout 2 bash -c 'echo x > /dev/tcp/{}/8080' 2>/dev/null && echo reached-worker || echo blocked; \
         timeout 2 bash -c 'echo x > /dev/tcp/10.0.1.1/9000' && echo reached-gateway",
        la.addr()
    );
    let mut sb = spec(&b, &["sh", "-c", &script], state.path());
    sb.network = net.vnet(lb.addr());
    let (ob, out_b, err_b) = run_captured(&sb).unwrap();
    assert_eq!(ob.status, ExitKind::Exited(0), "stderr: {}", text(&err_b));
    assert_eq!(text(&out_b), "blocked\nreached-gateway\n");
    let (oa, out_a, _) = ha.join().unwrap();
    assert_eq!(oa.status, ExitKind::Exited(0));
    assert_eq!(text(&out_a), "nobody\n");
    let peers = gw.join().unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].ip(), std::net::IpAddr::V4(lb.addr()));
    drop((la, lb));
    assert_no_residue(state.path(), &[a, b], Some(&net));
}

#[test]
fn resolves_internal_names_through_dnsmasq_on_the_gateway() {
    let Some(_lock) = root_test("resolves_internal_names_through_dnsmasq_on_the_gateway") else {
        return;
    };
    let net = test_net();
    let state = state_dir();
    let pidfile = state.path().join("dnsmasq.pid");
    let _dns = Dnsmasq(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.name,
                "dnsmasq",
                "--no-daemon",
                "--bind-interfaces",
                "--listen-address=10.0.1.1",
            ])
            .args([
                "--address=/git.home.arpa/10.0.1.2",
                "--no-resolv",
                "--no-hosts",
                "--port=53",
            ])
            .arg(format!("--pid-file={}", pidfile.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait until dnsmasq answers.
    for _ in 0..100 {
        let ok = Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.name,
                "dig",
                "+short",
                "+time=1",
                "+tries=1",
                "@10.0.1.1",
                "git.home.arpa",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("10.0.1.2"))
            .unwrap_or(false);
        if ok {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (l, name, s) = leased(
        &net,
        state.path(),
        &[
            "sh",
            "-c",
            "getent hosts git.home.arpa; dig +short +time=2 git.home.arpa",
        ],
    );
    let (o, out, err) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Exited(0), "stderr: {}", text(&err));
    assert_eq!(text(&out), "10.0.1.2        git.home.arpa\n10.0.1.2\n");
    drop(l);
    assert_no_residue(state.path(), &[name], Some(&net));
}

#[test]
fn reaches_an_outside_server_through_nat() {
    let Some(_lock) = root_test("reaches_an_outside_server_through_nat") else {
        return;
    };
    let mut net = test_net();
    let outside = net.add_outside();
    let state = state_dir();
    let srv = listen_in(
        std::path::PathBuf::from("/run/netns").join(&outside),
        SocketAddr::from(([192, 0, 2, 2], 9001)),
        Duration::from_secs(4),
        1,
    );
    let (l, name, s) = leased(
        &net,
        state.path(),
        &[
            "sh",
            "-c",
            "timeout 3 bash -c 'echo x > /dev/tcp/192.0.2.2/9001' && echo reached",
        ],
    );
    let (o, out, err) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Exited(0), "stderr: {}", text(&err));
    assert_eq!(text(&out), "reached\n");
    let peers = srv.join().unwrap();
    // The outside saw the gateway's masqueraded address, not the worker's.
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].ip().to_string(), "192.0.2.1");
    drop(l);
    assert_no_residue(state.path(), &[name], Some(&net));
}

#[test]
fn thirty_two_concurrent_workers_get_distinct_addresses_and_leave_nothing() {
    let Some(_lock) =
        root_test("thirty_two_concurrent_workers_get_distinct_addresses_and_leave_nothing")
    else {
        return;
    };
    let net = test_net();
    let state = state_dir();
    let gw = listen_on_gateway(&net, Duration::from_secs(15), 32);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(32));
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let st = state.path().to_path_buf();
            let mode = net.vnet(Ipv4Addr::UNSPECIFIED);
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let l = lease(&st, range()).unwrap();
                // All 32 leases are held at once before any worker starts.
                barrier.wait();
                let name = l.worker_name();
                let mut s = spec(&name, &["sh", "-c", "ip -4 -o addr show eth0 | tr -s ' ' | cut -d' ' -f4; timeout 10 bash -c 'echo x > /dev/tcp/10.0.1.1/9000' && echo gw"], &st);
                if let NetworkMode::Vnet(mut v) = mode {
                    v.addr = l.addr();
                    s.network = NetworkMode::Vnet(v);
                }
                let r = run_captured(&s);
                (l.addr(), name, r)
            })
        })
        .collect();
    let mut addrs = Vec::new();
    let mut names = Vec::new();
    for h in handles {
        let (addr, name, r) = h.join().unwrap();
        let (o, out, err) = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            o.status,
            ExitKind::Exited(0),
            "{name} stderr: {}",
            text(&err)
        );
        assert_eq!(text(&out), format!("{addr}/24\ngw\n"));
        addrs.push(addr);
        names.push(name);
    }
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 32);
    let mut peers: Vec<_> = gw.join().unwrap().iter().map(|p| p.ip()).collect();
    peers.sort();
    peers.dedup();
    assert_eq!(
        peers.len(),
        32,
        "every worker reached the gateway from its own address"
    );
    assert_no_residue(state.path(), &names, Some(&net));
}

#[test]
fn host_ports_are_isolated_bridge_ports() {
    let Some(_lock) = root_test("host_ports_are_isolated_bridge_ports") else {
        return;
    };
    let net = test_net();
    let state = state_dir();
    let (l, name, s) = leased(&net, state.path(), &["sleep", "1"]);
    let h = std::thread::spawn(move || run_captured(&s).unwrap());
    let host = format!("e0a_{name}");
    let mut seen = String::new();
    for _ in 0..80 {
        let out = Command::new("ip")
            .args(["-n", &net.name, "-d", "link", "show", &host])
            .output()
            .unwrap();
        seen = text(&out.stdout);
        if seen.contains("isolated on") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(seen.contains("master warden0"), "{seen}");
    assert!(seen.contains("isolated on"), "{seen}");
    assert_eq!(h.join().unwrap().0.status, ExitKind::Exited(0));
    drop(l);
    assert_no_residue(state.path(), &[name], Some(&net));
}

#[test]
fn shared_network_uses_the_callers_namespace() {
    let Some(_lock) = root_test("shared_network_uses_the_callers_namespace") else {
        return;
    };
    let state = state_dir();
    let name = unique("sh");
    let mut s = spec(
        &name,
        &["sh", "-c", "cat /proc/net/dev | grep -c :"],
        state.path(),
    );
    s.network = NetworkMode::Shared;
    let (o, out, _) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Exited(0));
    let here = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .filter(|l| l.contains(':'))
        .count();
    assert_eq!(text(&out).trim(), here.to_string());
    assert_no_residue(state.path(), &[name], None);
}
