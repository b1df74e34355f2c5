//! The worker's link to the bridge: a veth pair `e0a_<name>` (host side, a port of the bridge)
//! / `eth0` (created directly inside the worker's network namespace).
//!
//! Workers cannot reach each other because every worker port is a bridge port with
//! `isolated on` (IFLA_BRPORT_ISOLATED): the bridge forwards nothing between two isolated
//! ports, only between an isolated port and a non-isolated one — the bridge device itself,
//! which is the gateway (DNS, NAT out), and the ports of service jails. The same as
//! `bridge link set dev e0a_x isolated on`. A jail's port is not isolated, so the layout's service
//! paths (workers → ai, git/cms → db) can cross; the `bridge warden` nftables table lets only those
//! through (`warden_core::render::nftables`).

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::netlink::Netlink;
use crate::spec::Vnet;

/// The interface name inside the worker.
pub const WORKER_IFNAME: &str = "eth0";

/// Host-side name of a worker's veth.
pub fn host_ifname(worker: &str) -> String {
    format!("e0a_{worker}")
}

/// The hardware address of a jail at `addr`: locally administered, `02:57` then the address's four
/// bytes. Stable across restarts, so the host's neighbour entry for the jail stays right when the jail
/// comes back on a new veth (with a random address, connections from the host to a restarted jail
/// went to the old address until the entry expired: tens of seconds of lost SYNs).
pub fn jail_mac(addr: std::net::Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = addr.octets();
    [0x02, 0x57, a, b, c, d]
}

/// Creates the pair for worker `name` whose init is `init_pid`, its host side an isolated port when
/// `isolated` (workers; not service jails, whose side in the jail gets [`jail_mac`]). A leftover host
/// side with the same name (a crashed run; the caller holds the name through its record) is deleted
/// first.
pub fn create(
    nl: &mut Netlink,
    vnet: &Vnet,
    name: &str,
    init_pid: u32,
    isolated: bool,
) -> Result<()> {
    let bridge = nl.link_index(&vnet.bridge)?.ok_or_else(|| Error::Setup {
        name: name.to_string(),
        message: format!("failed to find bridge {}", vnet.bridge),
    })?;
    let host = host_ifname(name);
    let mac = (!isolated).then(|| jail_mac(vnet.addr));
    let t0 = crate::sys::mono_us();
    match nl.create_veth(&host, bridge, WORKER_IFNAME, init_pid, mac) {
        Err(Error::Netlink {
            errno: libc::EEXIST,
            ..
        }) => {
            if let Some(stale) = nl.link_index(&host)? {
                nl.delete_link(stale)?;
            }
            nl.create_veth(&host, bridge, WORKER_IFNAME, init_pid, mac)?;
        }
        other => other?,
    }
    let t1 = crate::sys::mono_us();
    let index = nl.link_index(&host)?.ok_or_else(|| Error::Setup {
        name: name.to_string(),
        message: format!("failed to find {host} after creating it"),
    })?;
    let t2 = crate::sys::mono_us();
    if isolated {
        nl.set_port_isolated(index)?;
    }
    tracing::debug!(
        create_us = t1 - t0,
        lookup_us = t2 - t1,
        isolate_us = crate::sys::mono_us() - t2,
        "veth {host} created"
    );
    Ok(())
}

/// Waits for the kernel to destroy the host side (it does so by itself once the worker's
/// network namespace is gone); deletes it after `patience`. Returns true if it had to delete.
pub fn wait_gone(nl: &mut Netlink, host: &str, patience: Duration) -> Result<bool> {
    let start = Instant::now();
    let mut delay = Duration::from_micros(500);
    loop {
        let Some(index) = nl.link_index(host)? else {
            return Ok(false);
        };
        if start.elapsed() >= patience {
            nl.delete_link(index)?;
            return Ok(true);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}

/// Joins the network namespace at `path` for the rest of this thread's life.
pub fn enter_netns(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("open network namespace", path, e))?;
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::sys(format!("enter network namespace {}", path.display()), e))
}

/// Runs `f` in the network namespace at `path` (or here when `None`). `setns` is per thread,
/// so from a possibly multi-threaded caller this uses a dedicated thread that ends afterwards.
pub fn in_netns<T: Send>(path: Option<&Path>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let Some(path) = path else { return f() };
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(path)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Setup {
                name: String::new(),
                message: "failed to run in a network namespace: the thread panicked".into(),
            })
        })
    })
}
