//! The Linux `db` step: PostgreSQL in the thick db jail. On the `debian` release (the default) the server is the
//! jail's own copy of the release's package (`/usr/lib/postgresql/N/bin` in the jail); on the `host` fallback
//! (`jails.service_release = "host"`) it is the host's, installed by apt and bound in with the host's `/usr`. The
//! cluster, its config and the `postgres` account are the jail's own (`<state_dir>/jails/NAME/root`), so they survive jail
//! restarts and setup re-runs. Roles, databases and passwords go through `warden db sync` (see [`crate::db`]).

use crate::db;
use crate::layout::{Layout, Role, Service, Shape};
use crate::observed::LinuxHost;
use crate::plan::{Action, Blocker, Plan, PlanOptions, Step};

/// `apt-get install` as setup's steps run it (the packages follow).
pub const APT_INSTALL: [&str; 7] = [
    "env",
    "DEBIAN_FRONTEND=noninteractive",
    "apt-get",
    "install",
    "-y",
    "-q",
    "--no-install-recommends",
];
/// The `packages` (package, program) a step needs from apt: nothing when installed or not a Debian host (no
/// dpkg-query: the base step notes it), else one install action, or with `--no-install` a blocker per missing
/// package naming its install command. Whether the step can go on.
#[allow(clippy::too_many_arguments)]
pub fn apt_packages(
    step: Step,
    packages: &[(&str, &str)],
    why: &str,
    host: &LinuxHost,
    options: &PlanOptions,
    out: &mut Vec<Action>,
    blocked: &mut Vec<Blocker>,
) -> bool {
    if host.packages.is_empty() {
        return true;
    }
    let missing: Vec<&str> = packages
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| host.packages.get(*p) != Some(&true))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if options.no_install {
        for (p, program) in packages.iter().filter(|(p, _)| missing.contains(p)) {
            blocked.push(Blocker {
                step,
                problem: format!(
                    "package {p} (for {program}) is not installed, and --no-install was given"
                ),
                fix: format!("apt-get install --no-install-recommends {p}"),
            });
        }
        return false;
    }
    let mut argv = APT_INSTALL.to_vec();
    argv.extend(&missing);
    let mut verify = vec!["dpkg-query", "-W"];
    verify.extend(&missing);
    out.push(
        Action::run(
            step,
            format!("install {} ({why})", missing.join(", ")),
            &argv,
        )
        .verified_by(&verify),
    );
    true
}

/// The Debian package that brings the server (its dependency names the version).
pub const PACKAGE: &str = "postgresql";
/// The postgres account's home in the jail.
pub const HOME: &str = "/var/lib/postgresql";
/// The cluster in the jail.
pub const DATA: &str = "/var/lib/postgresql/data";
/// The server's log in the jail.
pub const LOG: &str = "/var/lib/postgresql/server.log";

/// The db jail's root on the host (thick: its own copy).
pub fn jail_root(state_dir: &str, jail: &str) -> String {
    format!("{state_dir}/jails/{jail}/root")
}

/// A path inside the db jail, seen from the host.
pub fn host_path(state_dir: &str, jail: &str, inside: &str) -> String {
    format!("{}{inside}", jail_root(state_dir, jail))
}

/// `postgresql.conf` and `pg_hba.conf` on the host, with their content.
pub fn config_files(layout: &Layout, state_dir: &str, jail: &str) -> [(String, String); 2] {
    [
        (
            host_path(state_dir, jail, &format!("{DATA}/postgresql.conf")),
            db::postgresql_conf(layout),
        ),
        (
            host_path(state_dir, jail, &format!("{DATA}/pg_hba.conf")),
            db::pg_hba(layout),
        ),
    ]
}

/// The argv that runs `cmd` in the jail as its root (`warden jail exec --root`).
pub fn in_jail(exe: &str, state_dir: &str, jail: &str, cmd: &[&str]) -> Vec<String> {
    [
        exe,
        "--state-dir",
        state_dir,
        "jail",
        "exec",
        "--root",
        jail,
        "--",
    ]
    .iter()
    .chain(cmd)
    .map(|w| w.to_string())
    .collect()
}

/// The argv that runs `cmd` in the jail as `postgres` (setpriv: no PAM, no setuid binary).
pub fn as_postgres(exe: &str, state_dir: &str, jail: &str, cmd: &[&str]) -> Vec<String> {
    let mut words = vec![
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
    ];
    words.extend_from_slice(cmd);
    in_jail(exe, state_dir, jail, &words)
}

/// psql as the superuser over the jail's Unix socket, reading SQL from stdin.
pub fn psql_stdin(bin: &str, exe: &str, state_dir: &str, jail: &str) -> Vec<String> {
    let psql = format!("{bin}/psql");
    as_postgres(
        exe,
        state_dir,
        jail,
        &[
            &psql,
            "-X",
            "-q",
            "-h",
            db::SOCKET_DIR,
            "-d",
            "postgres",
            "-f",
            "-",
        ],
    )
}

