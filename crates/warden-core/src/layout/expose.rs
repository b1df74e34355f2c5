//! Exposure (seed 003): a public port on the host's uplink that reaches one service slot, through the firewall
//! (pf `rdr` on FreeBSD, nftables DNAT on Linux) or through an existing reverse proxy on the host. Validated
//! here, once: ports in range, tcp or udp, a service of this layout, each public port and protocol once.

use std::net::Ipv4Addr;

use super::{Problems, Role, Service, Shape};
use crate::config::ExposeConfig;

/// A transport protocol an exposure carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The name pf and nftables use.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// How outside traffic reaches the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Warden's firewall redirects the public port: pf `rdr` + `pass` (FreeBSD), nftables DNAT + forward accept
    /// (Linux).
    Firewall,
    /// An existing reverse proxy on the host owns the public port and forwards to the slot
    /// (`warden render edge-nginx`); Warden adds no firewall rule.
    Proxy,
}

/// One validated exposure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exposure {
    /// The public port on the uplink.
    pub port: u16,
    /// tcp or udp.
    pub proto: Proto,
    /// The service that answers.
    pub role: Role,
    /// Its address on the bridge.
    pub target: Ipv4Addr,
    /// Its port.
    pub target_port: u16,
    /// Firewall or proxy.
    pub via: Via,
}

impl Exposure {
    /// `80/tcp → cms 10.0.1.3:80`, for summaries and reports.
    pub fn describe(&self) -> String {
        format!(
            "{}/{} → {} {}:{}",
            self.port,
            self.proto.name(),
            self.role.name(),
            self.target,
            self.target_port
        )
    }

    /// The doctor's name for it: `expose.80-tcp`.
    pub fn check_name(&self) -> String {
        format!("expose.{}-{}", self.port, self.proto.name())
    }
}

/// A port from an entry, or why not.
fn port_of(n: i64) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| format!("{n} is not a port (1 to 65535)"))
}

