//! `cms.vhost.<name>`: each name the cms serves, as a client on the bridge would reach it — resolved by
//! Warden's dnsmasq on the gateway, then `GET /` over HTTP with that name as the Host; the answer must be 200
//! and carry the vhost's own `X-Warden-Vhost` header (so a catch-all 404 or another server does not pass).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use warden_core::cms::{self, HTTP_PORT, VHOST_HEADER};
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
pub fn get(addr: Ipv4Addr, name: &str, limit: Duration) -> std::io::Result<(u16, Option<String>)> {
    let deadline = Instant::now() + limit;
    let mut s = TcpStream::connect_timeout(&SocketAddr::from((addr, HTTP_PORT)), limit)?;
    s.set_read_timeout(Some(limit))?;
    s.set_write_timeout(Some(limit))?;
    write!(
        s,
        "GET / HTTP/1.0\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // The head is enough; stop at its end, the peer's close, or the deadline.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        if Instant::now() >= deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} ms", limit.as_millis()),
            ));
        }
        // A signal landing during the read is not the server's answer: read again.
        let n = match s.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_head(&String::from_utf8_lossy(&buf))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

/// The status code and the vhost header of an HTTP response head.
fn parse_head(head: &str) -> Option<(u16, Option<String>)> {
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let header = lines.take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(VHOST_HEADER)
            .then(|| v.trim().to_string())
    });
    Some((status, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_and_header() {
        let head = "HTTP/1.1 200 OK\r\nServer: nginx\r\nx-warden-vhost: a.home.arpa\r\n\r\nbody";
        assert_eq!(
            parse_head(head),
            Some((200, Some("a.home.arpa".to_string())))
        );
        assert_eq!(
            parse_head("HTTP/1.1 404 Not Found\r\n\r\n"),
            Some((404, None))
        );
        assert_eq!(parse_head("garbage"), None);
    }
}
