//! Observe a FreeBSD host with Bastille into a [`BastilleHost`]: the FreeBSD tools and Bastille's own files first,
//! Bastille's table output as little as possible (reference/bastille.md, key message and §8).
//!
//! A tool that cannot be started (the runner's spawn error) reads as absent: the host is treated as fresh in
//! that respect and a note says so, so `warden plan` works on a host where nothing is installed yet.

use std::collections::{BTreeMap, BTreeSet};

use warden_core::account;
use warden_core::bastille_plan::{
    BASTILLE_CONF, DEVFS_RULES, HOSTS, HOST_PACKAGES, LOADER_CONF, PF_CONF, POSTGRES_PKG, RC_D,
};
use warden_core::layout::Role;
use warden_core::observed::{BastilleHost, JailState};
use warden_core::render::rc_conf::{self, DNSMASQ_CONF};
use warden_core::Layout;
use warden_core::{bastille_git, forgejo, git};
use warden_host::{HostError, Output, RunError, Runner};

use crate::datasets;
use crate::parse::{self, version::BastilleVersion};

/// What `observe` saw, plus what the operator should know about how it was seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The observed host, as the planner reads it.
    pub host: BastilleHost,
    /// The parsed `bastille -v`, if Bastille answered.
    pub version: Option<BastilleVersion>,
    /// Tools that were missing and other caveats, one sentence each.
    pub notes: Vec<String>,
}

/// The in-jail facts the planner's db/git/cms/ai steps compare (mirrors `bastille_plan::service_steps`).
#[derive(Debug, Default)]
struct InJailProbe {
    packages: Vec<&'static str>,
    rc_vars: Vec<&'static str>,
    services: Vec<&'static str>,
    paths: Vec<String>,
    databases: bool,
    users: Vec<&'static str>,
}

fn probe_for(layout: &Layout, role: Role) -> InJailProbe {
    match role {
        Role::Db => InJailProbe {
            packages: vec![POSTGRES_PKG],
            rc_vars: vec!["postgresql_enable"],
            services: vec!["postgresql"],
            paths: vec![warden_core::bastille_plan::PG_DATA.to_string()],
            databases: true,
            ..Default::default()
        },
        Role::Git => InJailProbe {
            packages: bastille_git::PACKAGES
                .into_iter()
                .chain([forgejo::PKG, warden_core::db::FREEBSD_CLIENT_PKG])
                .collect(),
            rc_vars: bastille_git::rc_vars(),
            services: bastille_git::SERVICES.to_vec(),
            users: vec![git::USER],
            paths: bastille_git::paths(layout),
            ..Default::default()
        },
        Role::Cms => InJailProbe {
            packages: vec!["nginx", warden_core::db::FREEBSD_CLIENT_PKG],
            rc_vars: vec!["nginx_enable"],
            services: vec!["nginx"],
            ..Default::default()
        },
        Role::Ai => InJailProbe {
            packages: vec!["llama-cpp", warden_core::bastille_plan::AI_PIP_PKG],
            rc_vars: vec![
                "llama_server_enable",
                "llama_server_model",
                "llama_server_args",
            ],
            services: vec!["llama-server"],
            paths: vec![warden_core::bastille_plan::AI_MODEL.to_string()],
            ..Default::default()
        },
        _ => InJailProbe::default(),
    }
}

/// Runs a read-only probe. `Ok(None)`: the program is not installed (a spawn error), which observe reads as
/// "absent".
fn probe(runner: &dyn Runner, argv: &[&str]) -> Result<Option<Output>, HostError> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    match runner.run(&argv) {
        Ok(out) => Ok(Some(out)),
        Err(RunError::Spawn { .. }) => Ok(None),
        Err(e) => Err(HostError::Run(e)),
    }
}

/// Remembers which tools were missing, so each is reported once.
struct Missing<'a> {
    notes: &'a mut Vec<String>,
    seen: BTreeSet<String>,
}

impl Missing<'_> {
    fn note(&mut self, tool: &str, meaning: &str) {
        if self.seen.insert(tool.to_string()) {
            self.notes.push(format!("{tool} not found: {meaning}"));
        }
    }
}

