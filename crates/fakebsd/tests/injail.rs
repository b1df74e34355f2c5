//! In-jail commands (`jexec …`): every built-in with its failure modes, the db step end to end, and that
//! nothing touches this machine's own paths.

mod common;

use std::path::PathBuf;

use common::{Host, Out, CONF};

/// `install -d -o git -g git -m 0750 DIR`, as the git step creates its directories.
fn install_git_dir(dir: &str) -> [&str; 9] {
    ["install", "-d", "-o", "git", "-g", "git", "-m", "0750", dir]
}

impl Host {
    /// A host after the seeds' host steps and `bastille bootstrap`, with git (thin) and db (thick).
    fn with_jails() -> Host {
        let h = Host::new();
        h.write_conf(CONF);
        h.bridge();
        h.ok("bastille", &["bootstrap", "-p", "15.0-RELEASE"]);
        h.create_git();
        h.create_db();
        h
    }

    /// `jexec -l -U USER JAIL argv…`
    fn jx(&self, user: &str, jail: &str, argv: &[&str]) -> Out {
        let mut a = vec!["-l", "-U", user, jail];
        a.extend_from_slice(argv);
        self.run("jexec", &a)
    }

    fn jok(&self, user: &str, jail: &str, argv: &[&str]) -> Out {
        let o = self.jx(user, jail, argv);
        assert_eq!(
            o.code, 0,
            "jexec {user} {jail} {argv:?}\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        );
        o
    }

    fn jail_path(&self, jail: &str, p: &str) -> PathBuf {
        self.path(&format!(
            "/usr/local/bastille/jails/{jail}/root/{}",
            p.trim_start_matches('/')
        ))
    }

    /// `pkg install PKG` as root in the jail, consenting through ASSUME_ALWAYS_YES.
    fn pkg_install(&self, jail: &str, pkg: &str) -> Out {
        self.jok(
            "root",
            jail,
            &["env", "ASSUME_ALWAYS_YES=yes", "pkg", "install", pkg],
        )
    }
}

/// The observer's queries for the db jail (warden-freebsd observe.rs), as (pkg, enable, running, data, dbs).
fn observe_db(h: &Host) -> (bool, Option<String>, bool, bool, Vec<String>) {
    let pkg = h
        .jx(
            "root",
            "clawdiedb",
            &["pkg", "info", "-e", "postgresql18-server"],
        )
        .code
        == 0;
    let rc = h.jx("root", "clawdiedb", &["sysrc", "-n", "postgresql_enable"]);
    let enable = (rc.code == 0).then(|| rc.stdout.trim_end().to_string());
    let st = h.jx("root", "clawdiedb", &["service", "postgresql", "onestatus"]);
    let running = st.code == 0 && st.stdout.contains("server is running");
    let data = h
        .jx(
            "root",
            "clawdiedb",
            &["test", "-e", "/var/db/postgres/data18"],
        )
        .code
        == 0;
    let q = h.jx(
        "postgres",
        "clawdiedb",
        &["psql", "-Atc", "select datname from pg_database"],
    );
    let dbs = if q.code == 0 {
        q.stdout.lines().map(str::to_string).collect()
    } else {
        vec![]
    };
    (pkg, enable, running, data, dbs)
}

#[test]
fn db_step_end_to_end_then_observer_sees_it() {
    let h = Host::with_jails();
    // Fresh thick jail: nothing installed, base users only.
    assert_eq!(
        observe_db(&h),
        (false, None, false, false, vec![]),
        "fresh jail"
    );
    let o = h.jx("postgres", "clawdiedb", &["true"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "jexec: getpwnam: postgres: no such user\n")
    );

    // The planner's db step, in order.
    let o = h.pkg_install("clawdiedb", "postgresql18-server");
    assert!(o.stdout.contains("Bootstrapping pkg from"), "{}", o.stdout);
    assert!(
        o.stdout.contains("\tpostgresql18-server: 18.1 [FreeBSD]"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("Installing postgresql18-server-18.1..."));
    h.jok(
        "root",
        "clawdiedb",
        &["pkg", "info", "-e", "postgresql18-server"],
    );
    let o = h.jok("root", "clawdiedb", &["sysrc", "postgresql_enable=YES"]);
    assert_eq!(o.stdout, "postgresql_enable:  -> YES\n");
    let o = h.jok("root", "clawdiedb", &["service", "postgresql", "initdb"]);
    assert!(o
        .stdout
        .contains("creating directory /var/db/postgres/data18 ... ok"));
    assert!(o
        .stdout
        .contains("Success. You can now start the database server using:"));
    let o = h.jok("root", "clawdiedb", &["service", "postgresql", "start"]);
    assert_eq!(o.stdout, "");
    for db in ["system_ops", "clawdie"] {
        h.jok("postgres", "clawdiedb", &["createdb", db]);
    }

    // What the observer then reads.
    let (pkg, enable, running, data, dbs) = observe_db(&h);
    assert!(pkg && running && data);
    assert_eq!(enable.as_deref(), Some("YES"));
    assert_eq!(
        dbs,
        [
            "postgres",
            "template1",
            "template0",
            "system_ops",
            "clawdie"
        ]
    );
    let o = h.jx("root", "clawdiedb", &["service", "postgresql", "onestatus"]);
    assert!(
        o.stdout.starts_with("pg_ctl: server is running (PID: "),
        "{}",
        o.stdout
    );
    assert!(o
        .stdout
        .ends_with(")\n/usr/local/bin/postgres \"-D\" \"/var/db/postgres/data18\"\n"));
    assert_eq!(
        h.jok("root", "clawdiedb", &["id", "-u", "postgres"]).stdout,
        "770\n"
    );

    // The files are the jail's, under the fake root.
    assert!(h
        .jail_path("clawdiedb", "/var/db/postgres/data18/PG_VERSION")
        .is_file());

    // A restart of the jail: rc starts the enabled, initialised server again.
    h.ok("bastille", &["restart", "clawdiedb"]);
    assert!(observe_db(&h).2, "postgresql runs again after restart");
}

#[test]
fn git_step_never_touches_this_machine() {
    let h = Host::with_jails();
    let marker = format!("fakebsd-test-{}", std::process::id());
    let real = PathBuf::from(format!("/var/git/{marker}"));
    let o = h.jx(
        "root",
        "clawdiegit",
        &install_git_dir(&format!("/var/git/{marker}")),
    );
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (67, "install: unknown user git\n")
    );
    h.pkg_install("clawdiegit", "git");
    h.jok(
        "root",
        "clawdiegit",
        &[
            "pw", "useradd", "-n", "git", "-d", "/var/git", "-m", "-s", "/bin/sh",
        ],
    );
    assert_eq!(
        h.jok("root", "clawdiegit", &["id", "-u", "git"]).stdout,
        "1000\n"
    );
    let o = h.jok("root", "clawdiegit", &install_git_dir("/var/git/repos"));
    assert_eq!(o.stdout, "");
    h.jok(
        "root",
        "clawdiegit",
        &install_git_dir(&format!("/var/git/{marker}")),
    );
    assert!(!real.exists(), "the real host's /var/git was touched");
    let jailed = h.jail_path("clawdiegit", "/var/git/repos");
    assert!(jailed.is_dir());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&jailed).unwrap().permissions().mode() & 0o7777,
        0o750
    );
    let st = h.ok("fakebsd", &["state"]).stdout;
    assert!(
        st.contains("\"/usr/local/bastille/jails/clawdiegit/root/var/git/repos\": \"git:git\""),
        "{st}"
    );
    h.jok("root", "clawdiegit", &["test", "-d", "/var/git/repos"]);
    assert_eq!(
        h.jx("root", "clawdiegit", &["test", "-e", "/var/git/nope"])
            .code,
        1
    );
    // Thin jail: /usr/share is the release, read-only through nullfs.
    let o = h.jx("root", "clawdiegit", &["install", "-d", "/usr/share/x"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (71, "install: mkdir /usr/share/x: Read-only file system\n")
    );
    // No real program runs: unknown commands fail like execvp.
    let o = h.jx("root", "clawdiegit", &["touch", "/tmp/x"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "jexec: execvp: touch: No such file or directory\n")
    );
    let o = h.jx(
        "root",
        "clawdiegit",
        &["/usr/bin/chmod", "-R", "777", "/tmp"],
    );
    assert_eq!(o.code, 1);
    let o = h.jx("root", "clawdiegit", &["psql", "-l"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "jexec: execvp: psql: No such file or directory\n"),
        "no client package here"
    );
}

