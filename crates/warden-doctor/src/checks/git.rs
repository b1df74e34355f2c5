//! `git.http`: `git ls-remote` of the platform's health repository over smart HTTP, from this host, with the
//! platform's credential, `git.<domain>` resolved by the gateway's dnsmasq (as workers resolve it). The
//! password reaches git through a credential helper reading it from git's environment, never on a command
//! line or in the report.

use std::net::{SocketAddr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::time::Instant;

use warden_core::layout::Role;
use warden_core::{db, git};

use crate::report::Check;
use crate::Ctx;

/// The check's name.
pub const NAME: &str = "git.http";

/// The checks whose failure `git.http` would only repeat: the bridge, DNS (it resolves git.<domain> through
/// the gateway's dnsmasq) and the git jail running.
pub fn depends_on(jail: &str) -> Vec<String> {
    let mut d: Vec<String> = [
        "network.bridge",
        "dns.service",
        "dns.listen.gateway",
        "dns.zone",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    d.push(format!("jail.{jail}.running"));
    d
}

/// `git.http`: ls-remote of `<namespace>/health.git` answers.
pub fn http(ctx: &Ctx) -> Vec<Check> {
    let Some(svc) = ctx.layout().service(Role::Git) else {
        return Vec::new();
    };
    let deps = depends_on(&svc.jail);
    let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
    probe(ctx).into_iter().map(|c| c.depends(&deps)).collect()
}

fn probe(ctx: &Ctx) -> Vec<Check> {
    let layout = ctx.layout();
    let Some(svc) = layout.service(Role::Git) else {
        return Vec::new();
    };
    let owner = layout.namespace.as_str();
    let repo_url = format!("http://{}/{owner}/{}.git", svc.fqdn, git::HEALTH_REPO);
    let expected = format!(
        "git ls-remote {repo_url} as {owner} answers ({} resolved by {}:53)",
        svc.fqdn, layout.gateway
    );
    let fix = format!(
        "{} (starts nginx and fcgiwrap in {}, writes the credentials)",
        ctx.setup("git"),
        svc.jail
    );
    if ctx.simulated() {
        return vec![simulated(ctx, &svc.jail, expected, fix)];
    }
    if let Some(why) = crate::checks::db::no_service_probe(ctx, "HTTP server") {
        return vec![Check::skip(NAME, expected, why)];
    }
    let dns = SocketAddr::V4(SocketAddrV4::new(layout.gateway, 53));
    let addr = match crate::dns_client::query_a(dns, &svc.fqdn, ctx.opts.dns_timeout) {
        Ok(a) if a.contains(&svc.addr) => svc.addr,
        Ok(a) => {
            return vec![Check::fail(
                NAME,
                expected,
                format!("{} resolves to {a:?} via {dns}, not {}", svc.fqdn, svc.addr),
                ctx.setup("dns"),
            )]
        }
        Err(e) => {
            return vec![Check::fail(
                NAME,
                expected,
                format!("{} did not resolve via {dns}: {e}", svc.fqdn),
                ctx.setup("dns"),
            )]
        }
    };
    let password = match password(ctx, owner, &fix) {
        Ok(p) => p,
        Err((seen, fix)) => return vec![Check::fail(NAME, expected, seen, fix)],
    };
    vec![ls_remote(
        ctx,
        &repo_url,
        owner,
        &password,
        &format!("{}:80:{addr}", svc.fqdn),
        expected,
        fix,
    )]
}

/// The owner's password, checked to be one Warden generated; else what was seen and the fix.
fn password(ctx: &Ctx, owner: &str, fix: &str) -> Result<String, (String, String)> {
    let state = ctx.opts.state_dir.display().to_string();
    let path = git::password_path(&state, owner);
    match std::fs::read_to_string(&path) {
        Ok(p) if db::valid_password(p.trim()) => Ok(p.trim().to_string()),
        Ok(_) => Err((
            format!("{path} does not hold a password Warden generated"),
            format!("remove {path}, then {fix}"),
        )),
        Err(e) => Err((format!("no password file {path}: {e}"), fix.to_string())),
    }
}

/// On a simulated host nothing answers HTTP in a jail: what can be probed is probed instead — fcgiwrap and
/// nginx running in the git jail (their rc.d `status`), the health repository existing, the owner's password
/// file being Warden's. No request is made, and the check says so.
fn simulated(ctx: &Ctx, jail: &str, expected: String, fix: String) -> Check {
    let layout = ctx.layout();
    for service in ["fcgiwrap", "nginx"] {
        let argv = [
            "jexec", "-l", "-U", "root", jail, "service", service, "status",
        ];
        match ctx.run(&argv) {
            Ok(o) if o.ok() => {}
            Ok(o) => {
                return Check::fail(
                    NAME,
                    expected,
                    format!("{service} does not run in {jail}: {}", crate::said(&o)),
                    fix,
                )
            }
            Err(e) => return Check::fail(NAME, expected, format!("{}: {e}", argv.join(" ")), fix),
        }
    }
    let health = git::repo_path(&layout.namespace, git::HEALTH_REPO);
    let head = format!("{health}/HEAD");
    match ctx.run(&["jexec", "-l", "-U", git::USER, jail, "test", "-f", &head]) {
        Ok(o) if o.ok() => {}
        Ok(_) => {
            return Check::fail(
                NAME,
                expected,
                format!("no repository {health} in {jail}"),
                fix,
            )
        }
        Err(e) => return Check::fail(NAME, expected, format!("jexec test -f {head}: {e}"), fix),
    }
    if let Err((seen, fix)) = password(ctx, &layout.namespace, &fix) {
        return Check::fail(NAME, expected, seen, fix);
    }
    Check::ok(
        NAME,
        expected,
        format!("simulated host: fcgiwrap and nginx run in {jail}, {health} exists, the password file is Warden's (no HTTP request: nothing answers in a simulated jail)"),
    )
}

fn ls_remote(
    ctx: &Ctx,
    url: &str,
    owner: &str,
    password: &str,
    resolve: &str,
    expected: String,
    fix: String,
) -> Check {
    let helper = format!(
        "credential.helper=!f() {{ echo username={owner}; echo \"password=$WARDEN_GIT_PASSWORD\"; }}; f"
    );
    let t0 = Instant::now();
    let child = Command::new("git")
        .args(["-c", "credential.helper=", "-c", &helper])
        .args(["-c", &format!("http.curloptResolve={resolve}")])
        .args(["ls-remote", url])
        .env("WARDEN_GIT_PASSWORD", password)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let out = match child.and_then(|c| crate::checks::db::wait(c, ctx.opts.timeout)) {
        Ok(o) => o,
        Err(e) => return Check::fail(NAME, expected, format!("git: {e}"), fix),
    };
    if out.status.success() {
        return Check::ok(
            NAME,
            expected,
            format!("answered in {} ms", t0.elapsed().as_millis()),
        );
    }
    let err = String::from_utf8_lossy(&out.stderr)
        .replace(password, "<hidden>")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    Check::fail(
        NAME,
        expected,
        format!("git ls-remote exited {}: {err}", out.status),
        fix,
    )
}
