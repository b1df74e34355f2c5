//! The Linux host backend: observes the bridge, forwarding, nftables, Warden's jails and its dnsmasq, and
//! plans with `warden_core::linux_plan`. Everything runs in the caller's network namespace, so tests run it
//! inside a namespace of their own (`nsenter --net=/run/netns/NAME`).

use std::path::PathBuf;

use warden_core::linux_plan::{self, LinuxPaths};
use warden_core::observed::{LinuxHost, LinuxJail};
use warden_core::{Layout, Plan};
use warden_host::{Backend, HostError, Runner};

/// The Linux backend.
pub struct LinuxBackend {
    runner: Box<dyn Runner>,
    paths: LinuxPaths,
    proc_root: PathBuf,
}

impl LinuxBackend {
    /// A backend keeping its files in `state_dir`, running commands through `runner`.
    pub fn new(runner: Box<dyn Runner>, state_dir: &std::path::Path) -> LinuxBackend {
        LinuxBackend {
            runner,
            paths: LinuxPaths {
                state_dir: state_dir.display().to_string(),
            },
            proc_root: PathBuf::from("/proc"),
        }
    }

    /// The file paths this backend manages.
    pub fn paths(&self) -> &LinuxPaths {
        &self.paths
    }

    /// Observes the host.
    pub fn observe(&self, layout: &Layout) -> Result<LinuxHost, HostError> {
        let mut host = LinuxHost::default();
        let out = self
            .runner
            .run(&argv(&["ip", "-j", "addr", "show", "dev", &layout.bridge]))?;
        if out.ok() {
            let (up, addrs) =
                parse_ip_addr_json(&out.stdout).map_err(|reason| HostError::Parse {
                    command: format!("ip -j addr show dev {}", layout.bridge),
                    reason,
                    output: out.stdout.chars().take(400).collect(),
                })?;
            host.bridge_exists = true;
            host.bridge_up = up;
            host.bridge_addrs = addrs;
        }
        let forwarding = std::fs::read_to_string(self.proc_root.join("sys/net/ipv4/ip_forward"))
            .unwrap_or_default();
        host.forwarding = forwarding.trim() == "1";
        // Both tables of the ruleset file: NAT and policy (inet), service paths between ports (bridge).
        let mut loaded = true;
        for family in ["inet", "bridge"] {
            let nft = self.runner.run(&argv(&[
                "nft",
                "list",
                "table",
                family,
                warden_core::render::nftables::TABLE,
            ]))?;
            loaded &= nft.ok();
        }
        host.nft_table = loaded;
        for path in [self.paths.nftables(), self.paths.dnsmasq_conf()] {
            if let Some(content) = self.runner.read_file(&path)? {
                host.files.insert(path, content);
            }
        }
        host.dnsmasq_running = self.dnsmasq_pid().is_some();
        let state_dir = std::path::Path::new(&self.paths.state_dir);
        let jails = crate::jail::list(state_dir).map_err(|e| HostError::Parse {
            command: format!("read {}", crate::jail::jails_dir(state_dir).display()),
            reason: crate::helper::error_chain(&e),
            output: String::new(),
        })?;
        for j in jails {
            host.jails.insert(
                j.name,
                LinuxJail {
                    running: j.state == crate::jail::State::Running,
                    addr: j.addr,
                    shape: match j.shape {
                        crate::Shape::Thin => "thin".into(),
                        crate::Shape::Thick => "thick".into(),
                    },
                    release: j.release,
                },
            );
        }
        // The jail actions run this very binary, so they work wherever it is installed.
        host.warden_exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Ok(host)
    }

    /// The pid of Warden's dnsmasq if its pid file names a live dnsmasq in this network namespace.
    pub fn dnsmasq_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.paths.dnsmasq_pid()).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        let comm = std::fs::read_to_string(self.proc_root.join(format!("{pid}/comm"))).ok()?;
        if comm.trim() != "dnsmasq" {
            return None;
        }
        // A dnsmasq from another namespace (another test, the host) is not ours.
        let theirs = std::fs::read_link(self.proc_root.join(format!("{pid}/ns/net"))).ok()?;
        let ours = std::fs::read_link(self.proc_root.join("self/ns/net")).ok()?;
        (theirs == ours).then_some(pid)
    }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Parses `ip -j addr show dev X`: whether the link is administratively up, and its IPv4 addresses as CIDR.
pub fn parse_ip_addr_json(text: &str) -> Result<(bool, Vec<String>), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let link = v
        .as_array()
        .and_then(|a| a.first())
        .ok_or("expected one interface")?;
    let up = link["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "UP"));
    let addrs = link["addr_info"]
        .as_array()
        .map(|infos| {
            infos
                .iter()
                .filter(|i| i["family"] == "inet")
                .filter_map(|i| {
                    Some(format!(
                        "{}/{}",
                        i["local"].as_str()?,
                        i["prefixlen"].as_u64()?
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((up, addrs))
}

impl Backend for LinuxBackend {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn runner(&self) -> &dyn Runner {
        self.runner.as_ref()
    }

    fn plan(&self, layout: &Layout) -> Result<Plan, HostError> {
        let host = self.observe(layout)?;
        Ok(linux_plan::plan(layout, &host, &self.paths))
    }
}

/// The IPv4 address of interface `name` in this thread's network namespace, if it has one
/// (`SIOCGIFADDR`: no process spawned, no link dump parsed).
pub fn interface_ipv4(name: &str) -> Option<std::net::Ipv4Addr> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return None;
    }
    // SAFETY: a plain datagram socket, closed by the OwnedFd below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the descriptor was just created and is owned here.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let raw = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: SIOCGIFADDR reads the name and writes a sockaddr into the ifreq we own.
    if unsafe { libc::ioctl(raw, libc::SIOCGIFADDR, &mut ifr) } != 0 {
        return None;
    }
    // SAFETY: for AF_INET the kernel wrote a sockaddr_in into the union.
    let sin: libc::sockaddr_in =
        unsafe { std::ptr::read_unaligned(std::ptr::addr_of!(ifr.ifr_ifru.ifru_addr).cast()) };
    Some(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json() {
        let text = r#"[{"ifindex":3,"ifname":"warden0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"addr_info":[{"family":"inet","local":"10.0.1.1","prefixlen":24},{"family":"inet6","local":"fe80::1","prefixlen":64}]}]"#;
        assert_eq!(
            parse_ip_addr_json(text).unwrap(),
            (true, vec!["10.0.1.1/24".to_string()])
        );
        assert!(parse_ip_addr_json("[]").is_err());
        assert!(parse_ip_addr_json("nope").is_err());
        let down = r#"[{"ifname":"warden0","flags":["BROADCAST"],"addr_info":[]}]"#;
        assert_eq!(parse_ip_addr_json(down).unwrap(), (false, vec![]));
    }
}
