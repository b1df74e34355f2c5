//! Golden tests: every rendered file and the default plan, on the default layout plus two tenants.
//! Review a change with `cargo insta review` (or `INSTA_UPDATE=always cargo test` and `git diff`).

use warden_core::config::{load, TenantConfig};
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
    for name in NAMES {
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
