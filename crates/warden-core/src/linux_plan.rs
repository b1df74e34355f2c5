//! The Linux plan: bridge, forwarding, nftables, the service jails (`warden jail …`) and a Warden-supervised
//! dnsmasq, as exact argv.
//! Files live in Warden's state directory, never in the host's `/etc`, so a Linux host keeps its own config.

use crate::account;
use crate::layout::{Layout, Shape};
use crate::observed::LinuxHost;
use crate::pi;
use crate::plan::{Action, Blocker, Plan, PlanOptions, Step};
use crate::render;

/// The Debian packages whose programs the Linux backend runs: (package, program).
pub const PACKAGES: [(&str, &str); 3] = [
    ("dnsmasq-base", "dnsmasq"),
    ("nftables", "nft"),
    ("iproute2", "ip"),
];
/// The worker account's login shell on Debian.
pub use crate::account::NOLOGIN;

/// Where the Linux backend keeps its generated files and pid files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxPaths {
    /// The state directory (e.g. `/var/lib/warden`).
    pub state_dir: String,
}

impl LinuxPaths {
    /// The nftables ruleset file.
    pub fn nftables(&self) -> String {
        format!("{}/nftables.conf", self.state_dir)
    }
    /// dnsmasq's config file.
    pub fn dnsmasq_conf(&self) -> String {
        format!("{}/dnsmasq.conf", self.state_dir)
    }
    /// dnsmasq's pid file.
    pub fn dnsmasq_pid(&self) -> String {
        format!("{}/dnsmasq.pid", self.state_dir)
    }
    /// The argv that stops Warden's dnsmasq. `--retry` waits until the process is gone (so a new one can bind
    /// port 53 at once); `--name` too, because start-stop-daemon refuses to match on a pid file alone unless
    /// root owns it, and dnsmasq writes its own.
    pub fn stop_dnsmasq(&self) -> Vec<String> {
        [
            "start-stop-daemon",
            "--stop",
            "--oknodo",
            "--retry",
            "TERM/5/KILL/2",
            "--name",
            "dnsmasq",
            "--pidfile",
            &self.dnsmasq_pid(),
        ]
        .map(str::to_string)
        .to_vec()
    }
    /// pi's install prefix (`warden serve` binds it into agent workers).
    pub fn pi_dir(&self) -> String {
        pi::pi_dir(&self.state_dir)
    }
    /// The releases directory (`warden release bootstrap` puts each release in a directory here).
    pub fn releases_dir(&self) -> String {
        format!("{}/releases", self.state_dir)
    }
}

/// Plans every step for a Linux host, installing missing packages.
pub fn plan(layout: &Layout, host: &LinuxHost, paths: &LinuxPaths) -> Plan {
    plan_with(layout, host, paths, &PlanOptions::default())
}

/// Plans the `base`, `host`, `jails`, `agent` and `dns` steps for a Linux host.
pub fn plan_with(
    layout: &Layout,
    host: &LinuxHost,
    paths: &LinuxPaths,
    options: &PlanOptions,
) -> Plan {
    let mut plan = Plan::default();
    let p = &mut plan;
    packages(host, options, &mut p.actions, &mut p.blocked, &mut p.notes);
    worker_account(layout, host, paths, &mut p.actions, &mut p.notes);
    host_network(layout, host, paths, &mut p.actions);
    uplink_blocker(layout, host, &mut p.blocked);
    jails(layout, host, paths, p);
    let (state_dir, exe) = (paths.state_dir.as_str(), warden_exe(host));
    crate::linux_db::plan(layout, host, state_dir, exe, options, p);
    crate::linux_git::plan(layout, host, state_dir, exe, options, p);
    crate::linux_cms::plan(layout, host, state_dir, exe, options, p);
    agent(layout, host, paths, &mut p.actions, &mut p.blocked);
    crate::linux_ai::plan(layout, host, state_dir, exe, &mut p.actions, &mut p.notes);
    dns(layout, host, paths, &mut p.actions);
    crate::tailscale_plan::linux(layout, host, exe, state_dir, p);
    plan
}