#[test]
fn pkg_prompts_errors_and_listing() {
    let h = Host::with_jails();
    // Not bootstrapped, no consent, stdin not a tty.
    let o = h.jx("root", "clawdiegit", &["pkg", "info", "-e", "git"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("Please set ASSUME_ALWAYS_YES=yes"),
        "{}",
        o.stderr
    );
    assert_eq!(o.stdout, "");
    // -y consents to the bootstrap and the install.
    let o = h.jok("root", "clawdiegit", &["pkg", "install", "-y", "nginx"]);
    assert!(
        o.stdout.contains("\tpcre2: 10.45 [FreeBSD]\n"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("Number of packages to be installed: 2"));
    // Bootstrapped now: without -y the install prompt reads "no" from /dev/null.
    let o = h.jx("root", "clawdiegit", &["pkg", "install", "git"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stdout.contains("\nProceed with this action? [y/N]: "),
        "{}",
        o.stdout
    );
    assert_eq!(
        h.jx("root", "clawdiegit", &["pkg", "info", "-e", "git"])
            .code,
        1
    );
    // Already installed.
    let o = h.jok("root", "clawdiegit", &["pkg", "install", "-y", "nginx"]);
    assert!(o
        .stdout
        .ends_with("The most recent versions of packages are already installed\n"));
    // Options through fakebsd's one parser: long and clustered flags, names between options (getopt_long
    // permutes), a bad option named with the command's usage.
    let o = h.jok(
        "root",
        "clawdiegit",
        &["pkg", "install", "nginx", "--yes", "-qU"],
    );
    assert_eq!(o.stdout, "");
    let o = h.jx("root", "clawdiegit", &["pkg", "install", "-yz", "nginx"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .starts_with("pkg: illegal option -- z\nUsage: pkg install [-AfInFqRUy]"),
        "{}",
        o.stderr
    );
    let o = h.jx("root", "clawdiegit", &["pkg", "--nope", "info"]);
    assert_eq!(o.code, 1);
    assert!(o
        .stderr
        .starts_with("pkg: unrecognized option `--nope'\nUsage: pkg [-v]"));
    // Unknown package.
    let o = h.jx("root", "clawdiegit", &["pkg", "install", "-y", "nosuchpkg"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains(
        "pkg: No packages available to install matching 'nosuchpkg' have been found in the repositories"
    ));
    // Listing and details.
    let l = h.jok("root", "clawdiegit", &["pkg", "info"]).stdout;
    let names: Vec<&str> = l.lines().map(|x| x.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["nginx-1.28.0_3,3", "pcre2-10.45", "pkg-2.4.2"]);
    assert!(h
        .jok("root", "clawdiegit", &["pkg", "info", "nginx"])
        .stdout
        .contains("Name           : nginx\n"));
    let o = h.jx("root", "clawdiegit", &["pkg", "info", "git"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "pkg: No package(s) matching git\n")
    );
    // Packages are per jail.
    assert_eq!(
        h.jx(
            "root",
            "clawdiedb",
            &["env", "ASSUME_ALWAYS_YES=yes", "pkg", "info", "-e", "nginx"]
        )
        .code,
        1
    );
    // Non-root may not install.
    let o = h.jx("nobody", "clawdiegit", &["pkg", "install", "-y", "git"]);
    assert_eq!(o.code, 77);
}

#[test]
fn postgresql_service_and_client_failures() {
    let h = Host::with_jails();
    let o = h.jx("root", "clawdiedb", &["service", "postgresql", "start"]);
    assert_eq!(o.code, 1, "no package, no rc.d script");
    assert!(o
        .stderr
        .starts_with("postgresql does not exist in /etc/rc.d"));
    h.pkg_install("clawdiedb", "postgresql18-server");
    // rcvar not set: rc.subr refuses start and initdb (exit 0), one* bypasses it.
    let o = h.jok("root", "clawdiedb", &["service", "postgresql", "start"]);
    assert_eq!(o.stdout, "Cannot 'start' postgresql. Set postgresql_enable to YES in /etc/rc.conf or use 'onestart' instead of 'start'.\n");
    let o = h.jok("root", "clawdiedb", &["service", "postgresql", "initdb"]);
    assert!(o.stdout.starts_with("Cannot 'initdb' postgresql."));
    // onestart before initdb: pg_ctl fails.
    let o = h.jx("root", "clawdiedb", &["service", "postgresql", "onestart"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (
            1,
            "pg_ctl: directory \"/var/db/postgres/data18\" does not exist\n"
        )
    );
    let o = h.jx("root", "clawdiedb", &["service", "postgresql", "onestatus"]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (3, "pg_ctl: no server running\n")
    );
    let o = h.jx("postgres", "clawdiedb", &["createdb", "x"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.starts_with("createdb: error: connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: No such file or directory"));
    let o = h.jx("postgres", "clawdiedb", &["psql", "-Atc", "select 1"]);
    assert_eq!(o.code, 2);
    h.jok("root", "clawdiedb", &["service", "postgresql", "oneinitdb"]);
    let o = h.jx("root", "clawdiedb", &["service", "postgresql", "oneinitdb"]);
    assert_eq!(o.code, 1);
    assert!(o
        .stderr
        .contains("initdb: error: directory \"/var/db/postgres/data18\" exists but is not empty"));
    // onestart works without the rcvar.
    h.jok("root", "clawdiedb", &["service", "postgresql", "onestart"]);
    let o = h.jx("root", "clawdiedb", &["service", "postgresql", "onestart"]);
    assert_eq!(o.code, 1);
    assert!(o
        .stderr
        .contains("lock file \"postmaster.pid\" already exists"));
    // Only the postgres role exists.
    let o = h.jx("root", "clawdiedb", &["createdb", "x"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "createdb: error: connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: FATAL:  role \"root\" does not exist\n")
    );
    h.jok("postgres", "clawdiedb", &["createdb", "system_ops"]);
    let o = h.jx("postgres", "clawdiedb", &["createdb", "system_ops"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "createdb: error: database creation failed: ERROR:  database \"system_ops\" already exists\n")
    );
    let o = h.jok(
        "postgres",
        "clawdiedb",
        &["psql", "-c", "select datname from pg_database"],
    );
    assert_eq!(
        o.stdout,
        "  datname   \n------------\n postgres\n template1\n template0\n system_ops\n(4 rows)\n\n"
    );
    let o = h.jx(
        "postgres",
        "clawdiedb",
        &["psql", "-d", "nope", "-Atc", "select 1"],
    );
    assert_eq!(o.code, 2);
    assert!(o
        .stderr
        .ends_with("FATAL:  database \"nope\" does not exist\n"));
    h.jok("root", "clawdiedb", &["service", "postgresql", "onestop"]);
    let o = h.jx("root", "clawdiedb", &["service", "postgresql", "onestop"]);
    assert_eq!(o.code, 1);
    // Stopping the jail stops its processes.
    h.jok("root", "clawdiedb", &["service", "postgresql", "onestart"]);
    h.ok("bastille", &["stop", "clawdiedb"]);
    h.ok("bastille", &["start", "clawdiedb"]);
    let o = h.jx("root", "clawdiedb", &["service", "postgresql", "onestatus"]);
    assert_eq!(o.code, 3, "not enabled: rc does not start it again");
}

#[test]
fn nginx_service() {
    let h = Host::with_jails();
    h.pkg_install("clawdiegit", "nginx");
    let o = h.jok("root", "clawdiegit", &["service", "nginx", "start"]);
    assert!(o.stdout.starts_with("Cannot 'start' nginx."));
    h.jok("root", "clawdiegit", &["sysrc", "nginx_enable=YES"]);
    let o = h.jok("root", "clawdiegit", &["service", "nginx", "start"]);
    assert_eq!(
        o.stdout,
        "Performing sanity check on nginx configuration:\nStarting nginx.\n"
    );
    assert!(o.stderr.contains("test is successful"));
    let o = h.jok("root", "clawdiegit", &["service", "nginx", "onestatus"]);
    assert!(o.stdout.starts_with("nginx is running as pid "));
    // Host scope does not see the jail's service.
    assert_eq!(h.run("service", &["nginx", "onestatus"]).code, 1);
    h.jok(
        "root",
        "clawdiegit",
        &["test", "-f", "/usr/local/www/nginx/index.html"],
    );
}

#[test]
fn users_id_pw_and_small_tools() {
    let h = Host::with_jails();
    let g = "clawdiegit";
    assert_eq!(h.jok("root", g, &["id", "-u"]).stdout, "0\n");
    assert_eq!(
        h.jok("root", g, &["id"]).stdout,
        "uid=0(root) gid=0(wheel) groups=0(wheel),5(operator)\n"
    );
    assert_eq!(h.jok("root", g, &["id", "-u", "www"]).stdout, "80\n");
    let o = h.jx("root", g, &["id", "-u", "git"]);
    assert_eq!((o.code, o.stderr.as_str()), (1, "id: git: no such user\n"));
    let o = h.jx("root", g, &["pw", "usershow", "git"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (67, "pw: no such user `git'\n")
    );
    h.jok(
        "root",
        g,
        &[
            "pw", "useradd", "-n", "git", "-d", "/var/git", "-m", "-s", "/bin/sh",
        ],
    );
    assert_eq!(
        h.jok("root", g, &["pw", "usershow", "git"]).stdout,
        "git:*:1000:1000::0:0:User &:/var/git:/bin/sh\n"
    );
    let o = h.jx("root", g, &["pw", "useradd", "-n", "git"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (65, "pw: user 'git' already exists\n")
    );
    assert!(h.jail_path(g, "/var/git").is_dir());
    assert_eq!(h.jok("git", g, &["whoami"]).stdout, "git\n");
    assert_eq!(h.jok("git", g, &["id", "-un"]).stdout, "git\n");
    // Users are per jail.
    assert_eq!(h.jx("root", "clawdiedb", &["id", "git"]).code, 1);
    // test / [ / mkdir / echo / hostname / freebsd-version.
    h.jok("root", g, &["test", "-d", "/etc"]);
    h.jok("root", g, &["test", "-f", "/etc/rc.conf"]);
    assert_eq!(h.jx("root", g, &["test", "-f", "/etc"]).code, 1);
    h.jok("root", g, &["[", "-e", "/COPYRIGHT", "]"]);
    assert_eq!(h.jx("root", g, &["[", "-e", "/COPYRIGHT"]).code, 2);
    h.jok("root", g, &["test", "!", "-e", "/nope"]);
    let o = h.jx("root", g, &["mkdir", "/a/b"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "mkdir: /a/b: No such file or directory\n")
    );
    h.jok("root", g, &["mkdir", "-p", "/a/b"]);
    let o = h.jx("root", g, &["mkdir", "/a"]);
    assert_eq!((o.code, o.stderr.as_str()), (1, "mkdir: /a: File exists\n"));
    assert!(h.jail_path(g, "/a/b").is_dir());
    assert_eq!(h.jok("root", g, &["echo", "-n", "x", "y"]).stdout, "x y");
    assert_eq!(h.jok("root", g, &["hostname"]).stdout, "clawdiegit\n");
    assert_eq!(
        h.jok("root", g, &["freebsd-version", "-u"]).stdout,
        "15.0-RELEASE-p2\n"
    );
    assert_eq!(h.jx("root", g, &["false"]).code, 1);
    // env prints the login environment, or runs a built-in with more of it.
    let o = h.jok("root", g, &["env"]).stdout;
    assert!(
        o.contains("HOME=/root\n") && o.contains("USER=root\n"),
        "{o}"
    );
    assert_eq!(
        h.jok("root", g, &["env", "A=1", "sh", "-c", "echo $A"])
            .stdout,
        "1\n"
    );
    let o = h.jx("root", g, &["env", "A=1", "nosuch"]);
    assert_eq!(o.code, 127);
    // An unknown user.
    let o = h.jx("nosuch", g, &["true"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "jexec: getpwnam: nosuch: no such user\n")
    );
}

#[test]
fn sh_scripts_stay_inside_the_jail() {
    let h = Host::with_jails();
    let g = "clawdiegit";
    let o = h.jok(
        "root",
        g,
        &[
            "/bin/sh",
            "-c",
            "test -d /var && [ -f /etc/rc.conf ] && echo yes; sysrc -n defaultrouter",
        ],
    );
    assert_eq!(o.stdout, "yes\n10.0.1.1\n");
    // Redirections to absolute paths land in the jail.
    let marker = format!("/tmp/fakebsd-sh-{}", std::process::id());
    h.jok(
        "root",
        g,
        &["sh", "-c", &format!("echo hi > {marker}; cat {marker}")],
    );
    assert!(!PathBuf::from(&marker).exists(), "wrote the real {marker}");
    assert_eq!(
        std::fs::read_to_string(h.jail_path(g, &marker)).unwrap(),
        "hi\n"
    );
    // cd maps into the jail and cannot leave it.
    let o = h.jok(
        "root",
        g,
        &[
            "sh",
            "-c",
            "cd /etc && test -f rc.conf && cd ../../../.. && test -d usr/local && echo in",
        ],
    );
    assert_eq!(o.stdout, "in\n");
    // Absolute commands are refused unless they name an in-jail tool.
    let o = h.jx("root", g, &["sh", "-c", "/usr/bin/touch /x"]);
    assert_eq!(o.code, 126);
    assert!(
        o.stderr.contains("refusing to run /usr/bin/touch"),
        "{}",
        o.stderr
    );
    assert_eq!(
        h.jok("root", g, &["sh", "-c", "/usr/sbin/pw usershow root"])
            .stdout,
        "root:*:0:0::0:0:Charlie &:/root:/bin/sh\n"
    );
    let o = h.jx("root", g, &["sh", "-c", "eval 'echo x'"]);
    assert_eq!(o.code, 126);
    let o = h.jx("root", g, &["sh", "-c", "echo x > \"$HOME/f\""]);
    assert_eq!(o.code, 126, "computed redirection targets are refused");
    let o = h.jx("root", g, &["sh", "-c", "echo $(/bin/chmod -R 777 /tmp)"]);
    assert_eq!(o.code, 126, "command substitutions are checked too");
    // Unknown programs are not found on the jail's PATH; PATH cannot be changed.
    let o = h.jx("root", g, &["sh", "-c", "touch x"]);
    assert_eq!(o.code, 127);
    let o = h.jx(
        "root",
        g,
        &["sh", "-c", "PATH=/usr/bin:/bin; touch x; echo after"],
    );
    assert_ne!(o.code, 0);
    assert!(!o.stdout.contains("after"));
    // Exit status, stderr, $0/$@ and the worker's cwd wrapper.
    let o = h.jx("root", g, &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    let o = h.jok(
        "nobody",
        g,
        &[
            "/bin/sh",
            "-c",
            "cd \"$0\" && exec \"$@\"",
            "/etc",
            "test",
            "-f",
            "rc.conf",
        ],
    );
    assert_eq!(o.stdout, "");
    // Allowed utilities run directly too.
    assert_eq!(
        h.jok("root", g, &["printf", "%s-%s\\n", "a", "b"]).stdout,
        "a-b\n"
    );
    // In-jail tools see the jail user.
    assert_eq!(
        h.jok("nobody", g, &["sh", "-c", "id -un"]).stdout,
        "nobody\n"
    );
    // bastille cmd goes through the same built-ins.
    let o = h.ok("bastille", &["cmd", g, "hostname"]);
    assert!(o.stdout.contains("clawdiegit"), "{}", o.stdout);
}

#[test]
fn destroy_drops_in_jail_state_and_new_jails_start_clean() {
    let h = Host::with_jails();
    h.pkg_install("clawdiedb", "postgresql18-server");
    h.jok("root", "clawdiedb", &["sysrc", "postgresql_enable=YES"]);
    h.jok("root", "clawdiedb", &["service", "postgresql", "initdb"]);
    h.jok("root", "clawdiedb", &["service", "postgresql", "start"]);
    h.ok("bastille", &["destroy", "-a", "-f", "-y", "clawdiedb"]);
    let st = h.ok("fakebsd", &["state"]).stdout;
    assert!(!st.contains("clawdiedb"), "{st}");
    h.create_db();
    assert_eq!(observe_db(&h), (false, None, false, false, vec![]));
    assert_eq!(h.jx("root", "clawdiedb", &["id", "postgres"]).code, 1);
    assert_eq!(
        h.jok("root", "clawdiedb", &["id", "-u", "nobody"]).stdout,
        "65534\n"
    );
}
