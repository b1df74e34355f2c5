//! The Linux teardown plan: the reverse of [`crate::linux_plan`], step by step in reverse order, from what was
//! observed — so it is empty on a host that holds nothing of Warden's, and a crashed teardown is finished by
//! planning again. Each step's undo is one arm of [`undo`]: a new step must say what its reverse is.
//!
//! Kept on purpose: the packages and the worker account (other software may use them), IPv4 forwarding (the
//! host may have had it on before), the journal, and — unless `--force` — the thick db jail (stopped) with its
//! secrets, so a later `warden setup` finds the databases as they were.

use crate::layout::Layout;
use crate::linux_plan::{warden_exe, LinuxPaths};
use crate::observed::LinuxHost;
use crate::plan::{teardown_jail, Action, Plan, Step, TeardownOptions};
use crate::render::nftables::TABLE;

/// Plans the teardown of every step.
pub fn plan(
    layout: &Layout,
    host: &LinuxHost,
    paths: &LinuxPaths,
    options: &TeardownOptions,
) -> Plan {
    let mut plan = Plan::default();
    for step in Step::undo_order() {
        undo(step, layout, host, paths, options, &mut plan);
    }
    plan
}

/// The reverse of one step. Exhaustive on purpose: adding a [`Step`] fails to compile until its undo is here.
fn undo(
    step: Step,
    layout: &Layout,
    host: &LinuxHost,
    paths: &LinuxPaths,
    options: &TeardownOptions,
    plan: &mut Plan,
) {
    let out = &mut plan.actions;
    match step {
        // The doctor changes nothing; Linux keeps no /etc/hosts block.
        Step::Verify | Step::Hosts => {}
        Step::Tailscale => crate::tailscale_plan::linux_undo(layout, host, plan),
        Step::Dns => dns(host, paths, out),
        // Their files live in the jails' roots: the jails step's undo removes them with the jails.
        Step::Git | Step::Cms => {}
        Step::Agent => remove_entry(host, paths, Step::Agent, "pi", "pi, which agent workers run", out),
        Step::Ai => remove_entry(host, paths, Step::Ai, "ai", "the model server's venv and the model", out),
        Step::Db => {
            if options.force {
                remove_entry(host, paths, Step::Db, "db", "the database passwords (--force)", out);
            } else if host.state_entries.contains("db") {
                plan.notes.push(format!(
                    "kept {}/db (the database passwords) with the db jail's data; --force removes them",
                    paths.state_dir
                ));
            }
        }
        Step::Jails => jails(layout, host, paths, options, plan),
        Step::Host => host_network(layout, host, paths, out),
        Step::Base => plan.notes.push(format!(
            "kept the packages setup installed and the worker account {} (other software may use them): \
             `apt-get remove dnsmasq-base` and `userdel {}` remove them",
            layout.worker_user, layout.worker_user
        )),
    }
}

/// `rm -rf <state_dir>/NAME` when it exists.
fn remove_entry(
    host: &LinuxHost,
    paths: &LinuxPaths,
    step: Step,
    name: &str,
    what: &str,
    out: &mut Vec<Action>,
) {
    if host.state_entries.contains(name) {
        let path = format!("{}/{name}", paths.state_dir);
        out.push(Action::remove(
            step,
            format!("remove {path}: {what}"),
            &path,
        ));
    }
}

fn dns(host: &LinuxHost, paths: &LinuxPaths, out: &mut Vec<Action>) {
    if host.dnsmasq_running {
        out.push(Action::run(
            Step::Dns,
            "stop Warden's dnsmasq",
            &paths.stop_dnsmasq(),
        ));
    }
    for name in ["dnsmasq.conf", "dnsmasq.pid"] {
        remove_entry(
            host,
            paths,
            Step::Dns,
            name,
            "dnsmasq's zone and pid file",
            out,
        );
    }
}

/// Every jail of the layout stopped and destroyed, the thick db jail only stopped unless `--force`. The
/// `warden` binary that planned runs them; `jail destroy --force` stops a running jail first.
fn jails(
    layout: &Layout,
    host: &LinuxHost,
    paths: &LinuxPaths,
    options: &TeardownOptions,
    plan: &mut Plan,
) {
    let exe = warden_exe(host);
    let state = paths.state_dir.as_str();
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
            &[exe, "--state-dir", state, "jail", "stop", name],
            &[
                exe,
                "--state-dir",
                state,
                "jail",
                "destroy",
                "--force",
                name,
            ],
        );
    }
    for name in host.jails.keys() {
        if !layout.jails().any(|s| &s.jail == name) {
            plan.notes.push(format!(
                "jail {name} is not one of the layout's: left alone (`warden jail destroy --force {name}`)"
            ));
        }
    }
}

fn host_network(layout: &Layout, host: &LinuxHost, paths: &LinuxPaths, out: &mut Vec<Action>) {
    for family in ["inet", "bridge"] {
        if host.nft_families.contains(family) {
            out.push(Action::run(
                Step::Host,
                format!(
                    "delete the nftables table {family} {TABLE} (NAT, isolation, service paths)"
                ),
                &["nft", "delete", "table", family, TABLE],
            ));
        }
    }
    remove_entry(
        host,
        paths,
        Step::Host,
        "nftables.conf",
        "the ruleset file",
        out,
    );
    if host.bridge_exists {
        out.push(Action::run(
            Step::Host,
            format!(
                "delete the bridge {} (and its gateway address)",
                layout.bridge
            ),
            &["ip", "link", "del", &layout.bridge],
        ));
    }
}
