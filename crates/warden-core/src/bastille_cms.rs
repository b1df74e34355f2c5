//! The FreeBSD `cms` step: the port's nginx in the cms jail (`pkg install nginx`, `nginx_enable`) and psql
//! (`postgresql18-client`, for the doctor's `db.<role>` from this jail), Warden's
//! `nginx.conf` written into the jail's `/usr/local/etc/nginx` (the rc script's default config), one docroot
//! per vhost under [`SITES`], started, or reloaded (`service nginx reload`, graceful) when the config changes.
//! The vhosts and the release layout are [`crate::cms`]'s, the same as on Linux.

use crate::cms::{self, NginxPaths};
use crate::layout::{Layout, Role};
use crate::observed::BastilleHost;
use crate::plan::{Action, Step};

/// The sites directory inside the cms jail.
pub const SITES: &str = "/usr/local/www/warden";
/// The port's nginx config (what `service nginx` starts with).
pub const CONF: &str = "/usr/local/etc/nginx/nginx.conf";
/// nginx's log directory in the jail.
pub const LOG_DIR: &str = "/var/log/nginx";

/// The FreeBSD nginx's paths inside the jail (workers run as the base system's `www`).
pub fn nginx_paths() -> NginxPaths {
    NginxPaths {
        user: "www www",
        pid: "/var/run/nginx.pid",
        log_dir: LOG_DIR,
        sites: SITES.to_string(),
    }
}

/// A path inside the cms jail `jail`, as the host sees it.
pub fn host_path(layout: &Layout, jail: &str, inside: &str) -> String {
    format!("{}/jails/{jail}/root{inside}", layout.bastille.prefix)
}

/// `nginx.conf` as a host path, with its content.
pub fn conf_file(layout: &Layout, jail: &str) -> (String, String) {
    (
        host_path(layout, jail, CONF),
        cms::nginx_conf(layout, &nginx_paths()),
    )
}

/// The sites directory of the cms jail, as a host path (`warden site deploy` writes there).
pub fn sites_host_dir(layout: &Layout, jail: &str) -> String {
    host_path(layout, jail, SITES)
}

fn jexec(jail: &str, cmd: &[&str]) -> Vec<String> {
    ["jexec", "-l", "-U", "root", jail]
        .iter()
        .chain(cmd)
        .map(|s| s.to_string())
        .collect()
}

/// `service nginx reload` in the jail: the rc script tests the config, then signals the master (graceful).
pub fn reload_argv(jail: &str) -> Vec<String> {
    jexec(jail, &["service", "nginx", "reload"])
}

/// Plans the `cms` step.
pub fn step(layout: &Layout, host: &BastilleHost, exe: &str, out: &mut Vec<Action>) {
    let Some(svc) = layout.service(Role::Cms) else {
        return;
    };
    let s = Step::Cms;
    let jail = svc.jail.as_str();
    let state = host.jails.get(jail).cloned().unwrap_or_default();
    // psql: the doctor's db.<role> connects from here as the cms's roles do.
    for pkg in ["nginx", crate::db::FREEBSD_CLIENT_PKG] {
        if !state.packages.contains(pkg) {
            out.push(
                Action::run(
                    s,
                    format!("install {pkg} in {jail}"),
                    &jexec(
                        jail,
                        &["env", "ASSUME_ALWAYS_YES=yes", "pkg", "install", pkg],
                    ),
                )
                .verified_by(&jexec(jail, &["pkg", "info", "-e", pkg])),
            );
        }
    }
    if state.rc_conf.get("nginx_enable").map(String::as_str) != Some("YES") {
        out.push(Action::run(
            s,
            format!("set nginx_enable=YES in {jail}'s rc.conf"),
            &jexec(jail, &["sysrc", "nginx_enable=YES"]),
        ));
    }
    let (path, content) = conf_file(layout, jail);
    let changed = host.files.get(&path) != Some(&content);
    if changed {
        out.push(Action::file(
            s,
            format!(
                "write {jail}'s nginx.conf: {} vhosts (cms, tenants, sites), each rooted at its current release",
                cms::vhosts(layout).len()
            ),
            &path,
            "0644",
            content,
        ));
    }
    for v in cms::vhosts(layout) {
        if !host.cms_current.contains(&v.name) {
            let dir = cms::vhost_dir(&sites_host_dir(layout, jail), &v.name);
            out.push(Action::run(
                s,
                format!("link a placeholder page as {}'s first release", v.name),
                &[exe, "site", "placeholder", &dir, &v.name],
            ));
        }
    }
    if !state.services_running.contains("nginx") {
        out.push(Action::run(
            s,
            format!("create nginx's log directory in {jail}"),
            &jexec(jail, &["install", "-d", "-m", "0755", LOG_DIR]),
        ));
        out.push(Action::run(
            s,
            format!("start nginx in {jail} on {}:{}", svc.addr, cms::HTTP_PORT),
            &jexec(jail, &["service", "nginx", "start"]),
        ));
    } else if changed {
        out.push(Action::run(
            s,
            format!("reload nginx in {jail} (graceful) to load the new config"),
            &reload_argv(jail),
        ));
    }
}
