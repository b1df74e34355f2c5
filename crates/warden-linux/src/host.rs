//! The Linux host backend: observes the bridge, forwarding, nftables, Warden's jails and its dnsmasq, and
//! plans with `warden_core::linux_plan`. Everything runs in the caller's network namespace, so tests run it
//! inside a namespace of their own (`nsenter --net=/run/netns/NAME`).

use std::path::PathBuf;

use warden_core::linux_plan::{self, LinuxPaths};
use warden_core::observed::{LinuxHost, LinuxJail};
use warden_core::plan::{PlanOptions, TeardownOptions};
use warden_core::{account, pi, Layout, Plan};
use warden_host::{Backend, HostError, RunError, Runner};

/// The Linux backend.
pub struct LinuxBackend {
    runner: Box<dyn Runner>,
    paths: LinuxPaths,
    proc_root: PathBuf,
    options: PlanOptions,
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
            options: PlanOptions::default(),
        }
    }

    /// The same backend planning with `options` (e.g. `--no-install`).
    pub fn with_options(mut self, options: PlanOptions) -> LinuxBackend {
        self.options = options;
        self
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
            if nft.ok() {
                host.nft_families.insert(family.to_string());
                if family == "inet" {
                    host.nft_inet = nft.stdout.clone();
                }
            }
        }
        host.nft_table = loaded;
        if layout.firewall_exposures().next().is_some() {
            let uplink = self
                .runner
                .run(&argv(&["ip", "link", "show", "dev", &layout.ext_if]))?;
            host.uplink_exists = uplink.ok();
        }
        for path in [self.paths.nftables(), self.paths.dnsmasq_conf()] {
            if let Some(content) = self.runner.read_file(&path)? {
                host.files.insert(path, content);
            }
        }
        host.dnsmasq_running = self.dnsmasq_pid().is_some();
        host.state_entries = std::fs::read_dir(&self.paths.state_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let state_dir = std::path::Path::new(&self.paths.state_dir);
        let jails = crate::jail::list(state_dir).map_err(|e| HostError::Parse {
            command: format!("read {}", crate::jail::jails_dir(state_dir).display()),
            reason: crate::error::error_chain(&e),
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
                    binds: j.binds,
                    tun: j.tun,
                },
            );
        }
        host.ai = self.observe_ai(layout, &host);
        // The jail actions run this very binary, so they work wherever it is installed.
        host.warden_exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let built = warden_core::linux_release::BuildPaths::new(
            &warden_core::linux_release::cache_dir(layout, &self.paths.state_dir),
        );
        host.service_release_built = std::path::Path::new(&built.tree()).join("usr").is_dir();
        host.service_release_link = std::fs::read_link(format!(
            "{}/{}",
            self.paths.releases_dir(),
            warden_core::linux_release::NAME
        ))
        .ok()
        .map(|p| p.display().to_string());
        host.db = self.observe_db(layout, &mut host)?;
        host.git = self.observe_git(layout, &mut host)?;
        crate::host_cms::observe(
            self.runner.as_ref(),
            layout,
            &self.paths.state_dir,
            &mut host,
        )?;
        self.observe_packages(&mut host)?;
        self.observe_accounts(layout, &mut host)?;
        self.observe_agent(&mut host)?;
        self.observe_tailscale(layout, &mut host)?;
        Ok(host)
    }

    /// The `tailscale` step's facts: the host's tailscaled (`host`, `subnet`), or the Tailscale jail's, read
    /// inside the running jail with `warden jail exec` (`jail`).
    fn observe_tailscale(&self, layout: &Layout, host: &mut LinuxHost) -> Result<(), HostError> {
        use warden_core::tailscale::Mode;
        let runner = self.runner.as_ref();
        match layout.tailscale.mode {
            Mode::Off => {}
            Mode::Host | Mode::Subnet => {
                host.tailscale.host = warden_host::tailscale::observe(runner, &[])?;
            }
            Mode::Jail => {
                let Some(jail) = layout.tailscale.jail() else {
                    return Ok(());
                };
                if host.jails.get(jail).is_some_and(|j| j.running) {
                    let exe = linux_plan::warden_exe(host).to_string();
                    let state = self.paths.state_dir.clone();
                    let prefix = [
                        exe.as_str(),
                        "--state-dir",
                        &state,
                        "jail",
                        "exec",
                        "--root",
                        jail,
                        "--",
                    ];
                    host.tailscale.jail = warden_host::tailscale::observe(runner, &prefix)?;
                }
            }
        }
        Ok(())
    }

    /// Runs a read-only probe; `None` when the program is not installed.
    fn probe(&self, words: &[&str]) -> Result<Option<warden_host::Output>, HostError> {
        match self.runner.run(&argv(words)) {
            Ok(out) => Ok(Some(out)),
            Err(RunError::Spawn { .. }) => Ok(None),
            Err(e) => Err(HostError::Run(e)),
        }
    }

    /// The Debian packages Warden calls, from `dpkg-query` (absent: not a Debian host, nothing recorded).
    fn observe_packages(&self, host: &mut LinuxHost) -> Result<(), HostError> {
        let mut words = vec!["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n"];
        let all = linux_plan::PACKAGES
            .iter()
            .chain(&warden_core::linux_git::PACKAGES);
        words.extend(all.clone().map(|(p, _)| *p));
        // Exit 1 when a package is unknown to dpkg; the others are still listed.
        let Some(out) = self.probe(&words)? else {
            return Ok(());
        };
        for (p, _) in all {
            let installed = out
                .stdout
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [p, "installed"]);
            host.packages.insert(p.to_string(), installed);
        }
        Ok(())
    }

    /// The worker account and its group on the host, and whether each bootstrapped release has the account.
    fn observe_accounts(&self, layout: &Layout, host: &mut LinuxHost) -> Result<(), HostError> {
        let user = layout.worker_user.as_str();
        let passwd = self.runner.read_file("/etc/passwd")?.unwrap_or_default();
        for (name, uid, gid) in account::parse_passwd(&passwd) {
            if name == user {
                host.users.insert(name, (uid, gid));
            }
        }
        let group = self.runner.read_file("/etc/group")?.unwrap_or_default();
        for (name, gid) in account::parse_group(&group) {
            if name == user {
                host.groups.insert(name, gid);
            }
        }
        let dir = PathBuf::from(self.paths.releases_dir());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            // Only complete releases (a bootstrap in progress has no usr/ yet; a build in progress is hidden).
            if name.starts_with('.') || !e.path().join("usr").is_dir() {
                continue;
            }
            let passwd = self
                .runner
                .read_file(&format!("{}/{name}/etc/passwd", dir.display()))?
                .unwrap_or_default();
            let has = account::parse_passwd(&passwd)
                .iter()
                .any(|(n, ..)| n == user);
            let group = self
                .runner
                .read_file(&format!("{}/{name}/etc/group", dir.display()))?
                .unwrap_or_default();
            let has_group = account::parse_group(&group).iter().any(|(n, _)| n == user);
            host.release_groups.insert(name.clone(), has_group);
            host.release_users.insert(name, has);
        }
        Ok(())
    }

    /// node and npm on PATH, and the pi install under `<state_dir>/pi` with its completion marker.
    fn observe_agent(&self, host: &mut LinuxHost) -> Result<(), HostError> {
        host.node_version = self
            .probe(&["node", "--version"])?
            .filter(|o| o.ok())
            .map(|o| o.stdout.trim().to_string());
        host.npm = self.probe(&["npm", "--version"])?.is_some_and(|o| o.ok());
        let prefix = self.paths.pi_dir();
        host.pi_version = self
            .runner
            .read_file(&pi::package_json(&prefix))?
            .and_then(|text| pi::package_version(&text));
        let marker = format!("{prefix}/{}", pi::INSTALLED_MARKER);
        if let Some(text) = self.runner.read_file(&marker)? {
            host.files.insert(marker, text);
        }
        Ok(())
    }

    /// The ai jail's model server: what `<state_dir>/ai` holds and whether the server answers.
    fn observe_ai(&self, layout: &Layout, host: &LinuxHost) -> warden_core::observed::LinuxAi {
        use warden_core::linux_ai;
        let state = self.paths.state_dir.as_str();
        let (Some(url), Some(ai)) = (
            linux_ai::base_url(layout),
            layout.service(warden_core::layout::Role::Ai),
        ) else {
            return Default::default();
        };
        // Only a running ai jail can answer; probing a missing address would wait out ARP.
        let running = host.jails.get(&ai.jail).is_some_and(|j| j.running);
        warden_core::observed::LinuxAi {
            venv: std::path::Path::new(&format!("{}/bin/python", linux_ai::venv(state))).exists(),
            installed: std::fs::read_to_string(linux_ai::installed_marker(state)).ok(),
            model: std::path::Path::new(&linux_ai::model_path(state)).exists(),
            wheels_cached: linux_ai::wheels_cached(std::path::Path::new(&layout.ai_wheel_cache)),
            served: if running {
                warden_core::models_probe::list_models(&url, std::time::Duration::from_secs(2))
                    .unwrap_or_default()
            } else {
                Vec::new()
            },
        }
    }

    /// The db jail's PostgreSQL: the host's server programs, the jail's account, cluster and config, and
    /// (while it accepts connections on the db slot) its roles and databases; the password files.
    fn observe_db(
        &self,
        layout: &Layout,
        host: &mut LinuxHost,
    ) -> Result<warden_core::observed::LinuxDb, HostError> {
        use warden_core::{db, linux_db};
        let mut d = warden_core::observed::LinuxDb::default();
        let Some(svc) = layout.service(warden_core::layout::Role::Db) else {
            return Ok(d);
        };
        let state = self.paths.state_dir.as_str();
        let jail = svc.jail.as_str();
        d.bin = db_bin(layout, state, jail);
        if d.bin.is_none() && !layout.services_on_debian() {
            d.candidate_bin = self
                .probe(&["apt-cache", "show", "--no-all-versions", linux_db::PACKAGE])?
                .filter(|o| o.ok())
                .and_then(|o| candidate_bin(&o.stdout));
        }
        let passwd = std::fs::read_to_string(linux_db::host_path(state, jail, "/etc/passwd"))
            .unwrap_or_default();
        d.user = account::parse_passwd(&passwd)
            .iter()
            .any(|(n, ..)| n == "postgres");
        d.initialised = std::path::Path::new(&linux_db::host_path(
            state,
            jail,
            &format!("{}/PG_VERSION", linux_db::DATA),
        ))
        .exists();
        for (path, _) in linux_db::config_files(layout, state, jail) {
            if let Some(content) = self.runner.read_file(&path)? {
                host.files.insert(path, content);
            }
        }
        for role in db::roles(layout) {
            if std::path::Path::new(&db::password_path(state, &role)).exists() {
                d.passwords.insert(role);
            }
        }
        d.synced = std::fs::read_to_string(db::synced_marker(state)).ok();
        // Asked of pg_ctl in the jail rather than over TCP: after a jail restart the host's neighbour entry for
        // the slot still names the old veth's MAC for seconds, so a connect would say "down" wrongly.
        let jail_runs = host.jails.get(jail).is_some_and(|j| j.running);
        if let (true, true, Some(bin)) = (jail_runs, d.initialised, &d.bin) {
            let pg_ctl = format!("{bin}/pg_ctl");
            let argv = linux_db::as_postgres(
                &host.warden_exe,
                state,
                jail,
                &[&pg_ctl, "status", "-D", linux_db::DATA],
            );
            d.running = self.runner.run(&argv)?.ok();
        }
        // pg_ctl calls a server running from its postmaster.pid alone: one still starting or recovering (its
        // start cut short) refuses psql, so the roles are read only once it accepts connections.
        if let (true, Some(bin)) = (d.running, &d.bin) {
            let argv = linux_db::pg_isready(bin, &host.warden_exe, state, jail);
            d.accepting = self.runner.run(&argv)?.ok();
        }
        if let (true, Some(bin)) = (d.accepting, &d.bin) {
            let exe = host.warden_exe.as_str();
            let psql = format!("{bin}/psql");
            for (sql, into) in [
                ("select rolname from pg_roles", &mut d.roles),
                ("select datname from pg_database", &mut d.databases),
            ] {
                let argv = linux_db::as_postgres(
                    exe,
                    state,
                    jail,
                    &[
                        &psql,
                        "-X",
                        "-A",
                        "-t",
                        "-h",
                        db::SOCKET_DIR,
                        "-d",
                        "postgres",
                        "-c",
                        sql,
                    ],
                );
                let out = self.runner.run(&argv)?;
                if out.ok() {
                    into.extend(
                        out.stdout
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_string),
                    );
                }
            }
        }
        Ok(d)
    }

    /// The git jail's smart HTTP: the jail's account and repositories (its upper directory), the owners'
    /// password and htpasswd files, nginx.conf, and which daemons run in the jail.
    fn observe_git(
        &self,
        layout: &Layout,
        host: &mut LinuxHost,
    ) -> Result<warden_core::observed::LinuxGit, HostError> {
        use warden_core::{git, linux_git};
        let mut g = warden_core::observed::LinuxGit::default();
        let Some(svc) = layout.service(warden_core::layout::Role::Git) else {
            return Ok(g);
        };
        let state = self.paths.state_dir.as_str();
        let jail = svc.jail.as_str();
        let passwd = std::fs::read_to_string(linux_git::upper_path(state, jail, "/etc/passwd"))
            .unwrap_or_default();
        g.user = account::parse_passwd(&passwd)
            .iter()
            .any(|(n, ..)| n == git::USER);
        let health = git::repo_path(&layout.namespace, git::HEALTH_REPO);
        g.repos = std::path::Path::new(&linux_git::upper_path(
            state,
            jail,
            &format!("{health}/HEAD"),
        ))
        .is_file();
        for owner in git::owners(layout) {
            if std::path::Path::new(&git::password_path(state, &owner)).exists() {
                g.passwords.insert(owner.clone());
            }
            if std::path::Path::new(&format!("{}/{owner}", linux_git::auth_dir(state))).exists() {
                g.htpasswd.insert(owner);
            }
        }
        let conf = linux_git::nginx_conf_path(state);
        if let Some(content) = self.runner.read_file(&conf)? {
            host.files.insert(conf, content);
        }
        if host.jails.get(jail).is_some_and(|j| j.running) {
            let out = self
                .runner
                .run(&linux_git::running_probe(&host.warden_exe, state, jail))?;
            g.nginx = out.stdout.lines().any(|l| l.trim() == "nginx");
            g.fcgiwrap = out.stdout.lines().any(|l| l.trim() == "fcgiwrap");
        }
        Ok(g)
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

/// The db jail's PostgreSQL programs as the jail sees them (`/usr/lib/postgresql/N/bin`): on the `debian`
/// release the jail's own (in its root once it exists, else in the built release it will copy), on the `host`
/// fallback the host's (bound in with the host's `/usr`).
pub fn db_bin(layout: &Layout, state: &str, jail: &str) -> Option<String> {
    use warden_core::{linux_db, linux_release};
    if !layout.services_on_debian() {
        return postgres_bin(std::path::Path::new("/usr/lib/postgresql"));
    }
    let root = linux_db::jail_root(state, jail);
    let root = if std::path::Path::new(&root).join("usr").is_dir() {
        root
    } else {
        linux_release::BuildPaths::new(&linux_release::cache_dir(layout, state)).tree()
    };
    let lib = std::path::Path::new(&root).join("usr/lib/postgresql");
    postgres_bin(&lib).and_then(|b| b.strip_prefix(&root).map(str::to_string))
}

/// The newest PostgreSQL server under `root` (Debian's `/usr/lib/postgresql/N/bin` with a `postgres` in it).
pub fn postgres_bin(root: &std::path::Path) -> Option<String> {
    postgres_bin_with(root, "postgres")
}

/// The newest Debian PostgreSQL `bin` directory under `root` (`N/bin`) that has `program` in it.
pub fn postgres_bin_with(root: &std::path::Path, program: &str) -> Option<String> {
    let mut best: Option<(u32, String)> = None;
    for e in std::fs::read_dir(root).ok()?.filter_map(Result::ok) {
        let Some(v) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let bin = e.path().join("bin");
        if bin.join(program).is_file() && best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, bin.display().to_string()));
        }
    }
    best.map(|(_, b)| b)
}

