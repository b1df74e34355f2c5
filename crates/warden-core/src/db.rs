//! The db role, the same on both backends: the platform databases and `strapi_cms`, one login role owning
//! each (a role and its database share a name), PostgreSQL listening on the db slot and loopback only,
//! `pg_hba` admitting the git and cms slots and the gateway with scram-sha-256, and the passwords Warden
//! generates at setup (one file per role, mode 0600, under `<state_dir>/db`).
//!
//! Passwords never appear in a plan, an argv, the journal or an error: setup's actions name the hidden
//! `warden db passwords` and `warden db sync` verbs, which read the files and hand the SQL to psql on stdin.

use crate::layout::{Layout, Role, DB_PORT};

/// The cms's own database and role (seed 002: the Strapi path of the cms).
pub const CMS_ROLE: &str = "strapi_cms";
/// PostgreSQL's client (psql) on FreeBSD: the git and cms steps install it, so the doctor's `db.<role>` can
/// connect from the jail that uses the database (the server package depends on it in the db jail).
pub const FREEBSD_CLIENT_PKG: &str = "postgresql18-client";

/// Where psql and the server's Unix socket meet inside the db jail: `/tmp` is fresh at every jail start
/// on Linux and FreeBSD's default, so no run-time directory has to be made before a start.
pub const SOCKET_DIR: &str = "/tmp";

/// The platform databases of seed 002, prefixed with the namespace.
pub fn databases(layout: &Layout) -> Vec<String> {
    ["ops", "brain", "skills", "git", "web"]
        .iter()
        .map(|d| format!("{}_{d}", layout.namespace))
        .collect()
}

/// Every login role Warden makes, each owning the database of the same name: the platform ones and
/// [`CMS_ROLE`].
pub fn roles(layout: &Layout) -> Vec<String> {
    let mut r = databases(layout);
    r.push(CMS_ROLE.to_string());
    r
}

/// `<state_dir>/db`, mode 0700: the password files and the sync marker.
pub fn secrets_dir(state_dir: &str) -> String {
    format!("{state_dir}/db")
}

/// The password file of `role` (mode 0600).
pub fn password_path(state_dir: &str, role: &str) -> String {
    format!("{}/{role}.password", secrets_dir(state_dir))
}

/// Written by `warden db sync` once every role has its file's password; removed when a password is
/// (re)generated, so a crash between the two is finished by the next setup.
pub fn synced_marker(state_dir: &str) -> String {
    format!("{}/synced", secrets_dir(state_dir))
}

/// The marker's content: the roles synced, one a line.
pub fn synced_content(roles: &[String]) -> String {
    roles.iter().map(|r| format!("{r}\n")).collect()
}

