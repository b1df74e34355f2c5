//! The cms jail's nginx on Linux, through the real `warden` binary inside a test network namespace: `warden
//! setup` (steps host, jails, cms, dns) with two tenants; `warden site deploy` to a tenant and a site; from a
//! VNET worker every vhost answers by name through dnsmasq with its own content; a request loop during
//! deploys sees only complete releases and no error; old releases are pruned; bad input is refused with the
//! fix; the doctor's `cms.vhost.*` pass, then fail with the fixing command when nginx is stopped. Needs root
//! and the host's nginx (`scripts/test` installs it). Also: the rendered config passes `nginx -t`.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::linux_host::LinuxHost;
use common::text;

const CONFIG: &str = r#"
[[tenants]]
name = "atlas"
sites = ["blog"]

[[tenants]]
name = "zeta"
"#;

const VHOSTS: [&str; 4] = [
    "cms.home.arpa",
    "atlas.home.arpa",
    "blog.atlas.home.arpa",
    "zeta.home.arpa",
];

/// A site whose page is large enough that a copy takes a while: the version at the top and at the bottom.
fn site(dir: &std::path::Path, version: &str) {
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    let filler = "x".repeat(100) + "\n";
    let page = format!(
        "<p>top {version}</p>\n{}<p>end {version}</p>\n",
        filler.repeat(5000)
    );
    std::fs::write(dir.join("index.html"), page).unwrap();
    for i in 0..50 {
        std::fs::write(
            dir.join(format!("assets/{i}.css")),
            format!("/* {version} */"),
        )
        .unwrap();
    }
}

