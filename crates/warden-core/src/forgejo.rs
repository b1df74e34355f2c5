//! Forgejo, the seeds' web and API front of git, on FreeBSD (port `www/forgejo`: rc.d script `forgejo`, rcvar
//! `forgejo_enable`, runs `/usr/local/sbin/forgejo web` as the port's `git` account, config
//! `/usr/local/etc/forgejo/conf/app.ini`). Its database is `<namespace>_git` in the db jail, reached as the
//! role of the same name. Forgejo listens on the git slot's port [`HTTP_PORT`] beside nginx's smart HTTP on 80;
//! nginx does not proxy to it (nginx's `/OWNER/` locations are git's, and Forgejo's web paths are the same
//! `/OWNER/REPO`), and the workers' service path opens port 80 only, so workers do not reach Forgejo.
//!
//! `app.ini` carries secrets (the role's password, Forgejo's own keys): it is rendered here from
//! [`Secrets`] and written by the hidden `warden git forgejo-config` verb, never by a plan's file action,
//! so no secret is in a plan, the journal or an argv. Plans compare it with every secret value masked.

use crate::layout::{Layout, Role, DB_PORT};

/// The package.
pub const PKG: &str = "forgejo";
/// The rc.d script (and `service` name).
pub const SERVICE: &str = "forgejo";
/// The rcvar that starts it with the jail.
pub const RCVAR: &str = "forgejo_enable";
/// Forgejo's config in the git jail.
pub const APP_INI: &str = "/usr/local/etc/forgejo/conf/app.ini";
/// Where the hidden verb writes the new config (root's, 0600) before it is installed as the git account's.
pub const STAGED: &str = "/usr/local/etc/forgejo/conf/app.ini.warden";
/// The account the port's rc.d script runs Forgejo as (`forgejo_user`, the port's `USERS=git`).
pub const USER: &str = "git";
/// Forgejo's HTTP port on the git slot (nginx has 80).
pub const HTTP_PORT: u16 = 3000;
/// Forgejo's work directory (the rc.d script creates `/var/db/forgejo` and `/var/log/forgejo`).
pub const WORK_PATH: &str = "/var/db/forgejo";
/// What a masked secret reads as.
pub const HIDDEN: &str = "<hidden>";
/// The keys of `app.ini` whose values are secrets.
pub const SECRET_KEYS: [&str; 4] = ["PASSWD", "SECRET_KEY", "INTERNAL_TOKEN", "JWT_SECRET"];

/// The secrets `app.ini` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// The db role's password (`<state_dir>/db/<namespace>_git.password`).
    pub db_password: String,
    /// `[security] SECRET_KEY`.
    pub secret_key: String,
    /// `[security] INTERNAL_TOKEN`.
    pub internal_token: String,
    /// `[oauth2] JWT_SECRET` (32 bytes, unpadded base64url, as Forgejo requires).
    pub jwt_secret: String,
}

impl Secrets {
    /// Every secret as [`HIDDEN`]: what a masked `app.ini` is compared with.
    pub fn hidden() -> Secrets {
        Secrets {
            db_password: HIDDEN.into(),
            secret_key: HIDDEN.into(),
            internal_token: HIDDEN.into(),
            jwt_secret: HIDDEN.into(),
        }
    }
}

/// The db role (and database) Forgejo uses: `<namespace>_git`.
pub fn db_role(layout: &Layout) -> String {
    format!("{}_git", layout.namespace)
}

