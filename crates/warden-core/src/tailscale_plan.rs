//! The `tailscale` step of both planners, and its undo (`tailscale.mode`, see [`crate::tailscale`]).
//!
//! - `host`, `subnet`: the host's tailscaled must run and be logged in. FreeBSD installs and starts it (`pkg`,
//!   `sysrc`, `service`); on Linux it comes from Tailscale's own apt repository, so a missing one blocks the
//!   step with the install command. Logging in is the operator's (`tailscale up` prints a login URL): a node
//!   that is not `Running` blocks the step, naming `tailscale up`.
//! - `subnet`: `tailscale set --advertise-routes=` adds the Warden /24 to the routes the host advertises (other
//!   routes kept). `tailscale set` rather than `tailscale up`: `up` refuses to change one flag without
//!   repeating every other non-default one the node was brought up with. Forwarding is the `host` step's, the
//!   firewall rules are in the `host` step's ruleset ([`crate::render::tailscale`]).
//! - `jail`: FreeBSD: devfs ruleset 14 (13 plus `tun*`), `bastille config NAME set allow.tun` and `devfs_ruleset
//!   14`, a restart, then `tailscale` installed, enabled and started in the jail. Linux: the jail's record gets
//!   `/dev/net/tun` (`warden jail set NAME --tun on`, a restart), and tailscaled is started in the jail.
//!   Logging the jail's node in is the operator's (`jexec -l NAME tailscale up`); the doctor says so.

use crate::layout::Layout;
use crate::observed::{BastilleHost, LinuxHost};
use crate::plan::{Action, Blocker, Plan, PlanOptions, Step};
use crate::tailscale::{self, Mode, Node, INTERFACE, PKG, RC_ENABLE, SERVICE};

const S: Step = Step::Tailscale;

/// The system a node runs on: the fixes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Linux,
    FreeBsd,
}

impl System {
    fn backend(self) -> &'static str {
        match self {
            System::Linux => "linux",
            System::FreeBsd => "bastille",
        }
    }
}

/// The blocker of a host node that is installed and answers but is not `Running` (or does not answer, on
/// Linux, where Warden does not manage tailscaled). Returns whether the node can take `tailscale set`.
fn host_node_ready(node: &Node, system: System, plan: &mut Plan) -> bool {
    if node.running() {
        return true;
    }
    let again = format!(
        "warden setup --backend {} --step tailscale",
        system.backend()
    );
    let (problem, fix) = match (&node.status, node.installed, system) {
        (_, false, System::Linux) => (
            "tailscale is not installed (Debian has no package of it)".to_string(),
            format!("install it from Tailscale's apt repository (curl -fsSL https://tailscale.com/install.sh | sh), then `tailscale up` and `{again}`"),
        ),
        // FreeBSD: the install and start actions come first; the login is checked on the next plan.
        (_, false, System::FreeBsd) => return false,
        (None, true, System::Linux) => (
            format!("tailscaled does not answer ({})", node.error),
            format!("systemctl enable --now tailscaled, then `tailscale up` and `{again}`"),
        ),
        (None, true, System::FreeBsd) => return false,
        (Some(s), true, _) => (
            format!(
                "this host is not logged in to a tailnet (BackendState {})",
                s.backend_state
            ),
            format!("tailscale up (open the login URL it prints, or pass --auth-key=file:PATH), then `{again}`"),
        ),
    };
    plan.blocked.push(Blocker {
        step: S,
        problem,
        fix,
    });
    false
}

/// `subnet` mode: the Warden /24 among the advertised routes.
fn advertise(layout: &Layout, node: &Node, plan: &mut Plan) {
    let cidr = layout.cidr();
    let mut routes = node.advertised().to_vec();
    if routes.contains(&cidr) {
        return;
    }
    routes.push(cidr.clone());
    plan.actions.push(Action::run(
        S,
        format!("advertise {cidr} to the tailnet (subnet route; other advertised routes kept)"),
        &["tailscale", "set", &tailscale::advertise_flag(&routes)],
    ));
}

