//! Persistent jails at the library level (as root): start, exec, persistence across stop/start,
//! stop, destroy, and a killed supervisor — each leaving nothing behind.
#![cfg(target_os = "linux")]

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{root_test, state_dir, test_net, unique, TestNet, GATEWAY};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use warden_linux::jail::{self, CreateOpts, ExecOpts, JailLimits, JailNet, State};
use warden_linux::jail_exec;
use warden_linux::Shape;

const CG: &str = "/sys/fs/cgroup";

fn create(state: &Path, name: &str, shape: Shape, net: Option<JailNet>) {
    jail::create(
        state,
        &CreateOpts {
            name: name.into(),
            release: "host".into(),
            shape,
            network: net,
            limits: JailLimits {
                memory_bytes: Some(256 << 20),
                max_pids: Some(128),
                cpu: None,
            },
            binds: Vec::new(),
            tun: false,
        },
    )
    .unwrap();
}

/// Runs `sh -c script` in the jail as root; returns (code, stdout) via a file in the jail's /tmp.
fn sh(state: &Path, name: &str, script: &str) -> i32 {
    let spec = jail::exec_spec(
        state,
        name,
        &ExecOpts {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            root: true,
            ..Default::default()
        },
    )
    .unwrap();
    jail_exec::exec(&spec).unwrap()
}

fn no_residue(state: &Path, name: &str, net: Option<&TestNet>) {
    common::assert_no_residue(state, &[name.to_string()], net);
}

#[test]
fn thin_and_thick_host_jails_persist_across_restarts() {
    let Some(_lock) = root_test("thin_and_thick_host_jails_persist_across_restarts") else {
        return;
    };
    let state = state_dir();
    let s = state.path();
    for shape in [Shape::Thin, Shape::Thick] {
        let name = unique("j");
        create(s, &name, shape, None);
        let t0 = Instant::now();
        let r = jail::start(s, &name, Path::new(CG)).unwrap();
        eprintln!(
            "{shape:?} jail start took {:?} (helper exec_us {})",
            t0.elapsed(),
            r.started.timings.exec_us
        );
        assert_eq!(jail::list(s).unwrap()[0].state, State::Running);
        let t1 = Instant::now();
        assert_eq!(sh(s, &name, "true"), 0);
        eprintln!("exec of true took {:?}", t1.elapsed());
        assert_eq!(
            sh(
                s,
                &name,
                &format!("test \"$(hostname)\" = {name} && mkdir -p /var/data && echo kept > /var/data/f && echo etc > /etc/mine")
            ),
            0
        );
        assert_eq!(sh(s, &name, "exit 7"), 7);
        // Only the jail's processes are visible: the init and the shell.
        assert_eq!(sh(s, &name, "set -- /proc/[0-9]*; test $# -le 3"), 0);
        // The host's /usr is shared read-only.
        assert_ne!(sh(s, &name, "touch /usr/x 2>/dev/null"), 0);
        assert!(jail::stop(s, &name, Duration::from_secs(10)).unwrap());
        assert_eq!(jail::list(s).unwrap()[0].state, State::Stopped);
        let e = jail::exec_spec(s, &name, &ExecOpts::default()).unwrap_err();
        assert!(e.to_string().contains("not running"), "{e}");
        jail::start(s, &name, Path::new(CG)).unwrap();
        assert_eq!(
            sh(
                s,
                &name,
                "test \"$(cat /var/data/f)\" = kept && test \"$(cat /etc/mine)\" = etc"
            ),
            0
        );
        // A jail with data refuses to go without --force.
        assert!(jail::destroy(s, &name, false, Duration::from_secs(10)).is_err());
        jail::destroy(s, &name, true, Duration::from_secs(10)).unwrap();
        assert!(jail::names(s).is_empty());
        no_residue(s, &name, None);
    }
    // Nothing was written to the host's directories.
    assert!(!Path::new("/var/data/f").exists());
}

#[test]
fn a_killed_supervisor_takes_its_jail_down_and_destroy_cleans_up() {
    let Some(_lock) = root_test("a_killed_supervisor_takes_its_jail_down_and_destroy_cleans_up")
    else {
        return;
    };
    let net = test_net();
    let state = state_dir();
    let s = state.path();
    let name = unique("k");
    let addr = Ipv4Addr::new(10, 0, 1, 7);
    create(
        s,
        &name,
        Shape::Thin,
        Some(JailNet {
            addr,
            prefix: 24,
            gateway: GATEWAY,
            bridge: "warden0".into(),
            dns: GATEWAY,
        }),
    );
    // The jail uses the bridge of the namespace it is started in.
    let r =
        warden_linux::veth::in_netns(Some(&net.path()), || jail::start(s, &name, Path::new(CG)))
            .unwrap();
    assert_eq!(net.links_matching("e0a_").len(), 1);
    assert_eq!(sh(s, &name, "ip -o -4 addr show dev eth0 | grep -q 10.0.1.7/24 || cat /proc/net/fib_trie | grep -q 10.0.1.7"), 0);
    kill(Pid::from_raw(r.started.owner_pid), Signal::SIGKILL).expect("kill the supervisor");
    let t = Instant::now();
    while jail::list(s).unwrap()[0].state == State::Running {
        assert!(t.elapsed() < Duration::from_secs(5), "jail still running");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Its cgroups and record are still there until a command cleans them.
    warden_linux::veth::in_netns(Some(&net.path()), || {
        jail::destroy(s, &name, true, Duration::from_secs(5))
    })
    .unwrap();
    no_residue(s, &name, Some(&net));
}
