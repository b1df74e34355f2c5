//! The git role, the same on both backends: bare repositories in the git jail (`/var/git/repos/OWNER/REPO.git`)
//! served by smart HTTP (`git http-backend` behind nginx and fcgiwrap) at `http://git.<domain>/OWNER/REPO.git`
//! on port 80 of the git slot. An owner is a tenant of the registry or the platform's namespace; each owner has
//! one HTTP basic credential (user = the owner's name, password generated at setup, mode 0600 under
//! `<state_dir>/git`), and nginx checks an owner's path against that owner's htpasswd file only, so a tenant's
//! credential never opens another's repositories.
//!
//! Passwords never appear in a plan, an argv, the journal or an error: setup runs the hidden
//! `warden git credentials` verb, which generates the missing passwords and writes the hashed htpasswd files.

use crate::layout::{Layout, Role};
use crate::names;

/// The HTTP port git is served on (the workers → git service path).
pub use crate::layout::GIT_HTTP_PORT as HTTP_PORT;
/// The jail account that owns the repositories and runs nginx's workers and fcgiwrap.
pub const USER: &str = "git";
/// The account's home in the jail.
pub const HOME: &str = "/var/git";
/// The bare repositories in the jail, one directory per owner.
pub const REPOS: &str = "/var/git/repos";
/// The platform's empty repository setup creates for the doctor's `git ls-remote`.
pub const HEALTH_REPO: &str = "health";

/// Where one backend puts the serving pieces inside the git jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    /// nginx's pid file.
    pub pid: &'static str,
    /// nginx's log directory.
    pub logs: &'static str,
    /// nginx's temporary files (request bodies of pushes).
    pub temp: &'static str,
    /// fcgiwrap's socket as nginx names it (`unix:…`).
    pub socket: &'static str,
    /// The `git http-backend` program.
    pub backend: &'static str,
    /// The directory of the per-owner htpasswd files.
    pub auth_dir: &'static str,
}

/// The owners of repositories: the platform's namespace, then every tenant of the registry.
pub fn owners(layout: &Layout) -> Vec<String> {
    let mut out = vec![layout.namespace.clone()];
    out.extend(layout.tenants.iter().map(|t| t.name.clone()));
    out
}

/// The owner of `--tenant T` (none: the platform's namespace), checked against the registry.
pub fn owner(layout: &Layout, tenant: Option<&str>) -> Result<String, String> {
    match tenant {
        None => Ok(layout.namespace.clone()),
        Some(t) if layout.tenants.iter().any(|x| x.name == t) => Ok(t.to_string()),
        Some(t) => Err(format!(
            "no tenant {t:?} in the registry\n  fix: one of {} (tenants are added in the config's [[tenants]] or with TENANT_ID)",
            if layout.tenants.is_empty() {
                "none yet".to_string()
            } else {
                layout.tenant_names()
            }
        )),
    }
}

/// Checks a repository name: a DNS label (letters, digits, inner '-'), given without `.git`.
pub fn check_repo(repo: &str) -> Result<(), String> {
    names::check_label(repo).map_err(|e| {
        format!("bad repository name {repo:?}: {e}\n  fix: a name such as notes or site-blog (without .git)")
    })
}

/// The repository's directory in the jail.
pub fn repo_path(owner: &str, repo: &str) -> String {
    format!("{REPOS}/{owner}/{repo}.git")
}

/// `<state_dir>/git`, mode 0700: the owners' password files.
pub fn secrets_dir(state_dir: &str) -> String {
    format!("{state_dir}/git")
}

/// The password file of `owner` (mode 0600).
pub fn password_path(state_dir: &str, owner: &str) -> String {
    format!("{}/{owner}.password", secrets_dir(state_dir))
}

/// The clone URL of a repository carrying the owner's credential.
pub fn url(layout: &Layout, owner: &str, password: &str, repo: &str) -> Option<String> {
    let git = layout.service(Role::Git)?;
    Some(format!(
        "http://{owner}:{password}@{}/{owner}/{repo}.git",
        git.fqdn
    ))
}

/// What `warden git` does to a repository in the jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoOp {
    /// `git init --bare` (refused if it exists).
    Create,
    /// The owner's repositories, one name a line.
    List,
    /// Remove it (refused if it does not exist).
    Delete,
}

/// The shell script (run in the jail as the git account) for `op`; `owner` and `repo` must have passed
/// [`owner`] and [`check_repo`] (DNS labels need no quoting). A refusal exits 3 with a line on stderr.
pub fn repo_script(op: RepoOp, owner: &str, repo: &str) -> String {
    let p = repo_path(owner, repo);
    match op {
        RepoOp::Create => format!(
            "set -e; if [ -e {p} ]; then echo \"repository {owner}/{repo} already exists\" >&2; exit 3; fi; \
mkdir -p {REPOS}/{owner}; git init --bare --quiet --initial-branch=main {p}; git -C {p} config http.receivepack true"
        ),
        RepoOp::List => format!(
            "cd {REPOS}/{owner} 2>/dev/null || exit 0; for r in *.git; do [ -d \"$r\" ] && echo \"${{r%.git}}\"; done; true"
        ),
        RepoOp::Delete => format!(
            "if [ ! -d {p} ]; then echo \"no repository {owner}/{repo}\" >&2; exit 3; fi; rm -rf {p}"
        ),
    }
}

/// The argv that runs `script` in the FreeBSD git jail as the git account.
pub fn jexec_as_git(jail: &str, script: &str) -> Vec<String> {
    ["jexec", "-l", "-U", USER, jail, "sh", "-c", script]
        .iter()
        .map(|w| w.to_string())
        .collect()
}