/// The FreeBSD host's tailscaled: installed (pkg), enabled and started, when it does not answer.
fn freebsd_host_daemon(host: &BastilleHost, options: &PlanOptions, plan: &mut Plan) {
    let node = &host.tailscale.host;
    if !node.installed {
        if options.no_install {
            plan.blocked.push(Blocker {
                step: S,
                problem: format!(
                    "package {PKG} (tailscaled) is not installed, and --no-install was given"
                ),
                fix: format!("pkg install -y {PKG}"),
            });
            return;
        }
        plan.actions.push(
            Action::run(
                S,
                format!("install {PKG} (pkg): tailscaled and its CLI"),
                &["env", "ASSUME_ALWAYS_YES=yes", "pkg", "install", "-y", PKG],
            )
            .verified_by(&["pkg", "info", "-e", PKG]),
        );
    }
    if host.rc_conf.get(RC_ENABLE).map(String::as_str) != Some("YES") {
        plan.actions.push(Action::run(
            S,
            format!("set {RC_ENABLE}=YES in /etc/rc.conf (tailscaled at boot)"),
            &["sysrc", &format!("{RC_ENABLE}=YES")],
        ));
    }
    if node.status.is_none() {
        plan.actions.push(Action::run(
            S,
            format!("start tailscaled (it creates {INTERFACE})"),
            &["service", SERVICE, "start"],
        ));
        plan.notes.push(
            "once tailscaled runs, log this host in once: `tailscale up` (it prints a login URL), then `warden setup --step tailscale`"
                .into(),
        );
    }
}

/// The FreeBSD `tailscale` step.
pub fn bastille(layout: &Layout, host: &BastilleHost, options: &PlanOptions, plan: &mut Plan) {
    match layout.tailscale.mode {
        Mode::Off => {}
        Mode::Host | Mode::Subnet => {
            freebsd_host_daemon(host, options, plan);
            let ready = host_node_ready(&host.tailscale.host, System::FreeBsd, plan);
            if ready && layout.tailscale.mode == Mode::Subnet {
                advertise(layout, &host.tailscale.host, plan);
            }
        }
        Mode::Jail => {
            if let Some(jail) = layout.tailscale.jail() {
                freebsd_jail(layout, host, jail, plan);
            }
        }
    }
}

/// `jails/NAME/jail.conf` on a FreeBSD host.
pub fn bastille_jail_conf(layout: &Layout, jail: &str) -> String {
    format!("{}/jails/{jail}/jail.conf", layout.bastille.prefix)
}

/// The `jail.conf` lines `jail` mode needs, as Bastille's `config set` writes them.
pub fn jail_conf_lines() -> [String; 2] {
    [
        format!("  devfs_ruleset = {};", tailscale::DEVFS_RULESET),
        "  allow.tun;".to_string(),
    ]
}

