//! The Linux `git` step: smart HTTP in the thin git jail: `nginx`, `fcgiwrap` and `git` of the jail's release
//! (`debian`, an overlay over the built release), or on the `host` fallback the host's packages, bound into
//! the jail with the host's `/usr`. nginx.conf and the per-owner
//! htpasswd files live on the host in `<state_dir>/git-http`, bound read-only into the jail at
//! [`CONFIG_MOUNT`] (the jail cannot change who may log in); the repositories are the jail's own
//! ([`git::REPOS`], in its persistent upper directory). Passwords go through `warden git credentials`
//! (see [`crate::git`]).

use crate::git::{self, Serving};
use crate::layout::{Layout, Role, Service};
use crate::linux_db::{apt_packages, in_jail};
use crate::observed::LinuxHost;
use crate::plan::{Action, Plan, PlanOptions, Step};

/// The Debian packages the git jail runs from the host's `/usr`: (package, program).
pub const PACKAGES: [(&str, &str); 3] = [
    ("nginx", "nginx"),
    ("fcgiwrap", "fcgiwrap"),
    ("git", "git http-backend"),
];
/// Where the jail sees `<state_dir>/git-http` (read-only).
pub const CONFIG_MOUNT: &str = "/etc/warden-git";
/// The jail's nginx.conf.
pub const NGINX_CONF: &str = "/etc/warden-git/nginx.conf";
/// The jail's nginx error log (also given with `-e`, before the config is read).
pub const ERROR_LOG: &str = "/var/git/log/error.log";
/// fcgiwrap's socket in the jail, in a directory of the git account (`/run` is root's).
pub const SOCKET: &str = "/var/git/tmp/fcgiwrap.sock";

/// Where the Linux git jail's serving pieces are.
pub const SERVING: Serving = Serving {
    pid: "/run/nginx-git.pid",
    logs: "/var/git/log",
    temp: "/var/git/tmp",
    socket: "unix:/var/git/tmp/fcgiwrap.sock",
    backend: "/usr/lib/git-core/git-http-backend",
    auth_dir: "/etc/warden-git/htpasswd",
};

/// `<state_dir>/git-http`: nginx.conf and `htpasswd/OWNER` on the host.
pub fn config_dir(state_dir: &str) -> String {
    format!("{state_dir}/git-http")
}

/// The htpasswd files' directory on the host.
pub fn auth_dir(state_dir: &str) -> String {
    format!("{}/htpasswd", config_dir(state_dir))
}

/// nginx.conf on the host.
pub fn nginx_conf_path(state_dir: &str) -> String {
    format!("{}/nginx.conf", config_dir(state_dir))
}

/// The git jail's `--bind` (read-only).
pub fn jail_bind(state_dir: &str) -> String {
    format!("{}:{CONFIG_MOUNT}", config_dir(state_dir))
}

/// A path inside the thin git jail's persistent upper directory, seen from the host (what the jail wrote).
pub fn upper_path(state_dir: &str, jail: &str, inside: &str) -> String {
    format!("{state_dir}/jails/{jail}/upper{inside}")
}

/// The argv that runs `cmd` in the git jail as the git account.
pub fn as_git(exe: &str, state_dir: &str, jail: &str, cmd: &[&str]) -> Vec<String> {
    let mut words = vec!["setpriv", "--reuid=git", "--regid=git", "--init-groups"];
    words.extend_from_slice(cmd);
    in_jail(exe, state_dir, jail, &words)
}

/// The argv that lists which of nginx and fcgiwrap run in the jail (one word a line).
pub fn running_probe(exe: &str, state_dir: &str, jail: &str) -> Vec<String> {
    in_jail(
        exe,
        state_dir,
        jail,
        &[
            "sh",
            "-c",
            "for p in nginx fcgiwrap; do pgrep -x $p >/dev/null && echo $p; done; true",
        ],
    )
}

