//! The db jail's PostgreSQL on Linux, through the real `warden` binary inside a test network namespace:
//! `warden setup` (steps host, jails, db), then from inside the cms jail `psql` reaches each database as its
//! role (and no other database); `warden db url` works from the host side; a VNET worker cannot reach
//! db:5432; the passwords are mode 0600 and appear in no output and no journal; data survives a restart of
//! the db jail; a second plan is empty. Needs root and the host's PostgreSQL server (`scripts/test`
//! installs it).
#![cfg(target_os = "linux")]

mod common;

use std::time::Instant;

use common::linux_host::{psql_bin as psql, LinuxHost};
use common::text;

use common::DB_ROLES as ROLES;

#[test]
fn postgres_serves_each_role_its_database_and_keeps_its_data() {
    common::ensure_worker_account();
    let h = LinuxHost::new("db", "wdb", 'd');
    let t0 = Instant::now();
    let said = h.setup_steps(&["host", "jails", "db"]);
    let setup_s = t0.elapsed().as_secs_f64();
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "db"]);
    assert!(plan.contains("nothing to do"), "{plan}");
    // The db jail is thick on the debian release: its own copy of the release, whose server it runs.
    let db_root = h.dir.path().join(format!("jails/{}/root", h.jail("db")));
    assert!(db_root.join("usr/lib/postgresql/15/bin/postgres").is_file());
    assert!(
        !said.contains("apt-get"),
        "setup installed on the host: {said}"
    );
    let jails: serde_json::Value =
        serde_json::from_slice(&h.warden(&["jail", "list", "--json"]).stdout).unwrap();
    for j in jails
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["name"] != h.jail("ai"))
    {
        let want = if j["name"] == h.jail("db") {
            "Thick"
        } else {
            "Thin"
        };
        assert_eq!(
            (j["release"].as_str(), j["shape"].as_str()),
            (Some("debian"), Some(want)),
            "{j}"
        );
    }

    // Passwords: 0600 files in a 0700 directory, in no output and no journal.
    let passwords = h.secret_files("db", &ROLES);
    let mut journal = Vec::new();
    for e in std::fs::read_dir(h.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
    {
        if e.path().is_file() {
            journal.extend(std::fs::read(e.path()).unwrap());
        }
    }
    let journal = String::from_utf8_lossy(&journal);
    for pw in &passwords {
        assert!(!said.contains(pw.as_str()), "a password in setup's output");
        assert!(
            !journal.contains(pw.as_str()),
            "a password in the state dir's files"
        );
    }

    // From the cms jail, each role reaches its own database, and only that.
    let cms = h.jail("cms");
    for (role, pw) in ROLES.iter().zip(&passwords) {
        let url = format!("postgresql://{role}:{pw}@10.0.1.5:5432/{role}");
        let out = h.ok(&[
            "jail",
            "exec",
            &cms,
            "--",
            &psql(),
            &url,
            "-XAtc",
            "select current_user || ' ' || current_database() || ' ' || (select pg_get_userbyid(datdba) from pg_database where datname = current_database())",
        ]);
        assert!(out.contains(&format!("{role} {role} {role}")), "{out}");
    }
    let other = format!(
        "postgresql://strapi_cms:{}@10.0.1.5:5432/system_ops",
        passwords[5]
    );
    let o = h.warden(&[
        "jail",
        "exec",
        &cms,
        "--",
        &psql(),
        &other,
        "-XAtc",
        "select 1",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("no pg_hba.conf entry"),
        "{}",
        text(&o)
    );

    // `warden db url` from the host side; an unknown name is refused.
    let o = h.warden(&["db", "url", "system_ops"]);
    assert!(o.status.success(), "{}", text(&o));
    let url = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(
        url,
        format!(
            "postgresql://system_ops:{}@10.0.1.5:5432/system_ops",
            passwords[0]
        )
    );
    let o = h.psql(
        &url,
        "create table kept (x int); insert into kept values (42)",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = h.warden(&["db", "url", "nosuch"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // The doctor: SELECT 1 in each database as its role passes; a dropped path and a stopped server fail
    // with their fixes.
    let db_checks = h.doctor_checks("db.");
    assert_eq!(db_checks.len(), ROLES.len(), "{db_checks:#?}");
    assert!(
        db_checks.iter().all(|c| c["status"] == "ok"),
        "{db_checks:#?}"
    );
    // Each from the jail that uses it: Forgejo's role from the git jail, the others from the cms jail.
    let git = h.jail("git");
    for c in &db_checks {
        let from = match c["name"].as_str() {
            Some("db.system_git") => format!("from {git} (10.0.1.2) → 10.0.1.5:5432"),
            _ => format!("from {cms} (10.0.1.3) → 10.0.1.5:5432"),
        };
        assert!(c["seen"].as_str().unwrap().contains(&from), "{c}");
    }
    let table = text(&h.warden(&["doctor"]));
    for pw in &passwords {
        assert!(!format!("{db_checks:?}").contains(pw.as_str()));
        assert!(
            !table.contains(pw.as_str()),
            "a password in the doctor's table"
        );
    }
    // A bridge filter that drops cms → db:5432 fails the cms's roles with the reload of Warden's ruleset;
    // the git jail's path still passes. The reload fixes it.
    let drop_rule = "ip saddr 10.0.1.3 ip daddr 10.0.1.5 tcp dport 5432 drop";
    let mut insert = vec!["nft", "insert", "rule", "bridge", "warden", "forward"];
    insert.extend(drop_rule.split(' '));
    h.ns.exec_ok(&insert);
    let dropped = h.doctor_checks("db.");
    let rules = format!("{}/nftables.conf", h.state());
    for c in &dropped {
        if c["name"] == "db.system_git" {
            assert_eq!(c["status"], "ok", "{c}");
            continue;
        }
        assert_eq!(c["status"], "fail", "{c}");
        assert!(
            c["seen"].as_str().unwrap().contains("timeout expired")
                && c["remedy"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("nft -f {rules} ")),
            "{c}"
        );
    }
    h.ns.exec_ok(&["nft", "-f", &rules]);
    let fixed = h.doctor_checks("db.");
    assert!(fixed.iter().all(|c| c["status"] == "ok"), "{fixed:#?}");
    // A password the server no longer has (the role changed its own): the remedy removes the sync marker and
    // runs the db step, which sets the file's password again.
    let o = h.psql(&url, "alter role system_ops password 'changed-elsewhere'");
    assert!(o.status.success(), "{}", text(&o));
    let wrong = h.doctor_checks("db.system_ops");
    let synced = format!("{}/db/synced", h.state());
    assert!(
        wrong.len() == 1
            && wrong[0]["status"] == "fail"
            && wrong[0]["seen"]
                .as_str()
                .unwrap()
                .contains("password authentication failed")
            && wrong[0]["remedy"]
                .as_str()
                .unwrap()
                .starts_with(&format!("rm {synced} && ")),
        "{wrong:#?}"
    );
    std::fs::remove_file(&synced).unwrap();
    h.ok(&["setup", "--backend", "linux", "--step", "db"]);
    let fixed = h.doctor_checks("db.");
    assert!(fixed.iter().all(|c| c["status"] == "ok"), "{fixed:#?}");

    // A VNET worker cannot reach db:5432 (pg_isready: 2 = no answer).
    let isready = psql().replace("/psql", "/pg_isready");
    let o = h.warden(&[
        "run",
        "--network",
        "vnet",
        "--",
        &isready,
        "-h",
        "10.0.1.5",
        "-p",
        "5432",
        "-t",
        "3",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a worker reached db: {}",
        text(&o)
    );

    // The data survives a restart of the db jail; setup starts the server again and plans nothing after. The
    // stop gives PostgreSQL its fast shutdown (the init's SIGINT, then up to 60 s for the checkpoint), with a
    // client connected: not only the SIGTERM every process gets with a 5 s grace before SIGKILL.
    let db = h.jail("db");
    let client = h.hold_connection(&url);
    h.ok(&["jail", "stop", &db]);
    let data = db_root.join("var/lib/postgresql/data");
    assert!(
        !data.join("postmaster.pid").exists(),
        "the jail stop left {}/postmaster.pid: PostgreSQL was killed",
        data.display()
    );
    let log = std::fs::read_to_string(db_root.join("var/lib/postgresql/server.log")).unwrap();
    let last = log.lines().last().unwrap_or_default();
    let request = log.lines().rev().find(|l| l.contains("shutdown request"));
    assert!(
        request.is_some_and(|l| l.contains("received fast shutdown request"))
            && last.contains("database system is shut down"),
        "PostgreSQL did not get a clean fast shutdown; its log ends: {}",
        log.lines().rev().take(8).collect::<Vec<_>>().join("\n")
    );
    client.finish();
    h.ok(&["jail", "start", &db]);
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "db"]);
    assert!(plan.contains("start PostgreSQL"), "{plan}");
    let down = h.doctor_checks("db.");
    assert!(
        down.iter().all(|c| c["status"] == "fail"
            && c["seen"]
                .as_str()
                .unwrap_or_default()
                .contains("Connection refused")
            && c["remedy"]
                .as_str()
                .unwrap_or_default()
                .contains("setup --backend linux --step db")),
        "{down:#?}"
    );
    h.ok(&["setup", "--backend", "linux", "--step", "db"]);
    let o = h.psql(&url, "select x from kept");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "42",
        "{}",
        text(&o)
    );
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "db"]);
    assert!(plan.contains("nothing to do"), "{plan}");
    eprintln!("setup (host, jails, db) {setup_s:.1} s");
}
