//! Renderers: layout → the exact text of every file Warden writes. Pure and golden-tested.

pub mod bastille_conf;
pub mod dnsmasq_conf;
pub mod edge_nginx;
pub mod expose;
pub mod hosts;
pub mod jail_conf;
pub mod nftables;
pub mod pf_conf;
pub mod rc_conf;
pub mod rc_d;
pub mod tailscale;

use crate::layout::Layout;

/// Every renderable file, by the name `warden render NAME` takes.
pub const NAMES: [&str; 9] = [
    "bastille.conf",
    "pf.conf",
    "dnsmasq.conf",
    "hosts",
    "rc.conf",
    "jail.conf",
    "rc.d",
    "nftables",
    "edge-nginx",
];

/// Default patch level written into `osrelease` when the release's own `freebsd-version` is not known.
pub const DEFAULT_PATCH: &str = "";

/// Why a file could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The name is not one of [`NAMES`].
    #[error("unknown file {0:?}\n  fix: use one of {names}", names = NAMES.join(", "))]
    UnknownName(String),
    /// `jail.conf` needs a jail.
    #[error("jail.conf needs --jail NAME\n  fix: use one of {0}")]
    MissingJail(String),
    /// The jail is not in the layout.
    #[error("no jail {0:?} in the layout\n  fix: use one of {1}")]
    UnknownJail(String, String),
    /// `edge-nginx` without an exposure through a proxy.
    #[error("no [[expose]] entry has via = \"proxy\": the edge-nginx snippet would be empty\n  fix: add one to the config, e.g.\n[[expose]]\nport = 80\nto = \"cms\"\nvia = \"proxy\"")]
    NoProxyExposure,
}

/// Renders the file `name` (for `jail.conf`, of `jail`).
pub fn render(layout: &Layout, name: &str, jail: Option<&str>) -> Result<String, RenderError> {
    Ok(match name {
        "bastille.conf" => bastille_conf::render(layout),
        "pf.conf" => pf_conf::render(layout),
        "dnsmasq.conf" => dnsmasq_conf::render(layout),
        "hosts" => hosts::render(layout),
        "rc.conf" => rc_conf::render(layout),
        "rc.d" => rc_d::render(layout),
        "nftables" => nftables::render(layout),
        "edge-nginx" => edge_nginx::render(layout).ok_or(RenderError::NoProxyExposure)?,
        "jail.conf" => {
            let names = || {
                layout
                    .jails()
                    .map(|s| s.jail.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let jail = jail.ok_or_else(|| RenderError::MissingJail(names()))?;
            let service = layout
                .jails()
                .find(|s| s.jail == jail)
                .ok_or_else(|| RenderError::UnknownJail(jail.to_string(), names()))?;
            jail_conf::render(
                layout,
                service,
                &format!("{}{}", layout.release, DEFAULT_PATCH),
                jail_conf::LogStyle::PerJail,
            )
        }
        other => return Err(RenderError::UnknownName(other.to_string())),
    })
}