/// Plans the `git` step for the layout's git jail into `plan`.
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
        notes,
        blocked,
    } = plan;
    let Some(svc) = layout.service(Role::Git) else {
        return;
    };
    // On the debian release the jail runs the release's own nginx, fcgiwrap and git; on the host release, the
    // host's.
    let why = "the git jail's smart HTTP, run from the host's /usr";
    if !layout.services_on_debian()
        && !apt_packages(Step::Git, &PACKAGES, why, host, options, out, blocked)
    {
        return;
    }
    let jail = svc.jail.as_str();
    if let Some(j) = host.jails.get(jail) {
        if !j.binds.contains(&jail_bind(state_dir)) {
            notes.push(format!(
                "jail {jail} was created without the bind {}: `warden jail destroy --force {jail}` and `warden setup` recreate it with it (its repositories are lost)",
                jail_bind(state_dir)
            ));
            return;
        }
    }
    account(layout, host, state_dir, exe, jail, out);
    let owners = git::owners(layout);
    let g = &host.git;
    if owners
        .iter()
        .any(|o| !g.passwords.contains(o) || !g.htpasswd.contains(o))
    {
        let auth = auth_dir(state_dir);
        let mut argv = vec![
            exe,
            "--state-dir",
            state_dir,
            "git",
            "credentials",
            "--auth-dir",
            &auth,
        ];
        argv.extend(owners.iter().map(String::as_str));
        out.push(Action::run(
            Step::Git,
            format!(
                "generate the missing owners' passwords into {} (mode 0600, never printed) and their htpasswd files ({})",
                git::secrets_dir(state_dir),
                owners.join(", ")
            ),
            &argv,
        ));
    }
    let conf = git::nginx_conf(layout, &SERVING);
    let path = nginx_conf_path(state_dir);
    let changed = host.files.get(&path) != Some(&conf);
    if changed {
        out.push(Action::file(
            Step::Git,
            format!(
                "write the git jail's nginx.conf: http://{}/OWNER/REPO.git on {}:{}, one credential per owner",
                svc.fqdn,
                svc.addr,
                git::HTTP_PORT
            ),
            &path,
            "0644",
            conf,
        ));
    }
    start(host, state_dir, exe, svc, changed, out);
}

/// The git account, its directories and the platform's health repository in the jail.
fn account(
    layout: &Layout,
    host: &LinuxHost,
    state_dir: &str,
    exe: &str,
    jail: &str,
    out: &mut Vec<Action>,
) {
    if !host.git.user {
        out.push(Action::run(
            Step::Git,
            format!("create the git account in {jail}"),
            &in_jail(
                exe,
                state_dir,
                jail,
                &[
                    "useradd",
                    "--system",
                    "--user-group",
                    "--home-dir",
                    git::HOME,
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    git::USER,
                ],
            ),
        ));
    }
    if !host.git.repos {
        out.push(Action::run(
            Step::Git,
            format!(
                "create {} (bare repositories), logs and nginx's temporary files in {jail}",
                git::REPOS
            ),
            &in_jail(
                exe,
                state_dir,
                jail,
                &[
                    "install",
                    "-d",
                    "-o",
                    git::USER,
                    "-g",
                    git::USER,
                    "-m",
                    "0750",
                    git::HOME,
                    SERVING.logs,
                    SERVING.temp,
                    git::REPOS,
                ],
            ),
        ));
        let health = git::repo_path(&layout.namespace, git::HEALTH_REPO);
        out.push(Action::run(
            Step::Git,
            format!("create the platform's empty repository {health} in {jail} (the doctor's git ls-remote reads it)"),
            &as_git(exe, state_dir, jail, &["git", "init", "--bare", "--quiet", "--initial-branch=main", &health]),
        ));
    }
}

/// fcgiwrap and nginx started (both stop with the jail), nginx reloaded when its config changed.
fn start(
    host: &LinuxHost,
    state_dir: &str,
    exe: &str,
    svc: &Service,
    changed: bool,
    out: &mut Vec<Action>,
) {
    let jail = svc.jail.as_str();
    if !host.git.fcgiwrap {
        // setsid -f: fcgiwrap stays in the foreground otherwise; its output goes to the jail's log, not to
        // setup's pipes (which it would hold open).
        let script = format!(
            "rm -f {SOCKET}; exec setsid -f fcgiwrap -c 2 -s unix:{SOCKET} </dev/null >>{}/fcgiwrap.log 2>&1",
            SERVING.logs
        );
        out.push(Action::run(
            Step::Git,
            format!("start fcgiwrap (git http-backend) in {jail} as git"),
            &as_git(exe, state_dir, jail, &["sh", "-c", &script]),
        ));
    }
    if !host.git.nginx {
        out.push(Action::run(
            Step::Git,
            format!("start nginx in {jail} on {}:{}", svc.addr, git::HTTP_PORT),
            &in_jail(
                exe,
                state_dir,
                jail,
                &["nginx", "-c", NGINX_CONF, "-e", ERROR_LOG],
            ),
        ));
    } else if changed {
        out.push(Action::run(
            Step::Git,
            format!("reload nginx in {jail} (new config)"),
            &in_jail(
                exe,
                state_dir,
                jail,
                &["nginx", "-c", NGINX_CONF, "-e", ERROR_LOG, "-s", "reload"],
            ),
        ));
    }
}