/// FreeBSD `jail` mode: the devfs ruleset, the jail's parameters, a restart, then tailscaled inside.
fn freebsd_jail(layout: &Layout, host: &BastilleHost, jail: &str, plan: &mut Plan) {
    use crate::render::jail_conf::DEVFS_RULES;
    let rules = host.files.get(DEVFS_RULES).cloned().unwrap_or_default();
    if !tailscale::has_devfs_rules(&rules) {
        let mut content = rules;
        if !content.is_empty() && !content.ends_with('\n') {
            content.push('\n');
        }
        content.push_str(&tailscale::devfs_rules());
        plan.actions.push(Action::file(
            S,
            format!(
                "add devfs ruleset {} (warden_tailscale): Bastille's VNET rules and /dev/tun* for {jail}",
                tailscale::DEVFS_RULESET
            ),
            DEVFS_RULES,
            "0644",
            content,
        ));
        plan.actions.push(Action::run(
            S,
            "reload devfs rules",
            &["service", "devfs", "restart"],
        ));
    }
    let Some(state) = host.jails.get(jail) else {
        // The jails step creates it; setup plans this step again once it exists.
        return;
    };
    let conf = host
        .files
        .get(&bastille_jail_conf(layout, jail))
        .cloned()
        .unwrap_or_default();
    let has = |line: &str| conf.lines().any(|l| l == line);
    let [ruleset_line, tun_line] = jail_conf_lines();
    let ruleset = tailscale::DEVFS_RULESET.to_string();
    let mut changed = false;
    if !has(&ruleset_line) {
        plan.actions.push(Action::run(
            S,
            format!("give {jail} devfs ruleset {ruleset} (its /dev shows the tun devices)"),
            &["bastille", "config", jail, "set", "devfs_ruleset", &ruleset],
        ));
        changed = true;
    }
    if !has(&tun_line) {
        plan.actions.push(Action::run(
            S,
            format!("allow {jail} to create tun interfaces (allow.tun, seed 000)"),
            &["bastille", "config", jail, "set", "allow.tun"],
        ));
        changed = true;
    }
    if changed {
        plan.actions.push(
            Action::run(
                S,
                format!("restart {jail} so its new parameters apply"),
                &["bastille", "restart", jail],
            )
            .verified_by(&["jls", "-j", jail, "jid"]),
        );
    } else if !state.running {
        return;
    }
    let jexec = |cmd: &[&str]| -> Vec<String> {
        let mut argv = vec!["jexec", "-l", "-U", "root", jail];
        argv.extend_from_slice(cmd);
        argv.into_iter().map(str::to_string).collect()
    };
    if !state.packages.contains(PKG) {
        plan.actions.push(
            Action::run(
                S,
                format!("install {PKG} in {jail}"),
                &jexec(&["env", "ASSUME_ALWAYS_YES=yes", "pkg", "install", PKG]),
            )
            .verified_by(&jexec(&["pkg", "info", "-e", PKG])),
        );
    }
    if state.rc_conf.get(RC_ENABLE).map(String::as_str) != Some("YES") {
        plan.actions.push(Action::run(
            S,
            format!("set {RC_ENABLE}=YES in {jail}'s rc.conf"),
            &jexec(&["sysrc", &format!("{RC_ENABLE}=YES")]),
        ));
    }
    // A restart stops every service of the jail, tailscaled among them.
    if changed || !state.services_running.contains(SERVICE) {
        plan.actions.push(Action::run(
            S,
            format!("start tailscaled in {jail} (it creates {INTERFACE} in the jail)"),
            &jexec(&["service", SERVICE, "start"]),
        ));
    }
    if !host.tailscale.jail.running() {
        plan.notes.push(format!(
            "the tailnet node of {jail} is not logged in ({}): `jexec -l {jail} tailscale up` once",
            host.tailscale.jail.state_text()
        ));
    }
}

/// The Linux `tailscale` step. `exe` and `state_dir` spell the `warden jail` commands.
pub fn linux(layout: &Layout, host: &LinuxHost, exe: &str, state_dir: &str, plan: &mut Plan) {
    match layout.tailscale.mode {
        Mode::Off => {}
        Mode::Host | Mode::Subnet => {
            let ready = host_node_ready(&host.tailscale.host, System::Linux, plan);
            if ready && layout.tailscale.mode == Mode::Subnet {
                advertise(layout, &host.tailscale.host, plan);
            }
        }
        Mode::Jail => {
            if let Some(jail) = layout.tailscale.jail() {
                linux_jail(host, jail, exe, state_dir, plan);
            }
        }
    }
}

/// Where tailscaled keeps its state and socket inside a Linux jail.
pub const LINUX_JAIL_STATE: &str = "/var/lib/tailscale/tailscaled.state";
/// tailscaled's socket inside a Linux jail (the CLI's default path).
pub const LINUX_JAIL_SOCKET: &str = "/run/tailscale/tailscaled.sock";

/// The shell line that starts tailscaled in a Linux jail, detached (it stops with the jail).
pub fn linux_jail_daemon() -> String {
    format!(
        "mkdir -p /var/lib/tailscale /run/tailscale && exec setsid -f tailscaled --state={LINUX_JAIL_STATE} --socket={LINUX_JAIL_SOCKET} --tun={INTERFACE} </dev/null >>/var/log/tailscaled.log 2>&1"
    )
}