/// How long setup waits for a running server to accept connections (as `pg_ctl start -w -t 60`).
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `pg_isready` on the jail's Unix socket as `postgres`: exit 0 when the server accepts connections, 1 while
/// it starts or recovers, 2 when nothing answers.
pub fn pg_isready(bin: &str, exe: &str, state_dir: &str, jail: &str) -> Vec<String> {
    let prog = format!("{bin}/pg_isready");
    as_postgres(
        exe,
        state_dir,
        jail,
        &[&prog, "-h", db::SOCKET_DIR, "-d", "postgres", "-t", "5"],
    )
}

/// The hidden `warden db wait` that runs [`pg_isready`] until it answers 0, within [`READY_TIMEOUT`].
pub fn wait_ready(bin: &str, exe: &str, state_dir: &str, jail: &str) -> Vec<String> {
    let secs = READY_TIMEOUT.as_secs().to_string();
    let mut argv: Vec<String> = [
        exe,
        "--state-dir",
        state_dir,
        "db",
        "wait",
        "--timeout",
        &secs,
        "--log",
        LOG,
        "--",
    ]
    .iter()
    .map(|w| w.to_string())
    .collect();
    argv.extend(pg_isready(bin, exe, state_dir, jail));
    argv
}

/// Plans the `db` step for the layout's db jail into `plan`.
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
    let Some(svc) = layout.service(Role::Db) else {
        return;
    };
    let s = Step::Db;
    let jail = svc.jail.as_str();
    if svc.shape != Shape::Thick {
        notes.push(format!(
            "the db jail {jail} is not thick: the db step keeps the cluster only in thick jails"
        ));
        return;
    }
    let Some(bin) = server_bin(layout, host, options, out, blocked) else {
        return;
    };
    let roles = db::roles(layout);
    let missing_pw = roles.iter().any(|r| !host.db.passwords.contains(r));
    if missing_pw {
        let mut argv = vec![exe, "--state-dir", state_dir, "db", "passwords"];
        argv.extend(roles.iter().map(String::as_str));
        out.push(Action::run(
            s,
            format!(
                "generate the missing role passwords into {} (mode 0600, never printed)",
                db::secrets_dir(state_dir)
            ),
            &argv,
        ));
    }
    cluster(host, state_dir, exe, jail, &bin, out);
    let changed = config(layout, host, state_dir, svc, out);
    start(host, state_dir, exe, svc, &bin, changed, out);
    let d = &host.db;
    let in_sync = d.accepting
        && roles
            .iter()
            .all(|r| d.roles.contains(r) && d.databases.contains(r))
        && d.synced.as_deref() == Some(db::synced_content(&roles).as_str());
    if missing_pw || !in_sync {
        let list = roles.join(",");
        let mut argv: Vec<String> = [
            exe,
            "--state-dir",
            state_dir,
            "db",
            "sync",
            "--roles",
            &list,
            "--",
        ]
        .iter()
        .map(|w| w.to_string())
        .collect();
        argv.extend(psql_stdin(&bin, exe, state_dir, jail));
        out.push(Action::run(
            s,
            format!(
                "create the roles and databases ({}), each owned by its role, and set the passwords (SQL on psql's stdin)",
                roles.join(", ")
            ),
            &argv,
        ));
    }
}

/// The directory of the PostgreSQL server's programs: the installed one, or the candidate package's after
/// installing it; none (and a blocker) when neither can be.
fn server_bin(
    layout: &Layout,
    host: &LinuxHost,
    options: &PlanOptions,
    out: &mut Vec<Action>,
    blocked: &mut Vec<Blocker>,
) -> Option<String> {
    let s = Step::Db;
    if layout.services_on_debian() {
        // The jail's own server, from its release: nothing is installed on the host.
        if host.db.bin.is_none() {
            blocked.push(Blocker {
                step: s,
                problem: "the db jail's release has no PostgreSQL server (no /usr/lib/postgresql/N/bin/postgres in the jail or the built release)".into(),
                fix: "`warden release build debian`, then `warden setup --backend linux`".into(),
            });
        }
        return host.db.bin.clone();
    }
    match (&host.db.bin, &host.db.candidate_bin) {
        (Some(b), _) => Some(b.clone()),
        (None, Some(c)) if !options.no_install => {
            out.push(
                Action::run(
                    s,
                    format!("install {PACKAGE} (the PostgreSQL server the db jail runs, from the host's /usr)"),
                    &[&APT_INSTALL[..], &[PACKAGE]].concat(),
                )
                .verified_by(&["test", "-x", &format!("{c}/postgres")]),
            );
            Some(c.clone())
        }
        _ => {
            blocked.push(Blocker {
                step: s,
                problem: format!(
                    "the PostgreSQL server is not installed on this host (no /usr/lib/postgresql/N/bin/postgres){}",
                    if options.no_install { ", and --no-install was given" } else { ", and apt-cache knows no postgresql package" }
                ),
                fix: format!("apt-get install --no-install-recommends {PACKAGE}"),
            });
            None
        }
    }
}