/// Observes everything the FreeBSD planner compares.
pub fn observe(runner: &dyn Runner, layout: &Layout) -> Result<Observation, HostError> {
    let mut notes = Vec::new();
    let mut host = BastilleHost::default();
    let mut missing = Missing {
        notes: &mut notes,
        seen: BTreeSet::new(),
    };

    // Bastille's version decides how its output is read (§0).
    let version = match probe(runner, &["bastille", "-v"])? {
        Some(out) if out.ok() => parse::version::parse(&out.stdout, &out.stderr),
        Some(out) => {
            // Bastille loads bastille.conf before every command (§4.4), so on a fresh host even `-v` fails with
            // `No config file found!`: installed, not configured. Either way there is nothing to read yet.
            let said = out
                .stdout
                .lines()
                .chain(out.stderr.lines())
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("");
            missing.notes.push(format!(
                "`bastille -v` failed (exit {}: {said}): treating the host as having no releases and no jails yet",
                out.status
            ));
            None
        }
        None => {
            missing.note(
                "bastille",
                "treating the host as fresh (no releases, no jails)",
            );
            None
        }
    };
    host.bastille_version = version.as_ref().map(|v| v.raw.clone());

    for path in [
        BASTILLE_CONF,
        PF_CONF,
        DEVFS_RULES,
        HOSTS,
        DNSMASQ_CONF,
        RC_D,
        LOADER_CONF,
    ] {
        if let Some(content) = runner.read_file(path)? {
            host.files.insert(path.to_string(), content);
        }
    }
    observe_service_files(runner, layout, &mut host)?;
    host.prefix_mode = runner.mode(&layout.bastille.prefix)?;
    observe_base(runner, layout, &mut host, &mut missing)?;

    for (var, _) in rc_conf::settings(layout) {
        match probe(runner, &["sysrc", "-n", &var])? {
            // sysrc prints the value and exits 0; an unset variable is an error (exit 1): absent.
            Some(out) if out.ok() => {
                host.rc_conf
                    .insert(var, out.stdout.trim_end_matches('\n').to_string());
            }
            Some(_) => {}
            None => missing.note("sysrc", "no rc.conf variable is read as set"),
        }
    }

    // Assignments in /etc/rc.conf itself (sysrc writes `VAR="value"`), apart from the defaults' values.
    let rc_text = runner.read_file("/etc/rc.conf")?.unwrap_or_default();
    host.rc_conf_file_vars = rc_text
        .lines()
        .filter_map(|l| l.trim_start().split_once('='))
        .map(|(var, _)| var.trim().to_string())
        .filter(|var| !var.is_empty() && !var.starts_with('#'))
        .collect();

    match probe(runner, &["ifconfig", "-f", "inet:cidr", &layout.bridge])? {
        Some(out) if out.ok() => {
            host.bridge_exists = true;
            host.bridge_addrs = parse::ifconfig::inet_addrs(&out.stdout);
        }
        Some(_) => {}
        None => missing.note("ifconfig", "the bridge is read as missing"),
    }

    match probe(runner, &["sysctl", "-n", "net.inet.ip.forwarding"])? {
        Some(out) if out.ok() => host.forwarding = parse::sysctl::is_on(&out.stdout),
        Some(_) => {}
        None => missing.note("sysctl", "forwarding is read as off"),
    }

    match probe(runner, &["pfctl", "-si"])? {
        Some(out) if out.ok() => host.pf_enabled = parse::pfctl::enabled(&out.stdout),
        // `/dev/pf: No such file or directory` (pf.ko not loaded, §7.5): pf is off.
        Some(_) => {}
        None => missing.note("pfctl", "pf is read as disabled"),
    }
    if host.pf_enabled {
        if let Some(out) = probe(runner, &["pfctl", "-sn"])?.filter(Output::ok) {
            host.pf_nat = parse::pfctl::nat_rules(&out.stdout);
        }
    }

    if let Some(v) = &version {
        observe_releases(runner, layout, v, &mut host)?;
        observe_jails(runner, layout, &mut host, &mut missing)?;
    }
    observe_agent(runner, layout, &mut host)?;
    observe_tailscale(runner, layout, &mut host)?;

    match probe(runner, &["service", "dnsmasq", "onestatus"])? {
        Some(out) => host.dnsmasq_running = parse::service::running(out.status, &out.stdout),
        None => missing.note("service", "dnsmasq is read as stopped"),
    }

    Ok(Observation {
        host,
        version,
        notes,
    })
}