/// Host step: the bridge with the gateway address and a fixed MAC, IPv4 forwarding, the nftables ruleset.
fn host_network(layout: &Layout, host: &LinuxHost, paths: &LinuxPaths, out: &mut Vec<Action>) {
    let s = Step::Host;
    let br = layout.bridge.as_str();
    let want_addr = format!("{}/24", layout.gateway);
    if !host.bridge_exists {
        // A bridge without an address of its own takes its lowest port's MAC and changes it whenever a jail or
        // worker veth comes or goes, which strands every neighbour's ARP entry for the gateway for seconds.
        let [a, b, c, d] = layout.gateway.octets();
        let mac = format!("02:57:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
        out.push(Action::run(
            s,
            format!("create the bridge {br} with the fixed MAC {mac}"),
            &["ip", "link", "add", br, "address", &mac, "type", "bridge"],
        ));
    }
    if host.bridge_addrs != [want_addr.clone()] {
        out.push(Action::run(
            s,
            format!("set {br}'s only address to the gateway {want_addr}"),
            &["ip", "addr", "flush", "dev", br],
        ));
        out.push(Action::run(
            s,
            format!("give {br} the gateway address {want_addr}"),
            &["ip", "addr", "add", &want_addr, "dev", br],
        ));
    }
    if !host.bridge_up {
        out.push(Action::run(
            s,
            format!("bring {br} up"),
            &["ip", "link", "set", br, "up"],
        ));
    }
    if !host.forwarding {
        out.push(Action::run(
            s,
            "enable IPv4 forwarding",
            &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        ));
    }
    let rules = render::nftables::render(layout);
    let rules_changed = host.files.get(&paths.nftables()) != Some(&rules);
    if rules_changed {
        out.push(Action::file(
            s,
            format!(
                "write the nftables ruleset (NAT of the subnet, worker isolation, service paths{})",
                render::expose::summary(layout)
            ),
            &paths.nftables(),
            "0644",
            rules,
        ));
    }
    // A rule deleted from the loaded table behind Warden's back (the file is unchanged) is loaded again.
    let lost = render::nftables::required_lines(layout)
        .into_iter()
        .find(|rule| host.nft_table && !host.nft_inet.lines().any(|l| l.trim() == rule));
    if rules_changed || !host.nft_table || lost.is_some() {
        let why = match &lost {
            Some(rule) => format!(" (the loaded table lacks `{rule}`)"),
            None => String::new(),
        };
        out.push(
            Action::run(
                s,
                format!("load the ruleset into tables inet and bridge warden (atomic){why}"),
                &["nft", "-f", &paths.nftables()],
            )
            .verified_by(&["nft", "list", "table", "inet", render::nftables::TABLE]),
        );
    }
}

/// The host step cannot redirect public ports from an uplink this host does not have: the DNAT would match
/// nothing (`network.ext_if` defaults to FreeBSD's `vtnet0`).
fn uplink_blocker(layout: &Layout, host: &LinuxHost, blocked: &mut Vec<Blocker>) {
    if layout.firewall_exposures().next().is_none() || host.uplink_exists {
        return;
    }
    blocked.push(Blocker {
        step: Step::Host,
        problem: format!(
            "[[expose]] redirects public ports from network.ext_if = {:?}, which is not an interface of this host",
            layout.ext_if
        ),
        fix: "set network.ext_if (or WARDEN_EXT_IF) to this host's uplink; `ip -br link` lists the interfaces".into(),
    });
}

/// Dns step: dnsmasq's zone written, and dnsmasq (re)started when the zone changed or it is not running.
fn dns(layout: &Layout, host: &LinuxHost, paths: &LinuxPaths, out: &mut Vec<Action>) {
    let d = Step::Dns;
    let conf = render::dnsmasq_conf::render(layout);
    let conf_changed = host.files.get(&paths.dnsmasq_conf()) != Some(&conf);
    if conf_changed {
        out.push(Action::file(
            d,
            format!("write dnsmasq.conf: the {} zone", layout.domain),
            &paths.dnsmasq_conf(),
            "0644",
            conf,
        ));
    }
    if host.dnsmasq_running && conf_changed {
        out.push(Action::run(
            d,
            "stop the old dnsmasq to load the new zone",
            &paths.stop_dnsmasq(),
        ));
    }
    if !host.dnsmasq_running || conf_changed {
        out.push(Action::run(
            d,
            format!("start dnsmasq on 127.0.0.1 and {}", layout.gateway),
            &[
                "dnsmasq".to_string(),
                format!("--conf-file={}", paths.dnsmasq_conf()),
                format!("--pid-file={}", paths.dnsmasq_pid()),
            ],
        ));
    }
}

/// Base step: the Debian packages Warden calls, installed with apt-get — or, with `--no-install`, a
/// blocker per missing package naming its install command.
fn packages(
    host: &LinuxHost,
    options: &PlanOptions,
    out: &mut Vec<Action>,
    blocked: &mut Vec<Blocker>,
    notes: &mut Vec<String>,
) {
    if host.packages.is_empty() {
        notes.push(format!(
            "dpkg-query not found: not a Debian host, so packages are not checked; make sure {} are installed",
            PACKAGES.iter().map(|(_, p)| *p).collect::<Vec<_>>().join(", ")
        ));
        return;
    }
    let missing = PACKAGES
        .iter()
        .any(|(p, _)| host.packages.get(*p) != Some(&true));
    if missing && !options.no_install {
        out.push(Action::run(
            Step::Base,
            "refresh apt's package lists",
            &["apt-get", "update", "-q"],
        ));
    }
    let why = "programs Warden runs";
    let _ = crate::linux_db::apt_packages(Step::Base, &PACKAGES, why, host, options, out, blocked);
}

/// Base step: the worker account (fixed uid/gid, no login shell, no password: useradd locks it) on the host
/// and in every bootstrapped release.
fn worker_account(
    layout: &Layout,
    host: &LinuxHost,
    paths: &LinuxPaths,
    out: &mut Vec<Action>,
    notes: &mut Vec<String>,
) {
    let user = layout.worker_user.as_str();
    let (uid, gid) = (account::WORKER_UID, account::WORKER_GID);
    let add = |root: Option<&str>| account::add_argv(user, root);
    let (groupadd, useradd) = add(None);
    if !host.groups.contains_key(user) {
        out.push(Action::run(
            Step::Base,
            format!("create the group {user} (gid {gid}) of the worker account"),
            &groupadd,
        ));
    }
    match host.users.get(user) {
        None => out.push(
            Action::run(
                Step::Base,
                format!("create the worker account {user} (uid {uid}, no login shell, no password)"),
                &useradd,
            )
            .verified_by(&["id", "-u", user]),
        ),
        Some(&(u, g)) if (u, g) != (account::WORKER_UID, account::WORKER_GID) => notes.push(format!(
            "the account {user} exists with uid {u} gid {g}, not {uid}:{gid}: left alone (files it owns would change owner); workers run as {u}:{g}"
        )),
        Some(_) => {}
    }
    for (release, has) in &host.release_users {
        let root = format!("{}/{release}", paths.releases_dir());
        let (groupadd, useradd) = add(Some(&root));
        if !host.release_groups.get(release).copied().unwrap_or(false) {
            out.push(Action::run(
                Step::Base,
                format!("create the group {user} (gid {gid}) in the {release} release"),
                &groupadd,
            ));
        }
        if !has {
            out.push(Action::run(
                Step::Base,
                format!("create the worker account {user} (uid {uid}) in the {release} release"),
                &useradd,
            ));
        }
    }
}

/// The `agent` step: the pinned pi under `<state_dir>/pi` (where `warden serve` binds it from), installed by
/// npm and then marked complete; a node ≥ 20.6 must be on PATH to run it, and npm to install it.
fn agent(
    layout: &Layout,
    host: &LinuxHost,
    paths: &LinuxPaths,
    out: &mut Vec<Action>,
    blocked: &mut Vec<Blocker>,
) {
    let (a, b, c) = pi::MIN_NODE;
    let node = host
        .node_version
        .as_deref()
        .and_then(pi::parse_node_version);
    if node.is_none_or(|v| v < pi::MIN_NODE) {
        blocked.push(Blocker {
            step: Step::Agent,
            problem: format!(
                "pi needs node >= {a}.{b}.{c} on PATH, and {}",
                match &host.node_version {
                    Some(v) => format!("the first node on PATH is {}", v.trim()),
                    None => "there is no node on PATH".into(),
                }
            ),
            fix: "install Node.js 20.6 or newer (Debian 13: apt-get install nodejs npm; Debian 12: NodeSource's nodejs 20 or 22), then `warden setup --backend linux --step agent`".into(),
        });
    }
    if !host.npm {
        blocked.push(Blocker {
            step: Step::Agent,
            problem: "npm is not on PATH (setup installs pi with it)".into(),
            fix: "apt-get install npm (NodeSource's nodejs includes it)".into(),
        });
    }
    out.extend(pi::install_actions(
        &paths.pi_dir(),
        &layout.pi_version,
        host.pi_version.as_deref(),
        &host.files,
        "workers run it from there",
    ));
}

/// The `warden` binary jail actions run: the observing one, else `warden` on PATH.
pub fn warden_exe(host: &LinuxHost) -> &str {
    if host.warden_exe.is_empty() {
        "warden"
    } else {
        host.warden_exe.as_str()
    }
}

/// The `jails` step: every service jail of the layout exists (at its slot, in its shape; db, git and cms on
/// `jails.service_release`, linked from the release cache first, the ai jail on `host`) and runs. A jail that exists with another address or shape is left alone, with a note: recreating it would
/// destroy its data.
fn jails(layout: &Layout, host: &LinuxHost, paths: &LinuxPaths, plan: &mut Plan) {
    let exe = warden_exe(host);
    let state = paths.state_dir.as_str();
    let on_service_release = |s: &crate::layout::Service| {
        layout.services_on_debian() && crate::linux_release::ROLES.contains(&s.role)
    };
    if layout.jails().any(on_service_release) {
        let overlaid: Vec<&str> = host
            .jails
            .iter()
            .filter(|(_, j)| j.release == crate::linux_release::NAME && j.shape == "thin")
            .map(|(name, _)| name.as_str())
            .collect();
        crate::linux_release::link(
            layout,
            state,
            host.service_release_built,
            host.service_release_link.as_deref(),
            &overlaid,
            plan,
        );
    }
    let Plan {
        actions: out,
        notes,
        ..
    } = plan;
    for s in layout.jails() {
        let shape = match s.shape {
            Shape::Thick => "thick",
            _ => "thin",
        };
        let release = if on_service_release(s) {
            crate::linux_release::NAME
        } else {
            "host"
        };
        let name = s.jail.as_str();
        let role = s.role.name();
        match host.jails.get(name) {
            None => {
                // The subnet and bridge go along so the jail's gateway matches this layout whatever the
                // child warden reads; the address is given exactly rather than as a slot for the same reason.
                let mut binds = Vec::new();
                if s.role == crate::layout::Role::Ai {
                    // The model server and model, installed on the host by the `ai` step.
                    binds = vec!["--bind".to_string(), crate::linux_ai::jail_bind(state)];
                }
                if s.role == crate::layout::Role::Git {
                    // nginx.conf and the htpasswd files, written by the `git` step on the host.
                    binds = vec!["--bind".to_string(), crate::linux_git::jail_bind(state)];
                }
                if s.role == crate::layout::Role::Cms {
                    // The config and the sites, written on the host (`warden site deploy`).
                    binds = vec!["--bind".to_string(), crate::linux_cms::jail_bind(state)];
                }
                if layout.tailscale.jail() == Some(name) {
                    // tailscale.mode = jail: the jail runs its own tailscaled.
                    binds.push("--tun".to_string());
                }
                out.push(Action::run(
                    Step::Jails,
                    format!(
                        "create the {role} jail {name} at {}/24 on {}, {shape}, on the {release} release",
                        s.addr, layout.bridge
                    ),
                    &[
                        exe.to_string(),
                        "--state-dir".into(),
                        state.into(),
                        "--subnet".into(),
                        layout.cidr(),
                        "--bridge".into(),
                        layout.bridge.clone(),
                        "jail".into(),
                        "create".into(),
                        name.into(),
                        "--addr".into(),
                        s.addr.to_string(),
                        "--shape".into(),
                        shape.into(),
                        "--release".into(),
                        release.into(),
                    ]
                    .into_iter()
                    .chain(binds)
                    .collect::<Vec<String>>(),
                ));
            }
            Some(j) if j.addr != Some(s.addr) || j.shape != shape || j.release != release => notes.push(format!(
                "jail {name} exists as {} at {} on the {} release but the layout wants {shape} at {} on the {release} release: left alone (its data would be lost); `warden jail destroy --force {name}` and `warden setup` recreate it",
                j.shape,
                j.addr.map(|a| a.to_string()).unwrap_or_else(|| "no address".into()),
                j.release,
                s.addr
            )),
            Some(_) => {}
        }
        if !host.jails.get(name).is_some_and(|j| j.running) {
            out.push(Action::run(
                Step::Jails,
                format!("start the {role} jail {name}"),
                &[exe, "--state-dir", state, "jail", "start", name],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::observed::LinuxJail;
    use crate::plan::Op;

    #[test]
    fn exposures_are_in_the_ruleset_and_block_the_host_step_without_the_uplink() {
        let file = "[network]\next_if = \"eth9\"\n[[expose]]\nport = 80\nto = \"cms\"\n";
        let layout =
            Layout::from_loaded(&load(Some(("w.toml", file)), &|_| None, &vec![]).unwrap())
                .unwrap();
        let paths = LinuxPaths {
            state_dir: "/var/lib/warden".into(),
        };
        let p = plan(&layout, &LinuxHost::default(), &paths);
        let blocker = p
            .blocked
            .iter()
            .find(|b| b.step == Step::Host)
            .expect("blocked");
        assert!(
            blocker
                .problem
                .contains("\"eth9\", which is not an interface"),
            "{blocker:?}"
        );
        assert!(blocker.fix.contains("network.ext_if"), "{blocker:?}");
        let host = LinuxHost {
            uplink_exists: true,
            ..Default::default()
        };
        let p = plan(&layout, &host, &paths);
        assert!(
            p.blocked.iter().all(|b| b.step != Step::Host),
            "{:?}",
            p.blocked
        );
        let write = p
            .actions
            .iter()
            .find(|a| a.summary.starts_with("write the nftables ruleset"))
            .unwrap();
        assert!(
            write
                .summary
                .ends_with("exposures 80/tcp → cms 10.0.1.3:80)"),
            "{}",
            write.summary
        );
        // Without exposures the uplink is not needed.
        let plain = Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap();
        let p = plan(&plain, &LinuxHost::default(), &paths);
        assert!(
            p.blocked.iter().all(|b| b.step != Step::Host),
            "{:?}",
            p.blocked
        );
    }

    #[test]
    fn a_rule_missing_from_the_loaded_table_reloads_the_ruleset() {
        let env = |k: &str| match k {
            "WARDEN_TAILSCALE_MODE" => Some("subnet".to_string()),
            "WARDEN_EXT_IF" => Some("eth9".to_string()),
            _ => None,
        };
        let toml = "[[expose]]\nport = 80\nto = \"cms\"\n";
        let layout =
            Layout::from_loaded(&load(Some(("w.toml", toml)), &env, &vec![]).unwrap()).unwrap();
        let paths = LinuxPaths {
            state_dir: "/var/lib/warden".into(),
        };
        let required = render::nftables::required_lines(&layout);
        assert_eq!(required.len(), 3, "{required:?}");
        let table = |lines: &[String]| {
            let body: String = lines.iter().map(|l| format!("\t\t{l}\n")).collect();
            format!("table inet warden {{\n{body}}}\n")
        };
        let mut host = LinuxHost {
            nft_table: true,
            nft_inet: table(&required),
            uplink_exists: true,
            ..Default::default()
        };
        host.files
            .insert(paths.nftables(), render::nftables::render(&layout));
        let loads = |host: &LinuxHost| -> Vec<String> {
            plan(&layout, host, &paths)
                .only(Step::Host)
                .actions
                .iter()
                .filter(|a| a.summary.starts_with("load the ruleset"))
                .map(|a| a.summary.clone())
                .collect()
        };
        assert!(loads(&host).is_empty(), "{:?}", loads(&host));
        // Each line missing alone (the exposure's DNAT, its forward accept, the tailscale0 rule) reloads.
        for i in 0..required.len() {
            let mut rest = required.clone();
            let gone = rest.remove(i);
            host.nft_inet = table(&rest);
            let l = loads(&host);
            assert_eq!(l.len(), 1, "{l:?}");
            assert!(l[0].contains(&format!("lacks `{gone}`")), "{l:?}");
        }
    }

    #[test]
    fn fresh_then_converged() {
        let layout = Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap();
        let paths = LinuxPaths {
            state_dir: "/var/lib/warden".into(),
        };
        let built = LinuxHost {
            service_release_built: true,
            ..Default::default()
        };
        let first = plan(&layout, &built, &paths);
        assert!(first.actions.len() >= 8);
        let mut host = LinuxHost {
            bridge_exists: true,
            bridge_up: true,
            bridge_addrs: vec!["10.0.1.1/24".into()],
            forwarding: true,
            nft_table: true,
            dnsmasq_running: true,
            packages: PACKAGES
                .iter()
                .map(|(p, _)| (p.to_string(), true))
                .collect(),
            node_version: Some("v20.20.2".into()),
            npm: true,
            pi_version: Some(layout.pi_version.clone()),
            users: [("clawdie".to_string(), (1500, 1500))].into(),
            groups: [("clawdie".to_string(), 1500)].into(),
            ..Default::default()
        };
        for a in &first.actions {
            if let Op::File(f) = &a.op {
                host.files.insert(f.path.clone(), f.content.clone());
            }
        }
        let mut jail_actions = first.clone().only(Step::Jails).actions;
        // The built debian release linked first, then create + start for git, cms, ai, db; the ai jail gets the
        // model server's directory.
        let mkdir = jail_actions.remove(0);
        assert!(mkdir.summary.contains("releases directory"), "{mkdir:?}");
        let link = jail_actions.remove(0);
        let tree = crate::linux_release::BuildPaths::new("/var/lib/warden/releases").tree();
        assert_eq!(
            link.op,
            Op::Argv(
                ["ln", "-sfnT", &tree, "/var/lib/warden/releases/debian"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(jail_actions.len(), 8, "{jail_actions:#?}");
        let Op::Argv(git_create) = &jail_actions[0].op else {
            panic!("not a command: {:?}", jail_actions[0]);
        };
        assert!(
            git_create
                .join(" ")
                .ends_with("--bind /var/lib/warden/git-http:/etc/warden-git"),
            "{git_create:?}"
        );
        let Op::Argv(ai_create) = &jail_actions[4].op else {
            panic!("not a command: {:?}", jail_actions[4]);
        };
        assert!(
            ai_create
                .join(" ")
                .ends_with("--bind /var/lib/warden/ai:/opt/warden-ai"),
            "{ai_create:?}"
        );
        let Op::Argv(argv) = &jail_actions[6].op else {
            panic!("not a command: {:?}", jail_actions[6]);
        };
        assert_eq!(
            argv[7..].join(" "),
            "jail create clawdiedb --addr 10.0.1.5 --shape thick --release debian"
        );
        let Op::Argv(ai_create) = &jail_actions[4].op else {
            panic!("not a command");
        };
        assert!(
            ai_create.join(" ").contains("--release host"),
            "{ai_create:?}"
        );
        host.service_release_built = true;
        host.service_release_link = Some(tree);
        for s in layout.jails() {
            host.jails.insert(
                s.jail.clone(),
                LinuxJail {
                    running: s.role != crate::layout::Role::Cms,
                    addr: Some(s.addr),
                    shape: if s.shape == Shape::Thick {
                        "thick"
                    } else {
                        "thin"
                    }
                    .into(),
                    release: if s.role == crate::layout::Role::Ai {
                        "host"
                    } else {
                        "debian"
                    }
                    .into(),
                    binds: match s.role {
                        crate::layout::Role::Ai => {
                            vec![crate::linux_ai::jail_bind(&paths.state_dir)]
                        }
                        crate::layout::Role::Cms => {
                            vec![crate::linux_cms::jail_bind(&paths.state_dir)]
                        }
                        _ => Vec::new(),
                    },
                    tun: false,
                },
            );
        }
        // The ai step: venv, install (server, then the model package), marker, model, log dir, server.
        let ai: Vec<String> = plan(&layout, &host, &paths)
            .only(Step::Ai)
            .actions
            .iter()
            .map(|a| a.summary.clone())
            .collect();
        assert_eq!(ai.len(), 7, "{ai:#?}");
        assert!(
            ai[6].starts_with("start the model server in clawdieai on 10.0.1.4:8080"),
            "{ai:#?}"
        );
        host.ai = crate::observed::LinuxAi {
            venv: true,
            installed: Some(crate::linux_ai::installed_content()),
            model: true,
            served: vec![crate::linux_ai::MODEL_ALIAS.into()],
            wheels_cached: true,
        };
        crate::linux_db::converge(&layout, &paths.state_dir, &mut host);
        crate::linux_git::converge(&layout, &paths.state_dir, &mut host);
        crate::linux_cms::converge(&layout, &paths.state_dir, &mut host);
        let again = plan(&layout, &host, &paths);
        assert_eq!(again.actions.len(), 1);
        assert_eq!(again.actions[0].summary, "start the cms jail clawdiecms");
        host.jails.get_mut("clawdiecms").unwrap().running = true;
        assert!(plan(&layout, &host, &paths).is_empty());
        host.jails.get_mut("clawdiegit").unwrap().addr = Some("10.0.1.9".parse().unwrap());
        let p = plan(&layout, &host, &paths);
        assert!(
            p.is_empty() && p.notes.iter().any(|n| n.contains("left alone")),
            "{p:?}"
        );
    }

    /// A fresh Debian host: packages first (apt-get), the account, and the agent step's pi install; with
    /// `--no-install` each missing package blocks the host step, naming its install command.
    #[test]
    fn packages_account_and_agent() {
        let layout = Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap();
        let paths = LinuxPaths {
            state_dir: "/var/lib/warden".into(),
        };
        let mut host = LinuxHost {
            packages: [
                ("dnsmasq-base".to_string(), false),
                ("nftables".into(), true),
                ("iproute2".into(), true),
            ]
            .into(),
            node_version: Some("v20.20.2".into()),
            npm: true,
            ..Default::default()
        };
        host.release_users.insert("debian".into(), false);
        host.service_release_built = true;
        crate::linux_db::converge(&layout, &paths.state_dir, &mut host);
        crate::linux_git::converge(&layout, &paths.state_dir, &mut host);
        host.packages.insert("dnsmasq-base".into(), false);
        crate::linux_cms::converge(&layout, &paths.state_dir, &mut host);
        let p = plan(&layout, &host, &paths);
        assert!(p.blocked.is_empty(), "{p:?}");
        let text = p.to_text();
        assert!(text.contains("$ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dnsmasq-base\n"), "{text}");
        assert!(text.contains("$ useradd --system --uid 1500 --gid 1500 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin --comment 'Warden worker' clawdie\n"), "{text}");
        assert!(
            text.contains("$ useradd --root /var/lib/warden/releases/debian --system --uid 1500"),
            "{text}"
        );
        let agent = p.clone().only(Step::Agent);
        assert_eq!(agent.actions.len(), 2, "{agent:?}");
        assert!(agent.to_text().contains("$ npm install --prefix /var/lib/warden/pi --no-audit --no-fund --prefer-offline --loglevel=error @mariozechner/pi-coding-agent@0.73.1"));
        assert!(p.actions[0].summary.contains("apt"), "packages come first");
        assert!(p.actions[..6].iter().all(|a| a.step == Step::Base), "{p:?}");

        let no = plan_with(&layout, &host, &paths, &PlanOptions { no_install: true });
        assert!(!no.actions.iter().any(|a| a.summary.contains("apt")));
        assert_eq!(no.blocked.len(), 1);
        assert!(
            no.blocked_text().contains("dnsmasq-base")
                && no
                    .blocked_text()
                    .contains("apt-get install --no-install-recommends dnsmasq-base")
        );

        host.node_version = Some("v18.19.0".into());
        let old = plan(&layout, &host, &paths).only(Step::Agent);
        assert!(
            old.blocked_text().contains("v18.19.0") && old.blocked_text().contains("fix:"),
            "{old:?}"
        );
    }
}