/// nginx.conf of the git jail: one server on the git slot's port 80 for `git.<domain>`, one location per
/// owner with its own htpasswd file, everything else 404. Pushes go through because `REMOTE_USER` is set.
pub fn nginx_conf(layout: &Layout, serving: &Serving) -> String {
    let (addr, fqdn) = layout
        .service(Role::Git)
        .map(|s| (s.addr.to_string(), s.fqdn.clone()))
        .unwrap_or_default();
    let Serving {
        pid,
        logs,
        temp,
        socket,
        backend,
        auth_dir,
    } = serving;
    // The distribution's fastcgi_params is not in a jail's own /etc: the parameters git http-backend needs
    // are spelled out in each location, so the file is self-contained.
    let params: String = [
        format!("fastcgi_pass {socket}"),
        format!("fastcgi_param SCRIPT_FILENAME {backend}"),
        format!("fastcgi_param GIT_PROJECT_ROOT {REPOS}"),
        "fastcgi_param GIT_HTTP_EXPORT_ALL 1".into(),
        "fastcgi_param REMOTE_USER $remote_user".into(),
        "fastcgi_param PATH_INFO $uri".into(),
        "fastcgi_param QUERY_STRING $query_string".into(),
        "fastcgi_param REQUEST_METHOD $request_method".into(),
        "fastcgi_param CONTENT_TYPE $content_type".into(),
        "fastcgi_param CONTENT_LENGTH $content_length".into(),
        "fastcgi_param GATEWAY_INTERFACE CGI/1.1".into(),
        "fastcgi_param SERVER_PROTOCOL $server_protocol".into(),
        "fastcgi_param REMOTE_ADDR $remote_addr".into(),
    ]
    .iter()
    .map(|l| format!("            {l};\n"))
    .collect();
    let mut locations = String::new();
    for owner in owners(layout) {
        locations.push_str(&format!(
            "        location ^~ /{owner}/ {{\n            auth_basic \"git {owner}\";\n            auth_basic_user_file {auth_dir}/{owner};\n{params}        }}\n"
        ));
    }
    format!(
        "# Written by Warden (warden setup --step git); edits are replaced.\n\
user {USER} {USER};\n\
worker_processes 1;\n\
pid {pid};\n\
error_log {logs}/error.log;\n\
events {{\n    worker_connections 64;\n}}\n\
http {{\n\
    access_log {logs}/access.log;\n\
    client_body_temp_path {temp}/body;\n\
    proxy_temp_path {temp}/proxy;\n\
    fastcgi_temp_path {temp}/fastcgi;\n\
    uwsgi_temp_path {temp}/uwsgi;\n\
    scgi_temp_path {temp}/scgi;\n\
    default_type application/octet-stream;\n\
    server_tokens off;\n\
    server {{\n\
        listen {addr}:{HTTP_PORT};\n\
        server_name {fqdn};\n\
        client_max_body_size 0;\n\
        location / {{\n            return 404;\n        }}\n\
{locations}    }}\n\
}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    fn layout() -> Layout {
        let env = |k: &str| (k == "TENANT_ID").then(|| "atlas".to_string());
        Layout::from_loaded(&load(None, &env, &vec![]).unwrap()).unwrap()
    }

    const LINUX: Serving = Serving {
        pid: "/run/nginx-git.pid",
        logs: "/var/git/log",
        temp: "/var/git/tmp",
        socket: "unix:/run/fcgiwrap-git.sock",
        backend: "/usr/lib/git-core/git-http-backend",
        auth_dir: "/etc/warden-git/htpasswd",
    };

    #[test]
    fn owners_names_and_urls() {
        let l = layout();
        assert_eq!(owners(&l), ["system", "atlas"]);
        assert_eq!(owner(&l, None).unwrap(), "system");
        assert_eq!(owner(&l, Some("atlas")).unwrap(), "atlas");
        let e = owner(&l, Some("zeus")).unwrap_err();
        assert!(
            e.contains("no tenant \"zeus\"") && e.contains("atlas"),
            "{e}"
        );
        assert!(check_repo("notes").is_ok());
        for bad in ["", "a/b", "x.git", "-a", "../x"] {
            assert!(check_repo(bad).unwrap_err().contains("fix:"), "{bad}");
        }
        assert_eq!(
            url(&l, "atlas", "pw", "blog").unwrap(),
            "http://atlas:pw@git.home.arpa/atlas/blog.git"
        );
        assert_eq!(repo_path("atlas", "blog"), "/var/git/repos/atlas/blog.git");
    }

    #[test]
    fn nginx_serves_each_owner_with_its_own_credential_file() {
        let conf = nginx_conf(&layout(), &LINUX);
        assert!(conf.contains("listen 10.0.1.2:80;\n"), "{conf}");
        assert!(conf.contains("server_name git.home.arpa;\n"), "{conf}");
        for owner in ["system", "atlas"] {
            assert!(
                conf.contains(&format!(
                    "location ^~ /{owner}/ {{\n            auth_basic \"git {owner}\";\n            auth_basic_user_file /etc/warden-git/htpasswd/{owner};\n            fastcgi_pass unix:/run/fcgiwrap-git.sock;\n"
                )),
                "{conf}"
            );
        }
        assert_eq!(
            conf.matches("fastcgi_param REMOTE_USER $remote_user;")
                .count(),
            2
        );
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    }
}
