//! Linux jail snapshots through the real `warden` binary inside a test network namespace: setup (host, jails, db,
//! git), a table and a row as a role, `warden snapshot DB before`, later changes, `warden rollback DB before`
//! brings the databases back as they were (PostgreSQL started again, doctor `db.*` ok); `warden snapshots` lists
//! with time and size; unknown jails, snapshots and bad tags exit 2 naming the fix; a rollback killed at several
//! points (its whole process group, SIGKILL) leaves the old data or the new, never a mix; the git jail's
//! repositories come back with its snapshot, and `snapshots GIT --delete TAG` deletes one. Needs root and the host's PostgreSQL, nginx, fcgiwrap and git.
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::linux_host::LinuxHost;
use common::text;

/// The rows of table `kept`, in order, as `a,b,…` (or psql's error).
fn kept(h: &LinuxHost, url: &str) -> String {
    let o = h.psql(
        url,
        "select coalesce(string_agg(x::text, ',' order by x), '') from kept",
    );
    if o.status.success() {
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    } else {
        format!("error: {}", text(&o))
    }
}

/// Whether table `later` exists.
fn later_exists(h: &LinuxHost, url: &str) -> bool {
    let o = h.psql(url, "select to_regclass('later') is not null");
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim() == "t"
}

fn assert_db_doctor_ok(h: &LinuxHost) {
    let checks = h.doctor_checks("db.");
    assert!(
        !checks.is_empty() && checks.iter().all(|c| c["status"] == "ok"),
        "{checks:#?}"
    );
}

/// Names of the files and directories in the db jail's directory that a rollback leaves (`.rollback.*`).
fn rollback_leftovers(h: &LinuxHost, db: &str) -> Vec<String> {
    std::fs::read_dir(h.dir.path().join("jails").join(db))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".rollback"))
        .collect()
}

