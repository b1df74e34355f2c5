//! The control plane answers `/healthz`; Warden's state directory and token have safe permissions; and a VNET
//! worker reaches the outside through the NAT (`doctor.probe`).

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use warden_core::http_get::{HttpError, Want};

use crate::report::Check;
use crate::{sh_quote, BackendKind, Ctx};

/// Name of the control plane's token file in the state directory (see `warden init`).
pub const TOKEN_FILE: &str = "token";

/// `control_plane.healthz`: `GET /healthz` on the first listen address answers 200. Not running is a warning:
/// `warden serve` is optional.
pub fn healthz(ctx: &Ctx) -> Vec<Check> {
    let layout = ctx.layout();
    let ip = layout
        .listen
        .iter()
        .copied()
        .find(|a| a.is_loopback())
        .or_else(|| layout.listen.first().copied())
        .unwrap_or(Ipv4Addr::LOCALHOST);
    let addr = SocketAddr::from((ip, layout.port));
    let expected = format!("GET http://{addr}/healthz answers 200");
    let remedy = format!("{} serve", ctx.opts.warden);
    let check = match http_get(addr, "/healthz", Duration::from_millis(800)) {
        Ok(status_line) if status_line.split_whitespace().nth(1) == Some("200") => {
            Check::ok("control_plane.healthz", expected, status_line)
        }
        Ok(status_line) => Check::fail("control_plane.healthz", expected, status_line, remedy),
        Err(e) if e.refused() => Check::warn(
            "control_plane.healthz",
            expected,
            format!("not running: nothing listens on {addr} (serve is optional)"),
            remedy,
        ),
        Err(e) => Check::fail(
            "control_plane.healthz",
            expected,
            format!("{addr}: {e}"),
            remedy,
        ),
    };
    vec![check]
}

/// The status line of `GET path` (HTTP/1.0, so the server closes the connection).
pub(crate) fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<String, HttpError> {
    let host = addr.to_string();
    warden_core::http_get::get(addr, &host, path, Want::Head, timeout).map(|r| r.status_line)
}

/// `state_dir.perms` and `state_dir.token`.
pub fn state_dir(ctx: &Ctx) -> Vec<Check> {
    let dir = &ctx.opts.state_dir;
    let shown = sh_quote(&dir.display().to_string());
    let expected = format!("{} owned by root, mode 0700 or 0750", dir.display());
    let mut out = Vec::new();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mode = m.mode() & 0o7777;
            let seen = format!("owner uid {}, mode {mode:04o}", m.uid());
            let fix = format!("chown root:0 {shown} && chmod 0750 {shown}");
            out.push(if m.uid() != 0 || mode & 0o022 != 0 {
                Check::fail("state_dir.perms", expected, seen, fix)
            } else if mode & 0o007 != 0 {
                Check::warn(
                    "state_dir.perms",
                    expected,
                    format!("{seen}: readable by everyone"),
                    format!("chmod 0750 {shown}"),
                )
            } else {
                Check::ok("state_dir.perms", expected, seen)
            });
        }
        Ok(_) => out.push(Check::fail(
            "state_dir.perms",
            expected,
            "not a directory",
            "",
        )),
        Err(e) => out.push(Check::fail(
            "state_dir.perms",
            expected,
            format!("{}: {e}", dir.display()),
            ctx.setup("host"),
        )),
    }
    let token = dir.join(TOKEN_FILE);
    let tshown = sh_quote(&token.display().to_string());
    let texpected = format!("{} owned by root, mode 0600", token.display());
    out.push(match std::fs::metadata(&token) {
        Ok(m) => {
            let mode = m.mode() & 0o7777;
            let seen = format!("owner uid {}, mode {mode:04o}", m.uid());
            Check::verdict(
                "state_dir.token",
                mode == 0o600 && m.uid() == 0,
                texpected,
                seen,
                format!("chown root:0 {tshown} && chmod 0600 {tshown}"),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::warn(
            "state_dir.token",
            texpected,
            "no token yet (warden serve needs one)",
            format!("{} init", ctx.opts.warden),
        ),
        Err(e) => Check::fail("state_dir.token", texpected, e.to_string(), ""),
    });
    out
}

/// What the outbound probe needs: the bridge, forwarding, NAT (and pf on FreeBSD).
pub const OUTBOUND_DEPS: &[&str] = &[
    "network.bridge",
    "network.forwarding",
    "network.nat",
    "network.pf",
];

/// `outbound`: a VNET worker connects to `doctor.probe` through the gateway and the NAT.
pub fn outbound(ctx: &Ctx) -> Vec<Check> {
    let expected = match ctx.opts.probe {
        Some(p) => format!("a VNET worker connects to {p} through the NAT"),
        None => "a VNET worker reaches the outside through the NAT".to_string(),
    };
    if ctx.opts.backend == BackendKind::Bastille {
        return vec![Check::skip(
            "outbound",
            expected,
            "no outbound probe from a jail on this backend yet",
        )];
    }
    let Some(probe) = ctx.opts.probe else {
        return vec![Check::skip(
            "outbound",
            expected,
            "no probe target: pass --probe IP:PORT (or WARDEN_DOCTOR_PROBE)",
        )];
    };
    super::linux::outbound(ctx, probe, expected)
}