/// The `tailscale` step's facts: the host's tailscaled (`host`, `subnet`: its package, rc.conf switch, status
/// and prefs), or the Tailscale jail's `jail.conf` and, while it runs, its tailscaled (`jail`).
fn observe_tailscale(
    runner: &dyn Runner,
    layout: &Layout,
    host: &mut BastilleHost,
) -> Result<(), HostError> {
    use warden_core::tailscale::{Mode, RC_ENABLE};
    match layout.tailscale.mode {
        Mode::Off => {}
        Mode::Host | Mode::Subnet => {
            host.tailscale.host = warden_host::tailscale::observe(runner, &[])?;
            if let Some(out) = probe(runner, &["sysrc", "-n", RC_ENABLE])?.filter(Output::ok) {
                host.rc_conf
                    .insert(RC_ENABLE.into(), out.stdout.trim().to_string());
            }
        }
        Mode::Jail => {
            let Some(jail) = layout.tailscale.jail() else {
                return Ok(());
            };
            let conf = warden_core::tailscale_plan::bastille_jail_conf(layout, jail);
            if let Some(text) = runner.read_file(&conf)? {
                host.files.insert(conf, text);
            }
            if host.jails.get(jail).is_some_and(|j| j.running) {
                host.tailscale.jail =
                    warden_host::tailscale::observe(runner, &jexec(jail, "root", &[]))?;
            }
        }
    }
    Ok(())
}

/// The service jails' files the db and git steps write: the db cluster's two config files; the git jail's
/// nginx.conf, the owners' htpasswd files, and Forgejo's app.ini with its secrets masked (the plan compares it
/// with a rendering whose secrets are masked the same way).
fn observe_service_files(
    runner: &dyn Runner,
    layout: &Layout,
    host: &mut BastilleHost,
) -> Result<(), HostError> {
    if let Some(db) = layout.service(Role::Db) {
        for (path, _) in warden_core::bastille_plan::db_config_files(layout, &db.jail) {
            if let Some(content) = runner.read_file(&path)? {
                host.files.insert(path, content);
            }
        }
    }
    if let Some(cms) = layout.service(Role::Cms) {
        observe_cms(runner, layout, &cms.jail, host)?;
    }
    let Some(svc) = layout.service(Role::Git) else {
        return Ok(());
    };
    let at = |inside: &str| bastille_git::host_path(layout, &svc.jail, inside);
    let conf = at(bastille_git::NGINX_CONF);
    if let Some(text) = runner.read_file(&conf)? {
        host.files.insert(conf, text);
    }
    let ini = at(forgejo::APP_INI);
    if let Some(text) = runner.read_file(&ini)? {
        host.files.insert(ini, forgejo::mask(&text));
    }
    for owner in git::owners(layout) {
        let file = at(&format!("{}/{owner}", bastille_git::AUTH_DIR));
        if runner.mode(&file)?.is_some() {
            host.git_htpasswd.insert(owner);
        }
    }
    Ok(())
}

