//! The git jail's smart HTTP on Linux, through the real `warden` binary inside a test network namespace:
//! `warden setup` (steps host, jails, git, db, dns), `warden git create`, clone and push from the host with
//! `warden git url` and from a VNET worker, another tenant's credential refused, `list`/`delete`, bad names
//! refused with the fix, a worker still cannot reach db:5432, the doctor's `git.http` ok then failing when
//! nginx is stopped, and a second plan empty. Needs root, git, nginx and fcgiwrap (`scripts/test` installs
//! them) and the host's PostgreSQL (the db step, for the worker → db check).

#![cfg(target_os = "linux")]

mod common;

use std::process::{Command, Output};
use std::time::Instant;

use common::linux_host::LinuxHost;
use common::text;

/// The tenants of the test's registry (TENANT_ID).
const TENANTS: &str = "atlas,zeus";

/// git in the namespace (the host side of the bridge), `git.home.arpa` resolved to the git slot as the
/// gateway's dnsmasq does (the test namespace's resolv.conf is this machine's).
fn git(h: &LinuxHost, cwd: &std::path::Path, args: &[&str]) -> Output {
    let mut argv: Vec<String> = vec!["timeout".into(), "-k".into(), "5".into(), "60".into()];
    argv.extend(h.ns.prefix());
    argv.extend([
        "git".into(),
        "-c".into(),
        "http.curloptResolve=git.home.arpa:80:10.0.1.2".into(),
        "-c".into(),
        "user.name=Test".into(),
        "-c".into(),
        "user.email=test@home.arpa".into(),
    ]);
    argv.extend(args.iter().map(|s| s.to_string()));
    let o = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("HOME", h.dir.path())
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(124), "timed out: git {args:?}");
    o
}

fn git_ok(h: &LinuxHost, cwd: &std::path::Path, args: &[&str]) -> String {
    let o = git(h, cwd, args);
    assert!(o.status.success(), "git {args:?}: {}", text(&o));
    text(&o)
}

