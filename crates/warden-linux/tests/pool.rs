//! The warm pool (as root, in network namespaces made here): a pooled worker handed to a second
//! turn carries nothing of the first; the pool refills; shutting it down leaves nothing; many
//! pooled turns leak nothing.
#![cfg(target_os = "linux")]

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use warden_linux::pool::{Pool, PoolKey, SlotConfig};
use warden_linux::{ExitKind, NetworkMode, Outcome, ReleaseRef, Turn};

/// Away from the default worker range (.101 up) that other suites' and a real warden's Vnet
/// workers lease: their worker names (`w<octet>`) would match ours, and cgroups are host-wide.
/// Since the cgroup-name claim the two would no longer kill each other, but a binary built
/// before it (another checkout's) still would.
const RANGE: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 0, 1, 201), Ipv4Addr::new(10, 0, 1, 249));

fn slot(state: &Path, network: NetworkMode, size: usize) -> SlotConfig {
    let mut template = spec("tpl", &["true"], state);
    template.network = network;
    SlotConfig {
        template,
        size,
        lease_range: Some(RANGE),
        fillers: 2,
    }
}

fn key(network: &NetworkMode) -> PoolKey {
    PoolKey::new(&ReleaseRef::Host, network)
}

fn turn(argv: &[&str], env: &[(&str, &str)], state: &Path) -> Turn {
    let mut s = spec("x", argv, state);
    s.env
        .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Turn::from_spec(&s)
}