/// Forgejo's own secrets in the state directory (mode 0600 in `<state_dir>/git`): (name, path, random bytes).
pub fn secret_files(state_dir: &str) -> [(&'static str, String, usize); 3] {
    let dir = crate::git::secrets_dir(state_dir);
    [
        ("secret_key", format!("{dir}/forgejo.secret_key"), 32),
        (
            "internal_token",
            format!("{dir}/forgejo.internal_token"),
            32,
        ),
        ("jwt_secret", format!("{dir}/forgejo.jwt_secret"), 32),
    ]
}

/// The git jail's `app.ini`: PostgreSQL `<namespace>_git` on the db slot, HTTP on the git slot's
/// [`HTTP_PORT`] at `http://git.<domain>:3000/`, repositories in [`crate::git::REPOS`] (the same tree the smart
/// HTTP serves), installed and locked (no web installer), no registration, no SSH, offline.
pub fn app_ini(layout: &Layout, s: &Secrets) -> String {
    let (git_addr, fqdn) = layout
        .service(Role::Git)
        .map(|g| (g.addr.to_string(), g.fqdn.clone()))
        .unwrap_or_default();
    let db_addr = layout
        .service(Role::Db)
        .map(|d| d.addr.to_string())
        .unwrap_or_default();
    let role = db_role(layout);
    let repos = crate::git::REPOS;
    format!(
        "; Written by Warden (warden setup --step git); edits are replaced.\n\
APP_NAME = {identity} git\n\
RUN_MODE = prod\n\
RUN_USER = {USER}\n\
WORK_PATH = {WORK_PATH}\n\
\n\
[database]\n\
DB_TYPE = postgres\n\
HOST = {db_addr}:{DB_PORT}\n\
NAME = {role}\n\
USER = {role}\n\
PASSWD = {pw}\n\
SSL_MODE = disable\n\
\n\
[repository]\n\
ROOT = {repos}\n\
SCRIPT_TYPE = sh\n\
DEFAULT_BRANCH = main\n\
\n\
[server]\n\
PROTOCOL = http\n\
DOMAIN = {fqdn}\n\
HTTP_ADDR = {git_addr}\n\
HTTP_PORT = {HTTP_PORT}\n\
ROOT_URL = http://{fqdn}:{HTTP_PORT}/\n\
APP_DATA_PATH = {WORK_PATH}/data\n\
DISABLE_SSH = true\n\
OFFLINE_MODE = true\n\
\n\
[log]\n\
MODE = file\n\
LEVEL = Info\n\
ROOT_PATH = /var/log/forgejo\n\
\n\
[security]\n\
INSTALL_LOCK = true\n\
SECRET_KEY = {sk}\n\
INTERNAL_TOKEN = {it}\n\
\n\
[oauth2]\n\
JWT_SECRET = {jwt}\n\
\n\
[service]\n\
DISABLE_REGISTRATION = true\n\
REQUIRE_SIGNIN_VIEW = true\n\
\n\
[session]\n\
PROVIDER = file\n\
PROVIDER_CONFIG = {WORK_PATH}/data/sessions\n\
\n\
[picture]\n\
DISABLE_GRAVATAR = true\n\
ENABLE_FEDERATED_AVATAR = false\n\
\n\
[mailer]\n\
ENABLED = false\n",
        identity = layout.identity,
        pw = s.db_password,
        sk = s.secret_key,
        it = s.internal_token,
        jwt = s.jwt_secret,
    )
}

/// `text` with the value of every [`SECRET_KEYS`] line replaced by [`HIDDEN`] (what observe keeps of the
/// jail's `app.ini`).
pub fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let key = line.split_once('=').map(|(k, _)| k.trim());
        match key {
            Some(k) if SECRET_KEYS.contains(&k) => {
                out.push_str(&format!("{k} = {HIDDEN}"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    #[test]
    fn app_ini_points_at_the_db_role_and_masks_to_the_hidden_rendering() {
        let layout = Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap();
        let s = Secrets {
            db_password: "p4ss".into(),
            secret_key: "sk".into(),
            internal_token: "it".into(),
            jwt_secret: "jw".into(),
        };
        let ini = app_ini(&layout, &s);
        for want in [
            "HOST = 10.0.1.5:5432\n",
            "NAME = system_git\nUSER = system_git\nPASSWD = p4ss\n",
            "HTTP_ADDR = 10.0.1.2\nHTTP_PORT = 3000\nROOT_URL = http://git.home.arpa:3000/\n",
            "ROOT = /var/git/repos\n",
        ] {
            assert!(ini.contains(want), "{want}: {ini}");
        }
        let masked = mask(&ini);
        assert_eq!(masked, app_ini(&layout, &Secrets::hidden()));
        for secret in ["p4ss", "= sk\n", "= it\n", "= jw\n"] {
            assert!(!masked.contains(secret), "{secret}");
        }
    }
}