/// Linux `jail` mode: `/dev/net/tun` in the jail (its record, then a restart), tailscaled started in it.
fn linux_jail(host: &LinuxHost, jail: &str, exe: &str, state_dir: &str, plan: &mut Plan) {
    let Some(state) = host.jails.get(jail) else {
        // The jails step creates it with the device; setup plans this step again once it exists.
        return;
    };
    // Read inside the running jail: a missing `tailscale` would only fail the start of tailscaled.
    if state.running && !host.tailscale.jail.installed {
        plan.blocked.push(Blocker {
            step: S,
            problem: format!("tailscale is not installed in {jail} (tailscale.jail runs its own tailscaled)"),
            fix: format!(
                "install Tailscale in {jail} from Tailscale's apt repository (https://tailscale.com/kb/1031/install-linux; on the host release, install it on the host: the jail sees the host's /usr), then `warden setup --backend linux --step tailscale`"
            ),
        });
        return;
    }
    let warden = |cmd: &[&str]| -> Vec<String> {
        let mut argv = vec![exe, "--state-dir", state_dir, "jail"];
        argv.extend_from_slice(cmd);
        argv.into_iter().map(str::to_string).collect()
    };
    let restart = !state.tun;
    if !state.tun {
        plan.actions.push(Action::run(
            S,
            format!("give {jail} the tun device /dev/net/tun (from its next start)"),
            &warden(&["set", jail, "--tun", "on"]),
        ));
        if state.running {
            plan.actions.push(Action::run(
                S,
                format!("stop {jail} to restart it with /dev/net/tun"),
                &warden(&["stop", jail]),
            ));
        }
        plan.actions.push(Action::run(
            S,
            format!("start {jail} with /dev/net/tun"),
            &warden(&["start", jail]),
        ));
    } else if !state.running {
        return;
    }
    if restart || host.tailscale.jail.status.is_none() {
        let line = linux_jail_daemon();
        plan.actions.push(Action::run(
            S,
            format!("start tailscaled in {jail} (it creates {INTERFACE} in the jail's network namespace)"),
            &crate::linux_db::in_jail(exe, state_dir, jail, &["sh", "-c", &line]),
        ));
    }
    if !host.tailscale.jail.running() {
        plan.notes.push(format!(
            "the tailnet node of {jail} is not logged in ({}): `warden jail exec {jail} -- tailscale up` once",
            host.tailscale.jail.state_text()
        ));
    }
}

/// The undo of `subnet` mode on either system: the Warden /24 no longer advertised (other routes kept). The
/// host's login, tailscaled and its package are the operator's and stay.
fn unadvertise(layout: &Layout, node: &Node, plan: &mut Plan) {
    let cidr = layout.cidr();
    if !node.advertised().contains(&cidr) {
        return;
    }
    let rest: Vec<String> = node
        .advertised()
        .iter()
        .filter(|r| **r != cidr)
        .cloned()
        .collect();
    plan.actions.push(Action::run(
        S,
        format!("stop advertising {cidr} to the tailnet (other routes kept)"),
        &["tailscale", "set", &tailscale::advertise_flag(&rest)],
    ));
}

/// The FreeBSD undo: the advertised route and Warden's devfs ruleset (the jail goes with the jails step).
pub fn bastille_undo(layout: &Layout, host: &BastilleHost, plan: &mut Plan) {
    unadvertise(layout, &host.tailscale.host, plan);
    let rules = host
        .files
        .get(crate::render::jail_conf::DEVFS_RULES)
        .cloned()
        .unwrap_or_default();
    if tailscale::has_devfs_rules(&rules) {
        plan.actions.push(Action::file(
            S,
            format!(
                "remove devfs ruleset {} (warden_tailscale) from /etc/devfs.rules",
                tailscale::DEVFS_RULESET
            ),
            crate::render::jail_conf::DEVFS_RULES,
            "0644",
            tailscale::without_devfs_rules(&rules),
        ));
    }
    kept_note(host.tailscale.host.installed, plan);
}

/// The Linux undo: the advertised route (the jail and its device go with the jails step).
pub fn linux_undo(layout: &Layout, host: &LinuxHost, plan: &mut Plan) {
    unadvertise(layout, &host.tailscale.host, plan);
    kept_note(host.tailscale.host.installed, plan);
}

