//! `cms.vhost.<name>`: each name the cms serves, as a client on the bridge would reach it — resolved by
//! Warden's dnsmasq on the gateway, then `GET /` over HTTP with that name as the Host; the answer must be 200
//! and carry the vhost's own `X-Warden-Vhost` header (so a catch-all 404 or another server does not pass).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use warden_core::cms::{self, HTTP_PORT, VHOST_HEADER};
use warden_core::http_get::{self, HttpError, Want};
use warden_core::layout::Role;

use crate::dns_client::query_a;
use crate::report::{Check, Status};
use crate::Ctx;

/// The names the layout's cms jail serves (one task each).
pub fn vhost_names(ctx: &Ctx) -> Vec<String> {
    cms::vhosts(ctx.layout())
        .into_iter()
        .map(|v| v.name)
        .collect()
}

/// `cms.vhost.<name>`.
pub fn vhost(ctx: &Ctx, name: &str) -> Vec<Check> {
    let layout = ctx.layout();
    let Some(svc) = layout.service(Role::Cms) else {
        return Vec::new();
    };
    let check = format!("cms.vhost.{name}");
    let expected = format!(
        "{name} resolves to {} through dnsmasq at {}:53, and GET http://{name}/ answers 200 with {VHOST_HEADER}: {name}",
        svc.addr, layout.gateway
    );
    if ctx.simulated() {
        return vec![Check::skip(
            check,
            expected,
            "simulated host: nothing answers HTTP in a simulated jail",
        )];
    }
    let bridge = crate::checks::network::bridge(ctx);
    if bridge.iter().any(|c| c.status == Status::Fail) {
        return vec![Check::skip(
            check,
            expected,
            "the bridge is not usable (network.bridge fails)",
        )];
    }
    // A dead dnsmasq is dns.service's failure; every name would only repeat it.
    let service = crate::checks::dns::service(ctx);
    if service.iter().any(|c| c.status == Status::Fail) {
        return vec![Check::skip(
            check,
            expected,
            "Warden's dnsmasq is not running (dns.service fails)",
        )];
    }
    let dns = SocketAddr::from((layout.gateway, 53));
    let addrs = match query_a(dns, name, ctx.opts.dns_timeout) {
        Ok(a) => a,
        Err(e) => {
            return vec![Check::fail(
                check,
                expected,
                e.to_string(),
                ctx.setup("dns"),
            )]
        }
    };
    if !addrs.contains(&svc.addr) {
        return vec![Check::fail(
            check,
            expected,
            format!("dnsmasq answers {name} with {addrs:?}"),
            ctx.setup("dns"),
        )];
    }
    let fix = format!(
        "{} (starts nginx in {} with a block for {name})",
        ctx.setup("cms"),
        svc.jail
    );
    let t0 = Instant::now();
    match get(svc.addr, name, ctx.opts.timeout) {
        Ok((status, header)) if status == 200 && header.as_deref() == Some(name) => {
            vec![Check::ok(
                check,
                expected,
                format!("200 in {} ms", t0.elapsed().as_millis()),
            )]
        }
        Ok((status, header)) => vec![Check::fail(
            check,
            expected,
            format!(
                "HTTP {status}, {VHOST_HEADER}: {}",
                header.as_deref().unwrap_or("(none)")
            ),
            fix,
        )],
        Err(e) => vec![Check::fail(
            check,
            expected,
            format!("GET http://{name}/ at {}:{HTTP_PORT}: {e}", svc.addr),
            fix,
        )],
    }
}

/// `GET /` with Host `name` at `addr:80`, within `limit`: the status and the vhost header, if any.
pub fn get(
    addr: Ipv4Addr,
    name: &str,
    limit: Duration,
) -> Result<(u16, Option<String>), HttpError> {
    let r = http_get::get(
        SocketAddr::from((addr, HTTP_PORT)),
        name,
        "/",
        Want::Head,
        limit,
    )?;
    Ok((r.status, r.header(VHOST_HEADER).map(str::to_string)))
}