/// The postgres account and the initialised cluster in the jail.
fn cluster(
    host: &LinuxHost,
    state_dir: &str,
    exe: &str,
    jail: &str,
    bin: &str,
    out: &mut Vec<Action>,
) {
    let s = Step::Db;
    let d = &host.db;
    if !d.user {
        out.push(Action::run(
            s,
            format!("create the postgres account in {jail}"),
            &in_jail(
                exe,
                state_dir,
                jail,
                &[
                    "useradd",
                    "--system",
                    "--user-group",
                    "--home-dir",
                    HOME,
                    "--no-create-home",
                    "--shell",
                    "/bin/sh",
                    "postgres",
                ],
            ),
        ));
    }
    if !d.initialised {
        out.push(Action::run(
            s,
            format!("create {HOME} for postgres in {jail}"),
            &in_jail(
                exe,
                state_dir,
                jail,
                &[
                    "install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0700", HOME,
                ],
            ),
        ));
        let initdb = format!("{bin}/initdb");
        out.push(
            Action::run(
                s,
                format!("initialise the cluster {DATA} in {jail} (UTF-8, scram-sha-256)"),
                &as_postgres(
                    exe,
                    state_dir,
                    jail,
                    &[
                        &initdb,
                        "-D",
                        DATA,
                        "-U",
                        "postgres",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                        "--auth-local=peer",
                        "--auth-host=scram-sha-256",
                    ],
                ),
            )
            .verified_by(&[
                "test",
                "-f",
                &host_path(state_dir, jail, &format!("{DATA}/PG_VERSION")),
            ]),
        );
    }
}

/// The cluster's config files (listen addresses, pg_hba); whether any changed.
fn config(
    layout: &Layout,
    host: &LinuxHost,
    state_dir: &str,
    svc: &Service,
    out: &mut Vec<Action>,
) -> bool {
    let s = Step::Db;
    let jail = svc.jail.as_str();
    let mut changed = false;
    for (path, content) in config_files(layout, state_dir, jail) {
        if host.files.get(&path) != Some(&content) {
            changed = true;
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            out.push(Action::file(
                s,
                format!("write {name}: listen on {} and loopback, scram-sha-256 from git, cms and the gateway only", svc.addr),
                &path,
                "0644",
                content,
            ));
        }
    }
    changed
}

/// PostgreSQL started, or restarted when its config changed.
fn start(
    host: &LinuxHost,
    state_dir: &str,
    exe: &str,
    svc: &Service,
    bin: &str,
    changed: bool,
    out: &mut Vec<Action>,
) {
    let s = Step::Db;
    let jail = svc.jail.as_str();
    let pg_ctl = format!("{bin}/pg_ctl");
    if !host.db.running {
        out.push(Action::run(
            s,
            format!(
                "start PostgreSQL in {jail} on {}:{}",
                svc.addr,
                crate::layout::DB_PORT
            ),
            &as_postgres(
                exe,
                state_dir,
                jail,
                &[&pg_ctl, "start", "-w", "-t", "60", "-D", DATA, "-l", LOG],
            ),
        ));
    } else if !changed && !host.db.accepting {
        // A start cut short (its pg_ctl killed) leaves a server that pg_ctl calls running while it still
        // starts or recovers: psql would be refused until it is ready.
        out.push(Action::run(
            s,
            format!(
                "wait (at most {} s) until PostgreSQL in {jail} accepts connections: it runs but is still starting or recovering",
                READY_TIMEOUT.as_secs()
            ),
            &wait_ready(bin, exe, state_dir, jail),
        ));
    } else if changed {
        out.push(Action::run(
            s,
            format!("restart PostgreSQL in {jail} to load the new config"),
            &as_postgres(
                exe,
                state_dir,
                jail,
                &[
                    &pg_ctl, "restart", "-w", "-t", "60", "-m", "fast", "-D", DATA, "-l", LOG,
                ],
            ),
        ));
    }
}

