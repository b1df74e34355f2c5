//! Cold-start benchmark: N runs of `true` in a worker (network None and Vnet), side by side with
//! bwrap and runc doing the same, printing p50/p95 and ratios plus warden's phase breakdown.
//!
//! `cargo run --release -p warden-linux --example bench_run -- [N]` as root. The Vnet runs use
//! a network namespace created here (with its own `warden0`) and deleted at the end.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use warden_linux::{lease, run, Io, Limits, NetworkMode, Outcome, Timings, Vnet, WorkerSpec};

struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "ip {args:?} failed");
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn time_cmd(cmd: &mut Command) -> f64 {
    let t = Instant::now();
    let st = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    assert!(st.success(), "{cmd:?} failed");
    t.elapsed().as_secs_f64() * 1000.0
}

fn runc_bundle(dir: &Path) -> PathBuf {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    assert!(Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .unwrap()
        .success());
    let path = bundle.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!(["/usr/bin/true"]);
    cfg["root"]["readonly"] = true.into();
    let mounts = cfg["mounts"].as_array_mut().unwrap();
    for d in ["usr", "bin", "lib", "lib64", "sbin"] {
        let host = Path::new("/").join(d);
        if host.is_symlink() || !host.exists() {
            continue;
        }
        mounts.push(serde_json::json!({"destination": format!("/{d}"), "type": "bind", "source": host, "options": ["rbind", "ro"]}));
    }
    for d in ["bin", "lib", "lib64", "sbin"] {
        let host = Path::new("/").join(d);
        if host.is_symlink() {
            std::os::unix::fs::symlink(
                std::fs::read_link(&host).unwrap(),
                bundle.join("rootfs").join(d),
            )
            .unwrap();
        }
    }
    std::fs::create_dir_all(bundle.join("rootfs/usr")).unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    bundle
}

fn median_timings(v: &[Outcome]) -> Timings {
    let med = |f: &dyn Fn(&Timings) -> u64| {
        let mut x: Vec<u64> = v.iter().map(|o| f(&o.timings)).collect();
        x.sort();
        x[x.len() / 2]
    };
    Timings {
        spawn_us: med(&|t| t.spawn_us),
        cgroup_us: med(&|t| t.cgroup_us),
        clone_us: med(&|t| t.clone_us),
        net_host_us: med(&|t| t.net_host_us),
        mounts_us: med(&|t| t.mounts_us),
        net_worker_us: med(&|t| t.net_worker_us),
        exec_us: med(&|t| t.exec_us),
        wait_us: med(&|t| t.wait_us),
        teardown_us: med(&|t| t.teardown_us),
        report_us: med(&|t| t.report_us),
        total_us: med(&|t| t.total_us),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(warden_linux::HELPER_ARG) {
        warden_linux::helper_main();
    }
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(50);
    let tmp = tempfile::Builder::new().prefix("wbench").tempdir().unwrap();
    let state = tmp.path().join("state");
    let base_spec = |name: &str| {
        let mut s = WorkerSpec::new(name, &["true"], &state);
        s.limits = Limits {
            timeout_ms: Some(10_000),
            ..Limits::default()
        };
        s
    };

    // Warden, network None.
    let mut none_ms = Vec::new();
    let mut none_out = Vec::new();
    for i in 0..n {
        let s = base_spec(&format!("b{i}"));
        let t = Instant::now();
        let o = run(&s, Io::Inherit).expect("run");
        none_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        none_out.push(o);
    }

    // Warden, Vnet, in a namespace of our own holding warden0.
    let ns = Netns(format!("wbench-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "link", "add", "warden0", "type", "bridge"]);
    ip(&["-n", &ns.0, "addr", "add", "10.0.1.1/24", "dev", "warden0"]);
    ip(&["-n", &ns.0, "link", "set", "warden0", "up"]);
    let mut vnet_ms = Vec::new();
    let mut vnet_out = Vec::new();
    let mut names = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let l = lease(
            &state,
            (Ipv4Addr::new(10, 0, 1, 101), Ipv4Addr::new(10, 0, 1, 149)),
        )
        .expect("lease");
        let mut s = base_spec(&l.worker_name());
        s.network = NetworkMode::Vnet(Vnet {
            addr: l.addr(),
            prefix: 24,
            gateway: Ipv4Addr::new(10, 0, 1, 1),
            bridge: "warden0".into(),
            dns: Ipv4Addr::new(10, 0, 1, 1),
            host_netns: Some(PathBuf::from("/run/netns").join(&ns.0)),
        });
        let o = run(&s, Io::Inherit).expect("run vnet");
        vnet_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        vnet_out.push(o);
        names.push(l.worker_name());
    }
    for name in &names {
        warden_linux::wait_torn_down(&state, name, Duration::from_secs(10));
    }

    // bwrap, as the brief's reference and as a like-for-like read-only /usr root.
    let mut bwrap_all = Vec::new();
    let mut bwrap_usr = Vec::new();
    for _ in 0..n {
        bwrap_all.push(time_cmd(Command::new("bwrap").args([
            "--unshare-all",
            "--ro-bind",
            "/",
            "/",
            "true",
        ])));
        bwrap_usr.push(time_cmd(Command::new("bwrap").args([
            "--unshare-all",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "true",
        ])));
    }
    // runc with a read-only rootfs of binds.
    let bundle = runc_bundle(tmp.path());
    let mut runc = Vec::new();
    for i in 0..n {
        let id = format!("wbench{}-{i}", std::process::id());
        runc.push(time_cmd(
            Command::new("runc")
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(&id),
        ));
    }

    let rows: Vec<(&str, Vec<f64>)> = vec![
        ("warden none", none_ms),
        ("warden vnet", vnet_ms),
        ("bwrap --unshare-all --ro-bind / /", bwrap_all),
        ("bwrap --unshare-all ro /usr +proc,dev,tmp", bwrap_usr),
        ("runc run (ro rootfs of binds)", runc),
    ];
    let mut stats = Vec::new();
    println!("{n} cold runs of `true` each");
    println!("{:<44} {:>8} {:>8}", "", "p50 ms", "p95 ms");
    for (label, mut v) in rows {
        let (p50, p95) = (pct(&mut v, 0.5), pct(&mut v, 0.95));
        println!("{label:<44} {p50:>8.2} {p95:>8.2}");
        stats.push(p50);
    }
    println!("ratios (p50): none/bwrap-all {:.2}, none/bwrap-usr {:.2}, vnet/runc {:.2}, none/runc {:.2}",
        stats[0] / stats[2], stats[0] / stats[3], stats[1] / stats[4], stats[0] / stats[4]);
    for (label, outs) in [("none", &none_out), ("vnet", &vnet_out)] {
        let t = median_timings(outs);
        println!(
            "phases {label} (median µs): spawn {} cgroup {} clone {} net-host {} mounts {} net-worker {} exec(at) {} wait {} teardown {} report(at) {} total {}",
            t.spawn_us, t.cgroup_us, t.clone_us, t.net_host_us, t.mounts_us, t.net_worker_us, t.exec_us, t.wait_us, t.teardown_us, t.report_us, t.total_us
        );
    }
}
