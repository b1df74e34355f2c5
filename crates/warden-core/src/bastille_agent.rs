//! The FreeBSD `agent` step: Node.js and npm from the ports tree's packages in the worker release (`pkg
//! --rootdir`: workers are ZFS clones of it, so every worker has `/usr/local/bin/node`), the same packages on the
//! host (npm runs there, once), and the pinned pi installed into `<state_dir>/pi`, which `warden serve`
//! nullfs-mounts read-only into each agent worker. The worker template snapshot taken before node was in the
//! release is destroyed, so the next worker's clone starts from a release that has it.

use crate::layout::Layout;
use crate::observed::BastilleHost;
use crate::pi;
use crate::plan::{Action, Blocker, PlanOptions, Step};

/// Node.js 22 (`www/node22`): the ports tree's LTS and default (`NODEJS_DEFAULT=lts`); pi needs ≥ 20.6.
pub const NODE_PKG: &str = "node22";
/// npm for that node (`www/npm-node22`).
pub const NPM_PKG: &str = "npm-node22";
/// The packages of this step, on the host and in the worker release.
pub const PACKAGES: [&str; 2] = [NODE_PKG, NPM_PKG];
/// Warden's state directory on FreeBSD when the layout names none.
pub const DEFAULT_STATE_DIR: &str = "/var/db/warden";

/// The state directory for `layout` on FreeBSD: its `state_dir`, else [`DEFAULT_STATE_DIR`].
pub fn state_dir(layout: &Layout) -> String {
    if layout.state_dir.is_empty() {
        DEFAULT_STATE_DIR.to_string()
    } else {
        layout.state_dir.clone()
    }
}

/// The worker release's directory (`bastille_releasesdir/RELEASE`).
pub fn release_dir(layout: &Layout) -> String {
    format!("{}/releases/{}", layout.bastille.prefix, layout.release)
}

/// The snapshot of the release that worker clones start from.
pub fn worker_template(layout: &Layout, release: &str) -> String {
    format!(
        "{}/{}/releases/{release}@warden-worker",
        layout.bastille.zfs_pool, layout.bastille.zfs_prefix
    )
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `pkg [--rootdir DIR] install -y PKG…` (non-interactive, pkg(7) bootstrapped if needed).
fn pkg_install(rootdir: Option<&str>, pkgs: &[&str]) -> Vec<String> {
    let mut argv = strings(&["env", "ASSUME_ALWAYS_YES=yes", "pkg"]);
    if let Some(r) = rootdir {
        argv.extend(strings(&["--rootdir", r]));
    }
    argv.extend(strings(&["install", "-y"]));
    argv.extend(strings(pkgs));
    argv
}

fn pkg_info(rootdir: Option<&str>, pkgs: &[&str]) -> Vec<String> {
    let mut argv = strings(&["pkg"]);
    if let Some(r) = rootdir {
        argv.extend(strings(&["--rootdir", r]));
    }
    argv.extend(strings(&["info", "-e"]));
    argv.extend(strings(pkgs));
    argv
}

/// Plans the step.
pub fn step(
    layout: &Layout,
    host: &BastilleHost,
    options: &PlanOptions,
    out: &mut Vec<Action>,
    blocked: &mut Vec<Blocker>,
) {
    let s = Step::Agent;
    let release = release_dir(layout);
    let on_host: Vec<&str> = PACKAGES
        .into_iter()
        .filter(|p| !host.packages.contains(*p))
        .collect();
    let in_release: Vec<&str> = PACKAGES
        .into_iter()
        .filter(|p| !host.release_packages.contains(*p))
        .collect();
    for (missing, where_, root) in [
        (&on_host, "the host (npm installs pi there)", None),
        (
            &in_release,
            "the worker release (workers run node from it)",
            Some(release.as_str()),
        ),
    ] {
        if missing.is_empty() {
            continue;
        }
        if options.no_install {
            blocked.push(Blocker {
                step: s,
                problem: format!(
                    "{} not installed in {where_}, and --no-install was given",
                    missing.join(" and ")
                ),
                fix: pkg_install(root, missing)[2..].join(" "),
            });
            continue;
        }
        out.push(
            Action::run(
                s,
                format!("install {} (pkg) in {where_}", missing.join(" and ")),
                &pkg_install(root, missing),
            )
            .verified_by(&pkg_info(root, missing)),
        );
    }
    if !in_release.is_empty() && host.worker_template {
        let snap = worker_template(layout, &layout.release);
        out.push(Action::run(
            s,
            format!("destroy the worker template {snap}, taken before node was in the release (the next worker takes it again); fails while workers run"),
            &["zfs", "destroy", &snap],
        ));
    }
    out.extend(pi::install_actions(
        &pi::pi_dir(&state_dir(layout)),
        &layout.pi_version,
        host.pi_version.as_deref(),
        &host.files,
        "workers get it nullfs-mounted read-only",
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::plan::Op;

    fn layout() -> Layout {
        Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap()
    }

    fn argvs(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match &a.op {
                Op::Argv(v) => Some(v.join(" ")),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_fresh_host_gets_node_in_both_places_then_pi_and_a_done_host_nothing() {
        let l = layout();
        let mut host = BastilleHost {
            worker_template: true,
            ..Default::default()
        };
        let (mut out, mut blocked) = (vec![], vec![]);
        step(&l, &host, &PlanOptions::default(), &mut out, &mut blocked);
        assert!(blocked.is_empty());
        let got = argvs(&out);
        assert_eq!(
            got[0],
            "env ASSUME_ALWAYS_YES=yes pkg install -y node22 npm-node22"
        );
        assert_eq!(got[1], "env ASSUME_ALWAYS_YES=yes pkg --rootdir /usr/local/bastille/releases/15.0-RELEASE install -y node22 npm-node22");
        assert_eq!(
            got[2],
            "zfs destroy zroot/clawdie-runtime/releases/15.0-RELEASE@warden-worker"
        );
        assert!(
            got[3].starts_with("npm install --prefix /var/db/warden/pi "),
            "{got:?}"
        );
        assert_eq!(out.len(), 5, "the marker file last");

        host.packages.extend(PACKAGES.map(String::from));
        host.release_packages.extend(PACKAGES.map(String::from));
        host.pi_version = Some(l.pi_version.clone());
        host.files.insert(
            format!("/var/db/warden/pi/{}", pi::INSTALLED_MARKER),
            pi::marker_content(&l.pi_version),
        );
        let (mut out, mut blocked) = (vec![], vec![]);
        step(&l, &host, &PlanOptions::default(), &mut out, &mut blocked);
        assert!(out.is_empty() && blocked.is_empty(), "{out:?}");
    }

    #[test]
    fn no_install_blocks_with_the_commands() {
        let l = layout();
        let (mut out, mut blocked) = (vec![], vec![]);
        let opts = PlanOptions { no_install: true };
        step(&l, &BastilleHost::default(), &opts, &mut out, &mut blocked);
        assert_eq!(blocked.len(), 2);
        assert_eq!(blocked[0].fix, "pkg install -y node22 npm-node22");
        assert_eq!(
            blocked[1].fix,
            "pkg --rootdir /usr/local/bastille/releases/15.0-RELEASE install -y node22 npm-node22"
        );
    }
}
