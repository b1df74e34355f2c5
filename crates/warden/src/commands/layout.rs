//! `warden layout`: the registry as a table or JSON.

use std::net::Ipv4Addr;

use crate::cli::Global;
use crate::context;
use crate::exit::Exit;

/// Prints the layout.
pub fn run(global: &Global, json: bool) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&layout).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "subnet {}  bridge {}  gateway {}  domain {}",
        layout.cidr(),
        layout.bridge,
        layout.gateway,
        layout.domain
    );
    println!();
    row("slot", "role", "jail", "shape", "name");
    let host_names = format!("ai.{}, {}", layout.domain, layout.internal_domain);
    row(
        &layout.gateway.to_string(),
        "gateway",
        "(host)",
        "-",
        &host_names,
    );
    for s in &layout.services {
        let shape = serde_json::to_value(s.shape)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        row(&s.addr.to_string(), s.role.name(), &s.jail, &shape, &s.fqdn);
    }
    let range = |(first, last): (Ipv4Addr, Ipv4Addr)| format!("{first}-{}", last.octets()[3]);
    row(&range(layout.workers), "worker", "(ephemeral)", "thin", "-");
    row(
        &range(layout.browser_clones),
        "browser-clone",
        "(ephemeral)",
        "image",
        "-",
    );
    if !layout.tenants.is_empty() {
        println!();
        for t in &layout.tenants {
            let sites: Vec<String> = t.sites.iter().map(|s| format!("{s}.{}", t.fqdn)).collect();
            let sites = if sites.is_empty() {
                String::new()
            } else {
                format!("  sites: {}", sites.join(", "))
            };
            println!("tenant {:<12} {}{sites}", t.name, t.fqdn);
        }
    }
    Ok(())
}

fn row(slot: &str, role: &str, jail: &str, shape: &str, name: &str) {
    println!("{slot:<16} {role:<14} {jail:<16} {shape:<6} {name}");
}
