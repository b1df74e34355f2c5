//! The Linux `cms` step: nginx in the thin cms jail: the `debian` release's own `/usr/sbin/nginx`, or on the
//! `host` release the host's (the step installs the `nginx` package on the host). Its config and the sites live on the host in `<state_dir>/cms`, bound
//! read-only into the jail at [`JAIL_DIR`], so `warden site deploy` publishes from the host and nothing in the
//! jail can change what it serves. See [`crate::cms`] for the vhosts and the release layout.

use crate::cms::{self, NginxPaths};
use crate::layout::{Layout, Role};
use crate::observed::LinuxHost;
use crate::plan::{Action, Blocker, Plan, PlanOptions, Step};

/// Where the cms directory appears inside the jail.
pub const JAIL_DIR: &str = "/opt/warden-cms";
/// nginx in the jail: the release's, or on the `host` release the host's (bound with the host's `/usr`).
pub const NGINX: &str = "/usr/sbin/nginx";
/// nginx's pid file in the jail (`/run` is a fresh tmpfs at every jail start, so it is never stale).
pub const PID: &str = "/run/nginx.pid";
/// Directories nginx writes in the jail: its logs, and the parent of the temp paths Debian's build names.
pub const JAIL_DIRS: [&str; 2] = ["/var/log/nginx", "/var/lib/nginx"];

/// `<state_dir>/cms` on the host.
pub fn cms_dir(state_dir: &str) -> String {
    format!("{state_dir}/cms")
}

/// The sites directory on the host (one directory per vhost).
pub fn sites_dir(state_dir: &str) -> String {
    format!("{}/sites", cms_dir(state_dir))
}

/// `nginx.conf` on the host.
pub fn conf_path(state_dir: &str) -> String {
    format!("{}/nginx.conf", cms_dir(state_dir))
}

/// `nginx.conf` as nginx in the jail reads it.
pub fn jail_conf() -> String {
    format!("{JAIL_DIR}/nginx.conf")
}

/// The `--bind` the cms jail is created with.
pub fn jail_bind(state_dir: &str) -> String {
    format!("{}:{JAIL_DIR}", cms_dir(state_dir))
}

/// The Linux nginx's paths inside the jail (workers run as `nobody`: the jail's passwd has no `www-data`).
pub fn nginx_paths() -> NginxPaths {
    NginxPaths {
        user: "nobody nogroup",
        pid: PID,
        log_dir: "/var/log/nginx",
        sites: format!("{JAIL_DIR}/sites"),
    }
}

/// The rendered config for this layout.
pub fn nginx_conf(layout: &Layout) -> String {
    cms::nginx_conf(layout, &nginx_paths())
}

fn in_jail(exe: &str, state_dir: &str, jail: &str, cmd: &[&str]) -> Vec<String> {
    crate::linux_db::in_jail(exe, state_dir, jail, cmd)
}

/// The argv that makes nginx in the jail load its config again (graceful: old workers finish their requests).
pub fn reload_argv(exe: &str, state_dir: &str, jail: &str) -> Vec<String> {
    let conf = jail_conf();
    in_jail(exe, state_dir, jail, &[NGINX, "-c", &conf, "-s", "reload"])
}

/// The argv that tells whether nginx runs in the jail (exit 0: its master is alive).
pub fn running_argv(exe: &str, state_dir: &str, jail: &str) -> Vec<String> {
    let check = format!("kill -0 \"$(cat {PID})\"");
    in_jail(exe, state_dir, jail, &["/bin/sh", "-c", &check])
}

