//! The CLI end to end: config precedence, validation exit codes, plan JSON.

mod common;

use common::{ok_stdout, warden};

#[test]
fn bad_config_exits_2_naming_the_variable_and_fix() {
    for (var, value, needle) in [
        ("AGENT_SUBNET_BASE", "8.8.8", "private"),
        ("AGENT_DOMAIN", "home.local", ".local"),
        ("TENANT_ID", "a_b", "'_'"),
        ("WARDEN_SLOT_CMS", "2", "already taken"),
    ] {
        let out = warden(&["layout"], &[(var, value)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(
            err.contains(var) && err.contains(needle) && err.contains("fix:"),
            "{var}={value}: {err}"
        );
    }
}

#[test]
fn a_closed_stdout_pipe_is_a_normal_end() {
    // `warden init --stdout | head`: the reader is gone before warden writes (read end closed
    // first, so the write surely meets EPIPE); warden ends with 0 and no panic message.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(common::warden_bin())
        .args(["init", "--stdout"])
        .env_clear()
        .stdout(writer)
        .output()
        .expect("run warden");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn missing_config_file_is_a_usage_error() {
    let out = warden(&["--config", "/nonexistent/warden.toml", "layout"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warden init"));
}

#[test]
fn config_show_reports_sources_by_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("w.toml");
    std::fs::write(&cfg, "[network]\nsubnet = \"10.0.2\"\nbridge = \"br7\"\n").unwrap();
    let out = warden(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--subnet",
            "10.0.4",
            "config",
            "show",
            "--json",
        ],
        &[
            ("WARDEN_SUBNET_BASE", "10.0.3"),
            ("AGENT_DOMAIN", "corp.arpa"),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&ok_stdout(&out)).unwrap();
    assert_eq!(v["keys"]["network.subnet"]["value"], "\"10.0.4\"");
    assert_eq!(v["keys"]["network.subnet"]["source"], "flag --subnet");
    assert_eq!(v["keys"]["dns.domain"]["source"], "env AGENT_DOMAIN");
    assert_eq!(
        v["keys"]["network.bridge"]["source"],
        format!("file {}", cfg.display())
    );
    assert_eq!(v["keys"]["identity"]["source"], "default");
}

#[test]
fn init_writes_a_config_that_loads_to_the_defaults_and_a_0600_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("etc/warden.toml");
    let state = dir.path().join("state");
    let out = warden(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "init",
        ],
        &[],
    );
    ok_stdout(&out);
    let token = state.join("token");
    assert_eq!(
        std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&token).unwrap().trim().len(), 64);
    let with_file = ok_stdout(&warden(
        &["--config", cfg.to_str().unwrap(), "layout", "--json"],
        &[],
    ));
    let without = ok_stdout(&warden(&["layout", "--json"], &[]));
    assert_eq!(with_file, without);
}

/// Issue 18: `warden init` must not freeze values derived from others. After `init`, `--subnet 10.0.7` moves
/// the provider with the jails (marked derived); a value the operator writes stays theirs.
#[test]
fn derived_defaults_follow_the_subnet_after_init() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("warden.toml");
    let state = dir.path().join("state");
    let (c, s) = (cfg.to_str().unwrap(), state.to_str().unwrap());
    ok_stdout(&warden(&["--config", c, "--state-dir", s, "init"], &[]));
    let show = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["--config", c];
        args.extend_from_slice(extra);
        args.extend(["config", "show"]);
        ok_stdout(&warden(&args, env))
    };
    let text = show(&["--subnet", "10.0.7"], &[]);
    let line = text
        .lines()
        .find(|l| l.starts_with("agent.base_url "))
        .unwrap();
    assert!(
        line.contains("\"http://10.0.7.4:8080/v1\"") && line.contains("(derived: "),
        "{line}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok_stdout(&warden(
        &["--config", c, "config", "show", "--json"],
        &[
            ("AGENT_SUBNET_BASE", "10.0.7"),
            ("WARDEN_IDENTITY", "alpha"),
        ],
    )))
    .unwrap();
    let key = |k: &str| json["keys"][k].clone();
    assert_eq!(
        key("agent.base_url")["value"],
        "\"http://10.0.7.4:8080/v1\""
    );
    assert_eq!(key("agent.base_url")["derived"], true);
    assert_eq!(key("dns.internal_domain")["value"], "\"alpha.home.arpa\"");
    assert_eq!(key("dns.internal_domain")["derived"], true);
    assert_eq!(key("network.subnet")["derived"], false);
    // The layout follows too: the ai jail's models port and the zone's host name.
    let layout: serde_json::Value = serde_json::from_str(&ok_stdout(&warden(
        &["--config", c, "--subnet", "10.0.7", "layout", "--json"],
        &[],
    )))
    .unwrap();
    assert_eq!(layout["internal_domain"], "clawdie.home.arpa");

    // Written by the operator: theirs, whatever the subnet says.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "# base_url = \"http://10.0.1.4:8080/v1\"",
        "base_url = \"http://10.0.1.9:9000/v1\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let text = show(&["--subnet", "10.0.7"], &[]);
    let line = text
        .lines()
        .find(|l| l.starts_with("agent.base_url "))
        .unwrap();
    assert!(
        line.contains("http://10.0.1.9:9000/v1") && line.contains("(file "),
        "{line}"
    );
}

#[test]
fn plan_json_holds_the_seed_equivalent_creates() {
    let out = warden(
        &["plan", "--backend", "bastille", "--json"],
        &[("PATH", "/usr/bin:/bin")],
    );
    let v: serde_json::Value = serde_json::from_str(&ok_stdout(&out)).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("fresh FreeBSD host"));
    let argvs: Vec<String> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            a["argv"].as_array().map(|x| {
                x.iter()
                    .map(|s| s.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
        .collect();
    for want in [
        "bastille bootstrap -p 15.0-RELEASE",
        "bastille create -B -g 10.0.1.1 -n 10.0.1.1 clawdiegit 15.0-RELEASE 10.0.1.2/24 warden0",
        "bastille create -B -g 10.0.1.1 -n 10.0.1.1 clawdiecms 15.0-RELEASE 10.0.1.3/24 warden0",
        "bastille create -B -g 10.0.1.1 -n 10.0.1.1 clawdieai 15.0-RELEASE 10.0.1.4/24 warden0",
        "bastille create -T -B -g 10.0.1.1 -n 10.0.1.1 clawdiedb 15.0-RELEASE 10.0.1.5/24 warden0",
    ] {
        assert!(argvs.iter().any(|a| a == want), "missing {want}");
    }
    let files: Vec<&str> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["file"]["path"].as_str())
        .collect();
    for want in [
        "/usr/local/etc/bastille/bastille.conf",
        "/etc/pf.conf",
        "/usr/local/etc/dnsmasq.conf",
        "/etc/hosts",
    ] {
        assert!(files.contains(&want), "missing file {want}");
    }
    let only_dns = warden(
        &["plan", "--backend", "bastille", "--step", "dns", "--json"],
        &[("PATH", "/usr/bin:/bin")],
    );
    let v: serde_json::Value = serde_json::from_str(&ok_stdout(&only_dns)).unwrap();
    assert!(v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["step"] == "dns"));
    let bad = warden(&["plan", "--step", "dsn"], &[]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn every_verb_has_help() {
    for verb in ["init", "config", "layout", "render", "plan", "setup"] {
        let out = warden(&[verb, "--help"], &[]);
        assert!(out.status.success(), "{verb} --help");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{verb}"
        );
    }
}
