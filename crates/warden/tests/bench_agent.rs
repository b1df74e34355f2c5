//! `warden bench --agent` through the binary, against the instant mock provider: every cold and warm pi turn
//! succeeds, each `warm` turn's request went through the model gateway under that turn's grant (the bench counts
//! it failed otherwise), and a warm turn costs a fraction of a cold one.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Far beyond the bench's few minutes on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(900);

#[test]
fn bench_agent_reports_cold_and_warm_overhead() {
    let _lock = warden_testkit::root_test("bench_agent_reports_cold_and_warm_overhead");
    let state = tempfile::Builder::new()
        .prefix("wbenchagent")
        .tempdir()
        .unwrap();
    // pi comes from the workspace's shared cache (installed on the host side, locked and idempotent), copied
    // where `warden setup --step agent` leaves it.
    let pi_cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pi-cache");
    let never = std::sync::atomic::AtomicBool::new(false);
    warden_agent::install_pi_until(&pi_cache, warden_agent::PI_VERSION, &never)
        .expect("install pi into the shared cache");
    let o = Command::new("cp")
        .arg("-a")
        .arg(&pi_cache)
        .arg(state.path().join("pi"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::text(&o));

    // The report goes to a file: a pipe nobody reads while the bench runs could fill and stall it.
    let mut out = tempfile::tempfile().unwrap();
    let mut child = Command::new(common::warden_bin())
        .arg("--state-dir")
        .arg(state.path())
        .args(["bench", "--agent", "--turns", "8", "--json"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("warden bench --agent did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut report = String::new();
    out.seek(SeekFrom::Start(0)).unwrap();
    out.read_to_string(&mut report).unwrap();
    assert!(status.success(), "{status}: {report}");
    let r: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(r["failures"], 0, "{r:#}");
    for kind in ["cold", "warm", "warm_fixed_key"] {
        for n in ["tenants_1", "tenants_8"] {
            let s = &r[kind][n];
            assert!(s["turns"].as_u64().unwrap() >= 8, "{kind} {n}: {s}");
            assert!(
                s["overhead_p50_ms"].as_f64().unwrap() > 0.0,
                "{kind} {n}: {s}"
            );
        }
    }
    let p50 = |kind: &str| r[kind]["tenants_1"]["overhead_p50_ms"].as_f64().unwrap();
    // pi's start (1.2 s or more here) is what warm turns skip; observed ratios are 0.015–0.03.
    assert!(
        p50("warm") * 4.0 < p50("cold"),
        "warm {} ms vs cold {} ms: {r:#}",
        p50("warm"),
        p50("cold")
    );
}