/// The agent step's facts: node and npm on the host and in the release, the worker template snapshot, and pi
/// under `<state_dir>/pi` with its completion marker.
fn observe_agent(
    runner: &dyn Runner,
    layout: &Layout,
    host: &mut BastilleHost,
) -> Result<(), HostError> {
    use warden_core::{bastille_agent as agent, pi};
    let release = agent::release_dir(layout);
    let have_release = runner.mode(&release)?.is_some();
    for p in agent::PACKAGES {
        if let Some(out) = probe(runner, &["pkg", "info", "-e", p])? {
            if out.ok() {
                host.packages.insert(p.to_string());
            }
        }
        if have_release {
            if let Some(out) = probe(runner, &["pkg", "--rootdir", &release, "info", "-e", p])? {
                if out.ok() {
                    host.release_packages.insert(p.to_string());
                }
            }
        }
    }
    let snap = agent::worker_template(layout, &layout.release);
    host.worker_template = probe(
        runner,
        &["zfs", "list", "-H", "-o", "name", "-t", "snapshot", &snap],
    )?
    .is_some_and(|o| o.ok());
    let prefix = pi::pi_dir(&agent::state_dir(layout));
    host.pi_version = runner
        .read_file(&pi::package_json(&prefix))?
        .as_deref()
        .and_then(pi::package_version);
    let marker = format!("{prefix}/{}", pi::INSTALLED_MARKER);
    if let Some(text) = runner.read_file(&marker)? {
        host.files.insert(marker, text);
    }
    Ok(())
}

/// The base step's facts: host packages (`pkg info -e`), the worker account and group on the host, and
/// whether the layout's release has the account.
fn observe_base(
    runner: &dyn Runner,
    layout: &Layout,
    host: &mut BastilleHost,
    missing: &mut Missing,
) -> Result<(), HostError> {
    for (p, _) in HOST_PACKAGES {
        match probe(runner, &["pkg", "info", "-e", p])? {
            Some(out) if out.ok() => {
                host.packages.insert(p.to_string());
            }
            Some(_) => {}
            None => missing.note("pkg", "no package is read as installed"),
        }
    }
    let user = layout.worker_user.as_str();
    let passwd = runner.read_file("/etc/passwd")?.unwrap_or_default();
    for (name, uid, gid) in account::parse_passwd(&passwd) {
        if name == user {
            host.users.insert(name, (uid, gid));
        }
    }
    let group = runner.read_file("/etc/group")?.unwrap_or_default();
    for (name, gid) in account::parse_group(&group) {
        if name == user {
            host.groups.insert(name, gid);
        }
    }
    let release_passwd = format!(
        "{}/{}/etc/passwd",
        datasets::releases_dir(layout),
        layout.release
    );
    host.release_has_user = runner
        .read_file(&release_passwd)?
        .is_some_and(|t| account::parse_passwd(&t).iter().any(|(n, ..)| n == user));
    let release_group = release_passwd.replace("/etc/passwd", "/etc/group");
    host.release_has_group = runner
        .read_file(&release_group)?
        .is_some_and(|t| account::parse_group(&t).iter().any(|(n, _)| n == user));
    Ok(())
}

/// Releases from `bastille list releases` (§2.1), and the layout's release if its `COPYRIGHT` exists (the same
/// test Bastille's list applies), so a list that printed nothing useful cannot make Warden bootstrap twice.
fn observe_releases(
    runner: &dyn Runner,
    layout: &Layout,
    version: &BastilleVersion,
    host: &mut BastilleHost,
) -> Result<(), HostError> {
    if let Some(out) = probe(runner, &["bastille", "list", "releases"])?.filter(Output::ok) {
        host.releases = parse::releases::parse(&out.stdout, version.range);
    }
    let copyright = format!(
        "{}/{}/COPYRIGHT",
        datasets::releases_dir(layout),
        layout.release
    );
    if runner.mode(&copyright)?.is_some() {
        host.releases.insert(layout.release.clone());
    } else if host.releases.contains(&layout.release) {
        // Listed but without COPYRIGHT: a half-bootstrapped release (pain point §6.7). Plan the bootstrap again.
        host.releases.remove(&layout.release);
    }
    Ok(())
}