/// GET / of `name` at the cms slot, from this thread's network namespace: (status, body).
fn get(name: &str) -> std::io::Result<(u16, String)> {
    let mut s =
        TcpStream::connect_timeout(&"10.0.1.3:80".parse().unwrap(), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET / HTTP/1.0\r\nHost: {name}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Requests `name` in a loop from a thread inside the namespace until `stop`; every answer must be 200 and a
/// whole page of one version. Returns (requests, versions seen) or the first bad answer.
fn request_loop(
    netns: std::path::PathBuf,
    name: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<(usize, Vec<String>), String>> {
    std::thread::spawn(move || {
        let f = std::fs::File::open(&netns).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let (mut n, mut seen) = (0, Vec::<String>::new());
        while !stop.load(Ordering::SeqCst) {
            let (status, body) = get(name).map_err(|e| format!("request {n}: {e}"))?;
            let top = body
                .lines()
                .next()
                .unwrap_or("")
                .replace("<p>top ", "")
                .replace("</p>", "");
            let end = body
                .lines()
                .last()
                .unwrap_or("")
                .replace("<p>end ", "")
                .replace("</p>", "");
            if status != 200 || top != end || body.len() < 500_000 {
                return Err(format!(
                    "request {n}: HTTP {status}, top {top:?}, end {end:?}, {} bytes",
                    body.len()
                ));
            }
            if seen.last() != Some(&top) {
                seen.push(top);
            }
            n += 1;
        }
        Ok((n, seen))
    })
}

/// The doctor's `cms.vhost.*` checks.
fn vhost_checks(h: &LinuxHost) -> Vec<serde_json::Value> {
    let o = h.warden(&["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("cms.vhost."))
        })
        .cloned()
        .collect()
}

#[test]
fn the_rendered_config_passes_nginx_t() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("nginx.conf");
    let loaded = warden_core::load(Some(("warden.toml", CONFIG)), &|_| None, &vec![]).unwrap();
    let layout = warden_core::Layout::from_loaded(&loaded).unwrap();
    for text_ in [
        warden_core::linux_cms::nginx_conf(&layout),
        warden_core::bastille_cms::conf_file(&layout, "clawdiecms").1,
    ] {
        // The FreeBSD paths and user do not exist here; the Linux ones do. Both must parse.
        let text_ = text_
            .replace("user www www;", "user nobody nogroup;")
            .replace("/var/run/nginx.pid", "/tmp/x.pid");
        std::fs::write(&conf, &text_).unwrap();
        let o = Command::new("timeout")
            .args(["30", "/usr/sbin/nginx", "-t", "-q", "-c"])
            .arg(&conf)
            .args(["-g", &format!("error_log {}/e.log;", d.path().display())])
            .output()
            .expect("nginx (apt-get install nginx; scripts/test installs it)");
        assert!(o.status.success(), "nginx -t: {}\n{text_}", text(&o));
    }
}

#[test]
fn nginx_serves_every_tenant_and_site_and_deploys_atomically() {
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), CONFIG).unwrap();
    let h = LinuxHost::new("cms", "wcms", 'c')
        .with_env("WARDEN_CONFIG", &cfg.path().display().to_string());
    let t0 = Instant::now();
    h.setup_steps(&["host", "jails", "cms", "dns"]);
    let setup_s = t0.elapsed().as_secs_f64();
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "cms"]);
    assert!(plan.contains("nothing to do"), "{plan}");

    // Every vhost has setup's placeholder.
    let o = h.warden(&["site", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, VHOSTS, "{list}");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|v| v["current"] == "0-setup"),
        "{list}"
    );

    // Deploys to a tenant and a site; bad input is refused with the fix and changes nothing.
    let src = tempfile::tempdir().unwrap();
    site(&src.path().join("atlas"), "atlas-1");
    site(&src.path().join("blog"), "blog-1");
    let dir = |n: &str| src.path().join(n).display().to_string();
    h.ok(&["site", "deploy", "atlas", &dir("atlas")]);
    h.ok(&["site", "deploy", "atlas", "blog", &dir("blog")]);
    for (args, says) in [
        (
            vec!["site", "deploy", "nope", &dir("atlas")],
            "no tenant \"nope\"",
        ),
        (
            vec!["site", "deploy", "atlas", "shop", &dir("atlas")],
            "no site \"shop\"",
        ),
        (
            vec!["site", "deploy", "atlas", "/nonexistent/dist"],
            "cannot read /nonexistent/dist",
        ),
    ] {
        let o = h.warden(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains(says) && text(&o).contains("fix:"),
            "{}",
            text(&o)
        );
    }

    // From a VNET worker, by name through dnsmasq: each vhost its own content.
    let script = VHOSTS
        .iter()
        .map(|n| format!("curl -fsS --max-time 5 http://{n}/ | grep -m 1 '<p>'"))
        .collect::<Vec<_>>()
        .join("; ");
    let o = h.warden(&[
        "run",
        "--network",
        "vnet",
        "--",
        "sh",
        "-c",
        &format!("set -e; {script}"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[0].contains("cms.home.arpa: nothing deployed yet"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "<p>top atlas-1</p>");
    assert_eq!(lines[2], "<p>top blog-1</p>");
    assert!(
        lines[3].contains("zeta.home.arpa: nothing deployed yet"),
        "{lines:?}"
    );

    // Deploys while a client requests the site in a loop: only whole pages, of the old or the new release.
    let stop = Arc::new(AtomicBool::new(false));
    let client = request_loop(h.ns.path(), "blog.atlas.home.arpa", Arc::clone(&stop));
    let t_deploy = Instant::now();
    for v in 2..=5 {
        let d = src.path().join(format!("blog{v}"));
        site(&d, &format!("blog-{v}"));
        h.ok(&["site", "deploy", "atlas", "blog", &d.display().to_string()]);
    }
    let deploys_s = t_deploy.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let (requests, seen) = client.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        requests >= 20,
        "only {requests} requests during the deploys"
    );
    assert_eq!(seen.last().map(String::as_str), Some("blog-5"), "{seen:?}");
    let order: Vec<usize> = seen.iter().map(|s| s[5..].parse().unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "went back: {seen:?}");
    // Three releases kept; the current one is the newest.
    let o = h.warden(&["site", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let blog = &list[2];
    assert_eq!(blog["releases"].as_array().unwrap().len(), 3, "{blog}");
    assert_eq!(blog["current"], blog["releases"][2], "{blog}");

    // The doctor: every vhost answers; with nginx stopped each fails naming the setup command.
    let checks = vhost_checks(&h);
    assert_eq!(checks.len(), 4, "{checks:#?}");
    assert!(checks.iter().all(|c| c["status"] == "ok"), "{checks:#?}");
    let cms = h.jail("cms");
    h.ok(&[
        "jail",
        "exec",
        "--root",
        &cms,
        "--",
        "/usr/sbin/nginx",
        "-c",
        "/opt/warden-cms/nginx.conf",
        "-s",
        "stop",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let down = loop {
        let c = vhost_checks(&h);
        if c.iter().all(|c| c["status"] == "fail") || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        down.iter().all(|c| c["status"] == "fail"
            && c["remedy"]
                .as_str()
                .unwrap_or_default()
                .contains("setup --backend linux --step cms")),
        "{down:#?}"
    );
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "cms"]);
    assert!(plan.contains("start nginx"), "{plan}");
    h.ok(&["setup", "--backend", "linux", "--step", "cms"]);
    assert!(vhost_checks(&h).iter().all(|c| c["status"] == "ok"));
    eprintln!(
        "setup (host, jails, cms, dns) {setup_s:.1} s; 4 deploys of 51 files (0.5 MB) {deploys_s:.2} s with {requests} requests answered whole"
    );
}
