//! The FreeBSD teardown plan: the reverse of [`crate::bastille_plan`], step by step in reverse order, from what
//! was observed — empty on a host that holds nothing of Warden's, so a crashed teardown is finished by planning
//! again. Each step's undo is one arm of [`undo`]: a new step must say what its reverse is.
//!
//! Kept on purpose: the packages and the worker account (other software may use them), IPv4 forwarding now
//! (`gateway_enable` goes, so it is off after the next boot), `bastille.conf` (the package's config), the
//! Bastille prefix, and — unless `--force` — the thick db jail (stopped) with the database secrets.

use crate::bastille_agent;
use crate::bastille_plan::{DEVFS_RULES, DEVFS_VNET_RULES, HOSTS, PF_CONF, RC_D};
use crate::layout::Layout;
use crate::observed::BastilleHost;
use crate::plan::{teardown_jail, Action, Plan, Step, TeardownOptions};
use crate::render::{hosts, rc_conf};

/// The first line of every file Warden writes whole.
const MANAGED: &str = "# Managed by warden";

/// Plans the teardown of every step.
pub fn plan(layout: &Layout, host: &BastilleHost, options: &TeardownOptions) -> Plan {
    let mut plan = Plan::default();
    for step in Step::undo_order() {
        undo(step, layout, host, options, &mut plan);
    }
    plan
}

/// The reverse of one step. Exhaustive on purpose: adding a [`Step`] fails to compile until its undo is here.
fn undo(
    step: Step,
    layout: &Layout,
    host: &BastilleHost,
    options: &TeardownOptions,
    plan: &mut Plan,
) {
    let out = &mut plan.actions;
    match step {
        Step::Verify => {}
        Step::Tailscale => crate::tailscale_plan::bastille_undo(layout, host, plan),
        Step::Dns => dns(layout, host, out),
        Step::Hosts => {
            let existing = host.files.get(HOSTS).cloned().unwrap_or_default();
            if hosts::extract(&existing).is_some() {
                out.push(Action::file(
                    Step::Hosts,
                    "remove the managed block of /etc/hosts (other lines kept)",
                    HOSTS,
                    "0644",
                    hosts::splice(&existing, ""),
                ));
            }
        }
        Step::Agent => {
            if host.pi_version.is_some() {
                let dir = crate::pi::pi_dir(&bastille_agent::state_dir(layout));
                out.push(Action::remove(
                    Step::Agent,
                    format!("remove {dir}: pi, which agent workers run"),
                    &dir,
                ));
            }
        }
        // Their packages, services and files live in the jails: the jails step's undo removes them with the jails.
        Step::Git | Step::Cms | Step::Ai => {}
        Step::Db => db(host, options, plan),
        Step::Jails => jails(layout, host, options, plan),
        Step::Host => host_step(layout, host, out),
        Step::Base => plan.notes.push(format!(
            "kept the packages setup installed, bastille.conf and the worker account {} (other software may use \
             them): `pkg delete bastille dnsmasq` and `pw userdel {}` remove them",
            layout.worker_user, layout.worker_user
        )),
    }
}

/// `sysrc -x VAR` for each of the step's variables that is set (`cloned_interfaces` loses only the bridge).
fn unset_rc(layout: &Layout, host: &BastilleHost, dns: bool, out: &mut Vec<Action>) {
    let step = if dns { Step::Dns } else { Step::Host };
    for (var, value) in rc_conf::settings(layout) {
        if var.starts_with("dnsmasq_") != dns {
            continue;
        }
        // Only what /etc/rc.conf itself sets: a default's value (pf_rules) is not Warden's to remove.
        if !host.rc_conf_file_vars.contains(&var) {
            continue;
        }
        let current = host.rc_conf.get(&var).map(String::as_str).unwrap_or("");
        if var == "cloned_interfaces" {
            if current.split_whitespace().any(|w| w == value) {
                out.push(Action::run(
                    step,
                    format!("remove {value} from cloned_interfaces in rc.conf"),
                    &["sysrc", &format!("{var}-={value}")],
                ));
            }
        } else {
            out.push(Action::run(
                step,
                format!("remove {var} from /etc/rc.conf"),
                &["sysrc", "-x", &var],
            ));
        }
    }
}