/// Jails: existence from `jails/NAME/jail.conf` (§2.4, recommended check), running from `jls --libxo json -v`,
/// then the in-jail state the service steps compare, for running jails only.
fn observe_jails(
    runner: &dyn Runner,
    layout: &Layout,
    host: &mut BastilleHost,
    missing: &mut Missing,
) -> Result<(), HostError> {
    let running: BTreeMap<String, bool> = match probe(runner, &["jls", "--libxo", "json", "-v"])? {
        Some(out) if out.ok() => match parse::jls::parse(&out.stdout) {
            Ok(jails) => jails.into_iter().map(|j| (j.name, j.active)).collect(),
            Err(e) => {
                return Err(HostError::Parse {
                    command: "jls --libxo json -v".into(),
                    reason: e.reason,
                    output: out.stdout.chars().take(400).collect(),
                })
            }
        },
        Some(_) => BTreeMap::new(),
        None => {
            missing.note("jls", "every jail is read as stopped");
            BTreeMap::new()
        }
    };
    for svc in layout.jails() {
        let conf = format!("{}/{}/jail.conf", datasets::jails_dir(layout), svc.jail);
        if runner.mode(&conf)?.is_none() {
            continue;
        }
        let mut state = JailState {
            running: running.get(&svc.jail).copied().unwrap_or(false),
            ..Default::default()
        };
        if state.running {
            let mut want = probe_for(layout, svc.role);
            if layout.tailscale.jail() == Some(svc.jail.as_str()) {
                // tailscale.mode = jail: the jail's own tailscaled.
                use warden_core::tailscale::{PKG, RC_ENABLE, SERVICE};
                want.packages.push(PKG);
                want.rc_vars.push(RC_ENABLE);
                want.services.push(SERVICE);
            }
            observe_in_jail(runner, &svc.jail, &want, &mut state, missing)?;
        }
        host.jails.insert(svc.jail.clone(), state);
    }
    Ok(())
}

/// The cms jail's `nginx.conf` and which vhosts have a `current` release (host paths into the jail's root).
fn observe_cms(
    runner: &dyn Runner,
    layout: &Layout,
    jail: &str,
    host: &mut BastilleHost,
) -> Result<(), HostError> {
    use warden_core::{bastille_cms, cms};
    let (path, _) = bastille_cms::conf_file(layout, jail);
    if let Some(content) = runner.read_file(&path)? {
        host.files.insert(path, content);
    }
    let sites = bastille_cms::sites_host_dir(layout, jail);
    for v in cms::vhosts(layout) {
        let current = format!("{}/current", cms::vhost_dir(&sites, &v.name));
        if runner.mode(&current)?.is_some() {
            host.cms_current.insert(v.name);
        }
    }
    Ok(())
}

/// `jexec -l -U USER JAIL argv…` (§7.1, §8.6): the command's own exit status.
fn jexec<'a>(jail: &'a str, user: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["jexec", "-l", "-U", user, jail];
    argv.extend_from_slice(cmd);
    argv
}

