//! `warden pi-config` (seed 002's `just pi-config`): the agent's runtime config — provider, model, base URL, the
//! `models.json` Warden writes into a worker's agent dir, whether the pinned pi is installed in the state
//! directory, and which node would run it — validated, with remedies.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use warden_agent::{install, models_json, AgentConfig, PI_PACKAGE, PI_VERSION};
use warden_core::layout::url_host_port;
use warden_core::Config;

use crate::report::{Check, Report};

/// What `pi-config` shows.
#[derive(Debug, Clone, Serialize)]
pub struct PiConfig {
    /// `agent.provider`.
    pub provider: String,
    /// `agent.model`.
    pub model: String,
    /// `agent.base_url`.
    pub base_url: String,
    /// `agent.api_key_env`.
    pub api_key_env: String,
    /// `agent.pi_version`.
    pub pi_version: String,
    /// Where pi is installed (`<state_dir>/pi`).
    pub pi_dir: PathBuf,
    /// The `models.json` a worker gets.
    pub models_json: serde_json::Value,
    /// The validation.
    #[serde(flatten)]
    pub report: Report,
}

impl PiConfig {
    /// The human view: the values, models.json, then the checks table.
    pub fn to_text(&self, color: bool) -> String {
        let models = serde_json::to_string_pretty(&self.models_json).unwrap_or_default();
        format!(
            "provider     {}\nmodel        {}\nbase_url     {}\napi_key_env  {}\npi           {PI_PACKAGE}@{} in {}\n\nmodels.json:\n{models}\n\n{}",
            self.provider,
            self.model,
            self.base_url,
            if self.api_key_env.is_empty() { "(none)" } else { &self.api_key_env },
            self.pi_version,
            self.pi_dir.display(),
            self.report.to_table(color)
        )
    }