fn dns(layout: &Layout, host: &BastilleHost, out: &mut Vec<Action>) {
    if host.dnsmasq_running {
        out.push(Action::run(
            Step::Dns,
            "stop dnsmasq",
            &["service", "dnsmasq", "onestop"],
        ));
    }
    unset_rc(layout, host, true, out);
    if host.files.contains_key(rc_conf::DNSMASQ_CONF) {
        out.push(Action::remove(
            Step::Dns,
            format!("remove {}", rc_conf::DNSMASQ_CONF),
            rc_conf::DNSMASQ_CONF,
        ));
    }
}

fn db(host: &BastilleHost, options: &TeardownOptions, plan: &mut Plan) {
    if host.db_passwords.is_empty() && host.db_synced.is_none() {
        return;
    }
    // Observed in the local state directory (not under a simulated host's root), so removed by a local rm.
    let dir = crate::db::secrets_dir(&host.state_dir);
    if options.force {
        plan.actions.push(Action::run(
            Step::Db,
            format!("remove {dir}: the database passwords (--force)"),
            &["rm", "-rf", &dir],
        ));
    } else {
        plan.notes.push(format!(
            "kept {dir} (the database passwords) with the db jail's data; --force removes them"
        ));
    }
}

/// The layout's jails destroyed (`-a` stops a running one, `-y` does not ask), the thick db jail only stopped
/// unless `--force`; then the worker template and the release, once no other jail needs it.
fn jails(layout: &Layout, host: &BastilleHost, options: &TeardownOptions, plan: &mut Plan) {
    let mut kept_thin = false;
    for s in layout.jails() {
        let name = s.jail.as_str();
        let Some(j) = host.jails.get(name) else {
            continue;
        };
        teardown_jail(
            plan,
            s,
            j.running,
            options,
            &["bastille", "stop", name],
            &["bastille", "destroy", "-afy", name],
        );
    }
    for name in host.jails.keys() {
        if !layout.jails().any(|s| &s.jail == name) {
            kept_thin = true;
            plan.notes.push(format!(
                "jail {name} is not one of the layout's: left alone, and with it the {} release",
                layout.release
            ));
        }
    }
    if kept_thin {
        return;
    }
    if host.worker_template {
        let snap = bastille_agent::worker_template(layout, &layout.release);
        plan.actions.push(Action::run(
            Step::Jails,
            format!("destroy the worker template {snap}"),
            &["zfs", "destroy", &snap],
        ));
    }
    if host.releases.contains(&layout.release) {
        plan.actions.push(Action::run(
            Step::Jails,
            format!("destroy the {} release", layout.release),
            &["bastille", "destroy", "-f", &layout.release],
        ));
    }
}

fn host_step(layout: &Layout, host: &BastilleHost, out: &mut Vec<Action>) {
    let s = Step::Host;
    if host.files.get(RC_D).is_some_and(|t| t.contains("warden")) {
        out.push(Action::remove(
            s,
            "remove the control plane's rc.d script",
            RC_D,
        ));
    }
    if host.pf_enabled {
        out.push(Action::run(
            s,
            "stop pf (its ruleset, Bastille's rdr anchor and the jails table go with it)",
            &["service", "pf", "onestop"],
        ));
    }
    if host
        .files
        .get(PF_CONF)
        .is_some_and(|t| t.starts_with(MANAGED))
    {
        out.push(Action::remove(
            s,
            format!("remove {PF_CONF} (Warden's ruleset)"),
            PF_CONF,
        ));
    }
    if let Some(devfs) = host
        .files
        .get(DEVFS_RULES)
        .filter(|t| t.contains(DEVFS_VNET_RULES))
    {
        out.push(Action::file(
            s,
            "remove devfs ruleset 13 (bastille_vnet) from /etc/devfs.rules",
            DEVFS_RULES,
            "0644",
            // The tailscale step's undo, earlier in this plan, removes its ruleset from the same file.
            crate::tailscale::without_devfs_rules(&devfs.replace(DEVFS_VNET_RULES, "")),
        ));
    }
    if host.bridge_exists {
        out.push(Action::run(
            s,
            format!("destroy the bridge {}", layout.bridge),
            &["ifconfig", &layout.bridge, "destroy"],
        ));
    }
    unset_rc(layout, host, false, out);
}
