//! The managed block of `/etc/hosts` matches the layout.
//!
//! FreeBSD: `warden setup --step hosts` writes the block into `/etc/hosts`, so it must be there and current.
//! Linux: the backend does not write `/etc/hosts` (dnsmasq in Warden's state directory serves the names), so the
//! block is checked when `--hosts-file PATH` names a file, or when `/etc/hosts` already carries a Warden block
//! (someone placed it with `warden render hosts`); otherwise the check is skipped, saying why.

use warden_core::bastille_plan::HOSTS;
use warden_core::render::hosts::{extract, render};

use crate::report::Check;
use crate::{sh_quote, BackendKind, Ctx};

const NAME: &str = "hosts.block";

/// `hosts.block`.
pub fn block(ctx: &Ctx) -> Vec<Check> {
    let path = ctx
        .opts
        .hosts_file
        .clone()
        .unwrap_or_else(|| HOSTS.to_string());
    let want = render(ctx.layout());
    let lines = want.lines().count().saturating_sub(2);
    let expected = format!(
        "Warden's managed block in {path} as rendered from the layout ({lines} address lines)"
    );
    let remedy = match ctx.opts.backend {
        BackendKind::Bastille if ctx.opts.hosts_file.is_none() => ctx.setup("hosts"),
        _ => {
            let p = sh_quote(&path);
            format!(
                "sed -i '/^# BEGIN warden managed block/,/^# END warden managed block/d' {p} && {} render hosts >> {p}",
                ctx.opts.warden
            )
        }
    };
    let text = match ctx.runner.read_file(&path) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return vec![Check::fail(
                NAME,
                expected,
                format!("{path} does not exist"),
                remedy,
            )]
        }
        Err(e) => return vec![Check::fail(NAME, expected, e.to_string(), remedy)],
    };
    let check = match extract(&text) {
        Some(have) if have == want => Check::ok(
            NAME,
            expected,
            format!("{path}: block matches ({lines} address lines)"),
        ),
        Some(have) => {
            let missing: Vec<&str> = want
                .lines()
                .filter(|l| !have.lines().any(|h| h == *l))
                .collect();
            let extra: Vec<&str> = have
                .lines()
                .filter(|l| !want.lines().any(|w| w == *l))
                .collect();
            let mut seen = format!("{path}: block differs:");
            if !missing.is_empty() {
                seen.push_str(&format!(" missing {:?}", missing));
            }
            if !extra.is_empty() {
                seen.push_str(&format!(" unexpected {:?}", extra));
            }
            Check::fail(NAME, expected, seen, remedy)
        }
        None if ctx.opts.backend == BackendKind::Linux && ctx.opts.hosts_file.is_none() => {
            Check::skip(
                NAME,
                expected,
                "the Linux backend does not manage /etc/hosts (dnsmasq serves the names); \
             pass --hosts-file PATH to check a block placed with `warden render hosts`",
            )
        }
        None => Check::fail(
            NAME,
            expected,
            format!("{path} has no Warden block"),
            remedy,
        ),
    };
    vec![check]
}
