//! `edge-nginx`: the snippet for an existing reverse proxy on the host (seed 003: "docs.clawdie.si can be fronted
//! by host nginx or another edge proxy and forwarded to the cms jail"). One `upstream` and one `server` per
//! `[[expose]]` entry with `via = "proxy"`; the server answers the names the layout gives the slot (for cms:
//! `cms.<domain>`, every tenant and site) and passes the Host header on, so the slot's own vhosts still choose.

use std::fmt::Write;

use crate::layout::{Layout, Via};

/// Renders the snippet, or `None` when no exposure goes through a proxy.
pub fn render(layout: &Layout) -> Option<String> {
    let proxied: Vec<_> = layout
        .exposures
        .iter()
        .filter(|e| e.via == Via::Proxy)
        .collect();
    if proxied.is_empty() {
        return None;
    }
    let mut out = String::from(
        "# Managed by warden: `warden render edge-nginx` regenerates this file.\n\
         # For the reverse proxy that already owns the public ports: include it in nginx's http {} block\n\
         # (e.g. as conf.d/warden.conf), then `nginx -t` and reload nginx. Warden adds no firewall rule for these.\n",
    );
    for e in proxied {
        let upstream = format!("warden_{}_{}", e.role.name(), e.port);
        let names: Vec<&str> = layout
            .records
            .iter()
            .filter(|r| r.addr == e.target)
            .map(|r| r.name.as_str())
            .collect();
        let listen = if e.port == 443 {
            "443 ssl;\n    # TLS ends here: add this proxy's ssl_certificate and ssl_certificate_key for the names below."
                .to_string()
        } else {
            format!("{};", e.port)
        };
        let _ = write!(
            out,
            r#"
# expose {what}
upstream {upstream} {{
    server {target}:{tport};
}}

server {{
    listen {listen}
    server_name {names};
    location / {{
        proxy_pass http://{upstream};
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
}}
"#,
            what = e.describe(),
            target = e.target,
            tport = e.target_port,
            names = names.join(" "),
        );
    }
    Some(out)
}