fn observe_in_jail(
    runner: &dyn Runner,
    jail: &str,
    want: &InJailProbe,
    state: &mut JailState,
    missing: &mut Missing,
) -> Result<(), HostError> {
    let mut ok = |argv: Vec<&str>| -> Result<Option<Output>, HostError> {
        let out = probe(runner, &argv)?;
        if out.is_none() {
            missing.note("jexec", "nothing inside the jails is read as present");
        }
        Ok(out)
    };
    for pkg in &want.packages {
        if ok(jexec(jail, "root", &["pkg", "info", "-e", pkg]))?.is_some_and(|o| o.ok()) {
            state.packages.insert(pkg.to_string());
        }
    }
    for var in &want.rc_vars {
        if let Some(out) = ok(jexec(jail, "root", &["sysrc", "-n", var]))?.filter(Output::ok) {
            state.rc_conf.insert(
                var.to_string(),
                out.stdout.trim_end_matches('\n').to_string(),
            );
        }
    }
    for service in &want.services {
        if let Some(out) = ok(jexec(jail, "root", &["service", service, "onestatus"]))? {
            if parse::service::running(out.status, &out.stdout) {
                state.services_running.insert(service.to_string());
            }
        }
    }
    for path in &want.paths {
        if ok(jexec(jail, "root", &["test", "-e", path.as_str()]))?.is_some_and(|o| o.ok()) {
            state.paths.insert(path.to_string());
        }
    }
    for user in &want.users {
        if ok(jexec(jail, "root", &["id", "-u", user]))?.is_some_and(|o| o.ok()) {
            state.users.insert(user.to_string());
        }
    }
    if want.databases {
        for (sql, into) in [
            ("select datname from pg_database", &mut state.databases),
            ("select rolname from pg_roles", &mut state.roles),
        ] {
            if let Some(out) =
                ok(jexec(jail, "postgres", &["psql", "-Atc", sql]))?.filter(Output::ok)
            {
                *into = out
                    .stdout
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use warden_core::config::load;

    fn layout() -> Layout {
        Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap()
    }

    /// Answers commands from a table (by joined argv); unknown programs fail to spawn, unknown commands exit 1.
    struct Scripted {
        answers: BTreeMap<String, (i32, String)>,
        programs: Vec<&'static str>,
        files: BTreeMap<String, String>,
    }

    impl Runner for Scripted {
        fn run(&self, argv: &[String]) -> Result<Output, RunError> {
            if !self.programs.contains(&argv[0].as_str()) {
                let source = std::io::Error::from(std::io::ErrorKind::NotFound);
                return Err(RunError::Spawn {
                    program: argv[0].clone(),
                    source,
                });
            }
            let (status, stdout) = self
                .answers
                .get(&argv.join(" "))
                .cloned()
                .unwrap_or((1, String::new()));
            Ok(Output {
                status,
                stdout,
                stderr: String::new(),
            })
        }
        fn read_file(&self, path: &str) -> Result<Option<String>, RunError> {
            Ok(self.files.get(path).cloned())
        }
        fn write_file(&self, _: &str, _: u32, _: &str) -> Result<(), RunError> {
            Ok(())
        }
        fn mode(&self, path: &str) -> Result<Option<u32>, RunError> {
            Ok(self.files.contains_key(path).then_some(0o750))
        }
    }

    #[test]
    fn no_tools_at_all_reads_as_a_fresh_host_and_says_so() {
        let runner = Scripted {
            answers: BTreeMap::new(),
            programs: vec![],
            files: BTreeMap::new(),
        };
        let seen = observe(&runner, &layout()).unwrap();
        assert_eq!(seen.host, BastilleHost::default());
        for tool in [
            "bastille", "sysrc", "ifconfig", "sysctl", "pfctl", "service",
        ] {
            assert!(
                seen.notes
                    .iter()
                    .any(|n| n.starts_with(&format!("{tool} not found"))),
                "{tool}: {:?}",
                seen.notes
            );
        }
    }

    fn converged_host(version: &str, releases: &str) -> Scripted {
        let mut answers: BTreeMap<String, (i32, String)> = BTreeMap::new();
        let mut say = |cmd: &str, out: &str| {
            answers.insert(cmd.to_string(), (0, out.to_string()));
        };
        say("bastille -v", version);
        say("bastille list releases", releases);
        say("sysrc -n gateway_enable", "YES\n");
        say("ifconfig -f inet:cidr warden0", "warden0: flags=1008843<UP> metric 0 mtu 1500\n\tinet 10.0.1.1/24 broadcast 10.0.1.255\n");
        say("sysctl -n net.inet.ip.forwarding", "1\n");
        say(
            "pfctl -si",
            "Status: Enabled for 0 days 00:01:00           Debug: Urgent\n",
        );
        say(
            "pfctl -sn",
            "nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0:0) round-robin\n",
        );
        say(
            "service dnsmasq onestatus",
            "dnsmasq is running as pid 42.\n",
        );
        say(
            "jls --libxo json -v",
            r#"{"__version": "2", "jail-information": {"jail": [{"jid":3,"hostname":"clawdiedb","path":"/usr/local/bastille/jails/clawdiedb/root","name":"clawdiedb","state":"ACTIVE","cpusetid":4,"ipv4_addrs":[],"ipv6_addrs":[]}]}}"#,
        );
        say(
            "jexec -l -U root clawdiedb pkg info -e postgresql18-server",
            "",
        );
        say(
            "jexec -l -U root clawdiedb sysrc -n postgresql_enable",
            "YES\n",
        );
        say(
            "jexec -l -U root clawdiedb service postgresql onestatus",
            "postgresql is running as pid 77.\n",
        );
        say(
            "jexec -l -U postgres clawdiedb psql -Atc select datname from pg_database",
            "postgres\nsystem_ops\ntemplate0\n",
        );
        let files = [
            ("/usr/local/bastille", ""),
            (
                "/usr/local/bastille/jails/clawdiedb/jail.conf",
                "clawdiedb {}\n",
            ),
            (
                "/usr/local/bastille/jails/clawdiegit/jail.conf",
                "clawdiegit {}\n",
            ),
            (HOSTS, "127.0.0.1 localhost\n"),
        ];
        Scripted {
            answers,
            programs: vec![
                "bastille", "sysrc", "ifconfig", "sysctl", "pfctl", "service", "jls", "jexec",
            ],
            files: files
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn every_version_range_reads_the_same_host() {
        // §0/§2.1: 1.3.x may print status lines on stdout; 1.4.x prints data only; master suffixes pkgbase.
        let cases = [
            (
                "1.3.2.251225\n",
                "[bastille]:\n15.0-RELEASE\n",
                parse::version::VersionRange::UpTo13,
            ),
            (
                "1.4.4\n",
                "15.0-RELEASE\n",
                parse::version::VersionRange::V14,
            ),
            (
                "master-040f8061\n",
                "15.0-RELEASE (pkgbase)\n",
                parse::version::VersionRange::Master,
            ),
        ];
        for (version, releases, range) in cases {
            let mut runner = converged_host(version, releases);
            // The listed release counts only with its COPYRIGHT (a half bootstrap has none, §6.7).
            runner.files.insert(
                "/usr/local/bastille/releases/15.0-RELEASE/COPYRIGHT".into(),
                String::new(),
            );
            let seen = observe(&runner, &layout()).unwrap();
            assert_eq!(seen.version.as_ref().map(|v| v.range), Some(range));
            let h = &seen.host;
            assert_eq!(
                h.releases.iter().cloned().collect::<Vec<_>>(),
                vec!["15.0-RELEASE".to_string()],
                "{version}"
            );
            assert_eq!(h.prefix_mode, Some(0o750));
            assert_eq!(
                h.rc_conf.get("gateway_enable").map(String::as_str),
                Some("YES")
            );
            assert!(
                !h.rc_conf.contains_key("pf_enable"),
                "an unset variable is absent"
            );
            assert!(h.bridge_exists && h.bridge_addrs == vec!["10.0.1.1/24".to_string()]);
            assert!(
                h.forwarding
                    && h.pf_enabled
                    && h.dnsmasq_running
                    && h.pf_nat.contains("10.0.1.0/24")
            );
            let db = &h.jails["clawdiedb"];
            assert!(
                db.running
                    && db.packages.contains(POSTGRES_PKG)
                    && db.services_running.contains("postgresql")
            );
            assert_eq!(
                db.rc_conf.get("postgresql_enable").map(String::as_str),
                Some("YES")
            );
            assert!(
                db.databases.contains("system_ops")
                    && !db.paths.contains("/var/db/postgres/data18")
            );
            assert!(!h.jails["clawdiegit"].running, "not in jls: stopped");
            assert!(
                !h.jails.contains_key("clawdiecms"),
                "no jail.conf: does not exist"
            );
        }
    }

    #[test]
    fn listed_release_without_copyright_is_not_bootstrapped() {
        let runner = converged_host("1.4.4\n", "15.0-RELEASE\n");
        assert!(observe(&runner, &layout())
            .unwrap()
            .host
            .releases
            .is_empty());
    }

    #[test]
    fn garbage_from_jls_is_a_parse_error_naming_the_command() {
        let mut runner = converged_host("1.4.4\n", "");
        runner.answers.insert(
            "jls --libxo json -v".into(),
            (0, "   JID  IP Address\n".into()),
        );
        let err = observe(&runner, &layout()).unwrap_err().to_string();
        assert!(err.contains("jls --libxo json -v"), "{err}");
    }
}
