//! The FreeBSD git step and `warden git` against the simulated FreeBSD host (`crates/fakebsd`), through the real
//! binary: smart HTTP (git, nginx, fcgiwrap from the ports, the shared nginx.conf with the ports' paths, one
//! htpasswd file per owner), Forgejo (`app.ini` on the git db role, written without a secret in any plan or
//! output), `warden git create|list|url|delete` by jexec, the doctor's `git.http` on the simulated host, and
//! an empty plan after a jail restart.

#![cfg(target_os = "linux")]

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use warden_host::git_secrets::line_matches;
use warden_testkit::fakebsd::text;
use warden_testkit::FakeBsdHost;

/// Every command of this test runs with one tenant in the registry.
const TENANT: (&str, &str) = ("TENANT_ID", "atlas");
const JAIL_ROOT: &str = "/usr/local/bastille/jails/clawdiegit/root";

fn warden(h: &FakeBsdHost, args: &[&str]) -> std::process::Output {
    h.warden_env(&[TENANT], args)
}

fn warden_ok(h: &FakeBsdHost, args: &[&str]) -> String {
    let out = warden(h, args);
    assert!(out.status.success(), "warden {args:?}: {}", text(&out));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn git_plan(h: &FakeBsdHost) -> String {
    warden_ok(h, &["plan", "--backend", "bastille", "--step", "git"])
}

/// A file of the git jail on this machine.
fn in_jail(h: &FakeBsdHost, inside: &str) -> std::path::PathBuf {
    h.path(&format!("{JAIL_ROOT}{inside}"))
}

/// `jexec -l -U root clawdiegit ARGS` on the simulated host.
fn jexec(h: &FakeBsdHost, args: &[&str]) -> std::process::Output {
    let mut argv = vec!["jexec", "-l", "-U", "root", "clawdiegit"];
    argv.extend_from_slice(args);
    h.tool(&argv)
}

/// The doctor's `git.http` check as JSON.
fn git_http(h: &FakeBsdHost) -> Value {
    let out = warden(h, &["doctor", "--backend", "bastille", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", text(&out)));
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "git.http")
        .cloned()
        .unwrap_or_else(|| panic!("no git.http: {report:#}"))
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn git_step_serves_repositories_and_forgejo_on_the_simulated_host() {
    let h = FakeBsdHost::fresh();
    for step in ["base", "host", "jails", "db", "dns"] {
        warden_ok(&h, &["setup", "--backend", "bastille", "--step", step]);
    }
    let plan = git_plan(&h);
    for want in [
        "pkg install fcgiwrap",
        "pkg install forgejo",
        "git credentials",
        "git forgejo-config",
        "service nginx start",
        "service forgejo start",
    ] {
        assert!(plan.contains(want), "{want}: {plan}");
    }
    let applied = warden_ok(&h, &["setup", "--backend", "bastille", "--step", "git"]);
    assert!(git_plan(&h).contains("nothing to do"), "second plan");

    // Credentials: 0600 passwords in the state directory, one htpasswd line per owner in the jail.
    let mut secrets = Vec::new();
    for owner in ["system", "atlas"] {
        let pw_file = h.state_dir().join(format!("git/{owner}.password"));
        assert_eq!(mode(&pw_file), 0o600);
        let pw = std::fs::read_to_string(&pw_file)
            .unwrap()
            .trim()
            .to_string();
        let line = std::fs::read_to_string(in_jail(
            &h,
            &format!("/usr/local/etc/nginx/warden-git/{owner}"),
        ))
        .unwrap();
        assert!(line_matches(&line, owner, &pw), "{owner}: {line}");
        secrets.push(pw);
    }
    let conf = std::fs::read_to_string(in_jail(&h, "/usr/local/etc/nginx/nginx.conf")).unwrap();
    for want in [
        "user git git;\n",
        "listen 10.0.1.2:80;\n",
        "auth_basic_user_file /usr/local/etc/nginx/warden-git/atlas;\n",
        "fastcgi_pass unix:/var/run/fcgiwrap/fcgiwrap.sock;\n",
    ] {
        assert!(conf.contains(want), "{want}: {conf}");
    }

    // Forgejo's app.ini: the db role's password, git's, 0600; the staged copy gone; no secret in any output.
    let ini_path = in_jail(&h, "/usr/local/etc/forgejo/conf/app.ini");
    let ini = std::fs::read_to_string(&ini_path).unwrap();
    let db_pw = std::fs::read_to_string(h.state_dir().join("db/system_git.password")).unwrap();
    assert!(
        ini.contains(&format!("PASSWD = {}\n", db_pw.trim())) && !ini.contains("CHANGE_ME"),
        "{ini}"
    );
    assert_eq!(mode(&ini_path), 0o600);
    assert!(!in_jail(&h, "/usr/local/etc/forgejo/conf/app.ini.warden").exists());
    let state = h.state();
    assert_eq!(
        state["owners"][format!("{JAIL_ROOT}/usr/local/etc/forgejo/conf/app.ini")],
        "git:git",
        "{:#}",
        state["owners"]
    );
    secrets.push(db_pw.trim().to_string());
    for key in ["secret_key", "internal_token", "jwt_secret"] {
        let f = h.state_dir().join(format!("git/forgejo.{key}"));
        assert_eq!(mode(&f), 0o600);
        secrets.push(std::fs::read_to_string(f).unwrap().trim().to_string());
    }
    for s in &secrets {
        assert!(!plan.contains(s.as_str()) && !applied.contains(s.as_str()));
    }
    for service in ["fcgiwrap", "nginx", "forgejo"] {
        let out = jexec(&h, &["service", service, "status"]);
        assert!(out.status.success(), "{service}: {}", text(&out));
    }

    // warden git on the bastille backend: bad input first (exit 2, naming the fix), then a tenant's repository.
    for (args, says) in [
        (vec!["create", "x.git"], "bad repository name"),
        (
            vec!["create", "notes", "--tenant", "zeus"],
            "no tenant \"zeus\"",
        ),
        (vec!["list", "--tenant", "zeus"], "no tenant \"zeus\""),
    ] {
        let mut argv = vec!["git"];
        argv.extend(args);
        argv.extend(["--backend", "bastille"]);
        let out = warden(&h, &argv);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {}", text(&out));
        assert!(err.contains(says) && err.contains("fix:"), "{err}");
    }
    let git = |args: &[&str]| {
        let mut argv = vec!["git"];
        argv.extend_from_slice(args);
        argv.extend(["--tenant", "atlas", "--backend", "bastille"]);
        warden(&h, &argv)
    };
    let out = git(&["create", "blog"]);
    assert!(out.status.success(), "{}", text(&out));
    let repo = in_jail(&h, "/var/git/repos/atlas/blog.git");
    assert_eq!(
        std::fs::read_to_string(repo.join("HEAD")).unwrap(),
        "ref: refs/heads/main\n"
    );
    assert!(std::fs::read_to_string(repo.join("config"))
        .unwrap()
        .contains("receivepack = true"));
    let again = git(&["create", "blog"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let out = git(&["list"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "blog\n",
        "{}",
        text(&out)
    );
    let out = git(&["url", "blog"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("http://atlas:{}@git.home.arpa/atlas/blog.git", secrets[1])
    );
    assert!(git(&["delete", "blog"]).status.success());
    assert!(!repo.exists());
    let out = git(&["delete", "blog"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&git(&["list"]).stdout), "");

    // The doctor: ok; nginx stopped → fail naming the git step; the step starts it again.
    let c = git_http(&h);
    assert_eq!(c["status"], "ok", "{c:#}");
    assert!(jexec(&h, &["service", "nginx", "stop"]).status.success());
    let c = git_http(&h);
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        c["remedy"].as_str().unwrap_or("").contains("--step git"),
        "{c:#}"
    );
    assert!(git_plan(&h).contains("service nginx start"));
    warden_ok(&h, &["setup", "--backend", "bastille", "--step", "git"]);
    assert_eq!(git_http(&h)["status"], "ok");

    // An edited app.ini is put back (and Forgejo restarted); the comparison ignores the secrets' values.
    let edited = ini.replace(
        "DISABLE_REGISTRATION = true",
        "DISABLE_REGISTRATION = false",
    );
    std::fs::write(&ini_path, edited).unwrap();
    let plan = git_plan(&h);
    assert!(
        plan.contains("git forgejo-config") && plan.contains("service forgejo restart"),
        "{plan}"
    );
    warden_ok(&h, &["setup", "--backend", "bastille", "--step", "git"]);
    assert_eq!(std::fs::read_to_string(&ini_path).unwrap(), ini);

    // A restarted jail starts fcgiwrap, nginx and Forgejo from its rc.conf: nothing to do.
    assert!(h
        .tool(&["bastille", "restart", "clawdiegit"])
        .status
        .success());
    let plan = git_plan(&h);
    assert!(plan.contains("nothing to do"), "{plan}");
}