/// Takes a parked worker (waiting for the pool to have one) and runs `t` on it.
fn pooled(pool: &Pool, k: &PoolKey, t: &Turn) -> (String, Outcome, String, String) {
    let start = Instant::now();
    let p = loop {
        if let Some(p) = pool.take(k) {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "pool never filled: {:?}",
            pool.stats(k)
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let name = p.name().to_string();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let o = p
        .run(
            t,
            warden_linux::Io::Stream {
                stdin: Vec::new(),
                on_output: &mut |s, b| match s {
                    warden_linux::OutputStream::Stdout => out.extend_from_slice(b),
                    warden_linux::OutputStream::Stderr => err.extend_from_slice(b),
                },
            },
        )
        .expect("pooled run");
    (
        name,
        o,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

const FIRST: &str = r#"echo secret1 > /tmp/leak; echo secret1 > /dev/shm/leak
setsid sleep 300 </dev/null >/dev/null 2>&1 &
python3 -c '
import socket
s = socket.socket(); s.bind(("0.0.0.0", 7777)); s.listen()
c = socket.create_connection(("127.0.0.1", 7777)); a, _ = s.accept()
u = socket.socket(socket.AF_UNIX); u.bind("\0wardenleak")
c.close()
import os; os._exit(0)
'
echo first-done"#;

const SECOND: &str = r#"echo FILES; ls -A /tmp /dev/shm
echo PROCS; for p in /proc/[0-9]*; do cat $p/comm 2>/dev/null; done
echo ENV; env
echo TCP; tail -n +2 /proc/net/tcp; tail -n +2 /proc/net/tcp6 2>/dev/null
echo UNIX; grep wardenleak /proc/net/unix
echo ADDR; ip -4 -o addr; ip route
echo CT; cat /proc/net/nf_conntrack 2>/dev/null
echo END"#;

fn check_clean(out: &str, own_addr: Option<Ipv4Addr>) {
    assert!(out.contains("END"), "second turn incomplete: {out}");
    let section = |name: &str| -> Vec<&str> {
        out.lines()
            .skip_while(|l| *l != name)
            .skip(1)
            .take_while(|l| !l.chars().all(|c| c.is_ascii_uppercase()) || l.is_empty())
            .collect()
    };
    assert!(
        !out.contains("secret1") && !out.contains("leak\n"),
        "files leaked: {out}"
    );
    let files = section("FILES");
    assert!(
        files.iter().all(|l| l.is_empty() || l.ends_with(':')),
        "files in /tmp or /dev/shm: {files:?}"
    );
    let procs = section("PROCS");
    assert!(
        !procs.contains(&"sleep"),
        "a process of the first turn is alive: {procs:?}"
    );
    assert!(
        !procs.contains(&"python3"),
        "a process of the first turn is alive: {procs:?}"
    );
    assert!(!out.contains("FIRST_TURN"), "environment leaked: {out}");
    assert!(
        section("TCP").iter().all(|l| l.trim().is_empty()),
        "sockets left: {out}"
    );
    assert!(section("UNIX").is_empty(), "unix socket left: {out}");
    let addrs = section("ADDR");
    for l in &addrs {
        let ok = l.contains("127.0.0.1")
            || own_addr.is_some_and(|a| l.contains(&a.to_string()))
            || l.starts_with("default via 10.0.1.1")
            || l.starts_with("10.0.1.0/24");
        assert!(ok, "unexpected network state: {l:?} in {addrs:?}");
    }
    assert!(section("CT").is_empty(), "conntrack entries: {out}");
}

#[test]
fn a_second_pooled_turn_carries_nothing_of_the_first() {
    let Some(_lock) = root_test("a_second_pooled_turn_carries_nothing_of_the_first") else {
        return;
    };
    let state = state_dir();
    let net = test_net();
    let none = NetworkMode::None;
    let vnet = net.vnet(Ipv4Addr::UNSPECIFIED);
    let pool = Pool::start(vec![
        slot(state.path(), none.clone(), 1),
        slot(state.path(), vnet.clone(), 1),
    ]);
    let mut names = Vec::new();
    for network in [&none, &vnet] {
        let k = key(network);
        let (n1, o1, out1, err1) = pooled(
            &pool,
            &k,
            &turn(
                &["sh", "-c", FIRST],
                &[("FIRST_TURN", "secret1")],
                state.path(),
            ),
        );
        assert_eq!(o1.status, ExitKind::Exited(0), "first turn: {out1} {err1}");
        assert!(out1.contains("first-done"));
        // The pool holds one worker: the next turn gets the one parked after the first was taken.
        let (n2, o2, out2, err2) =
            pooled(&pool, &k, &turn(&["sh", "-c", SECOND], &[], state.path()));
        assert_eq!(o2.status, ExitKind::Exited(0), "second turn: {out2} {err2}");
        assert_ne!(n1, n2, "a worker was reused");
        let own = (network == &vnet).then(|| {
            let octet: u8 = n2
                .trim_start_matches('w')
                .parse()
                .expect("vnet worker name");
            Ipv4Addr::new(10, 0, 1, octet)
        });
        check_clean(&out2, own);
        names.extend([n1, n2]);
    }
    pool.shutdown();
    assert_no_residue(state.path(), &names, Some(&net));
}

#[test]
fn a_pooled_turn_gets_the_cpu_limit_it_asks_for() {
    let Some(_lock) = root_test("a_pooled_turn_gets_the_cpu_limit_it_asks_for") else {
        return;
    };
    let state = state_dir();
    // Parked without a CPU limit (so, on cgroup v1, without a cpu cgroup).
    let pool = Pool::start(vec![slot(state.path(), NetworkMode::None, 1)]);
    let mut t = turn(
        &[
            "sh",
            "-c",
            "cat /proc/self/cgroup; timeout 0.5 sh -c 'while :; do :; done'; \
             read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ u c _ < /proc/$$/stat; echo TICKS $((u + c))",
        ],
        &[],
        state.path(),
    );
    t.limits.cpu = Some(0.2);
    let (name, o, out, err) = pooled(&pool, &key(&NetworkMode::None), &t);
    assert_eq!(o.status, ExitKind::Exited(0), "{out} {err}");
    let cpu_line = out
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "cpu"))
        })
        .or_else(|| out.lines().find(|l| l.starts_with("0::")))
        .unwrap_or_default();
    assert!(
        cpu_line.ends_with(&format!("/warden/{name}")),
        "the command is not in the worker's cpu cgroup: {out}"
    );
    // 0.5 s of a busy loop at a 20 % quota: about 10 ticks of CPU (50 unthrottled).
    let ticks: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("TICKS "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no TICKS line: {out} {err}"));
    assert!(
        ticks < 30,
        "the CPU limit was not applied: {ticks} ticks in 0.5 s"
    );
    drop(pool);
    assert_no_residue(state.path(), &[name], None);
}

#[test]
fn the_pool_refills_and_its_shutdown_leaves_nothing() {
    let Some(_lock) = root_test("the_pool_refills_and_its_shutdown_leaves_nothing") else {
        return;
    };
    let state = state_dir();
    let net = test_net();
    let vnet = net.vnet(Ipv4Addr::UNSPECIFIED);
    let pool = Pool::start(vec![
        slot(state.path(), NetworkMode::None, 3),
        slot(state.path(), vnet.clone(), 2),
    ]);
    assert!(pool.wait_full(Duration::from_secs(20)), "pool did not fill");
    let mut names: Vec<String> = warden_linux::record::list(state.path());
    assert_eq!(names.len(), 5, "parked workers are recorded: {names:?}");
    for _ in 0..3 {
        let (n, o, _, _) = pooled(
            &pool,
            &key(&NetworkMode::None),
            &turn(&["true"], &[], state.path()),
        );
        assert_eq!(o.status, ExitKind::Exited(0));
        names.push(n);
    }
    let (n, o, _, _) = pooled(&pool, &key(&vnet), &turn(&["true"], &[], state.path()));
    assert_eq!(o.status, ExitKind::Exited(0));
    names.push(n);
    assert!(
        pool.wait_full(Duration::from_secs(20)),
        "pool did not refill"
    );
    let stats = pool.stats(&key(&NetworkMode::None)).unwrap();
    assert_eq!((stats.parked, stats.taken), (3, 3), "{stats:?}");
    names.extend(warden_linux::record::list(state.path()));
    names.sort();
    names.dedup();
    drop(pool);
    assert_no_residue(state.path(), &names, Some(&net));
}

/// Counts of what a leak would grow: this process's descriptors and memory, mounts, network
/// namespaces, links in the test namespace, warden cgroups.
fn census(net: &TestNet) -> [usize; 6] {
    let count = |dir: &str| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let fds = count("/proc/self/fd");
    let mounts = std::fs::read_to_string("/proc/1/mountinfo")
        .unwrap()
        .lines()
        .count();
    let mut netns = std::collections::HashSet::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        if let Ok(l) = std::fs::read_link(e.path().join("ns/net")) {
            netns.insert(l);
        }
    }
    let links = net.links_matching("").len();
    let cgroups = count("/sys/fs/cgroup/memory/warden") + count("/sys/fs/cgroup/pids/warden");
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    [fds, mounts, netns.len(), links, cgroups, rss_kb]
}

