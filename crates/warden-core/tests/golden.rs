//! Golden tests: every rendered file and the default plan, on the default layout plus two tenants.
//! Review a change with `cargo insta review` (or `INSTA_UPDATE=always cargo test` and `git diff`).

use warden_core::config::{load, ExposeConfig, TenantConfig};
use warden_core::observed::BastilleHost;
use warden_core::render::{self, NAMES};
use warden_core::Layout;

fn layout() -> Layout {
    let mut loaded = load(None, &|_| None, &vec![]).unwrap();
    loaded.config.tenants = vec![
        TenantConfig {
            name: "atlas".into(),
            sites: vec!["blog".into(), "shop".into()],
        },
        TenantConfig {
            name: "zeta".into(),
            sites: vec![],
        },
    ];
    Layout::from_loaded(&loaded).unwrap()
}

#[test]
fn every_renderer_has_a_golden_file() {
    let layout = layout();
    // edge-nginx needs an exposure through a proxy: `exposures_render_for_pf_nftables_and_a_proxy` has it.
    for name in NAMES.into_iter().filter(|n| *n != "edge-nginx") {
        let text = render::render(&layout, name, Some("clawdiegit")).unwrap();
        insta::assert_snapshot!(name.replace('.', "_"), text);
    }
}

#[test]
fn thick_db_jail_conf() {
    let layout = layout();
    insta::assert_snapshot!(render::render(&layout, "jail.conf", Some("clawdiedb")).unwrap());
}

#[test]
fn default_bastille_plan_json() {
    let layout = Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap();
    let plan = warden_core::bastille_plan::plan(&layout, &BastilleHost::default());
    insta::assert_snapshot!(serde_json::to_string_pretty(&plan).unwrap());
    insta::assert_snapshot!("default_bastille_plan_text", plan.to_text());
}

#[test]
fn default_config_toml() {
    insta::assert_snapshot!(warden_core::config::default_toml());
}

#[test]
fn jail_conf_needs_a_known_jail() {
    let layout = layout();
    assert!(render::render(&layout, "jail.conf", None)
        .unwrap_err()
        .to_string()
        .contains("--jail"));
    assert!(render::render(&layout, "jail.conf", Some("nope"))
        .unwrap_err()
        .to_string()
        .contains("clawdiegit"));
    assert!(render::render(&layout, "nginx.conf", None)
        .unwrap_err()
        .to_string()
        .contains("bastille.conf"));
}