/// Whether `text` is a password Warden generated (and can put in SQL and URLs unquoted): 32 to 128
/// lowercase hex digits.
pub fn valid_password(text: &str) -> bool {
    (32..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `name` can be a role and database name here: lowercase letters, digits and `_`, not starting
/// with a digit, at most 63 bytes (so it needs no quoting anywhere).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The SQL `warden db sync` feeds psql (as the superuser, on stdin): the session first makes sure a failing
/// statement is never written to the server log with its text; then every role exists and can log in with
/// its file's password, and owns the database of its name. Every statement may run again.
pub fn sync_sql(pairs: &[(String, String)]) -> String {
    let list = pairs
        .iter()
        .map(|(r, _)| format!("'{r}'"))
        .collect::<Vec<_>>()
        .join(",");
    let mut sql = String::from(
        "\\set ON_ERROR_STOP on\n\\set VERBOSITY terse\nSET log_min_error_statement = panic;\nSET log_statement = 'none';\n",
    );
    sql.push_str(&format!(
        "SELECT format('CREATE ROLE %I LOGIN', r) FROM unnest(ARRAY[{list}]) AS r WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \\gexec\n"
    ));
    for (role, password) in pairs {
        sql.push_str(&format!(
            "ALTER ROLE \"{role}\" WITH LOGIN PASSWORD '{password}';\n"
        ));
    }
    sql.push_str(&format!(
        "SELECT format('CREATE DATABASE %I OWNER %I', d, d) FROM unnest(ARRAY[{list}]) AS d WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d) \\gexec\n"
    ));
    for (role, _) in pairs {
        sql.push_str(&format!("ALTER DATABASE \"{role}\" OWNER TO \"{role}\";\n"));
    }
    sql
}

/// The connection string for `role` from the host (the gateway side of the bridge).
pub fn url(layout: &Layout, role: &str, password: &str) -> Option<String> {
    let db = layout.service(Role::Db)?;
    Some(format!(
        "postgresql://{role}:{password}@{}:{DB_PORT}/{role}",
        db.addr
    ))
}

/// The addresses `pg_hba.conf` admits over TCP: the git and cms slots and the gateway, each with why.
pub fn clients(layout: &Layout) -> Vec<(std::net::Ipv4Addr, &'static str)> {
    let mut out = Vec::new();
    for (role, why) in [(Role::Git, "the git jail"), (Role::Cms, "the cms jail")] {
        if let Some(s) = layout.service(role) {
            out.push((s.addr, why));
        }
    }
    out.push((layout.gateway, "the host (warden db url)"));
    out
}

/// `postgresql.conf`: listening on the db slot and loopback only, scram-sha-256 passwords, small memory.
/// Everything not set here is PostgreSQL's default.
pub fn postgresql_conf(layout: &Layout) -> String {
    let addr = layout
        .service(Role::Db)
        .map(|s| s.addr.to_string())
        .unwrap_or_default();
    format!(
        "# Written by Warden (warden setup --step db); edits are replaced.\n\
listen_addresses = '{addr},127.0.0.1'\n\
port = {DB_PORT}\n\
unix_socket_directories = '{SOCKET_DIR}'\n\
password_encryption = 'scram-sha-256'\n\
max_connections = 50\n\
shared_buffers = 32MB\n\
dynamic_shared_memory_type = posix\n\
log_timezone = '{tz}'\n\
timezone = '{tz}'\n\
datestyle = 'iso, dmy'\n\
lc_messages = 'C'\n\
default_text_search_config = 'pg_catalog.english'\n",
        tz = layout.timezone
    )
}

/// `pg_hba.conf`: the superuser only through the jail's Unix socket (peer), each role only into its own
/// database (`sameuser`) from loopback, the git and cms slots and the gateway, with scram-sha-256; nothing
/// else.
pub fn pg_hba(layout: &Layout) -> String {
    let mut out = String::from(
        "# Written by Warden (warden setup --step db); edits are replaced.\n\
# TYPE  DATABASE  USER      ADDRESS             METHOD\n\
local   all       postgres                      peer\n\
local   sameuser  all                           scram-sha-256\n\
host    sameuser  all       127.0.0.1/32        scram-sha-256\n",
    );
    for (addr, why) in clients(layout) {
        out.push_str(&format!(
            "host    sameuser  all       {:<19} scram-sha-256   # {why}\n",
            format!("{addr}/32")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    fn layout() -> Layout {
        Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap()
    }

    #[test]
    fn roles_are_the_namespaced_databases_and_strapi() {
        assert_eq!(
            roles(&layout()),
            [
                "system_ops",
                "system_brain",
                "system_skills",
                "system_git",
                "system_web",
                "strapi_cms"
            ]
        );
    }

    #[test]
    fn hba_admits_git_cms_and_the_gateway_only() {
        let hba = pg_hba(&layout());
        let hosts: Vec<&str> = hba
            .lines()
            .filter(|l| l.starts_with("host"))
            .map(|l| l.split_whitespace().nth(3).unwrap())
            .collect();
        assert_eq!(
            hosts,
            ["127.0.0.1/32", "10.0.1.2/32", "10.0.1.3/32", "10.0.1.1/32"]
        );
        assert!(hba
            .lines()
            .filter(|l| l.starts_with("host"))
            .all(|l| l.contains("sameuser") && l.contains("scram-sha-256")));
        assert!(!hba.contains("trust") && !hba.contains("0.0.0.0"));
        let conf = postgresql_conf(&layout());
        assert!(conf.contains("listen_addresses = '10.0.1.5,127.0.0.1'\n"));
    }

    #[test]
    fn passwords_and_urls() {
        assert!(valid_password(&"a1".repeat(16)));
        assert!(!valid_password("short"));
        assert!(!valid_password(&"x'".repeat(20)));
        let sql = sync_sql(&[("system_ops".into(), "ab".repeat(16))]);
        assert!(sql.contains("SET log_min_error_statement = panic;"));
        assert!(sql.contains(&format!(
            "ALTER ROLE \"system_ops\" WITH LOGIN PASSWORD '{}';\n",
            "ab".repeat(16)
        )));
        assert!(sql.ends_with("ALTER DATABASE \"system_ops\" OWNER TO \"system_ops\";\n"));
        assert!(valid_name("system_ops") && !valid_name("a-b") && !valid_name("1a"));
        assert_eq!(
            url(&layout(), "system_ops", "pw").unwrap(),
            "postgresql://system_ops:pw@10.0.1.5:5432/system_ops"
        );
        assert_eq!(
            synced_content(&["a".into(), "b".into()]),
            "a\nb\n".to_string()
        );
    }
}