/// `WARDEN_POOL_LEAK_TURNS` pooled turns (default 1,000; docs/PERFORMANCE.md has the 10,000 run), Vnet and
/// None alternating; then nothing may have grown.
#[test]
fn pooled_turns_leak_nothing() {
    let Some(_lock) = root_test("pooled_turns_leak_nothing") else {
        return;
    };
    let turns: usize = std::env::var("WARDEN_POOL_LEAK_TURNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let state = state_dir();
    let net = test_net();
    let vnet = net.vnet(Ipv4Addr::UNSPECIFIED);
    let keys = [key(&NetworkMode::None), key(&vnet)];
    let pool = Pool::start(vec![
        slot(state.path(), NetworkMode::None, 4),
        slot(state.path(), vnet.clone(), 4),
    ]);
    let t = turn(&["true"], &[], state.path());
    // Warm up (allocator, thread stacks, page cache), then take the baseline with the pool full.
    for i in 0..50 {
        pooled(&pool, &keys[i % 2], &t);
    }
    assert!(pool.wait_full(Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(300));
    let before = census(&net);
    let start = Instant::now();
    // RSS every tenth of the run: a leak grows with the turns to the end; the allocator
    // settles (arenas of the filler and reaper threads, heap top) in the first part and then
    // stays flat. So the bound is on the second half.
    let mut rss = Vec::new();
    let mut steady = before[5];
    for i in 0..turns {
        let (_, o, _, err) = pooled(&pool, &keys[i % 2], &t);
        assert_eq!(o.status, ExitKind::Exited(0), "turn {i}: {err}");
        if (i + 1) % (turns / 10).max(1) == 0 {
            rss.push(census(&net)[5]);
            if rss.len() == 5 {
                steady = rss[4];
            }
        }
    }
    let elapsed = start.elapsed();
    assert!(pool.wait_full(Duration::from_secs(20)));
    // Teardowns of the last workers finish in the background.
    let settle = Instant::now();
    let mut after = census(&net);
    while after[..5] != before[..5] && settle.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        after = census(&net);
    }
    eprintln!(
        "{turns} pooled turns in {:.1} s; before {before:?} after {after:?} (fds, mounts, netns, links, cgroups, rss KiB); rss per tenth {rss:?}",
        elapsed.as_secs_f64()
    );
    assert_eq!(
        after[..5],
        before[..5],
        "fds, mounts, netns, links or cgroups grew"
    );
    assert!(
        (after[5] as f64) < steady as f64 * 1.05,
        "memory grew more than 5% over the second half of the turns: {steady} -> {} KiB (before any: {} KiB; per tenth {rss:?})",
        after[5],
        before[5]
    );
    let names = warden_linux::record::list(state.path());
    drop(pool);
    assert_no_residue(state.path(), &names, Some(&net));
}
