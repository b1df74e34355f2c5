//! `warden config show`: every key, its value and where it came from; a derived key (computed from others
//! because nobody set it) says `derived` and how.

use warden_core::config::{toml_value, Key, RawValue, KEYS};
use warden_core::error::Source;

use crate::cli::Global;
use crate::context;
use crate::exit::Exit;

/// A key's value as shown: secrets only say whether they are set.
fn shown(key: &Key, config: &warden_core::Config) -> String {
    let value = key.value(config);
    match value {
        RawValue::Str(s) if key.is_secret() && !s.is_empty() => "\"<set, hidden>\"".to_string(),
        other => toml_value(&other),
    }
}

/// Prints every key, its effective value and its source.
pub fn show(global: &Global, json: bool) -> Result<(), Exit> {
    let loaded = context::load(global)?;
    if json {
        let mut keys = serde_json::Map::new();
        for key in KEYS {
            let value = shown(key, &loaded.config);
            let source = loaded.source(key.path);
            let derived = matches!(source, Source::Derived(_));
            keys.insert(
                key.path.to_string(),
                serde_json::json!({"value": value, "source": source.to_string(), "derived": derived, "env": key.env}),
            );
        }
        let out = serde_json::json!({"keys": keys, "tenants": loaded.config.tenants, "tenants_source": loaded.source("tenants").to_string()});
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    let width = KEYS.iter().map(|k| k.path.len()).max().unwrap_or(10);
    for key in KEYS {
        let value = shown(key, &loaded.config);
        println!(
            "{:<width$}  {:<28}  ({})",
            key.path,
            value,
            loaded.source(key.path)
        );
    }
    let tenants: Vec<String> = loaded
        .config
        .tenants
        .iter()
        .map(|t| {
            if t.sites.is_empty() {
                t.name.clone()
            } else {
                format!("{}[{}]", t.name, t.sites.join(","))
            }
        })
        .collect();
    println!(
        "{:<width$}  {:<28}  ({})",
        "tenants",
        format!("[{}]", tenants.join(", ")),
        loaded.source("tenants")
    );
    Ok(())
}