fn kept_note(installed: bool, plan: &mut Plan) {
    if installed {
        plan.notes.push(
            "kept tailscale and this host's tailnet login (the operator's): `tailscale logout` ends it".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::tailscale::{Prefs, Status};

    fn layout(mode: &str, jail: &str) -> Layout {
        let env = |k: &str| match k {
            "WARDEN_TAILSCALE_MODE" => Some(mode.to_string()),
            "WARDEN_TAILSCALE_JAIL" if !jail.is_empty() => Some(jail.to_string()),
            _ => None,
        };
        Layout::from_loaded(&load(None, &env, &vec![]).unwrap()).unwrap()
    }

    fn running(routes: &[&str]) -> Node {
        Node {
            installed: true,
            status: Some(Status {
                backend_state: "Running".into(),
                tailscale_ips: vec!["100.64.0.7".into()],
                ..Default::default()
            }),
            prefs: Some(Prefs {
                want_running: true,
                advertise_routes: routes.iter().map(|r| r.to_string()).collect(),
            }),
            error: String::new(),
        }
    }

    fn argvs(plan: &Plan) -> Vec<String> {
        plan.actions
            .iter()
            .map(|a| match &a.op {
                crate::plan::Op::Argv(v) => v.join(" "),
                crate::plan::Op::File(f) => format!("write {}", f.path),
                crate::plan::Op::Remove(p) => format!("remove {p}"),
            })
            .collect()
    }

    #[test]
    fn off_plans_nothing_and_bad_config_names_the_fix() {
        let l = layout("off", "");
        let mut p = Plan::default();
        linux(&l, &LinuxHost::default(), "warden", "/s", &mut p);
        bastille(
            &l,
            &BastilleHost::default(),
            &PlanOptions::default(),
            &mut p,
        );
        assert!(p.actions.is_empty() && p.blocked.is_empty());
        let bad = |mode: &str, jail: &str| {
            let env = |k: &str| match k {
                "WARDEN_TAILSCALE_MODE" => Some(mode.to_string()),
                "WARDEN_TAILSCALE_JAIL" => Some(jail.to_string()),
                _ => None,
            };
            Layout::from_loaded(&load(None, &env, &vec![]).unwrap())
                .unwrap_err()
                .to_string()
        };
        let e = bad("exit-node", "");
        assert!(
            e.contains("tailscale.mode") && e.contains("off, host, subnet, jail"),
            "{e}"
        );
        let e = bad("jail", "");
        assert!(
            e.contains("tailscale.jail") && e.contains("clawdiegit"),
            "{e}"
        );
        let e = bad("jail", "nosuch");
        assert!(e.contains("not a jail of the layout"), "{e}");
        let e = bad("host", "clawdiegit");
        assert!(e.contains("only jail mode"), "{e}");
    }

    #[test]
    fn host_and_subnet_need_a_logged_in_node_then_advertise_once() {
        let l = layout("subnet", "");
        let mut host = LinuxHost::default();
        let mut p = Plan::default();
        linux(&l, &host, "warden", "/s", &mut p);
        assert!(p.actions.is_empty());
        assert!(p.blocked_text().contains("install.sh"), "{p:?}");
        host.tailscale.host = Node {
            installed: true,
            status: Some(Status {
                backend_state: "NeedsLogin".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut p = Plan::default();
        linux(&l, &host, "warden", "/s", &mut p);
        assert!(
            p.blocked_text().contains("NeedsLogin")
                && p.blocked_text().contains("fix: tailscale up"),
            "{p:?}"
        );
        host.tailscale.host = running(&["192.168.9.0/24"]);
        let mut p = Plan::default();
        linux(&l, &host, "warden", "/s", &mut p);
        assert_eq!(
            argvs(&p),
            ["tailscale set --advertise-routes=192.168.9.0/24,10.0.1.0/24"]
        );
        host.tailscale.host = running(&["192.168.9.0/24", "10.0.1.0/24"]);
        let mut p = Plan::default();
        linux(&l, &host, "warden", "/s", &mut p);
        assert!(p.actions.is_empty() && p.blocked.is_empty());
        // Host mode needs the login only.
        let mut p = Plan::default();
        host.tailscale.host = running(&[]);
        linux(&layout("host", ""), &host, "warden", "/s", &mut p);
        assert!(p.actions.is_empty() && p.blocked.is_empty());
        // Teardown: the /24 goes, the other route stays.
        host.tailscale.host = running(&["192.168.9.0/24", "10.0.1.0/24"]);
        let mut p = Plan::default();
        linux_undo(&l, &host, &mut p);
        assert_eq!(
            argvs(&p),
            ["tailscale set --advertise-routes=192.168.9.0/24"]
        );
    }

    #[test]
    fn freebsd_installs_and_starts_tailscaled_and_blocks_on_login() {
        let l = layout("host", "");
        let mut p = Plan::default();
        bastille(
            &l,
            &BastilleHost::default(),
            &PlanOptions::default(),
            &mut p,
        );
        assert_eq!(
            argvs(&p),
            [
                "env ASSUME_ALWAYS_YES=yes pkg install -y tailscale",
                "sysrc tailscaled_enable=YES",
                "service tailscaled start"
            ]
        );
        assert!(p.blocked.is_empty());
        let mut p = Plan::default();
        bastille(
            &l,
            &BastilleHost::default(),
            &PlanOptions { no_install: true },
            &mut p,
        );
        assert!(p.blocked_text().contains("pkg install -y tailscale"));
    }

    #[test]
    fn freebsd_jail_gets_tun_then_tailscaled() {
        let l = layout("jail", "clawdiecms");
        let mut host = BastilleHost::default();
        host.jails.insert(
            "clawdiecms".into(),
            crate::observed::JailState {
                running: true,
                ..Default::default()
            },
        );
        let mut p = Plan::default();
        bastille(&l, &host, &PlanOptions::default(), &mut p);
        assert_eq!(
            argvs(&p),
            [
                "write /etc/devfs.rules",
                "service devfs restart",
                "bastille config clawdiecms set devfs_ruleset 14",
                "bastille config clawdiecms set allow.tun",
                "bastille restart clawdiecms",
                "jexec -l -U root clawdiecms env ASSUME_ALWAYS_YES=yes pkg install tailscale",
                "jexec -l -U root clawdiecms sysrc tailscaled_enable=YES",
                "jexec -l -U root clawdiecms service tailscaled start",
            ]
        );
        assert!(p
            .notes
            .iter()
            .any(|n| n.contains("jexec -l clawdiecms tailscale up")));
        // The rendered jail.conf is what those `config set`s make.
        let svc = l.jails().find(|s| s.jail == "clawdiecms").unwrap();
        let conf = crate::render::jail_conf::render(
            &l,
            svc,
            "15.0-RELEASE",
            crate::render::jail_conf::LogStyle::PerJail,
        );
        host.files
            .insert(bastille_jail_conf(&l, "clawdiecms"), conf);
        host.files.insert(
            crate::render::jail_conf::DEVFS_RULES.into(),
            tailscale::devfs_rules(),
        );
        let j = host.jails.get_mut("clawdiecms").unwrap();
        j.packages.insert(PKG.into());
        j.rc_conf.insert(RC_ENABLE.into(), "YES".into());
        j.services_running.insert(SERVICE.into());
        let mut p = Plan::default();
        bastille(&l, &host, &PlanOptions::default(), &mut p);
        assert!(p.actions.is_empty(), "{p:?}");
        let mut p = Plan::default();
        bastille_undo(&l, &host, &mut p);
        assert_eq!(argvs(&p), ["write /etc/devfs.rules"]);
    }

    #[test]
    fn linux_jail_gets_the_tun_device_then_tailscaled() {
        let l = layout("jail", "clawdiegit");
        let mut host = LinuxHost::default();
        host.jails.insert(
            "clawdiegit".into(),
            crate::observed::LinuxJail {
                running: true,
                ..Default::default()
            },
        );
        // Not installed in the running jail: blocked, naming the install; nothing planned.
        let mut p = Plan::default();
        linux(&l, &host, "/bin/warden", "/s", &mut p);
        assert!(p.actions.is_empty(), "{p:?}");
        assert!(
            p.blocked.len() == 1
                && p.blocked[0]
                    .problem
                    .contains("tailscale is not installed in clawdiegit")
                && p.blocked[0].fix.contains("apt repository"),
            "{p:?}"
        );
        host.tailscale.jail.installed = true;
        let mut p = Plan::default();
        linux(&l, &host, "/bin/warden", "/s", &mut p);
        assert!(p.blocked.is_empty(), "{p:?}");
        let got = argvs(&p);
        assert_eq!(
            got[..3],
            [
                "/bin/warden --state-dir /s jail set clawdiegit --tun on",
                "/bin/warden --state-dir /s jail stop clawdiegit",
                "/bin/warden --state-dir /s jail start clawdiegit",
            ]
        );
        assert!(
            got[3].contains("jail exec --root clawdiegit -- sh -c")
                && got[3].contains("tailscaled --state="),
            "{got:?}"
        );
        let j = host.jails.get_mut("clawdiegit").unwrap();
        j.tun = true;
        host.tailscale.jail = running(&[]);
        let mut p = Plan::default();
        linux(&l, &host, "/bin/warden", "/s", &mut p);
        assert!(p.actions.is_empty() && p.notes.is_empty(), "{p:?}");
    }
}
