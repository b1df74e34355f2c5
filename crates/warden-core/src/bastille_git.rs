//! The FreeBSD `git` step: the same smart HTTP as on Linux ([`crate::git`]: nginx.conf rendered by
//! [`git::nginx_conf`], one htpasswd file per owner, repositories in [`git::REPOS`] owned by the `git`
//! account), from the ports tree's `git`, `nginx` and `fcgiwrap` in the git jail and run by their rc.d
//! scripts; then Forgejo ([`crate::forgejo`]) beside it on port 3000. Files of the jail are written at
//! their host paths under the jail's root (`<prefix>/jails/<jail>/root/…`); commands run through
//! `jexec -l -U root|git`. Passwords and Forgejo's secrets go through the hidden `warden git credentials` and
//! `warden git forgejo-config` verbs, never into the plan.

use crate::bastille_injail::{jexec, warden_and_state, InJail};
use crate::forgejo;
use crate::git::{self, Serving};
use crate::layout::{Layout, Role};
use crate::observed::BastilleHost;
use crate::plan::Action;

/// The packages of the smart HTTP, installed in this order.
pub const PACKAGES: [&str; 3] = ["git", "nginx", "fcgiwrap"];
/// nginx's config in the jail (the port's `nginx_configfile` default; rc.d/nginx tests it before a start).
pub const NGINX_CONF: &str = "/usr/local/etc/nginx/nginx.conf";
/// The per-owner htpasswd files in the jail (readable by nginx's workers, which run as `git`).
pub const AUTH_DIR: &str = "/usr/local/etc/nginx/warden-git";
/// fcgiwrap's socket: the port's default (`/var/run/fcgiwrap` is made 1777 by its rc.d precmd).
pub const SOCKET: &str = "/var/run/fcgiwrap/fcgiwrap.sock";
/// nginx's temporary files (pushes' request bodies), in a directory of the git account.
pub const TEMP: &str = "/var/git/tmp";

/// Where the FreeBSD git jail's serving pieces are (the ports' paths).
pub const SERVING: Serving = Serving {
    pid: "/var/run/nginx.pid",
    logs: "/var/log/nginx",
    temp: TEMP,
    socket: "unix:/var/run/fcgiwrap/fcgiwrap.sock",
    backend: "/usr/local/libexec/git-core/git-http-backend",
    auth_dir: AUTH_DIR,
};

/// The rc.conf settings of fcgiwrap in the jail (its rc.d script's variables): run as git, socket owned by git.
pub fn fcgiwrap_rc() -> [(&'static str, String); 5] {
    [
        ("fcgiwrap_user", git::USER.to_string()),
        ("fcgiwrap_group", git::USER.to_string()),
        ("fcgiwrap_socket", format!("unix:{SOCKET}")),
        ("fcgiwrap_socket_owner", git::USER.to_string()),
        ("fcgiwrap_socket_group", git::USER.to_string()),
    ]
}

/// The rc.conf variables of the git jail the step sets (observe reads these).
pub fn rc_vars() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = fcgiwrap_rc().iter().map(|(k, _)| *k).collect();
    v.extend(["fcgiwrap_enable", "nginx_enable", forgejo::RCVAR]);
    v
}

/// The services of the git jail (observe asks rc.d for each).
pub const SERVICES: [&str; 3] = ["fcgiwrap", "nginx", forgejo::SERVICE];

/// The health repository's path in the jail.
pub fn health_repo(layout: &Layout) -> String {
    git::repo_path(&layout.namespace, git::HEALTH_REPO)
}

/// The in-jail paths the step creates (observe tests each).
pub fn paths(layout: &Layout) -> Vec<String> {
    vec![
        git::HOME.to_string(),
        TEMP.to_string(),
        git::REPOS.to_string(),
        health_repo(layout),
        forgejo::STAGED.to_string(),
    ]
}

/// The host path of `inside` in the git jail `jail`.
pub fn host_path(layout: &Layout, jail: &str, inside: &str) -> String {
    format!("{}/jails/{jail}/root{inside}", layout.bastille.prefix)
}