/// Where `apt-get install postgresql` would put the server, from `apt-cache show postgresql`
/// (`Depends: postgresql-15`).
pub fn candidate_bin(show: &str) -> Option<String> {
    let deps = show.lines().find_map(|l| l.strip_prefix("Depends:"))?;
    deps.split(',').find_map(|d| {
        let name = d.split_whitespace().next()?;
        let v: u32 = name.strip_prefix("postgresql-")?.parse().ok()?;
        Some(format!("/usr/lib/postgresql/{v}/bin"))
    })
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
        Ok(linux_plan::plan_with(
            layout,
            &host,
            &self.paths,
            &self.options,
        ))
    }

    fn teardown_plan(&self, layout: &Layout, options: &TeardownOptions) -> Result<Plan, HostError> {
        let host = self.observe(layout)?;
        let mut plan = warden_core::linux_teardown::plan(layout, &host, &self.paths, options);
        // Workers other than the jails belong to a running `warden serve` or `warden run` of this state
        // directory (dead owners' workers were reaped before planning): tearing the bridge down under them
        // would strand their turns.
        let state_dir = std::path::Path::new(&self.paths.state_dir);
        let live: Vec<String> = crate::record::list(state_dir)
            .into_iter()
            .filter(|w| !host.jails.contains_key(w))
            .collect();
        if !live.is_empty() {
            plan.blocked.push(warden_core::Blocker {
                step: warden_core::Step::Jails,
                problem: format!(
                    "workers {} are running (a `warden serve` or `warden run` of {})",
                    live.join(", "),
                    self.paths.state_dir
                ),
                fix: "stop `warden serve` (SIGTERM drains it) and wait for running `warden run`s, then run `warden teardown` again".into(),
            });
        }
        Ok(plan)
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
    fn finds_the_postgres_server() {
        assert_eq!(
            candidate_bin("Package: postgresql\nDepends: postgresql-15, postgresql-common\n")
                .as_deref(),
            Some("/usr/lib/postgresql/15/bin")
        );
        assert_eq!(candidate_bin("Package: x\n"), None);
        let d = tempfile::tempdir().unwrap();
        for v in ["13", "15", "9"] {
            std::fs::create_dir_all(d.path().join(v).join("bin")).unwrap();
        }
        std::fs::write(d.path().join("13/bin/postgres"), "").unwrap();
        assert!(postgres_bin(d.path()).unwrap().ends_with("/13/bin"));
        std::fs::write(d.path().join("15/bin/postgres"), "").unwrap();
        assert!(postgres_bin(d.path()).unwrap().ends_with("/15/bin"));
    }

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