/// Makes `host` look like a host whose git step is done (for other planners' tests).
#[cfg(test)]
pub fn converge(layout: &Layout, state_dir: &str, host: &mut LinuxHost) {
    for (p, _) in PACKAGES {
        host.packages.insert(p.to_string(), true);
    }
    let owners: std::collections::BTreeSet<String> = git::owners(layout).into_iter().collect();
    host.git = crate::observed::LinuxGit {
        user: true,
        repos: true,
        passwords: owners.clone(),
        htpasswd: owners,
        nginx: true,
        fcgiwrap: true,
    };
    host.files.insert(
        nginx_conf_path(state_dir),
        git::nginx_conf(layout, &SERVING),
    );
    if let Some(j) = layout
        .service(Role::Git)
        .and_then(|s| host.jails.get_mut(&s.jail))
    {
        j.binds = vec![jail_bind(state_dir)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::observed::{LinuxGit, LinuxJail};

    #[test]
    fn fresh_then_converged() {
        let mut layout = Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap();
        let state = "/var/lib/warden";
        let mut host = LinuxHost::default();
        host.packages.insert("nginx".into(), false);
        // On the debian release the jail has its own nginx: nothing is installed on the host.
        let mut p = crate::Plan::default();
        plan(
            &layout,
            &host,
            state,
            "warden",
            &PlanOptions::default(),
            &mut p,
        );
        assert!(!p.to_text().contains("apt-get"), "{}", p.to_text());
        assert!(
            p.to_text()
                .contains("-- nginx -c /etc/warden-git/nginx.conf"),
            "{}",
            p.to_text()
        );
        // The host fallback installs the host's packages.
        layout.service_release = "host".into();
        let layout = layout;
        host.packages.insert("nginx".into(), false);
        host.packages.insert("fcgiwrap".into(), false);
        host.packages.insert("git".into(), true);
        let run = |host: &LinuxHost, options: &PlanOptions| {
            let mut p = crate::Plan::default();
            plan(&layout, host, state, "warden", options, &mut p);
            (p.actions, p.notes, p.blocked)
        };
        let (first, _, _) = run(&host, &PlanOptions::default());
        let text = crate::Plan {
            actions: first.clone(),
            ..Default::default()
        }
        .to_text();
        assert!(
            text.contains("apt-get install -y -q --no-install-recommends nginx fcgiwrap\n"),
            "{text}"
        );
        assert!(text.contains("$ warden --state-dir /var/lib/warden git credentials --auth-dir /var/lib/warden/git-http/htpasswd system\n"), "{text}");
        assert!(
            text.contains("write /var/lib/warden/git-http/nginx.conf"),
            "{text}"
        );
        assert!(
            text.contains("jail exec --root clawdiegit -- nginx -c /etc/warden-git/nginx.conf"),
            "{text}"
        );
        assert_eq!(first.len(), 8, "{text}");
        let (_, _, blocked) = run(&host, &PlanOptions { no_install: true });
        assert_eq!(blocked.len(), 2, "{blocked:?}");
        // Converged: nothing; a jail without the config bind: a note and nothing.
        host.packages.insert("nginx".into(), true);
        host.packages.insert("fcgiwrap".into(), true);
        host.git = LinuxGit {
            user: true,
            repos: true,
            passwords: ["system".to_string()].into(),
            htpasswd: ["system".to_string()].into(),
            nginx: true,
            fcgiwrap: true,
        };
        host.files
            .insert(nginx_conf_path(state), git::nginx_conf(&layout, &SERVING));
        let jail = LinuxJail {
            binds: vec![jail_bind(state)],
            ..Default::default()
        };
        host.jails.insert("clawdiegit".into(), jail);
        assert!(run(&host, &PlanOptions::default()).0.is_empty());
        host.jails.get_mut("clawdiegit").unwrap().binds.clear();
        let (none, notes, _) = run(&host, &PlanOptions::default());
        assert!(
            none.is_empty() && notes[0].contains("without the bind"),
            "{notes:?}"
        );
        // After a jail restart: both daemons start again.
        host.jails.get_mut("clawdiegit").unwrap().binds = vec![jail_bind(state)];
        host.git.nginx = false;
        host.git.fcgiwrap = false;
        assert_eq!(run(&host, &PlanOptions::default()).0.len(), 2);
    }
}