/// Plans the git step into `j` (the git jail).
pub(crate) fn step(layout: &Layout, host: &BastilleHost, j: &mut InJail<'_>) {
    let Some(svc) = layout.service(Role::Git) else {
        return;
    };
    let jail = j.jail.to_string();
    for p in PACKAGES {
        j.pkg(p);
    }
    j.pkg(forgejo::PKG);
    j.pkg(crate::db::FREEBSD_CLIENT_PKG);
    // The forgejo package creates `git` (the ports' uid 211); this is for a jail where it is installed but the
    // account is gone.
    if !j.state.users.contains(git::USER) && j.state.packages.contains(forgejo::PKG) {
        j.push(
            format!("create the git account in {jail}"),
            jexec(
                &jail,
                "root",
                &[
                    "pw",
                    "useradd",
                    "-n",
                    git::USER,
                    "-d",
                    git::HOME,
                    "-s",
                    "/usr/sbin/nologin",
                ],
            ),
        );
    }
    if !j.state.paths.contains(git::REPOS) || !j.state.paths.contains(TEMP) {
        j.push(
            format!(
                "create {} (bare repositories) and nginx's temporary files {TEMP} in {jail}, owned by git",
                git::REPOS
            ),
            jexec(
                &jail,
                "root",
                &[
                    "install", "-d", "-o", git::USER, "-g", git::USER, "-m", "0750", git::HOME, TEMP,
                    git::REPOS,
                ],
            ),
        );
    }
    let health = health_repo(layout);
    if !j.state.paths.contains(&health) {
        j.push(
            format!("create the platform's empty repository {health} in {jail} (the doctor's git.http reads it)"),
            jexec(
                &jail,
                git::USER,
                &["git", "init", "--bare", "--quiet", "--initial-branch=main", &health],
            ),
        );
    }
    let (exe, state) = warden_and_state(layout, host);
    let owners = git::owners(layout);
    if owners
        .iter()
        .any(|o| !host.git_passwords.contains(o) || !host.git_htpasswd.contains(o))
    {
        let auth = host_path(layout, &jail, AUTH_DIR);
        let mut argv = vec![
            exe.as_str(),
            "--state-dir",
            state.as_str(),
            "git",
            "credentials",
            "--auth-dir",
            &auth,
        ];
        argv.extend(owners.iter().map(String::as_str));
        j.out.push(Action::run(
            j.step,
            format!(
                "generate the missing owners' passwords into {} (mode 0600, never printed) and their htpasswd files in {jail}'s {AUTH_DIR} ({})",
                git::secrets_dir(&state),
                owners.join(", ")
            ),
            &argv,
        ));
    }
    let conf = git::nginx_conf(layout, &SERVING);
    let path = host_path(layout, &jail, NGINX_CONF);
    let changed = host.files.get(&path) != Some(&conf);
    if changed {
        j.out.push(Action::file(
            j.step,
            format!(
                "write {jail}'s nginx.conf: http://{}/OWNER/REPO.git on {}:{}, one credential per owner",
                svc.fqdn,
                svc.addr,
                git::HTTP_PORT
            ),
            &path,
            "0644",
            conf,
        ));
    }
    for (var, value) in fcgiwrap_rc() {
        j.set(var, &value);
    }
    j.enable("fcgiwrap_enable");
    j.enable("nginx_enable");
    j.start("fcgiwrap");
    if j.state.services_running.contains("nginx") && changed {
        j.push(
            format!("reload nginx in {jail} (new config)"),
            jexec(&jail, "root", &["service", "nginx", "reload"]),
        );
    } else {
        j.start("nginx");
    }
    forgejo_step(layout, host, j, &exe, &state);
}

