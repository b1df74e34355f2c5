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
    let state = ctx.opts.state_dir.display().to_string();
    let path = git::password_path(&state, owner);
    let password = match std::fs::read_to_string(&path) {
        Ok(p) if db::valid_password(p.trim()) => p.trim().to_string(),
        Ok(_) => {
            return vec![Check::fail(
                NAME,
                expected,
                format!("{path} does not hold a password Warden generated"),
                format!("remove {path}, then {fix}"),
            )]
        }
        Err(e) => {
            return vec![Check::fail(
                NAME,
                expected,
                format!("no password file {path}: {e}"),
                fix,
            )]
        }
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