/// Plans the `cms` step for the layout's cms jail.
pub fn plan(
    layout: &Layout,
    host: &LinuxHost,
    state_dir: &str,
    exe: &str,
    options: &PlanOptions,
    plan: &mut Plan,
) {
    let Plan {
        actions: out,
        blocked,
        ..
    } = plan;
    let Some(svc) = layout.service(Role::Cms) else {
        return;
    };
    let s = Step::Cms;
    let why = "the cms jail's nginx, run from the host's /usr";
    if !layout.services_on_debian()
        && !crate::linux_db::apt_packages(
            s,
            &[("nginx", "nginx")],
            why,
            host,
            options,
            out,
            blocked,
        )
    {
        return;
    }
    let jail = svc.jail.as_str();
    if let Some(j) = host.jails.get(jail) {
        if !j.binds.contains(&jail_bind(state_dir)) {
            blocked.push(Blocker {
                step: s,
                problem: format!(
                    "the cms jail {jail} was created without the sites bind {}",
                    jail_bind(state_dir)
                ),
                fix: format!("warden jail destroy {jail} && warden setup --backend linux (the jail's sites live on the host and are kept)"),
            });
            return;
        }
    }
    let c = &host.cms;
    if !c.dirs_ok {
        let (dir, sites) = (cms_dir(state_dir), sites_dir(state_dir));
        out.push(Action::run(
            s,
            format!("create {dir} and its sites directory, readable by nginx's workers in {jail}"),
            &["install", "-d", "-m", "0755", &dir, &sites],
        ));
    }
    let conf = nginx_conf(layout);
    let changed = host.files.get(&conf_path(state_dir)) != Some(&conf);
    if changed {
        out.push(Action::file(
            s,
            format!(
                "write nginx.conf: {} vhosts (cms, tenants, sites), each rooted at its current release",
                cms::vhosts(layout).len()
            ),
            &conf_path(state_dir),
            "0644",
            conf,
        ));
    }
    for v in cms::vhosts(layout) {
        if !c.current.contains(&v.name) {
            let dir = cms::vhost_dir(&sites_dir(state_dir), &v.name);
            out.push(Action::run(
                s,
                format!("link a placeholder page as {}'s first release", v.name),
                &[exe, "site", "placeholder", &dir, &v.name],
            ));
        }
    }
    if !c.running {
        let mut mkdir = vec!["install", "-d", "-m", "0755"];
        mkdir.extend(JAIL_DIRS);
        out.push(Action::run(
            s,
            format!("create nginx's log and temp directories in {jail}"),
            &in_jail(exe, state_dir, jail, &mkdir),
        ));
        let jconf = jail_conf();
        out.push(
            Action::run(
                s,
                format!("start nginx in {jail} on {}:{}", svc.addr, cms::HTTP_PORT),
                &in_jail(exe, state_dir, jail, &[NGINX, "-c", &jconf]),
            )
            .verified_by(&running_argv(exe, state_dir, jail)),
        );
    } else if changed {
        out.push(Action::run(
            s,
            format!("reload nginx in {jail} (graceful) to load the new config"),
            &reload_argv(exe, state_dir, jail),
        ));
    }
}

/// Makes `host` look like a host whose cms step is done (for other planners' tests).
#[cfg(test)]
pub fn converge(layout: &Layout, state_dir: &str, host: &mut LinuxHost) {
    host.cms = crate::observed::LinuxCms {
        dirs_ok: true,
        running: true,
        current: cms::vhosts(layout).into_iter().map(|v| v.name).collect(),
    };
    host.files.insert(conf_path(state_dir), nginx_conf(layout));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::observed::LinuxJail;
    use crate::plan::Op;

    #[test]
    fn fresh_then_converged_then_a_new_tenant_reloads() {
        let layout = Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap();
        let state = "/var/lib/warden";
        let mut host = LinuxHost::default();
        host.jails.insert(
            "clawdiecms".into(),
            LinuxJail {
                running: true,
                binds: vec![jail_bind(state)],
                ..Default::default()
            },
        );
        let run = |host: &LinuxHost, layout: &Layout| {
            let mut p = Plan::default();
            plan(
                layout,
                host,
                state,
                "warden",
                &PlanOptions::default(),
                &mut p,
            );
            (p.actions, p.blocked)
        };
        let (first, blocked) = run(&host, &layout);
        assert!(blocked.is_empty());
        let text = crate::Plan {
            actions: first.clone(),
            ..Default::default()
        }
        .to_text();
        assert!(
            text.contains("$ install -d -m 0755 /var/lib/warden/cms /var/lib/warden/cms/sites\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "$ warden site placeholder /var/lib/warden/cms/sites/cms.home.arpa cms.home.arpa\n"
            ),
            "{text}"
        );
        assert!(text.contains("$ warden --state-dir /var/lib/warden jail exec --root clawdiecms -- /usr/sbin/nginx -c /opt/warden-cms/nginx.conf\n"), "{text}");
        assert_eq!(first.len(), 5, "{text}");
        for a in &first {
            if let Op::File(f) = &a.op {
                host.files.insert(f.path.clone(), f.content.clone());
            }
        }
        host.cms.dirs_ok = true;
        host.cms.running = true;
        host.cms.current.insert("cms.home.arpa".into());
        assert!(run(&host, &layout).0.is_empty());
        // A tenant added to the config: its placeholder, the new config, a graceful reload.
        let mut loaded = load(
            None,
            &|k| (k == "TENANT_ID").then(|| "atlas".into()),
            &vec![],
        )
        .unwrap();
        loaded.config.tenants[0].sites = vec!["blog".into()];
        let more = Layout::from_loaded(&loaded).unwrap();
        let summaries: Vec<String> = run(&host, &more)
            .0
            .iter()
            .map(|a| a.summary.clone())
            .collect();
        assert_eq!(summaries.len(), 4, "{summaries:?}");
        assert!(summaries[3].starts_with("reload nginx"), "{summaries:?}");
        // A jail made before the cms step had its bind: blocked, with the fix.
        host.jails.get_mut("clawdiecms").unwrap().binds.clear();
        let (none, blocked) = run(&host, &layout);
        assert!(none.is_empty() && blocked[0].fix.contains("warden jail destroy clawdiecms"));
    }
}