/// The validated `[[expose]]` entries; every problem goes into `p`, naming the entry.
pub(super) fn exposures_of(
    entries: &[ExposeConfig],
    services: &[Service],
    p: &mut Problems,
) -> Vec<Exposure> {
    let jails: Vec<&Service> = services
        .iter()
        .filter(|s| s.shape != Shape::Image)
        .collect();
    let names = jails
        .iter()
        .map(|s| s.role.name())
        .collect::<Vec<_>>()
        .join(", ");
    let mut out: Vec<Exposure> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let entry = format!("[[expose]] #{} (port {}, to {:?})", i + 1, e.port, e.to);
        let mut bad = |rule: String, fix: &str| {
            p.bad("expose", &entry, rule, fix);
        };
        let port = port_of(e.port)
            .map_err(|r| bad(format!("port: {r}"), "port = 80"))
            .ok();
        // Absent, it is the public port: a bad one is reported once, as `port`.
        let target_port = match e.target_port {
            Some(n) => port_of(n)
                .map_err(|r| bad(format!("target_port: {r}"), "target_port = 80"))
                .ok(),
            None => port,
        };
        let proto = match e.proto.as_deref().unwrap_or("tcp") {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            other => {
                bad(
                    format!("proto {other:?} is neither tcp nor udp"),
                    "proto = \"tcp\" (or \"udp\")",
                );
                None
            }
        };
        let via = match e.via.as_deref().unwrap_or("firewall") {
            "firewall" => Some(Via::Firewall),
            "proxy" => Some(Via::Proxy),
            other => {
                bad(
                    format!("via {other:?} is neither firewall nor proxy"),
                    "via = \"firewall\" (pf rdr / nftables DNAT) or via = \"proxy\" (an existing reverse proxy)",
                );
                None
            }
        };
        let service = jails.iter().find(|s| s.role.name() == e.to);
        if service.is_none() {
            bad(
                format!("{:?} is not a service jail of this layout", e.to),
                &format!("to = one of {names}"),
            );
        }
        let (Some(port), Some(target_port), Some(proto), Some(via), Some(service)) =
            (port, target_port, proto, via, service)
        else {
            continue;
        };
        if via == Via::Proxy && proto == Proto::Udp {
            bad(
                "an HTTP reverse proxy carries tcp only".into(),
                "use proto = \"tcp\" with via = \"proxy\", or via = \"firewall\" for udp",
            );
            continue;
        }
        if let Some(first) = out.iter().find(|x| x.port == port && x.proto == proto) {
            bad(
                format!(
                    "public port {port}/{} is already exposed ({})",
                    proto.name(),
                    first.describe()
                ),
                "expose each public port and protocol once",
            );
            continue;
        }
        out.push(Exposure {
            port,
            proto,
            role: service.role,
            target: service.addr,
            target_port,
            via,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::error::ConfigError;
    use crate::layout::Layout;

    fn layout(toml: &str) -> Result<Layout, ConfigError> {
        let loaded = load(Some(("w.toml", toml)), &|_| None, &vec![])?;
        Layout::from_loaded(&loaded)
    }

    fn refused(toml: &str) -> String {
        layout(toml).unwrap_err().to_string()
    }

    #[test]
    fn an_entry_gets_its_defaults_and_the_slot_address() {
        let l = layout("[[expose]]\nport = 80\nto = \"cms\"\n\n[[expose]]\nport = 5353\nto = \"git\"\ntarget_port = 53\nproto = \"udp\"\n").unwrap();
        assert_eq!(
            l.exposures,
            [
                Exposure {
                    port: 80,
                    proto: Proto::Tcp,
                    role: Role::Cms,
                    target: Ipv4Addr::new(10, 0, 1, 3),
                    target_port: 80,
                    via: Via::Firewall,
                },
                Exposure {
                    port: 5353,
                    proto: Proto::Udp,
                    role: Role::Git,
                    target: Ipv4Addr::new(10, 0, 1, 2),
                    target_port: 53,
                    via: Via::Firewall,
                }
            ]
        );
        assert_eq!(l.exposures[0].describe(), "80/tcp → cms 10.0.1.3:80");
        assert_eq!(l.exposures[0].check_name(), "expose.80-tcp");
        assert!(layout("").unwrap().exposures.is_empty());
    }

    #[test]
    fn bad_entries_are_refused_naming_the_entry_and_the_fix() {
        let cases = [
            (
                "port = 0\nto = \"cms\"",
                "port: 0 is not a port",
                "port = 80",
            ),
            (
                "port = 70000\nto = \"cms\"",
                "port: 70000 is not a port",
                "port = 80",
            ),
            (
                "port = 80\nto = \"cms\"\ntarget_port = -1",
                "target_port: -1",
                "target_port = 80",
            ),
            (
                "port = 80\nto = \"cms\"\nproto = \"sctp\"",
                "\"sctp\" is neither tcp nor udp",
                "proto = \"tcp\"",
            ),
            (
                "port = 80\nto = \"cms\"\nvia = \"magic\"",
                "\"magic\" is neither firewall nor proxy",
                "via = \"firewall\"",
            ),
            (
                "port = 80\nto = \"www\"",
                "\"www\" is not a service jail",
                "to = one of git, cms, ai, db",
            ),
            (
                "port = 80\nto = \"browser\"",
                "\"browser\" is not a service jail",
                "to = one of",
            ),
            (
                "port = 53\nto = \"git\"\nproto = \"udp\"\nvia = \"proxy\"",
                "carries tcp only",
                "use proto = \"tcp\" with via = \"proxy\"",
            ),
        ];
        for (entry, rule, fix) in cases {
            let text = refused(&format!("[[expose]]\n{entry}\n"));
            assert!(
                text.contains("invalid expose = \"[[expose]] #1"),
                "{entry}: {text}"
            );
            assert!(text.contains(rule), "{entry}: {text}");
            assert!(text.contains(&format!("fix: {fix}")), "{entry}: {text}");
        }
    }

    #[test]
    fn a_disabled_db_is_no_target_and_a_public_port_is_exposed_once() {
        let text = refused("[jails]\ndb = false\n[[expose]]\nport = 5432\nto = \"db\"\n");
        assert!(
            text.contains("to = one of git, cms, ai\n")
                || text.ends_with("to = one of git, cms, ai"),
            "{text}"
        );
        let text =
            refused("[[expose]]\nport = 80\nto = \"cms\"\n[[expose]]\nport = 80\nto = \"git\"\n");
        assert!(text.contains("[[expose]] #2"), "{text}");
        assert!(
            text.contains("public port 80/tcp is already exposed (80/tcp → cms 10.0.1.3:80)"),
            "{text}"
        );
        // The same number on the other protocol is another public port.
        let l = layout("[[expose]]\nport = 53\nto = \"git\"\n[[expose]]\nport = 53\nto = \"git\"\nproto = \"udp\"\n").unwrap();
        assert_eq!(l.exposures.len(), 2);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_with_an_example() {
        for entry in [
            "port = 80\nto = \"cms\"\nport_to = 8080",
            "port = \"eighty\"\nto = \"cms\"",
            "to = \"cms\"",
        ] {
            let text = refused(&format!("[[expose]]\n{entry}\n"));
            assert!(text.contains("invalid expose"), "{entry}: {text}");
            assert!(
                text.contains("fix: [[expose]]\nport = 80\nto = \"cms\""),
                "{entry}: {text}"
            );
        }
        let text = refused("expose = 80\n");
        assert!(text.contains("array of tables"), "{text}");
    }
}
