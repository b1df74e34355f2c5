//! The agent workers run (pi, pinned) as setup installs it: where it goes, how npm is called, which node it
//! needs. The `agent` step of each backend plans with these, and warden-agent's installer (the tests' pi) runs
//! the same npm command and writes the same marker; `warden serve` only reads the result.

/// The npm package of the pi coding agent.
pub const PI_PACKAGE: &str = "@mariozechner/pi-coding-agent";

/// pi 0.73.1 declares `"engines": {"node": ">=20.6.0"}`.
pub const MIN_NODE: (u32, u32, u32) = (20, 6, 0);

/// The file under the install prefix that says an install of `PACKAGE@VERSION` completed (npm killed half-way
/// leaves a `package.json` of the right version beside missing files). Its content is `PACKAGE@VERSION\n`.
pub const INSTALLED_MARKER: &str = ".warden-installed";

/// pi's install prefix under a state directory.
pub fn pi_dir(state_dir: &str) -> String {
    format!("{}/pi", state_dir.trim_end_matches('/'))
}

/// The package's `package.json` under an install prefix.
pub fn package_json(prefix: &str) -> String {
    format!("{prefix}/node_modules/{PI_PACKAGE}/package.json")
}

/// pi's entry point under an install prefix.
pub fn cli_js(prefix: &str) -> String {
    format!("{prefix}/node_modules/{PI_PACKAGE}/dist/cli.js")
}

/// What [`INSTALLED_MARKER`] holds once `version` is installed.
pub fn marker_content(version: &str) -> String {
    format!("{PI_PACKAGE}@{version}\n")
}

/// `npm install` of the pinned pi into `prefix`. `--prefer-offline` takes what npm's cache holds without asking
/// the registry: on a host that cannot reach the registry but has the packages cached, npm otherwise waits
/// ~70 s per package (three failed fetches) before it falls back to the cache, which for pi is hours.
pub fn npm_install_argv(prefix: &str, version: &str) -> Vec<String> {
    [
        "npm",
        "install",
        "--prefix",
        prefix,
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        "--loglevel=error",
        &format!("{PI_PACKAGE}@{version}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The `agent` step's actions for pi `version` under `prefix`: npm install, then the completion marker; none when
/// `installed` (the version its `package.json` names) and `files` (the host's managed files, by path) say both
/// are there. `how` ends the install action's summary (how workers reach it).
pub fn install_actions(
    prefix: &str,
    version: &str,
    installed: Option<&str>,
    files: &std::collections::BTreeMap<String, String>,
    how: &str,
) -> Vec<crate::plan::Action> {
    use crate::plan::{Action, Step};
    let marker_path = format!("{prefix}/{INSTALLED_MARKER}");
    let marker = marker_content(version);
    if installed == Some(version) && files.get(&marker_path) == Some(&marker) {
        return Vec::new();
    }
    vec![
        Action::run(
            Step::Agent,
            format!("install pi {version} ({PI_PACKAGE}) into {prefix}: {how}, and `warden serve` never installs it"),
            &npm_install_argv(prefix, version),
        )
        .verified_by(&["test", "-f", &cli_js(prefix)]),
        Action::file(
            Step::Agent,
            format!("mark pi {version} as completely installed"),
            &marker_path,
            "0644",
            marker,
        ),
    ]
}

/// Parses `v20.20.2` (or `20.20.2`) into a version triple.
pub fn parse_node_version(text: &str) -> Option<(u32, u32, u32)> {
    let t = text.trim().trim_start_matches('v');
    let mut parts = t.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts
        .next()?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((major, minor, patch))
}

/// The version field of a `package.json`.
pub fn package_version(package_json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(package_json).ok()?;
    v.get("version")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_paths() {
        assert_eq!(parse_node_version("v20.20.2\n"), Some((20, 20, 2)));
        assert!(parse_node_version("v20.5.9").unwrap() < MIN_NODE);
        assert_eq!(parse_node_version("garbage"), None);
        assert_eq!(
            cli_js(&pi_dir("/var/lib/warden/")),
            "/var/lib/warden/pi/node_modules/@mariozechner/pi-coding-agent/dist/cli.js"
        );
        assert_eq!(
            package_version(r#"{"version":"0.73.1"}"#).as_deref(),
            Some("0.73.1")
        );
    }
}