/// Makes `host` look like a host whose db step is done (for other planners' tests).
#[cfg(test)]
pub fn converge(layout: &Layout, state_dir: &str, host: &mut LinuxHost) {
    let roles: std::collections::BTreeSet<String> = db::roles(layout).into_iter().collect();
    host.db = crate::observed::LinuxDb {
        bin: Some("/usr/lib/postgresql/15/bin".into()),
        candidate_bin: None,
        user: true,
        initialised: true,
        running: true,
        accepting: true,
        synced: Some(db::synced_content(&db::roles(layout))),
        roles: roles.clone(),
        databases: roles.clone(),
        passwords: roles,
    };
    if let Some(svc) = layout.service(Role::Db) {
        for (path, content) in config_files(layout, state_dir, &svc.jail) {
            host.files.insert(path, content);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::observed::LinuxDb;

    #[test]
    fn on_the_debian_release_the_jails_own_server_runs_and_nothing_is_installed() {
        let layout = Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap();
        assert!(layout.services_on_debian());
        let run = |host: &LinuxHost| {
            let mut p = crate::Plan::default();
            plan(
                &layout,
                host,
                "/s",
                "warden",
                &PlanOptions::default(),
                &mut p,
            );
            p
        };
        let mut host = LinuxHost::default();
        let p = run(&host);
        assert!(p.actions.is_empty());
        assert!(
            p.blocked_text().contains("warden release build debian"),
            "{}",
            p.blocked_text()
        );
        host.db.bin = Some("/usr/lib/postgresql/15/bin".into());
        host.db.user = true;
        let p = run(&host);
        let text = p.to_text();
        assert!(
            !text.contains("apt-get") && !text.contains("useradd"),
            "{text}"
        );
        assert!(
            text.contains("/usr/lib/postgresql/15/bin/initdb -D /var/lib/postgresql/data"),
            "{text}"
        );
    }

    #[test]
    fn fresh_then_converged() {
        let mut layout = Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap();
        layout.service_release = "host".into();
        let layout = layout;
        let mut host = LinuxHost {
            db: LinuxDb {
                candidate_bin: Some("/usr/lib/postgresql/15/bin".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let run = |host: &LinuxHost| {
            let mut p = crate::Plan::default();
            plan(
                &layout,
                host,
                "/var/lib/warden",
                "warden",
                &PlanOptions::default(),
                &mut p,
            );
            (p.actions, p.blocked)
        };
        let (first, _) = run(&host);
        let text = crate::Plan {
            actions: first.clone(),
            ..Default::default()
        }
        .to_text();
        assert!(
            text.contains("apt-get install -y -q --no-install-recommends postgresql"),
            "{text}"
        );
        assert!(text.contains("$ warden --state-dir /var/lib/warden db passwords system_ops system_brain system_skills system_git system_web strapi_cms\n"), "{text}");
        assert!(text.contains("setpriv --reuid=postgres --regid=postgres --init-groups /usr/lib/postgresql/15/bin/initdb -D /var/lib/postgresql/data"), "{text}");
        assert!(text.contains("db sync --roles system_ops,system_brain,system_skills,system_git,system_web,strapi_cms -- warden --state-dir /var/lib/warden jail exec --root clawdiedb -- setpriv"), "{text}");
        assert_eq!(first.len(), 9, "{text}");
        host.db = LinuxDb {
            bin: Some("/usr/lib/postgresql/15/bin".into()),
            user: true,
            initialised: true,
            running: true,
            accepting: true,
            roles: db::roles(&layout).into_iter().collect(),
            databases: db::roles(&layout).into_iter().collect(),
            passwords: db::roles(&layout).into_iter().collect(),
            synced: Some(db::synced_content(&db::roles(&layout))),
            candidate_bin: None,
        };
        for a in &first {
            if let crate::Op::File(f) = &a.op {
                host.files.insert(f.path.clone(), f.content.clone());
            }
        }
        assert!(run(&host).0.is_empty());
        // Running but still starting (its start was cut short): wait for it, then sync (the roles could not
        // be read).
        host.db.accepting = false;
        host.db.roles.clear();
        let waited = run(&host).0;
        let text = crate::Plan {
            actions: waited.clone(),
            ..Default::default()
        }
        .to_text();
        assert_eq!(waited.len(), 2, "{text}");
        assert!(text.contains("$ warden --state-dir /var/lib/warden db wait --timeout 60 --log /var/lib/postgresql/server.log -- warden --state-dir /var/lib/warden jail exec --root clawdiedb -- setpriv --reuid=postgres --regid=postgres --init-groups /usr/lib/postgresql/15/bin/pg_isready -h /tmp -d postgres -t 5\n"), "{text}");
        assert!(text.contains("db sync --roles"), "{text}");
        // After a jail restart: start, then sync again (the roles cannot be read while it is down).
        host.db.running = false;
        let again: Vec<String> = run(&host).0.iter().map(|a| a.summary.clone()).collect();
        assert_eq!(again.len(), 2, "{again:?}");
        host.db.bin = None;
        host.db.candidate_bin = None;
        let (none, blocked) = run(&host);
        assert!(none.is_empty() && blocked.len() == 1);
    }
}