/// Forgejo: its `app.ini` through the hidden verb (staged 0600 as root, installed as git's, the staged copy
/// removed), enabled, started (restarted when the config changed).
fn forgejo_step(layout: &Layout, host: &BastilleHost, j: &mut InJail<'_>, exe: &str, state: &str) {
    let jail = j.jail.to_string();
    let ini = host_path(layout, &jail, forgejo::APP_INI);
    let want = forgejo::app_ini(layout, &forgejo::Secrets::hidden());
    let changed = host.files.get(&ini) != Some(&want);
    if changed {
        let staged = host_path(layout, &jail, forgejo::STAGED);
        j.out.push(Action::run(
            j.step,
            format!(
                "render Forgejo's app.ini with the {} role's password and Forgejo's keys (from {}, never printed) into {jail}'s {} (0600)",
                forgejo::db_role(layout),
                state,
                forgejo::STAGED
            ),
            &[exe, "--state-dir", state, "git", "forgejo-config", "--out", &staged],
        ));
        j.push(
            format!("install it as {} (git's, 0600)", forgejo::APP_INI),
            jexec(
                &jail,
                "root",
                &[
                    "install",
                    "-o",
                    forgejo::USER,
                    "-g",
                    forgejo::USER,
                    "-m",
                    "0600",
                    forgejo::STAGED,
                    forgejo::APP_INI,
                ],
            ),
        );
    }
    if changed || j.state.paths.contains(forgejo::STAGED) {
        j.push(
            format!("remove the staged copy {}", forgejo::STAGED),
            jexec(&jail, "root", &["rm", "-f", forgejo::STAGED]),
        );
    }
    j.enable(forgejo::RCVAR);
    if j.state.services_running.contains(forgejo::SERVICE) && changed {
        j.push(
            format!("restart Forgejo in {jail} (new config)"),
            jexec(&jail, "root", &["service", forgejo::SERVICE, "restart"]),
        );
    } else {
        j.start(forgejo::SERVICE);
    }
}

/// Makes `host` and the git jail's `st` look like a git step that is done (for the planner's tests).
#[cfg(test)]
pub(crate) fn converge(
    layout: &Layout,
    jail: &str,
    host: &mut BastilleHost,
    st: &mut crate::observed::JailState,
) {
    st.packages.extend(PACKAGES.iter().map(|p| p.to_string()));
    st.packages.insert(forgejo::PKG.into());
    st.packages.insert(crate::db::FREEBSD_CLIENT_PKG.into());
    st.users.insert(git::USER.into());
    let mut want = paths(layout);
    want.retain(|p| p != forgejo::STAGED);
    st.paths.extend(want);
    for (k, v) in fcgiwrap_rc() {
        st.rc_conf.insert(k.into(), v);
    }
    for v in ["fcgiwrap_enable", "nginx_enable", forgejo::RCVAR] {
        st.rc_conf.insert(v.into(), "YES".into());
    }
    st.services_running
        .extend(SERVICES.iter().map(|s| s.to_string()));
    let owners: std::collections::BTreeSet<String> = git::owners(layout).into_iter().collect();
    host.git_passwords = owners.clone();
    host.git_htpasswd = owners;
    host.files.insert(
        host_path(layout, jail, NGINX_CONF),
        git::nginx_conf(layout, &SERVING),
    );
    host.files.insert(
        host_path(layout, jail, forgejo::APP_INI),
        forgejo::app_ini(layout, &forgejo::Secrets::hidden()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    #[test]
    fn freebsd_nginx_conf_is_the_shared_rendering_with_the_ports_paths() {
        let env = |k: &str| (k == "TENANT_ID").then(|| "atlas".to_string());
        let layout = Layout::from_loaded(&load(None, &env, &vec![]).unwrap()).unwrap();
        let conf = git::nginx_conf(&layout, &SERVING);
        for want in [
            "pid /var/run/nginx.pid;\n",
            "auth_basic_user_file /usr/local/etc/nginx/warden-git/atlas;\n",
            "fastcgi_pass unix:/var/run/fcgiwrap/fcgiwrap.sock;\n",
            "fastcgi_param SCRIPT_FILENAME /usr/local/libexec/git-core/git-http-backend;\n",
            "listen 10.0.1.2:80;\n",
        ] {
            assert!(conf.contains(want), "{want}: {conf}");
        }
        assert_eq!(
            host_path(&layout, "clawdiegit", NGINX_CONF),
            "/usr/local/bastille/jails/clawdiegit/root/usr/local/etc/nginx/nginx.conf"
        );
    }
}