#[test]
fn rollback_of_the_db_jail_brings_back_its_databases() {
    common::ensure_worker_account();
    let h = LinuxHost::new("snapshot", "wsnap", 's');
    h.setup_steps(&["host", "jails", "db", "git"]);
    let (db, git) = (h.jail("db"), h.jail("git"));
    let o = h.warden(&["db", "url", "system_ops"]);
    assert!(o.status.success(), "{}", text(&o));
    let url = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = h.psql(
        &url,
        "create table kept (x int); insert into kept values (42)",
    );
    assert!(o.status.success(), "{}", text(&o));

    // The snapshot of the running db jail: stopped, copied, started again with PostgreSQL.
    let t0 = Instant::now();
    let o = h.warden(&["snapshot", &db, "before"]);
    let snapshot_s = t0.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "before");
    assert_eq!(kept(&h, &url), "42");
    // The jail stop gave PostgreSQL its fast shutdown (checkpoint done): the copy holds no postmaster.pid and
    // its log ends with the clean shutdown.
    let copied_log = std::fs::read_to_string(h.dir.path().join(format!(
        "snapshots/{db}/before/layer/var/lib/postgresql/server.log"
    )))
    .unwrap();
    assert!(
        copied_log.contains("received fast shutdown request")
            && copied_log
                .lines()
                .last()
                .is_some_and(|l| l.contains("database system is shut down")),
        "{copied_log}"
    );
    let pid = h.dir.path().join(format!(
        "snapshots/{db}/before/layer/var/lib/postgresql/data/postmaster.pid"
    ));
    assert!(
        !pid.exists(),
        "the snapshot holds a server killed mid-run: {pid:?}"
    );

    // Later changes: another row, another table.
    let o = h.psql(
        &url,
        "insert into kept values (43); create table later (y int)",
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(later_exists(&h, &url));

    // Listed with its time and size, as text and JSON.
    let list = h.ok(&["snapshots", &db]);
    let row = list
        .lines()
        .find(|l| l.starts_with("before "))
        .unwrap_or_else(|| panic!("{list}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{row}");
    assert!(fields[1].starts_with("20") && fields[2].len() == 8, "{row}");
    let bytes: u64 = fields[3].parse().unwrap_or_else(|_| panic!("{row}"));
    // A PostgreSQL cluster is tens of megabytes.
    assert!(bytes > 10_000_000, "{row}");
    let o = h.warden(&["snapshots", &db, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("snapshots --json");
    assert_eq!(v[0]["tag"], "before", "{v}");
    assert_eq!(v[0]["layer"], "root", "{v}");
    assert_eq!(v[0]["bytes"].as_u64(), Some(bytes), "{v}");

    // Bad input exits 2 and names the fix; nothing is changed.
    let refused = |args: &[&str], want: &str| {
        let o = h.warden(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    };
    refused(&["snapshot", "nosuch", "x"], "warden jail list");
    refused(&["snapshots", "nosuch"], "warden jail list");
    refused(&["rollback", "nosuch", "before"], "warden jail list");
    refused(
        &["rollback", &db, "missing"],
        &format!("`warden snapshots {db}`"),
    );
    refused(
        &["snapshot", &db, "before"],
        &format!("`warden snapshots {db}`"),
    );
    refused(&["snapshot", &db, "a b"], "invalid snapshot tag");
    refused(&["snapshot", &db, "../x"], "invalid snapshot tag");
    assert!(later_exists(&h, &url), "a refused command changed the data");

    // The rollback: the row and the table of after the snapshot are gone, the doctor is happy.
    let t0 = Instant::now();
    let o = h.warden(&["rollback", &db, "before"]);
    let rollback = t0.elapsed();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(kept(&h, &url), "42");
    assert!(!later_exists(&h, &url));
    assert_db_doctor_ok(&h);
    assert!(rollback_leftovers(&h, &db).is_empty());
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "db"]);
    assert!(plan.contains("nothing to do"), "{plan}");

    crash_loop(&h, &db, &url, rollback);
    git_repositories_come_back(&h, &git);
    eprintln!(
        "snapshot of the running db jail {snapshot_s:.1} s, rollback {:.1} s",
        rollback.as_secs_f64()
    );
}

/// When a rollback gets killed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// As soon as the staged copy appears (the copy is under way).
    Staging,
    /// As soon as the swap is done (the previous layer waits to be removed).
    Swapped,
    /// After this long.
    After(Duration),
    /// Once the swap is finished and the server's postmaster.pid says it is starting (the setup step's
    /// `pg_ctl start -w` waits on it).
    Starting,
}

/// The status line of the db jail's postmaster.pid (`starting`, `ready`, `stopping`), if it has one.
fn postmaster_status(h: &LinuxHost, db: &str) -> Option<String> {
    let pid = h
        .dir
        .path()
        .join("jails")
        .join(db)
        .join("root/var/lib/postgresql/data/postmaster.pid");
    let text = std::fs::read_to_string(pid).ok()?;
    text.lines().nth(7).map(|l| l.trim().to_string())
}

/// The db jail's directory holds `name`.
fn has(h: &LinuxHost, db: &str, name: &str) -> bool {
    std::fs::symlink_metadata(h.dir.path().join("jails").join(db).join(name)).is_ok()
}

/// `warden rollback DB before` killed (its whole process group, SIGKILL: cp and psql die with warden, as in a
/// crash of the machine) at each of `kills`. What the directory shows after the kill says which data the next
/// start must find: the snapshot's (`42`) once the swap is done, before it the rows of before the rollback
/// (`42,99`); after a time-based kill that found neither directory, either.
fn crash_loop(h: &LinuxHost, db: &str, url: &str, rollback: Duration) {
    let o = h.psql(url, "insert into kept values (99)");
    assert!(o.status.success(), "{}", text(&o));
    let mut seen = Vec::new();
    // Later, the setup step starts PostgreSQL again: a start cut short leaves a server that pg_ctl calls running
    // while it still starts or recovers (refusing psql), which the next setup waits for before its role sync.
    let kills = [
        Kill::Staging,
        Kill::Swapped,
        Kill::After(rollback / 3),
        Kill::After(rollback * 2 / 3),
        Kill::Starting,
    ];
    for kill in kills {
        let mut child = h
            .command(&["rollback", db, "before"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let mut swapped = false;
        let finished = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            let now = match kill {
                Kill::Staging => has(h, db, ".rollback.new"),
                // Checked in this order, both present means the second rename of the swap happened.
                Kill::Swapped => has(h, db, ".rollback.old") && has(h, db, "root"),
                Kill::After(d) => t0.elapsed() >= d,
                Kill::Starting => {
                    swapped |= has(h, db, ".rollback.old");
                    swapped
                        && !has(h, db, ".rollback.old")
                        && postmaster_status(h, db).as_deref() == Some("starting")
                }
            };
            if now {
                break false;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(300),
                "{kill:?} never came"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
        let (old, new, root) = (
            has(h, db, ".rollback.old"),
            has(h, db, ".rollback.new"),
            has(h, db, "root"),
        );
        let want: &[&str] = match (finished, old, root, new) {
            (true, ..) | (false, true, true, _) => &["42"],
            (false, true, false, _) | (false, false, _, true) => &["42,99"],
            (false, false, _, false) => &["42", "42,99"],
        };
        if let Kill::Staging | Kill::Swapped = kill {
            assert!(!finished, "the rollback finished before {kill:?} was seen");
        }
        let status = postmaster_status(h, db);
        eprintln!("killed at {kill:?}: previous layer {old}, layer {root}, staged copy {new}, finished {finished}, postmaster.pid {status:?}");
        // The operator's recovery: start what is not running (the jails step starts the jail, which finishes or
        // undoes the interrupted rollback), then the server.
        let said = h.setup_steps(&["jails", "db"]);
        eprintln!("setup after the kill at {kill:?}: {said}");
        let rows = kept(h, url);
        assert!(
            want.contains(&rows.as_str()),
            "after a rollback killed at {kill:?} (previous layer {old}, layer {root}, staged copy {new}): {rows}, want {want:?}"
        );
        // The old rows again for the next round when the rollback got through.
        if rows == "42" {
            let o = h.psql(url, "insert into kept values (99)");
            assert!(o.status.success(), "{}", text(&o));
        }
        seen.push(format!("{kill:?}: {rows}"));
    }
    eprintln!("rollbacks killed: {seen:?}");
    // Whatever was left beside the layer goes with the next stop and start.
    h.ok(&["jail", "stop", db]);
    h.ok(&["jail", "start", db]);
    assert!(
        rollback_leftovers(h, db).is_empty(),
        "{:?}",
        rollback_leftovers(h, db)
    );
    h.setup_steps(&["db"]);
    assert_db_doctor_ok(h);
}

/// The git jail's repositories live in its upper directory: a snapshot of the git jail brings them back.
fn git_repositories_come_back(h: &LinuxHost, git: &str) {
    h.ok(&["git", "create", "kept"]);
    h.ok(&["snapshot", git, "repos"]);
    h.ok(&["git", "delete", "kept"]);
    h.ok(&["git", "create", "later"]);
    h.ok(&["rollback", git]);
    let list = h.ok(&["git", "list"]);
    assert!(list.contains("kept") && !list.contains("later"), "{list}");
    let list = h.ok(&["snapshots", git]);
    assert!(list.contains("repos"), "{list}");
    // Deleted: gone from the list and the disk; again (or on no jail) it is bad input naming the listing.
    h.ok(&["snapshots", git, "--delete", "repos"]);
    let list = h.ok(&["snapshots", git]);
    assert!(!list.contains("repos"), "{list}");
    let left: Vec<_> = std::fs::read_dir(h.dir.path().join("snapshots").join(git))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    for (args, want) in [
        (
            vec!["snapshots", git, "--delete", "repos"],
            format!("`warden snapshots {git}`"),
        ),
        (
            vec!["snapshots", "nosuch", "--delete", "repos"],
            "`warden snapshots JAIL`".to_string(),
        ),
    ] {
        let o = h.warden(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(&want), "{args:?}: {}", text(&o));
    }
}
