//! `mock-provider`: serve a scripted OpenAI-compatible API for tests and benchmarks.
//!
//! Usage: `cargo run -p warden-agent --example mock-provider -- [--addr 127.0.0.1:8080] [--scenario text|tool|error500|empty | --script FILE]`
//! Prints the bound address on stdout, then one JSON line per received request on stderr.

use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use warden_agent::mock::{MockProvider, Script};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("mock-provider: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut addr = "127.0.0.1:8080".to_string();
    let mut script = Script::scenario("text");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => addr = value("--addr")?,
            "--scenario" => {
                let name = value("--scenario")?;
                script = Some(Script::scenario(&name).ok_or(format!(
                    "unknown scenario {name:?}; expected one of {:?}",
                    Script::SCENARIOS
                ))?);
            }
            "--script" => {
                let path = value("--script")?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("failed to read {path}: {e}"))?;
                script = Some(
                    Script::from_json(&text).map_err(|e| format!("failed to parse {path}: {e}"))?,
                );
            }
            "-h" | "--help" => {
                println!(
                    "usage: mock-provider [--addr HOST:PORT] [--scenario NAME | --script FILE]"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let script = script.ok_or("no script")?;
    let mock = MockProvider::start(addr.as_str(), script)
        .map_err(|e| format!("failed to bind {addr}: {e}"))?;
    println!("{}", mock.addr());
    let mut seen = 0;
    loop {
        thread::sleep(Duration::from_millis(50));
        let reqs = mock.requests();
        for req in &reqs[seen..] {
            eprintln!("{}", serde_json::to_string(req).unwrap_or_default());
        }
        seen = reqs.len();
    }
}