    /// `{"provider",…,"models_json",…,"checks":[…],"summary":{…}}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The agent config a worker uses, from Warden's config.
pub fn agent_config(config: &Config) -> AgentConfig {
    AgentConfig {
        provider: config.agent_provider.clone(),
        model: config.agent_model.clone(),
        base_url: config.agent_base_url.clone(),
        api_key_env: (!config.agent_api_key_env.is_empty())
            .then(|| config.agent_api_key_env.clone()),
        version: config.agent_pi_version.clone(),
        ..AgentConfig::default()
    }
}

/// Builds and validates the agent's runtime config. `pi_dir`: where pi lives (`<state_dir>/pi`).
pub fn check(config: &Config, pi_dir: &Path) -> PiConfig {
    let started = Instant::now();
    let cfg = agent_config(config);
    let mut checks = provider_checks(&cfg);
    checks.push(pi_version_check(&cfg));
    checks.push(pi_installed_check(&cfg, pi_dir));
    checks.push(node_check());
    let models_json = serde_json::from_str(&models_json(&cfg)).unwrap_or(serde_json::Value::Null);
    PiConfig {
        provider: cfg.provider,
        model: cfg.model,
        base_url: cfg.base_url,
        api_key_env: config.agent_api_key_env.clone(),
        pi_version: cfg.version,
        pi_dir: pi_dir.to_path_buf(),
        models_json,
        report: Report::new(checks, "agent", started.elapsed().as_millis() as u64),
    }
}

/// The provider: its name, the model, the base URL (asked for its models) and, when named, the key's variable.
fn provider_checks(cfg: &AgentConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(if cfg.provider.trim().is_empty() {
        Check::fail(
            "agent.provider",
            "a provider name",
            "empty",
            set("agent.provider", "WARDEN_AGENT_PROVIDER"),
        )
    } else {
        Check::ok("agent.provider", "a provider name", cfg.provider.clone())
    });
    checks.push(if cfg.model.trim().is_empty() {
        Check::fail(
            "agent.model",
            "a model id",
            "empty",
            set("agent.model", "WARDEN_AGENT_MODEL"),
        )
    } else {
        Check::ok("agent.model", "a model id", cfg.model.clone())
    });

    let expected =
        "an http(s) OpenAI-compatible base URL ending in /v1 whose /models lists agent.model";
    checks.push(match url_host_port(&cfg.base_url) {
        Err(why) => Check::fail(
            "agent.base_url",
            expected,
            format!("{:?}: {why}", cfg.base_url),
            set("agent.base_url", "WARDEN_AGENT_BASE_URL"),
        ),
        Ok((host, port)) => base_url_check(cfg, &host, port, expected),
    });

    if let Some(name) = &cfg.api_key_env {
        let expected = format!("${name} holds the provider key (local providers need none)");
        checks.push(match std::env::var_os(name) {
            Some(v) if !v.is_empty() => {
                Check::ok("agent.api_key", expected, format!("${name} is set"))
            }
            _ => Check::warn(
                "agent.api_key",
                expected,
                format!("${name} is not set"),
                format!("export {name}=<key>"),
            ),
        });
    }
    checks
}

/// `agent.pi_version`: the version the turn contract was checked against.
fn pi_version_check(cfg: &AgentConfig) -> Check {
    let expected = format!("the version Warden's turn contract was checked against ({PI_VERSION})");
    if cfg.version == PI_VERSION {
        Check::ok("agent.pi_version", expected, cfg.version.clone())
    } else {
        Check::warn(
            "agent.pi_version",
            expected,
            format!("{} (argv and events are unverified for it)", cfg.version),
            format!("set agent.pi_version = \"{PI_VERSION}\" in warden.toml"),
        )
    }
}

/// `agent.pi_installed`: that version, completely installed in `pi_dir`.
fn pi_installed_check(cfg: &AgentConfig, pi_dir: &Path) -> Check {
    let expected = format!(
        "{PI_PACKAGE}@{} installed in {}",
        cfg.version,
        pi_dir.display()
    );
    // Setup's `agent` step installs it (journaled; `warden serve` never does).
    let state = pi_dir.parent().unwrap_or(pi_dir).display().to_string();
    let npm = format!(
        "warden --state-dir {} setup --backend linux --step agent",
        crate::sh_quote(&state)
    );
    match install::installed_version(pi_dir, PI_PACKAGE) {
        Some(v) if v == cfg.version && install::installed_pi(pi_dir, &v).is_none() => Check::fail(
            "agent.pi_installed",
            expected,
            format!("{v} is there but its install did not complete"),
            npm,
        ),
        Some(v) if v == cfg.version => Check::ok(
            "agent.pi_installed",
            expected,
            format!("{v} at {}", install::pi_cli_js(pi_dir).display()),
        ),
        Some(v) => Check::fail(
            "agent.pi_installed",
            expected,
            format!("version {v} is installed"),
            npm,
        ),
        None => Check::fail("agent.pi_installed", expected, "not installed", npm),
    }
}

/// `agent.node`: a node new enough to run pi.
fn node_check() -> Check {
    let (a, b, c) = install::MIN_NODE;
    let expected = format!("a node >= {a}.{b}.{c} on PATH to run pi");
    match warden_agent::find_node() {
        Ok(path) => {
            let v = install::node_version(&path)
                .map(|(x, y, z)| format!("v{x}.{y}.{z}"))
                .unwrap_or_default();
            Check::ok("agent.node", expected, format!("{} {v}", path.display()))
        }
        Err(e) => Check::fail(
            "agent.node",
            expected,
            e.to_string(),
            "apt-get install -y nodejs (or pkg install -y node22 on FreeBSD)",
        ),
    }
}

fn set(key: &str, env: &str) -> String {
    format!("set {key} in warden.toml (or {env})")
}

/// Asks an http:// provider for its models (the model must be listed); an https:// one (no TLS client
/// here) is only checked to accept TCP.
fn base_url_check(cfg: &AgentConfig, host: &str, port: u16, expected: &str) -> Check {
    let fix = set("agent.base_url", "WARDEN_AGENT_BASE_URL");
    if !cfg.base_url.trim_end_matches('/').ends_with("/v1") {
        return Check::warn(
            "agent.base_url",
            expected,
            format!(
                "{} does not end in /v1 (pi appends /chat/completions)",
                cfg.base_url
            ),
            fix,
        );
    }
    let down = "start the model server (`warden setup --step ai`), or point agent.base_url at a running one";
    if cfg.base_url.starts_with("https://") {
        return match reachable(host, port, Duration::from_millis(500)) {
            Ok(ms) => Check::ok(
                "agent.base_url",
                expected,
                format!(
                    "{} accepts TCP in {ms} ms (TLS: the model list is not asked)",
                    cfg.base_url
                ),
            ),
            Err(e) => Check::warn(
                "agent.base_url",
                expected,
                format!("{host}:{port} is not reachable from here: {e}"),
                down,
            ),
        };
    }
    let t0 = Instant::now();
    match warden_core::models_probe::list_models(&cfg.base_url, Duration::from_secs(2)) {
        Ok(ids) if ids.contains(&cfg.model) => Check::ok(
            "agent.base_url",
            expected,
            format!(
                "GET {}/models names {} ({} ms)",
                cfg.base_url.trim_end_matches('/'),
                cfg.model,
                t0.elapsed().as_millis()
            ),
        ),
        Ok(ids) => Check::warn(
            "agent.base_url",
            expected,
            format!("the server lists {ids:?}, not {:?}", cfg.model),
            set("agent.model", "WARDEN_AGENT_MODEL"),
        ),
        Err(e) => Check::warn("agent.base_url", expected, e, down),
    }
}

fn reachable(host: &str, port: u16, timeout: Duration) -> Result<u128, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| format!("{host} has no address"))?;
    let t0 = Instant::now();
    TcpStream::connect_timeout(addr, timeout).map_err(|e| e.to_string())?;
    Ok(t0.elapsed().as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn urls() {
        assert_eq!(
            url_host_port("http://10.0.1.4:8080/v1").unwrap(),
            ("10.0.1.4".into(), 8080)
        );
        assert_eq!(
            url_host_port("https://api.example/v1").unwrap(),
            ("api.example".into(), 443)
        );
        assert!(url_host_port("ftp://x").is_err());
        assert!(url_host_port("10.0.1.4:8080").is_err());
        assert!(url_host_port("http://h:99999/v1").is_err());
    }

    #[test]
    fn validates_and_shows_models_json() {
        // A TCP listener that speaks no HTTP is not a model server.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            agent_base_url: format!("http://127.0.0.1:{port}/v1"),
            ..Config::default()
        };
        drop(listener);
        let got = check(&config, dir.path());
        assert_eq!(
            got.report.get("agent.base_url").unwrap().status,
            Status::Warn
        );
        // A server whose /v1/models lists another model: a warning naming agent.model.
        let mock = warden_agent::mock::MockProvider::start(
            ("127.0.0.1", 0),
            warden_agent::mock::Script::new(vec![]),
        )
        .unwrap();
        config.agent_base_url = mock.base_url();
        let other = check(&config, dir.path());
        let c = other.report.get("agent.base_url").unwrap();
        assert_eq!(c.status, Status::Warn);
        assert!(c.seen.contains("mock-model"), "{}", c.seen);
        config.agent_model = "mock-model".into();
        let got_ok = check(&config, dir.path());
        assert_eq!(
            got_ok.report.get("agent.base_url").unwrap().status,
            Status::Ok
        );
        config.agent_model = "smollm2".into();
        let pi = got.report.get("agent.pi_installed").unwrap();
        assert_eq!(pi.status, Status::Fail);
        assert!(
            pi.remedy.starts_with("warden --state-dir ")
                && pi.remedy.ends_with("setup --backend linux --step agent"),
            "{}",
            pi.remedy
        );
        assert_eq!(
            got.models_json["providers"]["local"]["models"][0]["id"],
            "smollm2"
        );
        let json: serde_json::Value = serde_json::from_str(&got.to_json()).unwrap();
        assert!(json["checks"].is_array() && json["summary"]["fail"].as_u64().unwrap() >= 1);

        // Installed at the pinned version: ok.
        let pkg = install::package_dir(dir.path(), PI_PACKAGE);
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(
            pkg.join("package.json"),
            format!("{{\"version\":\"{PI_VERSION}\"}}"),
        )
        .unwrap();
        // warden-core's agent step and warden-agent's install name the same package and marker.
        assert_eq!(warden_core::pi::PI_PACKAGE, PI_PACKAGE);
        // Half installed (npm killed before the marker): still a failure.
        assert_eq!(
            check(&config, dir.path())
                .report
                .get("agent.pi_installed")
                .unwrap()
                .status,
            Status::Fail
        );
        std::fs::create_dir_all(pkg.join("dist")).unwrap();
        std::fs::write(pkg.join("dist/cli.js"), "").unwrap();
        std::fs::write(
            dir.path().join(warden_core::pi::INSTALLED_MARKER),
            warden_core::pi::marker_content(PI_VERSION),
        )
        .unwrap();
        assert_eq!(
            check(&config, dir.path())
                .report
                .get("agent.pi_installed")
                .unwrap()
                .status,
            Status::Ok
        );

        config.agent_base_url = "localhost:8080".into();
        config.agent_model = String::new();
        let bad = check(&config, dir.path());
        assert_eq!(
            bad.report.get("agent.base_url").unwrap().status,
            Status::Fail
        );
        assert_eq!(bad.report.get("agent.model").unwrap().status, Status::Fail);
        drop(mock);
    }
}