/// The rc.d script parses as a shell script (`sh -n`), the way rc(8) will source it.
#[test]
fn rc_d_script_parses_with_sh_n() {
    let text = render::render(&layout(), "rc.d", None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden");
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run sh -n");
    assert!(
        out.status.success(),
        "sh -n rejected the rc.d script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And a broken script is rejected, so the check can fail.
    std::fs::write(&path, format!("{text}\nif then\n")).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "sh -n accepted a broken script");
}

/// A public `AGENT_DOMAIN`: only the internal base is `local=`, the registered public names are host records.
#[test]
fn dnsmasq_conf_with_a_public_domain() {
    let env = |k: &str| (k == "AGENT_DOMAIN").then(|| "clawdie.si".to_string());
    let loaded = load(None, &env, &vec![]).unwrap();
    assert_eq!(loaded.config.internal_domain, "clawdie.home.arpa");
    let layout = Layout::from_loaded(&loaded).unwrap();
    let text = render::render(&layout, "dnsmasq.conf", None).unwrap();
    assert!(!text.contains("local=/clawdie.si/"), "{text}");
    insta::assert_snapshot!(text);
}

/// `[[expose]]` entries as the operator writes them.
fn expose(port: i64, to: &str, target_port: Option<i64>, proto: &str, via: &str) -> ExposeConfig {
    ExposeConfig {
        port,
        to: to.into(),
        target_port,
        proto: Some(proto.into()),
        via: Some(via.into()),
    }
}

/// Exposures: 80 and 443 → cms and 5353/udp → git through the firewall render pf `rdr` + `pass` and nftables
/// DNAT + forward accepts; the same web ports through a proxy render only the edge-nginx snippet.
#[test]
fn exposures_render_for_pf_nftables_and_a_proxy() {
    let mut loaded = load(None, &|_| None, &vec![]).unwrap();
    loaded.config.tenants = vec![TenantConfig {
        name: "atlas".into(),
        sites: vec!["blog".into()],
    }];
    loaded.config.expose = vec![
        expose(80, "cms", None, "tcp", "firewall"),
        expose(443, "cms", Some(8443), "tcp", "firewall"),
        expose(5353, "git", Some(53), "udp", "firewall"),
    ];
    let layout = Layout::from_loaded(&loaded).unwrap();
    insta::assert_snapshot!(
        "pf_conf_exposed",
        render::render(&layout, "pf.conf", None).unwrap()
    );
    insta::assert_snapshot!(
        "nftables_exposed",
        render::render(&layout, "nftables", None).unwrap()
    );
    let err = render::render(&layout, "edge-nginx", None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("via = \"proxy\""), "{err}");

    loaded.config.expose = vec![
        expose(80, "cms", None, "tcp", "proxy"),
        expose(443, "cms", Some(80), "tcp", "proxy"),
    ];
    let layout = Layout::from_loaded(&loaded).unwrap();
    insta::assert_snapshot!(
        "edge_nginx",
        render::render(&layout, "edge-nginx", None).unwrap()
    );
    let default = Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap();
    for name in ["pf.conf", "nftables"] {
        assert_eq!(
            render::render(&layout, name, None).unwrap(),
            render::render(&default, name, None).unwrap(),
            "{name}: a proxied exposure adds no firewall rule"
        );
    }
}

fn tailscale_layout(mode: &str, jail: &str) -> Layout {
    let env = |k: &str| match k {
        "WARDEN_TAILSCALE_MODE" => Some(mode.to_string()),
        "WARDEN_TAILSCALE_JAIL" if !jail.is_empty() => Some(jail.to_string()),
        _ => None,
    };
    Layout::from_loaded(&load(None, &env, &vec![]).unwrap()).unwrap()
}

/// `tailscale.mode = subnet`: pf and nftables let `tailscale0` into the subnet; the other modes change neither.
#[test]
fn tailscale_subnet_firewalls() {
    let subnet = tailscale_layout("subnet", "");
    let pf = render::render(&subnet, "pf.conf", None).unwrap();
    let nft = render::render(&subnet, "nftables", None).unwrap();
    insta::assert_snapshot!("tailscale_subnet_pf_conf", pf);
    insta::assert_snapshot!("tailscale_subnet_nftables", nft);
    for (mode, jail) in [("off", ""), ("host", ""), ("jail", "clawdiegit")] {
        let l = tailscale_layout(mode, jail);
        assert_eq!(
            render::render(&l, "pf.conf", None).unwrap(),
            render::render(&layout_without_tenants(), "pf.conf", None).unwrap(),
            "{mode}"
        );
        let nft = render::render(&l, "nftables", None).unwrap();
        assert!(!nft.contains("tailscale0"), "{mode}: {nft}");
    }
}

fn layout_without_tenants() -> Layout {
    Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap()
}

/// `tailscale.mode = jail`: the named jail's jail.conf has devfs ruleset 14 and `allow.tun` (seed 000); the
/// other jails keep Bastille's file.
#[test]
fn tailscale_jail_conf() {
    let l = tailscale_layout("jail", "clawdiegit");
    let text = render::render(&l, "jail.conf", Some("clawdiegit")).unwrap();
    insta::assert_snapshot!("tailscale_jail_conf", text);
    let other = render::render(&l, "jail.conf", Some("clawdiecms")).unwrap();
    assert!(!other.contains("allow.tun") && other.contains("devfs_ruleset = 13;"));
}

/// Forgejo's app.ini for the FreeBSD git jail, its secrets shown as the plan compares them (masked).
#[test]
fn forgejo_app_ini() {
    let secrets = warden_core::forgejo::Secrets::hidden();
    insta::assert_snapshot!(warden_core::forgejo::app_ini(&layout(), &secrets));
}

/// The git jail's nginx.conf with the ports' paths (FreeBSD); one location per owner.
#[test]
fn freebsd_git_nginx_conf() {
    let serving = warden_core::bastille_git::SERVING;
    insta::assert_snapshot!(warden_core::git::nginx_conf(&layout(), &serving));
}

/// The cms jail's nginx.conf on each backend: the catch-all block, then cms, each tenant and each site.
#[test]
fn nginx_conf_per_backend() {
    let layout = layout();
    insta::assert_snapshot!(
        "nginx_conf_linux",
        warden_core::linux_cms::nginx_conf(&layout)
    );
    insta::assert_snapshot!(
        "nginx_conf_freebsd",
        warden_core::bastille_cms::conf_file(&layout, "clawdiecms").1
    );
}