/// The repositories `warden git list` prints for `tenant`.
fn list(h: &LinuxHost, tenant: &str) -> Vec<String> {
    let o = h.warden(&["git", "list", "--tenant", tenant]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn url(h: &LinuxHost, repo: &str, tenant: Option<&str>) -> String {
    let mut args = vec!["git", "url", repo];
    if let Some(t) = tenant {
        args.extend(["--tenant", t]);
    }
    let o = h.warden(&args);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The doctor's git check.
fn doctor_git(h: &LinuxHost) -> serde_json::Value {
    let o = h.warden(&["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "git.http")
        .cloned()
        .unwrap_or_else(|| panic!("no git.http check: {}", text(&o)))
}

#[test]
fn git_serves_each_tenant_its_repositories_over_http() {
    common::ensure_worker_account();
    let h = LinuxHost::new("git", "wgit", 'g').with_env("TENANT_ID", TENANTS);
    // The namespace's loopback, for dnsmasq.
    h.ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
    let t0 = Instant::now();
    let said = h.setup_steps(&["host", "jails", "git", "db", "dns"]);
    let setup_s = t0.elapsed().as_secs_f64();
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "git"]);
    assert!(plan.contains("nothing to do"), "{plan}");

    // Credentials: 0600 files in a 0700 directory, in no output; htpasswd files hold hashes only.
    let owners = ["system", "atlas", "zeus"];
    let passwords = h.secret_files("git", &owners);
    for (owner, pw) in owners.iter().zip(&passwords) {
        assert!(!said.contains(pw.as_str()), "a password in setup's output");
        let auth = std::fs::read_to_string(h.dir.path().join(format!("git-http/htpasswd/{owner}")))
            .unwrap();
        assert!(auth.starts_with(&format!("{owner}:{{SSHA}}")) && !auth.contains(pw.as_str()));
    }

    // Bad input is refused with the fix (exit 2), nothing changed.
    for args in [
        vec!["git", "create", "a/b"],
        vec!["git", "create", "x.git"],
        vec!["git", "create", "notes", "--tenant", "nobody"],
    ] {
        let o = h.warden(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("fix:"), "{}", text(&o));
    }

    // Create, then clone and push from the host with the URL carrying atlas's credential.
    h.ok(&["git", "create", "blog", "--tenant", "atlas"]);
    h.ok(&["git", "create", "notes"]);
    let o = h.warden(&["git", "create", "blog", "--tenant", "atlas"]);
    assert!(
        o.status.code() == Some(1) && text(&o).contains("already exists"),
        "{}",
        text(&o)
    );
    assert_eq!(list(&h, "atlas"), ["blog"]);
    assert!(list(&h, "zeus").is_empty());
    let url = url(&h, "blog", Some("atlas"));
    assert_eq!(
        url,
        format!("http://atlas:{}@git.home.arpa/atlas/blog.git", passwords[1])
    );
    let work = tempfile::tempdir().unwrap();
    git_ok(&h, work.path(), &["clone", "-q", &url, "blog"]);
    let repo = work.path().join("blog");
    std::fs::write(repo.join("index.md"), "from the host\n").unwrap();
    git_ok(&h, &repo, &["add", "index.md"]);
    git_ok(&h, &repo, &["commit", "-qm", "host"]);
    git_ok(&h, &repo, &["push", "-q", "origin", "HEAD:main"]);

    // Another tenant's credential (and none) is refused on atlas's repository.
    let zeus = url.replace(
        &format!("atlas:{}", passwords[1]),
        &format!("zeus:{}", passwords[2]),
    );
    for (who, u) in [
        ("zeus", zeus),
        ("nobody", "http://git.home.arpa/atlas/blog.git".to_string()),
    ] {
        let o = git(&h, work.path(), &["ls-remote", &u]);
        assert!(
            !o.status.success()
                && ["401", "Authentication failed", "could not read Username"]
                    .iter()
                    .any(|w| text(&o).contains(w)),
            "{who} read atlas's repository: {}",
            text(&o)
        );
    }

    // From a VNET worker: clone (by name, through the gateway's DNS), commit, push.
    let script = format!(
        "set -e; cd /tmp; git clone -q {url} b; cd b; grep -q 'from the host' index.md; \
echo 'from a worker' >> index.md; git -c user.name=W -c user.email=w@home.arpa commit -qam worker; \
git push -q origin HEAD:main; echo pushed"
    );
    let o = h.warden(&[
        "run",
        "--network",
        "vnet",
        "--env",
        "HOME=/tmp",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        o.status.success() && text(&o).contains("pushed"),
        "worker: {}",
        text(&o)
    );
    git_ok(&h, &repo, &["pull", "-q", "origin", "main"]);
    assert_eq!(
        std::fs::read_to_string(repo.join("index.md")).unwrap(),
        "from the host\nfrom a worker\n"
    );

    // A worker still cannot reach db:5432 (bash's /dev/tcp: the connection times out or is refused).
    let o = h.warden(&[
        "run",
        "--network",
        "vnet",
        "--",
        "sh",
        "-c",
        "if timeout 3 bash -c 'exec 3<>/dev/tcp/10.0.1.5/5432'; then echo connected; else echo unreachable; fi",
    ]);
    assert!(
        text(&o).contains("unreachable") && !text(&o).contains("connected"),
        "a worker reached db: {}",
        text(&o)
    );

    // The doctor: ls-remote with the platform's credential passes; nginx stopped: fail with the fix.
    let c = doctor_git(&h);
    assert_eq!(c["status"], "ok", "{c:#}");
    assert!(!c.to_string().contains(&passwords[0]));
    h.ok(&[
        "jail",
        "exec",
        "--root",
        &h.jail("git"),
        "--",
        "nginx",
        "-c",
        "/etc/warden-git/nginx.conf",
        "-e",
        "/var/git/log/error.log",
        "-s",
        "stop",
    ]);
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let c = loop {
        let c = doctor_git(&h);
        if c["status"] == "fail" || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        c["remedy"]
            .as_str()
            .unwrap_or_default()
            .contains("setup --backend linux --step git"),
        "{c:#}"
    );
    assert!(!c.to_string().contains(&passwords[0]));
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "git"]);
    assert!(plan.contains("start nginx"), "{plan}");
    h.ok(&["setup", "--backend", "linux", "--step", "git"]);
    assert_eq!(doctor_git(&h)["status"], "ok");

    // Delete; the repository is gone.
    h.ok(&["git", "delete", "blog", "--tenant", "atlas"]);
    assert!(list(&h, "atlas").is_empty());
    let o = h.warden(&["git", "delete", "blog", "--tenant", "atlas"]);
    assert!(
        text(&o).contains("no repository atlas/blog"),
        "{}",
        text(&o)
    );
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "git"]);
    assert!(plan.contains("nothing to do"), "{plan}");
    eprintln!(
        "setup (host, jails, git, db, dns) {setup_s:.1} s, whole test {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
